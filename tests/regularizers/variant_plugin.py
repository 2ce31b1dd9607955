"""A test-only regularizer variant shipped the way an outside package ships one: a module plus a ``*.dist-info``
directory whose ``entry_points.txt`` registers it in the group ``dropsearch.variants``.

``linedrop-test`` drops whole rows (or columns) of a conv feature map, scaled by ``1 / (1 - rate)``: per-site token
``axis`` (rows / cols), global decision ``shared`` (the same lines for every channel, or per channel), and a mask
preview. :func:`write_plugin` writes it under a directory that the caller puts on ``sys.path`` (and ``PYTHONPATH``
for Ray workers).
"""

from __future__ import annotations

from pathlib import Path

from tests._plugins import write_package

NAME = "linedrop-test"

SOURCE = '''
"""linedrop-test: drop whole rows or columns of a conv feature map (a dropsearch variant plugin for tests)."""

import torch
from torch import nn

from dropsearch.regularizers import VariantSpec


class LineDropout(nn.Module):
    """Zero whole rows (``axis="rows"``) or columns of ``(B, C, H, W)`` with probability ``p``; identity in eval."""

    def __init__(self, p: float, axis: str = "rows", shared: bool = True) -> None:
        super().__init__()
        self.p, self.axis, self.shared = float(p), axis, bool(shared)

    def mask(self, shape, generator=None, device=None):
        b, c, h, w = shape
        c = 1 if self.shared else c
        lines = (b, c, h, 1) if self.axis == "rows" else (b, c, 1, w)
        return (torch.rand(lines, generator=generator, device=device) >= self.p).float()

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return x * self.mask(x.shape, device=x.device).to(x.dtype) / (1.0 - self.p)


def build_module(site, params, target, kind):
    if site.rate == 0.0:
        return None
    return LineDropout(site.rate, axis=site.shape.get("axis", "rows"), shared=params.get("shared", True))


def mask_preview(site, side, generator):
    shape = dict(site.get("shape") or {})
    module = LineDropout(float(site.get("rate", 0.0)), axis=shape.get("axis", "rows"))
    mask = module.mask((1, 1, side, side), generator=generator).expand(1, 1, side, side)
    return mask[0, 0], shape.get("axis", "rows")


SPEC = VariantSpec(
    name="linedrop-test",
    description="Test-only plugin: drops whole rows or columns of conv feature maps.",
    site_kinds=("conv",),
    params={"shared": (True, False)},
    site_tokens={"conv": {"axis": ("rows", "cols")}},
    build_module=build_module,
    mask_preview=mask_preview,
)
'''


def write_plugin(root: Path, *, module: str = "dropsearch_linedrop_test", name: str = NAME) -> Path:
    """Write the plugin module and its dist-info under ``root`` (a ``sys.path`` entry) and return ``root``."""
    return write_package(root, module, SOURCE, "dropsearch.variants", f"{name} = {module}:SPEC")
