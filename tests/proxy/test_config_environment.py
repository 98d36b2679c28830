"""Where `Settings.load` reads `GLIMPSE_*` variables: the mapping it is given, else the process environment, parsed
as pydantic-settings parses an environment."""

from __future__ import annotations

import pytest

from glimpse.config import ConfigError, Settings


def test_a_given_environment_is_the_only_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_PORT", "9999")
    monkeypatch.setenv("GLIMPSE_UPSTREAMS", "not json")
    assert Settings.load(env={}).port == 8080
    assert Settings.load(env={"glimpse_Port": "7000"}).port == 7000  # names in any case


def test_without_one_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_PORT", "9999")
    monkeypatch.setenv("GLIMPSE_TRUSTED_PROXIES", "10.1.2.3/8, 192.168.0.1")
    settings = Settings.load()
    assert settings.port == 9999 and settings.trusted_proxies == ("10.0.0.0/8", "192.168.0.1/32")


def test_a_complex_value_is_json_and_one_that_is_not_is_named() -> None:
    listed = '[{"name": "a", "base_url": "http://a/v1"}]'
    assert [u.name for u in Settings.load(env={"GLIMPSE_UPSTREAMS": listed}).upstreams] == ["a"]
    with pytest.raises(ConfigError) as refused:
        Settings.load(env={"GLIMPSE_UPSTREAMS": "[not json"})
    assert str(refused.value) == 'error parsing value for field "upstreams" from source "_Environment"'
