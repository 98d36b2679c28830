"""A real Prometheus (Debian's `prometheus` package) on a free loopback port, scraping the targets a test names
every second, with the labels the chart's ServiceMonitor relabelings give them (namespace, voiceagent): given as
they are, or made by the chart's own relabelings from the Kubernetes discovery labels a test gives; and promtool,
for alert rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.processes import free_port

FIRST_SCRAPE_SECONDS = 20.0  # Prometheus 2.42 scrapes about 6 s after start, whatever the interval


def require(tool: str) -> str:
    binary = shutil.which(tool)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed; .ci/run installs Debian's prometheus package")
        pytest.skip(f"{tool} is not installed (apt-get install --no-install-recommends prometheus); CI installs it")
    return binary


class PrometheusServer:
    def __init__(self, directory: Path, targets: dict[str, dict[str, str]],
                 relabel_configs: list[dict[str, Any]] | None = None) -> None:
        """`targets`: host:port → the labels its series get, or (with `relabel_configs`, Prometheus' own form of
        a monitor's relabelings) the labels they are made from, e.g. `__meta_kubernetes_namespace`."""
        self.binary = require("prometheus")
        self.directory = directory
        self.targets = targets
        self.relabel_configs = relabel_configs or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [{"job_name": "glimpse", "relabel_configs": self.relabel_configs,
                                      "static_configs": [{"targets": [target], "labels": labels}
                                                         for target, labels in self.targets.items()]}]}
        (self.directory / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=(self.directory / "prometheus.log").open("wb"))
        self._wait(lambda: self._get("/-/ready") is not None, 15, "Prometheus did not get ready")
        self._wait(lambda: len(self.query("up == 1")) == len(self.targets), FIRST_SCRAPE_SECONDS,
                   "Prometheus did not scrape every target")
        return self

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now, or at the Unix time `at` (`/api/v1/query`)."""
        body = self._get("/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}))
        assert body is not None, f"query failed: {expr}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def label_values(self, label: str, selector: str) -> list[str]:
        """What Grafana's `label_values(selector, label)` gives a dashboard variable (`/api/v1/label/…/values`)."""
        body = self._get(f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": selector}))
        assert body is not None, f"label values failed: {label} {selector}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        values: list[str] = answer["data"]
        return values

    def value(self, expr: str) -> float | None:
        """The one value `expr` gives, or None when it gives no series."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Polls until `expr` (a condition, e.g. `x > 0`) gives a series."""
        found: list[dict[str, Any]] = []

        def ready() -> bool:
            found[:] = self.query(expr)
            return bool(found)

        self._wait(ready, timeout, f"never true: {expr}")
        return found

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:  # noqa: S310 (loopback)
                body: bytes = response.read()
                return body
        except OSError:
            return None

    def _wait(self, condition: Any, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.directory / 'prometheus.log').read_text()}")
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(message)


# An alert's cases for promtool: (eval_time, input_series, whether it fires) under its name, with the labels a firing
# alert carries besides its rule's and the group's.
AlertCases = dict[str, tuple[dict[str, str], list[tuple[str, list[dict[str, str]], bool]]]]


def promtool_check_and_test(directory: Path, text: str, rules_by_name: dict[str, dict[str, Any]], cases: AlertCases,
                            labels: dict[str, str]) -> str:
    """`promtool check rules` then `promtool test rules` (one test per case) on the rule file `text`, whose alerts
    are `rules_by_name`; `labels`: what every firing alert carries from its series (namespace, VoiceAgent). Returns
    what `promtool test rules` printed."""
    promtool = require("promtool")
    (directory / "rules.yaml").write_text(text)
    checked = subprocess.run([promtool, "check", "rules", str(directory / "rules.yaml")], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(cases)} rules found" in checked.stdout

    tests = []
    for name, (extra, alert_cases) in cases.items():
        rule = rules_by_name[name]
        for when, inputs, fires in alert_cases:
            expected = [{"exp_labels": {**rule["labels"], **labels, **extra},
                         "exp_annotations": rule["annotations"]}] if fires else []
            tests.append({"interval": "1m", "input_series": inputs,
                          "alert_rule_test": [{"eval_time": when, "alertname": name, "exp_alerts": expected}]})
    (directory / "rules_test.yaml").write_text(json.dumps({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                                                            "tests": tests}))
    tested = subprocess.run([promtool, "test", "rules", str(directory / "rules_test.yaml")], capture_output=True,
                            text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    return checked.stdout + tested.stdout
