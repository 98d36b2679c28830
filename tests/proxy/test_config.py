from __future__ import annotations

import json
from pathlib import Path

import pytest

from glimpse.config import ConfigError, Settings


def test_embedded_defaults() -> None:
    settings = Settings.load(env={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.store_url == "memory://" and settings.storage_url.startswith("file://")
    assert settings.image_delivery == "inline" and settings.image_policy == "sticky"


def test_environment_and_openai_key_fallback() -> None:
    settings = Settings.load(env={"GLIMPSE_PORT": "9000", "OPENAI_API_KEY": "sk-x", "GLIMPSE_IMAGE_POLICY": "ONCE",
                                  "GLIMPSE_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert settings.port == 9000 and settings.upstream_api_key.get_secret_value() == "sk-x"
    assert settings.image_policy == "once"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert "sk-x" not in repr(settings)


def test_config_file_with_environment_winning(tmp_path: Path) -> None:
    path = tmp_path / "glimpse.toml"
    path.write_text('port = 7000\nGLIMPSE_IMAGE_DELIVERY = "url"\nupstream_model = "gpt-4o"\n')
    settings = Settings.load(env={"GLIMPSE_PORT": "7001"}, config_file=path)
    assert settings.port == 7001 and settings.image_delivery == "url" and settings.upstream_model == "gpt-4o"
    json_path = tmp_path / "glimpse.json"
    json_path.write_text(json.dumps({"image_max_edge": 512}))
    assert Settings.load(env={}, config_file=json_path).image_max_edge == 512


@pytest.mark.parametrize(("env", "needle"), [
    ({"GLIMPSE_STORE_URL": "mongodb://x"}, "GLIMPSE_STORE_URL"),
    ({"GLIMPSE_STORAGE_URL": "azure://bucket"}, "GLIMPSE_STORAGE_URL"),
    ({"GLIMPSE_STORAGE_URL": "gs://"}, "bucket"),
    ({"GLIMPSE_STORAGE_URL": "s3://"}, "bucket"),
    ({"GLIMPSE_S3_ENDPOINT_URL": "minio:9000"}, "GLIMPSE_S3_ENDPOINT_URL"),
    ({"GLIMPSE_PORT": "eighty"}, "GLIMPSE_PORT"),
    ({"GLIMPSE_PORT": "70000"}, "GLIMPSE_PORT"),
    ({"GLIMPSE_IMAGE_DELIVERY": "carrier-pigeon"}, "GLIMPSE_IMAGE_DELIVERY"),
    ({"GLIMPSE_IMAGE_MAX_BYTES": "0"}, "GLIMPSE_IMAGE_MAX_BYTES"),
    ({"GLIMPSE_UPSTREAM_BASE_URL": "api.openai.com"}, "GLIMPSE_UPSTREAM_BASE_URL"),
])
def test_bad_settings_name_the_key(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env=env)
    assert needle in str(info.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(env={}, config_file=path)


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("off", False), ("YES", True)])
def test_booleans_take_the_usual_words(raw: str, expected: bool) -> None:
    assert Settings.load(env={"GLIMPSE_UPSTREAM_STREAM_USAGE": raw}).upstream_stream_usage is expected


@pytest.mark.parametrize("source", ["env", "file"])
def test_a_misspelt_boolean_is_an_error_not_false(source: str, tmp_path: Path) -> None:
    path = tmp_path / "glimpse.toml"
    path.write_text('upstream_stream_usage = "flase"\n')
    with pytest.raises(ConfigError) as info:
        if source == "env":
            Settings.load(env={"GLIMPSE_UPSTREAM_STREAM_USAGE": "flase"})
        else:
            Settings.load(env={}, config_file=path)
    assert "GLIMPSE_UPSTREAM_STREAM_USAGE" in str(info.value) and "\n" not in str(info.value)


def test_errors_are_one_line_and_never_echo_a_value() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env={"GLIMPSE_PORT": "sk-live-pasted-key", "GLIMPSE_IMAGE_TTL_SECONDS": "-5"})
    message = str(info.value)
    assert "GLIMPSE_PORT" in message and "GLIMPSE_IMAGE_TTL_SECONDS" in message
    assert "sk-live-pasted-key" not in message and "\n" not in message


def test_several_upstreams_from_the_config_file_or_the_environment(tmp_path: Path) -> None:
    """The same list either way; a key by name of an environment variable; what cannot work is one line."""
    path = tmp_path / "glimpse.toml"
    path.write_text('''
[[upstreams]]
name = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_KEY"

[[upstreams]]
name = "gemini"
base_url = "https://generativelanguage.googleapis.com/v1beta/openai/"
api_key = "gm-inline"
model = "gemini-2.5-flash"
''')
    targets = Settings.load(env={"OPENAI_KEY": "sk-from-env"}, config_file=path).upstream_targets
    assert [(t.name, t.api_key.get_secret_value(), t.model) for t in targets] == [
        ("openai", "sk-from-env", ""), ("gemini", "gm-inline", "gemini-2.5-flash")]
    listed = '[{"name": "a", "base_url": "http://a/v1"}, {"name": "a", "base_url": "http://b/v1"}]'
    with pytest.raises(ConfigError, match=r"^GLIMPSE_UPSTREAMS: each upstream needs its own name$"):
        Settings.load(env={"GLIMPSE_UPSTREAMS": listed})
    with pytest.raises(ConfigError, match="OPENAI_KEY is not set") as refused:
        Settings.load(env={}, config_file=path)
    assert "gm-inline" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"^GLIMPSE_UPSTREAMS"):
        Settings.load(env={"GLIMPSE_UPSTREAMS": '[{"name": "a", "base_url": "http://a/v1", "apikey": "x"}]'})
    assert Settings.load(env={"GLIMPSE_UPSTREAM_BASE_URL": "http://vllm:8000/v1"}).upstream_targets[0].name == "default"
