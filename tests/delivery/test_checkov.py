"""checkov, as a platform team runs it, on what Glimpse puts in a cluster: the chart's renders (the defaults, and
every feature on) and the objects the operator makes for a VoiceAgent. Its findings are fixed or listed with their
reason in checkov_skips.yaml; a new finding fails here, and so does a skip no render needs any more."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from glimpse_operator.render import render_proxy
from glimpse_operator.spec import with_defaults
from tests.delivery.test_chart import DIGEST, OPERATOR_KNOBS, STANDALONE, VALUES, chart_pod_values
from tests.operator.support import FITTED_POD, MATRIX, voice_agent
from tests.paths import ROOT
from tools.render_install import render_chart

SKIPS: dict[str, str] = yaml.safe_load((Path(__file__).with_name("checkov_skips.yaml")).read_text())
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"  # its own venv: checkov pins versions the proxy must not share
# every feature on, and both pods fitted to a cluster with every knob (scheduling, accounts, extra env and volumes)
ALL_ON = {"proxy": {**VALUES["ingress-tls-autoscaled"]["proxy"],
                    "httpRoute": VALUES["gateway-route"]["proxy"]["httpRoute"], **chart_pod_values(FITTED_POD)},
          "serviceMonitor": VALUES["service-monitor"]["serviceMonitor"],
          "operator": {"replicas": 2, **OPERATOR_KNOBS, "proxyDefaults": {"pod": FITTED_POD}}}
BY_DIGEST = {**STANDALONE, "image": {"proxy": {"digest": DIGEST}, "operator": {"digest": DIGEST}}}


def checkov() -> str:
    found = str(CHECKOV) if CHECKOV.is_file() else shutil.which("checkov")
    assert found, "checkov is installed by `make test` into .venv-checkov (make .venv-checkov/.installed)"
    return found


def write(directory: Path, name: str, objects: list[dict[str, Any]]) -> None:
    (directory / f"{name}.yaml").write_text(yaml.safe_dump_all(
        [o for o in objects if o["kind"] != "CustomResourceDefinition"]))


def run_checkov(directory: Path, skips: list[str]) -> list[dict[str, Any]]:
    """checkov's failed checks on every file in `directory`, offline (it only warns that its guidelines server is out
    of reach)."""
    command = [checkov(), "--directory", str(directory), "--framework", "kubernetes", "--output", "json", "--quiet",
               "--skip-download"]
    if skips:
        command += ["--skip-check", ",".join(skips)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: some check failed
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [failed for report in reports for failed in report.get("results", {}).get("failed_checks", [])]


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("checkov")
    write(directory, "chart-defaults", render_chart({}))
    write(directory, "chart-all-on", render_chart(ALL_ON))
    write(directory, "chart-by-digest", render_chart(BY_DIGEST))
    for case, changes in MATRIX.items():
        body = voice_agent(**changes)
        write(directory, f"operator-{case}", render_proxy(body, with_defaults(body["spec"]), "agent_1",
                                                          {"customLlmKey": "k" * 43, "signingSecret": "s" * 43},
                                                          "registry.test/glimpse/proxy:1.2.3", "digest"))
    return directory


def test_checkov_finds_nothing_but_the_listed_skips(renders: Path) -> None:
    findings = sorted({(f["check_id"], f["resource"], Path(f["file_path"]).stem)
                       for f in run_checkov(renders, list(SKIPS))})
    assert findings == [], "\n".join(f"{check} {resource} ({render})" for check, resource, render in findings)


def test_every_skip_is_needed_and_says_why(renders: Path) -> None:
    failing = {f["check_id"] for f in run_checkov(renders, [])}
    assert set(SKIPS) <= failing, f"skips no render needs any more: {sorted(set(SKIPS) - failing)}"
    assert all(len(reason.split()) >= 8 for reason in SKIPS.values())


def test_an_image_by_digest_passes_the_digest_check(renders: Path) -> None:
    by_digest = {f["resource"] for f in run_checkov(renders, []) if f["check_id"] == "CKV_K8S_43"
                 and Path(f["file_path"]).stem == "chart-by-digest"}
    assert by_digest == set()
