"""The proxy's memory from plain numbers (`glimpse.sizing`): what image decodes and turns' pictures may hold, and the
pod's limit."""

from __future__ import annotations

import pytest

from glimpse.config import Settings
from glimpse.sizing import (
    DecodeBudget,
    MiB,
    TurnMemoryBudget,
    decode_memory_bytes,
    memory_limit_bytes,
    memory_limit_mib,
    turn_memory_bytes,
    upload_body_budget_bytes,
)


def test_decode_memory_bytes_of_the_defaults() -> None:
    settings = Settings.load(env={})
    assert decode_memory_bytes(settings.decode_budget) == 256 * MiB + (2 + 6) * 10 * MiB
    wider = Settings.load(env={"GLIMPSE_IMAGE_DECODE_MEMORY_BYTES": str(512 * MiB),
                               "GLIMPSE_IMAGE_DECODE_CONCURRENCY": "4", "GLIMPSE_IMAGE_DECODE_QUEUE": "0"})
    assert decode_memory_bytes(wider.decode_budget) == 512 * MiB + 4 * 10 * MiB
    # the pod limit the defaults need: baseline, decodes, upload bodies being read (8 of 10 MiB + 256 KiB), turns'
    # pictures (in flight + cached), headroom
    assert memory_limit_mib(settings.decode_budget) == 96 + (256 + 80) + 82 + (128 + 64) + 64 == 770
    assert settings.decode_budget == DecodeBudget()  # the proxy's defaults are sizing's, which the operator uses


# --- upload bodies (issue 30) ---
def test_upload_body_budget_enters_the_memory_limit() -> None:
    settings = Settings.load(env={})
    one_body = 10 * MiB + 256 * 1024
    assert settings.upload_body_budget == upload_body_budget_bytes(settings.decode_budget) == 8 * one_body
    assert memory_limit_mib(settings.decode_budget, settings.upload_body_budget) == 770  # turns' pictures too
    smaller = Settings.load(env={"GLIMPSE_UPLOAD_BODY_BUDGET_BYTES": str(32 * MiB)})
    assert memory_limit_mib(smaller.decode_budget, smaller.upload_body_budget) == 96 + 256 + 80 + 32 + 192 + 64
    # the upload deadline: 10 s plus the largest upload at 128 KiB/s
    assert settings.upload_deadline == pytest.approx(10 + (10 * MiB + 256 * 1024) / (128 * 1024))
    assert Settings.load(env={"GLIMPSE_UPLOAD_DEADLINE_SECONDS": "30"}).upload_deadline == 30
    # chat bodies share the budget (review M1): no term of their own, a whole-body deadline (ElevenLabs sends at once)
    assert settings.chat_body_deadline_seconds == 10
    with pytest.raises(ValueError, match="must hold one whole upload"):
        Settings.load(env={"GLIMPSE_UPLOAD_BODY_BUDGET_BYTES": str(10 * MiB)})
# --- end upload bodies ---


@pytest.mark.parametrize(("budget", "error"), [
    ({"max_upload_bytes": 0}, ValueError), ({"queue": -1}, ValueError), ({"concurrency": 0}, ValueError),
    ({"max_upload_bytes": "10485760"}, TypeError), ({"memory_bytes": 2.5e8}, TypeError), ({"queue": True}, TypeError),
])
def test_a_budget_is_whole_numbers_in_range(budget: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        DecodeBudget(**budget)


def test_turn_memory_enters_the_pod_limit(tmp_path) -> None:
    settings = Settings.load(env={})
    assert settings.turn_memory_budget == TurnMemoryBudget()  # the proxy's defaults are sizing's
    assert turn_memory_bytes(settings.turn_memory_budget) == 128 * MiB + 64 * MiB
    wider = Settings.load(env={"GLIMPSE_TURN_PAYLOAD_MEMORY_BYTES": str(512 * MiB),
                               "GLIMPSE_IMAGE_DATA_URL_CACHE_BYTES": "0"})
    assert turn_memory_bytes(wider.turn_memory_budget) == 512 * MiB
    assert (memory_limit_mib(wider.decode_budget, turns=wider.turn_memory_budget)
            == memory_limit_mib(settings.decode_budget) + 512 - 192)
    assert (memory_limit_bytes(wider.decode_budget, tmp_path / "no-cgroup", turns=wider.turn_memory_budget)
            == memory_limit_mib(wider.decode_budget, turns=wider.turn_memory_budget) * MiB)


@pytest.mark.parametrize(("budget", "error"), [
    ({"payload_bytes": 0}, ValueError), ({"data_url_cache_bytes": -1}, ValueError),
    ({"payload_bytes": 1.5e8}, TypeError), ({"data_url_cache_bytes": True}, TypeError),
])
def test_a_turn_budget_is_whole_numbers_in_range(budget: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        TurnMemoryBudget(**budget)
