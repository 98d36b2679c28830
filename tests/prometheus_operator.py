"""The Prometheus Operator's own schemas for ServiceMonitor, PodMonitor and PrometheusRule (monitoring.coreos.com/v1),
as a check: `@kubernetes-models/prometheus-operator` (npm; generated from the prometheus-operator CRDs' OpenAPI
schemas: required fields, types, enums such as a relabeling's action, patterns such as a duration's), installed by
`make test` into tests/delivery/prometheus_operator/ from its package-lock.json and run by Node.

What it does not check: the PromQL in a PrometheusRule (the operator's admission webhook parses it; the tests run
`promtool check rules` on the rendered groups), and the CRDs' CEL rules, which the package does not carry."""

from __future__ import annotations

from typing import Any

from tests.npm_schemas import validate
from tests.paths import ROOT

DIRECTORY = ROOT / "tests" / "delivery" / "prometheus_operator"
KINDS = frozenset({"ServiceMonitor", "PodMonitor", "PrometheusRule"})


def monitoring_errors(objects: list[dict[str, Any]]) -> list[list[str]]:
    """For each object, what the Prometheus Operator's schema refuses in it ("<path> <message>"; empty: valid)."""
    return validate(DIRECTORY, objects, "the Prometheus Operator's schemas")
