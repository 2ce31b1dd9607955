"""Unknown query parameters are refused (422 naming them), never silently ignored.

A typo such as ``?stauts=running`` would otherwise answer the unfiltered list as if it were the filtered one. Each
API router depends on :func:`reject_unknown_query`, which compares the request's parameter names with those the
matched route declares (its dependencies' included).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

__all__ = ["declared_query_names", "reject_unknown_query"]


_ATTRIBUTE = "_dropsearch_query_names"  # kept on the route (routes are unhashable, so no cache dict)


def declared_query_names(route: APIRoute) -> frozenset[str]:
    """The query parameter names ``route`` takes (aliases, as clients send them), its dependencies' included."""
    names = getattr(route, _ATTRIBUTE, None)
    if names is None:
        names = frozenset(_query_names(route.dependant))
        setattr(route, _ATTRIBUTE, names)
    return names


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Raise a 422 validation error listing every query parameter the matched route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = declared_query_names(route)
    unknown = [name for name in request.query_params if name not in allowed]  # each name once
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown query parameter; this route takes: {takes}",
                    "input": request.query_params.getlist(name)[0],
                }
                for name in unknown
            ]
        )
