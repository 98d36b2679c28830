"""The metrics' series whose label values are known once the app is assembled, made at 0 on start-up: the routes
(by every status they answer),
the upstreams (with their breakers), the upstreams' fixed models, the rate-limited routes, the memory limit."""

from __future__ import annotations

import functools

from aiohttp import web

from ..resources import METRICS, RATE_LIMITS, SETTINGS, UPSTREAMS
from ..sizing import memory_limit_bytes
from ..upstream.breaker import CircuitBreaker
from .errors import ANSWERED_STATUSES
from .observe import QUIET_ROUTES
from .rate_limit import KIND_BY_ROUTE


async def initialise_series(app: web.Application) -> None:
    """An on-startup step, after the resources are open (the upstreams and rate limits exist)."""
    settings, upstreams, rate_limits = app[SETTINGS], app[UPSTREAMS], app[RATE_LIMITS]
    routes = {resource.canonical for resource in app.router.resources()} - QUIET_ROUTES
    app[METRICS].initialise(
        routes=sorted(routes),
        statuses=ANSWERED_STATUSES,
        upstreams={candidate.upstream.name: functools.partial(_is_open, candidate.breaker)
                   for candidate in upstreams.all},
        models=[(candidate.upstream.name, candidate.upstream.model) for candidate in upstreams.all
                if candidate.upstream.model],
        policy=settings.image_policy,
        rate_limited_routes=[route for route, kind in KIND_BY_ROUTE.items() if rate_limits.limits(kind)],
        memory_limit_bytes=memory_limit_bytes(settings.decode_budget, upload_body_budget=settings.upload_body_budget,
                                              turns=settings.turn_memory_budget))


def _is_open(breaker: CircuitBreaker) -> float:
    return float(breaker.state == "open")
