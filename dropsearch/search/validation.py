"""The validation stage: re-train the best search patterns and the baselines with fresh paired seeds.

A search ranks patterns by one child each, so its best reward is partly the luckiest seed. The validation stage
trains a few *arms* (the ``top_k`` distinct patterns by search reward, plus baselines such as no dropout) with the
same fresh seeds, compares each arm to each baseline seed by seed (:func:`~dropsearch.search.stats.paired_difference`)
and picks the arm with the best mean. Racing (as in SMAC's intensification) stops an arm early once, after at
least two seeds, its paired interval against the current leader lies entirely on the bad side; baselines always
run every seed.

All values are RAW objective values (e.g. ``val_loss`` as measured); ``mode`` says which direction is better.

Example::

    >>> arms = [Arm("search-1", {"variant": "bernoulli"}, "search", 0.9, 7)]
    >>> arms.append(Arm("none", {"variant": "none"}, "baseline"))
    >>> results = ValidationResults(arms, seeds=[10000, 10001, 10002], mode="max")
    >>> for seed, (a, b) in zip(results.seeds, [(0.61, 0.60), (0.55, 0.50), (0.58, 0.56)]):
    ...     results.record("search-1", seed, a)
    ...     results.record("none", seed, b)
    >>> results.best(), round(results.gap("search-1", "none").mean, 4)
    ('search-1', 0.0267)
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dropsearch.regularizers.pattern import Pattern, Site, get_variant, is_variant
from dropsearch.search.builtin import variant_sites
from dropsearch.search.spec import VALIDATION_SEED_OFFSET, BaselineSpec
from dropsearch.search.stats import PairedDifference, paired_difference

__all__ = [
    "ORIGINS",
    "RACING_MIN_SEEDS",
    "Arm",
    "ArmSummary",
    "ValidationResults",
    "baseline_arms",
    "baseline_pattern",
    "make_arms",
    "pattern_key",
    "select_top",
    "validation_seeds",
]

ORIGINS = ("search", "baseline")
#: Racing compares arms only once each has this many seeds.
RACING_MIN_SEEDS = 2


@dataclass(frozen=True)
class Arm:
    """One pattern of the validation stage.

    Args:
        name: unique label, e.g. ``"search-1"`` (best search reward) or a baseline's name (``"none"``).
        pattern: the full pattern document (:meth:`~dropsearch.regularizers.pattern.Pattern.to_dict` form).
        origin: ``"search"`` (one of the top patterns) or ``"baseline"``.
        search_reward: the RAW search reward of the pattern (``None`` for a baseline).
        trial_index: index of the search trial that found it (``None`` for a baseline).
    """

    name: str
    pattern: dict[str, Any]
    origin: str
    search_reward: float | None = None
    trial_index: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"arm name must be a non-empty string, got {self.name!r}")
        if self.origin not in ORIGINS:
            raise ValueError(f"arm origin must be one of {ORIGINS}, got {self.origin!r}")

    @property
    def is_baseline(self) -> bool:
        """Whether the arm is a baseline (never stopped by racing)."""
        return self.origin == "baseline"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "name": self.name,
            "pattern": self.pattern,
            "origin": self.origin,
            "search_reward": self.search_reward,
            "trial_index": self.trial_index,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arm:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["name"], dict(data["pattern"]), data["origin"], data.get("search_reward"), data.get("trial_index")
        )


def pattern_key(pattern: Mapping[str, Any]) -> str:
    """Canonical text of what a pattern *does* (variant, sites, params), ignoring provenance and format.

    Two patterns with the same key train the same child, e.g. a search trial that decoded to no dropout and the
    ``none`` baseline. A site variant at rate 0 on every site installs nothing (its modules are ``None`` at rate
    0); unless it also changes the training step (a ``step_helper``, or fine-tuning), it trains the child of
    ``none`` and gets its key.
    """
    p = Pattern.from_dict(dict(pattern))
    if p.variant == "none" or _installs_nothing(p):
        return json.dumps(["none", [], {}])
    sites = sorted(((s.site, s.rate, s.shape) for s in p.sites if s.rate > 0 or s.shape), key=lambda s: s[0])
    return json.dumps([p.variant, sites, p.params], sort_keys=True, default=str)


def _installs_nothing(p: Pattern) -> bool:
    if not is_variant(p.variant) or any(s.rate > 0 for s in p.sites):
        return False
    spec = get_variant(p.variant)
    return not spec.model_wide and spec.step_helper is None and not spec.fine_tune


def baseline_pattern(baseline: BaselineSpec | Mapping[str, Any], sites: Sequence[Site]) -> dict[str, Any]:
    """Expand a baseline (``{"variant": "bernoulli", "rate": 0.3}``) to a full pattern against a model's sites.

    Every site the variant regularizes (:func:`~dropsearch.search.builtin.variant_sites`) gets ``rate`` and
    ``shape``; variants that act model-wide (``none``, ``gsnr``, ``gradaug``) get no sites.

    Raises:
        ValueError: when the variant needs sites the model does not have (e.g. ``spatial`` on an MLP).
    """
    b = baseline if isinstance(baseline, BaselineSpec) else BaselineSpec.model_validate(dict(baseline))
    chosen = () if b.variant in ("none", "gsnr", "gradaug") else variant_sites(b.variant, sites)
    if b.variant not in ("none", "gsnr", "gradaug") and not chosen:
        raise ValueError(f"validation.baselines: variant {b.variant!r} has no site in this model")
    pattern = Pattern.from_dict(
        {
            "variant": b.variant,
            "sites": [{"site": s.name, "rate": b.rate, "shape": dict(b.shape)} for s in chosen],
            "params": dict(b.params),
            "provenance": {"baseline": b.name},
        }
    )
    return pattern.to_dict()


def baseline_arms(baselines: Iterable[BaselineSpec | Mapping[str, Any]], sites: Sequence[Site]) -> list[Arm]:
    """One baseline :class:`Arm` per baseline, named by its ``name``."""
    arms = []
    for b in baselines:
        spec = b if isinstance(b, BaselineSpec) else BaselineSpec.model_validate(dict(b))
        arms.append(Arm(str(spec.name), baseline_pattern(spec, sites), "baseline"))
    return arms


def select_top(
    trials: Iterable[tuple[Mapping[str, Any], float | None, int | None]],
    k: int,
    mode: str,
    *,
    exclude: Iterable[Mapping[str, Any]] = (),
) -> list[Arm]:
    """The ``k`` distinct patterns with the best search reward, as arms ``search-1`` (best), ``search-2``, ...

    Args:
        trials: ``(pattern, raw reward, trial index)`` per search trial; trials without a reward (failed,
            diverged) or without a pattern are skipped. A pattern found several times counts with its best reward.
        k: how many arms at most.
        mode: ``"max"`` or ``"min"``: the direction of the raw rewards.
        exclude: patterns not to select (the baselines: a search that found "no dropout" is validated once, as
            the baseline), so up to ``k`` *other* patterns are taken.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    sign = 1.0 if mode == "max" else -1.0
    skip = {pattern_key(p) for p in exclude}
    best: dict[str, tuple[float, int, Mapping[str, Any], float, int | None]] = {}
    for order, (pattern, reward, index) in enumerate(trials):
        if pattern is None or reward is None or not math.isfinite(float(reward)):
            continue
        key = pattern_key(pattern)
        if key in skip:
            continue
        score = sign * float(reward)
        if key not in best or score > best[key][0]:
            best[key] = (score, order, pattern, float(reward), index)
    ranked = sorted(best.values(), key=lambda e: (-e[0], e[1]))[:k]
    return [Arm(f"search-{i + 1}", dict(p), "search", r, idx) for i, (_, _, p, r, idx) in enumerate(ranked)]


def make_arms(
    trials: Iterable[tuple[Mapping[str, Any], float | None, int | None]],
    baselines: Iterable[BaselineSpec | Mapping[str, Any]],
    sites: Sequence[Site],
    *,
    top_k: int,
    mode: str,
) -> list[Arm]:
    """The arms of a validation stage: the top ``top_k`` search patterns (best first), then the baselines."""
    base = baseline_arms(baselines, sites)
    top = select_top(trials, top_k, mode, exclude=[a.pattern for a in base])
    names = [a.name for a in top + base]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be distinct, got {names}")
    return top + base


def validation_seeds(spec_seed: int, n: int) -> list[int]:
    """The ``n`` fresh training seeds of the validation runs: ``spec_seed + VALIDATION_SEED_OFFSET + i``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    return [int(spec_seed) + VALIDATION_SEED_OFFSET + i for i in range(n)]


@dataclass(frozen=True)
class ArmSummary:
    """Mean, sample sd (``nan`` below 2 results) and count of one arm's finished seeds."""

    mean: float
    sd: float
    n: int


@dataclass
class ValidationResults:
    """Per-arm, per-seed results of a validation stage, with racing and the choice of the best arm.

    Args:
        arms: the arms (names distinct).
        seeds: the training seeds, in the order they are run; the same for every arm.
        mode: ``"max"`` or ``"min"``.
        level: confidence level of the paired intervals. Default: 0.95
    """

    arms: list[Arm]
    seeds: list[int]
    mode: str
    level: float = 0.95
    results: dict[tuple[str, int], float | None] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # arm -> seeds it had when racing stopped it

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        names = [a.name for a in self.arms]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"arms must be a non-empty list with distinct names, got {names}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct seeds, got {self.seeds}")
        self.seeds = [int(s) for s in self.seeds]
        self._by_name = {a.name: a for a in self.arms}

    def arm(self, name: str) -> Arm:
        """The arm called ``name`` (KeyError naming the known arms otherwise)."""
        if name not in self._by_name:
            raise KeyError(f"unknown arm {name!r}; arms are {list(self._by_name)}")
        return self._by_name[name]

    @property
    def baselines(self) -> list[Arm]:
        """The baseline arms, in order."""
        return [a for a in self.arms if a.is_baseline]

    def record(self, arm: str, seed: int, value: float | None) -> None:
        """Store the RAW result of ``arm`` at ``seed``; ``None`` or NaN marks a failed or diverged run."""
        self.arm(arm)
        if int(seed) not in self.seeds:
            raise ValueError(f"seed {seed} is not one of the validation seeds {self.seeds}")
        ok = value is not None and math.isfinite(float(value))
        self.results[(arm, int(seed))] = float(value) if ok else None

    def done(self, arm: str, seed: int) -> bool:
        """Whether ``arm`` at ``seed`` has finished (successfully or not)."""
        return (arm, int(seed)) in self.results

    def values(self, arm: str, seeds: Sequence[int] | None = None) -> dict[int, float]:
        """Successful results of ``arm``, seed -> value, in seed order (only ``seeds`` if given)."""
        pool = self.seeds if seeds is None else [s for s in self.seeds if s in set(seeds)]
        return {s: v for s in pool if (v := self.results.get((arm, s))) is not None}

    def failed_seeds(self, arm: str) -> list[int]:
        """Seeds at which ``arm`` failed or diverged."""
        return [s for s in self.seeds if (arm, s) in self.results and self.results[(arm, s)] is None]

    def summary(self, arm: str, seeds: Sequence[int] | None = None) -> ArmSummary:
        """Mean, sd and count of ``arm``'s successful results (at ``seeds`` only, if given)."""
        vals = list(self.values(arm, seeds).values())
        mean = statistics.fmean(vals) if vals else float("nan")
        sd = statistics.stdev(vals) if len(vals) >= 2 else float("nan")
        return ArmSummary(mean, sd, len(vals))

    def gap(self, arm: str, other: str, seeds: Sequence[int] | None = None) -> PairedDifference:
        """Paired ``arm - other`` over the seeds both have a result for (RAW units; only ``seeds`` if given)."""
        a, b = self.values(arm, seeds), self.values(other, seeds)
        common = [s for s in self.seeds if s in a and s in b]
        return paired_difference([a[s] for s in common], [b[s] for s in common], level=self.level)

    def better(self, gap: PairedDifference) -> bool:
        """The interval of ``arm - other`` lies entirely on the good side of 0 (``arm`` better beyond noise)."""
        return gap.above_zero() if self.mode == "max" else gap.below_zero()

    def worse(self, gap: PairedDifference) -> bool:
        """The interval lies entirely on the bad side of 0 (``arm`` worse beyond noise)."""
        return gap.below_zero() if self.mode == "max" else gap.above_zero()

    def best(self, seeds: Sequence[int] | None = None, *, min_results: int | None = None) -> str | None:
        """The arm with the best mean among those racing did not stop (ties: earlier arm); ``None`` before results.

        Args:
            seeds: compare the means at these seeds only. Default: every seed.
            min_results: only arms with at least this many successful results count. Default: ``None``:
                :data:`RACING_MIN_SEEDS` when some arm has that many (one lucky seed of an arm whose other runs
                failed does not win), else 1.
        """
        if min_results is None:
            return self.best(seeds, min_results=RACING_MIN_SEEDS) or self.best(seeds, min_results=1)
        order = {a.name: i for i, a in enumerate(self.arms)}
        sign = -1.0 if self.mode == "max" else 1.0
        scored = [
            (sign * s.mean, order[a.name], a.name)
            for a in self.arms
            if a.name not in self.dropped and (s := self.summary(a.name, seeds)).n >= max(1, min_results)
        ]
        return min(scored)[2] if scored else None

    def race(self, seeds: Sequence[int] | None = None) -> list[str]:
        """Stop the search arms worse than the leader beyond noise; returns the arms stopped now.

        The leader is the best arm with at least :data:`RACING_MIN_SEEDS` results (an arm whose other runs failed
        cannot lead on one lucky seed). An arm is stopped when it and the leader share at least
        :data:`RACING_MIN_SEEDS` seeds and the paired interval of arm minus leader lies entirely on the bad side.
        Baselines are never stopped.

        Args:
            seeds: race on the results at these seeds only (e.g. the first round's), so a resumed run that already
                has later results takes the same decision. Default: every seed.
        """
        leader = self.best(seeds, min_results=RACING_MIN_SEEDS)
        if leader is None:
            return []
        stopped = []
        for a in self.arms:
            if a.is_baseline or a.name == leader or a.name in self.dropped:
                continue
            gap = self.gap(a.name, leader, seeds)
            if gap.n >= RACING_MIN_SEEDS and self.worse(gap):
                self.dropped[a.name] = self.summary(a.name, seeds).n
                stopped.append(a.name)
        return stopped

    def state_dict(self) -> dict[str, Any]:
        """Plain, JSON-able state (arms, seeds, results, racing) for a resume."""
        return {
            "arms": [a.to_dict() for a in self.arms],
            "seeds": list(self.seeds),
            "mode": self.mode,
            "level": self.level,
            "results": [[arm, seed, value] for (arm, seed), value in self.results.items()],
            "dropped": dict(self.dropped),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ValidationResults:
        """Inverse of :meth:`state_dict`."""
        out = cls([Arm.from_dict(a) for a in state["arms"]], list(state["seeds"]), state["mode"], state["level"])
        for arm, seed, value in state["results"]:
            out.results[(arm, int(seed))] = value
        out.dropped = {k: int(v) for k, v in state["dropped"].items()}
        return out

    def report(self, *, metric: str | None = None) -> Any:
        """The :class:`~dropsearch.search.validation_report.ValidationReport` of the results so far."""
        from dropsearch.search.validation_report import ValidationReport

        return ValidationReport.from_results(self, metric=metric)
