"""Summary statistics and the Markdown tables of the study (everything read from the JSON document)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["mean_sd", "paired_gap", "trials_to_threshold", "tables"]

_TITLES = {"digits": "digits (in-distribution, small training set)", "rotated": "rotated digits (held-out domains)"}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _pct(values: Sequence[float]) -> str:
    m, s = mean_sd(values)
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def paired_gap(a: dict[str, Any], b: dict[str, Any], key: str = "final") -> dict[str, float]:
    """``a - b`` per shared seed: mean gap, sd of the gaps, standard error, and whether ``|gap| > 2 SE``."""
    by_seed = dict(zip(b["seeds"], b[key], strict=True))
    gaps = [x - by_seed[s] for s, x in zip(a["seeds"], a[key], strict=True) if s in by_seed]
    m, s = mean_sd(gaps)
    se = s / math.sqrt(len(gaps)) if gaps else float("nan")
    return {"gap": m, "sd": s, "se": se, "n": len(gaps), "beyond_noise": abs(m) > 2 * se and len(gaps) > 1}


def trials_to_threshold(trials: list[dict[str, Any]], threshold: float) -> int | None:
    """1-based count of trials until the first reward at or above ``threshold`` (``None``: never)."""
    for k, t in enumerate(sorted(trials, key=lambda t: t["index"]), start=1):
        if t["reward"] is not None and t["reward"] >= threshold:
            return k
    return None


def _method_table(data: dict[str, Any]) -> list[str]:
    rows = [
        "| method | search half (selection) % | final half (test) % | s per child | epochs |",
        "|---|---|---|---|---|",
    ]
    groups = [("", data["baselines"]), (" (re-trained)", data.get("retrained", {}))]
    for suffix, methods in groups:
        for name, e in methods.items():
            label = name + suffix + (" **← best grid rate**" if name == data["best_bernoulli"] else "")
            wall = statistics.fmean(e["wall_s"])
            rows.append(f"| {label} | {_pct(e['val'])} | {_pct(e['final'])} | {wall:.1f} | {e['epochs']} |")
    return rows


def _gap_table(data: dict[str, Any]) -> list[str]:
    base = data["baselines"]
    rows = ["| comparison (final half, paired by seed) | gap (points) | sd of gaps | 2 SE | larger than noise? |"]
    rows.append("|---|---|---|---|---|")
    pairs = []
    for name, entry in data.get("retrained", {}).items():
        pairs += [
            (f"{name} − none", entry, base["none"]),
            (f"{name} − {data['best_bernoulli']}", entry, base[data["best_bernoulli"]]),
        ]
    wider = data.get("wider", {})
    if "wider-found" in wider:
        for other in [k for k in wider if k != "wider-found"]:
            pairs.append((f"wider-found − {other}", wider["wider-found"], wider[other]))
    for label, a, b in pairs:
        g = paired_gap(a, b)
        verdict = "yes" if g["beyond_noise"] else "no"
        rows.append(f"| {label} | {100 * g['gap']:+.1f} | {100 * g['sd']:.1f} | {200 * g['se']:.1f} | {verdict} |")
    return rows


def _search_table(data: dict[str, Any]) -> list[str]:
    rows = [
        "| controller | best reward % | final half of the best trial % | trials to threshold (per seed) | trials "
        "| child-epochs | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for controller, runs in data.get("searches", {}).items():
        best = [r["best_reward"] for r in runs if r["best_reward"] is not None]
        finals = []
        for r in runs:
            top = [t for t in r["trials"] if t["index"] == r["best_index"]]
            if top and top[0]["final_accuracy"] is not None:
                finals.append(top[0]["final_accuracy"])
        reach = [trials_to_threshold(r["trials"], data["threshold"]) for r in runs]
        reach_s = ", ".join("never" if k is None else str(k) for k in reach)
        n = sum(len(r["trials"]) for r in runs)
        epochs = sum(r["child_epochs"] for r in runs)
        wall = sum(r["wall_s"] for r in runs)
        rows.append(
            f"| {controller} | {_pct(best)} | {_pct(finals) if finals else '-'} | {reach_s} | {n} | {epochs} "
            f"| {wall:.0f} |"
        )
    return rows


def _variant_table(data: dict[str, Any]) -> list[str]:
    stats: dict[str, dict[str, list[float]]] = {}
    for controller, runs in data.get("searches", {}).items():
        for r in runs:
            for t in r["trials"]:
                if t["reward"] is not None:
                    stats.setdefault(t["variant"], {}).setdefault(controller, []).append(t["reward"])
    controllers = list(data.get("searches", {}))
    head = " | ".join(f"{c}: trials, mean reward %" for c in controllers)
    rows = [f"| variant | {head} |", "|---|" + "---|" * len(controllers)]
    for variant in sorted(stats):
        cells = []
        for c in controllers:
            values = stats[variant].get(c, [])
            cells.append(f"{len(values)}, {100 * statistics.fmean(values):.1f}" if values else "0, -")
        rows.append(f"| {variant} | {' | '.join(cells)} |")
    return rows


def _correlation(data: dict[str, Any]) -> str:
    pairs = [
        (t["reward"], t["final_accuracy"])
        for runs in data.get("searches", {}).values()
        for r in runs
        for t in r["trials"]
        if t["reward"] is not None and t["final_accuracy"] is not None
    ]
    pairs.sort(reverse=True)
    parts = []
    for label, chosen in (("all", pairs), ("the better half by reward", pairs[: len(pairs) // 2])):
        xs, ys = [p[0] for p in chosen], [p[1] for p in chosen]
        if len(chosen) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
            parts.append(f"{label}: too few trials")
            continue
        parts.append(f"{label} ({len(chosen)} trials): Pearson r = {statistics.correlation(xs, ys):.2f}")
    return "; ".join(parts)


def _found(data: dict[str, Any]) -> list[str]:
    lines = []
    for controller, f in data.get("found", {}).items():
        p = f["pattern"]
        sites = ", ".join(f"{s['site']}={s['rate']:g}" for s in p.get("sites", []) if s.get("rate"))
        params = ", ".join(f"{k}={v}" for k, v in p.get("params", {}).items() if k != "freeze_bn")
        desc = "; ".join(x for x in (sites, params) if x) or "no site rates"
        lines.append(
            f"- {controller}: `{p['variant']}` ({desc}), reward {100 * f['reward']:.1f}% "
            f"(search seed {f['search_seed']})"
        )
    return lines


def tables(doc: dict[str, Any]) -> str:
    """The Markdown tables of every dataset, plus the cost of each phase."""
    out = []
    for name, data in doc["datasets"].items():
        out += [f"### {_TITLES.get(name, name)}", ""]
        if "baselines" in data:
            n = len(doc["size"]["seeds"])
            out += [
                f"Baselines ({n} training seeds each) and the best found patterns re-trained with the same seeds:",
                "",
            ]
            out += _method_table(data) + [""]
        if "retrained" in data:
            out += _gap_table(data) + [""]
        if "searches" in data:
            thr = f"{100 * data['threshold']:.1f}% (mean search-half accuracy of `{data['threshold_method']}`)"
            out += [f"Searches (threshold {thr}):", ""] + _search_table(data) + [""]
            out += ["Trials per variant and their mean reward:", ""] + _variant_table(data) + [""]
            out += [f"Search half against final half of the same trials: {_correlation(data)}.", ""]
        if "found" in data:
            out += ["Best found patterns:", ""] + _found(data) + [""]
        if "wider" in data:
            widths = "-".join(str(w) for w in doc["size"]["wider"])
            out += [f"Transfer to the wider child (widths {widths}):", ""]
            out += _method_table({"baselines": data["wider"], "best_bernoulli": ""}) + [""]
    phases = doc.get("phases", {})
    cost = ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in phases.items())
    out += [f"Wall time: {doc.get('wall_s', 0) / 60:.1f} min in all ({cost})."]
    return "\n".join(out) + "\n"
