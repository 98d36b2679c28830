"""Settings from `GLIMPSE_*` environment variables, an optional config file, and embedded defaults.

Parsed and checked by pydantic-settings. Precedence: explicit overrides (command-line flags), the
environment, the `--config` file (TOML or JSON, the same keys with or without the `GLIMPSE_` prefix, any
case), `OPENAI_API_KEY` for the upstream key, then the defaults below. Every problem is a `ConfigError`
whose one-line message names the variable, so `glimpse serve` prints that instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from .sizing import (
    DATA_URL_CACHE_BYTES,
    DECODE_CONCURRENCY,
    DECODE_MEMORY_BYTES,
    DECODE_QUEUE,
    IMAGE_MAX_BYTES,
    TURN_PAYLOAD_MEMORY_BYTES,
    DecodeBudget,
    TurnMemoryBudget,
    upload_body_budget_bytes,
    upload_body_bytes,
)

UPLOAD_DEADLINE_BASE_SECONDS = 10.0  # an upload's deadline besides its bytes at the least bandwidth (issue 30)

PREFIX = "GLIMPSE_"

Delivery = Literal["inline", "url"]
Policy = Literal["sticky", "once"]
Detail = Literal["auto", "low", "high"]
LogFormat = Literal["json", "text"]

Provider = Literal["openai", "gemini", "openai-compatible", "demo"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]

Positive = Annotated[int, Field(gt=0)]
# The words a boolean takes everywhere (settings, form fields, annotations): pydantic's true/false, 1/0, yes/no,
# on/off, t/f, y/n; anything else is an error, not false.
BOOLEAN = TypeAdapter(bool)
MIN_SIGNING_SECRET_BYTES = 16  # HMAC-SHA256 keys shorter than this are guessable offline
Seconds = Annotated[float, Field(gt=0)]

DEFAULT_UPSTREAM_BASE_URL = "https://api.openai.com/v1"
# The built-in demo model (glimpse/demo/), the upstream when none is configured: its name, provider and model.
DEMO: Final = "demo"
DEMO_MODEL = "glimpse-demo"
# Where a demo target points until the demo model listens: resources.py sets its real loopback address at start.
DEMO_PLACEHOLDER_URL = "http://127.0.0.1/v1"


class ConfigError(ValueError):
    """A setting is missing, malformed or inconsistent."""


class UpstreamConfig(BaseModel):
    """One upstream LLM of `GLIMPSE_UPSTREAMS` (tried in order), or the one the `GLIMPSE_UPSTREAM_*` shorthand
    describes. `provider` empty: inferred from the base URL's host. `model` empty: the request's model (or
    GLIMPSE_UPSTREAM_MODEL); set: this upstream is always called with it (a fallback on another provider needs
    its own model). `api_key_env` names an environment variable holding the key (resolved at start). Provider
    `demo` (the built-in demo model) only ever comes from `Settings.upstream_targets`, never from the list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    base_url: str
    api_key: SecretStr = SecretStr("")
    api_key_env: str = ""
    provider: Provider | None = None
    model: str = ""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http_url(value, example="https://api.openai.com/v1")

    @model_validator(mode="after")
    def _key_from_environment(self) -> UpstreamConfig:
        if not self.api_key_env:
            return self
        if self.api_key.get_secret_value():
            raise ValueError(f"upstream {self.name!r}: set api_key or api_key_env, not both")
        environment = (_INPUTS.get() or _Inputs()).environment
        value = environment.get(self.api_key_env, "")
        if not value:
            raise ValueError(f"upstream {self.name!r}: the environment variable {self.api_key_env} is not set")
        return self.model_copy(update={"api_key": SecretStr(value)})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    # /metrics on its own port, which the Service exposes to Prometheus and the Ingress does not route to (the chart's
    # and the operator's 9090); 0: on `port`, beside the API, for a single-port run that nothing public reaches.
    metrics_port: int = Field(9090, ge=0, lt=65536)
    public_base_url: str = ""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    static_dir: str = ""
    shutdown_grace_seconds: float = Field(25.0, ge=0)

    upstream_base_url: str = DEFAULT_UPSTREAM_BASE_URL
    upstream_api_key: SecretStr = SecretStr("")
    upstream_model: str = ""
    upstream_connect_timeout: Seconds = 5.0
    upstream_read_timeout: Seconds = 60.0
    # How long an idle upstream connection is kept for the next turn: under the 5 s after which uvicorn-based servers
    # (vLLM, LiteLLM) close one, so a turn never races that close; more saves a new connection's handshake on turns
    # further apart, for an upstream known to keep idle connections open longer.
    upstream_keepalive_seconds: Seconds = 4.0
    upstream_first_byte_timeout: Seconds = 30.0
    upstream_max_retries: int = Field(2, ge=0)
    upstream_stream_usage: bool = True
    upstream_max_event_bytes: Positive = 1024 * 1024
    upstream_provider: Provider | None = None
    # Several upstreams, in order (JSON list of UpstreamConfig objects); empty: the GLIMPSE_UPSTREAM_* one.
    upstreams: tuple[UpstreamConfig, ...] = ()
    # No first token within this (from sending the request): the next upstream is tried, while the caller has
    # heard nothing yet. The last one may use the rest of GLIMPSE_UPSTREAM_FIRST_BYTE_TIMEOUT.
    first_token_timeout: Seconds = 3.0
    reasoning_effort: ReasoningEffort = "low"  # for reasoning models, unless the caller chose one
    upstream_breaker_failures: Positive = 3
    upstream_breaker_cooldown_seconds: Seconds = 30.0

    store_url: str = "memory://"
    storage_url: str = "file://./data/images"
    # s3:// storage at MinIO, R2 or another S3-compatible endpoint; empty: AWS's (credentials and region: the AWS chain)
    s3_endpoint_url: str = ""

    custom_llm_key: SecretStr = SecretStr("")
    signing_secret: SecretStr = SecretStr("")
    elevenlabs_api_key: SecretStr = SecretStr("")
    elevenlabs_agent_id: str = ""
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    upload_token_ttl_seconds: Positive = 3600
    # A chat turn reads a conversation's images only with its session key (`elevenlabs_extra_body.session_key`, from
    # GET /v1/session): a session id alone is not enough. Off only for pages older than the key.
    require_session_key: bool = True

    image_delivery: Delivery = "inline"
    image_policy: Policy = "sticky"
    image_detail: Detail = "auto"
    image_max_bytes: Positive = IMAGE_MAX_BYTES
    image_max_pixels: Positive = 50_000_000
    image_max_edge: Positive = 2048
    image_ttl_seconds: Positive = 3600
    image_url_ttl_seconds: Positive = 900
    images_per_conversation: Positive = 8
    sweep_interval_seconds: Positive = 60

    chat_max_body_bytes: Positive = 4 * 1024 * 1024
    # A chat request's whole body must arrive within this (ElevenLabs sends it at once), besides
    # GLIMPSE_BODY_TIMEOUT_SECONDS between bytes; else 408 request_body_timeout. While read it reserves its
    # Content-Length (or GLIMPSE_CHAT_MAX_BODY_BYTES) from GLIMPSE_UPLOAD_BODY_BUDGET_BYTES (review M1).
    chat_body_deadline_seconds: Seconds = 10.0
    chat_max_messages: Positive = 5000

    # Rate limits per client address (token buckets, in Redis when the store is; per_minute 0 = off) and storage
    # quotas (0 = off). X-Forwarded-For is believed only from GLIMPSE_TRUSTED_PROXIES (comma-separated CIDRs; empty:
    # from none, every caller is its peer). The chart and the operator set the private networks, where an in-cluster
    # ingress controller is: without it every caller behind the ingress would share the ingress's bucket.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    session_rate_per_minute: int = Field(10, ge=0)  # each GET /v1/session spends the ElevenLabs API key
    session_rate_burst: Positive = 5
    upload_rate_per_minute: int = Field(30, ge=0)
    upload_rate_burst: Positive = 10
    # ElevenLabs calls chat for all of an agent's users from a few addresses: this is per ElevenLabs address.
    chat_rate_per_minute: int = Field(600, ge=0)
    chat_rate_burst: Positive = 100
    # -- Turns with the custom-LLM key (issue 30): never limited per address (ElevenLabs calls for every user of an
    # agent from a few addresses), but per conversation (a person speaks a turn every few seconds; tool calls and
    # ElevenLabs' retries add a few), and all turns in flight are capped (past it: 503 with Retry-After).
    conversation_rate_per_minute: int = Field(60, ge=0)
    conversation_rate_burst: Positive = 20
    chat_max_turns_in_flight: Positive = 1000
    # -- end of the turn limits
    session_storage_quota_bytes: int = Field(40 * 1024 * 1024, ge=0)  # one conversation's images
    storage_quota_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=0)  # all stored images (this replica's count)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """After `_comma_separated`: each entry an address or network, normalised (10.1.2.3/8 → 10.0.0.0/8)."""
        networks = []
        for index, item in enumerate(value, 1):
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"entry {index} is not an IP address or CIDR such as 10.0.0.0/8") from None
        return tuple(networks)

    # Connection hygiene (web/connections.py); the keep-alive timeout is aiohttp's own.
    # open client connections; 0: half of what RLIMIT_NOFILE leaves, at most 10,000; always kept below the limit
    max_connections: int = Field(0, ge=0)
    # -- Per client address (issue 30): connections one peer may hold open; 0: min(cap / 16, 256). Not
    # applied to a trusted proxy's connections (GLIMPSE_TRUSTED_PROXIES): the ingress limits its callers in front.
    max_connections_per_address: int = Field(0, ge=0)
    # -- end of the per-address connection cap
    listen_backlog: Positive = 2048  # connections the kernel queues before accept (it caps this at somaxconn)
    keepalive_timeout_seconds: Seconds = 75.0  # between requests; keep above the ingress's (ingress-nginx: 60 s)
    header_timeout_seconds: Seconds = 10.0  # for a request head: from the connection's opening, or its first byte
    body_timeout_seconds: Seconds = 30.0  # a request body may pause this long between bytes, not longer

    # Image decode memory (images/decoding.py): sizing.decode_memory_bytes(self.decode_budget) is what the decodes may
    # hold; the defaults are sizing.py's, from which the operator sizes the pod.
    image_decode_memory_bytes: Positive = DECODE_MEMORY_BYTES  # for all running decodes; an image needing more: 413
    image_decode_concurrency: Positive = DECODE_CONCURRENCY  # decodes running at once at most (they are CPU-bound)
    image_decode_queue: int = Field(DECODE_QUEUE, ge=0)  # uploads waiting for decode memory at most; more: 503 at once
    image_decode_wait_seconds: Seconds = 10.0  # an upload waits this long for decode memory at most, then 503

    # --- issue 30, smaller points (h-small) ---
    # Models whose `<think>…</think>` reasoning in `content` is taken out before ElevenLabs speaks it
    # (upstream/think.py): comma-separated shell-style patterns, any case; empty: none. The default: the reasoning
    # models vLLM's and SGLang's reasoning parsers know to write these tags (DeepSeek-R1 and distills, QwQ, Qwen3,
    # MiniMax-M2).
    strip_think_models: Annotated[tuple[str, ...], NoDecode] = ("*deepseek-r1*", "*qwq*", "*qwen3*", "*minimax-m2*")

    @field_validator("strip_think_models", mode="before")
    @classmethod
    def _model_patterns(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple):
            return tuple(str(item).strip().lower() for item in items if str(item).strip())
        return value
    # Local-disk storage (file://): /readyz fails, naming the reason, while the disk has less free space than this
    # (one statvfs per probe); 0: not checked.
    storage_min_free_bytes: int = Field(64 * 1024 * 1024, ge=0)

    @model_validator(mode="after")
    def _metrics_port_of_its_own(self) -> Settings:
        if self.metrics_port == self.port:
            raise ValueError(f"GLIMPSE_METRICS_PORT is GLIMPSE_PORT ({self.port}): give /metrics another port, or 0 to "
                             "serve it on the API's port")
        return self
    # --- end issue 30 (h-small) ---

    # --- Upload bodies (issue 30; images/uploads.py, web/upload_form.py, limits/bodies.py) ---
    # Bytes all request bodies being read may hold together: an upload whose token checks out reserves its
    # Content-Length (or the most an upload may be) before its file is read, a chat request its Content-Length (or
    # GLIMPSE_CHAT_MAX_BODY_BYTES) before its body is read; past the budget, 503 with Retry-After.
    # 0: as many whole uploads as the decodes take at once (sizing.upload_body_budget_bytes); in the pod's limit.
    upload_body_budget_bytes: int = Field(0, ge=0)
    # An upload's whole body must arrive within this, besides GLIMPSE_BODY_TIMEOUT_SECONDS between bytes; else 408.
    # 0: 10 s plus the largest upload at GLIMPSE_UPLOAD_MIN_BYTES_PER_SECOND.
    upload_deadline_seconds: float = Field(0.0, ge=0)
    upload_min_bytes_per_second: Positive = 128 * 1024

    @property
    def upload_body_budget(self) -> int:
        """GLIMPSE_UPLOAD_BODY_BUDGET_BYTES, or its default derived from the decode settings."""
        return self.upload_body_budget_bytes or upload_body_budget_bytes(self.decode_budget)

    @property
    def upload_deadline(self) -> float:
        """GLIMPSE_UPLOAD_DEADLINE_SECONDS, or its default derived from the largest upload and the least bandwidth."""
        return self.upload_deadline_seconds or (
            UPLOAD_DEADLINE_BASE_SECONDS + upload_body_bytes(self.image_max_bytes) / self.upload_min_bytes_per_second)

    @model_validator(mode="after")
    def _upload_body_budget_fits_an_upload(self) -> Settings:
        if self.upload_body_budget_bytes and self.upload_body_budget_bytes < upload_body_bytes(self.image_max_bytes):
            raise ValueError(f"GLIMPSE_UPLOAD_BODY_BUDGET_BYTES must hold one whole upload: at least "
                             f"{upload_body_bytes(self.image_max_bytes)} bytes with this GLIMPSE_IMAGE_MAX_BYTES")
        return self
    # --- end upload bodies ---

    @property
    def decode_budget(self) -> DecodeBudget:
        """The four settings image decodes' memory follows, and with it the pod's memory limit (`sizing.py`)."""
        return DecodeBudget(self.image_decode_memory_bytes, self.image_decode_concurrency, self.image_decode_queue,
                            self.image_max_bytes)

    # Turn memory (conversation/payload_memory.py, conversation/injection.py): sizing.turn_memory_bytes(self.
    # turn_memory_budget) is what turns' pictures may hold; the defaults are sizing.py's, from which the pod is sized.
    turn_payload_memory_bytes: Positive = TURN_PAYLOAD_MEMORY_BYTES  # pictures in upstream requests being sent
    turn_payload_wait_seconds: Seconds = 5.0  # a turn waits this long for that memory at most, then 503
    image_data_url_cache_bytes: int = Field(DATA_URL_CACHE_BYTES, ge=0)  # data: URLs kept for the next turns

    @property
    def turn_memory_budget(self) -> TurnMemoryBudget:
        """The two settings turns' picture memory follows, and with it the pod's memory limit (`sizing.py`)."""
        return TurnMemoryBudget(self.turn_payload_memory_bytes, self.image_data_url_cache_bytes)

    @property
    def upstream_configured(self) -> bool:
        """Whether an upstream LLM is set at all: GLIMPSE_UPSTREAMS, an upstream key (or OPENAI_API_KEY), or a
        base URL other than OpenAI's. Without one the built-in demo model answers."""
        return bool(self.upstreams or self.upstream_api_key.get_secret_value()
                    or self.upstream_base_url != DEFAULT_UPSTREAM_BASE_URL)

    @property
    def upstream_targets(self) -> tuple[UpstreamConfig, ...]:
        """The upstreams in the order they are tried."""
        if self.upstreams:
            return self.upstreams
        if self.upstream_provider == DEMO or not self.upstream_configured:
            return (UpstreamConfig(name=DEMO, base_url=DEMO_PLACEHOLDER_URL, provider=DEMO, model=DEMO_MODEL),)
        return (UpstreamConfig(name="default", base_url=self.upstream_base_url, api_key=self.upstream_api_key,
                               provider=self.upstream_provider),)

    @property
    def demo_model(self) -> bool:
        """Whether the built-in demo model is the upstream (then it is the only one)."""
        return self.upstream_targets[0].provider == DEMO

    @property
    def store_scheme(self) -> str:
        return urlsplit(self.store_url).scheme

    @property
    def storage_scheme(self) -> str:
        return urlsplit(self.storage_url).scheme

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, config_file: str | os.PathLike[str] | None = None,
             **overrides: Any) -> Settings:
        """Settings from `env` (default: the process environment), `config_file` and `overrides`."""
        inputs = _Inputs(os.environ if env is None else env,
                         _read_config_file(Path(config_file)) if config_file else {})
        token = _INPUTS.set(inputs)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(describe(exc, PREFIX)) from None
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        finally:
            _INPUTS.reset(token)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        inputs = _INPUTS.get() or _Inputs()
        return (init_settings, _Environment(settings_cls, inputs.environment),
                _Values(settings_cls, inputs.config_file),
                _Values(settings_cls, {"upstream_api_key": inputs.environment["OPENAI_API_KEY"]}
                        if inputs.environment.get("OPENAI_API_KEY") else {}))

    @field_validator("upstreams")
    @classmethod
    def _distinct_names(cls, value: tuple[UpstreamConfig, ...]) -> tuple[UpstreamConfig, ...]:
        names = [upstream.name for upstream in value]
        if len(set(names)) != len(names):
            raise ValueError("each upstream needs its own name")
        if any(upstream.provider == DEMO for upstream in value):
            # a caller must never get measurements instead of an answer because a real upstream failed
            raise ValueError("the demo model is no fallback: choose it alone, with GLIMPSE_UPSTREAM_PROVIDER=demo")
        return value

    @field_validator("image_delivery", "image_policy", "image_detail", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple):
            return tuple(str(item).strip() for item in items if str(item).strip())
        return items

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("memory", "redis", "rediss", "unix"):
            raise ValueError(f"unknown scheme {scheme!r} (use memory:// or redis://host:port/db)")
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        url = urlsplit(value)
        if url.scheme not in ("file", "gs", "s3"):
            raise ValueError(f"unknown scheme {url.scheme!r} (use file:///path, gs://bucket/prefix or s3://bucket/prefix)")
        if url.scheme in ("gs", "s3") and not url.netloc:
            raise ValueError(f"{url.scheme}:// needs a bucket name, e.g. {url.scheme}://my-bucket/glimpse")
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _s3_endpoint_url(cls, value: str) -> str:
        url = urlsplit(value)
        if value and (url.scheme not in ("http", "https") or not url.netloc):
            raise ValueError("must be an http:// or https:// URL, e.g. http://minio.storage:9000")
        return value

    @field_validator("signing_secret")
    @classmethod
    def _long_enough_secret(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value().encode()) < MIN_SIGNING_SECRET_BYTES:
            raise ValueError(f"too short: use at least {MIN_SIGNING_SECRET_BYTES} random characters")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("upstream_base_url")
    @classmethod
    def _upstream_base_url(cls, value: str) -> str:
        return http_url(value, example="https://api.openai.com/v1")

    @field_validator("elevenlabs_base_url")
    @classmethod
    def _elevenlabs_base_url(cls, value: str) -> str:
        return http_url(value, example="https://api.elevenlabs.io")


def http_url(value: str, *, example: str) -> str:
    """`value` when it is an http(s) URL with a host; a ValueError pydantic reports against the setting."""
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"must be an http(s) URL such as {example}")
    return value


def describe(error: ValidationError, prefix: str = PREFIX) -> str:
    """One line naming each offending variable, e.g. `GLIMPSE_PORT: Input should be less than 65536`.
    Input values are left out: a wrong value may be a secret pasted into the wrong variable."""
    problems = []
    for problem in error.errors(include_input=False, include_url=False):
        name = str(problem["loc"][0]) if problem["loc"] else ""
        message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{prefix}{name.upper()}: {message}" if name else message)
    return "; ".join(problems)


@dataclass(frozen=True)
class _Inputs:
    environment: Mapping[str, str] = field(default_factory=lambda: os.environ)
    config_file: dict[str, Any] = field(default_factory=dict)


_INPUTS: ContextVar[_Inputs | None] = ContextVar("glimpse_settings_inputs", default=None)


class _Environment(EnvSettingsSource):
    """The `GLIMPSE_*` variables of a given mapping (the process environment unless a caller passes another), parsed
    as pydantic-settings parses the environment (complex values as JSON, names in any case). Only `get_field_value`,
    the documented hook a source answers a field's raw value from, is its own: it looks in `environment`."""

    def __init__(self, settings_cls: type[BaseSettings], environment: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._variables = {key.lower(): value for key, value in environment.items()}
        self.env_vars = self._variables  # what the source's other readers (nested delimiters) see: this mapping only

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The field's raw value (None when unset), the key it is given under, and False: no field here has an
        alias path, the only case where pydantic-settings calls a value complex before looking at its type."""
        return self._variables.get(f"{PREFIX}{field_name}".lower()), field_name, False


class _Values(PydanticBaseSettingsSource):
    """Values already keyed by field name (the config file, the OPENAI_API_KEY fallback)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror})") from None
    kind = "JSON" if path.suffix == ".json" else "TOML"
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError both are
        raise ConfigError(f"--config {path}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: must hold a table of settings")
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key.lower().removeprefix(PREFIX.lower())
        if name not in Settings.model_fields:
            raise ConfigError(f"--config {path}: unknown setting {key!r}")
        result[name] = value
    return result
