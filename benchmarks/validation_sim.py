"""Simulated searches with known true qualities: does the validation stage pick better than the raw top reward?

Part 1, the validation stage. Each simulated search has ``--candidates`` patterns (candidate 0 is "no dropout")
with true qualities drawn from N(0.5, ``--spread``); a child's reward is its pattern's true quality plus noise: a
seed effect shared by every pattern trained with that seed (sd ``--seed-sd``) plus the child's own noise (sd
``--child-sd``), so the noise is as large as the differences between patterns. Random search trains ``--trials``
children, one noisy child per trial (each with its own seed). Then the validation stage (the real
:class:`~dropsearch.controller.validation_searcher.ValidationSearcher`, driven without Ray) re-trains the top 3
distinct patterns and no dropout with 3 paired seeds, with racing. Reported: how often the validated choice is the
truly best of the validated arms, against how often the raw top reward is; and the true quality lost.

Part 2, ``BaseController.best()``. A controller samples a space of 36 token tuples (random search, and REINFORCE
whose policy concentrates on good tuples so they repeat) with rewards = true quality + noise of the same size as
the differences between tuples; the true quality of ``best(1)`` (noise-aware estimate) is compared with the old
rule (highest observed mean), as the gap to the best tuple the controller observed.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/validation_sim.py [--searches 50] [--seed 0]`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from dropsearch.search.validation import Arm, select_top

SEEDS = [10000, 10001, 10002]


def _pattern(i: int) -> dict[str, Any]:
    return {"variant": "none"} if i == 0 else {"variant": "bernoulli", "sites": [{"site": "s", "rate": i / 100}]}


def simulate_search(rng: random.Random, args: argparse.Namespace) -> dict[str, Any]:
    """One search + validation stage; returns which arm each rule picks and the true qualities."""
    from ray.tune.search import Searcher

    from dropsearch.controller.validation_searcher import ValidationSearcher

    quality = [rng.gauss(0.5, args.spread) for _ in range(args.candidates)]
    trials = []
    for index in range(args.trials):
        c = rng.randrange(args.candidates)
        reward = quality[c] + rng.gauss(0, args.seed_sd) + rng.gauss(0, args.child_sd)
        trials.append((_pattern(c), reward, index, c))
    raw_top = max(trials, key=lambda t: t[1])[3]
    candidate_of = {json.dumps(_pattern(c), sort_keys=True): c for c in range(args.candidates)}
    top = select_top([t[:3] for t in trials], 3, "max", exclude=[_pattern(0)])
    arms = [*top, Arm("none", _pattern(0), "baseline")]
    cand = {a.name: candidate_of[json.dumps(a.pattern, sort_keys=True)] for a in arms}
    seed_effect = {s: rng.gauss(0, args.seed_sd) for s in SEEDS}
    searcher = ValidationSearcher(arms, SEEDS, "max", "reward", racing=not args.no_racing)
    runs = 0
    while True:
        handed = {}
        while (config := searcher.suggest(f"t{searcher.n_suggested}")) not in (None, Searcher.FINISHED):
            handed[f"t{searcher.n_suggested - 1}"] = config
        for trial_id, config in handed.items():
            value = quality[cand[config["arm"]]] + seed_effect[config["seed"]] + rng.gauss(0, args.child_sd)
            searcher.on_trial_complete(trial_id, {"reward": value})
            runs += 1
        if config == Searcher.FINISHED:
            break
    report = searcher.report()
    validated = [cand[a.name] for a in arms]
    true_best = max(validated, key=lambda c: quality[c])
    chosen = cand[report.chosen]
    return {
        "validated_correct": chosen == true_best,
        "raw_correct": raw_top == true_best,
        "raw_in_validated": raw_top in validated,
        "validated_loss": quality[true_best] - quality[chosen],
        "raw_loss": quality[true_best] - quality[raw_top],
        "validated_loss_vs_all": max(quality) - quality[chosen],
        "raw_loss_vs_all": max(quality) - quality[raw_top],
        "validation_runs": runs,
        "beats_no_dropout": bool(report.chosen_beats.get("none")),
        "none_is_best": true_best == 0,
    }


def validation_part(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    sims = [simulate_search(rng, args) for _ in range(args.searches)]

    def rate(key: str) -> float:
        return round(sum(s[key] for s in sims) / len(sims), 3)

    def mean(key: str) -> float:
        return round(statistics.fmean(s[key] for s in sims), 5)

    return {
        "searches": args.searches,
        "candidates": args.candidates,
        "trials": args.trials,
        "true_quality_sd": args.spread,
        "noise_sd": {"seed": args.seed_sd, "child": args.child_sd},
        "racing": not args.no_racing,
        "validated_picks_true_best_of_validated": rate("validated_correct"),
        "raw_top_reward_picks_true_best_of_validated": rate("raw_correct"),
        "true_quality_lost_vs_best_validated": {"validated": mean("validated_loss"), "raw": mean("raw_loss")},
        "true_quality_lost_vs_best_candidate": {
            "validated": mean("validated_loss_vs_all"),
            "raw": mean("raw_loss_vs_all"),
        },
        "no_dropout_truly_best_of_validated": rate("none_is_best"),
        "chosen_beats_no_dropout_beyond_noise": rate("beats_no_dropout"),
        "validation_runs_mean": mean("validation_runs"),
        "validation_runs_max": (3 + 1) * len(SEEDS),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _best_by_mean(history):
    from dropsearch.controller._estimate import shrunk_estimates

    return max(shrunk_estimates(history), key=lambda e: e.mean).tokens  # first max: the earlier observation


def best_part(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from dropsearch.controller import RandomController, ReinforceController
    from dropsearch.search.space import Decision, SearchSpace

    torch.set_num_threads(1)
    space = SearchSpace((Decision("a", tuple(range(6))), Decision("b", tuple(range(6)))))
    makers = {
        "random": lambda seed: RandomController(space, seed=seed),
        "reinforce": lambda seed: ReinforceController(
            space, lr=0.02, entropy_weight=0.01, baseline_decay=0.5, seed=seed
        ),
    }
    out: dict[str, Any] = {"tuples": 36, "samples": args.best_samples, "batch": 8, "true_sd": 0.02, "noise_sd": 0.02}
    for name, make in makers.items():
        t0 = time.perf_counter()
        old, new = [], []
        for rep in range(args.best_reps):
            rng = random.Random(args.seed * 1000 + rep)
            quality = {(a, b): rng.gauss(0.5, 0.02) for a in range(6) for b in range(6)}
            ctrl = make(rep)
            for _ in range(args.best_samples // 8):
                batch = ctrl.sample(8)
                ctrl.update(batch, [quality[p.tokens] + rng.gauss(0, 0.02) for p in batch])
            observed = max(quality[t] for t, _, _ in ctrl.history)
            old.append(observed - quality[_best_by_mean(ctrl.history)])
            new.append(observed - quality[ctrl.best(1)[0].tokens])
        out[name] = {
            "true_quality_lost_before_(observed_mean)": round(statistics.fmean(old), 5),
            "true_quality_lost_after_(shrunk_estimate)": round(statistics.fmean(new), 5),
            "picks_the_best_observed_tuple_before": round(sum(x == 0 for x in old) / len(old), 3),
            "picks_the_best_observed_tuple_after": round(sum(x == 0 for x in new) / len(new), 3),
            "repeats": args.best_reps,
            "seconds": round(time.perf_counter() - t0, 2),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--spread", type=float, default=0.02, help="sd of the true qualities")
    parser.add_argument("--seed-sd", type=float, default=0.015, help="sd of the seed effect shared by all arms")
    parser.add_argument("--child-sd", type=float, default=0.015, help="sd of each child's own noise")
    parser.add_argument("--no-racing", action="store_true")
    parser.add_argument("--best-reps", type=int, default=50)
    parser.add_argument("--best-samples", type=int, default=200)
    parser.add_argument("--skip-best", action="store_true", help="only the validation part (no torch)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = {"validation": validation_part(args)}
    if not args.skip_best:
        report["best"] = best_part(args)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
