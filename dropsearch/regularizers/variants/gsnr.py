"""``gsnr``: GSNR dropout, drops the updates of low gradient signal-to-noise parameters (arXiv 2310.07361)."""

from __future__ import annotations

from typing import Any

from dropsearch.regularizers.pattern import Pattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "step_helper"]


def step_helper(pattern: Pattern, model: Any) -> Any:
    """A :class:`~dropsearch.regularizers.gsnr_dropout.GSNRDropout` from the pattern's params (defaults below)."""
    from dropsearch.regularizers.gsnr_dropout import GSNRDropout

    params = pattern.params
    return GSNRDropout(
        model,
        p=float(params.get("p", 0.1)),
        estimator=str(params.get("estimator", "microbatch")),
        meta=bool(params.get("meta", False)),
        chunks=int(params.get("chunks", 4)),
        gsnr_batch=params.get("gsnr_batch"),
        bn_refresh=str(params.get("bn_refresh", "gsnr_pass")),
    )


SPEC = VariantSpec(
    name="gsnr",
    description=(
        "GSNR dropout (arXiv 2310.07361): each step estimates the gradient signal-to-noise ratio of every weight "
        "from micro-batches (or per example) and drops the update of the top-p fraction of each conv/linear "
        "layer by GSNR; the ratio p can be meta-learned. Model-wide: it takes no sites."
    ),
    params={"p": (0.05, 0.1, 0.2, 0.3), "meta": (False, True), "estimator": ("microbatch", "per_example")},
    step_helper=step_helper,
)
