"""``largedrop``: very large dropout on the pooled features for fine-tuning (Zhang and Bottou 2024, 2403.00946)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dropsearch.regularizers.pattern import Pattern, SitePattern
from dropsearch.regularizers.registry import VariantSpec

__all__ = ["SPEC", "build_module", "step_helper"]


def build_module(site: SitePattern, params: Mapping[str, Any], target: Any, kind: str | None) -> Any:
    """``BernoulliDropout(rate)`` on the features site; nothing at rate 0."""
    if site.rate == 0.0:
        return None
    from dropsearch.regularizers.bernoulli import BernoulliDropout

    return BernoulliDropout(site.rate)


def step_helper(pattern: Pattern, model: Any) -> None:
    """Freeze BatchNorm (``params.freeze_bn``, default true); the step itself is plain."""
    if bool(pattern.params.get("freeze_bn", True)):
        from dropsearch.regularizers.large_dropout import freeze_batchnorm

        freeze_batchnorm(model)
    return None


SPEC = VariantSpec(
    name="largedrop",
    description=(
        "Very large dropout for fine-tuning (Zhang and Bottou 2024, arXiv 2403.00946): a network first trained "
        "without it is fine-tuned with dropout of rate 0.5-0.95 on its pooled penultimate features only, "
        "BatchNorm frozen. The searched rate applies to every features site."
    ),
    site_kinds=("features",),
    params={"rate": (0.5, 0.8, 0.9, 0.95), "pretrain_epochs": (2, 5)},
    rate_param="rate",
    constants={"freeze_bn": True},
    build_module=build_module,
    step_helper=step_helper,
    fine_tune=True,
)
