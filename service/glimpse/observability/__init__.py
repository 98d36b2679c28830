"""Prometheus metrics, OpenTelemetry tracing and JSON logs."""
