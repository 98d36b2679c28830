"""The Grafana dashboard: a valid model whose every panel chooses by namespace and VoiceAgent, asks only for metrics
the proxy exports, and gives data through a real Prometheus' HTTP API after two agents were driven through
successes, pictures, a 4xx, a failover, a 502, a 504 and store errors, their series labelled by the chart's own
ServiceMonitor relabelings. `GLIMPSE_PANEL_TABLE=<file>` writes every panel's value after the drive there
(markdown), for the issue's closing note; `pytest -s` prints it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from glimpse.web.errors import ANSWERED_STATUSES
from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, new_session, upload
from tests.paths import ROOT
from tests.processes import free_port
from tests.prometheus_server import PrometheusServer
from tests.proxy.observability.test_metrics_initialised import two_upstreams
from tools.render_install import render_chart

DASHBOARD = ROOT / "charts" / "glimpse" / "dashboards" / "glimpse.json"
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "clamp_min", "label_values", "without", "avg", "max",
                "min", "increase", "irate", "count", "le", "on", "ignoring", "group_left", "bool"}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SELECTOR = re.compile(r"\b(glimpse_[a-z_]+)(\{[^}]*\})?")
AGENT_MATCHERS = ('namespace=~"$namespace"', 'voiceagent=~"$voiceagent"')
PROBES = ("/healthz", "/readyz", "/metrics")
RATE_WINDOW = "5m"  # what $__rate_interval stands for here: longer than the whole drive
COUNTED_FROM_START = tuple(map(str, ANSWERED_STATUSES))  # the statuses whose series exist at 0 before first use


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in panels(dashboard) for t in p["targets"]]
    found += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return found


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', re.sub(r"label_values\((.+),\s*\w+\)$", r"\1", expr))
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)  # label matchers
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    without_legends = re.sub(r"\$\w+", "", without_groupings)
    names = set(IDENTIFIER.findall(without_legends)) - PROMQL_WORDS
    return {n for n in names if not re.fullmatch(r"e\d*|\d.*", n)}


def substitute(expr: str, namespace: str, voiceagent: str, model: str = ".*") -> str:
    """What Grafana sends for the variables chosen (a regex: `.*` for All)."""
    for name, value in (("__rate_interval", RATE_WINDOW), ("namespace", namespace), ("voiceagent", voiceagent),
                        ("model", model)):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in expr, expr
    return expr


async def test_every_expression_names_exported_metrics(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                       http: aiohttp.ClientSession) -> None:
    # glimpse_rate_limited_total's series are those of the limits that are on (here, the upload rate limit's)
    proxy = await start_proxy(upload_rate_per_minute=30)
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        await r.read()
    async with http.get(proxy.url + "/metrics") as response:
        exported = {s.name for f in text_string_to_metric_families(await response.text()) for s in f.samples}
    # every series a panel reads is scraped from the start (at 0 until something happens: an upload, a store
    # error), never only declared: a panel of a series that is not there says "No data"
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(e) for e in expressions(dashboard)))
    assert used, "no metric names were found in the dashboard"
    assert used <= exported, f"metrics in the dashboard not in a scrape: {sorted(used - exported)}"
    for needed in ("glimpse_time_to_first_token_seconds_bucket", "glimpse_requests_total",
                   "glimpse_stream_seconds_total", "glimpse_tokens_total", "glimpse_images_uploaded_total",
                   "glimpse_images_injected_total", "glimpse_store_errors_total", "glimpse_upstream_calls_total",
                   "glimpse_upstream_failovers_total", "glimpse_upstream_breaker_open",
                   "glimpse_image_decodes_refused_total", "glimpse_quota_refusals_total"):
        assert needed in used


def test_dashboard_model_is_valid() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "voiceagent", "model"]
    for name in ("namespace", "voiceagent", "model"):  # several at once, or All: a regex either way
        assert variables[name]["multi"] and variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    assert variables["voiceagent"]["definition"].startswith('label_values(glimpse_requests_total{namespace=~'
                                                            '"$namespace"}')
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in ("timeseries", "stat", "gauge", "table", "row")
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']} overlaps another"
                cells.add((x, y))
    for panel in panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["refId"] and expr.count("(") == expr.count(")")
            assert target["datasource"]["uid"] == "${datasource}"
            # every series read is the chosen agents' (two agents' traffic never shows merged)
            for name, matchers in SELECTOR.findall(expr):
                assert all(m in matchers for m in AGENT_MATCHERS), (panel["title"], name)
            # the HTTP ratios and rates are over the API's routes, never the probes' or /metrics'
            for matchers in re.findall(r"glimpse_request[a-z_]*\{([^}]*)\}", expr):
                assert 'route!~"/healthz|/readyz|/metrics"' in matchers or \
                    'route=~"/v1/chat/completions|/v1/responses"' in matchers, (panel["title"], expr)


# --- a real Prometheus after a drive

@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


def chart_relabelings() -> list[dict[str, Any]]:
    """The chart's ServiceMonitor relabelings, in Prometheus' own configuration's words."""
    (monitor,) = [o for o in render_chart({"serviceMonitor": {"enabled": True, "assumeCrdInstalled": True}})
                  if o["kind"] == "ServiceMonitor"]
    words = {"sourceLabels": "source_labels", "targetLabel": "target_label", "action": "action", "regex": "regex",
             "replacement": "replacement", "separator": "separator"}
    return [{words[key]: value for key, value in r.items()} for r in monitor["spec"]["endpoints"][0]["relabelings"]]


def discovered(proxy: Proxy, namespace: str, agent: str) -> tuple[str, dict[str, str]]:
    """A proxy as Kubernetes service discovery shows it: its namespace and its Service's instance label."""
    return proxy.url.removeprefix("http://"), {"__meta_kubernetes_namespace": namespace,
                                               "__meta_kubernetes_service_label_app_kubernetes_io_instance": agent}


class Drive:
    """Requests to one proxy's API routes, each with the status it got (what an error ratio should say)."""

    def __init__(self, proxy: Proxy, http: aiohttp.ClientSession) -> None:
        self.proxy, self.http = proxy, http
        self.statuses: list[int] = []

    async def turn(self, session: dict[str, Any] | None = None) -> tuple[int, str]:
        async with self.http.post(self.proxy.v1 + "/chat/completions",
                                  json=elevenlabs_body(session or "sess-1", conversation("What is this?"))) as r:
            await r.read()
            self.statuses.append(r.status)
            return r.status, r.headers.get("X-Glimpse-Upstream", "")

    async def session(self) -> dict[str, Any]:
        session = await new_session(self.http, self.proxy.url)
        self.statuses.append(200)
        return session

    async def upload(self, session: dict[str, Any], **options: Any) -> int:
        response = await upload(self.http, self.proxy.url, session, **options)
        self.statuses.append(response.status)
        return response.status

    def error_ratio(self) -> float:
        """5xx over all, of the statuses whose series exist from the start (a 201's or a 4xx's is born holding its
        first request, which rate() cannot see)."""
        counted = [s for s in self.statuses if str(s) in COUNTED_FROM_START]
        return sum(1 for s in counted if s >= 500) / len(counted)


def described(result: list[dict[str, Any]], legend: str) -> str:
    """A query's series as a panel's legend names them, the ones at 0 counted rather than listed."""
    def name(metric: dict[str, str]) -> str:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m[1], ""), legend) or "value"

    shown, zeros = [], 0
    for series in sorted(result, key=lambda s: name(s["metric"])):
        value = float(series["value"][1])
        if value == 0:
            zeros += 1
        else:
            shown.append(f"{name(series['metric'])} = {value:.4g}")
    if zeros:
        shown.append(f"{zeros} series at 0" if shown else f"{zeros} series, all 0")
    return "; ".join(shown) or "no data"


async def test_every_panel_gives_data_from_a_real_prometheus_after_a_drive(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    # alpha: two upstreams, one failing at will; beta: its Redis is down (store errors, refused uploads)
    alpha = await start_proxy(**two_upstreams(upstream, backup), first_token_timeout=0.2,
                              upstream_first_byte_timeout=0.6, upload_rate_per_minute=30)
    beta = await start_proxy(store_url=f"redis://127.0.0.1:{free_port()}/0", upload_rate_per_minute=30)
    prometheus = PrometheusServer(tmp_path, dict([discovered(alpha, "voice", "alpha"),
                                                  discovered(beta, "voice", "beta")]), chart_relabelings())
    await asyncio.to_thread(prometheus.start)
    try:
        a, b = Drive(alpha, http), Drive(beta, http)
        session = await a.session()
        assert await a.upload(session) == 201
        assert await a.turn(session) == (200, "primary")  # with its picture
        assert await a.upload(session, token="not-the-upload-token") in (401, 403)
        upstream.next.append(Behaviour(status=500))
        assert await a.turn() == (200, "backup")  # a failover
        upstream.next.append(Behaviour(status=500))
        backup.next.append(Behaviour(status=503))
        assert (await a.turn())[0] == 502
        upstream.next.append(Behaviour(first_byte_delay=2.0))
        backup.next.append(Behaviour(first_byte_delay=2.0))
        assert (await a.turn())[0] == 504
        beta_session = await b.session()
        assert (await b.turn(beta_session))[0] == 200  # answered without its pictures: the store is down
        assert await b.upload(beta_session) == 503
        for _ in range(3):  # probes failing: no API error
            async with http.get(beta.url + "/readyz") as response:
                assert response.status == 503

        await asyncio.to_thread(prometheus.wait_for, 'glimpse_requests_total{voiceagent="alpha",status="504"} == 1')
        await asyncio.to_thread(prometheus.wait_for, 'glimpse_requests_total{voiceagent="beta",route="/readyz"} == 3')
        await asyncio.sleep(1.5)  # one scrape more

        # the variables' choices, as Grafana asks for them
        assert await asyncio.to_thread(prometheus.label_values, "namespace", "glimpse_requests_total") == ["voice"]
        assert await asyncio.to_thread(prometheus.label_values, "voiceagent",
                                       'glimpse_requests_total{namespace=~"voice"}') == ["alpha", "beta"]
        assert {"gpt-4o-mini", "gpt-4o"} <= set(await asyncio.to_thread(
            prometheus.label_values, "model",
            'glimpse_time_to_first_token_seconds_count{namespace=~"voice", voiceagent=~"alpha"}'))

        dashboard = json.loads(DASHBOARD.read_text())
        at = time.time()  # every query at the same instant, as one refresh of the dashboard
        values: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        rows = ["| Panel | Query (legend) | alpha | beta | All |", "|---|---|---|---|---|"]
        for panel in panels(dashboard):
            for target in panel["targets"]:
                cells = []
                for agent in ("alpha", "beta", ".*"):
                    result = await asyncio.to_thread(prometheus.query, substitute(target["expr"], "voice", agent), at)
                    assert result, f"{panel['title']} ({target['legendFormat']}) gives no data for {agent}"
                    values[(panel["title"], target["refId"], agent)] = result
                    cells.append(described(result, target["legendFormat"]))
                rows.append(f"| {panel['title']} | {target['refId']} ({target['legendFormat']}) | "
                            + " | ".join(cells) + " |")

        def value(title: str, agent: str, ref: str = "A", **labels: str) -> float:
            matching = [s for s in values[(title, ref, agent)] if labels.items() <= s["metric"].items()]
            assert len(matching) == 1, (title, agent, labels, matching)
            return float(matching[0]["value"][1])

        # the API's 5xx share, probes not counted (beta's three failing /readyz would make it 0.6)
        assert value("API error ratio (5xx)", "alpha") == pytest.approx(a.error_ratio())
        assert value("API error ratio (5xx)", "beta") == pytest.approx(b.error_ratio())
        assert a.error_ratio() > 0 and b.error_ratio() > 0
        # what one agent did does not show under the other
        assert value("Conversation store errors", "alpha", op="take_turn") == 0
        assert value("Conversation store errors", "beta", op="take_turn") > 0
        assert value("Conversation store errors", "beta", op="add_image") > 0
        assert value("Picture uploads refused", "alpha", outcome="rejected") > 0
        assert value("Picture uploads refused", "alpha", outcome="failed") == 0
        assert value("Picture uploads refused", "beta", outcome="failed") > 0
        assert value("Pictures per turn", "alpha") > 0 and value("Pictures per turn", "beta") == 0
        assert value("Failovers/min by upstream", "alpha", upstream="primary", outcome="error") > 0
        assert value("Failovers/min by upstream", "alpha", upstream="primary", outcome="timeout") > 0
        assert value("Upstream error ratio", "alpha", upstream="primary") > 0
        assert value("Circuit breakers open", "alpha", upstream="primary") == 0  # 100 failures open it here
        # streams counted though none is open at any scrape now
        assert value("Active streams", "alpha") > 0 and value("Active streams", "beta") > 0
        assert await asyncio.to_thread(prometheus.value, "sum(glimpse_active_streams)") == 0
        assert value("Turns/s", ".*") == pytest.approx(value("Turns/s", "alpha") + value("Turns/s", "beta"))

        table = "\n".join(rows) + "\n"
        print("\n" + table)
        if os.environ.get("GLIMPSE_PANEL_TABLE"):
            Path(os.environ["GLIMPSE_PANEL_TABLE"]).write_text(table)
    finally:
        await asyncio.to_thread(prometheus.stop)
