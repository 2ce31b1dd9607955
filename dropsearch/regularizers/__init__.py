"""The dropout variants dropsearch searches over, as pure-torch functions and modules.

This package imports only torch (and the standard library), so users can ``import dropsearch.regularizers``
in their own training code. ``apply(model, pattern)`` installs a downloaded pattern.

The pattern data classes (:mod:`dropsearch.regularizers.pattern`) and the variant registry
(:mod:`dropsearch.regularizers.registry`; one file per built-in variant in :mod:`dropsearch.regularizers.variants`),
standard library only, are imported eagerly; everything that needs torch is imported on first use, so the API layer
can read patterns and the registry without torch.
"""

from importlib import import_module
from typing import Any

from dropsearch.regularizers.pattern import (
    PATTERN_FORMAT,
    VARIANTS,
    ConvShape,
    Pattern,
    SequenceShape,
    Site,
    SitePattern,
    check_rate,
)
from dropsearch.regularizers.registry import (
    VariantSpec,
    get_variant,
    register_variant,
    unregister_variant,
    variant_names,
    variants,
)

_LAZY = {
    "AppliedPattern": "dropsearch.regularizers._apply",
    "BernoulliDropout": "dropsearch.regularizers.bernoulli",
    "DropBlock2d": "dropsearch.regularizers.drop_block",
    "GSNRDropout": "dropsearch.regularizers.gsnr_dropout",
    "GradAug": "dropsearch.regularizers.gradaug",
    "LargeDropoutHead": "dropsearch.regularizers.large_dropout",
    "PatternDropout2d": "dropsearch.regularizers.conv_pattern",
    "SequencePatternDropout": "dropsearch.regularizers.sequence_pattern",
    "SpatialDropout": "dropsearch.regularizers.spatial",
    "YDrop": "dropsearch.regularizers.ydrop",
    "YDropTrainer": "dropsearch.regularizers.ydrop",
    "apply": "dropsearch.regularizers._apply",
    "find_sites": "dropsearch.regularizers.find_sites",
    "bernoulli_dropout": "dropsearch.regularizers.bernoulli",
    "drop_block_2d": "dropsearch.regularizers.drop_block",
    "freeze_batchnorm": "dropsearch.regularizers.large_dropout",
    "gradaug_step": "dropsearch.regularizers.gradaug",
    "gsnr_stats": "dropsearch.regularizers.gsnr",
    "implied_drop_rate": "dropsearch.regularizers.conv_pattern",
    "layer_conductance": "dropsearch.regularizers.conductance",
    "make_sliceable": "dropsearch.regularizers.slimmable",
    "parameter_gsnr": "dropsearch.regularizers.gsnr",
    "pattern_mask": "dropsearch.regularizers.conv_pattern",
    "sequence_pattern_mask": "dropsearch.regularizers.sequence_pattern",
    "set_width": "dropsearch.regularizers.slimmable",
    "spatial_dropout": "dropsearch.regularizers.spatial",
    "width": "dropsearch.regularizers.slimmable",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dropsearch.regularizers' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "PATTERN_FORMAT",
    "VARIANTS",
    "AppliedPattern",
    "BernoulliDropout",
    "ConvShape",
    "DropBlock2d",
    "GSNRDropout",
    "GradAug",
    "LargeDropoutHead",
    "Pattern",
    "PatternDropout2d",
    "SequencePatternDropout",
    "SequenceShape",
    "Site",
    "SitePattern",
    "SpatialDropout",
    "VariantSpec",
    "YDrop",
    "YDropTrainer",
    "apply",
    "bernoulli_dropout",
    "check_rate",
    "drop_block_2d",
    "find_sites",
    "freeze_batchnorm",
    "get_variant",
    "gradaug_step",
    "gsnr_stats",
    "implied_drop_rate",
    "layer_conductance",
    "make_sliceable",
    "parameter_gsnr",
    "pattern_mask",
    "register_variant",
    "sequence_pattern_mask",
    "set_width",
    "spatial_dropout",
    "unregister_variant",
    "variant_names",
    "variants",
    "width",
]
