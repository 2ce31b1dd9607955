"""Random draws that honour an optional ``torch.Generator`` and land on the requested device.

A generator lives on one device (``generator.device``); torch refuses to draw with it onto another. These helpers
draw on the generator's device and move the result, so a CPU generator can seed masks for a CUDA tensor.
"""

from __future__ import annotations

import torch

__all__ = ["uniform", "randint"]


def _draw_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    if generator is not None:
        return torch.device(generator.device)
    return torch.device(device) if device is not None else torch.device("cpu")


def uniform(
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Float32 samples from U[0, 1) of ``shape`` on ``device`` (drawn with ``generator`` when given)."""
    u = torch.rand(shape, generator=generator, device=_draw_device(generator, device), dtype=torch.float32)
    return u.to(device) if device is not None else u


def randint(
    high: int,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Int64 samples uniform in ``[0, high)`` of ``shape`` on ``device`` (drawn with ``generator`` when given)."""
    r = torch.randint(0, high, shape, generator=generator, device=_draw_device(generator, device))
    return r.to(device) if device is not None else r
