"""The FastAPI application: ``create_app(settings)``, and a lazy module-level ``app`` for uvicorn.

Run it with ``uvicorn dropsearch.api.app:app`` (settings from the environment, prefix ``DROPSEARCH_``). The API
only writes queued searches and reads; the runner (a separate component) executes them. Importing this module
imports neither torch nor Ray.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from dropsearch import __version__
from dropsearch.api.deps import AppState
from dropsearch.api.errors import document_error_shapes, install_error_handlers
from dropsearch.api.limits import RequestSizeLimit
from dropsearch.api.metrics import ApiMetrics, MetricsMiddleware
from dropsearch.api.routes import catalog, extend, health, searches, spec_schema, trials
from dropsearch.api.schemas import ErrorPublic
from dropsearch.api.strict_query import reject_unknown_query
from dropsearch.api.ui.routes import install_ui
from dropsearch.config import Settings, get_settings
from dropsearch.store.db import make_engine
from dropsearch.store.migrate import upgrade

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """Search for the best dropout regularization of a neural network.

Every route but `/healthz` needs `Authorization: Bearer <key>` (keys are made with `dropsearch keys create`).
Submit a job spec to `POST /v1/searches`, follow it on `/v1/searches/{id}/events` (server-sent events) and
download the best pattern from `/v1/searches/{id}/best`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    migrate: bool | None = None,
    sse_poll_s: float = 0.5,
    sse_keepalive_s: float = 15.0,
) -> FastAPI:
    """Build the API app.

    Args:
        settings: service settings. Default: :func:`~dropsearch.config.get_settings`
        migrate: run the store's migrations at startup (:func:`dropsearch.store.migrate.upgrade`). Default: the
            setting ``migrate_on_start`` if the settings have it, else ``True`` (safe to run repeatedly).
        sse_poll_s: how often the event stream polls the store, in seconds. Default: 0.5
        sse_keepalive_s: idle time after which the event stream sends a keep-alive comment. Default: 15.0

    Returns:
        The app. Its engine is created now and disposed at shutdown; migrations run at startup (lifespan).
    """
    settings = settings if settings is not None else get_settings()
    if sse_poll_s <= 0 or sse_keepalive_s <= 0:
        raise ValueError(f"sse_poll_s and sse_keepalive_s must be > 0, got {sse_poll_s}, {sse_keepalive_s}")
    run_migrations = bool(getattr(settings, "migrate_on_start", True)) if migrate is None else migrate
    url = settings.resolved_database_url
    engine = make_engine(url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            logger.info("migrating the database to the newest schema")
            await run_in_threadpool(upgrade, url)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="dropsearch",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served from packaged assets by install_ui (no CDN)
        redoc_url=None,
        responses={
            400: {
                "model": ErrorPublic,
                "description": "unreadable request (a body that is not UTF-8 JSON, a bad length)",
            },
            500: {"model": ErrorPublic, "description": "internal error; the body names the exception type"},
        },
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_error_shapes(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.dropsearch = AppState(
        settings=settings, engine=engine, sse_poll_s=sse_poll_s, sse_keepalive_s=sse_keepalive_s
    )
    app.state.metrics = ApiMetrics()
    install_error_handlers(app)
    for module in (searches, extend, trials, catalog, spec_schema):
        app.include_router(module.router, dependencies=[Depends(reject_unknown_query)])
    app.include_router(health.router)  # probes stay lenient: no key, any query
    install_ui(app)  # the web dashboard (/, /ui/, /ui/searches/{id}, /ui/static) and /docs, /redoc
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: counts 413s too
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access (uvicorn's getattr), so importing this module reads no settings.
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
