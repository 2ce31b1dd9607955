"""Entry-point plugins of one group, listed once and loaded on demand (standard library only).

Shared by every registry that plugins extend: models (``dropsearch.models``), datasets (``dropsearch.datasets``) and
regularizer variants (``dropsearch.variants``). Names come from requests, so a name is only ever a dictionary key:
nothing is imported from it. An entry point is only loaded (its module imported) when its name is first asked for;
an entry point with a malformed name, or with the name of a built-in, is ignored with a warning.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection
from importlib import metadata

__all__ = ["NAME_PATTERN", "EntryPointGroup", "check_name"]

#: What a registry name (model, dataset, variant) must look like.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def check_name(name: object, *, what: str) -> str:
    """Return ``name`` when it is a valid registry name, else raise ValueError naming it."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"{what} name must match {NAME_PATTERN.pattern}, got {name!r}")
    return name


class EntryPointGroup:
    """The installed entry points of ``group``, read once (until :meth:`refresh`) and never loaded here.

    Args:
        group: the entry-point group, e.g. ``"dropsearch.variants"``.
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self._points: dict[str, metadata.EntryPoint] | None = None

    def points(self, taken: Collection[str] = ()) -> dict[str, metadata.EntryPoint]:
        """Name -> entry point of the group; names in ``taken`` (the built-ins) and malformed names are skipped.

        The list is read on the first call and kept until :meth:`refresh`; ``taken`` is only consulted then.
        """
        if self._points is None:
            found: dict[str, metadata.EntryPoint] = {}
            for ep in metadata.entry_points(group=self.group):
                if not NAME_PATTERN.match(ep.name):
                    warnings.warn(f"ignoring {self.group} entry point with invalid name {ep.name!r}", stacklevel=3)
                elif ep.name in taken:
                    warnings.warn(
                        f"ignoring {self.group} entry point {ep.name!r}: a built-in has that name", stacklevel=3
                    )
                else:
                    found.setdefault(ep.name, ep)
            self._points = found
        return self._points

    def refresh(self) -> None:
        """Forget the list so the next look-up reads the installed entry points again."""
        self._points = None
