"""Command line of the quality study.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python -m benchmarks.quality                 # MNIST-1D MLP through the service (~30 min)
    OMP_NUM_THREADS=1 python -m benchmarks.quality --controllers reinforce,random   # and random search too
    OMP_NUM_THREADS=1 python -m benchmarks.quality --size tiny --out /tmp/q   # CI smoke size
    OMP_NUM_THREADS=1 python -m benchmarks.quality --study digits  # the earlier digits / rotated-digits study
    python -m benchmarks.quality --study digits --full              # its larger children and searches, for GPUs
    python -m benchmarks.quality --report-only docs/results/mnist1d.json  # redraw the tables

The MNIST-1D study writes ``mnist1d.json`` (every number), ``mnist1d.log`` and ``mnist1d_tables.md`` into
``--out``; the digits study ``quality.json``, ``quality.log``, ``tables.md`` and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.quality.config import SIZES
from benchmarks.quality.mnist1d import MNIST1D_SIZES
from benchmarks.quality.mnist1d_report import mnist1d_tables
from benchmarks.quality.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=("mnist1d", "digits"), default="mnist1d")
    parser.add_argument("--size", choices=sorted(set(SIZES) | set(MNIST1D_SIZES)), default="default")
    parser.add_argument("--full", action="store_true", help="digits study: same as --size full")
    parser.add_argument("--controllers", default=None, help="mnist1d study: comma-separated, e.g. reinforce,random")
    parser.add_argument("--early-stopping", default=None, help="mnist1d study: the searches' budget.early_stopping")
    parser.add_argument("--trials", type=int, default=None, help="mnist1d study: trials per search")
    parser.add_argument("--grace-epochs", type=int, default=None, help="mnist1d study: the budget's grace_epochs")
    parser.add_argument("--reuse-baselines", type=Path, default=None, help="mnist1d study: an earlier mnist1d.json")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--report-only", type=Path, default=None, help="redraw from an existing JSON document")
    args = parser.parse_args(argv)
    if args.report_only is not None:
        doc = json.loads(args.report_only.read_text())
        if doc.get("study") == "mnist1d":
            (args.report_only.parent / "mnist1d_tables.md").write_text(mnist1d_tables(doc))
        else:
            write_report(doc, args.report_only.parent)
        return 0
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = (args.out / f"{'mnist1d' if args.study == 'mnist1d' else 'quality'}.log").open("w")

    def log(line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        print(stamped, flush=True)
        log_file.write(stamped + "\n")
        log_file.flush()

    log(f"command: {' '.join([sys.executable, '-m', 'benchmarks.quality', *(argv or sys.argv[1:])])}")
    log(f"load average: {os.getloadavg()}")
    if args.study == "mnist1d":
        return _mnist1d(args, argv, log)
    from benchmarks.quality.study import run_study

    size = SIZES["full" if args.full else args.size]
    doc = run_study(size, args.out / "quality.json", log=log)
    doc["command"] = "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "quality.json").write_text(json.dumps(doc, indent=1))
    write_report(doc, args.out)
    log(f"done in {doc['wall_s']:.0f} s; tables in {args.out / 'tables.md'}")
    return 0


def _mnist1d(args: argparse.Namespace, argv: list[str] | None, log) -> int:
    import dataclasses
    import tempfile

    from benchmarks.quality.mnist1d import reusable_baselines, run_mnist1d_study

    if args.size not in MNIST1D_SIZES or args.full:
        raise SystemExit(f"--size: the mnist1d study has sizes {', '.join(sorted(MNIST1D_SIZES))}")
    size = MNIST1D_SIZES[args.size]
    if args.controllers:
        size = dataclasses.replace(size, controllers=tuple(c.strip() for c in args.controllers.split(",")))
    if args.early_stopping:
        size = dataclasses.replace(size, early_stopping=args.early_stopping)
    if args.trials:
        size = dataclasses.replace(size, trials=args.trials)
    if args.grace_epochs:
        size = dataclasses.replace(size, grace_epochs=args.grace_epochs)
    baselines = None
    if args.reuse_baselines is not None:
        baselines = reusable_baselines(size, json.loads(args.reuse_baselines.read_text()))
    workdir = Path(tempfile.mkdtemp(prefix="quality-mnist1d-"))
    doc = run_mnist1d_study(size, args.out / "mnist1d.json", workdir, log=log, baselines=baselines)
    doc["command"] = "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "mnist1d.json").write_text(json.dumps(doc, indent=1, default=str))
    (args.out / "mnist1d_tables.md").write_text(mnist1d_tables(doc))
    log(f"done in {doc['wall_s']:.0f} s; tables in {args.out / 'mnist1d_tables.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
