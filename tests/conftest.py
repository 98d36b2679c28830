"""Shared fixtures: the fake upstream and the real proxy, both on loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from glimpse.app import create_app
from glimpse.auth import Signer
from glimpse.config import Settings
from glimpse.conversation.store import ConversationStore
from glimpse.images.storage import ImageStorage
from glimpse.observability.metrics import Metrics
from glimpse.observability.tracing import Tracing
from glimpse.resources import CONVERSATIONS, IMAGE_STORAGE, METRICS, SIGNER
from glimpse.server import start_server
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.redis_server import RedisServer

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"


@dataclass
class Proxy:
    url: str
    app: web.Application
    runner: web.AppRunner

    @property
    def metrics(self) -> Metrics:
        return self.app[METRICS]

    @property
    def signer(self) -> Signer:
        return self.app[SIGNER]

    @property
    def storage(self) -> ImageStorage:
        return self.app[IMAGE_STORAGE]

    @property
    def store(self) -> ConversationStore:
        return self.app[CONVERSATIONS]

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    fake = await FakeGemini().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def proxy_settings(upstream: FakeOpenAI | None, tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": 8080,
        # A single-port run, scraped on the API's port (tests/metrics_scrape.py): the default 9090 would be one port
        # for every proxy a test starts. Tests of the metrics port give one (test_health_metrics.py).
        "metrics_port": 0,
        "upstream_base_url": upstream.base_url if upstream else "http://127.0.0.1:9/v1",
        "upstream_api_key": "sk-upstream-test-key", "upstream_max_retries": 0,
        "storage_url": f"file://{tmp_path}/images", "signing_secret": SIGNING_SECRET,
        # Every test calls from 127.0.0.1: rate limits are off unless a test is about them (tests/proxy/
        # reliability/test_quotas.py); the storage quotas keep their defaults.
        "session_rate_per_minute": 0, "upload_rate_per_minute": 0, "chat_rate_per_minute": 0,
        "conversation_rate_per_minute": 0,
    }
    values.update(overrides)
    return Settings.load(env={}, **values)


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def start_proxy(upstream: FakeOpenAI, tmp_path: Any) -> AsyncIterator[StartProxy]:
    runners: list[web.AppRunner] = []

    async def start(tracing: Tracing | None = None, **overrides: Any) -> Proxy:
        app = create_app(proxy_settings(upstream, tmp_path, **overrides), tracing=tracing)
        runner, port = await start_server(app, "127.0.0.1", 0)
        runners.append(runner)
        return Proxy(f"http://127.0.0.1:{port}", app, runner)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def proxy(start_proxy: StartProxy) -> Proxy:
    return await start_proxy()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture
async def elevenlabs() -> AsyncIterator[FakeElevenLabs]:
    fake = await FakeElevenLabs().start()
    yield fake
    await fake.stop()
