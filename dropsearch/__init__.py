"""dropsearch: search for the best dropout regularization of a neural network.

``dropsearch.apply(model, pattern)`` installs a downloaded pattern into a model,
``dropsearch.find_sites(model, example_input)`` lists the dropout sites of any ``nn.Module``, and
``dropsearch.optimize(model_fn, train, val, ...)`` runs a whole search on a local Ray without the service (it needs
``dropsearch[service]``; it is not called ``dropsearch.search``, which is the subpackage of that name). Importing this
package is cheap: torch is only imported when one of them (or a subpackage that needs it) is first used, so the
API server can import ``dropsearch.api`` without torch or Ray, and ``pip install dropsearch`` (torch and numpy
alone) is enough for the first two.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["apply", "find_sites", "optimize", "LocalSearchResult", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "apply":
        from dropsearch.regularizers._apply import apply

        return apply
    if name == "find_sites":
        from dropsearch.regularizers.find_sites import find_sites

        return find_sites
    if name in ("optimize", "LocalSearchResult"):
        from dropsearch.runner import local_search

        return getattr(local_search, name)
    raise AttributeError(f"module 'dropsearch' has no attribute {name!r}")
