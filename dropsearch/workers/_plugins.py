"""A name -> factory registry with lazily loaded entry-point plugins, shared by the model and dataset registries.

Names come from requests, so a name is only ever a dictionary key: nothing is imported from it. Plugins are
found through :class:`dropsearch._entry_points.EntryPointGroup` (``importlib.metadata`` entry points of a fixed
group, e.g. ``dropsearch.models``); an entry point is only loaded (its module imported) when its name is first asked
for. Built-in names cannot be shadowed by a plugin.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from dropsearch._entry_points import NAME_PATTERN, EntryPointGroup, check_name

__all__ = ["NAME_PATTERN", "Entry", "PluginRegistry", "check_name"]


@dataclass(frozen=True)
class Entry:
    """One registered factory.

    Args:
        name: the registry name.
        factory: the callable; its keyword parameters with defaults (other than the reserved ones) are the
            accepted params.
        description: one line shown in catalogs.
        params: accepted params and their defaults; ``None`` when the factory takes ``**kwargs`` (anything goes).
        attrs: extra facts (e.g. the input kinds of a model).
    """

    name: str
    factory: Callable[..., Any]
    description: str
    params: dict[str, Any] | None
    attrs: dict[str, Any]


def _signature_params(factory: Callable[..., Any], reserved: tuple[str, ...], what: str) -> dict[str, Any] | None:
    """The factory's user params with their defaults, or ``None`` when it takes ``**kwargs``."""
    sig = inspect.signature(factory)
    kinds = {p.kind for p in sig.parameters.values()}
    missing = [r for r in reserved if r not in sig.parameters]
    if missing and inspect.Parameter.VAR_KEYWORD not in kinds:
        raise ValueError(f"{what} factory {factory!r} must accept the keyword argument(s) {missing}")
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return None
    params: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.name in reserved or p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if p.default is inspect.Parameter.empty:
            raise ValueError(f"{what} factory {factory!r}: parameter {p.name!r} needs a default")
        params[p.name] = p.default
    return params


class PluginRegistry:
    """Built-in factories plus entry-point plugins of one group.

    Args:
        what: what the registry holds, for messages (``"model"``).
        group: the entry-point group searched for plugins (``"dropsearch.models"``).
        reserved: keyword arguments every factory takes that are not user params (``("in_shape", "num_classes")``).
        attr_defaults: extra facts read from factory attributes of the same name, with their defaults.
    """

    def __init__(self, what: str, group: str, reserved: tuple[str, ...], attr_defaults: dict[str, Any]) -> None:
        self.what = what
        self.group = group
        self.reserved = reserved
        self.attr_defaults = dict(attr_defaults)
        self._entries: dict[str, Entry] = {}
        self._group = EntryPointGroup(group)

    def register(self, name: str, factory: Callable[..., Any], *, replace: bool = False, **attrs: Any) -> Entry:
        """Register ``factory`` under ``name``; ``attrs`` override the factory's own attributes."""
        check_name(name, what=self.what)
        if not callable(factory):
            raise ValueError(f"{self.what} {name!r}: factory must be callable, got {factory!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered")
        unknown = set(attrs) - set(self.attr_defaults) - {"description"}
        if unknown:
            raise ValueError(f"unknown {self.what} attribute(s): {sorted(unknown)}")
        doc = inspect.getdoc(factory) or ""
        description = attrs.pop("description", None) or getattr(factory, "description", None) or doc.split("\n")[0]
        facts = {key: attrs.get(key, getattr(factory, key, default)) for key, default in self.attr_defaults.items()}
        entry = Entry(name, factory, str(description), _signature_params(factory, self.reserved, self.what), facts)
        self._entries[name] = entry
        return entry

    def _plugin_points(self) -> dict[str, metadata.EntryPoint]:
        return self._group.points(taken=self._entries)

    def refresh(self) -> None:
        """Forget the plugin list so the next look-up reads the installed entry points again."""
        self._group.refresh()

    def names(self) -> list[str]:
        """Built-in and plugin names, sorted (plugins are listed without being loaded)."""
        return sorted(set(self._entries) | set(self._plugin_points()))

    def get(self, name: object) -> Entry:
        """The entry of ``name``, loading its plugin on first use; ValueError listing the known names if unknown."""
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        points = self._plugin_points()
        if not isinstance(name, str) or name not in points:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}")
        factory = points[name].load()
        return self.register(name, factory)

    def check_params(self, entry: Entry, params: dict[str, Any] | None) -> dict[str, Any]:
        """``params`` merged over the entry's defaults; ValueError naming any unknown or reserved param."""
        params = dict(params or {})
        bad = sorted(k for k in params if k in self.reserved)
        if entry.params is not None:
            bad += sorted(k for k in params if k not in entry.params and k not in self.reserved)
        if bad:
            known = ", ".join(entry.params or {})
            raise ValueError(f"unknown {self.what} param(s) {bad} for {entry.name!r}; accepted: {known}")
        return {**(entry.params or {}), **params}
