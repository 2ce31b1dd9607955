"""``/v1/searches``: submit, list, read, cancel, resume, follow (SSE), download the best pattern, plot."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from dropsearch.api.deps import CurrentKey, ReadSessionDep, SessionDep, StateDep
from dropsearch.api.events_stream import search_event_stream
from dropsearch.api.plots import reward_plot_png
from dropsearch.api.policy import check_spec
from dropsearch.api.schemas import ErrorPublic, SearchesPublic, SearchPublic, search_public, validation_table
from dropsearch.api.warm_start import check_warm_start, copy_warm_start
from dropsearch.search.spec import SearchSpec, validation_trials
from dropsearch.store.db import session_scope
from dropsearch.store.models import SEARCH_STATUSES, TERMINAL_SEARCH_STATUSES
from dropsearch.store.records import SearchRecord
from dropsearch.store.searches import create_search, get_search, list_searches, request_cancel, resume_search
from dropsearch.store.trials import best_trial, list_trials

__all__ = ["MAX_EVENT_ID", "MAX_OFFSET", "router", "search_or_404"]

router = APIRouter(prefix="/v1/searches", tags=["searches"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "missing, malformed or invalid API key"},
    404: {"model": ErrorPublic, "description": "no such search for this key's owner"},
}
#: Largest ``offset`` accepted (larger ones overflow the databases' integers; no owner has that many rows).
MAX_OFFSET = 2**31 - 1
#: Largest event id a client may name (SQLite and Postgres ids are signed 64-bit integers).
MAX_EVENT_ID = 2**63 - 1
_EVENT_ID_PATTERN = r"^\s*([0-9]{1,19})?\s*$"  # documented; empty: no resume
_EVENT_ID = re.compile(r"[0-9]{1,19}")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def search_or_404(session: Any, owner: str, search_id: str) -> SearchRecord:
    """The owner's search, or 404 (another owner's search looks exactly like a missing one)."""
    record = get_search(session=session, owner=owner, search_id=search_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"search {search_id} not found")
    return record


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SearchPublic,
    responses={
        **_ERRORS,
        413: {"model": ErrorPublic, "description": "body too large"},
        422: {"model": ErrorPublic, "description": "invalid spec; `detail` names the field"},
    },
    summary="Submit a search",
)
def submit_search(spec: SearchSpec, key: CurrentKey, session: SessionDep, state: StateDep) -> SearchPublic:
    """Validate a job spec against the server's limits and store it as a queued search (the runner picks it up)."""
    check_spec(spec, state.settings)
    warm_source = check_warm_start(session, key.owner, spec)
    record = create_search(
        session=session,
        owner=key.owner,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        trials_total=spec.budget.trials + validation_trials(spec),  # validation runs count in the progress
        objective_mode=spec.objective.mode,
    )
    copy_warm_start(session, warm_source, record.id)
    session.commit()
    return search_public(record, ray_dashboard_url=state.settings.ray_dashboard_url)


@router.get("", response_model=SearchesPublic, responses=_ERRORS, summary="List your searches")
def list_my_searches(
    key: CurrentKey,
    session: ReadSessionDep,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status_: Annotated[
        str | None,
        Query(
            alias="status",
            description=f"one of {', '.join(SEARCH_STATUSES)}",
            json_schema_extra={"enum": list(SEARCH_STATUSES)},
        ),
    ] = None,
) -> SearchesPublic:
    """The caller's searches, newest first."""
    if status_ is not None and status_ not in SEARCH_STATUSES:
        raise HTTPException(422, detail=f"query.status: must be one of {', '.join(SEARCH_STATUSES)}, got {status_!r}")
    page = list_searches(session=session, owner=key.owner, limit=limit, offset=offset, status=status_)
    url = state.settings.ray_dashboard_url
    return SearchesPublic(data=[search_public(r, ray_dashboard_url=url) for r in page.items], count=page.total)


@router.get("/{search_id}", response_model=SearchPublic, responses=_ERRORS, summary="Read a search")
def read_search(search_id: str, key: CurrentKey, session: ReadSessionDep, state: StateDep) -> SearchPublic:
    """Status, progress, best reward so far and the Ray dashboard URL."""
    record = search_or_404(session, key.owner, search_id)
    return search_public(record, ray_dashboard_url=state.settings.ray_dashboard_url)


@router.post(
    "/{search_id}/cancel",
    response_model=SearchPublic,
    responses={**_ERRORS, 409: {"model": ErrorPublic, "description": "the search has already finished"}},
    summary="Cancel a search",
)
def cancel_search(search_id: str, key: CurrentKey, session: SessionDep, state: StateDep) -> SearchPublic:
    """A queued search is cancelled at once; a running one gets ``cancel_requested`` (the runner stops it)."""
    record = search_or_404(session, key.owner, search_id)
    if record.status in TERMINAL_SEARCH_STATUSES:
        detail = f"search {search_id} is already {record.status}; only queued or running searches can be cancelled"
        raise HTTPException(409, detail=detail)
    updated = request_cancel(session=session, owner=key.owner, search_id=search_id)
    session.commit()
    if updated is None:  # pragma: no cover - deleted between the two statements
        raise HTTPException(404, detail=f"search {search_id} not found")
    return search_public(updated, ray_dashboard_url=state.settings.ray_dashboard_url)


@router.post(
    "/{search_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SearchPublic,
    responses={
        **_ERRORS,
        409: {"model": ErrorPublic, "description": "the search is queued, running or succeeded; `detail` names it"},
    },
    summary="Resume a failed or cancelled search",
)
def resume_my_search(search_id: str, key: CurrentKey, session: SessionDep, state: StateDep) -> SearchPublic:
    """Queue a failed or cancelled search again; the runner continues it from its last stored controller state.

    Every finished trial is kept (none is trained again).
    """
    record = search_or_404(session, key.owner, search_id)
    updated, resumed = resume_search(session=session, owner=key.owner, search_id=search_id)
    session.commit()
    if updated is None:  # pragma: no cover - deleted between the two statements
        raise HTTPException(404, detail=f"search {search_id} not found")
    if not resumed:
        current = updated.status or record.status
        detail = f"search {search_id} is {current}; only failed or cancelled searches can be resumed"
        raise HTTPException(409, detail=detail)
    return search_public(updated, ray_dashboard_url=state.settings.ray_dashboard_url)


@router.get(
    "/{search_id}/events",
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
    response_class=StreamingResponse,
    summary="Follow a search (server-sent events)",
)
def follow_search(
    search_id: str,
    key: CurrentKey,
    state: StateDep,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="send only events with a larger id")] = 0,
    last_event_id: Annotated[
        str,
        Header(
            description="resume after this event id (SSE reconnect)",
            json_schema_extra={"pattern": _EVENT_ID_PATTERN},
        ),
    ] = "",
) -> StreamingResponse:
    """Trial started / reported / finished and controller events; ends with ``event: end`` once finished."""
    with session_scope(state.engine, read_only=True) as session:  # not a dependency: no transaction while streaming
        search_or_404(session, key.owner, search_id)
    cursor = after
    text = last_event_id.strip()
    if text:
        if not _EVENT_ID.fullmatch(text):  # ASCII digits only (int() takes other scripts' digits too)
            detail = f"header.last-event-id: must be an event id (integer), got {last_event_id!r}"
            raise HTTPException(422, detail=detail)
        cursor = min(int(text), MAX_EVENT_ID)  # no event has a larger id
    stream = search_event_stream(
        state.engine,
        owner=key.owner,
        search_id=search_id,
        after=cursor,
        poll_s=state.sse_poll_s,
        keepalive_s=state.sse_keepalive_s,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


@router.get(
    "/{search_id}/best",
    responses={**_ERRORS, 200: {"content": {"application/json": {}}, "description": "the pattern document"}},
    summary="Download the best pattern",
)
def download_best(search_id: str, key: CurrentKey, session: ReadSessionDep) -> JSONResponse:
    """The best pattern (docs/REGULARIZERS.md) with its provenance, as a JSON attachment.

    Once the search's validation stage has a result, the best pattern is the validated one: the arm with the best
    mean over its re-trainings, with the stage's table under ``validation`` (per arm mean, sd, n, seeds and the
    paired gap to each baseline with its 95% interval; ``conclusion`` says plainly when nothing beat no dropout
    beyond noise). Before that (or without the stage) it is the search trial with the best reward.
    """
    record = search_or_404(session, key.owner, search_id)
    spec = record.spec
    provenance = {
        "search_id": record.id,
        "metric": (spec.get("objective") or {}).get("metric", "val_accuracy"),
        "model": (spec.get("model") or {}).get("name"),
        "dataset": (spec.get("dataset") or {}).get("name"),
    }
    validation = record.validation or {}
    if validation.get("chosen") and validation.get("pattern"):
        document = _validated_best(record, validation, provenance, session)
    else:
        trial = best_trial(session=session, search_id=search_id)
        if trial is None:
            raise HTTPException(404, detail=f"search {search_id} has no finished trial with a reward yet")
        if trial.pattern is None:
            raise HTTPException(404, detail=f"the best trial {trial.id} of search {search_id} has no stored pattern")
        created = trial.finished_at or trial.created_at
        document = dict(trial.pattern)
        document["provenance"] = {
            **dict(document.get("provenance") or {}),
            **provenance,
            "trial_id": trial.id,
            "reward": trial.reward,
            "validated": False,
            "created_at": created.isoformat(),
        }
    stem = _UNSAFE_FILENAME.sub("-", record.name or record.id).strip("-.") or record.id
    headers = {"Content-Disposition": f'attachment; filename="{stem}-best-pattern.json"'}
    return JSONResponse(document, headers=headers)


def _validated_best(record: Any, validation: dict[str, Any], provenance: dict[str, Any], session: Any) -> dict:
    """The validation stage's chosen arm as a pattern document, with the stage's table."""
    chosen = next(arm for arm in validation["arms"] if arm["name"] == validation["chosen"])
    trial_id = None
    if chosen.get("trial_index") is not None:
        page = list_trials(session=session, search_id=record.id, limit=1, offset=int(chosen["trial_index"]))
        trial_id = next((t.id for t in page.items if t.index == chosen["trial_index"]), None)
    document = dict(validation["pattern"])
    document["provenance"] = {
        **dict(document.get("provenance") or {}),
        **provenance,
        "trial_id": trial_id,
        "reward": chosen.get("mean"),
        "search_reward": chosen.get("search_reward"),
        "validated": True,
        "arm": chosen["name"],
        "created_at": record.updated_at.isoformat(),
    }
    document["validation"] = validation_table(validation)
    return document


@router.get(
    "/{search_id}/plot.png",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"image/png": {}}, "description": "PNG picture"}},
    summary="Reward per trial and best so far",
)
def plot_search(search_id: str, key: CurrentKey, state: StateDep) -> Response:
    """A PNG of each finished search trial's reward, the best-so-far curve and the validation arms (mean ± sd)."""
    with session_scope(state.engine, read_only=True) as session:  # closed before the (slow) drawing
        record = search_or_404(session, key.owner, search_id)
        trials = list_trials(session=session, search_id=search_id, limit=None).items
    metric = (record.spec.get("objective") or {}).get("metric", "")
    png = reward_plot_png(
        trials, mode=record.objective_mode, title=record.name or record.id, metric=metric, validation=record.validation
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
