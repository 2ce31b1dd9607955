"""Warm start: a new search's controller starts from an earlier search's latest controller state.

``controller.warm_start_from`` names the earlier search. At submit it must be the caller's own search, search the
same space with the same kind of controller (the policy's shape depends on the model's sites and the space), and
have a stored controller state; the store then copies that state into the new search
(:func:`dropsearch.store.continuation.copy_controller_state`) and the runner loads it as the controller's start.
"""

from __future__ import annotations

from typing import Any

from dropsearch.api.errors import SpecRejected
from dropsearch.search.spec import SearchSpec
from dropsearch.store.continuation import copy_controller_state
from dropsearch.store.controller_states import latest_controller_state
from dropsearch.store.db import Session
from dropsearch.store.searches import get_search

__all__ = ["FIELD", "SAME", "check_warm_start", "copy_warm_start"]

FIELD = "controller.warm_start_from"
#: Parts of the spec that must equal the source search's for its controller state to fit.
SAME = ("model", "space", "controller.name")


def _part(spec: dict[str, Any], dotted: str) -> Any:
    value: Any = spec
    for key in dotted.split("."):
        value = (value or {}).get(key)
    return value


def check_warm_start(session: Session, owner: str, spec: SearchSpec) -> str | None:
    """The source search id if the spec asks for a warm start, after checking it may be used.

    Raises:
        SpecRejected: naming ``controller.warm_start_from`` when the source is missing (or another owner's), has
            no stored controller state yet, or differs in model, space or controller name.
    """
    source_id = spec.controller.warm_start_from
    if source_id is None:
        return None
    source = get_search(session=session, owner=owner, search_id=source_id)
    if source is None:
        raise SpecRejected(FIELD, f"no search {source_id} of yours to warm-start from (see dropsearch list)")
    mine = spec.model_dump(mode="json")
    theirs = SearchSpec.model_validate(source.spec).model_dump(mode="json")
    for part in SAME:
        if _part(mine, part) != _part(theirs, part):
            raise SpecRejected(
                FIELD,
                f"search {source_id} has another {part} ({_part(theirs, part)!r}); a warm start needs the same "
                f"{', '.join(SAME)} (copy them from that search's spec)",
            )
    if latest_controller_state(session=session, search_id=source_id) is None:
        raise SpecRejected(
            FIELD, f"search {source_id} has no stored controller state yet (wait for its first controller update)"
        )
    return source_id


def copy_warm_start(session: Session, source_id: str | None, target_id: str) -> None:
    """Copy the checked source's latest controller state into the new search (nothing when ``source_id`` is None)."""
    if source_id is not None:
        copy_controller_state(session=session, source_id=source_id, target_id=target_id)
