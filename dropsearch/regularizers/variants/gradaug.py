"""``gradaug``: width-sliced sub-networks on resized inputs, pulled to the full network (arXiv 2006.07989).

Resolutions: a pattern states them in ``params.resolutions`` (scale factors of the input side, sizes or ``[H, W]``
pairs, or ``null`` for no resizing). A pattern without the key gets :data:`DEFAULT_RESOLUTIONS`, the paper's CIFAR
list ``(32, 28, 24)`` as scales of any input side. A model without ``Conv2d`` layers cannot take resized inputs, so
its resolutions are ignored and spaces of models without conv sites state ``resolutions: null``.
"""

from __future__ import annotations

from typing import Any

from dropsearch.regularizers.pattern import Pattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "DEFAULT_RESOLUTIONS", "step_helper"]

#: Resolutions of a pattern that names none: the paper's CIFAR (32, 28, 24) as scales of the input side.
DEFAULT_RESOLUTIONS: tuple[float, ...] = (1.0, 0.875, 0.75)


def step_helper(pattern: Pattern, model: Any) -> Any:
    """A :class:`~dropsearch.regularizers.gradaug.GradAug` (converts the model's layers to sliceable ones)."""
    from torch import nn

    from dropsearch.regularizers.gradaug import GradAug

    params = pattern.params
    resolutions = params.get("resolutions", DEFAULT_RESOLUTIONS)
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        resolutions = None  # an MLP or sequence model cannot take resized inputs: width slicing only
    return GradAug(
        model,
        min_width=float(params.get("min_width", 0.8)),
        n_subnets=int(params.get("n_subnets", 3)),
        resolutions=tuple(resolutions) if resolutions else None,
    )


SPEC = VariantSpec(
    name="gradaug",
    description=(
        "GradAug (Yang et al. 2020, arXiv 2006.07989): each step also runs n_subnets width-sliced sub-networks "
        "(widths down to min_width) on the batch resized to one of the resolutions, and pulls their predictions "
        "to the full network's by a KL term. Model-wide; not offered to models with sequence sites (a "
        "Transformer's LayerNorm, embeddings and residual stream are not width-sliced)."
    ),
    # resolutions are scale factors of the input side (1.0 = unchanged), widest first.
    params={"min_width": (0.7, 0.8, 0.9), "n_subnets": (2, 3, 4), "resolutions": ((1.0,), DEFAULT_RESOLUTIONS)},
    conditional_params={"resolutions": (("conv",), None)},
    excluded_site_kinds=("sequence",),
    step_helper=step_helper,
)
