"""The proxy serves the page's production build at `/`: compressed, cacheable assets, a fresh index."""

from __future__ import annotations

import gzip
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Proxy, StartProxy

SCRIPT = b"console.log('glimpse');\n" * 200


def _build(directory: Path) -> Path:
    """A dist folder shaped like Vite's output, with the precompressed siblings the build writes."""
    assets = directory / "assets"
    assets.mkdir(parents=True)
    (directory / "index.html").write_text('<!doctype html><script type="module" src="/assets/index-abc123.js">'
                                          "</script>")
    (assets / "index-abc123.js").write_bytes(SCRIPT)
    (assets / "index-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (assets / "index-abc123.js.br").write_bytes(b"brotli-bytes-as-written-by-the-build")
    return directory


async def test_index_is_served_fresh_and_assets_for_good(start_proxy: StartProxy, tmp_path: Path) -> None:
    proxy = await start_proxy(static_dir=str(_build(tmp_path / "dist")))
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.get(proxy.url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert response.headers["Cache-Control"] == "no-cache"
            assert "/assets/index-abc123.js" in await response.text()
        async with http.get(proxy.url + "/assets/index-abc123.js", headers={"Accept-Encoding": "identity"}) as plain:
            assert plain.status == 200 and await plain.read() == SCRIPT
            assert plain.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert "Content-Encoding" not in plain.headers
        async with http.get(proxy.url + "/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"}) as zipped:
            assert zipped.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await zipped.read()) == SCRIPT
        async with http.get(proxy.url + "/assets/index-abc123.js", headers={"Accept-Encoding": "br, gzip"}) as br:
            assert br.headers["Content-Encoding"] == "br"
            assert await br.read() == b"brotli-bytes-as-written-by-the-build"
            assert br.headers["Content-Type"].startswith(("text/javascript", "application/javascript"))


@pytest.mark.parametrize(("base_url", "origins"), [
    ("https://api.elevenlabs.io", ["https://api.elevenlabs.io", "wss://api.elevenlabs.io", "wss://*.elevenlabs.io"]),
    ("http://127.0.0.1:9999", ["http://127.0.0.1:9999", "ws://127.0.0.1:9999"]),
])
async def test_the_page_has_a_content_security_policy(start_proxy: StartProxy, tmp_path: Path, base_url: str,
                                                      origins: list[str]) -> None:
    """The policy the browser test runs the real page and SDK under (a violation there fails it)."""
    proxy = await start_proxy(static_dir=str(_build(tmp_path / "dist")), elevenlabs_base_url=base_url)
    async with aiohttp.ClientSession() as http, http.get(proxy.url + "/") as response:
        policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
        assert response.headers["X-Frame-Options"] == "DENY"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"].split()
    assert all(origin in policy["connect-src"].split() for origin in origins)


async def test_json_answers_are_never_sniffed(proxy: Proxy) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/v1/session", "/v1/nowhere"):
            async with http.get(proxy.url + path) as response:
                assert response.content_type == "application/json"
                assert response.headers["X-Content-Type-Options"] == "nosniff", path


async def test_missing_assets_and_escapes_are_not_found(start_proxy: StartProxy, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside the build")
    proxy = await start_proxy(static_dir=str(_build(tmp_path / "dist")))
    async with aiohttp.ClientSession() as http:
        for path in ("/assets/nope.js", "/assets/../../secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"):
            async with http.get(proxy.url + path) as response:
                assert response.status in (403, 404), path
                assert "outside the build" not in await response.text()
                assert "Cache-Control" not in response.headers or "immutable" not in response.headers["Cache-Control"]


async def test_without_a_build_the_root_says_how_to_make_one(start_proxy: StartProxy, tmp_path: Path) -> None:
    proxy = await start_proxy(static_dir=str(tmp_path / "not-built"))
    async with aiohttp.ClientSession() as http, http.get(proxy.url + "/") as response:
        assert response.status == 200
        assert "npm run build" in await response.text()
