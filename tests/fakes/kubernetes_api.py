"""A small fake Kubernetes API server on loopback, for the operator's handler tests and for kopf itself.

It serves what the operator (`glimpse_operator.cluster`) and kopf use, for the kinds in `KINDS`: discovery, get,
list and watch, create, delete, server-side apply, merge and JSON patches of objects and of their status
subresource. Objects live in memory, keyed by their path (`objects`); every apply is recorded with its field
manager (`applies`). Each rule below follows the Kubernetes documentation named in its comment. Simplifications:
an apply replaces the object's fields with the applied ones (no field-level ownership merge, no conflicts between
managers); no strategic merge patch; no label or field selectors.

Failures a test wants: `refuse_apply[kind] = (status, message)` (an admission webhook or a policy refusing that
kind), `fail_next(method, path, status)` (the next such request fails once, e.g. the operator "dies" before a
status write), and the API server's own validation of container resource quantities (a 422, as for a bad
`proxy.resources`) and of NetworkPolicy peers and ports (`network_policy_problem`). The Gateway API's HTTPRoute is
served as where its CRD is installed; `gateway_api=False` is a cluster without it, where its paths are 404s as for
any resource the server does not know.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import ipaddress
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from aiohttp import web

from tests.fakes.loopback import serve_app


@dataclass(frozen=True)
class Kind:
    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    kind: str
    namespaced: bool = True
    has_status: bool = True  # a status subresource

    @property
    def api_version(self) -> str:
        return self.prefix.removeprefix("/apis/").removeprefix("/api/")


KINDS = (
    Kind("/api/v1", "secrets", "Secret", has_status=False),
    Kind("/api/v1", "configmaps", "ConfigMap", has_status=False),
    Kind("/api/v1", "services", "Service"),
    Kind("/api/v1", "serviceaccounts", "ServiceAccount", has_status=False),
    Kind("/api/v1", "events", "Event", has_status=False),
    Kind("/apis/apps/v1", "deployments", "Deployment"),
    Kind("/apis/networking.k8s.io/v1", "ingresses", "Ingress"),
    Kind("/apis/policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    Kind("/apis/autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    Kind("/apis/gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute"),  # the Gateway API's CRD (status: yes)
    Kind("/apis/networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", has_status=False),
    Kind("/apis/glimpse.dev/v1alpha1", "voiceagents", "VoiceAgent"),
    Kind("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False),
    Kind("/api/v1", "namespaces", "Namespace", namespaced=False),  # last: /api/v1/namespaces/x/... are others'
)
# A quantity, as the API server validates it
# (https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#resource-units-in-kubernetes;
# the regular expression of k8s.io/apimachinery/pkg/api/resource/quantity.go): a 422 names the field and the rule.
GATEWAY_API_PREFIX = "/apis/gateway.networking.k8s.io/v1"
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


@dataclass
class Target:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def collection(self) -> str:
        ns = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{self.kind.prefix}{ns}/{self.kind.plural}"

    @property
    def key(self) -> str:
        return f"{self.collection}/{self.name}"


def parse(path: str) -> Target | None:
    for kind in KINDS:
        if not path.startswith(kind.prefix + "/"):
            continue
        rest = path[len(kind.prefix) + 1:].split("/")
        namespace = None
        if kind.namespaced and len(rest) >= 3 and rest[0] == "namespaces" and rest[2] == kind.plural:
            namespace, rest = rest[1], rest[2:]
        if rest[0] != kind.plural or len(rest) > 3 or (namespace is None and kind.namespaced and len(rest) > 1):
            continue
        subresource = rest[2] if len(rest) == 3 else None
        if subresource is not None and (subresource != "status" or not kind.has_status):
            continue
        return Target(kind, namespace, rest[1] if len(rest) > 1 else None, subresource)
    return None


@dataclass
class Apply:
    path: str
    field_manager: str | None
    force: bool
    body: dict[str, Any]


@dataclass
class Request:
    method: str
    path: str
    content_type: str
    body: Any


@dataclass
class _Watch:
    collection: str | None  # one namespace's collection, or None with `kind` for every namespace
    kind: Kind
    queue: asyncio.Queue[tuple[int, dict[str, Any]] | None]
    selector: str = ""  # labelSelector


def selected(obj: dict[str, Any], selector: str) -> bool:
    """Equality-based label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma = and), as lists and watches filter
    with `labelSelector` (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = (x.strip() for x in term.split("!=", 1))
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = (x.strip() for x in term.replace("==", "=").split("=", 1))
            ok = labels.get(key) == value
        elif term.startswith("!"):
            ok = term[1:] not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


@dataclass
class FakeKubernetes:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    applies: list[Apply] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    refuse_apply: dict[str, tuple[int, str]] = field(default_factory=dict)  # kind -> (status, message)
    gateway_api: bool = True  # the Gateway API's CRDs installed (HTTPRoute served)
    runner: web.AppRunner | None = None
    base_url: str = ""
    _failures: list[list[Any]] = field(default_factory=list)  # [method, path, status, message, matches to let by]
    _revision: itertools.count = field(default_factory=lambda: itertools.count(1))
    _current: int = 0
    _history: list[tuple[int, str, Kind, dict[str, Any]]] = field(default_factory=list)
    _watches: list[_Watch] = field(default_factory=list)

    async def start(self) -> FakeKubernetes:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self.runner, port = await serve_app(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        for watch in self._watches:
            watch.queue.put_nowait(None)  # end the watch streams, or the server waits for them to close
        if self.runner:
            await self.runner.cleanup()

    # -- for tests ----------------------------------------------------------------------------------------------

    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object, as a client would (and as watchers see it); a test seeding the server may
        give a new object its uid."""
        target = parse(path)
        assert target is not None and target.name and self._served(target.kind), f"not an object path: {path}"
        previous = self.objects.get(path)
        prepared = self._prepared(obj, previous, target)
        if previous is None and obj.get("metadata", {}).get("uid"):
            prepared["metadata"]["uid"] = obj["metadata"]["uid"]
        return copy.deepcopy(self._write(target, prepared))

    def put_status(self, path: str, status: dict[str, Any]) -> dict[str, Any]:
        """Write an object's status subresource, as its controller does (the deployment controller, say)."""
        target = parse(path + "/status")
        assert target is not None and target.name and path in self.objects, f"no such object: {path}"
        return copy.deepcopy(self._write(target, {**self.objects[path], "status": status}, status_only=True))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o.get("kind") == kind]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The core/v1 Events posted (about the object `name`), oldest first."""
        found = [e for e in self.of_kind("Event") if name is None or e["involvedObject"]["name"] == name]
        return sorted(found, key=lambda e: int(e["metadata"]["resourceVersion"]))

    def fail_next(self, method: str, path: str, status: int, message: str = "injected failure", *,
                  after: int = 0) -> None:
        """The next `method` request on exactly `path` (after `after` of them went through) answers `status`, once."""
        self._failures.append([method, path, status, message, after])

    def delete(self, path: str) -> None:
        """What `kubectl delete` does (see _delete)."""
        target = parse(path)
        assert target is not None and target.name
        self._delete(target)

    def _served(self, kind: Kind) -> bool:
        # a custom resource's paths and discovery exist only while its CRD does
        # (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#create-a-customresourcedefinition)
        return self.gateway_api or kind.prefix != GATEWAY_API_PREFIX

    # -- storage ------------------------------------------------------------------------------------------------

    def _prepared(self, obj: dict[str, Any], previous: dict[str, Any] | None, target: Target) -> dict[str, Any]:
        stored = copy.deepcopy(obj)
        stored.setdefault("apiVersion", target.kind.api_version)
        stored.setdefault("kind", target.kind.kind)
        meta = stored.setdefault("metadata", {})
        old = (previous or {}).get("metadata", {})
        meta["name"] = target.name
        if target.namespace:
            meta["namespace"] = target.namespace
        # uid and creationTimestamp are the server's, set once
        # (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#uids)
        meta["uid"] = old.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old.get("creationTimestamp") or _now()
        for kept in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if kept in old:
                meta[kept] = old[kept]
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if stored.get("kind") == "Secret" and "stringData" in stored:
            # stringData is write-only, merged into data
            # (https://kubernetes.io/docs/concepts/configuration/secret/, stringData)
            data = {k: base64.b64encode(v.encode()).decode() for k, v in stored.pop("stringData").items()}
            stored["data"] = {**stored.get("data", {}), **data}
        return stored

    def _write(self, target: Target, new: dict[str, Any], *, status_only: bool = False) -> dict[str, Any]:
        key = target.key
        old = self.objects.get(key)
        if target.kind.has_status and old is not None:
            # with a status subresource, writes to the object ignore status and writes to /status change only status
            # (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource)
            if status_only:
                new = {**copy.deepcopy(old), "status": new.get("status")}
                if new["status"] is None:
                    del new["status"]
            elif "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta, old_meta = new["metadata"], (old or {}).get("metadata", {})
        comparable = ({k: v for k, v in new.items()},
                      {k: v for k, v in (old or {}).items()})
        for side in comparable:
            side["metadata"] = {k: v for k, v in side.get("metadata", {}).items()
                                if k not in ("resourceVersion", "generation")}
        if old is not None and comparable[0] == comparable[1]:
            # a write that changes nothing is not a write: same resourceVersion, no watch event (kube-apiserver's
            # storage, k8s.io/apiserver/pkg/storage/etcd3/store.go GuaranteedUpdate, skips an unchanged object)
            return old
        # metadata.generation counts changes to everything but metadata and status (same page, status subresource)
        spec_changed = old is None or _essence(new) != _essence(old)
        meta["generation"] = int(old_meta.get("generation") or 0) + (1 if spec_changed else 0) or 1
        revision = next(self._revision)
        self._current = revision
        meta["resourceVersion"] = str(revision)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # the last finalizer gone from an object marked for deletion: it is deleted
            # (https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/#how-finalizers-work)
            self.objects.pop(key, None)
            self._notify(revision, target, {"type": "DELETED", "object": copy.deepcopy(new)})
            self._collect_dependents(meta["uid"])
            return new
        self.objects[key] = new
        self._notify(revision, target, {"type": "ADDED" if old is None else "MODIFIED",
                                        "object": copy.deepcopy(new)})
        return new

    def _delete(self, target: Target) -> tuple[int, dict[str, Any]]:
        obj = self.objects[target.key]
        self.deletes.append(target.key)
        if obj.get("metadata", {}).get("finalizers"):
            # with finalizers, a delete only sets deletionTimestamp and answers 202 Accepted; the object stays (same)
            if obj["metadata"].get("deletionTimestamp"):
                return 202, obj
            marked = copy.deepcopy(obj)
            marked["metadata"]["deletionTimestamp"] = _now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return 202, self._write(target, marked)
        del self.objects[target.key]
        revision = next(self._revision)
        self._current = revision
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(revision)
        self._notify(revision, target, {"type": "DELETED", "object": gone})
        self._collect_dependents(obj["metadata"]["uid"])
        return 200, gone

    def _collect_dependents(self, owner_uid: str) -> None:
        # the garbage collector deletes an object once none of its owners exists (background cascading deletion,
        # the default: https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion)
        uids = {o["metadata"]["uid"] for o in self.objects.values()}
        for key, obj in list(self.objects.items()):
            owners = {ref.get("uid") for ref in obj.get("metadata", {}).get("ownerReferences") or []}
            if key in self.objects and owner_uid in owners and not owners & uids:
                dependent = parse(key)
                assert dependent is not None
                self._delete(dependent)

    def _notify(self, revision: int, target: Target, event: dict[str, Any]) -> None:
        self._history.append((revision, target.collection, target.kind, event))
        for watch in self._watches:
            if _watched(watch, target.collection, target.kind, event):
                watch.queue.put_nowait((revision, event))

    # -- HTTP ---------------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        content_type = request.headers.get("Content-Type", "")
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _status(400, "the body is not JSON", "BadRequest")
        self.requests.append(Request(request.method, path, content_type, body))
        for failure in self._failures:
            if failure[:2] == [request.method, path]:
                if failure[4]:
                    failure[4] -= 1
                    break
                self._failures.remove(failure)
                return _status(failure[2], failure[3], "InternalError" if failure[2] >= 500 else "Invalid")
        if request.method == "GET" and (discovery := self._discovery(path)) is not None:
            return web.json_response(discovery)
        target = parse(path)
        if target is None or not self._served(target.kind):
            return _status(404, f"the server could not find the requested resource ({path})", "NotFound")
        if target.name is None:
            if request.method == "GET" and request.query.get("watch") in ("true", "1"):
                return await self._watch(request, target)
            if request.method == "GET":
                return web.json_response(self._list(target, request.query.get("labelSelector", "")))
            if request.method == "POST":
                return self._create(target, body)
            return _status(405, "method not allowed", "MethodNotAllowed")
        obj = self.objects.get(target.key)
        if request.method == "GET":
            return web.json_response(obj) if obj else _not_found(target)
        if request.method == "DELETE":
            if obj is None:
                self.deletes.append(target.key)
                return _not_found(target)
            # DeleteOptions.preconditions: a uid (or resourceVersion) that is not the object's is a 409
            # (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/)
            preconditions = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
            meta = obj["metadata"]
            if (preconditions.get("uid") not in (None, meta["uid"])
                    or preconditions.get("resourceVersion") not in (None, meta["resourceVersion"])):
                return _status(409, f"Precondition failed: UID in precondition: {preconditions.get('uid')}, UID in "
                               f"object meta: {meta['uid']}", "Conflict")
            code, result = self._delete(target)
            return web.json_response(result, status=code)
        if request.method == "PATCH":
            return self._patch(request, target, obj, content_type, body)
        return _status(405, "method not allowed", "MethodNotAllowed")

    def _discovery(self, path: str) -> dict[str, Any] | None:
        # discovery: /api, /apis and one resource list per group version
        # (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api)
        if path == "/version":
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for kind in KINDS:
                if kind.prefix.startswith("/apis/") and self._served(kind):
                    group, version = kind.api_version.split("/")
                    groups.setdefault(group, [])
                    if version not in groups[group]:
                        groups[group].append(version)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": group, "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                 "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]}}
                for group, versions in groups.items()]}
        kinds = [k for k in KINDS if k.prefix == path and self._served(k)]
        if not kinds:
            return None
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        resources: list[dict[str, Any]] = []
        for kind in kinds:
            resources.append({"name": kind.plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                              "kind": kind.kind, "verbs": verbs})
            if kind.has_status:
                resources.append({"name": f"{kind.plural}/status", "singularName": "", "namespaced": kind.namespaced,
                                  "kind": kind.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": kinds[0].api_version,
                "resources": resources}

    def _list(self, target: Target, selector: str = "") -> dict[str, Any]:
        # a list carries the collection's resourceVersion, from which a watch continues
        # (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes)
        items = [copy.deepcopy(o) for key, o in self.objects.items() if _in(key, target) and selected(o, selector)]
        return {"apiVersion": target.kind.api_version, "kind": f"{target.kind.kind}List",
                "metadata": {"resourceVersion": str(self._current)}, "items": items}

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        # a watch sends every change after `resourceVersion` as one JSON object per line, {"type", "object"}; with no
        # resourceVersion it starts with an ADDED event for each existing object; it ends after timeoutSeconds
        # (https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-watch)
        since = request.query.get("resourceVersion")
        timeout = float(request.query.get("timeoutSeconds") or 3600)
        watch = _Watch(target.collection if target.namespace else None, target.kind, asyncio.Queue(),
                       request.query.get("labelSelector", ""))
        self._watches.append(watch)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            if since in (None, "", "0"):
                backlog = [(self._current, {"type": "ADDED", "object": copy.deepcopy(o)})
                           for key, o in self.objects.items() if _in(key, target) and selected(o, watch.selector)]
                sent = self._current
            else:
                sent = int(since)
                backlog = [(rev, event) for rev, collection, kind, event in self._history
                           if rev > sent and _watched(watch, collection, kind, event)]
            for revision, event in backlog:
                await response.write(json.dumps(event).encode() + b"\n")
                sent = max(sent, revision)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    item = await asyncio.wait_for(watch.queue.get(), left)
                except TimeoutError:
                    break
                if item is None:
                    break
                if item[0] > sent:
                    await response.write(json.dumps(item[1]).encode() + b"\n")
                    sent = item[0]
        except ConnectionResetError:
            pass  # the client went away
        finally:
            self._watches.remove(watch)
        return response

    def _create(self, target: Target, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return _status(400, "the body must be an object", "BadRequest")
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        named = Target(target.kind, target.namespace, meta.get("name"), None)
        if not named.name:
            return _status(422, "metadata.name: Required value: name or generateName is required", "Invalid")
        if named.key in self.objects:
            return _status(409, f'{target.kind.plural} "{named.name}" already exists', "AlreadyExists")
        return web.json_response(self._write(named, self._prepared(body, None, named)), status=201)

    def _patch(self, request: web.Request, target: Target, obj: dict[str, Any] | None, content_type: str,
               body: Any) -> web.Response:
        status_only = target.subresource == "status"
        if content_type == "application/apply-patch+yaml":
            # server-side apply needs a field manager and creates what does not exist yet
            # (https://kubernetes.io/docs/reference/using-api/server-side-apply/#using-server-side-apply-in-a-controller)
            manager = request.query.get("fieldManager")
            if not manager:
                return _status(400, "PATCH with apply-patch requires a fieldManager", "BadRequest")
            if not isinstance(body, dict):
                return _status(400, "the applied configuration must be an object", "BadRequest")
            if refused := self._refused(target, body):
                return refused
            self.applies.append(Apply(target.key, manager, request.query.get("force") == "true", body))
            new = self._prepared(body, obj, target)
            if obj is not None and "metadata" in obj:
                # fields the applied configuration does not set stay as they are (here: finalizers, annotations)
                for kept in ("finalizers", "annotations", "labels"):
                    if kept in obj["metadata"] and kept not in new["metadata"]:
                        new["metadata"][kept] = copy.deepcopy(obj["metadata"][kept])
        elif obj is None:
            return _not_found(target)
        elif content_type == "application/merge-patch+json":
            # JSON merge patch (RFC 7386); a metadata.resourceVersion in it is a precondition: 409 Conflict when the
            # object has changed since (kubernetes/kubernetes#63104;
            # https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions)
            if not isinstance(body, dict):
                return _status(400, "a merge patch must be an object", "BadRequest")
            expected = (body.get("metadata") or {}).get("resourceVersion")
            if expected is not None and expected != obj["metadata"]["resourceVersion"]:
                return _conflict(target)
            new = _merge(copy.deepcopy(obj), body)
            new["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
        elif content_type == "application/json-patch+json":
            # JSON patch (RFC 6902); a patch that cannot be applied, a failed "test" included, is a 422
            # (k8s.io/apiserver/pkg/endpoints/handlers/patch.go; kopf's finalizer patches test resourceVersion)
            try:
                new = jsonpatch.apply_patch(copy.deepcopy(obj), body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                return _status(422, f"the server rejected our request due to an error in our request: {exc}",
                               "Invalid")
        else:
            # strategic merge patch is not served here; custom resources never support it
            # (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/)
            return _status(415, f"the body of the request was in an unknown format: {content_type}",
                           "UnsupportedMediaType")
        if obj is not None:
            added = set(new.get("metadata", {}).get("finalizers") or []) - set(obj["metadata"].get("finalizers")
                                                                                or [])
            if obj["metadata"].get("deletionTimestamp") and added:
                # no new finalizer may be added to an object that is being deleted
                # (k8s.io/apimachinery/pkg/api/validation/objectmeta.go, ValidateObjectMetaUpdate)
                return _status(422, f'{target.kind.kind} "{target.name}" is invalid: metadata.finalizers: Forbidden: '
                                    "no new finalizers can be added if the object is being deleted", "Invalid")
        prepared = self._prepared(new, obj, target) if not status_only else new
        return web.json_response(self._write(target, prepared, status_only=status_only))

    def _refused(self, target: Target, body: dict[str, Any]) -> web.Response | None:
        if target.kind.kind in self.refuse_apply:
            code, message = self.refuse_apply[target.kind.kind]
            return _status(code, message, "Forbidden" if code == 403 else "Invalid")
        if target.kind.kind == "HTTPRoute" and (problem := _httproute_problem(body)):
            return _status(422, f'HTTPRoute.gateway.networking.k8s.io "{target.name}" is invalid: {problem}', "Invalid")
        if target.kind.kind == "NetworkPolicy" and (problem := network_policy_problem(body.get("spec") or {})):
            return _status(422, f'NetworkPolicy.networking.k8s.io "{target.name}" is invalid: {problem}', "Invalid")
        containers = (((body.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        for index, container in enumerate(containers):
            for section in ("requests", "limits"):
                for resource, value in ((container.get("resources") or {}).get(section) or {}).items():
                    if not QUANTITY.match(str(value)):
                        return _status(422, f'{target.kind.kind}.{target.kind.api_version.split("/")[0]} '
                                            f'"{target.name}" is invalid: spec.template.spec.containers[{index}].'
                                            f'resources.{section}[{resource}]: Invalid value: "{value}": quantities '
                                            f"must match the regular expression '{QUANTITY.pattern}'", "Invalid")
        return None


def _httproute_problem(body: dict[str, Any]) -> str | None:
    """Two of the HTTPRoute CRD's own rules (gateway.networking.k8s.io_httproutes.yaml, standard channel): what a
    route the operator renders could get wrong."""
    spec = body.get("spec") or {}
    for i, ref in enumerate(spec.get("parentRefs") or []):
        if not ref.get("name"):  # ParentReference: required [name]
            return f"spec.parentRefs[{i}].name: Required value"
    for i, rule in enumerate(spec.get("rules") or []):
        for j, backend in enumerate(rule.get("backendRefs") or []):
            # BackendRef's x-kubernetes-validations: "Must have port for Service reference"
            if backend.get("kind", "Service") == "Service" and not backend.get("group") and "port" not in backend:
                return f"spec.rules[{i}].backendRefs[{j}]: Invalid value: Must have port for Service reference"
    return None


def network_policy_problem(spec: dict[str, Any]) -> str | None:
    """What the API server refuses in a NetworkPolicy's spec, as far as the operator could get it wrong
    (k8s.io/kubernetes/pkg/apis/networking/validation/validation.go, ValidateNetworkPolicySpec), else None."""
    for index, kind in enumerate(spec.get("policyTypes") or []):
        if kind not in ("Ingress", "Egress"):  # ValidateNetworkPolicySpec: policyTypes are Ingress or Egress
            return f'spec.policyTypes[{index}]: Unsupported value: "{kind}"'
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            for j, port in enumerate(rule.get("ports") or []):
                where = f"spec.{direction}[{i}].ports[{j}]"
                number = port.get("port")
                # ValidateNetworkPolicyPort: protocol TCP, UDP or SCTP; a numeric port within 1-65535; endPort only
                # after a numeric port, and not below it
                if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                    return f'{where}.protocol: Unsupported value: "{port["protocol"]}"'
                if isinstance(number, int) and not 1 <= number <= 65535:
                    return f"{where}.port: Invalid value: {number}: must be between 1 and 65535, inclusive"
                if "endPort" in port and not (isinstance(number, int) and port["endPort"] >= number):
                    return f"{where}.endPort: Invalid value: {port['endPort']}: must be a number not below port"
            for j, peer in enumerate(rule.get(peers_key) or []):
                where = f"spec.{direction}[{i}].{peers_key}[{j}]"
                given = [key for key in ("podSelector", "namespaceSelector", "ipBlock") if key in peer]
                # ValidateNetworkPolicyPeer: at least one peer; an ipBlock alone
                if not given:
                    return f"{where}: Required value: must specify a peer"
                if "ipBlock" in given and len(given) > 1:
                    return f"{where}: Forbidden: may not specify both ipBlock and another peer"
                if "ipBlock" in peer:
                    cidr = str(peer["ipBlock"].get("cidr", ""))
                    try:  # ValidateIPBlock: cidr is a valid CIDR
                        ipaddress.ip_network(cidr, strict=False)
                    except ValueError:
                        return f'{where}.ipBlock.cidr: Invalid value: "{cidr}": must be a valid CIDR'
    return None


def _in(key: str, target: Target) -> bool:
    if target.namespace is None and target.kind.namespaced:  # every namespace
        found = parse(key)
        return found is not None and found.kind == target.kind
    return key.rsplit("/", 1)[0] == target.collection


def _watched(watch: _Watch, collection: str, kind: Kind, event: dict[str, Any]) -> bool:
    return (kind == watch.kind and (watch.collection is None or watch.collection == collection)
            and selected(event["object"], watch.selector))


def _essence(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found(target: Target) -> web.Response:
    return _status(404, f'{target.kind.plural} "{target.name}" not found', "NotFound")


def _conflict(target: Target) -> web.Response:
    return _status(409, f'Operation cannot be fulfilled on {target.kind.plural} "{target.name}": the object has been '
                        "modified; please apply your changes to the latest version and try again", "Conflict")


def _status(code: int, message: str, reason: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure" if code >= 400 else "Success",
                              "message": message, "reason": reason, "code": code}, status=code)
