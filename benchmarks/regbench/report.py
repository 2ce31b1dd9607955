"""The docs tables of a benchmark result: ratios with their spread, then step times and peak memory."""

from __future__ import annotations

from typing import Any

from .config import VARIANTS, target_of

__all__ = ["markdown"]


def _fmt_ratio(entry: dict[str, Any]) -> str:
    if entry["pairs"] == 0:
        return "1 (ref)"
    (q1, q3), (lo, hi) = entry["iqr"], entry["range"]
    verdict = "" if "pass" not in entry else (" pass" if entry["pass"] else " **FAIL**")
    return f"{entry['ratio']:.2f} ({q1:.2f}-{q3:.2f}; {lo:.2f}-{hi:.2f}){verdict}"


def markdown(result: dict[str, Any]) -> str:
    """The docs tables of a result: ratios with their spread, then step times and peak memory per cell."""
    cells = result["cells"]
    keys = list(cells)
    names: list[str] = []
    for cell in cells.values():
        names += [n for n in cell["results"] if n not in names]
    order = [n for n in ("plain", "none", *VARIANTS, "plain_head") if n in names]
    order = [n for n in order if n != "largedrop"] + (["largedrop"] if "largedrop" in order else [])
    head = " | ".join(f"{cells[k]['model']} b{cells[k]['batch']}" for k in keys)
    lines = [
        "Ratio to the reference: median of the interleaved pairs (IQR; min-max).",
        "",
        f"| variant | reference | target | {head} |",
        "|---|---|---|" + "---:|" * len(keys),
    ]
    for name in order:
        ref = next(c["results"][name]["reference"] for c in cells.values() if name in c["results"])
        target = target_of(name)
        row = [_fmt_ratio(cells[k]["results"][name]) if name in cells[k]["results"] else "-" for k in keys]
        label = f"{name} (amortized)" if name == "ydrop" else name
        bound = f"<= {target:.2f}" if target else "-"
        lines.append(f"| {label} | {ref} | {bound} | " + " | ".join(row) + " |")
    lines += ["", "Median step time (ms) / peak MiB.", "", f"| variant | {head} |", "|---|" + "---:|" * len(keys)]
    for name in order:
        row = []
        for k in keys:
            e = cells[k]["results"].get(name)
            row.append(
                "-"
                if e is None
                else f"{e['median_ms']:.1f} / {e['peak_mem_mb'] if e['peak_mem_mb'] is not None else '-'}"
            )
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    rounds = ", ".join(
        f"{cells[k]['model']} b{cells[k]['batch']}: {cells[k]['rounds']} rounds in {cells[k]['wall_s']:.0f} s "
        f"(load {cells[k]['load_avg']['start'][0] if cells[k]['load_avg']['start'] else '?'}"
        f"-{cells[k]['load_avg']['end'][0] if cells[k]['load_avg']['end'] else '?'})"
        for k in keys
    )
    lines += ["", f"Wall time {result['wall_s']:.0f} s; {rounds}; all targets met: {result['all_pass']}."]
    return "\n".join(lines)
