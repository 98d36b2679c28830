"""Prometheus metrics, named as in docs/architecture.md. Labels are bounded: route templates, status codes,
model names and fixed outcome words, never ids or raw paths.

Every labelled family is given its known label values at start (`Metrics.initialise`): a series that first
appears already holding its first increments is invisible to `rate()`, so the first errors would never count."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

TTFT_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
IMAGE_BYTES_BUCKETS = tuple(2.0**n for n in range(12, 25))  # 4 KiB … 16 MiB

CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_MODEL_LABELS = 32

# The label values each family can take, made at start. `UpstreamError.outcome` words (errors.py, chat/service.py)
# and the calls' own endings (ok, cancelled, shutdown): tests/proxy/observability/test_metrics_initialised.py
# checks every one is listed.
UPSTREAM_OUTCOMES = ("ok", "cancelled", "dropped", "shutdown", "timeout", "rate_limited", "rejected",
                     "unsupported", "error")
FAILOVER_OUTCOMES = ("error", "timeout", "rate_limited", "unsupported")  # the outcomes that are the upstream's fault
UPLOAD_OUTCOMES = ("stored", "rejected", "failed")
STORE_OPS = ("add_image", "mark_ready", "remove_image", "take_turn", "rate_limit")
QUOTA_SCOPES = ("session", "global")
CONNECTION_REFUSALS = ("too_many_connections", "too_many_from_address", "no_request", "header_timeout", "body_timeout")
DECODE_REFUSALS = ("queue_full", "timed_out")
TOKEN_KINDS = ("prompt", "completion")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("glimpse_requests", "HTTP requests by route template and status.",
                                ["route", "status"], registry=r)
        self.request_duration = Histogram("glimpse_request_duration_seconds", "Time to the end of the response.",
                                          ["route"], buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("glimpse_time_to_first_token_seconds",
                              "From the request's arrival to the first streamed chunk written to the caller.",
                              ["model"], buckets=TTFT_BUCKETS, registry=r)
        self.upstream_duration = Histogram("glimpse_upstream_duration_seconds", "Upstream call, start to end.",
                                           ["model", "outcome", "upstream"], buckets=DURATION_BUCKETS, registry=r)
        self.upstream_calls = Counter("glimpse_upstream_calls",
                                      "Upstream calls by upstream and how they ended (every one tried, failovers "
                                      "included).", ["upstream", "outcome"], registry=r)
        self.failovers = Counter("glimpse_upstream_failovers",
                                 "Turns moved to the next upstream before their first token, by the upstream that "
                                 "failed and how.", ["upstream", "outcome"], registry=r)
        self.breaker_open = Gauge("glimpse_upstream_breaker_open",
                                  "1 while the upstream's circuit breaker is open (skipped), else 0.",
                                  ["upstream"], registry=r)
        self.active_streams = Gauge("glimpse_active_streams", "Streaming completions being relayed now.",
                                    registry=r)
        self.stream_clock = StreamClock()
        r.register(self.stream_clock)
        self.tokens = Counter("glimpse_tokens", "Tokens reported by the upstream's usage.", ["model", "kind"],
                              registry=r)
        self.images_uploaded = Counter("glimpse_images_uploaded", "Image uploads by outcome.", ["outcome"],
                                       registry=r)
        self.image_bytes = Histogram("glimpse_image_bytes", "Size of stored (normalised) images.",
                                     buckets=IMAGE_BYTES_BUCKETS, registry=r)
        self.images_injected = Counter("glimpse_images_injected", "Images put into an upstream request.",
                                       ["policy"], registry=r)
        self.store_errors = Counter("glimpse_store_errors", "Conversation store failures by operation.", ["op"],
                                    registry=r)
        self.unbound_turns = Counter("glimpse_unbound_turns",
                                     "Chat turns naming a conversation without its session key: answered without "
                                     "its images.", registry=r)
        self.rate_limited = Counter("glimpse_rate_limited", "Calls refused by a rate limit (429), by route.",
                                    ["route"], registry=r)
        self.quota_refusals = Counter("glimpse_quota_refusals",
                                      "Uploads refused by a storage quota: scope=session (429) or global (507).",
                                      ["scope"], registry=r)
        self.stored_image_bytes = Gauge("glimpse_stored_image_bytes",
                                        "Bytes of images in the image storage, as this replica counts them.",
                                        registry=r)
        self.open_connections = Gauge("glimpse_open_connections", "Client connections open now.", registry=r)
        self.connections_refused = Counter("glimpse_connections_refused",
                                           "Client connections refused or closed by the server, by reason: "
                                           "too_many_connections, too_many_from_address, no_request, header_timeout, "
                                           "body_timeout.",
                                           ["reason"], registry=r)
        self.image_decodes_refused = Counter("glimpse_image_decodes_refused",
                                             "Uploads refused (503) for want of image decode memory, by reason: "
                                             "queue_full, timed_out.", ["reason"], registry=r)
        # upload bodies (issue 30): limits/bodies.py
        self.upload_body_bytes = Gauge("glimpse_upload_body_bytes",
                                       "Bytes reserved by request bodies (uploads and chat turns) being read now "
                                       "(GLIMPSE_UPLOAD_BODY_BUDGET_BYTES is the most).", registry=r)
        self.upload_bodies_refused = Counter("glimpse_upload_bodies_refused",
                                             "Uploads refused (503 uploads_busy) because the upload bodies being "
                                             "read held the whole budget.", registry=r)
        self.images_deleted = Counter("glimpse_images_deleted",
                                      "Images the page deleted from their conversation (and from storage).",
                                      registry=r)
        # turn memory (conversation/payload_memory.py, the data: URL cache of conversation/injection.py)
        self.turn_payload_bytes = Gauge("glimpse_turn_payload_bytes",
                                        "Bytes reserved now by turns sending pictures inline upstream, out of "
                                        "GLIMPSE_TURN_PAYLOAD_MEMORY_BYTES.", registry=r)
        self.turn_payloads_refused = Counter("glimpse_turn_payloads_refused",
                                             "Turns answered 503 (turn_memory_busy) for want of payload memory.",
                                             registry=r)
        self.data_url_cache_bytes = Gauge("glimpse_data_url_cache_bytes",
                                          "Bytes of pictures cached as data: URLs for the next turns.", registry=r)
        self.memory_limit = Gauge("glimpse_memory_limit_bytes",
                                  "The memory this replica may use: its cgroup's limit, else the one its image "
                                  "memory settings need (sizing.py). Compare with glimpse_process_resident_memory_"
                                  "bytes.", registry=r)
        # glimpse_process_*: prefixed, so that they never mix with another job's process_* series
        ProcessCollector(namespace="glimpse", registry=r)

        self._models: set[str] = set()

    def initialise(self, *, routes: Iterable[str], statuses: Iterable[int],
                   upstreams: Mapping[str, Callable[[], float]], models: Iterable[tuple[str, str]], policy: str,
                   rate_limited_routes: Iterable[str], memory_limit_bytes: int) -> None:
        """Make every series whose label values are known at start, at 0. `statuses`: every status a route
        answers; `upstreams`: each upstream's name and a function saying whether its breaker is open now (1) or not
        (0); `models`: (upstream, model) for the upstreams with a fixed model (the models callers name appear on
        use)."""
        answered = sorted(statuses)
        for route in routes:
            self.request_duration.labels(route)
            for status in answered:
                self.requests.labels(route, str(status))
        for name, is_open in upstreams.items():
            self.breaker_open.labels(name).set_function(is_open)
            for outcome in UPSTREAM_OUTCOMES:
                self.upstream_calls.labels(name, outcome)
            for outcome in FAILOVER_OUTCOMES:
                self.failovers.labels(name, outcome)
        for upstream, model in models:
            model = self.model_label(model)
            self.ttft.labels(model)
            self.upstream_duration.labels(model, "ok", upstream)
            for kind in TOKEN_KINDS:
                self.tokens.labels(model, kind)
        for family, values in ((self.images_uploaded, UPLOAD_OUTCOMES), (self.store_errors, STORE_OPS),
                               (self.quota_refusals, QUOTA_SCOPES), (self.connections_refused, CONNECTION_REFUSALS),
                               (self.image_decodes_refused, DECODE_REFUSALS), (self.images_injected, (policy,)),
                               (self.rate_limited, tuple(rate_limited_routes))):
            for value in values:
                family.labels(value)
        self.memory_limit.set(memory_limit_bytes)

    def model_label(self, model: object) -> str:
        """Model names come from callers; past a small set they all count as `other`."""
        if not isinstance(model, str) or not model:
            return "unknown"
        if model in self._models:
            return model
        if len(self._models) < MAX_MODEL_LABELS and len(model) <= 64:
            self._models.add(model)
            return model
        return "other"

    def count_usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens.labels(model, "prompt").inc(prompt_tokens)
        self.tokens.labels(model, "completion").inc(completion_tokens)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StreamClock(Collector):
    """`glimpse_stream_seconds_total`: seconds spent relaying streams, the open ones counted up to the scrape.
    Its rate() is the mean number of concurrent streams over the window, which a scrape cannot miss the way it
    misses the `glimpse_active_streams` gauge's short peaks. O(1) per stream, nothing per chunk."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._finished = 0.0  # seconds of the streams that ended
        self._open = 0
        self._open_since = 0.0  # the sum of the open streams' start times

    def started(self) -> float:
        now = self._clock()
        self._open += 1
        self._open_since += now
        return now

    def ended(self, started: float) -> None:
        self._open -= 1
        self._open_since = self._open_since - started if self._open else 0.0  # no rounding drift left over
        self._finished += self._clock() - started

    def seconds(self) -> float:
        return self._finished + self._open * self._clock() - self._open_since

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("glimpse_stream_seconds", "Seconds spent relaying streams (open ones up to now): "
                                  "its rate is the mean number of concurrent streams.", value=self.seconds())
