"""The summary of a validation stage: per-arm statistics, paired gaps to each baseline, the chosen arm, a sentence.

How to read it (``to_dict()``):

- ``arms[i].mean`` / ``sd`` / ``n``: the arm's RAW objective over its finished seeds (``results`` lists them);
  ``stopped_early``: racing stopped it after ``seeds_when_stopped`` seeds (worse than the leader beyond noise).
- ``arms[i].gaps[baseline]``: paired ``arm - baseline`` (mean of per-seed differences, ``se``, the 95% interval
  ``low``..``high`` with Student's t for ``n - 1`` degrees of freedom) and ``beats_noise``: the whole interval is on
  the good side of 0 for the objective's ``mode``; ``worse_beyond_noise`` is the opposite.
- ``chosen``: the arm with the best mean (not stopped early; among the arms with at least 2 successful seeds
  when there are any); ``chosen_beats``: whether it beats each baseline beyond noise.
- ``conclusion``: plain sentences, e.g. "No pattern beat no dropout beyond noise (paired 95% interval)."
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dropsearch.search.validation import ValidationResults

__all__ = ["ValidationReport"]


def _num(x: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become ``None``."""
    return None if x is None or not math.isfinite(x) else float(x)


def _label(report_arm: dict[str, Any]) -> str:
    return "no dropout" if report_arm["pattern"].get("variant") == "none" else repr(report_arm["name"])


@dataclass(frozen=True)
class ValidationReport:
    """A finished (or partial) validation stage, ready for JSON.

    Args:
        metric: the objective's name (``None`` if not given).
        mode: ``"max"`` or ``"min"``.
        level: confidence level of the intervals.
        seeds: the training seeds.
        arms: per-arm dictionaries (see the module docstring).
        chosen: name of the arm with the best mean, or ``None`` before any result.
        conclusion: plain sentences.
    """

    metric: str | None
    mode: str
    level: float
    seeds: list[int]
    arms: list[dict[str, Any]]
    chosen: str | None
    conclusion: str

    @classmethod
    def from_results(cls, results: ValidationResults, *, metric: str | None = None) -> ValidationReport:
        """Summarize :class:`~dropsearch.search.validation.ValidationResults`."""
        arms = []
        for arm in results.arms:
            s = results.summary(arm.name)
            gaps = {}
            for base in results.baselines:
                if base.name == arm.name:
                    continue
                g = results.gap(arm.name, base.name)
                gaps[base.name] = {
                    "mean": _num(g.mean),
                    "se": _num(g.se),
                    "low": _num(g.low),
                    "high": _num(g.high),
                    "n": g.n,
                    "beats_noise": results.better(g),
                    "worse_beyond_noise": results.worse(g),
                }
            arms.append(
                {
                    **arm.to_dict(),
                    "mean": _num(s.mean),
                    "sd": _num(s.sd),
                    "n": s.n,
                    "results": [{"seed": seed, "value": v} for seed, v in results.values(arm.name).items()],
                    "failed_seeds": results.failed_seeds(arm.name),
                    "stopped_early": arm.name in results.dropped,
                    "seeds_when_stopped": results.dropped.get(arm.name),
                    "gaps": gaps,
                }
            )
        chosen = results.best()
        return cls(
            metric,
            results.mode,
            results.level,
            list(results.seeds),
            arms,
            chosen,
            _conclusion(arms, chosen, results.level),
        )

    def arm(self, name: str) -> dict[str, Any]:
        """The report entry of arm ``name``."""
        for a in self.arms:
            if a["name"] == name:
                return a
        raise KeyError(f"unknown arm {name!r}")

    @property
    def chosen_beats(self) -> dict[str, bool]:
        """Whether the chosen arm beats each baseline beyond noise (empty when a baseline is chosen or none is)."""
        if self.chosen is None:
            return {}
        return {b: g["beats_noise"] for b, g in self.arm(self.chosen)["gaps"].items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (no NaN: missing statistics are ``None``)."""
        return {
            "metric": self.metric,
            "mode": self.mode,
            "level": self.level,
            "seeds": list(self.seeds),
            "arms": self.arms,
            "chosen": self.chosen,
            "chosen_beats": self.chosen_beats,
            "conclusion": self.conclusion,
        }


def _conclusion(arms: list[dict[str, Any]], chosen: str | None, level: float) -> str:
    pct = f"{level * 100:g}%"
    if chosen is None:
        return "No validation result yet."
    by_name = {a["name"]: a for a in arms}
    baselines = [a for a in arms if a["origin"] == "baseline"]
    search = [a for a in arms if a["origin"] == "search"]
    sentences = []
    if not search:
        sentences.append("No search pattern was validated.")
    for base in baselines:
        winners = [a for a in search if a["gaps"].get(base["name"], {}).get("beats_noise")]
        if not winners:
            sentences.append(f"No pattern beat {_label(base)} beyond noise (paired {pct} interval).")
            continue
        for a in winners:
            g = a["gaps"][base["name"]]
            sentences.append(
                f"Pattern {a['name']!r} beat {_label(base)} by {g['mean']:+.4g} (paired {pct} interval "
                f"{g['low']:+.4g} to {g['high']:+.4g}, {g['n']} seeds)."
            )
    c = by_name[chosen]
    kind = "baseline" if c["origin"] == "baseline" else "pattern"
    sentences.append(f"Best mean: {kind} {chosen!r} ({c['mean']:.4g} over {c['n']} seeds).")
    return " ".join(sentences)
