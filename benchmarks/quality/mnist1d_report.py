"""Markdown tables of the MNIST-1D study, from its JSON document (``mnist1d.json``).

Every gap is paired by training seed (the same seeds for every method) and called *beyond noise* when its mean is
more than twice its standard error (sd of the per-seed gaps / sqrt(n)) away from 0, in the stated direction.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.quality.stats import mean_sd, paired_gap

__all__ = ["resolve", "gap_rows", "winners_curse", "mnist1d_tables"]


def _pct(values: list[float]) -> str:
    m, s = mean_sd(values)
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def resolve(methods: dict[str, Any], name: str) -> dict[str, Any]:
    """A method's entry, following ``same_as`` (a pattern trained once under an earlier name)."""
    entry = methods[name]
    return methods[entry["same_as"]] if "same_as" in entry else entry


def describe(pattern: dict[str, Any]) -> str:
    """A short text of a pattern: variant, non-zero site rates, params."""
    sites = ", ".join(f"{s['site']} {s['rate']:g}" for s in pattern.get("sites", []) if s.get("rate"))
    params = ", ".join(f"{k}={v}" for k, v in sorted((pattern.get("params") or {}).items()))
    if pattern.get("sites") and not sites:
        sites = "all rates 0"
    inner = "; ".join(x for x in (sites, params) if x)
    return f"{pattern.get('variant')}" + (f" ({inner})" if inner else "")


def _comparisons(doc: dict[str, Any]) -> list[tuple[str, str]]:
    grid = doc["best_grid"]
    pairs = [(grid, "none")]
    for controller in doc["searches"]:
        for kind in ("validated", "top"):
            name = f"{kind}-{controller}"
            if name in doc["methods"]:
                pairs += [(name, "none"), (name, grid)]
        if f"top-{controller}" in doc["methods"] and f"validated-{controller}" in doc["methods"]:
            pairs.append((f"validated-{controller}", f"top-{controller}"))
    return pairs


def gap_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Paired test-accuracy gaps ``a - b``: gap, sd, se, n, and whether ``a`` is better / worse beyond 2 SE."""
    methods, rows = doc["methods"], []
    for a, b in _comparisons(doc):
        ea, eb = resolve(methods, a), resolve(methods, b)
        if ea is eb:
            rows.append({"a": a, "b": b, "gap": 0.0, "sd": 0.0, "se": 0.0, "n": len(ea["seeds"]), "same": True})
            continue
        g = paired_gap(ea, eb, key="test")
        rows.append(
            {"a": a, "b": b, **g, "better": g["gap"] > 2 * g["se"], "worse": g["gap"] < -2 * g["se"], "same": False}
        )
    return rows


def winners_curse(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Selection score minus the re-trained mean validation accuracy (fresh seeds) of the chosen patterns.

    Raw top trial: its search reward (one child). Validated arm: its validation-stage mean (the number it was
    chosen on) and, for a search arm, also its search reward.
    """
    rows = []
    for controller, run in doc["searches"].items():
        top, validation = run.get("top"), run.get("validation") or {}
        if top is not None and f"top-{controller}" in doc["methods"]:
            fresh = statistics.fmean(resolve(doc["methods"], f"top-{controller}")["val"])
            rows.append(
                {
                    "controller": controller,
                    "pattern": "raw top search trial",
                    "selection": "search reward (1 child)",
                    "score": top["reward"],
                    "retrained": fresh,
                    "curse": top["reward"] - fresh,
                }
            )
        chosen = next((a for a in validation.get("arms", []) if a["name"] == validation.get("chosen")), None)
        if chosen is not None and f"validated-{controller}" in doc["methods"]:
            fresh = statistics.fmean(resolve(doc["methods"], f"validated-{controller}")["val"])
            rows.append(
                {
                    "controller": controller,
                    "pattern": f"validated arm `{chosen['name']}`",
                    "selection": f"validation-stage mean ({chosen['n']} seeds)",
                    "score": chosen["mean"],
                    "retrained": fresh,
                    "curse": chosen["mean"] - fresh,
                }
            )
            if chosen.get("search_reward") is not None:
                rows.append(
                    {
                        "controller": controller,
                        "pattern": f"validated arm `{chosen['name']}`",
                        "selection": "its search reward (1 child)",
                        "score": chosen["search_reward"],
                        "retrained": fresh,
                        "curse": chosen["search_reward"] - fresh,
                    }
                )
    return rows


def _methods_table(doc: dict[str, Any]) -> list[str]:
    rows = [
        "| method | pattern | validation % (800) | **test % (1000)** | s per child | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in doc["methods"].items():
        label = name + (" **← best grid rate (chosen on validation)**" if name == doc["best_grid"] else "")
        if "same_as" in entry:
            rows.append(f"| {label} | same pattern as `{entry['same_as']}` | | | | |")
            continue
        wall = statistics.fmean(entry["wall_s"])
        rows.append(
            f"| {label} | {describe(entry['pattern'])} | {_pct(entry['val'])} | {_pct(entry['test'])} "
            f"| {wall:.0f} | {entry['epochs']} |"
        )
    return rows


def _gap_table(doc: dict[str, Any]) -> list[str]:
    rows = [
        "| comparison (test accuracy, paired by seed) | gap (points) | SE | 2 SE | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in gap_rows(doc):
        if r["same"]:
            rows.append(f"| {r['a']} − {r['b']} | 0 (same pattern) | - | - | identical |")
            continue
        verdict = "better beyond noise" if r["better"] else "worse beyond noise" if r["worse"] else "within noise"
        rows.append(
            f"| {r['a']} − {r['b']} | {100 * r['gap']:+.2f} | {100 * r['se']:.2f} | {200 * r['se']:.2f} | {verdict} |"
        )
    return rows


def _validation_table(validation: dict[str, Any]) -> list[str]:
    rows = [
        "| arm | origin | pattern | search reward % | stage mean % (n) | gap to none (95% interval) | beats none? |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in validation.get("arms", []):
        g = arm.get("gaps", {}).get("none")
        gap = (
            "-"
            if not g or g["mean"] is None
            else (
                f"{100 * g['mean']:+.2f} ({100 * g['low']:+.2f} to {100 * g['high']:+.2f})"
                if g["low"] is not None
                else f"{100 * g['mean']:+.2f}"
            )
        )
        reward = "-" if arm.get("search_reward") is None else f"{100 * arm['search_reward']:.1f}"
        mean = "-" if arm.get("mean") is None else f"{100 * arm['mean']:.1f} ± {100 * (arm.get('sd') or 0):.1f}"
        chosen = " **(chosen)**" if arm["name"] == validation.get("chosen") else ""
        beats = "-" if not g else ("yes" if g.get("beats_noise") else "no")
        stopped = " (stopped by racing)" if arm.get("stopped_early") else ""
        rows.append(
            f"| {arm['name']}{chosen} | {arm['origin']} | {describe(arm['pattern'])} | {reward} "
            f"| {mean} ({arm['n']}){stopped} | {gap} | {beats} |"
        )
    return rows


def _search_table(doc: dict[str, Any]) -> list[str]:
    rows = [
        "| controller | search trials | stopped early (ASHA) | validation runs | child epochs (search + stage) "
        "| best search reward % | validated arm | wall min (search + stage) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for controller, run in doc["searches"].items():
        stopped = sum(1 for t in run["trials"] if t["status"] == "stopped")
        top = run.get("top")
        chosen = (run.get("validation") or {}).get("chosen", "-")
        best = "-" if top is None else f"{100 * top['reward']:.1f} (trial {top['index']})"
        rows.append(
            f"| {controller} | {len(run['trials'])} | {stopped} | {len(run['validation_runs'])} "
            f"| {run['child_epochs']} | {best} | {chosen} | {run['wall_s'] / 60:.1f} |"
        )
    return rows


def _variant_table(doc: dict[str, Any]) -> list[str]:
    rows = ["| controller | variant | trials | mean reward % | best reward % |", "|---|---|---|---|---|"]
    for controller, run in doc["searches"].items():
        by_variant: dict[str, list[float]] = {}
        for t in run["trials"]:
            if t["reward"] is not None and t["pattern"]:
                by_variant.setdefault(t["pattern"]["variant"], []).append(t["reward"])
        for variant, values in sorted(by_variant.items()):
            rows.append(
                f"| {controller} | {variant} | {len(values)} | {100 * statistics.fmean(values):.1f} "
                f"| {100 * max(values):.1f} |"
            )
    return rows


def mnist1d_tables(doc: dict[str, Any]) -> str:
    """All tables of the study as Markdown."""
    n = len(doc["size"]["test_seeds"])
    split = doc.get("split", {})
    out = [
        f"Split: {split.get('train')} training / {split.get('validation')} validation examples (split seed "
        f"{split.get('split_seed')}), {split.get('test')} test examples. Re-training seeds "
        f"{', '.join(map(str, doc['size']['test_seeds']))} (n = {n}).",
        "",
        "Re-trained on fresh seeds, evaluated on the test examples:",
        "",
        *_methods_table(doc),
        "",
        "Paired gaps on test accuracy:",
        "",
        *_gap_table(doc),
        "",
        "Winner's curse (validation accuracy: selection score minus the mean of the same pattern re-trained with "
        f"the {n} fresh seeds):",
        "",
        "| controller | pattern | chosen on | score % | re-trained % | curse (points) |",
        "|---|---|---|---|---|---|",
    ]
    for r in winners_curse(doc):
        out.append(
            f"| {r['controller']} | {r['pattern']} | {r['selection']} | {100 * r['score']:.1f} "
            f"| {100 * r['retrained']:.1f} | {100 * r['curse']:+.1f} |"
        )
    out += ["", "Searches (submitted over HTTP):", "", *_search_table(doc), ""]
    out += ["Search trials per variant:", "", *_variant_table(doc), ""]
    for controller, run in doc["searches"].items():
        validation = run.get("validation")
        if validation:
            out += [f"Validation stage of the {controller} search (`/best`'s table, validation accuracy):", ""]
            out += _validation_table(validation) + ["", f"Conclusion: {validation.get('conclusion')}", ""]
    phases = ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in doc.get("phases", {}).items())
    out.append(f"Wall time: {doc.get('wall_s', 0) / 60:.1f} min in all ({phases}).")
    return "\n".join(out) + "\n"
