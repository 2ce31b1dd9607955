"""Prometheus metrics of one app: request counters and latencies by route template and status.

Each app gets its own :class:`prometheus_client.CollectorRegistry` (several apps in one process, e.g. in tests,
do not clash). Searches by status are gauges computed at scrape time (see :mod:`dropsearch.api.routes.health`).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ApiMetrics", "MetricsMiddleware"]


class ApiMetrics:
    """The request metrics of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dropsearch_http_requests",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "dropsearch_http_request_duration_seconds",
            "Time to the response start, by method and route template.",
            ("method", "route"),
            registry=self.registry,
        )


class MetricsMiddleware:
    """Pure ASGI middleware counting each HTTP request under its route template (``/v1/searches/{search_id}``).

    Unmatched paths are counted as ``"<unmatched>"`` so that scanning random URLs cannot grow the label set.
    """

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one ASGI connection and count it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = _route_of(scope)
                self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(scope["method"], _route_of(scope), str(status["code"])).inc()


def _route_of(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"
