"""The proxy's Prometheus metrics scraped over HTTP and parsed with prometheus_client's parser, for tests that
watch a counter move."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from tests.conftest import Proxy


async def scrape(http: aiohttp.ClientSession, proxy: Proxy) -> dict[tuple[str, tuple], float]:
    async with http.get(proxy.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, *, absent: float | None = None, **labels: str) -> float:
    """The sample's value. A series that is not there fails the test (it is not a 0: `rate()` cannot see a series
    appear), unless the caller says what it stands for (`absent=`), for series that only appear on use (a model's)."""
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        assert absent is not None, f"no series {name}{labels} in the scrape"
        return absent
    return float(samples[key])
