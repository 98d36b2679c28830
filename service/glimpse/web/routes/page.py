"""The page (the build of frontend/) at `/`, when it exists."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

INDEX = "index.html"
ASSETS = "/assets/"
# Vite puts a content hash in every asset name, so a browser may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"


def content_security_policy(elevenlabs_base_url: str) -> str:
    """What the page may load and reach: itself, and the ElevenLabs conversation endpoints (the WebSocket named in
    the signed URL, LiveKit for WebRTC), never a frame around it. The ElevenLabs SDK loads its audio worklets
    from blob: URLs and libsamplerate compiles WebAssembly; thumbnails are blob: URLs."""
    api = urlsplit(elevenlabs_base_url)
    socket_scheme = "wss" if api.scheme == "https" else "ws"
    voice = [f"{api.scheme}://{api.netloc}", f"{socket_scheme}://{api.netloc}"]
    if (api.hostname or "").endswith("elevenlabs.io"):  # regional API hosts and livekit.rtc.elevenlabs.io
        voice += ["https://*.elevenlabs.io", "wss://*.elevenlabs.io"]
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval' blob:",
        "worker-src 'self' blob:",
        f"connect-src 'self' {' '.join(voice)}",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def add_page(app: web.Application, directory: Path | None, elevenlabs_base_url: str) -> None:
    if directory is None or not (directory / INDEX).is_file():
        app.router.add_get("/", _no_page)
        return
    index = directory / INDEX
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Content-Security-Policy": content_security_policy(elevenlabs_base_url),
               "X-Frame-Options": "DENY"}  # frame-ancestors for browsers that predate it

    async def serve_index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers=headers)

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
