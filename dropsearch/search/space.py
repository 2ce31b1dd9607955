"""Search spaces: an ordered list of decisions, each with a finite list of choices (docs/SEARCH.md).

A proposal is a tuple of *tokens*, one per decision: token ``i`` is an index into ``decisions[i].choices``.
Generic spaces (any decisions) drive the controllers; the built-in spaces of :mod:`dropsearch.search.builtin`
also carry the model's dropout sites so their tokens decode to a :class:`~dropsearch.regularizers.pattern.Pattern`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dropsearch.regularizers.pattern import Site

__all__ = ["Decision", "SearchSpace", "normalize_choice"]


def normalize_choice(value: Any) -> Any:
    """The canonical (JSON) form of a choice: tuples become lists, recursively; numbers stay numbers."""
    if isinstance(value, (list, tuple)):
        return [normalize_choice(v) for v in value]
    return value


def _choice_key(value: Any) -> str:
    """A hashable key under which equal choices (``1 == 1.0``, ``(1,) == [1]``) collide."""
    value = normalize_choice(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("a choice must not be NaN")
        return json.dumps(float(value))
    if isinstance(value, list):
        return "[" + ",".join(_choice_key(v) for v in value) + "]"
    raise ValueError(f"a choice must be a JSON scalar or list, got {value!r}")


@dataclass(frozen=True)
class Decision:
    """One decision of a search space.

    Args:
        name: unique name in its space (e.g. ``"variant"``, ``"layer1.0/rate"``).
        choices: the values this decision can take, in token order (token ``k`` means ``choices[k]``).
    """

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"decision name must be a non-empty string, got {self.name!r}")
        choices = tuple(normalize_choice(c) for c in self.choices)
        if not choices:
            raise ValueError(f"decision {self.name!r} needs at least one choice, got an empty list")
        keys = [_choice_key(c) for c in choices]
        if len(set(keys)) != len(keys):
            raise ValueError(f"decision {self.name!r} has duplicated choices: {list(choices)}")
        object.__setattr__(self, "choices", choices)

    def __len__(self) -> int:
        return len(self.choices)

    def index(self, value: Any) -> int:
        """The token of ``value``; raises ValueError naming the decision when it is not a choice."""
        key = _choice_key(value)
        for k, choice in enumerate(self.choices):
            if _choice_key(choice) == key:
                return k
        raise ValueError(f"{value!r} is not a choice of decision {self.name!r}; choices: {list(self.choices)}")

    def restrict(self, values: Iterable[Any]) -> Decision:
        """A copy keeping only ``values`` (in the given order); each must be one of the current choices."""
        values = list(values)
        if not values:
            raise ValueError(f"choices of {self.name!r} must not be empty")
        return Decision(self.name, tuple(self.choices[self.index(v)] for v in values))


@dataclass(frozen=True)
class SearchSpace:
    """An ordered list of decisions.

    Args:
        decisions: the decisions, in the order a controller samples them. Names must be unique.
        sites: the model's dropout sites (built-in spaces only; used to decode tokens to a pattern).
    """

    decisions: tuple[Decision, ...]
    sites: tuple[Site, ...] = field(default=())

    def __post_init__(self) -> None:
        decisions = tuple(self.decisions)
        if not decisions:
            raise ValueError("a search space needs at least one decision")
        for d in decisions:
            if not isinstance(d, Decision):
                raise ValueError(f"decisions must be Decision objects, got {d!r}")
        names = [d.name for d in decisions]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"decision name(s) {duplicated} used more than once")
        object.__setattr__(self, "decisions", decisions)
        object.__setattr__(self, "sites", tuple(self.sites))
        object.__setattr__(self, "_by_name", {d.name: i for i, d in enumerate(decisions)})

    def __len__(self) -> int:
        return len(self.decisions)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def __getitem__(self, name: str) -> Decision:
        return self.decisions[self.position(name)]

    @property
    def names(self) -> tuple[str, ...]:
        """Decision names in order."""
        return tuple(d.name for d in self.decisions)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of choices per decision, in order."""
        return tuple(len(d) for d in self.decisions)

    @property
    def size(self) -> int:
        """How many distinct token tuples the space holds."""
        return math.prod(self.sizes)

    def position(self, name: str) -> int:
        """Index of decision ``name``; raises ValueError naming it when it is unknown."""
        try:
            return self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(f"unknown decision {name!r}") from None

    def check_tokens(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Validate one token tuple and return it as a tuple of ints; ValueError names the bad entry."""
        tokens = tuple(tokens)
        if len(tokens) != len(self.decisions):
            raise ValueError(f"expected {len(self.decisions)} tokens, got {len(tokens)}")
        out = []
        for d, t in zip(self.decisions, tokens, strict=True):
            if isinstance(t, bool) or int(t) != t or not 0 <= int(t) < len(d):
                raise ValueError(f"token {t!r} of decision {d.name!r} is not in [0, {len(d)})")
            out.append(int(t))
        return tuple(out)

    def values(self, tokens: Sequence[int]) -> dict[str, Any]:
        """Map each decision name to the value its token selects."""
        tokens = self.check_tokens(tokens)
        return {d.name: d.choices[t] for d, t in zip(self.decisions, tokens, strict=True)}

    def restrict(self, choices: dict[str, Sequence[Any]]) -> SearchSpace:
        """A copy with some decisions restricted to a subset of their choices.

        Args:
            choices: decision name -> allowed values. A key ``"*/suffix"`` applies to every decision whose
                name ends in ``/suffix`` (e.g. ``"*/size"`` restricts the size of every site).

        Raises:
            ValueError: naming the key when it matches no decision, or the value when it is not a choice.
        """
        restricted = {d.name: d for d in self.decisions}
        for key, values in choices.items():
            if key.startswith("*/"):
                targets = [n for n in restricted if n.endswith(key[1:])]
            else:
                targets = [key] if key in restricted else []
            if not targets:
                raise ValueError(f"choices[{key!r}] names no decision of this space")
            for name in targets:
                try:
                    restricted[name] = restricted[name].restrict(values)
                except ValueError as err:
                    raise ValueError(f"choices[{key!r}]: {err}") from None
        return SearchSpace(tuple(restricted[n] for n in self.names), sites=self.sites)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"decisions": [{"name", "choices"}], "sites": [{"name", "kind", "channels"}]}``."""
        return {
            "decisions": [{"name": d.name, "choices": list(d.choices)} for d in self.decisions],
            "sites": [{"name": s.name, "kind": s.kind, "channels": s.channels} for s in self.sites],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        """Inverse of :meth:`to_dict`."""
        decisions = tuple(Decision(d["name"], tuple(d["choices"])) for d in data["decisions"])
        sites = tuple(Site(s["name"], s["kind"], int(s.get("channels", 0))) for s in data.get("sites", []))
        return cls(decisions, sites=sites)
