"""The service's search engine: ``run_search(spec, ...)`` runs one whole search and returns how it ended.

Transitional: this entry point will be backed by one Ray Tune experiment per search. Call it from here, not from
``dropsearch.workers``.
"""

from __future__ import annotations

from dropsearch.workers.search_loop import run_search

__all__ = ["run_search"]
