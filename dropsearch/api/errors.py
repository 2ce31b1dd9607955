"""Exception handlers: every 4xx body is ``{"detail": "<what is wrong>"}``, and 422 bodies also list ``errors``.

Pydantic errors become one readable sentence per problem that starts with the field path, e.g.
``"budget.trials: Input should be greater than or equal to 1"``; a body that is not JSON becomes
``"body: malformed JSON at position 12: Expecting value"`` instead of a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from dropsearch.store.errors import NotFoundError

__all__ = ["SpecRejected", "document_error_shapes", "format_errors", "install_error_handlers"]

logger = logging.getLogger(__name__)

_LOCATIONS = ("body",)  # leading loc parts left out of the field path (query/path/header stay, they say where)


class SpecRejected(Exception):
    """A request that is well-formed but breaks a server rule (a cap, a confined path); answered with 422.

    Args:
        field: dotted field path, e.g. ``"budget.trials"``.
        message: what is wrong, naming the value and the limit.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _field_path(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def format_errors(errors: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Turn pydantic/FastAPI error dicts into ``(detail sentence, [{"loc", "field", "msg", "type"}])``."""
    sentences, items = [], []
    for error in errors:
        loc = list(error.get("loc", ()))
        kind = str(error.get("type", "value_error"))
        msg = str(error.get("msg", "invalid value"))
        if kind == "json_invalid":
            position = loc[1] if len(loc) > 1 else "?"
            reason = (error.get("ctx") or {}).get("error", "")
            field, msg = "body", f"malformed JSON at position {position}" + (f": {reason}" if reason else "")
        else:
            field = _field_path(loc)
        sentences.append(f"{field}: {msg}")
        items.append({"loc": [str(part) for part in loc], "field": field, "msg": msg, "type": kind})
    return "; ".join(sentences) or "invalid request", items


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail, items = format_errors(exc.errors())
    return JSONResponse(status_code=422, content={"detail": detail, "errors": items})


async def _rejected_handler(request: Request, exc: SpecRejected) -> JSONResponse:
    item = {"loc": ["body", *exc.field.split(".")], "field": exc.field, "msg": exc.message, "type": "value_error"}
    return JSONResponse(status_code=422, content={"detail": str(exc), "errors": [item]})


async def _not_found_handler(request: Request, exc: NotFoundError) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__}); see server log"})


_PROBLEM_ITEM = {
    "title": "ValidationError",
    "type": "object",
    "required": ["loc", "field", "msg", "type"],
    "properties": {
        "loc": {"title": "Loc", "type": "array", "items": {"type": "string"}},
        "field": {"title": "Field", "type": "string"},
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
    },
}
_PROBLEM = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"title": "Detail", "type": "string"},
        "errors": {"title": "Errors", "type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
    },
}


def document_error_shapes(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document describe the 422 bodies the handlers above really send.

    FastAPI documents its default 422 body (``detail`` as a list); ours is ``{"detail": str, "errors": [...]}``.
    The document is changed in place (and returned).
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "HTTPValidationError" in components:
        components["HTTPValidationError"] = _PROBLEM
        components["ValidationError"] = _PROBLEM_ITEM
    return schema


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(SpecRejected, _rejected_handler)
    app.add_exception_handler(NotFoundError, _not_found_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
