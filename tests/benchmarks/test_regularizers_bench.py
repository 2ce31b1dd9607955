"""CI smoke run of ``benchmarks/regularizers.py --quick``: it runs, prints the documented JSON and its table."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "regularizers.py"
VARIANTS = ["bernoulli", "autodropout_share_c", "gsnr", "ydrop", "gradaug", "largedrop"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=240)


def test_quick_benchmark_prints_ratio_spread_and_memory_for_every_variant(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--quick", "--models", "convnet,resnet18", "--variants", ",".join(VARIANTS), "--json", str(out)]
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result == json.loads(out.read_text())
    assert {"device", "torch", "machine", "cells", "targets", "pass", "all_pass", "wall_s"} <= set(result)
    assert result["device"] == "cpu" and result["wall_s"] > 0
    assert set(result["targets"]) == {"autodropout", "largedrop", "ydrop", "gsnr", "gradaug"}
    assert set(result["cells"]) == {"convnet@8", "resnet18@8"}
    for key, cell in result["cells"].items():
        assert 2 <= cell["rounds"] <= 3 and cell["wall_s"] > 0 and cell["batch"] == 8
        numbers = cell["results"]
        assert set(numbers) == set(VARIANTS) | {"plain", "plain_head"}
        assert numbers["plain"]["ratio"] == 1.0 and numbers["largedrop"]["reference"] == "plain_head"
        for name, entry in numbers.items():
            assert entry["median_ms"] > 0 and entry["ratio"] > 0 and entry["peak_mem_mb"] > 0
            if entry["reference"] != name:  # a variant: its median pair ratio lies within its spread
                assert entry["pairs"] == cell["rounds"]
                lo, hi = entry["range"]
                q1, q3 = entry["iqr"]
                assert lo <= q1 <= entry["ratio"] <= q3 <= hi
        ydrop = numbers["ydrop"]
        assert ydrop["median_ms"] > ydrop["step_ms"]  # the amortized refresh is included
        assert ydrop["median_ms"] == round(ydrop["step_ms"] + ydrop["refresh_ms"] / 10, 3)
        assert set(result["pass"][key]) == set(VARIANTS) - {"bernoulli"}
        assert all(result["pass"][key][v] == (numbers[v]["ratio"] <= numbers[v]["target"]) for v in result["pass"][key])
        # the biggest activation footprint: Y-Drop's refresh runs (steps + 1) x the batch through the model
        assert numbers["ydrop"]["peak_mem_mb"] > numbers["plain"]["peak_mem_mb"]
    table = _run("--markdown", "--from-json", str(out))
    assert table.returncode == 0, table.stderr[-2000:]
    assert "| convnet b8 | resnet18 b8 |" in table.stdout and "| gsnr | plain | <= 2.00 |" in table.stdout


def test_bad_cell_is_a_cli_error_naming_it():
    proc = _run("--cells", "convnet:0")
    assert proc.returncode == 2 and "--cells" in proc.stderr and "convnet:0" in proc.stderr


def test_a_slow_refresh_is_timed_every_few_rounds_and_the_pairs_between_use_its_median(monkeypatch):
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("regularizers_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    clock = {"now": 0.0}
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["now"])
    refreshes = []

    def advance(seconds):
        def step():
            clock["now"] += seconds
            if seconds == 20.0:
                refreshes.append(clock["now"])

        return step

    runners = {
        "plain": bench.Runner("plain", None, advance(1.0)),
        "ydrop": bench.Runner("ydrop", "plain", advance(1.5), refresh=advance(20.0)),
    }
    ratios = [bench.timed_round(runners, ["ydrop"], torch.device("cpu"), r)["ydrop"] for r in range(7)]
    assert len(refreshes) == 3  # rounds 0, 3 and 6: a 20 s refresh is over REFRESH_TIMING_MAX_S
    assert ratios == [1.5 + 20.0 / bench.REFRESH_EVERY] * 7  # the rounds between use the median refresh
