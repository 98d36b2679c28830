"""Rate limits and quotas without a server: token-bucket arithmetic on an injected clock, who the caller is,
the storage quotas and how their refusals read."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glimpse.app import create_app
from glimpse.config import ConfigError, Settings
from glimpse.errors import RateLimited, SessionQuotaExceeded, StorageFull, Unavailable
from glimpse.limits.client_ip import ClientAddresses, parse_address, parse_networks
from glimpse.limits.in_flight import TurnsInFlight
from glimpse.limits.policy import CHAT, CONVERSATION, SESSION, UPLOAD, RateLimits
from glimpse.limits.quota import Quotas
from glimpse.limits.rate import MemoryRateLimiter, Rate, whole_seconds
from glimpse.observability.metrics import Metrics
from glimpse.web.errors import response_for, status_for
from glimpse.web.rate_limit import KIND_BY_ROUTE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_its_burst_then_one_token_per_interval() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(now=clock)
    rate = Rate(per_minute=60, burst=3)
    assert [limiter.take_now("k", rate) for _ in range(3)] == [0, 0, 0]
    assert limiter.take_now("k", rate) == pytest.approx(1.0)
    clock.now += 0.25
    assert limiter.take_now("k", rate) == pytest.approx(0.75)  # a refusal takes nothing
    clock.now += 0.75
    assert limiter.take_now("k", rate) == 0
    assert limiter.take_now("k", rate) == pytest.approx(1.0)
    clock.now += 10
    assert [limiter.take_now("k", rate) for _ in range(4)][:3] == [0, 0, 0]  # refilled to the burst, no more


def test_buckets_are_per_key() -> None:
    limiter = MemoryRateLimiter(now=Clock())
    rate = Rate(per_minute=10, burst=1)
    assert limiter.take_now("a", rate) == 0
    assert limiter.take_now("a", rate) == pytest.approx(6.0)
    assert limiter.take_now("b", rate) == 0


@given(st.integers(1, 600), st.integers(1, 50), st.lists(st.floats(0, 5), max_size=60))
def test_never_more_than_burst_plus_rate_times_elapsed(per_minute: int, burst: int, gaps: list[float]) -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(now=clock)
    rate = Rate(per_minute, burst)
    taken = 0
    for gap in gaps:
        clock.now += gap
        taken += limiter.take_now("k", rate) == 0
    assert taken <= burst + sum(gaps) * per_minute / 60 + 1e-9


def test_full_buckets_are_forgotten_and_memory_is_bounded() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(max_buckets=100, now=clock)
    rate = Rate(per_minute=60, burst=2)
    limiter.take_now("old", rate)
    clock.now += 1.0  # "old" is full again: the same as no bucket
    limiter.take_now("new", rate)
    assert len(limiter) == 1
    for n in range(10_000):  # 10,000 addresses within one second
        limiter.take_now(f"ip{n}", rate)
    assert len(limiter) == 100


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert whole_seconds(0.001) == 1
    assert whole_seconds(1.0) == 1
    assert whole_seconds(1.01) == 2


def test_a_rate_needs_positive_numbers() -> None:
    with pytest.raises(ValueError):
        Rate(0, 1)
    with pytest.raises(ValueError):
        Rate(1, 0)


LOOPBACK = ClientAddresses(parse_networks(["127.0.0.1/32"]))
CHAIN = ClientAddresses(parse_networks(["10.0.0.0/8", "127.0.0.1"]))


def test_the_peer_is_the_caller_without_trusted_proxies() -> None:
    nobody = ClientAddresses()
    assert nobody.key_of("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert LOOPBACK.key_of("198.51.100.4", ["203.0.113.9"]) == "198.51.100.4"


def test_a_trusted_peer_names_the_caller() -> None:
    assert LOOPBACK.key_of("127.0.0.1", ["203.0.113.9"]) == "203.0.113.9"
    # The client wrote the left entries itself: only the right-most untrusted one counts.
    assert LOOPBACK.key_of("127.0.0.1", ["1.1.1.1, 203.0.113.9"]) == "203.0.113.9"
    assert LOOPBACK.key_of("127.0.0.1", ["1.1.1.1", "203.0.113.9"]) == "203.0.113.9"  # repeated headers
    assert CHAIN.key_of("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3, 10.9.9.9"]) == "203.0.113.9"
    assert CHAIN.key_of("127.0.0.1", ["10.1.2.3"]) == "10.1.2.3"  # nothing but proxies: the furthest one
    assert LOOPBACK.key_of("127.0.0.1", []) == "127.0.0.1"


@pytest.mark.parametrize("header", ["not-an-ip", "", " , ", "203.0.113.9, garbage", "999.1.1.1", "203.0.113.9;x",
                                    "\x00", "a" * 10_000, ",".join(["10.0.0.1"] * 1000) + ", bogus"])
def test_a_malformed_header_leaves_the_peer_as_the_caller(header: str) -> None:
    assert CHAIN.key_of("127.0.0.1", [header]) == "127.0.0.1"


def test_a_long_chain_is_read_from_the_right_only() -> None:
    header = ", ".join(["garbage"] * 1000 + ["203.0.113.9"])
    assert LOOPBACK.key_of("127.0.0.1", [header]) == "203.0.113.9"


def test_address_forms() -> None:
    assert parse_address("203.0.113.9:4711") == ipaddress.ip_address("203.0.113.9")
    assert parse_address("[2001:db8::1]:443") == ipaddress.ip_address("2001:db8::1")
    assert parse_address("::ffff:203.0.113.9") == ipaddress.ip_address("203.0.113.9")
    assert parse_address("[2001:db8::1") == ipaddress.ip_address("2001:db8::1")
    assert parse_address("example.com") is None


def test_ipv6_callers_share_their_64() -> None:
    nobody = ClientAddresses()
    assert nobody.key_of("2001:db8:1:2::1") == nobody.key_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert nobody.key_of("2001:db8:1:3::1") != nobody.key_of("2001:db8:1:2::1")
    assert nobody.key_of(None) == nobody.key_of("") == "unknown"


def test_trusted_proxies_setting() -> None:
    settings = Settings.load(env={"GLIMPSE_TRUSTED_PROXIES": " 10.0.0.0/8, 127.0.0.1,10.1.2.3/16,, ::1 "})
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "10.1.0.0/16", "::1/128")
    with pytest.raises(ConfigError) as error:
        Settings.load(env={"GLIMPSE_TRUSTED_PROXIES": "10.0.0.0/8, secret-looking-value"})
    assert "GLIMPSE_TRUSTED_PROXIES" in str(error.value) and "secret-looking-value" not in str(error.value)


def test_default_limits() -> None:
    settings = Settings.load(env={})
    assert (settings.session_rate_per_minute, settings.upload_rate_per_minute, settings.chat_rate_per_minute) == (
        10, 30, 600)
    assert settings.session_storage_quota_bytes == 40 * 2**20 and settings.storage_quota_bytes == 2 * 2**30
    # No proxy is trusted unless configured: every caller is its peer, whatever X-Forwarded-For it sends.
    assert settings.trusted_proxies == ()
    nobody = ClientAddresses(parse_networks(settings.trusted_proxies))
    assert nobody.key_of("10.42.0.7", ["203.0.113.9"]) == "10.42.0.7"
    private = Settings.load(env={"GLIMPSE_TRUSTED_PROXIES": "10.0.0.0/8,::1"})  # as the chart and operator set it
    trusted = ClientAddresses(parse_networks(private.trusted_proxies))
    assert trusted.key_of("10.42.0.7", ["203.0.113.9"]) == trusted.key_of("::1", ["203.0.113.9"]) == "203.0.113.9"
    assert trusted.key_of("198.51.100.4", ["203.0.113.9"]) == "198.51.100.4"
    limits = RateLimits.from_settings(settings, MemoryRateLimiter(), Metrics())
    assert all(limits.limits(kind) for kind in (SESSION, UPLOAD, CHAT))
    off = RateLimits.from_settings(Settings.load(env={"GLIMPSE_CHAT_RATE_PER_MINUTE": "0"}), MemoryRateLimiter(),
                                   Metrics())
    assert not off.limits(CHAT) and off.limits(SESSION)


async def test_a_refusal_is_counted_by_route_and_says_when_to_retry() -> None:
    metrics = Metrics()
    limits = RateLimits(MemoryRateLimiter(), {SESSION: Rate(10, 1)}, ClientAddresses(), metrics)
    await limits.check(SESSION, "/v1/session", "198.51.100.4")
    await limits.check(CHAT, "/v1/chat/completions", "198.51.100.4")  # not limited
    with pytest.raises(RateLimited) as refused:
        await limits.check(SESSION, "/v1/session", "198.51.100.4")
    assert refused.value.retry_after == "6"
    response = response_for(refused.value)
    assert response.status == 429 and response.headers["Retry-After"] == "6"
    assert metrics.registry.get_sample_value("glimpse_rate_limited_total", {"route": "/v1/session"}) == 1


def quotas(metrics: Metrics, stored: list[int], *, session: int = 1000, storage: int = 5000) -> Quotas:
    return Quotas(metrics, session_bytes=session, storage_bytes=storage, stored=lambda: stored[0],
                  retry_after_seconds=60)


def test_session_quota() -> None:
    metrics = Metrics()
    quota = quotas(metrics, [0])
    quota.check(999)  # room for at least a byte: decode and see
    quota.check(600, 400)
    with pytest.raises(SessionQuotaExceeded) as refused:
        quota.check(1000)  # full: refused before the decode
    with pytest.raises(SessionQuotaExceeded):
        quota.check(600, 401)
    assert status_for(refused.value) == 429 and refused.value.retry_after is None
    body = json.loads(response_for(refused.value).text or "")
    assert body["error"]["type"] == "insufficient_quota" and body["error"]["code"] == "session_quota_exceeded"
    assert metrics.registry.get_sample_value("glimpse_quota_refusals_total", {"scope": "session"}) == 2


def test_storage_quota_counts_what_is_being_written() -> None:
    metrics = Metrics()
    stored = [4000]
    quota = quotas(metrics, stored)
    with quota.reserve(0, 600):
        assert quota.used == 4600
        with pytest.raises(StorageFull) as refused:
            quota.check(0, 401)  # another upload, while the first is written
        quota.check(0, 400)
        stored[0] += 600  # the storage counts it once written
    assert quota.used == 4600
    with pytest.raises(StorageFull):
        quota.check(0, 401)
    stored[0] = 5000
    with pytest.raises(StorageFull):
        quota.check(0)  # full: refused before the decode
    assert status_for(refused.value) == 507 and refused.value.retry_after == "60"
    assert response_for(refused.value).headers["Retry-After"] == "60"
    assert metrics.registry.get_sample_value("glimpse_quota_refusals_total", {"scope": "global"}) == 3


def test_no_quota_when_zero() -> None:
    quota = Quotas(Metrics(), session_bytes=0, storage_bytes=0, stored=lambda: 10**15, retry_after_seconds=60)
    quota.check(10**15, 10**9)


def test_the_limited_routes_exist() -> None:
    app = create_app(Settings.load(env={}))
    routes = {resource.canonical for resource in app.router.resources()}
    assert set(KIND_BY_ROUTE) <= routes, set(KIND_BY_ROUTE) - routes


async def test_keyed_turns_are_limited_per_conversation_not_per_address() -> None:
    metrics = Metrics()
    limits = RateLimits(MemoryRateLimiter(), {CHAT: Rate(60, 1), CONVERSATION: Rate(60, 2)}, ClientAddresses(),
                        metrics, "k3y")
    assert limits.keyed("Bearer k3y") and not limits.keyed("Bearer nope") and not limits.keyed(None)
    for _ in range(5):  # other conversations, the same address: never refused
        await limits.check_conversation("/v1/chat/completions", "Bearer k3y", f"c{_}")
    await limits.check_conversation("/v1/chat/completions", "Bearer k3y", "c0")
    with pytest.raises(RateLimited) as refused:
        await limits.check_conversation("/v1/responses", "Bearer k3y", "c0")
    assert refused.value.retry_after == "1" and "in this conversation" in str(refused.value)
    assert metrics.registry.get_sample_value("glimpse_rate_limited_total", {"route": "/v1/responses"}) == 1
    for _ in range(3):  # not keyed: the per-address limit applies (in the middleware), not this one
        await limits.check_conversation("/v1/chat/completions", "Bearer nope", "c0")
    await limits.check_conversation("/v1/chat/completions", "Bearer k3y", None)  # no conversation: no bucket
    unkeyed = RateLimits(MemoryRateLimiter(), {CONVERSATION: Rate(60, 1)}, ClientAddresses(), metrics)
    assert not unkeyed.keyed("Bearer ")
    for _ in range(3):
        await unkeyed.check_conversation("/v1/chat/completions", "Bearer ", "c0")
    settings = Settings.load(env={"GLIMPSE_CUSTOM_LLM_KEY": "k3y"})
    assert (settings.conversation_rate_per_minute, settings.conversation_rate_burst) == (60, 20)
    assert settings.chat_max_turns_in_flight == 1000
    assert RateLimits.from_settings(settings, MemoryRateLimiter(), metrics).keyed("Bearer k3y")


def test_turns_in_flight_are_capped() -> None:
    turns = TurnsInFlight(2)
    with turns.hold(), turns.hold():
        with pytest.raises(Unavailable) as refused, turns.hold():
            pass
        assert refused.value.code == "turns_busy" and refused.value.retry_after == "1"
        assert response_for(refused.value).status == 503
    assert turns.held == 0
    with turns.hold():
        assert turns.held == 1
