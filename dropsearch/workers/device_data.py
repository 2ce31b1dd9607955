"""A dataset held on the training device, with cheap shuffled batches (no DataLoader, no host copies per step).

The built-in datasets are small enough to live on the GPU (or in CPU memory) whole; batches are index
selections of one permutation per epoch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from dropsearch.workers.datasets import DatasetBundle

__all__ = ["DeviceData", "resolve_device"]


def _ray_worker_gpus() -> int | None:
    """How many GPUs Ray granted this process when it is a Ray worker (task or actor); ``None`` elsewhere.

    Ray >= 2.49 no longer sets ``CUDA_VISIBLE_DEVICES=""`` for a worker granted no GPU (ray-project/ray#54868):
    without this check a CPU trial on a GPU node would see every GPU and train on ``cuda:0`` unreserved.
    """
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    from ray._private.worker import WORKER_MODE, global_worker

    if global_worker.mode != WORKER_MODE:
        return None
    return len(ray.get_gpu_ids())


def resolve_device(requested: str = "auto") -> str:
    """``"cuda"`` when requested or when ``"auto"`` and a GPU is visible (in a Ray worker: granted), else cpu.

    Raises:
        ValueError: naming the value when it is not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, or when CUDA is
            requested on a machine without it.
    """
    if requested == "auto":
        granted = _ray_worker_gpus()
        if granted is not None:
            return "cuda" if granted and torch.cuda.is_available() else "cpu"
        return "cuda" if torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES", "x") != "" else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was requested but CUDA is not available here")
        return requested
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {requested!r}")


@dataclass
class DeviceData:
    """Training, validation and held-out-domain tensors on one device.

    Shape:
        - x_train: (N, ...) inputs, y_train: (N,) or (N, T) targets; likewise for the evaluation sets.
        - d_train: (N,) int64 source-domain ids of the training examples, or ``None`` (no domains).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    evals: dict[str, tuple[torch.Tensor, torch.Tensor]]
    d_train: torch.Tensor | None = None

    @classmethod
    def from_bundle(cls, bundle: DatasetBundle, device: torch.device, *, pin: bool = False) -> DeviceData:
        """Move a bundle's tensors to ``device`` once (through pinned host memory when ``pin``)."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if pin and device.type == "cuda":
                t = t.pin_memory()
            return t.to(device, non_blocking=pin)

        evals = {"val": (move(bundle.x_val), move(bundle.y_val))}
        heldout = bundle.heldout()
        if heldout is not None:
            evals["heldout"] = (move(heldout[0]), move(heldout[1]))
        d_train = None if bundle.d_train is None else move(bundle.d_train.long())
        return cls(move(bundle.x_train), move(bundle.y_train), evals, d_train)

    def _batch_indices(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        n = len(self.x_train)
        order = torch.randperm(n, generator=generator).to(self.x_train.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                break
            yield idx

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled ``(x, y)`` batches of one epoch; the last partial batch is kept when it has >= 2 examples."""
        for idx in self._batch_indices(batch_size, generator):
            yield self.x_train.index_select(0, idx), self.y_train.index_select(0, idx)

    def train_batches_with_domains(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """The batches of :meth:`train_batches` (same order for the same generator state), with domain ids.

        Yields:
            ``(x, y, d)``: ``d`` is the (B,) int64 domain id of each example, or ``None`` without domains.
        """
        for idx in self._batch_indices(batch_size, generator):
            d = None if self.d_train is None else self.d_train.index_select(0, idx)
            yield self.x_train.index_select(0, idx), self.y_train.index_select(0, idx), d

    def shard(self, rank: int, world: int) -> None:
        """Keep every ``world``-th training example starting at ``rank`` (data-parallel children).

        Every rank keeps the same number of examples (the last ``N % world`` are dropped): ranks with different
        batch counts per epoch would wait forever in DDP's gradient all-reduce.
        """
        n = len(self.x_train) // world * world
        self.x_train = self.x_train[rank:n:world]
        self.y_train = self.y_train[rank:n:world]
        if self.d_train is not None:
            self.d_train = self.d_train[rank:n:world]

    def eval_sets(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{"val": (x, y), "heldout": (x, y)}`` (held-out only for datasets with held-out domains)."""
        return self.evals
