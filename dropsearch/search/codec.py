"""Tokens <-> pattern document for the built-in spaces (the pattern format: docs/REGULARIZERS.md).

``tokens_to_pattern`` reads the ``variant`` decision, then only the decisions that variant uses (see
:func:`relevant_decisions`); the others are ignored. ``pattern_to_tokens`` is its inverse and maps the ignored
decisions to token 0, so for every pattern ``p`` decoded from a space, ``tokens_to_pattern(space,
pattern_to_tokens(space, p)) == p``, and ``pattern_to_tokens(space, tokens_to_pattern(space, t)) ==
canonical_tokens(space, t)``.

What a variant decodes to is read from its registry entry (:mod:`dropsearch.regularizers.registry`): its global
params (``"<variant>/<param>"``), its constants, the params stated when their decision is absent from the space
(``conditional_params``, e.g. ``resolutions: null`` for GradAug on a model without conv sites), the params that go
into every site's shape (``shape_params``) or rate (``rate_param``), and its per-site tokens by site kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dropsearch.regularizers.pattern import Pattern, SitePattern, VariantSpec, get_variant
from dropsearch.search.space import SearchSpace

__all__ = ["relevant_decisions", "canonical_tokens", "tokens_to_pattern", "pattern_to_tokens"]


def _shape_keys(spec: VariantSpec, kind: str) -> tuple[str, ...]:
    """The keys of a site's ``shape``: its per-site tokens, then the global params copied into every site."""
    return (*spec.site_tokens.get(kind, {}), *spec.shape_params)


def _shape_decision(spec: VariantSpec, site: str, key: str) -> str:
    return f"{spec.name}/{key}" if key in spec.shape_params else f"{site}/{key}"


def _stated(spec: VariantSpec, space: SearchSpace) -> dict[str, Any]:
    """Params every pattern of ``spec`` in ``space`` carries without a decision.

    These are the conditional params whose decision the space lacks, then the constants.
    """
    out = {k: v for k, (_, v) in spec.conditional_params.items() if f"{spec.name}/{k}" not in space}
    out.update(spec.constants)
    return out


def relevant_decisions(space: SearchSpace, variant: str) -> tuple[str, ...]:
    """Names of the decisions that a pattern of ``variant`` depends on, in space order."""
    if "variant" not in space:
        raise ValueError("this space has no 'variant' decision, so its tokens do not decode to a pattern")
    spec = get_variant(variant)
    used = {"variant"} | {n for n in space.names if n.startswith(f"{variant}/")}
    for site in spec.sites_of(space.sites):
        used.add(spec.rate_decision(site.name))
        used.update(_shape_decision(spec, site.name, k) for k in _shape_keys(spec, site.kind))
    missing = sorted(n for n in used if n not in space)
    if missing:
        raise ValueError(f"variant {variant!r} needs decision(s) {missing} that this space lacks")
    return tuple(n for n in space.names if n in used)


def canonical_tokens(space: SearchSpace, tokens: Sequence[int]) -> tuple[int, ...]:
    """``tokens`` with every decision the chosen variant ignores set to 0."""
    tokens = space.check_tokens(tokens)
    variant = space["variant"].choices[tokens[space.position("variant")]]
    used = set(relevant_decisions(space, variant))
    return tuple(t if n in used else 0 for n, t in zip(space.names, tokens, strict=True))


def tokens_to_pattern(
    space: SearchSpace, tokens: Sequence[int], *, provenance: dict[str, Any] | None = None
) -> Pattern:
    """Decode one proposal of a built-in space into a pattern.

    Args:
        space: a space from :func:`~dropsearch.search.builtin.build_space`.
        tokens: one token per decision.
        provenance: copied into the pattern. Default: empty.

    Returns:
        The pattern: the chosen variant, its parameters, and every site it regularizes (in model order).
    """
    values = space.values(tokens)
    variant = values["variant"]
    relevant_decisions(space, variant)  # raises when the space cannot express this variant
    spec = get_variant(variant)
    params = {n.split("/", 1)[1]: values[n] for n in space.names if n.startswith(f"{variant}/")}
    for key in (*spec.shape_params, spec.rate_param):
        params.pop(key, None)
    params.update(_stated(spec, space))
    sites = []
    for site in spec.sites_of(space.sites):
        rate = values[spec.rate_decision(site.name)]
        shape = {k: values[_shape_decision(spec, site.name, k)] for k in _shape_keys(spec, site.kind)}
        sites.append(SitePattern(site=site.name, rate=rate, shape=shape))
    return Pattern(variant=variant, sites=tuple(sites), params=params, provenance=dict(provenance or {}))


def _set(space: SearchSpace, assigned: dict[str, int], name: str, value: Any, *, where: str) -> None:
    """Record the token of ``value`` for decision ``name``; a decision shared by sites must agree across them."""
    try:
        token = space[name].index(value)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if assigned.get(name, token) != token:
        raise ValueError(f"{where}: {value!r} differs from another site's value for {name!r}")
    assigned[name] = token


def pattern_to_tokens(space: SearchSpace, pattern: Pattern | dict[str, Any]) -> tuple[int, ...]:
    """Encode a pattern as the canonical tokens of ``space`` (decisions the variant ignores get token 0).

    Raises:
        ValueError: naming the site, parameter or value the space cannot express.
    """
    if isinstance(pattern, dict):
        pattern = Pattern.from_dict(pattern)
    variant = pattern.variant
    if "variant" not in space:
        raise ValueError("this space has no 'variant' decision, so it cannot encode a pattern")
    assigned: dict[str, int] = {}
    _set(space, assigned, "variant", variant, where="variant")
    relevant_decisions(space, variant)
    spec = get_variant(variant)
    constants = _stated(spec, space)
    searched = {n.split("/", 1)[1] for n in space.names if n.startswith(f"{variant}/")}
    searched -= {*spec.shape_params, spec.rate_param}
    expected = searched | set(constants)
    if set(pattern.params) != expected:
        raise ValueError(f"params of a {variant!r} pattern must be {sorted(expected)}, got {sorted(pattern.params)}")
    for key, value in pattern.params.items():
        if key in constants:
            if value != constants[key]:
                raise ValueError(f"params.{key} of a {variant!r} pattern must be {constants[key]!r}, got {value!r}")
        else:
            _set(space, assigned, f"{variant}/{key}", value, where=f"params.{key}")
    wanted = {s.name: s for s in spec.sites_of(space.sites)}
    given = {s.site: s for s in pattern.sites}
    if set(given) != set(wanted):
        raise ValueError(f"a {variant!r} pattern of this space has sites {sorted(wanted)}, got {sorted(given)}")
    for name, sp in given.items():
        _set(space, assigned, spec.rate_decision(name), sp.rate, where=f"rate of site {name!r}")
        keys = _shape_keys(spec, wanted[name].kind)
        if set(sp.shape) != set(keys):
            raise ValueError(f"shape of site {name!r} must have keys {sorted(keys)}, got {sorted(sp.shape)}")
        for key in keys:
            decision = _shape_decision(spec, name, key)
            _set(space, assigned, decision, sp.shape[key], where=f"shape.{key} of site {name!r}")
    return tuple(assigned.get(n, 0) for n in space.names)
