"""Prometheus metrics, named as in docs/architecture.md. Labels are bounded: route templates, status codes,
model names and fixed outcome words, never ids or raw paths."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

TTFT_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
IMAGE_BYTES_BUCKETS = tuple(2.0**n for n in range(12, 25))  # 4 KiB … 16 MiB

CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_MODEL_LABELS = 32


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
        self.failovers = Counter("glimpse_upstream_failovers",
                                 "Turns moved to the next upstream before their first token, by the upstream that "
                                 "failed and how.", ["upstream", "outcome"], registry=r)
        self.active_streams = Gauge("glimpse_active_streams", "Streaming completions being relayed now.",
                                    registry=r)
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
                                           "too_many_connections, no_request, header_timeout, body_timeout.",
                                           ["reason"], registry=r)
        self.image_decodes_refused = Counter("glimpse_image_decodes_refused",
                                             "Uploads refused (503) for want of image decode memory, by reason: "
                                             "queue_full, timed_out.", ["reason"], registry=r)
        self.images_deleted = Counter("glimpse_images_deleted",
                                      "Images the page deleted from their conversation (and from storage).",
                                      registry=r)

        self._models: set[str] = set()

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
