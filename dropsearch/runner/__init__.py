"""dropsearch.runner: the search engine (one Ray Tune experiment per search) and the service's runner around it.

- :func:`dropsearch.runner.engine.run_search` runs one whole search on Ray Tune and reports typed events
  (:mod:`dropsearch.runner.events`);
- :class:`Runner` claims queued searches from the store and runs each through a :class:`SearchExecution`, which
  writes every event to the store and resumes a search after a crash.

Names are imported lazily so that a Ray worker that only needs the trainable does not load the store.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Runner", "SearchExecution", "decode_state", "default_runner_id", "encode_state"]

_WHERE = {
    "Runner": "dropsearch.runner.runner",
    "default_runner_id": "dropsearch.runner.runner",
    "SearchExecution": "dropsearch.runner.execution",
    "decode_state": "dropsearch.runner.execution",
    "encode_state": "dropsearch.runner.execution",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'dropsearch.runner' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
