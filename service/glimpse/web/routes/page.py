"""The page (the build of frontend/) at `/`, when it exists."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

INDEX = "index.html"
ASSETS = "/assets/"
# Vite puts a content hash in every asset name, so a browser may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"


def add_page(app: web.Application, directory: Path | None) -> None:
    if directory is None or not (directory / INDEX).is_file():
        app.router.add_get("/", _no_page)
        return
    index = directory / INDEX

    async def serve_index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                                                "Referrer-Policy": "no-referrer"})

    app.router.add_get("/", serve_index)
    if (directory / "assets").is_dir():
        # aiohttp sends a `.br` or `.gz` sibling (written by the build) to browsers that accept it
        app.router.add_static(ASSETS, directory / "assets", append_version=False)
        app.on_response_prepare.append(_cache_assets)


async def _cache_assets(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(ASSETS) and response.status == 200:
        response.headers["Cache-Control"] = IMMUTABLE
        response.headers["X-Content-Type-Options"] = "nosniff"


async def _no_page(request: web.Request) -> web.Response:
    return web.Response(text="Glimpse proxy is running. The page is not built here "
                             "(cd frontend && npm ci && npm run build).\n", content_type="text/plain")
