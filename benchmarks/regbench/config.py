"""What the regularizer benchmark times: models, variants and their patterns, targets and default cells."""

from __future__ import annotations

from typing import Any

from torch import nn

from dropsearch.workers.models import dropout_sites

__all__ = [
    "BIG_CELL_VARIANTS",
    "BUDGET_S",
    "CELLS",
    "MAX_ROUNDS",
    "MIN_ROUNDS",
    "MODELS",
    "REFRESH_EVERY",
    "TARGETS",
    "VARIANTS",
    "conv_sites",
    "target_of",
    "variant_pattern",
]

#: name -> (registry name, params, in_shape, default batch size); ``quick`` shrinks the widths.
MODELS: dict[str, dict[str, Any]] = {
    "convnet": {"name": "convnet", "params": {}, "quick": {"widths": [8, 16]}, "in_shape": (1, 28, 28), "batch": 64},
    "resnet18": {
        "name": "resnet",
        "params": {"depth": 18, "width": 64},
        "quick": {"depth": 18, "width": 4},
        "in_shape": (3, 32, 32),
        "batch": 128,  # the usual CIFAR ResNet training batch
    },
}

CONV_RATE = 0.1
LARGE_RATE = 0.9
REFRESH_EVERY = 10
#: The AutoDropout tokens measured (a mid-range pattern: 2x2 squares, gap 2, 2x2 per cell, rotated and sheared).
AUTODROPOUT_TOKENS = {"size": 2, "stride": 2, "repeat": 2, "rotate": 30, "shear_x": 0.15, "shear_y": 0.0}
VARIANTS = (
    "bernoulli",
    "spatial",
    "dropblock",
    "autodropout_share_c",
    "autodropout_per_channel",
    "gsnr",
    "gsnr_subbatch",
    "ydrop",
    "gradaug",
    "largedrop",
)
#: Issue targets: the largest allowed ratio to plain dropout, per variant family.
TARGETS = {"autodropout": 1.10, "largedrop": 1.02, "ydrop": 1.3, "gsnr": 2.0, "gradaug": 3.0}


def conv_sites(model: nn.Module) -> list[str]:
    return [s.name for s in dropout_sites(model) if s.kind == "conv"]


def variant_pattern(variant: str, model: nn.Module, batch: int) -> dict[str, Any]:
    """The pattern JSON benchmarked for ``variant`` on ``model``."""
    conv = conv_sites(model)
    if variant in ("bernoulli", "spatial", "ydrop"):
        params = {"refresh_every": REFRESH_EVERY, "steps": 5} if variant == "ydrop" else {}
        return {"variant": variant, "sites": [{"site": s, "rate": CONV_RATE} for s in conv], "params": params}
    if variant == "dropblock":
        return {"variant": variant, "sites": [{"site": s, "rate": CONV_RATE, "shape": {"block_size": 3}} for s in conv]}
    if variant.startswith("autodropout"):
        shape = {**AUTODROPOUT_TOKENS, "share_c": variant.endswith("share_c"), "residual": False}
        return {"variant": "autodropout", "sites": [{"site": s, "rate": CONV_RATE, "shape": shape} for s in conv]}
    if variant == "gsnr":
        return {"variant": "gsnr", "params": {"p": 0.1, "estimator": "microbatch", "chunks": 4}}
    if variant == "gsnr_subbatch":  # the GSNR measured on the first half of the batch
        params = {"p": 0.1, "estimator": "microbatch", "chunks": 4, "gsnr_batch": min(batch, max(8, batch // 2))}
        return {"variant": "gsnr", "params": params}
    if variant == "gradaug":
        return {"variant": "gradaug", "params": {"min_width": 0.8, "n_subnets": 3, "resolutions": [1.0, 0.875, 0.75]}}
    if variant == "largedrop":
        return {"variant": "largedrop", "sites": [{"site": "head.drop", "rate": LARGE_RATE}]}
    raise ValueError(f"unknown benchmark variant {variant!r}; expected one of {', '.join(VARIANTS)}")


def target_of(variant: str) -> float | None:
    """The issue's ratio target for a benchmark variant (``None``: no target)."""
    family = variant.split("_")[0]
    return TARGETS.get(family)


#: The default cells (model, batch) and each one's share of ``--budget``; ResNet-18 at batch 128 times only the
#: variants with a target (its rounds are long).
CELLS: tuple[tuple[str, int, float], ...] = (
    ("convnet", 32, 0.08),
    ("convnet", 64, 0.12),
    ("resnet18", 32, 0.25),
    ("resnet18", 128, 0.55),
)
#: The variants timed at ResNet-18 batch 128: one per target (``gsnr_subbatch``, cheaper than ``gsnr``, is left out).
BIG_CELL_VARIANTS = tuple(v for v in VARIANTS if target_of(v) is not None and v != "gsnr_subbatch")
BUDGET_S = 240.0
MIN_ROUNDS, MAX_ROUNDS = 3, 40
