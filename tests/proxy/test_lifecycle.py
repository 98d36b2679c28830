"""Start-up and shutdown of the app's resources: each is closed even when another fails to close, and
spans still queued for export are flushed."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from glimpse.app import create_app
from glimpse.observability.tracing import Tracing
from glimpse.resources import UPSTREAMS
from glimpse.server import start_server
from tests.conftest import proxy_settings
from tests.fakes.openai_upstream import FakeOpenAI


async def served_one_request(upstream: FakeOpenAI, tmp_path: Any,
                             ) -> tuple[web.Application, web.AppRunner, InMemorySpanExporter]:
    """A running proxy that has answered one request, with tracing that exports only when shut down."""
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    app = create_app(proxy_settings(upstream, tmp_path), tracing=tracing)
    runner, port = await start_server(app, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/v1/session") as response:
        assert response.status == 200
    return app, runner, exporter


async def test_a_resource_failing_to_close_does_not_keep_the_others_open(upstream: FakeOpenAI, tmp_path: Any) -> None:
    app, runner, exporter = await served_one_request(upstream, tmp_path)
    upstream_pool = app[UPSTREAMS].primary.http

    async def broken_close() -> None:
        raise ConnectionError("the upstream pool failed to close")

    app[UPSTREAMS].close = broken_close  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await runner.cleanup()
    # Opened before the upstream, so closed after it: still closed, and tracing flushed its queue.
    assert [span.name for span in exporter.get_finished_spans()] == ["GET /v1/session"]
    assert not upstream_pool.closed  # the one that failed
    await upstream_pool.close()


async def test_queued_spans_are_exported_at_shutdown(upstream: FakeOpenAI, tmp_path: Any) -> None:
    _, runner, exporter = await served_one_request(upstream, tmp_path)
    assert exporter.get_finished_spans() == ()
    await runner.cleanup()
    assert [span.name for span in exporter.get_finished_spans()] == ["GET /v1/session"]
