"""The Grafana dashboard asks only for metrics the proxy really exports, and is a valid dashboard model."""

from __future__ import annotations

import json
import re

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Proxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body
from tests.paths import ROOT

DASHBOARD = ROOT / "charts" / "glimpse" / "dashboards" / "glimpse.json"
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "clamp_min", "label_values", "without", "avg", "max",
                "min", "increase", "irate", "count", "le", "on", "ignoring", "group_left", "bool"}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def expressions(dashboard: dict) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return found


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', re.sub(r"label_values\(([^,]+),\s*\w+\)", r"\1", expr))
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)  # label matchers
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    without_legends = re.sub(r"\$\w+", "", without_groupings)
    names = set(IDENTIFIER.findall(without_legends)) - PROMQL_WORDS
    return {n for n in names if not re.fullmatch(r"e\d*|\d.*", n)}


async def test_every_expression_names_exported_metrics(proxy: Proxy, upstream: FakeOpenAI,
                                                       http: aiohttp.ClientSession) -> None:
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
    for needed in ("glimpse_time_to_first_token_seconds_bucket", "glimpse_requests_total", "glimpse_active_streams",
                   "glimpse_tokens_total", "glimpse_images_uploaded_total", "glimpse_images_injected_total",
                   "glimpse_store_errors_total"):
        assert needed in used


def test_dashboard_model_is_valid() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "model"} <= variables
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in ("timeseries", "stat", "gauge", "table", "row")
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']} overlaps another"
                cells.add((x, y))
        for target in panel["targets"]:
            assert target["refId"] and target["expr"].count("(") == target["expr"].count(")")
            assert target["datasource"]["uid"] == "${datasource}"
