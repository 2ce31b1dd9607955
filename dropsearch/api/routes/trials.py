"""Trials: a search's trials (paginated JSON, or every trial as CSV) and a picture of one trial's dropout masks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Response

from dropsearch.api.deps import CurrentKey, ReadSessionDep, StateDep
from dropsearch.api.export import CSV_MEDIA_TYPE, file_stem, trials_csv
from dropsearch.api.plots import mask_png
from dropsearch.api.routes.searches import MAX_OFFSET, search_or_404
from dropsearch.api.schemas import ErrorPublic, TrialsPublic, trial_public
from dropsearch.store.db import session_scope
from dropsearch.store.models import TRIAL_STATUSES
from dropsearch.store.trials import get_trial, list_trials

__all__ = ["router"]

router = APIRouter(tags=["trials"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "missing, malformed or invalid API key"},
    404: {"model": ErrorPublic, "description": "no such search or trial for this key's owner"},
}


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON page of trials, or (`format=csv` / `Accept: text/csv`) every trial as one CSV table",
    }
}


def _wants_csv(format_: str | None, accept: str) -> bool:
    if format_ is not None:
        return format_ == "csv"
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "text/csv" in types and "application/json" not in types


@router.get(
    "/v1/searches/{search_id}/trials",
    response_model=TrialsPublic,
    responses={**_ERRORS, **_CSV_RESPONSE},
    summary="List trials",
)
def list_search_trials(
    search_id: str,
    key: CurrentKey,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="page size (JSON only)")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="trials skipped (JSON only)")] = 0,
    status: Annotated[
        str | None,
        Query(description=f"one of {', '.join(TRIAL_STATUSES)}", json_schema_extra={"enum": list(TRIAL_STATUSES)}),
    ] = None,
    format_: Annotated[
        Literal["json", "csv"] | None,
        Query(alias="format", description="csv: every trial (not one page) as CSV; default: the Accept header"),
    ] = None,
    accept: Annotated[str, Header(description="text/csv asks for CSV (as format=csv)")] = "",
) -> Any:
    """A search's trials by index: pattern, status, attempt, per-epoch metrics, reward and timings.

    As CSV (``?format=csv`` or ``Accept: text/csv``) every trial comes in one table, one row per trial, with the
    per-site rates and the per-epoch metrics flattened into columns such as ``epoch_3.val_accuracy``.
    """
    record = search_or_404(session, key.owner, search_id)
    if status is not None and status not in TRIAL_STATUSES:
        raise HTTPException(422, detail=f"query.status: must be one of {', '.join(TRIAL_STATUSES)}, got {status!r}")
    if _wants_csv(format_, accept):
        statuses = None if status is None else [status]
        every = list_trials(session=session, search_id=search_id, limit=None, statuses=statuses).items
        stem = file_stem(record.name, record.id)
        headers = {"Content-Disposition": f'attachment; filename="{stem}-trials.csv"', "Cache-Control": "no-store"}
        return Response(trials_csv(every), media_type=CSV_MEDIA_TYPE, headers=headers)
    page = list_trials(
        session=session, search_id=search_id, limit=limit, offset=offset, statuses=None if status is None else [status]
    )
    return TrialsPublic(data=[trial_public(t) for t in page.items], count=page.total)


@router.get(
    "/v1/trials/{trial_id}/mask.png",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"image/png": {}}, "description": "PNG picture"}},
    summary="Picture of a trial's dropout masks",
)
def trial_mask(
    trial_id: str,
    key: CurrentKey,
    state: StateDep,
    seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="seed of the sampled masks")] = 0,
) -> Response:
    """Sampled keep masks per site (AutoDropout, SpatialDropout, DropBlock, Bernoulli), else per-site rates."""
    with session_scope(state.engine, read_only=True) as session:
        trial = get_trial(session=session, owner=key.owner, trial_id=trial_id)
    if trial is None:
        raise HTTPException(404, detail=f"trial {trial_id} not found")
    if trial.pattern is None:
        raise HTTPException(404, detail=f"trial {trial_id} has no pattern yet")
    png = mask_png(trial.pattern, seed=seed, title=f"trial {trial.index}: {trial.pattern.get('variant', '?')}")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
