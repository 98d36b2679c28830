"""CORS answers only the configured origins."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartProxy

PAGE = "https://voice.example.com"


async def test_cors_only_for_configured_origins(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(cors_origins=(PAGE,))
    preflight = {"Origin": PAGE, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "X-Upload-Token"}
    async with http.options(proxy.v1 + "/images", headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == PAGE
        assert "X-Upload-Token" in response.headers["Access-Control-Allow-Headers"]
    async with http.get(proxy.v1 + "/session", headers={"Origin": PAGE}) as response:
        assert response.headers["Access-Control-Allow-Origin"] == PAGE
        assert "Origin" in response.headers.getall("Vary")
    evil = {**preflight, "Origin": "https://evil.example"}
    async with http.options(proxy.v1 + "/images", headers=evil) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    async with http.get(proxy.v1 + "/session", headers={"Origin": "https://evil.example"}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_no_cors_by_default(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy()
    async with http.get(proxy.v1 + "/session", headers={"Origin": PAGE}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
