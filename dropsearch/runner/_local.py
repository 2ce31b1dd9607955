"""Objects that Ray Tune may pickle but that must stay the live objects of this driver process.

Tune pickles its experiment (search algorithm, callbacks, stopper) into the experiment directory and may copy
them. The engine's callback and stopper hold the caller's event hooks (database sessions, locks), which cannot
be pickled, and their state must be the one the engine reads after the run. A :class:`ProcessLocal` pickles as
a key into this process's table of live objects, so unpickling it in this process gives back the same object.
A search's experiment is never restored from Tune's files (the store is the source of truth), so the key never
needs to resolve in another process.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["ProcessLocal"]

_LIVE: dict[str, Any] = {}


def _resolve(key: str) -> Any:
    try:
        return _LIVE[key]
    except KeyError:
        raise RuntimeError(f"process-local object {key} is gone (its search ended)") from None


class ProcessLocal:
    """Mixin: instances pickle as a reference to themselves in this process (see the module docstring)."""

    _local_key: str

    def keep_alive(self) -> None:
        """Register this object; call :meth:`release` when the run that uses it ends."""
        self._local_key = uuid.uuid4().hex
        _LIVE[self._local_key] = self

    def release(self) -> None:
        """Forget this object."""
        _LIVE.pop(getattr(self, "_local_key", ""), None)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _resolve, (self._local_key,)
