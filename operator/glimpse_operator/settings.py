"""The operator's settings, from `GLIMPSE_*` environment variables, parsed and checked by pydantic-settings.

Read once per process (`load_settings`), then handed to what needs them: the startup handler puts a
`Reconciler` built with them into kopf's `memo`; the render functions get the proxy image as an argument, and the
specs they render have the proxies' pod defaults merged in (pod_settings.py).
Every problem is a `ConfigError` whose one-line message names the variable, so `glimpse-operator` prints
that instead of a traceback.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from glimpse.config import PREFIX, ConfigError, describe, http_url

from .pod_settings import check as check_pod
from .spec import InvalidSpec
from .tracing import SAMPLERS

__all__ = ["ConfigError", "OperatorSettings", "ProxyNetworkPolicy", "ProxyTracing", "load_settings"]

DEFAULT_PROXY_IMAGE = "glimpse/proxy:0.1.0"
DEFAULT_ELEVENLABS_BASE_URL = "https://api.elevenlabs.io"


class ProxyNetworkPolicy(BaseModel):
    """GLIMPSE_PROXY_NETWORK_POLICY, JSON with a VoiceAgent's spec.networkPolicy keys (the chart's
    operator.proxyDefaults.networkPolicy): what every proxy's NetworkPolicy has unless its VoiceAgent says otherwise.
    Peers and rules are NetworkPolicy's own (networking.k8s.io/v1), checked by the API server when applied."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, extra="forbid")

    enabled: bool = True
    ingress_from: tuple[dict[str, Any], ...] = ()  # NetworkPolicyPeers reaching the API port (none: anyone)
    metrics_from: tuple[dict[str, Any], ...] = ()  # NetworkPolicyPeers scraping the metrics port (none: anyone)
    extra_egress: tuple[dict[str, Any], ...] = ()  # NetworkPolicyEgressRules added (OTLP, an HTTP proxy)

    def as_spec(self) -> dict[str, Any]:
        """As spec.networkPolicy writes it (camelCase, lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in self.model_dump(by_alias=True).items()}


SecretName = Field(default="", pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$",
                   max_length=253)
# OTEL_RESOURCE_ATTRIBUTES is key=value pairs joined by commas: neither may hold a comma or an equals sign
ATTRIBUTE_PART = r"^[^,=\s]+$"


class SecretKey(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, extra="forbid")

    name: str = SecretName  # empty: none
    key: str = Field(default="headers", pattern=r"^[-._a-zA-Z0-9]+$")


class ProxyTracing(BaseModel):
    """GLIMPSE_PROXY_TRACING, JSON (the chart's operator.proxyDefaults.tracing, the same keys as its proxy.tracing):
    where every proxy sends its traces (tracing.py). Without otlpEndpoint the proxies do not trace."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, extra="forbid")

    otlp_endpoint: str = ""  # the collector's OTLP/HTTP base URL, e.g. http://otel-collector.observability:4318
    headers_secret: SecretKey = SecretKey()  # OTEL_EXPORTER_OTLP_HEADERS from this Secret, in each proxy's namespace
    service_name: str = Field(default="glimpse", min_length=1)
    resource_attributes: dict[str, str] = {}  # added to k8s.namespace.name and glimpse.voiceagent
    sampler: str = ""  # OTEL_TRACES_SAMPLER, one of SAMPLERS; empty: the SDK's (parentbased_always_on)
    sampler_arg: str = ""  # OTEL_TRACES_SAMPLER_ARG, e.g. 0.1 with parentbased_traceidratio
    egress_to: tuple[dict[str, Any], ...] = ()  # NetworkPolicyPeers the collector is among (none: any address)

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return http_url(value, example="http://otel-collector.observability:4318") if value else value

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, value: str) -> str:
        if value and value not in SAMPLERS:
            raise ValueError(f"must be one of {', '.join(SAMPLERS)}")
        return value

    @field_validator("resource_attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        if bad := [key for key, item in value.items() if not (re.match(ATTRIBUTE_PART, key)
                                                               and re.match(ATTRIBUTE_PART, item))]:
            raise ValueError(f"{bad[0]}: a resource attribute's key and value hold no comma, equals sign or space")
        return value

    def as_spec(self) -> dict[str, Any]:
        """As the chart's values write it (camelCase, lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in self.model_dump(by_alias=True).items()}


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, hide_input_in_errors=True)

    proxy_image: str = DEFAULT_PROXY_IMAGE  # for VoiceAgents without spec.proxy.image
    elevenlabs_base_url: str = DEFAULT_ELEVENLABS_BASE_URL
    proxy_network_policy: ProxyNetworkPolicy = ProxyNetworkPolicy()
    proxy_tracing: ProxyTracing = ProxyTracing()
    # every proxy's spec.pod defaults (JSON in spec.pod's shape; the chart's operator.proxyDefaults.pod), which a
    # VoiceAgent's own fields override (pod_settings.merged)
    proxy_pod_defaults: dict[str, Any] = {}
    # the operator's own Prometheus metrics (metrics.py) on this port, all interfaces; 0: not served
    metrics_port: int = Field(default=9090, ge=0, le=65535)

    @field_validator("proxy_image")
    @classmethod
    def _proxy_image(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name an image, e.g. glimpse/proxy:0.1.0")
        return value

    @field_validator("elevenlabs_base_url")
    @classmethod
    def _elevenlabs_base_url(cls, value: str) -> str:
        return http_url(value, example=DEFAULT_ELEVENLABS_BASE_URL)

    @field_validator("proxy_pod_defaults")
    @classmethod
    def _proxy_pod_defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            return check_pod(value, "")
        except InvalidSpec as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        """The settings from the process environment; a `ConfigError` naming the variable if one is bad."""
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(describe(exc)) from None
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None


@functools.cache
def load_settings() -> OperatorSettings:
    """The process's settings, read on first use: `glimpse-operator` reads them before starting kopf (to fail
    fast with a one-line error), and the startup handler gets the same object."""
    return OperatorSettings.from_environment()

