"""Command line of the quality study.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python -m benchmarks.quality                 # default size: about an hour on 2 CPU cores
    OMP_NUM_THREADS=1 python -m benchmarks.quality --size tiny --out /tmp/q   # CI smoke size, under a minute
    python -m benchmarks.quality --full                              # larger children and searches, for GPUs
    python -m benchmarks.quality --report-only docs/results/quality.json  # redraw tables and plots

Writes ``quality.json`` (every number), ``quality.log``, ``tables.md`` and the PNG plots into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.quality.config import SIZES
from benchmarks.quality.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--full", action="store_true", help="same as --size full")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--report-only", type=Path, default=None, help="redraw from an existing quality.json")
    args = parser.parse_args(argv)
    if args.report_only is not None:
        doc = json.loads(args.report_only.read_text())
        write_report(doc, args.report_only.parent)
        return 0
    import torch

    torch.set_num_threads(1)
    from benchmarks.quality.study import run_study

    size = SIZES["full" if args.full else args.size]
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = (args.out / "quality.log").open("w")

    def log(line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        print(stamped, flush=True)
        log_file.write(stamped + "\n")
        log_file.flush()

    log(f"command: {' '.join([sys.executable, '-m', 'benchmarks.quality', *(argv or sys.argv[1:])])}")
    doc = run_study(size, args.out / "quality.json", log=log)
    doc["command"] = "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "quality.json").write_text(json.dumps(doc, indent=1))
    write_report(doc, args.out)
    log(f"done in {doc['wall_s']:.0f} s; tables in {args.out / 'tables.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
