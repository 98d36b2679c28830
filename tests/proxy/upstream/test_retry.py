"""`glimpse.upstream.retry` against the installed `openai` SDK, the SDK being the oracle and observed from outside:
a property-based differential test gives a real `openai.AsyncOpenAI` (over an `httpx2.MockTransport`) and `retry.py`
the same upstream answers, and compares how many requests each sends and how long each sleeps between them; named
cases then state each rule once, citing the line of the SDK it follows (openai 3.63.0, `openai/_base_client.py`).

No private part of the SDK is used: it is driven through its public client, its sleeps caught by replacing
`anyio.sleep` (what it awaits between attempts), its jitter made reproducible by seeding the global `random`
generator (whose `random` it draws), its clock frozen by replacing `time.time` (which it reads dates against).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import anyio
import httpx2
import openai
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from glimpse.upstream.retry import retry_after_seconds, retry_delay, should_retry

NOW = 1_750_000_000.0  # the frozen clock: generated HTTP dates are this many seconds plus an offset

Answer = tuple[int, list[tuple[str, str]]] | None  # an upstream's status and headers; None: the connection failed


@dataclass
class Retries:
    requests: int
    sleeps: list[float]


class Sdk:
    """An `openai.AsyncOpenAI` whose every request gets the same answer: what it then does is the SDK's rule."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._client = openai.AsyncOpenAI(
            api_key="sk-test", base_url="http://upstream.invalid/v1", max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self._answer_request)))
        self._answer: Answer = None
        self._requests = 0

    def _answer_request(self, request: httpx2.Request) -> httpx2.Response:
        self._requests += 1
        if self._answer is None:
            raise httpx2.ConnectError("Connection refused", request=request)
        status, headers = self._answer
        return httpx2.Response(status, headers=headers, json={"error": {"message": "No."}})

    def retries(self, answer: Answer, max_retries: int, seed: int) -> Retries:
        self._answer, self._requests, sleeps = answer, 0, []

        async def sleep(delay: float) -> None:
            sleeps.append(delay)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(anyio, "sleep", sleep)  # what `_sleep_for_retry` awaits (openai/_base_client.py:1901)
            random.seed(seed)  # the jitter is the global generator's `random()` (imported at _base_client.py:16)
            request = self._client.with_options(max_retries=max_retries).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
            with contextlib.suppress(openai.APIStatusError, openai.APIConnectionError):
                self._runner.run(request)
        assert len(sleeps) == self._requests - 1, "the SDK no longer waits through anyio.sleep: see _sleep_for_retry"
        return Retries(self._requests, sleeps)

    def close(self) -> None:
        self._runner.run(self._client.close())
        self._runner.close()


def glimpse_retries(answer: Answer, max_retries: int, seed: int) -> Retries:
    """retry.py's rules applied as glimpse/upstream/http.py's loop applies them, to the same answer every time: a
    connection failure is retried, a response when `should_retry`; retry number `attempt + 1` waits
    `retry_delay(attempt, headers)`. A model of the loop, not the loop: tests/proxy/upstream/test_http.py drives the
    loop itself over HTTP (retries before the first byte, `retry-after-ms` honoured)."""
    random.seed(seed)
    if answer is None:
        headers, retried = None, True
    else:
        headers = CIMultiDict(answer[1])  # what aiohttp's response.headers is
        retried = should_retry(answer[0], headers)
    sleeps = [retry_delay(attempt, headers) for attempt in range(max_retries)] if retried else []
    return Retries(1 + len(sleeps), sleeps)


@pytest.fixture(scope="module")
def sdk() -> Iterator[Sdk]:
    client = Sdk()
    yield client
    client.close()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: NOW)


def h(headers: Mapping[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(headers)


def http_date(offset: float, zone_minutes: int | None = None) -> str:
    """An HTTP date `offset` seconds from NOW, in GMT or written in the zone `zone_minutes` east of it."""
    if zone_minutes is None:
        return email.utils.formatdate(NOW + offset, usegmt=True)
    zone = datetime.timezone(datetime.timedelta(minutes=zone_minutes))
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(NOW + offset, zone))


# The generated answers: statuses the SDK retries and does not, and the three headers with well-formed, malformed,
# negative, fractional, huge, overflowing and boundary values and HTTP dates, in any letter case.

def spelled(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title()])


STATUSES = st.one_of(st.sampled_from([400, 404, 407, 408, 409, 410, 428, 429, 430, 499, 500, 501, 503, 599, 600]),
                     st.integers(300, 999))
NUMBERS = st.one_of(
    st.sampled_from(["0", "-0", "3", "1.5", ".5", "-4", "1_0", " 7 ", "99999999999", "1e400", "-1e400", "inf", "+inf",
                     "-inf", "Infinity", "+INFINITY", "nan", "NaN"]),
    st.sampled_from(["119.999", "120", "120.0", "120.000001", "121", "119999", "120000", "120001"]),  # the limit
    st.integers(-10**6, 10**6).map(str),
    st.integers(-10**400, 10**400).map(str),  # past a float's range: an overflow
    st.floats().map(repr))
DATES = st.builds(http_date, st.one_of(st.integers(-200, 200), st.integers(-10**9, 10**9)),
                  st.one_of(st.none(), st.integers(-24 * 60 + 1, 24 * 60 - 1)))
MALFORMED = st.one_of(
    st.sampled_from(["", "soon, maybe", "3s", "Wed, 21 Foo 2015 07:28:00 GMT", "Wed, 32 Oct 2015 25:61:00 GMT",
                     "Fri, 31 Dec 99999 23:59:59 GMT", "Fri, 31 Dec 9999 23:59:59 +9999"]),
    DATES.flatmap(lambda date: st.integers(0, len(date)).map(lambda end: date[:end])),  # a date cut short
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    headers = []
    if draw(st.booleans()):
        headers.append((draw(spelled("retry-after-ms")), draw(st.one_of(NUMBERS, MALFORMED))))
    if draw(st.booleans()):
        headers.append((draw(spelled("retry-after")), draw(st.one_of(NUMBERS, DATES, MALFORMED))))
    verdict = draw(st.one_of(st.none(), st.sampled_from(["true", "false", "TRUE", "True", "1", ""]), st.text(
        max_size=5, alphabet=st.characters(min_codepoint=32, max_codepoint=126))))
    if verdict is not None:
        headers.append((draw(spelled("x-should-retry")), verdict))
    return draw(STATUSES), headers


@settings(max_examples=300, deadline=None)
@example(answer=(500, []), max_retries=1, seed=0)  # the boundaries, always tried
@example(answer=(499, []), max_retries=1, seed=0)
@example(answer=(503, [("retry-after", "120")]), max_retries=1, seed=0)
@example(answer=(503, [("retry-after", "120.000001")]), max_retries=1, seed=0)
@example(answer=(503, [("retry-after-ms", "120000")]), max_retries=1, seed=0)
@example(answer=(503, [("retry-after", http_date(120, zone_minutes=-300))]), max_retries=1, seed=0)
@example(answer=(503, [("retry-after", http_date(121))]), max_retries=1, seed=0)
@example(answer=(503, [("retry-after", "+inf")]), max_retries=1, seed=0)
@given(answer=answers(), max_retries=st.integers(1, 8), seed=st.integers(0, 2**32))
def test_retries_as_the_sdk_does(sdk: Sdk, answer: Answer, max_retries: int, seed: int) -> None:
    """For any answer, as many requests as the SDK sends, and before each retry the SDK's wait, jitter drawn alike."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: NOW)
        expected = sdk.retries(answer, max_retries, seed)
        got = glimpse_retries(answer, max_retries, seed)
    assert got.requests == expected.requests
    assert got.sleeps == pytest.approx(expected.sleeps, rel=1e-12, abs=0)


@settings(max_examples=20, deadline=None)
@given(max_retries=st.integers(1, 8), seed=st.integers(0, 2**32))
def test_retries_a_failed_connection_as_the_sdk_does(sdk: Sdk, max_retries: int, seed: int) -> None:
    """No response at all: every retry taken, with the SDK's backoff."""
    expected = sdk.retries(None, max_retries, seed)
    got = glimpse_retries(None, max_retries, seed)
    assert got.requests == expected.requests == max_retries + 1
    assert got.sleeps == pytest.approx(expected.sleeps, rel=1e-12, abs=0)


# The rules, each once. Line numbers are openai 3.63.0's openai/_base_client.py.

@pytest.mark.parametrize(("status", "retried"), [
    (408, True), (409, True), (429, True), (500, True), (503, True), (599, True),
    (400, False), (401, False), (403, False), (404, False), (422, False)])
def test_which_statuses_are_retried(status: int, retried: bool) -> None:
    # :948-966: request timeout (408), lock timeout (409), rate limit (429) and every status from 500; no other.
    assert should_retry(status, h({})) is retried


def test_x_should_retry_overrides_the_status() -> None:
    # :938-946: `x-should-retry` spelled exactly `true` or `false` decides; any other spelling leaves it to the status.
    assert should_retry(400, h({"x-should-retry": "true"})) is True
    assert should_retry(503, h({"x-should-retry": "false"})) is False
    assert should_retry(400, h({"X-Should-Retry": "TRUE"})) is False
    assert should_retry(503, h({"x-should-retry": "False"})) is True


def test_a_server_delay_over_two_minutes_means_no_retry() -> None:
    # :928-936: a server delay over MAX_RETRY_AFTER_DELAY (120 s, openai/_constants.py:15) refuses any retry, even
    # one `x-should-retry: true` asks for; 120 s itself is waited.
    assert should_retry(503, h({"retry-after": "121"})) is False
    assert should_retry(503, h({"retry-after-ms": "120001"})) is False
    assert should_retry(503, h({"retry-after": "121", "x-should-retry": "true"})) is False
    assert should_retry(503, h({"retry-after": "120"})) is True


@pytest.mark.parametrize("infinity", ["inf", "+inf", " INF ", "Infinity", "+infinity"])
def test_an_overflowing_delay_is_excessive_but_infinity_is_ignored(infinity: str) -> None:
    # :872-876: a number too big for a float is an excessive delay (120 s + 1, so no retry); infinity spelled out is
    # read as infinity, which :913 and :929 ignore as not finite: the status decides, the wait is the backoff.
    assert retry_after_seconds(h({"retry-after": "1e400"})) == 121.0
    assert should_retry(503, h({"retry-after": "1" + "0" * 400})) is False
    assert should_retry(503, h({"retry-after": infinity})) is True
    assert 0.375 <= retry_delay(0, h({"retry-after": infinity})) <= 0.5


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after-ms": "150"}, 0.15),
    ({"Retry-After-Ms": "250"}, 0.25),
    ({"retry-after-ms": "150", "retry-after": "9999"}, 0.15),
    ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after": "-4"}, -4.0),
    ({"retry-after": "soon, maybe"}, None),
    ({}, None),
    (None, None),
], ids=["ms", "any case", "ms first", "unreadable ms skipped", "fractional s", "negative s", "unreadable", "none",
        "no response"])
def test_the_server_delay_read_from_the_headers(headers: dict[str, str] | None, seconds: float | None) -> None:
    # :863-877: `retry-after-ms` in milliseconds first, then `retry-after` in seconds, any float; one that is no
    # number is skipped.
    assert retry_after_seconds(None if headers is None else h(headers)) == seconds


@pytest.mark.usefixtures("frozen_clock")
def test_retry_after_as_an_http_date() -> None:
    # :879-890: else `retry-after` as an HTTP date, the seconds from now until then; a date that is none, None.
    assert retry_after_seconds(h({"retry-after": http_date(30)})) == 30.0
    assert retry_after_seconds(h({"retry-after": http_date(30, zone_minutes=120)})) == 30.0
    assert retry_after_seconds(h({"retry-after": http_date(-3600)})) == -3600.0
    assert retry_after_seconds(h({"retry-after": "Wed, 21 Foo 2015 07:28:00 GMT"})) is None
    assert should_retry(503, h({"retry-after": http_date(300)})) is False


@pytest.mark.parametrize("attempt", [0, 6])
@pytest.mark.usefixtures("frozen_clock")
def test_a_server_delay_up_to_two_minutes_is_the_wait(attempt: int) -> None:
    # :911-914: a server delay in (0, 120] s is the wait, whatever the attempt, without jitter.
    assert retry_delay(attempt, h({"retry-after": "3"})) == 3.0
    assert retry_delay(attempt, h({"retry-after": "120"})) == 120.0
    assert retry_delay(attempt, h({"retry-after-ms": "150"})) == 0.15
    assert retry_delay(attempt, h({"retry-after": http_date(30)})) == 30.0


@pytest.mark.parametrize("headers", [
    None, {}, {"retry-after": "0"}, {"retry-after": "-4"}, {"retry-after": "nan"}, {"retry-after": "300"}],
    ids=["no response", "no delay", "zero", "negative", "nan", "over two minutes"])
def test_otherwise_the_backoff_doubles_to_eight_seconds_less_up_to_a_quarter(
        monkeypatch: pytest.MonkeyPatch, headers: dict[str, str] | None) -> None:
    # :916-925: INITIAL_RETRY_DELAY (0.5 s) doubling per retry up to MAX_RETRY_DELAY (8 s, openai/_constants.py:13-14),
    # times 1 - 0.25 * random(): a random 0 to 25 % less. (A delay over two minutes gets here only in retry.py: the
    # SDK refuses that retry at :929 before computing a wait, so the differential test cannot see this case.)
    answer = None if headers is None else h(headers)
    monkeypatch.setattr(random, "random", lambda: 0.0)
    assert [retry_delay(attempt, answer) for attempt in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    monkeypatch.setattr(random, "random", lambda: 1.0)  # the bound random() approaches
    assert [retry_delay(attempt, answer) for attempt in range(7)] == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0, 6.0]


def test_a_huge_attempt_number_waits_the_cap() -> None:
    # :916-917: the retry count is taken as at most 1000, so 2.0 ** attempt cannot overflow.
    assert 6.0 <= retry_delay(10**6, None) <= 8.0
