"""The dropout variants dropsearch searches over, as pure-torch functions and modules.

This package imports only torch (and the standard library), so users can ``import dropsearch.regularizers``
in their own training code.
"""

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

__all__ = [
    "PATTERN_FORMAT",
    "VARIANTS",
    "ConvShape",
    "Pattern",
    "SequenceShape",
    "Site",
    "SitePattern",
    "check_rate",
]
