"""CI smoke run of ``benchmarks/gpu.py --device cpu --quick``, and the real run where a GPU is present."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _run(*args: str, timeout: float) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _check_child_numbers(result: dict, steps: int) -> None:
    step = result["child_step"]
    assert step["steps"] == steps and step["bare_ms"] > 0 and step["ray_ms"] > 0
    assert step["ratio"] == pytest.approx(step["ray_ms"] / step["bare_ms"], rel=1e-3)
    assert step["target"] == 1.05 and step["pass"] == (step["ratio"] <= 1.05)
    assert step["bare_min_ms"] <= step["bare_ms"] and step["ray_min_ms"] <= step["ray_ms"]
    epoch = result["child_epoch"]
    assert epoch["bare_train_s"] > 0 and epoch["ray_train_s"] > 0
    assert epoch["ratio"] == pytest.approx(epoch["ray_train_s"] / epoch["bare_train_s"], rel=1e-2)
    # the Ray side really ran in a Ray worker process, on the same kind of device
    assert result["ray_worker"]["pid"] != result["bare"]["pid"] and result["ray_worker"]["node_id"]
    assert result["ray_worker"]["device"] == result["bare"]["device"]


def test_quick_cpu_run_prints_step_ratio_epoch_ratio_memory_and_regularizer_ratios():
    result = _run("--device", "cpu", "--quick", timeout=280)
    assert result["device"] == "cpu" and result["config"]["quick"] is True
    assert result["config"]["model"] == "convnet" and result["config"]["batch_size"] == 16
    _check_child_numbers(result, steps=4)
    assert result["bare"]["device"] == "cpu"
    assert result["gpu_memory"] == {"device_total_mb": None, "bare_peak_mb": None, "ray_peak_mb": None}
    regs = result["regularizers"]
    assert regs["device"] == "cpu" and set(regs["cells"]) == {"convnet@8"}
    numbers = regs["cells"]["convnet@8"]["results"]
    assert {"plain", "bernoulli", "autodropout_share_c", "ydrop", "largedrop"} <= set(numbers)
    assert numbers["plain"]["ratio"] == 1.0 and all(v["peak_mem_mb"] > 0 for v in numbers.values())
    assert 0 < result["wall_s"] < 300


@pytest.mark.gpu
def test_cuda_run_measures_the_ray_overhead_and_gpu_memory():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    result = _run("--device", "cuda", "--steps", "100", "--no-regularizers", timeout=600)
    _check_child_numbers(result, steps=100)
    assert result["bare"]["device"].startswith("cuda") and result["ray_worker"]["cuda_visible_devices"]
    memory = result["gpu_memory"]
    assert 0 < memory["bare_peak_mb"] < memory["device_total_mb"] and 0 < memory["ray_peak_mb"]
    assert result["config"]["bf16"] and result["config"]["channels_last"]
