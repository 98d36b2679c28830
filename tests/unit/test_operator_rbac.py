"""The operator's RBAC grants what it uses and no more."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from glimpse_operator.cluster import RESOURCES

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "operator" / "rbac.yaml"


def rules() -> list[dict]:
    documents = list(yaml.safe_load_all(RBAC.read_text()))
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
    role = next(d for d in documents if d["kind"] == "ClusterRole")
    return role["rules"]


def granted() -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for rule in rules():
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def test_every_managed_kind_is_granted_apply_and_get() -> None:
    grants = granted()
    for (api_version, _kind), (_prefix, plural) in RESOURCES.items():
        group = api_version.rpartition("/")[0]
        if plural == "voiceagents":
            assert grants[(group, plural)] == {"get", "list", "watch", "patch"}
            assert grants[(group, "voiceagents/status")] == {"get", "patch"}
        else:
            assert grants[(group, plural)] == {"get", "create", "patch"}


def test_no_wildcards_no_delete_no_secret_listing() -> None:
    for rule in rules():
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "delete" not in rule["verbs"]  # owner references garbage-collect the proxy's objects
    assert "list" not in granted()[("", "secrets")]
