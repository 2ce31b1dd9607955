"""Domain errors raised by the store (the API maps them to HTTP statuses; bad arguments raise ``ValueError``)."""

from __future__ import annotations

__all__ = ["NotFoundError", "StoreError", "TrialCompletedError"]


class StoreError(Exception):
    """Base class of the store's domain errors."""


class NotFoundError(StoreError, LookupError):
    """The search or trial named does not exist."""


class TrialCompletedError(StoreError):
    """A completed trial (succeeded, stopped or finally failed) was asked to start again; it is never re-run."""
