"""``/healthz`` (no auth) and ``/metrics`` (Prometheus text; an admin key required)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from dropsearch.api.deps import CurrentKey, StateDep
from dropsearch.api.schemas import ErrorPublic, HealthPublic
from dropsearch.store.db import session_scope
from dropsearch.store.models import SEARCH_STATUSES
from dropsearch.store.searches import list_searches, load_search

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "the database cannot be reached"}},
    summary="Liveness",
)
def healthz(state: StateDep) -> JSONResponse:
    """``{"status": "ok", "database": "ok"}`` when the database answers a query on the schema."""
    try:
        with session_scope(state.engine, read_only=True) as session:
            load_search(session=session, search_id="healthz")
    except Exception:
        logger.exception("health check: database query failed")
        return JSONResponse({"status": "degraded", "database": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        401: {"model": ErrorPublic},
        403: {"model": ErrorPublic, "description": "not an admin key"},
    },
    summary="Prometheus metrics",
)
def metrics(request: Request, key: CurrentKey, state: StateDep) -> Response:
    """Request counters and latencies by route and status, and the caller's searches by status (gauges).

    Only an admin key may read it (403 otherwise): the request counters cover every owner's traffic.
    """
    if not key.is_admin:
        raise HTTPException(403, detail="/metrics needs an admin key: request counts cover every owner's traffic")
    api_metrics = request.app.state.metrics
    searches = CollectorRegistry(auto_describe=True)
    gauge = Gauge(
        "dropsearch_searches", "Searches of this key's owner by status.", ("owner", "status"), registry=searches
    )
    with session_scope(state.engine, read_only=True) as session:
        for status in SEARCH_STATUSES:
            total = list_searches(session=session, owner=key.owner, limit=1, status=status).total
            gauge.labels(key.owner, status).set(total)
    body = generate_latest(api_metrics.registry) + generate_latest(searches)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
