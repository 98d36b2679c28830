"""The chart's Prometheus Operator objects: the proxies' monitor (ServiceMonitor or PodMonitor) scrapes only the
namespaces where proxies run and labels every series with its namespace and VoiceAgent; the PrometheusRule carries
every group of every alerts/*.rules.yaml with the thresholds, runbook URL and alert labels of the values, and still
passes promtool's checks and unit tests. Each object is held to the Prometheus Operator's schema
(tests/prometheus_operator.py)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.paths import ROOT
from tests.prometheus_operator import monitoring_errors
from tests.proxy.observability.test_alert_rules import RULES, promtool_checks_and_tests, rules
from tools.render_install import CHART, NAMESPACE, render_chart

ALERTS = ROOT / "alerts"
THRESHOLD = re.compile(r"([0-9][0-9.eE+-]*)\s+# threshold: (\w+)$", re.MULTILINE)
ON = {"enabled": True, "assumeCrdInstalled": True}
DEFAULT_THRESHOLDS: dict[str, float] = yaml.safe_load((CHART / "values.yaml").read_text())["prometheusRule"][
    "thresholds"]


def rendered(kind: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in render_chart(copy.deepcopy(values)) if o["kind"] == kind]


def rule_files() -> list[Path]:
    return sorted(ALERTS.glob("*.rules.yaml"))


def groups_of(paths: list[Path]) -> list[dict[str, Any]]:
    return [group for path in paths for group in yaml.safe_load(path.read_text())["groups"]]


@pytest.mark.parametrize(("operator", "scraped"), [
    ({}, {"matchNames": [NAMESPACE]}),  # the release namespace: the standalone proxy and the operator's agents
    ({"watchNamespaces": ["voice", NAMESPACE, "voice-staging"]}, {"matchNames": [NAMESPACE, "voice", "voice-staging"]}),
    ({"watchAllNamespaces": True}, {"any": True}),  # the operator serves every namespace: proxies can be anywhere
    ({"enabled": False, "watchNamespaces": ["voice"]}, {"matchNames": [NAMESPACE]}),  # no operator: its own proxy
])
@pytest.mark.parametrize(("kind", "endpoints", "source"), [
    ("ServiceMonitor", "endpoints", "__meta_kubernetes_service_label_app_kubernetes_io_instance"),
    ("PodMonitor", "podMetricsEndpoints", "__meta_kubernetes_pod_label_app_kubernetes_io_instance"),
])
def test_the_monitor_scrapes_where_proxies_run_and_labels_namespace_and_agent(
        operator: dict[str, Any], scraped: dict[str, Any], kind: str, endpoints: str, source: str) -> None:
    values = {"serviceMonitor": {**ON, "kind": kind, "labels": {"release": "kps"}}, "operator": operator}
    (monitor,) = rendered(kind, values)
    other = {"ServiceMonitor": "PodMonitor", "PodMonitor": "ServiceMonitor"}[kind]
    assert rendered(other, values) == []
    assert monitoring_errors([monitor]) == [[]]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == scraped
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "glimpse",
                                                "app.kubernetes.io/component": "proxy"}}
    (endpoint,) = spec[endpoints]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert {(tuple(r["sourceLabels"]), r["targetLabel"]) for r in endpoint["relabelings"]} == {
        (("__meta_kubernetes_namespace",), "namespace"), ((source,), "voiceagent")}


def test_a_monitor_or_rule_needs_its_crd_or_an_explicit_assumption() -> None:
    for kind in ("ServiceMonitor", "PodMonitor"):
        assert rendered(kind, {"serviceMonitor": {"enabled": True, "kind": kind}}) == []
    assert rendered("PrometheusRule", {"prometheusRule": {"enabled": True}}) == []
    assert rendered("PrometheusRule", {"prometheusRule": {"assumeCrdInstalled": True}}) == []


def test_the_rule_holds_every_rule_file_with_the_values_thresholds_runbooks_and_labels(tmp_path: Path) -> None:
    thresholds = {name: value * 2 for name, value in DEFAULT_THRESHOLDS.items()}
    thresholds["ttftMinTurnsPerSecond"] = 0.00001  # printed 1e-05: PromQL reads it
    base = "https://git.example.com/voice/glimpse/blob/v0.2.0/docs/runbooks.md"
    (rule,) = rendered("PrometheusRule", {"prometheusRule": {
        **ON, "labels": {"release": "kps"}, "alertLabels": {"team": "voice", "severity": "ignored"},
        "runbookBaseUrl": base, "thresholds": thresholds}})
    assert monitoring_errors([rule]) == [[]]
    assert rule["metadata"]["labels"]["release"] == "kps"
    groups = rule["spec"]["groups"]
    sources = groups_of(rule_files())
    assert [g["name"] for g in groups] == [g["name"] for g in sources]
    seen: set[str] = set()
    for group, source in zip(groups, sources, strict=True):
        assert [r["alert"] for r in group["rules"]] == [r["alert"] for r in source["rules"]]
        for alert, original in zip(group["rules"], source["rules"], strict=True):
            assert alert["labels"] == {**original["labels"], "team": "voice"}  # an alert's own labels win
            assert alert["annotations"]["runbook_url"] == f"{base}#{alert['alert'].lower()}"
            assert alert["annotations"]["summary"] == original["annotations"]["summary"]
            assert alert["for"] == original["for"]
            found = THRESHOLD.findall(alert["expr"])
            assert [name for _, name in found] == [name for _, name in THRESHOLD.findall(original["expr"])]
            for number, name in found:
                assert float(number) == thresholds[name], (alert["alert"], name)
                seen.add(name)
            # nothing else changed: with the numbers put back, the expression is the file's
            assert THRESHOLD.sub(lambda m: f"<{m[2]}>  # threshold: {m[2]}", alert["expr"]) == \
                THRESHOLD.sub(lambda m: f"<{m[2]}>  # threshold: {m[2]}", original["expr"])
    assert seen == set(thresholds)
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump({"groups": groups}))
    promtool = shutil.which("promtool")
    if promtool:  # tests/proxy/observability run it everywhere CI does; the rest of this test needs no promtool
        checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "rendered.yaml")], capture_output=True,
                                 text=True, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"SUCCESS: {sum(len(g['rules']) for g in sources)} rules found" in checked.stdout


def test_the_rendered_default_rule_passes_the_alerts_promtool_unit_tests(tmp_path: Path) -> None:
    """The same firing and quiet cases as the source file (test_alert_rules.py), on what the chart renders from it."""
    (rule,) = rendered("PrometheusRule", {"prometheusRule": ON})
    proxy_groups = [g for g in rule["spec"]["groups"] if g["name"] in {g["name"] for g in groups_of([RULES])}]
    text = yaml.safe_dump({"groups": proxy_groups})
    assert rules(text).keys() == rules().keys()
    print(promtool_checks_and_tests(text, tmp_path))


def test_the_thresholds_defaults_are_the_rule_files_numbers() -> None:
    """One source for an expression: the rule file. values.yaml's thresholds are its numbers, each named once."""
    named: dict[str, float] = {}
    for path in rule_files():
        for number, name in THRESHOLD.findall(path.read_text()):
            assert name not in named, f"{name} is named twice"
            named[name] = float(number)
    assert named == DEFAULT_THRESHOLDS


def test_a_threshold_without_a_value_fails_the_render(tmp_path: Path) -> None:
    chart = tmp_path / "glimpse"
    shutil.copytree(CHART, chart, symlinks=False)  # the links (CRDs, alerts/) resolved
    (chart / "files" / "alerts" / "extra.rules.yaml").write_text(yaml.safe_dump({"groups": [{
        "name": "extra", "rules": [{"alert": "Extra", "expr": "vector(1) > 3  # threshold: unknownThing\n"}]}]}))
    refused = r"Extra names prometheusRule\.thresholds\.unknownThing, which has no value"
    with pytest.raises(helm_python.HelmError, match=refused):
        render_chart({"prometheusRule": ON}, source=chart)


def test_rule_files_live_in_alerts_which_the_chart_links() -> None:
    """alerts/ is the one place: the chart's files/alerts links to it, so a rule file added there (the operator's
    too) is in the PrometheusRule, and one put anywhere else is not shipped."""
    link = CHART / "files" / "alerts"
    assert link.is_symlink() and link.resolve() == ALERTS.resolve()
    tracked = subprocess.run(["git", "ls-files", "*.rules.yaml", "**/*.rules.yaml"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked and all(Path(path).parent == Path("alerts") for path in tracked), tracked
    assert [path.name for path in rule_files()] == sorted(Path(path).name for path in set(tracked))


def test_the_packaged_chart_holds_the_rule_files_and_renders_the_same_rule(tmp_path: Path) -> None:
    """`helm package` follows the folder link: a chart repository's or OCI registry's archive has the rule files."""
    archive = Path(helm_python.package(str(CHART), destination=str(tmp_path)))
    with tarfile.open(archive) as tar:
        for path in rule_files():
            extracted = tar.extractfile(f"glimpse/files/alerts/{path.name}")
            assert extracted is not None and extracted.read() == path.read_bytes()
    values = {"prometheusRule": ON}
    assert [o for o in render_chart(values, source=archive) if o["kind"] == "PrometheusRule"] == \
        rendered("PrometheusRule", values)
