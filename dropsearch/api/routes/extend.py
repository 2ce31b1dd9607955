"""``POST /v1/searches/{id}/extend``: continue a succeeded search with more trials, from its controller's state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dropsearch.api.deps import CurrentKey, SessionDep, StateDep
from dropsearch.api.errors import SpecRejected
from dropsearch.api.routes.searches import search_or_404
from dropsearch.api.schemas import ErrorPublic, SearchPublic, search_public
from dropsearch.search.spec import SearchSpec
from dropsearch.store.continuation import EXTENDABLE_STATUSES, extend_search
from dropsearch.store.events import append_event

__all__ = ["ExtendRequest", "router"]

router = APIRouter(prefix="/v1/searches", tags=["searches"])


class ExtendRequest(BaseModel):
    """How many trials to add to a succeeded search."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"trials": 16}]})
    trials: int = Field(ge=1, le=1_000_000, description="trials to add; the new total must stay within max_trials")


@router.post(
    "/{search_id}/extend",
    response_model=SearchPublic,
    responses={
        401: {"model": ErrorPublic, "description": "missing, malformed or invalid API key"},
        404: {"model": ErrorPublic, "description": "no such search for this key's owner"},
        409: {
            "model": ErrorPublic,
            "description": "the search is not succeeded (`detail` names its status) or its stored spec is invalid",
        },
        422: {"model": ErrorPublic, "description": "bad body, or the new total is over the server's max_trials"},
    },
    summary="Extend a succeeded search",
)
def extend(search_id: str, key: CurrentKey, session: SessionDep, state: StateDep, body: ExtendRequest) -> SearchPublic:
    """Add trials to a succeeded search and queue it again.

    The runner resumes it from its last controller state: the finished trials are kept as they are (never run
    again), the controller's update count goes on, and only the new trials are trained. ``budget.trials`` of the
    stored spec and the progress total grow by ``trials``.
    """
    record = search_or_404(session, key.owner, search_id)
    if record.status not in EXTENDABLE_STATUSES:
        raise HTTPException(
            409,
            detail=f"search {search_id} is {record.status}; only a succeeded search can be extended "
            "(wait until it ends; a failed or cancelled one can be resumed instead)",
        )
    try:
        SearchSpec.model_validate(record.spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise HTTPException(
            409,
            detail=f"search {search_id}'s stored spec is not valid for this server version "
            f"({'.'.join(map(str, first['loc']))}: {first['msg']}); submit a new search instead",
        ) from exc
    limit, total = state.settings.max_trials, record.trials_total + body.trials
    if total > limit:
        raise SpecRejected(
            "trials",
            f"{record.trials_total} + {body.trials} = {total} trials is over the server's max_trials ({limit}); "
            f"add at most {max(0, limit - record.trials_total)}",
        )
    updated, extended = extend_search(session=session, owner=key.owner, search_id=search_id, trials=body.trials)
    if updated is None:  # pragma: no cover - deleted between the two statements
        raise HTTPException(404, detail=f"search {search_id} not found")
    if not extended:  # changed between the check and the update
        raise HTTPException(
            409, detail=f"search {search_id} is {updated.status}; only a succeeded search can be extended"
        )
    data: dict[str, Any] = {"added": body.trials, "trials_total": updated.trials_total}
    append_event(session=session, search_id=search_id, kind="search_extended", data=data)
    session.commit()
    return search_public(updated, ray_dashboard_url=state.settings.ray_dashboard_url)
