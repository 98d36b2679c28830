"""Settings from `GLIMPSE_*` environment variables, an optional config file, and embedded defaults.

Precedence: environment, then the `--config` file (TOML or JSON, same keys with or without the
`GLIMPSE_` prefix, any case), then the defaults below. Every problem is a `ConfigError` whose message
names the key, so `glimpse serve` can print one clear line instead of a traceback.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints
from urllib.parse import urlsplit

PREFIX = "GLIMPSE_"

Delivery = Literal["inline", "url"]
Policy = Literal["sticky", "once"]
Detail = Literal["auto", "low", "high"]
LogFormat = Literal["json", "text"]


class ConfigError(ValueError):
    """A setting is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str = ""
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    static_dir: str = ""
    shutdown_grace_seconds: float = 25.0

    upstream_base_url: str = "https://api.openai.com/v1"
    upstream_api_key: str = field(default="", repr=False)
    upstream_model: str = ""
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 60.0
    upstream_first_byte_timeout: float = 30.0
    upstream_max_retries: int = 2
    upstream_stream_usage: bool = True

    store_url: str = "memory://"
    storage_url: str = "file://./data/images"

    custom_llm_key: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)
    elevenlabs_api_key: str = field(default="", repr=False)
    elevenlabs_agent_id: str = ""
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    upload_token_ttl_seconds: int = 3600

    image_delivery: Delivery = "inline"
    image_policy: Policy = "sticky"
    image_detail: Detail = "auto"
    image_max_bytes: int = 10 * 1024 * 1024
    image_max_pixels: int = 50_000_000
    image_max_edge: int = 2048
    image_ttl_seconds: int = 3600
    image_url_ttl_seconds: int = 900
    images_per_conversation: int = 8
    sweep_interval_seconds: int = 60

    chat_max_body_bytes: int = 4 * 1024 * 1024
    chat_max_messages: int = 5000

    @property
    def store_scheme(self) -> str:
        return urlsplit(self.store_url).scheme

    @property
    def storage_scheme(self) -> str:
        return urlsplit(self.storage_url).scheme

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, config_file: str | os.PathLike[str] | None = None,
             **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        from_file = _read_config_file(Path(config_file)) if config_file else {}
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                raw = from_file.get(f.name)
            if raw is None and f.name == "upstream_api_key":
                raw = env.get("OPENAI_API_KEY")
            if raw is not None:
                values[f.name] = _coerce(f.name, raw, hints[f.name])
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.store_scheme not in ("memory", "redis", "rediss", "unix"):
            raise ConfigError(f"GLIMPSE_STORE_URL: unknown scheme {self.store_scheme!r} "
                              "(use memory:// or redis://host:port/db)")
        if self.storage_scheme not in ("file", "gs"):
            raise ConfigError(f"GLIMPSE_STORAGE_URL: unknown scheme {self.storage_scheme!r} "
                              "(use file:///path or gs://bucket/prefix)")
        if self.storage_scheme == "gs" and not urlsplit(self.storage_url).netloc:
            raise ConfigError("GLIMPSE_STORAGE_URL: gs:// needs a bucket name, e.g. gs://my-bucket/glimpse")
        if not 0 < self.port < 65536:
            raise ConfigError(f"GLIMPSE_PORT: {self.port} is not a TCP port")
        for name in ("image_max_bytes", "image_max_pixels", "image_max_edge", "image_ttl_seconds",
                     "image_url_ttl_seconds", "upload_token_ttl_seconds", "chat_max_body_bytes",
                     "chat_max_messages", "images_per_conversation", "sweep_interval_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{PREFIX}{name.upper()}: must be positive")
        if min(self.upstream_connect_timeout, self.upstream_read_timeout, self.upstream_first_byte_timeout) <= 0:
            raise ConfigError("GLIMPSE_UPSTREAM_*_TIMEOUT: timeouts must be positive")
        if self.upstream_max_retries < 0:
            raise ConfigError("GLIMPSE_UPSTREAM_MAX_RETRIES: must be zero or more")
        if self.public_base_url and urlsplit(self.public_base_url).scheme not in ("http", "https"):
            raise ConfigError("GLIMPSE_PUBLIC_BASE_URL: must start with http:// or https://")
        upstream = urlsplit(self.upstream_base_url)
        if upstream.scheme not in ("http", "https") or not upstream.netloc:
            raise ConfigError("GLIMPSE_UPSTREAM_BASE_URL: must be an http(s) URL such as https://api.openai.com/v1")


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") \
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: must hold a table of settings")
    known = {f.name for f in fields(Settings)}
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key.lower().removeprefix(PREFIX.lower())
        if name not in known:
            raise ConfigError(f"--config {path}: unknown setting {key!r}")
        result[name] = value
    return result


def _coerce(name: str, raw: Any, hint: Any) -> Any:
    label = PREFIX + name.upper()
    choices = get_args(hint) if getattr(hint, "__origin__", None) is Literal else ()
    try:
        if choices:
            value = str(raw).strip().lower()
            if value not in choices:
                raise ConfigError(f"{label}: {raw!r} is not one of {', '.join(choices)}")
            return value
        if hint is bool:
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint == tuple[str, ...]:
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(item.strip() for item in items if str(item).strip())
        return str(raw)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{label}: {raw!r} is not a valid {getattr(hint, '__name__', hint)}") from None
