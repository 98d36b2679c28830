"""The proxy's Kubernetes objects of one VoiceAgent as they are: what exists under its name and whose it is, the
secrets generated once and kept in its Secret, applying what `render.py` wants, and deleting the optional objects it
no longer wants."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from . import KIND
from .cluster import DELETED, RESOURCES, Cluster, ClusterError, secret_values
from .render import GATEWAY_API_VERSION, SECRET_KEYS, controller_uid, object_name


class ApplyFailed(Exception):
    """The API server refused (or never answered) the apply, or the deletion, of one object; `reason` is the
    condition's."""

    reason = "ApplyFailed"

    def __init__(self, obj: dict[str, Any], error: ClusterError) -> None:
        what = f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
        super().__init__(f"Could not apply {what}: {error.message} (HTTP {error.status or 'no answer'}).")


class GatewayAPIMissing(ApplyFailed):
    """spec.httpRoute on a cluster without the Gateway API's HTTPRoute CRD: its resource path is a 404."""

    reason = "GatewayAPIMissing"

    def __init__(self, obj: dict[str, Any], error: ClusterError) -> None:
        super().__init__(obj, error)
        self.args = (f"spec.httpRoute needs the Gateway API's HTTPRoute ({GATEWAY_API_VERSION}), which this cluster "
                     "does not serve: install the Gateway API CRDs (the standard channel), or remove spec.httpRoute "
                     "and use spec.ingress. Everything else is applied.",)


def existing_objects(cluster: Cluster, namespace: str, voice_agent: str) -> dict[str, dict[str, Any]]:
    """Every kind the operator makes for the VoiceAgent named `voice_agent`, as it exists now under the proxy's
    name (by kind)."""
    found = {}
    for api_version, kind in RESOURCES:
        if kind != KIND and (obj := cluster.get(api_version, kind, namespace, object_name(voice_agent))) is not None:
            found[kind] = obj
    return found


def ownership_conflict(existing: dict[str, dict[str, Any]], namespace: str, voice_agent: str,
                       uid: str) -> str | None:
    """Why nothing may be applied, when an object of the proxy's name exists but is not the VoiceAgent's (named
    `voice_agent`, with `uid`): it is never taken over."""
    foreign = [(kind, owner) for kind, obj in existing.items() if (owner := controller_uid(obj)) != uid]
    if not foreign:
        return None
    owners = ", ".join(f"{kind} {namespace}/{object_name(voice_agent)} "
                       f"({f'controlled by uid {owner}' if owner else 'made by someone else'})"
                       for kind, owner in foreign)
    return (f"{owners} already exist(s) and {'is' if len(foreign) == 1 else 'are'} not this {KIND}'s: "
            "nothing is changed. Remove or rename it, or give the VoiceAgent another name.")


def generated_secrets(existing: dict[str, Any] | None) -> dict[str, str]:
    """Kept across reconciles (from the proxy's Secret as it exists): regenerating the bearer key would lock
    ElevenLabs out."""
    values = secret_values(existing or {})
    return {key: values.get(key) or secrets.token_urlsafe(32) for key in SECRET_KEYS}


def apply(cluster: Cluster, objects: Iterable[dict[str, Any]]) -> None:
    """Server-side apply, in order; `ApplyFailed` names the first object the API server refused."""
    for obj in objects:
        try:
            cluster.apply(obj)
        except ClusterError as exc:
            if exc.status == 404 and obj["apiVersion"] == GATEWAY_API_VERSION:
                raise GatewayAPIMissing(obj, exc) from exc
            raise ApplyFailed(obj, exc) from exc


def delete_unwanted(cluster: Cluster, existing: dict[str, dict[str, Any]], objects: list[dict[str, Any]],
                    namespace: str, voice_agent: str) -> list[str]:
    """The optional objects (`DELETED`) that exist but the spec no longer wants: a forgotten HPA would keep setting the
    Deployment's replicas, a forgotten NetworkPolicy keep restricting pods it was turned off for, a forgotten Ingress or
    HTTPRoute (spec.ingress, spec.httpRoute removed) keep publishing the proxy. Each is deleted (only if it is still
    the one read); the kinds deleted, by name."""
    wanted = {o["kind"] for o in objects}
    deleted = []
    for api_version, kind in sorted(DELETED, key=lambda key: key[1]):
        obj = existing.get(kind)
        if obj is None or kind in wanted:
            continue
        try:
            cluster.delete(api_version, kind, namespace, object_name(voice_agent), uid=str(obj["metadata"]["uid"]))
        except ClusterError as exc:
            raise ApplyFailed(obj, exc) from exc
        deleted.append(kind)
    return deleted
