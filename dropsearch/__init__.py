"""dropsearch: search for the best dropout regularization of a neural network.

``dropsearch.apply(model, pattern)`` installs a downloaded pattern into a model. Importing this package is
cheap: torch is only imported when :func:`apply` (or a subpackage that needs it) is first used, so the API
server can import ``dropsearch.api`` without torch or Ray.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["apply", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "apply":
        from dropsearch.regularizers._apply import apply

        return apply
    raise AttributeError(f"module 'dropsearch' has no attribute {name!r}")
