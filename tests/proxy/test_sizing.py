"""The proxy's memory from plain numbers (`glimpse.sizing`): what image decodes may hold, and the pod's limit."""

from __future__ import annotations

import pytest

from glimpse.config import Settings
from glimpse.sizing import DecodeBudget, MiB, decode_memory_bytes, memory_limit_mib


def test_decode_memory_bytes_of_the_defaults() -> None:
    settings = Settings.load(env={})
    assert decode_memory_bytes(settings.decode_budget) == 256 * MiB + (2 + 6) * 10 * MiB
    wider = Settings.load(env={"GLIMPSE_IMAGE_DECODE_MEMORY_BYTES": str(512 * MiB),
                               "GLIMPSE_IMAGE_DECODE_CONCURRENCY": "4", "GLIMPSE_IMAGE_DECODE_QUEUE": "0"})
    assert decode_memory_bytes(wider.decode_budget) == 512 * MiB + 4 * 10 * MiB
    assert memory_limit_mib(settings.decode_budget) == 96 + 256 + 80 + 64 <= 512  # the pod limit the defaults need
    assert settings.decode_budget == DecodeBudget()  # the proxy's defaults are sizing's, which the operator uses


@pytest.mark.parametrize(("budget", "error"), [
    ({"max_upload_bytes": 0}, ValueError), ({"queue": -1}, ValueError), ({"concurrency": 0}, ValueError),
    ({"max_upload_bytes": "10485760"}, TypeError), ({"memory_bytes": 2.5e8}, TypeError), ({"queue": True}, TypeError),
])
def test_a_budget_is_whole_numbers_in_range(budget: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        DecodeBudget(**budget)
