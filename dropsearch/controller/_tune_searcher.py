"""What dropsearch's Ray Tune searchers share: metric/mode from ``TuneConfig``, a state file for ``Tuner.restore``."""

from __future__ import annotations

import os
import pickle
from typing import Any

from ray.tune.search import Searcher

__all__ = ["StatefulSearcher"]


class StatefulSearcher(Searcher):
    """A Tune ``Searcher`` whose whole state is :meth:`get_state` (plain, picklable) and :meth:`set_state`."""

    def get_state(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        """The searcher's state."""
        raise NotImplementedError

    def set_state(self, state: dict[str, Any]) -> None:  # pragma: no cover - every subclass defines it
        """Inverse of :meth:`get_state`."""
        raise NotImplementedError

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take ``metric`` / ``mode`` from ``TuneConfig`` unless given to the constructor (they must agree)."""
        for attr, value in (("_metric", metric), ("_mode", mode)):
            current = getattr(self, attr)
            if value is not None and current is not None and value != current:
                raise ValueError(f"{attr[1:]} {value!r} from TuneConfig differs from the searcher's {current!r}")
            if current is None:
                setattr(self, attr, value)
        return True

    def save(self, checkpoint_path: str) -> None:
        """Write :meth:`get_state` to ``checkpoint_path`` atomically (temp file, then ``os.replace``)."""
        tmp = f"{checkpoint_path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump(self.get_state(), f)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        """Load a file written by :meth:`save`."""
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))  # our own checkpoint file: trusted like Tune's own pickles
