"""The proxy's alert rules (alerts/glimpse-proxy.rules.yaml, which the chart ships) as Prometheus evaluates them:
`promtool check rules`, then `promtool test rules` with synthetic series, one case where each alert fires and one
where it must not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.paths import ROOT
from tests.prometheus_server import promtool_check_and_test

RULES = ROOT / "alerts" / "glimpse-proxy.rules.yaml"
AGENT = 'namespace="voice",voiceagent="alpha"'
CHAT = 'route="/v1/chat/completions"'


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{AGENT}{',' + labels if labels else ''}}}", "values": values}


def calls(ok: str, error: str, cancelled: str = "0+100x40") -> list[dict[str, str]]:
    return [series("glimpse_upstream_calls_total", 'upstream="primary",outcome="ok"', ok),
            series("glimpse_upstream_calls_total", 'upstream="primary",outcome="error"', error),
            series("glimpse_upstream_calls_total", 'upstream="primary",outcome="cancelled"', cancelled)]


def ttft(slow: bool, per_minute: str) -> list[dict[str, str]]:
    """Every turn's first token at 1.75 s (slow) or 0.25 s."""
    buckets = [("0.5", not slow), ("1", not slow), ("1.5", not slow), ("2", True), ("+Inf", True)]
    grows, flat = f"0+{per_minute}x40", "0x40"
    return [series("glimpse_time_to_first_token_seconds_bucket", f'le="{le}"', grows if filled else flat)
            for le, filled in buckets] + [series("glimpse_time_to_first_token_seconds_count", "", grows)]


PRIMARY = {"upstream": "primary"}
# alert → (labels it fires with beyond the agent's, [(when, input series, fires?)])
CASES: dict[str, tuple[dict[str, str], list[tuple[str, list[dict[str, str]], bool]]]] = {
    "GlimpseApiErrorRatioHigh": ({}, [
        ("20m", [series("glimpse_requests_total", f'{CHAT},status="200"', "0+60x30"),
                 series("glimpse_requests_total", f'{CHAT},status="502"', "0+6x30")], True),
        # 1.6 %, and the probes' 5xx count for nothing
        ("20m", [series("glimpse_requests_total", f'{CHAT},status="200"', "0+60x30"),
                 series("glimpse_requests_total", f'{CHAT},status="502"', "0+1x30"),
                 series("glimpse_requests_total", 'route="/readyz",status="503"', "0+60x30")], False),
    ]),
    "GlimpseUpstreamErrorRatioHigh": (PRIMARY, [
        ("30m", calls(ok="0+50x40", error="0+10x40"), True),
        ("30m", calls(ok="0+50x40", error="0+2x40"), False),  # 4 %; the callers who left are no failures
    ]),
    "GlimpseUpstreamFailovers": (PRIMARY, [
        ("30m", [series("glimpse_upstream_failovers_total", 'upstream="primary",outcome="error"', "0+2x40")], True),
        ("30m", [series("glimpse_upstream_failovers_total", 'upstream="primary",outcome="error"', "0+0.5x40")],
         False),
    ]),
    "GlimpseAllUpstreamsDown": ({}, [
        ("10m", calls(ok="0x20", error="0+5x20", cancelled="0x20"), True),  # the ok series is there, at 0
        ("10m", calls(ok="0+1x20", error="0+5x20", cancelled="0x20"), False),
        ("10m", calls(ok="0x20", error="0x20", cancelled="0x20"), False),  # no traffic at all
    ]),
    "GlimpseTtftOverBudget": ({}, [
        ("30m", ttft(slow=True, per_minute="10"), True),
        ("30m", ttft(slow=False, per_minute="10"), False),
        ("30m", ttft(slow=True, per_minute="0.5"), False),  # too few turns to page anyone
    ]),
    "GlimpseStoreErrors": ({"op": "take_turn"}, [
        ("10m", [series("glimpse_store_errors_total", 'op="take_turn"', "0+1x20")], True),
        ("10m", [series("glimpse_store_errors_total", 'op="take_turn"', "0x20")], False),
    ]),
    "GlimpsePicturesRefusedForCapacity": ({}, [
        ("20m", [series("glimpse_image_decodes_refused_total", 'reason="queue_full"', "0+1x30"),
                 series("glimpse_quota_refusals_total", 'scope="global"', "0x30")], True),
        # a session's own quota is no capacity problem
        ("20m", [series("glimpse_image_decodes_refused_total", 'reason="queue_full"', "0x30"),
                 series("glimpse_quota_refusals_total", 'scope="global"', "0x30"),
                 series("glimpse_quota_refusals_total", 'scope="session"', "0+5x30")], False),
    ]),
    "GlimpseMemoryNearLimit": ({"instance": "10.0.0.7:9090"}, [
        ("10m", [series("glimpse_process_resident_memory_bytes", 'instance="10.0.0.7:9090"', "950x20"),
                 series("glimpse_memory_limit_bytes", 'instance="10.0.0.7:9090"', "1000x20")], True),
        ("10m", [series("glimpse_process_resident_memory_bytes", 'instance="10.0.0.7:9090"', "500x20"),
                 series("glimpse_memory_limit_bytes", 'instance="10.0.0.7:9090"', "1000x20")], False),
    ]),
}


def rules(text: str | None = None) -> dict[str, dict[str, Any]]:
    """The alerts of a rule file (by default the proxy's, as written) by name."""
    return {rule["alert"]: rule for group in yaml.safe_load(text if text is not None else RULES.read_text())["groups"]
            for rule in group["rules"]}


def test_every_alert_has_a_runbook_and_a_case_either_way() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    assert set(CASES) == set(rules())
    for name, rule in rules().items():
        assert rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}"
        assert f"\n## {name}\n" in runbooks
        assert {fires for _, _, fires in CASES[name][1]} == {True, False}


def promtool_checks_and_tests(text: str, directory: Path) -> str:
    """`promtool check rules` then `promtool test rules` (every case of CASES) on the rule file `text`, which holds
    the proxy's alerts: the source file, or the chart's PrometheusRule groups (tests/delivery/test_monitoring.py).
    Returns what promtool printed."""
    return promtool_check_and_test(directory, text, rules(text), CASES, {"namespace": "voice", "voiceagent": "alpha"})


def test_promtool_checks_and_tests_the_rules(tmp_path: Path) -> None:
    promtool_checks_and_tests(RULES.read_text(), tmp_path)
