"""The operator's settings: defaults, `GLIMPSE_*` variables, one-line errors naming the variable, and the
startup handler handing them to the Reconciler through kopf's memo."""

from __future__ import annotations

import json
from collections.abc import Iterator

import kopf
import pytest

from glimpse_operator import cli, handlers
from glimpse_operator.reconcile import Reconciler
from glimpse_operator.settings import ConfigError, OperatorSettings, load_settings

VARIABLES = ("GLIMPSE_PROXY_IMAGE", "GLIMPSE_ELEVENLABS_BASE_URL", "GLIMPSE_PROXY_NETWORK_POLICY",
             "GLIMPSE_PROXY_POD_DEFAULTS", "GLIMPSE_PROXY_TRACING", "GLIMPSE_METRICS_PORT")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def test_defaults() -> None:
    settings = OperatorSettings.from_environment()
    assert settings.proxy_image == "glimpse/proxy:0.1.0"
    assert settings.elevenlabs_base_url == "https://api.elevenlabs.io"
    assert settings.proxy_pod_defaults == {}


def test_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_PROXY_IMAGE", "registry.example.com/glimpse/proxy:1.2.3")
    monkeypatch.setenv("GLIMPSE_ELEVENLABS_BASE_URL", "http://127.0.0.1:8999")
    settings = OperatorSettings.from_environment()
    assert settings.proxy_image == "registry.example.com/glimpse/proxy:1.2.3"
    assert settings.elevenlabs_base_url == "http://127.0.0.1:8999"


@pytest.mark.parametrize("url", ["fake-elevenlabs:8080", "ftp://fake.test", "http:///v1", "not a url"])
def test_bad_base_url_names_the_variable(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("GLIMPSE_ELEVENLABS_BASE_URL", url)
    with pytest.raises(ConfigError) as caught:
        OperatorSettings.from_environment()
    message = str(caught.value)
    assert message.startswith("GLIMPSE_ELEVENLABS_BASE_URL: must be an http(s) URL")
    assert "\n" not in message and url not in message  # one line, and the value is not echoed


def test_empty_proxy_image_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_PROXY_IMAGE", " ")
    with pytest.raises(ConfigError, match=r"^GLIMPSE_PROXY_IMAGE: must name an image"):
        OperatorSettings.from_environment()


def test_proxy_pod_defaults_are_json_in_spec_pods_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart passes operator.proxyDefaults.pod as JSON; the same checks as a VoiceAgent's spec.pod."""
    defaults = {"nodeSelector": {"pool": "voice"}, "serviceAccount": {"create": True}}
    monkeypatch.setenv("GLIMPSE_PROXY_POD_DEFAULTS", json.dumps(defaults))
    assert OperatorSettings.from_environment().proxy_pod_defaults == defaults


@pytest.mark.parametrize(("defaults", "problem"), [
    ({"containerSecurityContext": {"privileged": True}}, "containerSecurityContext.privileged: the proxy never runs"),
    ({"hostNetwork": True}, "hostNetwork: no such field"),
    ({"volumeMounts": [{"name": "ca", "mountPath": "/ca"}]}, "volumeMounts: ca is not a volume of volumes"),
    ({"env": [{"name": "GLIMPSE_STORE_URL", "value": "redis://x"}]}, "env[0].name: GLIMPSE_STORE_URL is set by the"),
])
def test_a_bad_pod_default_names_the_variable_and_the_field(monkeypatch: pytest.MonkeyPatch,
                                                           defaults: dict[str, object], problem: str) -> None:
    monkeypatch.setenv("GLIMPSE_PROXY_POD_DEFAULTS", json.dumps(defaults))
    with pytest.raises(ConfigError) as caught:
        OperatorSettings.from_environment()
    assert str(caught.value).startswith(f"GLIMPSE_PROXY_POD_DEFAULTS: {problem}")
    assert "\n" not in str(caught.value)


def test_settings_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_settings()
    monkeypatch.setenv("GLIMPSE_PROXY_IMAGE", "changed/later:1")
    assert load_settings() is first and first.proxy_image == "glimpse/proxy:0.1.0"


def test_cli_prints_a_configuration_error_and_exits_2(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GLIMPSE_ELEVENLABS_BASE_URL", "api.elevenlabs.io")
    monkeypatch.setattr("sys.argv", ["glimpse-operator"])
    assert cli.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("glimpse-operator: configuration error: GLIMPSE_ELEVENLABS_BASE_URL: must be an http(s) URL")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_startup_puts_one_reconciler_with_the_settings_into_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_PROXY_IMAGE", "registry.example.com/glimpse/proxy:1.2.3")
    monkeypatch.setenv("GLIMPSE_ELEVENLABS_BASE_URL", "http://127.0.0.1:8999/")
    monkeypatch.setenv("GLIMPSE_METRICS_PORT", "0")  # served: tests/operator/test_metrics.py
    monkeypatch.setattr("kubernetes.config.load_incluster_config", lambda: None)  # as if in a pod
    memo = kopf.Memo()
    handlers.configure(settings=kopf.OperatorSettings(), memo=memo)
    reconciler = handlers.reconciler(memo)
    assert isinstance(reconciler, Reconciler)
    assert reconciler.proxy_image == "registry.example.com/glimpse/proxy:1.2.3"
    assert reconciler.agents("key").base_url == "http://127.0.0.1:8999"


def test_startup_stops_the_operator_on_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_ELEVENLABS_BASE_URL", "ftp://example.com")
    with pytest.raises(kopf.PermanentError, match="GLIMPSE_ELEVENLABS_BASE_URL"):
        handlers.configure(settings=kopf.OperatorSettings(), memo=kopf.Memo())
