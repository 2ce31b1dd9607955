"""What the catalog says about each regularizer variant, read from the variant registry (no torch).

``GET /v1/catalog`` lists these entries; :func:`model_variants` tells which variants a built-in model is offered,
from the site kinds of its dropout sites (:data:`BUILTIN_MODEL_SITE_KINDS`, checked against the real models by the
workers' tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dropsearch.regularizers.pattern import Site, VariantSpec, variants
from dropsearch.search.builtin import DEFAULT_RATES

__all__ = ["BUILTIN_MODEL_SITE_KINDS", "model_variants", "variant_entry", "variant_entries"]

#: The kinds of dropout site each built-in model has with its default params (classification).
BUILTIN_MODEL_SITE_KINDS: dict[str, tuple[str, ...]] = {
    "convnet": ("conv", "features"),
    "resnet": ("conv", "features"),
    "mlp": ("linear", "features"),
    "transformer": ("sequence", "features"),
    "cnn1d": ("sequence", "features"),
}


def _lists(table: dict[str, tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {name: [list(c) if isinstance(c, tuple) else c for c in choices] for name, choices in table.items()}


def variant_entry(spec: VariantSpec, *, rates: Sequence[float] = DEFAULT_RATES) -> dict[str, Any]:
    """The catalog entry of one variant.

    Returns:
        ``name``, ``description``, ``site_kinds`` (the kinds it regularizes), ``excluded_site_kinds`` (a model with
        such a site is not offered it), ``decisions`` (``"<variant>/<param>" -> choices``), ``site_decisions``
        (site kind -> token -> choices, ``rate`` over ``rates`` where each site has its own rate), ``constants``.
    """
    site_decisions: dict[str, dict[str, list[Any]]] = {}
    for kind in spec.site_kinds:
        table: dict[str, list[Any]] = {}
        if spec.rate_param is None:
            table["rate"] = [float(r) for r in rates]
        table.update(_lists(dict(spec.site_tokens.get(kind, {}))))
        if table:
            site_decisions[kind] = table
    return {
        "name": spec.name,
        "description": spec.description,
        "site_kinds": list(spec.site_kinds),
        "excluded_site_kinds": list(spec.excluded_site_kinds),
        "decisions": {f"{spec.name}/{k}": v for k, v in _lists(dict(spec.params)).items()},
        "site_decisions": site_decisions,
        "constants": dict(spec.constants),
    }


def variant_entries(*, rates: Sequence[float] = DEFAULT_RATES) -> list[dict[str, Any]]:
    """The entries of every registered variant (built-ins first, then installed plugins, which get loaded)."""
    return [variant_entry(spec, rates=rates) for spec in variants()]


def model_variants(model: str) -> list[str] | None:
    """The variants a built-in model is offered (``None`` for a plugin model: its sites are known once built)."""
    kinds = BUILTIN_MODEL_SITE_KINDS.get(model)
    if kinds is None:
        return None
    sites = [Site(f"site{i}", kind) for i, kind in enumerate(kinds)]
    return [spec.name for spec in variants() if spec.offered_to(sites)]
