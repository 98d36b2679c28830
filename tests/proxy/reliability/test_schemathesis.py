"""Schemathesis over /openapi.json against the running proxy (a real process): no input makes it fail with 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from glimpse.web.openapi import DOCUMENT
from tests.processes import start_fake_upstream, start_glimpse

schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    fake, fake_url = start_fake_upstream()
    glimpse, base = start_glimpse(Path(tmp_path_factory.mktemp("fuzz")), upstream_base_url=fake_url,
                                  upstream_api_key="sk-test")
    yield base
    glimpse.stop()
    fake.stop()


def test_openapi_document_is_served(proxy_url: str) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(proxy_url + "/openapi.json") as response:  # noqa: S310 (loopback)
        assert json.load(response) == DOCUMENT


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case: schemathesis.Case, proxy_url: str) -> None:
    response = case.call_and_validate(base_url=proxy_url, checks=[not_a_server_error], timeout=10)
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
        assert "error" in response.json()
