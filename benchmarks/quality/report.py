"""Markdown tables, the reward-against-trials plot and the best masks, all from the study's JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def write_report(doc: dict[str, Any], out: Path) -> None:
    """Write ``tables.md`` and the PNG files into ``out``."""
    from benchmarks.quality.plots import mask_pngs, reward_plot
    from benchmarks.quality.stats import tables

    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.md").write_text(tables(doc))
    if all("searches" in d for d in doc["datasets"].values()):
        (out / "reward_vs_trials.png").write_bytes(reward_plot(doc))
    for name, png in mask_pngs(doc).items():
        (out / name).write_bytes(png)
