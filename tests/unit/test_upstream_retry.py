"""`glimpse.upstream.retry` against the installed `openai` SDK's own retry rules, the SDK being the oracle."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest
from multidict import CIMultiDict
from openai import _constants as constants
from openai._models import FinalRequestOptions

from glimpse.upstream import retry
from glimpse.upstream.retry import retry_after_seconds, retry_delay, should_retry

STATUSES = [200, 400, 401, 404, 408, 409, 422, 429, 500, 502, 503, 504]
HEADERS: dict[str, dict[str, str]] = {
    "none": {},
    "should-retry true": {"x-should-retry": "true"},
    "should-retry false": {"x-should-retry": "false"},
    "should-retry other": {"x-should-retry": "TRUE"},
    "seconds": {"retry-after": "3"},
    "zero": {"retry-after": "0"},
    "negative": {"retry-after": "-4"},
    "float": {"retry-after": "1.5"},
    "limit": {"retry-after": "120"},
    "over the limit": {"retry-after": "121"},
    "date in 30 s": {"retry-after": "@30"},
    "date in 300 s": {"retry-after": "@300"},
    "date past": {"retry-after": "@-3600"},
    "inf": {"retry-after": "inf"},
    "nan": {"retry-after": "nan"},
    "huge": {"retry-after": "99999999999"},
    "overflowing": {"retry-after": "1e400"},
    "garbage": {"retry-after": "soon, maybe"},
    "ms": {"retry-after-ms": "150"},
    "ms over seconds": {"retry-after-ms": "150", "retry-after": "9999"},
    "ms garbage, seconds": {"retry-after-ms": "x", "retry-after": "2"},
    "ms over the limit": {"retry-after-ms": "121000"},
    "mixed case": {"Retry-After-Ms": "250"},
    "true but long": {"x-should-retry": "true", "retry-after": "300"},
    "false and short": {"x-should-retry": "false", "retry-after": "1"},
}  # "@<seconds>": an HTTP date that many seconds from when the test runs
HEADER_IDS = list(HEADERS)


@pytest.fixture(scope="module")
def sdk() -> Iterator[openai.AsyncOpenAI]:
    yield openai.AsyncOpenAI(api_key="sk-x", base_url="http://127.0.0.1:9", max_retries=6)


def headers_for(name: str) -> dict[str, str]:
    return {key: email.utils.formatdate(time.time() + float(value[1:]), usegmt=True) if value[:1] == "@" else value
            for key, value in HEADERS[name].items()}


def ours(headers: dict[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(headers)  # what aiohttp's response.headers is


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("name", HEADER_IDS)
def test_should_retry_matches_the_sdk(sdk: openai.AsyncOpenAI, status: int, name: str) -> None:
    """Whether to retry a status with these headers: the SDK's `_should_retry` verdict."""
    headers = headers_for(name)
    expected = sdk._should_retry(httpx2.Response(status, headers=headers))
    assert should_retry(status, ours(headers)) is expected


@pytest.mark.parametrize("name", HEADER_IDS)
def test_retry_after_seconds_matches_the_sdk(sdk: openai.AsyncOpenAI, name: str) -> None:
    """The server's delay read from the headers: the SDK's `_parse_retry_after_header` value."""
    headers = headers_for(name)
    expected = sdk._parse_retry_after_header(httpx2.Headers(headers))
    got = retry_after_seconds(ours(headers))
    assert (got is None) is (expected is None)
    if expected is not None:
        assert got == pytest.approx(expected, abs=1.5, nan_ok=True)  # a date is read against the clock


@pytest.mark.parametrize(("name", "verdict"), [
    ("over the limit", False), ("huge", False), ("overflowing", False), ("ms over the limit", False),
    ("date in 300 s", False), ("true but long", False), ("limit", True), ("ms over seconds", True), ("inf", True)])
def test_a_delay_over_two_minutes_means_no_retry(name: str, verdict: bool) -> None:
    """A server delay over 120 s (finite, or an overflowing number) refuses even a 503; `inf` is ignored."""
    assert should_retry(503, ours(headers_for(name))) is verdict


@pytest.mark.parametrize("attempt", range(7))
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
@pytest.mark.parametrize("name", HEADER_IDS)
def test_retry_delay_matches_the_sdk(sdk: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch, name: str,
                                     draw: float, attempt: int) -> None:
    """Retry `attempt + 1` waits what the SDK's `_calculate_retry_timeout` waits, jitter drawn alike."""
    monkeypatch.setattr("glimpse.upstream.retry.random.random", lambda: draw)
    monkeypatch.setattr("openai._base_client.random", lambda: draw)
    headers = headers_for(name)
    options = FinalRequestOptions.construct(method="post", url="/chat/completions")
    expected = sdk._calculate_retry_timeout(sdk.max_retries - attempt, options, httpx2.Headers(headers))
    assert retry_delay(attempt, ours(headers)) == pytest.approx(expected, abs=1.5 if "date" in name else 1e-9)


@pytest.mark.parametrize("attempt", range(7))
@pytest.mark.parametrize("name", ["none", "zero", "negative", "inf", "nan", "garbage", "over the limit", "huge"])
def test_backoff_is_the_capped_doubling_less_up_to_a_quarter(monkeypatch: pytest.MonkeyPatch, name: str,
                                                            attempt: int) -> None:
    """Without a usable server delay: min(0.5 * 2**attempt, 8) at draw 0, three quarters of it at draw 1."""
    backoff = min(0.5 * 2**attempt, 8.0)
    monkeypatch.setattr("glimpse.upstream.retry.random.random", lambda: 0.0)
    assert retry_delay(attempt, ours(headers_for(name))) == backoff
    monkeypatch.setattr("glimpse.upstream.retry.random.random", lambda: 1.0)
    assert retry_delay(attempt, ours(headers_for(name))) == 0.75 * backoff
    monkeypatch.undo()
    assert 0.75 * backoff <= retry_delay(attempt, ours(headers_for(name))) <= backoff


@pytest.mark.parametrize(("name", "delay"), [("seconds", 3.0), ("float", 1.5), ("limit", 120.0), ("ms", 0.15),
                                             ("ms over seconds", 0.15), ("ms garbage, seconds", 2.0),
                                             ("mixed case", 0.25), ("date in 30 s", 30.0)])
@pytest.mark.parametrize("attempt", [0, 6])
def test_a_server_delay_up_to_two_minutes_is_waited_as_given(name: str, delay: float, attempt: int) -> None:
    """A server delay in (0, 120] s is the wait, whatever the attempt, with no jitter."""
    assert retry_delay(attempt, ours(headers_for(name))) == pytest.approx(delay, abs=1.5 if "date" in name else 0)


def test_no_headers_at_all() -> None:
    """No response (a connection failure) has no server delay: plain backoff."""
    assert retry_after_seconds(None) is None
    assert 0.375 <= retry_delay(0, None) <= 0.5


def test_constants_are_the_sdks() -> None:
    """The delays and the two-minute limit are the SDK's constants."""
    assert (retry.INITIAL_RETRY_DELAY, retry.MAX_RETRY_DELAY, retry.MAX_RETRY_AFTER_DELAY) == (
        constants.INITIAL_RETRY_DELAY, constants.MAX_RETRY_DELAY, constants.MAX_RETRY_AFTER_DELAY)
