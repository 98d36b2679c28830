"""The one place that talks to the Kubernetes API: server-side apply, reads, status patches."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client as k8s

from . import FIELD_MANAGER, GROUP, PLURAL, VERSION

# apiVersion, kind -> URL prefix and plural, for exactly the kinds the operator manages
RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("networking.k8s.io/v1", "Ingress"): ("/apis/networking.k8s.io/v1", "ingresses"),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    (f"{GROUP}/{VERSION}", "VoiceAgent"): (f"/apis/{GROUP}/{VERSION}", PLURAL),
}


class ClusterError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = RESOURCES[(api_version, kind)]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


class Cluster:
    def __init__(self, api: k8s.ApiClient | None = None) -> None:
        self.api = api or k8s.ApiClient()

    def _request(self, method: str, path: str, *, body: Any = None, content_type: str = "application/json",
                 query: list[tuple[str, str]] | None = None) -> dict[str, Any] | None:
        method_, url, headers, body_, _ = self.api.param_serialize(
            method=method, resource_path=path, query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"}, body=body,
            auth_settings=["BearerToken"])
        response = self.api.call_api(method_, url, header_params=headers, body=body_, _request_timeout=(5, 30))
        raw: bytes = response.read()  # type: ignore[no-untyped-call]
        if response.status == 404 and method == "GET":
            return None
        if response.status >= 400:
            raise ClusterError(response.status, _message(raw))
        result: dict[str, Any] = json.loads(raw) if raw else {}
        return result

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the operator owns the fields it sets, and nothing else."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        result = self._request("PATCH", path, body=obj, content_type="application/apply-patch+yaml",
                               query=[("fieldManager", FIELD_MANAGER), ("force", "true")])
        return result or {}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._request("GET", resource_path(api_version, kind, namespace, name))

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = resource_path(f"{GROUP}/{VERSION}", "VoiceAgent", namespace, name) + "/status"
        self._request("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", raw[:200]))
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace")
