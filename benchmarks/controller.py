"""Compare REINFORCE and random search on synthetic spaces; prints JSON.

The reward of a proposal is the fraction of decisions equal to a hidden target plus Gaussian noise (sd 0.05). For
each space, controller and seed: the number of samples until the first proposal whose noise-free reward reaches the
threshold, and the best noise-free reward after each budget (batches of 8).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/controller.py [--seeds 5] [--budget 400]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from dropsearch.controller import RandomController, ReinforceController
from dropsearch.search.space import Decision, SearchSpace

SPACES = {"12x6": (12, 6), "24x4": (24, 4)}
CONTROLLERS = {
    "reinforce": lambda space, seed: ReinforceController(
        space, lr=0.01, entropy_weight=0.01, baseline_decay=0.5, seed=seed
    ),
    "reinforce-spec-defaults": lambda space, seed: ReinforceController(space, seed=seed),
    "random": lambda space, seed: RandomController(space, seed=seed),
}


def run(make, n_decisions, n_choices, seed, budget, batch, threshold, checkpoints):
    space = SearchSpace(tuple(Decision(f"d{i}", tuple(range(n_choices))) for i in range(n_decisions)))
    target = [random.Random(1000 + seed).randrange(n_choices) for _ in range(n_decisions)]
    noise = random.Random(seed)
    ctrl = make(space, seed)
    best, reached, best_at = 0.0, None, {}
    for start in range(0, budget, batch):
        proposals = ctrl.sample(batch)
        clean = [sum(a == b for a, b in zip(p.tokens, target, strict=True)) / n_decisions for p in proposals]
        for k, value in enumerate(clean):
            best = max(best, value)
            if reached is None and value >= threshold:
                reached = start + k + 1
        ctrl.update(proposals, [c + noise.gauss(0, 0.05) for c in clean])
        if start + batch in checkpoints:
            best_at[start + batch] = best
    greedy = sum(a == b for a, b in zip(ctrl.most_likely(), target, strict=True)) / n_decisions
    return {"samples_to_threshold": reached, "best_at": best_at, "most_likely_reward": greedy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoints = sorted({b - b % args.batch for b in (args.budget // 4, args.budget // 2, args.budget)})
    report = {"budget": args.budget, "batch": args.batch, "seeds": args.seeds, "noise_sd": 0.05, "spaces": {}}
    for name, (n, c) in SPACES.items():
        threshold = (n - 1) / n
        entry = {"threshold": threshold, "controllers": {}}
        for ctrl_name, make in CONTROLLERS.items():
            t0 = time.perf_counter()
            runs = [run(make, n, c, s, args.budget, args.batch, threshold, checkpoints) for s in range(args.seeds)]
            reached = [r["samples_to_threshold"] for r in runs]
            entry["controllers"][ctrl_name] = {
                "samples_to_threshold": reached,
                "reached": sum(x is not None for x in reached),
                "best_reward_at": {
                    str(b): round(statistics.mean(r["best_at"][b] for r in runs), 4) for b in checkpoints
                },
                "most_likely_reward": [round(r["most_likely_reward"], 4) for r in runs],
                "seconds": round(time.perf_counter() - t0, 2),
            }
        report["spaces"][name] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
