"""``ydrop``: Y-Drop, dropout biased by neuron conductance (arXiv 2409.09088)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dropsearch.regularizers.pattern import Pattern, SitePattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "build_module", "step_helper"]


def build_module(site: SitePattern, params: Mapping[str, Any], target: Any, kind: str | None) -> Any:
    """``YDrop(rate, scale, floor, ema)``, installed at rate 0 too (its keep probabilities follow conductance)."""
    from dropsearch.regularizers.ydrop import YDrop

    return YDrop(
        site.rate,
        scale=float(params.get("scale", 1.0)),
        floor=float(params.get("floor", 0.3)),
        ema=float(params.get("ema", 0.9)),
    )


def step_helper(pattern: Pattern, model: Any) -> Any:
    """A :class:`~dropsearch.regularizers.ydrop.YDropTrainer` that refreshes the conductance scores."""
    from dropsearch.regularizers.ydrop import YDropTrainer

    params = pattern.params
    return YDropTrainer(
        model,
        refresh_every=int(params.get("refresh_every", 10)),
        steps=int(params.get("steps", 5)),
        refresh_batch=params.get("refresh_batch", 16),
    )


SPEC = VariantSpec(
    name="ydrop",
    description=(
        "Y-Drop (arXiv 2409.09088): features or channels are dropped with a probability that rises with their "
        "conductance (their share of the output), so the network cannot lean on a few units; the mean drop "
        "probability of a site is its rate. Conductance is refreshed every refresh_every steps."
    ),
    site_kinds=("conv", "linear", "features"),
    params={"scale": (0.5, 1.0, 2.0), "refresh_every": (10, 50, 200), "steps": (4, 8)},
    build_module=build_module,
    step_helper=step_helper,
)
