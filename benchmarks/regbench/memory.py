"""Peak memory of one training step: CUDA's allocator statistics, or live tensor storage on the CPU."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["LiveStorageTracker", "peak_memory_mb", "state_tensors"]


class LiveStorageTracker(TorchDispatchMode):
    """Peak bytes of live tensor storages on one device, seen through the dispatcher (CPU memory measure).

    Storages alive when tracking starts (``track``) and every storage an aten op returns are counted until
    their Python storage object is freed (``weakref.finalize``); views share their base's storage and count
    once. Kernel-internal workspaces that never become tensors are not seen.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def track(self, tensors: Any) -> None:
        """Count the storages of ``tensors`` (any nesting of lists, tuples and dicts) as live."""
        for t in pytree.tree_leaves(tensors):
            if isinstance(t, torch.Tensor) and t.device.type == self.device.type:
                storage = t.untyped_storage()
                key = storage._cdata
                if key in self._sizes:
                    continue
                self._sizes[key] = storage.nbytes()
                self.live += self._sizes[key]
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        self.track(out)
        return out


def state_tensors(model: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The tensors a training step starts with: parameters, buffers, gradients and optimizer state."""
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    tensors += [v for state in opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors


def peak_memory_mb(fn: Callable[[], Any], alive: list[torch.Tensor], device: torch.device) -> float:
    """Peak allocated memory during ``fn()`` in MiB; ``alive``: the tensors that exist before (CPU: counted).

    On CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; on the CPU the peak of live
    storage bytes seen by :class:`LiveStorageTracker`.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    tracker = LiveStorageTracker(device)  # storages alive before are counted only if tracked: no gc.collect needed
    tracker.track(alive)
    with tracker:
        fn()
    return tracker.peak / 2**20
