"""dropsearch: search for the best dropout regularization of a neural network.

``dropsearch.apply(model, pattern)`` installs a downloaded pattern into a model, and
``dropsearch.find_sites(model, example_input)`` lists the dropout sites of any ``nn.Module``. Importing this
package is cheap: torch is only imported when one of them (or a subpackage that needs it) is first used, so the
API server can import ``dropsearch.api`` without torch or Ray, and ``pip install dropsearch`` (torch and numpy
alone) is enough for both functions.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["apply", "find_sites", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "apply":
        from dropsearch.regularizers._apply import apply

        return apply
    if name == "find_sites":
        from dropsearch.regularizers.find_sites import find_sites

        return find_sites
    raise AttributeError(f"module 'dropsearch' has no attribute {name!r}")
