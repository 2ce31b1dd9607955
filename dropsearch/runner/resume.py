"""Where a search continues after a restart, read from the store: the controller's state and the trials done.

The store is the source of truth of a search. A runner that takes a search over (after a crash, a lost lease, a
resume of a failed or cancelled search, or an extension) rebuilds a :class:`~dropsearch.runner.events.ResumeState`
from the last stored controller state and the completed trials, and the engine continues from it without
re-running anything that finished. Controller states are stored as ``torch.save`` bytes and loaded with
``weights_only=True`` (database content never runs code).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from dropsearch.runner.events import CompletedTrial, ResumeState

__all__ = ["decode_state", "encode_state", "resume_state"]


def encode_state(state: dict[str, Any]) -> bytes:
    """Serialize a controller ``state_dict`` (tensors, optimizer state, RNG state) to bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def decode_state(blob: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_state`, for tensors and plain containers only.

    The blob comes from the database, so it is loaded with ``weights_only=True``: torch's restricted unpickler
    refuses any other class or callable (a crafted blob cannot run code).

    Raises:
        pickle.UnpicklingError: for a blob holding anything but tensors, numbers, strings and containers.
    """
    import torch

    return torch.load(io.BytesIO(blob), weights_only=True)


def resume_state(saved: Any, completed: Iterable[Any]) -> ResumeState:
    """The resume state from the last stored controller state (or ``None``) and the completed trial records.

    Args:
        saved: a ``ControllerStateRecord`` (``blob``, ``trials_seen``) or ``None`` before the first update.
        completed: the search's completed ``TrialRecord``s (search trials and validation runs).
    """
    resume = ResumeState()
    if saved is not None:
        resume.controller_state = decode_state(saved.blob)
        resume.trials_seen = saved.trials_seen
        if saved.trials_seen == 0 and isinstance(resume.controller_state, dict):
            # A warm start (dropsearch.store.continuation.copy_controller_state): another search's policy,
            # update count and history, but this search numbers its own trials from 0.
            resume.controller_state["n_sampled"] = 0
    for trial in completed:
        if trial.kind == "validation":
            reward = trial.reward if trial.status in ("succeeded", "stopped") else None
            resume.validation_done.append((trial.arm or "", int(trial.seed or 0), reward))
            continue
        done = CompletedTrial(trial.index, tuple(trial.tokens), trial.reward, trial.status, trial.pattern)
        resume.search_trials.append(done)
        if trial.index >= resume.trials_seen:
            resume.completed[trial.index] = done
    return resume
