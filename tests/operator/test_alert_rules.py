"""The operator's alert rules (alerts/glimpse-operator.rules.yaml) as Prometheus evaluates them: `promtool check
rules`, then `promtool test rules` with synthetic series of the operator's metrics, one case where each alert fires
and one where it must not; each alert with its runbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from glimpse_operator.metrics import STATUSES
from tests.paths import ROOT
from tests.prometheus_server import promtool_check_and_test

RULES = ROOT / "alerts" / "glimpse-operator.rules.yaml"
OPERATOR = 'namespace="glimpse-system",pod="glimpse-operator-7d9f-x2k4q"'


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{OPERATOR},{labels}}}", "values": values}


def reconciles(handler: str = "reconcile", ok: str = "0x40", retry: str = "0x40", error: str = "0x40"
               ) -> list[dict[str, str]]:
    return [series("glimpse_operator_reconciles_total", f'handler="{handler}",outcome="{outcome}"', values)
            for outcome, values in (("ok", ok), ("retry", retry), ("error", error))]


def calls(**by_status: str) -> list[dict[str, str]]:
    """ElevenLabs calls of one operation; every status's series there, at 0 unless given (as the operator makes
    them)."""
    return [series("glimpse_operator_elevenlabs_requests_total", f'operation="update_agent",status="{status}"',
                   by_status.get(f"s{status}", "0x40")) for status in STATUSES]


def ready(false: str) -> list[dict[str, str]]:
    return [series("glimpse_operator_voiceagents", 'condition="Ready",status="False"', false),
            series("glimpse_operator_voiceagents", 'condition="Ready",status="True"', "3x40")]


# alert → (labels it fires with beyond severity and namespace, [(when, input series, fires?)])
CASES: dict[str, tuple[dict[str, str], list[tuple[str, list[dict[str, str]], bool]]]] = {
    "GlimpseOperatorReconcileFailing": ({}, [
        ("30m", reconciles(retry="0+1x40") + reconciles("repair", retry="0+1x40"), True),
        # one VoiceAgent keeps failing (its spec, its Secret): the others still reconcile, no page
        ("30m", reconciles(retry="0+1x40") + reconciles("repair", ok="0+2x40"), False),
        ("30m", reconciles() + reconciles("repair"), False),  # an idle operator, or a standby
    ]),
    "GlimpseOperatorHandlerErrors": ({"handler": "cleanup"}, [
        ("30m", reconciles("cleanup", error="0+1x40"), True),
        ("30m", reconciles("cleanup", retry="0+1x40", ok="0+1x40"), False),  # retries it planned
    ]),
    "GlimpseVoiceAgentNotReady": ({}, [
        ("30m", ready(false="1x40"), True),
        ("30m", ready(false="1x10 0x30"), False),  # a new VoiceAgent whose pods took 10 minutes
    ]),
    "GlimpseElevenLabsApiErrors": ({}, [
        ("30m", calls(s2xx="0+1x40", s5xx="0+2x40"), True),
        ("30m", calls(s2xx="0+1x40", s401="0+1x40"), True),  # the key refused: half the calls
        # deleting what is gone (404) is no error; one 429 in twenty-one calls is below the ratio
        ("30m", calls(s2xx="0+10x40", s404="0+10x40", s429="0+1x40"), False),
        ("30m", calls(), False),  # no calls at all: no ratio
    ]),
}


def rules() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}


def test_every_alert_has_a_runbook_and_a_case_either_way() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    assert set(CASES) == set(rules())
    for name, rule in rules().items():
        assert rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}"
        assert f"\n## {name}\n" in runbooks
        assert {fires for _, _, fires in CASES[name][1]} == {True, False}


def test_promtool_checks_and_tests_the_rules(tmp_path: Path) -> None:
    promtool_check_and_test(tmp_path, RULES.read_text(), rules(), CASES, {"namespace": "glimpse-system"})
