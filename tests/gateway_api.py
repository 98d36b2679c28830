"""The Gateway API's own schema for HTTPRoute, as a check: `@kubernetes-models/gateway-api` (npm; generated from
sigs.k8s.io/gateway-api's v1 API types and their validation markers: required fields, patterns, lengths, enums,
bounds), installed by `make test` into tests/delivery/gateway_api/ from its package-lock.json and run by Node.

What it does not evaluate: the HTTPRoute CRD's CEL rules (`x-kubernetes-validations`), which the package does not
carry. Of those, the ones that can concern a route Glimpse renders are checked beside it in Python, as the rules'
messages state them (`cel_rule_errors`; not a CEL interpreter over the CRD, which no package here ships): a backendRef
to a Service has a port, a PathPrefix path starts with "/" and has no "//", and two parentRefs to the same parent
differ by sectionName or port. The others are about filters, redirects, rewrites, mirrors, CORS and timeouts, which
Glimpse never renders.
"""

from __future__ import annotations

from typing import Any

from tests.npm_schemas import validate
from tests.paths import ROOT

DIRECTORY = ROOT / "tests" / "delivery" / "gateway_api"


def schema_errors(routes: list[dict[str, Any]]) -> list[list[str]]:
    """For each route, what the Gateway API's schema refuses in it ("<path> <message>"; empty: valid)."""
    return validate(DIRECTORY, routes, "the Gateway API's schemas")


def _parent(ref: dict[str, Any], namespace: str) -> tuple[str, str, str, str]:
    # the CRD defaults group and kind, and a missing namespace is the route's own
    return (ref.get("group", "gateway.networking.k8s.io"), ref.get("kind", "Gateway"),
            ref.get("namespace") or namespace, ref.get("name", ""))


def cel_rule_errors(route: dict[str, Any]) -> list[str]:
    """The HTTPRoute CRD's CEL rules that can concern what Glimpse renders (gateway.networking.k8s.io_httproutes.yaml,
    standard channel), evaluated here because the schema package leaves them out."""
    errors = []
    spec, namespace = route["spec"], route["metadata"].get("namespace", "")
    refs = spec.get("parentRefs") or []
    for i, ref in enumerate(refs):
        same = [other for other in refs if _parent(other, namespace) == _parent(ref, namespace)]
        if len(same) > 1 and not all(other.get("sectionName") or other.get("port") for other in same):
            errors.append(f"spec.parentRefs[{i}]: sectionName or port must be specified when parentRefs includes 2 "
                          "or more references to the same parent")
        keys = [(other.get("sectionName"), other.get("port")) for other in same]
        if len(same) > 1 and len(set(keys)) < len(keys):
            errors.append(f"spec.parentRefs[{i}]: sectionName must be unique when parentRefs includes 2 or more "
                          "references to the same parent")
    for i, rule in enumerate(spec.get("rules") or []):
        for j, backend in enumerate(rule.get("backendRefs") or []):
            if not backend.get("group") and backend.get("kind", "Service") == "Service" and "port" not in backend:
                errors.append(f"spec.rules[{i}].backendRefs[{j}]: Must have port for Service reference")
        for j, match in enumerate(rule.get("matches") or []):
            path = match.get("path") or {}
            if path.get("type", "PathPrefix") in ("Exact", "PathPrefix"):
                value = str(path.get("value", "/"))
                if not value.startswith("/") or "//" in value:
                    errors.append(f"spec.rules[{i}].matches[{j}].path: value must be an absolute path and start "
                                  "with '/', without '//'")
    return errors


def route_errors(routes: list[dict[str, Any]]) -> list[list[str]]:
    """For each route: the schema's refusals, then the CEL rules' (`cel_rule_errors`)."""
    return [errors + cel_rule_errors(route) for route, errors in zip(routes, schema_errors(routes), strict=True)]
