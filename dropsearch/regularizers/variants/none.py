"""``none``: no dropout at all, the baseline every search can fall back to."""

from dropsearch.regularizers.registry import VariantSpec

SPEC = VariantSpec(
    name="none",
    description="No dropout (the baseline): the model trains with a plain step and nothing is installed.",
)
