"""A small fake Kubernetes API server on loopback, for the operator's handler tests.

It serves get, delete, server-side apply (`application/apply-patch+yaml`) and status merge patches
for any namespaced resource path, stores objects in memory, and records every apply with its field
manager so tests can assert what the operator asked for. Secrets' `stringData` becomes base64 `data`
as on a real API server.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve_app


@dataclass
class Apply:
    path: str
    field_manager: str | None
    force: bool
    body: dict[str, Any]


@dataclass
class FakeKubernetes:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    applies: list[Apply] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    base_url: str = ""
    _versions: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> FakeKubernetes:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self.runner, port = await serve_app(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def put(self, path: str, obj: dict[str, Any]) -> None:
        self.objects[path] = self._stored(obj, None)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o.get("kind") == kind]

    def _stored(self, obj: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        stored = copy.deepcopy(obj)
        meta = stored.setdefault("metadata", {})
        old = (previous or {}).get("metadata", {})
        meta["uid"] = old.get("uid") or str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._versions))
        meta.setdefault("creationTimestamp", old.get("creationTimestamp", "2026-11-24T00:00:00Z"))
        if stored.get("kind") == "Secret" and "stringData" in stored:
            data = {k: base64.b64encode(v.encode()).decode() for k, v in stored.pop("stringData").items()}
            stored["data"] = {**stored.get("data", {}), **data}
        if previous and "status" in previous and "status" not in stored:
            stored["status"] = previous["status"]
        return stored

    async def _handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        is_status = path.endswith("/status")
        key = path.removesuffix("/status")
        if request.method == "GET":
            obj = self.objects.get(key)
            return web.json_response(obj) if obj else _status(404, f"{key} not found", "NotFound")
        if request.method == "DELETE":
            self.deletes.append(key)
            if self.objects.pop(key, None) is None:
                return _status(404, f"{key} not found", "NotFound")
            return _status(200, "deleted", "Success")
        if request.method == "PATCH":
            body = json.loads(await request.read())
            content_type = request.headers.get("Content-Type", "")
            if is_status:
                obj = self.objects.get(key)
                if obj is None:
                    return _status(404, f"{key} not found", "NotFound")
                obj["status"] = {**obj.get("status", {}), **body.get("status", {})}
                return web.json_response(obj)
            if content_type != "application/apply-patch+yaml":
                return _status(415, f"unsupported patch type {content_type}", "UnsupportedMediaType")
            if not request.query.get("fieldManager"):
                return _status(400, "fieldManager is required for apply patch", "BadRequest")
            self.applies.append(Apply(key, request.query.get("fieldManager"), request.query.get("force") == "true",
                                      body))
            self.objects[key] = self._stored(body, self.objects.get(key))
            return web.json_response(self.objects[key])
        return _status(405, "method not allowed", "MethodNotAllowed")


def _status(code: int, message: str, reason: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure" if code >= 400 else "Success",
                              "message": message, "reason": reason, "code": code}, status=code)
