"""The study's pictures: best reward against trials (REINFORCE vs random search) and the best found masks."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["reward_plot", "mask_pngs"]

_COLORS = {"reinforce": "tab:red", "random": "tab:blue"}


def _best_so_far(values: list[float | None]) -> list[float]:
    out, best = [], float("-inf")
    for v in values:
        if v is not None:
            best = max(best, v)
        out.append(best if best > float("-inf") else float("nan"))
    return out


def reward_plot(doc: dict[str, Any]) -> bytes:
    """One panel per dataset: every trial's reward (dots) and the best so far (thin: a seed, thick: the mean)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    datasets = [(n, d) for n, d in doc["datasets"].items() if "searches" in d]
    figure = Figure(figsize=(5.5 * len(datasets), 4.0))
    FigureCanvasAgg(figure)
    for k, (name, data) in enumerate(datasets):
        axes = figure.add_subplot(1, len(datasets), k + 1)
        all_curves: list[list[float]] = []
        for controller, runs in data["searches"].items():
            color = _COLORS.get(controller, "black")
            curves = []
            for r in runs:
                rewards = [t["reward"] for t in sorted(r["trials"], key=lambda t: t["index"])]
                xs = list(range(1, len(rewards) + 1))
                axes.scatter(
                    xs, [100 * (v if v is not None else float("nan")) for v in rewards], s=6, alpha=0.25, color=color
                )
                curve = _best_so_far(rewards)
                curves.append(curve)
                all_curves.append([v for v in curve if v == v])
                axes.plot(xs, [100 * v for v in curve], color=color, alpha=0.35, linewidth=0.8)
            n = min(len(c) for c in curves)
            mean = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
            axes.plot(
                range(1, n + 1),
                [100 * v for v in mean],
                color=color,
                linewidth=2.2,
                label=f"{controller} (best so far, mean of {len(curves)})",
            )
        floor = min([data["threshold"]] + [min(c) for c in all_curves if c]) * 100 - 5
        axes.set_ylim(bottom=max(0.0, floor))
        axes.axhline(
            100 * data["threshold"],
            color="gray",
            linestyle="--",
            linewidth=1,
            label=f"threshold: {data['threshold_method']}",
        )
        axes.set_xlabel("trial")
        axes.set_ylabel("reward: search-half accuracy (%); lower trials off-axis")
        axes.set_title(name)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def mask_pngs(doc: dict[str, Any]) -> dict[str, bytes]:
    """``mask_<dataset>_<controller>.png`` for each best found pattern (drawn by the service's own mask picture)."""
    from dropsearch.api.plots import mask_png

    out = {}
    for name, data in doc["datasets"].items():
        for controller, found in data.get("found", {}).items():
            title = f"{name}: best found by {controller} ({found['pattern']['variant']})"
            out[f"mask_{name}_{controller}.png"] = mask_png(found["pattern"], seed=0, title=title)
    return out
