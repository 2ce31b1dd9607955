"""The dropout variants dropsearch searches over, as pure-torch functions and modules.

This package imports only torch (and the standard library), so users can ``import dropsearch.regularizers``
in their own training code. ``apply(model, pattern)`` installs a downloaded pattern.
"""

from dropsearch.regularizers.apply import AppliedPattern, apply
from dropsearch.regularizers.bernoulli import BernoulliDropout, bernoulli_dropout
from dropsearch.regularizers.conductance import layer_conductance
from dropsearch.regularizers.conv_pattern import PatternDropout2d, implied_drop_rate, pattern_mask
from dropsearch.regularizers.drop_block import DropBlock2d, drop_block_2d
from dropsearch.regularizers.gradaug import GradAug, gradaug_step
from dropsearch.regularizers.gsnr import gsnr_stats, parameter_gsnr
from dropsearch.regularizers.gsnr_dropout import GSNRDropout
from dropsearch.regularizers.large_dropout import LargeDropoutHead, freeze_batchnorm
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
from dropsearch.regularizers.sequence_pattern import SequencePatternDropout, sequence_pattern_mask
from dropsearch.regularizers.slimmable import make_sliceable, set_width, width
from dropsearch.regularizers.spatial import SpatialDropout, spatial_dropout
from dropsearch.regularizers.ydrop import YDrop, YDropTrainer

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
    "YDrop",
    "YDropTrainer",
    "apply",
    "bernoulli_dropout",
    "check_rate",
    "drop_block_2d",
    "freeze_batchnorm",
    "gradaug_step",
    "gsnr_stats",
    "implied_drop_rate",
    "layer_conductance",
    "make_sliceable",
    "parameter_gsnr",
    "pattern_mask",
    "sequence_pattern_mask",
    "set_width",
    "spatial_dropout",
    "width",
]
