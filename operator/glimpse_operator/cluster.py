"""The one place that talks to the Kubernetes API: server-side apply, reads, status patches, finalizers on the
ElevenLabs key Secret, and events."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import socket
import time
from typing import Any

from kubernetes import client as k8s

from . import FIELD_MANAGER, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)

# apiVersion, kind -> URL prefix and plural, for exactly the kinds the operator manages
RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts"),  # only with spec.pod.serviceAccount.create
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("networking.k8s.io/v1", "Ingress"): ("/apis/networking.k8s.io/v1", "ingresses"),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    # the Gateway API's (a CRD the cluster may not have: a GET is then a 404, as for an object not there)
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("/apis/gateway.networking.k8s.io/v1", "httproutes"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies"),
    (f"{GROUP}/{VERSION}", "VoiceAgent"): (f"/apis/{GROUP}/{VERSION}", PLURAL),
}
# Besides get, create and patch (server-side apply) of each kind above: the kinds kopf watches for the operator
# (a VoiceAgent's proxy Deployment for its READY, the Secrets it names for key rotation), and the ones it deletes
# when the spec stops asking for them (an HPA, a NetworkPolicy spec.networkPolicy turned off, an Ingress, an
# HTTPRoute; owner references garbage-collect the rest).
WATCHED: frozenset[tuple[str, str]] = frozenset({("v1", "Secret"), ("apps/v1", "Deployment")})
DELETED: frozenset[tuple[str, str]] = frozenset({("autoscaling/v2", "HorizontalPodAutoscaler"),
                                                 ("networking.k8s.io/v1", "NetworkPolicy"),
                                                 ("networking.k8s.io/v1", "Ingress"),
                                                 ("gateway.networking.k8s.io/v1", "HTTPRoute")})
EVENTS_PATH = "/api/v1/namespaces/{namespace}/events"  # posted only (create), never read
MAX_EVENT_MESSAGE = 1024  # what kopf and client-go post at most
CONFLICT_ATTEMPTS = 10  # a finalizer change that keeps meeting newer versions of the object gives up
CONFLICT_JITTER_SECONDS = 0.05  # between attempts, so that concurrent writers do not meet again at once


class ClusterError(Exception):
    """The API server refused a request (`status` is its HTTP status) or could not be reached (`status` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = RESOURCES[(api_version, kind)]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    def __init__(self, api: k8s.ApiClient | None = None) -> None:
        self.api = api or k8s.ApiClient()
        self.instance = socket.gethostname()  # the operator pod: reportingInstance of its events

    def _request(self, method: str, path: str, *, body: Any = None, content_type: str = "application/json",
                 query: list[tuple[str, str]] | None = None) -> dict[str, Any] | None:
        method_, url, headers, body_, _ = self.api.param_serialize(
            method=method, resource_path=path, query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"}, body=body,
            auth_settings=["BearerToken"])
        try:
            response = self.api.call_api(method_, url, header_params=headers, body=body_, _request_timeout=(5, 30))
            raw: bytes = response.read()  # type: ignore[no-untyped-call]
        except Exception as exc:  # urllib3's connection errors, TLS errors: no answer at all
            raise ClusterError(0, f"Kubernetes API unreachable: {type(exc).__name__}") from exc
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

    def get_voice_agent(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(f"{GROUP}/{VERSION}", KIND, namespace, name)

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.get("v1", "Secret", namespace, name)
        return None if secret is None else secret_values(secret)

    def delete(self, api_version: str, kind: str, namespace: str, name: str, *, uid: str) -> None:
        """Delete one object, only if it is still the one with `uid` (a precondition: 409 otherwise); gone is fine."""
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            self._request("DELETE", resource_path(api_version, kind, namespace, name), body=options)
        except ClusterError as exc:
            if exc.status != 404:
                raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = resource_path(f"{GROUP}/{VERSION}", KIND, namespace, name) + "/status"
        self._request("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")

    def add_finalizer(self, api_version: str, kind: str, namespace: str, name: str, finalizer: str) -> bool:
        """Put `finalizer` on an object; False if it is gone or already being deleted (no finalizer may be added
        then: Kubernetes refuses it)."""
        return self._change_finalizers(api_version, kind, namespace, name, finalizer, add=True)

    def remove_finalizer(self, api_version: str, kind: str, namespace: str, name: str, finalizer: str) -> bool:
        """Take `finalizer` off an object; False if the object is gone or never had it."""
        return self._change_finalizers(api_version, kind, namespace, name, finalizer, add=False)

    def _change_finalizers(self, api_version: str, kind: str, namespace: str, name: str, finalizer: str, *,
                           add: bool) -> bool:
        # A merge patch replaces the whole list: with the resourceVersion it was computed from as a precondition, a
        # concurrent change (another VoiceAgent's finalizer) is a 409, and the list is read and computed again.
        path = resource_path(api_version, kind, namespace, name)
        for _ in range(CONFLICT_ATTEMPTS):
            obj = self._request("GET", path)
            if obj is None:
                return False
            meta = obj.get("metadata") or {}
            current: list[str] = list(meta.get("finalizers") or [])
            if add and (finalizer in current or meta.get("deletionTimestamp")):
                return finalizer in current
            if not add and finalizer not in current:
                return False
            wanted = current + [finalizer] if add else [f for f in current if f != finalizer]
            patch = {"metadata": {"finalizers": wanted or None, "resourceVersion": meta.get("resourceVersion")}}
            try:
                self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")
                return True
            except ClusterError as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409:
                    raise
                time.sleep(random.uniform(0, CONFLICT_JITTER_SECONDS))
        raise ClusterError(409, f"{kind} {namespace}/{name} kept changing: its finalizers were not updated")

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `involved` (what `kubectl describe` lists). Events help but never fail a handler:
        a refused or lost event is logged, nothing more."""
        meta = involved["metadata"]
        if len(message) > MAX_EVENT_MESSAGE:
            message = message[:MAX_EVENT_MESSAGE - 3] + "..."
        now = _now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            # named as client-go names them: <object>.<unique hex>
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": involved.get("apiVersion", f"{GROUP}/{VERSION}"),
                               "kind": involved.get("kind", KIND), "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid", "")},
            "type": type_, "reason": reason, "message": message,
            "source": {"component": FIELD_MANAGER},  # the "From" column of kubectl describe
            "reportingComponent": FIELD_MANAGER, "reportingInstance": self.instance,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self._request("POST", EVENTS_PATH.format(namespace=meta["namespace"]), body=event)
        except ClusterError as exc:
            log.warning("could not post event %s %s for %s/%s: %s", type_, reason, meta["namespace"], meta["name"],
                        exc)


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's data, decoded."""
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", raw[:200]))
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace")
