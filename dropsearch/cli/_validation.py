"""The validation stage's table as the CLI shows it (``dropsearch best`` and the end of ``dropsearch watch``).

The table is the search's stored report (``GET /v1/searches/{id}`` ``validation``, or the ``validation`` of the
``/best`` document): one row per arm with its mean ± sd over the seeds, how many seeds succeeded, the paired gap to
each baseline with its interval and a mark when it beats (✓) or loses to (✗) that baseline beyond noise, and notes
(racing stopped the arm early, failed seeds). Values are the RAW objective (the report's ``mode`` says which way
is better).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

__all__ = ["BEATS_MARK", "WORSE_MARK", "format_gap", "validation_view"]

BEATS_MARK = "✓"  #: the arm beats the baseline beyond noise (the whole interval on the good side of 0)
WORSE_MARK = "✗"  #: the arm is worse than the baseline beyond noise


def _num(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def format_gap(gap: dict[str, Any]) -> str:
    """``"+0.1067 [+0.0923, +0.1210] ✓"``: the paired mean gap, its interval and the beats/worse mark."""
    if gap.get("mean") is None:
        return f"- (n={gap.get('n', 0)})"
    interval = "" if gap.get("low") is None else f" [{_num(gap['low'], True)}, {_num(gap['high'], True)}]"
    mark = f" {BEATS_MARK}" if gap.get("beats_noise") else (f" {WORSE_MARK}" if gap.get("worse_beyond_noise") else "")
    return f"{_num(gap['mean'], True)}{interval}{mark}"


def _mean_sd(arm: dict[str, Any]) -> str:
    if arm.get("mean") is None:
        return "-"
    return _num(arm["mean"]) + ("" if arm.get("sd") is None else f" ± {arm['sd']:.4f}")


def _notes(arm: dict[str, Any]) -> str:
    """``"stopped early after 2 seeds; 1 failed"``: racing and failed seeds, or empty."""
    notes = []
    if arm.get("stopped_early"):
        after = arm.get("seeds_when_stopped")
        notes.append("stopped early" + (f" after {after} seeds" if after else ""))
    failed = len(arm.get("failed_seeds") or [])
    if failed:
        notes.append(f"{failed} failed")
    return "; ".join(notes)


def validation_view(report: dict[str, Any]) -> RenderableType:
    """The report as a Rich table (one row per arm, the chosen one starred) followed by its conclusion.

    Args:
        report: the stored validation report (:meth:`dropsearch.search.validation_report.ValidationReport.to_dict`).
    """
    arms = list(report.get("arms") or [])
    baselines = [a["name"] for a in arms if a.get("origin") == "baseline"]
    level = f"{float(report.get('level') or 0.95) * 100:g}%"
    metric = report.get("metric") or "reward"
    mode = report.get("mode") or "max"
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"validation: {metric} ({'higher' if mode == 'max' else 'lower'} is better) over "
        f"{len(report.get('seeds') or [])} paired seeds",
        title_justify="left",
        caption=f"gap = arm - baseline, paired {level} interval; {BEATS_MARK} beats it beyond noise, "
        f"{WORSE_MARK} worse beyond noise; * chosen",
        caption_justify="left",
    )
    table.add_column("arm")
    table.add_column("origin")
    table.add_column("mean ± sd", justify="right", min_width=15)
    table.add_column("n", justify="right")
    for base in baselines:
        table.add_column(f"gap vs {escape(base)}", justify="right")
    table.add_column("notes")
    for arm in arms:
        chosen = arm["name"] == report.get("chosen")
        name = escape(str(arm["name"])) + (" *" if chosen else "")
        gaps = arm.get("gaps") or {}
        cells = [format_gap(gaps[b]) if b in gaps else "" for b in baselines]
        table.add_row(
            f"[bold]{name}[/]" if chosen else name,
            escape(str(arm.get("origin", ""))),
            _mean_sd(arm),
            str(arm.get("n", 0)),
            *cells,
            _notes(arm),
        )
    return Group(table, escape(str(report.get("conclusion") or "")))
