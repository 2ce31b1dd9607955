"""CI smoke run of ``benchmarks/regularizers.py --quick``: it runs and prints the documented JSON."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "regularizers.py"
VARIANTS = ["bernoulli", "autodropout_share_c", "gsnr", "ydrop", "gradaug", "largedrop"]


def test_quick_benchmark_prints_ratios_and_memory_for_every_variant():
    args = ["--quick", "--models", "convnet,resnet18", "--variants", ",".join(VARIANTS), "--steps", "2"]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert {"device", "torch", "machine", "models", "targets", "pass"} <= set(result)
    assert result["device"] == "cpu"
    assert set(result["targets"]) == {"autodropout", "largedrop", "ydrop", "gsnr", "gradaug"}
    for model in ("convnet", "resnet18"):
        numbers = result["models"][model]
        assert set(VARIANTS) | {"plain", "plain_head", "none"} <= set(numbers)
        for entry in numbers.values():
            assert {"median_ms", "ratio", "peak_mem_mb"} <= set(entry)
            assert entry["median_ms"] > 0 and entry["ratio"] > 0 and entry["peak_mem_mb"] > 0
        assert numbers["plain"]["ratio"] == 1.0
        assert numbers["ydrop"]["median_ms"] > numbers["ydrop"]["step_ms"]  # the amortized refresh is included
        assert set(result["pass"][model]) == set(VARIANTS) - {"bernoulli"}
        assert all(isinstance(v, bool) for v in result["pass"][model].values())
        # the biggest activation footprint: Y-Drop's refresh runs (steps + 1) x the batch through the model
        assert numbers["ydrop"]["peak_mem_mb"] > numbers["plain"]["peak_mem_mb"]
