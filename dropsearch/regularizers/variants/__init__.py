"""The built-in regularizer variants, one :class:`~dropsearch.regularizers.registry.VariantSpec` per file.

:data:`BUILTIN_VARIANTS` is what :mod:`dropsearch.regularizers.registry` registers on its first look-up, in this
order. Adding a built-in variant is one new file here holding its ``SPEC`` and one line in that tuple. The files
import only the standard library at module level; torch is imported when a builder, helper or preview runs.
"""

from dropsearch.regularizers.variants import (
    autodropout,
    bernoulli,
    dropblock,
    gradaug,
    gsnr,
    largedrop,
    none,
    spatial,
    ydrop,
)

BUILTIN_VARIANTS = (
    none.SPEC,
    bernoulli.SPEC,
    spatial.SPEC,
    dropblock.SPEC,
    autodropout.SPEC,
    gsnr.SPEC,
    ydrop.SPEC,
    gradaug.SPEC,
    largedrop.SPEC,
)

__all__ = ["BUILTIN_VARIANTS"]
