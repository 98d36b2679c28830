"""The built page (frontend/dist) at `/`, when it exists."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

INDEX = "index.html"


def add_frontend(app: web.Application, directory: Path | None) -> None:
    if directory is None or not (directory / INDEX).is_file():
        app.router.add_get("/", _no_frontend)
        return
    index = directory / INDEX

    async def serve_index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", serve_index)
    if (directory / "assets").is_dir():
        app.router.add_static("/assets/", directory / "assets", append_version=False)


async def _no_frontend(request: web.Request) -> web.Response:
    return web.Response(text="Glimpse proxy is running. The page is not built here "
                             "(cd frontend && npm ci && npm run build).\n", content_type="text/plain")
