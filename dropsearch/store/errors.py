"""Domain errors raised by the store (the API maps them to HTTP statuses; bad arguments raise ``ValueError``)."""

from __future__ import annotations

__all__ = ["LeaseLostError", "NotFoundError", "StoreError", "TrialCompletedError"]


class StoreError(Exception):
    """Base class of the store's domain errors."""


class NotFoundError(StoreError, LookupError):
    """The search or trial named does not exist."""


class TrialCompletedError(StoreError):
    """A completed trial (succeeded, stopped or finally failed) was asked to start again; it is never re-run."""


class LeaseLostError(StoreError):
    """A runner wrote under a lease it no longer holds (taken over, released, or the search finished).

    The write was not made (the check runs in the write's own transaction); the runner must stop the search.
    """
