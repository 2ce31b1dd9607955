"""The variant registry: everything dropsearch knows about a regularizer variant, in one :class:`VariantSpec`.

A variant declares the site kinds it regularizes, the decisions it adds to a search space (per-site tokens and
global parameters) with their value sets, its constant parameters, the module it installs at a site, its training
step helper, a description and a mask preview. The search-space builder, the token codec, ``dropsearch.apply``, the
child trainer, the catalog (``GET /v1/catalog``) and the mask pictures all read this table.

The built-in variants live one per file in :mod:`dropsearch.regularizers.variants` and are registered on the first
look-up. Other packages add variants through the entry-point group ``dropsearch.variants``; the entry point names a
:class:`VariantSpec` (or a callable returning one) and is only imported when its name is first asked for::

    [project.entry-points."dropsearch.variants"]
    gaussdrop = "my_package.gaussdrop:SPEC"

This module imports only the standard library: the builders, helpers and previews import torch when called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

from dropsearch._entry_points import EntryPointGroup, check_name

if TYPE_CHECKING:
    from dropsearch.regularizers.pattern import Pattern, Site, SitePattern

__all__ = [
    "ENTRY_POINT_GROUP",
    "SITE_KINDS",
    "VariantSpec",
    "builtin_variant_names",
    "get_variant",
    "is_variant",
    "refresh_variants",
    "register_variant",
    "unregister_variant",
    "variant_names",
    "variants",
]

ENTRY_POINT_GROUP = "dropsearch.variants"

#: Kinds of dropout site a model exposes: a conv feature map (B, C, H, W), a hidden vector (B, F),
#: a token sequence (B, T, C), or the pooled penultimate features (B, F) right before the classifier.
SITE_KINDS: tuple[str, ...] = ("conv", "linear", "sequence", "features")

Choices = tuple[Any, ...]
#: ``build_module(site, params, target, kind) -> nn.Module | None``
ModuleBuilder = Callable[["SitePattern", Mapping[str, Any], Any, "str | None"], Any]
#: ``step_helper(pattern, model) -> helper | None``; a helper has ``training_step(inputs, targets, loss_fn, optimizer)``
StepHelper = Callable[["Pattern", Any], Any]
#: ``mask_preview(site, side, generator) -> (2-D {0, 1} keep mask tensor, caption)``
MaskPreview = Callable[[Mapping[str, Any], int, Any], tuple[Any, str]]


def _choices(value: Iterable[Any], *, where: str) -> Choices:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{where}: choices must be a list of values, got {value!r}")
    out = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if not out:
        raise ValueError(f"{where}: needs at least one choice")
    return out


def _kinds(value: Iterable[str], *, where: str) -> tuple[str, ...]:
    kinds = tuple(value)
    bad = [k for k in kinds if k not in SITE_KINDS]
    if bad:
        raise ValueError(f"{where}: unknown site kind(s) {bad}; expected some of {SITE_KINDS}")
    return kinds


@dataclass(frozen=True, eq=False)
class VariantSpec:
    """One regularizer variant: its search decisions, its code and its documentation.

    Args:
        name: the name a pattern's ``variant`` uses (``^[a-z0-9][a-z0-9_.-]*$``).
        description: one paragraph for the catalog.
        site_kinds: the kinds of site it regularizes (a subset of :data:`SITE_KINDS`); empty for a model-wide
            variant, which takes no sites and only changes the training step.
        params: global decisions ``"<name>/<param>"`` and their choices, in sampling order.
        site_tokens: per site kind, the per-site decisions ``"<site>/<token>"`` (shape tokens) and their choices.
        shape_params: global params copied into every site's ``shape`` instead of ``params`` (dropblock's
            ``block_size``).
        rate_param: a global param that is every site's rate (largedrop's ``rate``); ``None``: each site gets its
            own ``"<site>/rate"`` decision over the search's rates.
        constants: params every pattern of the variant carries, not searched.
        conditional_params: ``param -> (site kinds, value)``: the param is a decision only when the model has a
            site of one of these kinds; otherwise every pattern states ``value`` (GradAug's resolutions need images).
        excluded_site_kinds: the variant is not offered to a model with a site of one of these kinds (GradAug: a
            model with sequence sites has LayerNorm, embeddings and a residual stream that are not width-sliced).
        build_module: ``(site, params, target, kind) -> nn.Module | None``, the module installed at a site
            (``None``: nothing there, e.g. at rate 0); required exactly when ``site_kinds`` is not empty.
        step_helper: ``(pattern, model) -> helper | None``: prepares the model and returns an object with
            ``training_step(inputs, targets, loss_fn, optimizer=None)``; ``None`` (or returning ``None``) means a
            plain step.
        mask_preview: ``(site, side, generator) -> (mask, caption)``: one sampled 2-D {0, 1} keep mask of a site
            (a torch tensor) for the mask picture; ``None`` draws a bar chart of the rates instead.
        residual_twin: a site whose shape says ``residual: true`` also gets the module on its block's
            ``shortcut_drop`` placeholder.
        fine_tune: the variant fine-tunes a trained network: the trainer first trains without it for
            ``params["pretrain_epochs"]`` epochs (counted inside the child's epochs, reported like the others) and
            starts a fresh optimizer once it is installed.
    """

    name: str
    description: str
    site_kinds: tuple[str, ...] = ()
    params: Mapping[str, Choices] = field(default_factory=dict)
    site_tokens: Mapping[str, Mapping[str, Choices]] = field(default_factory=dict)
    shape_params: tuple[str, ...] = ()
    rate_param: str | None = None
    constants: Mapping[str, Any] = field(default_factory=dict)
    conditional_params: Mapping[str, tuple[tuple[str, ...], Any]] = field(default_factory=dict)
    excluded_site_kinds: tuple[str, ...] = ()
    build_module: ModuleBuilder | None = None
    step_helper: StepHelper | None = None
    mask_preview: MaskPreview | None = None
    residual_twin: bool = False
    fine_tune: bool = False

    def __post_init__(self) -> None:
        where = f"variant {self.name!r}"
        check_name(self.name, what="variant")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"{where}: description must be a non-empty string")
        set_ = object.__setattr__
        set_(self, "site_kinds", _kinds(self.site_kinds, where=f"{where} site_kinds"))
        set_(self, "excluded_site_kinds", _kinds(self.excluded_site_kinds, where=f"{where} excluded_site_kinds"))
        set_(self, "params", {k: _choices(c, where=f"{where} param {k!r}") for k, c in self.params.items()})
        tokens = {}
        for kind, table in self.site_tokens.items():
            if kind not in self.site_kinds:
                raise ValueError(f"{where}: site_tokens for kind {kind!r}, which is not in site_kinds")
            tokens[kind] = {k: _choices(c, where=f"{where} token {k!r}") for k, c in table.items()}
        set_(self, "site_tokens", tokens)
        set_(self, "shape_params", tuple(self.shape_params))
        set_(self, "constants", dict(self.constants))
        conditional = {k: (_kinds(kinds, where=f"{where} conditional {k!r}"), v)
                       for k, (kinds, v) in self.conditional_params.items()}  # fmt: skip
        set_(self, "conditional_params", conditional)
        special = [*self.shape_params, *([self.rate_param] if self.rate_param else []), *conditional]
        missing = [k for k in special if k not in self.params]
        if missing:
            raise ValueError(f"{where}: {missing} must also be listed in params")
        clash = sorted(set(self.constants) & set(self.params))
        if clash:
            raise ValueError(f"{where}: {clash} are both constants and searched params")
        if any("/" in k or "*" in k for k in [*self.params, *(t for m in tokens.values() for t in m)]):
            raise ValueError(f"{where}: param and token names must not contain '/' or '*'")
        if bool(self.site_kinds) != (self.build_module is not None):
            raise ValueError(f"{where}: build_module is required exactly when the variant has site_kinds")
        if not self.site_kinds and (self.rate_param or self.shape_params):
            raise ValueError(f"{where}: a model-wide variant (no site_kinds) has no rate_param or shape_params")
        for name in ("build_module", "step_helper", "mask_preview"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(f"{where}: {name} must be callable or None, got {value!r}")

    @property
    def model_wide(self) -> bool:
        """True when the variant takes no sites (it changes the training step of the whole model)."""
        return not self.site_kinds

    def sites_of(self, sites: Iterable[Site]) -> tuple[Site, ...]:
        """The sites this variant regularizes, in model order."""
        return tuple(s for s in sites if s.kind in self.site_kinds)

    def offered_to(self, sites: Iterable[Site]) -> bool:
        """Whether a model with these sites can use the variant (a site variant needs at least one of its kinds)."""
        sites = tuple(sites)
        if any(s.kind in self.excluded_site_kinds for s in sites):
            return False
        return self.model_wide or bool(self.sites_of(sites))

    def rate_decision(self, site: str) -> str:
        """The decision holding the rate of ``site``."""
        return f"{self.name}/{self.rate_param}" if self.rate_param else f"{site}/rate"

    def param_decisions(self, kinds: Iterable[str]) -> dict[str, Choices]:
        """The global decisions of a model whose sites have ``kinds`` (conditional params need their kind)."""
        kinds = set(kinds)
        out = {}
        for param, choices in self.params.items():
            needed = self.conditional_params.get(param)
            if needed is None or kinds & set(needed[0]):
                out[param] = choices
        return out


_BUILTINS = "dropsearch.regularizers.variants"
_REGISTERED: dict[str, VariantSpec] = {}
_BUILTIN_NAMES: list[str] = []
_PLUGINS = EntryPointGroup(ENTRY_POINT_GROUP)
_LOADING: list[bool] = []


def _ensure_builtins() -> None:
    if not _BUILTIN_NAMES and not _LOADING:
        _LOADING.append(True)
        try:
            for spec in import_module(_BUILTINS).BUILTIN_VARIANTS:
                register_variant(spec)
                _BUILTIN_NAMES.append(spec.name)
        finally:
            _LOADING.clear()


def register_variant(spec: VariantSpec, *, replace: bool = False) -> VariantSpec:
    """Add ``spec`` to the registry (a built-in name can never be replaced).

    Raises:
        ValueError: when ``spec`` is not a :class:`VariantSpec`, or its name is taken and ``replace`` is false.
    """
    if not isinstance(spec, VariantSpec):
        raise ValueError(f"register_variant needs a VariantSpec, got {spec!r}")
    _ensure_builtins()
    if spec.name in _BUILTIN_NAMES or (spec.name in _REGISTERED and not replace):
        raise ValueError(f"variant {spec.name!r} is already registered")
    _REGISTERED[spec.name] = spec
    return spec


def unregister_variant(name: str) -> None:
    """Remove a variant registered with :func:`register_variant` or loaded from a plugin (not a built-in)."""
    _ensure_builtins()
    if name in _BUILTIN_NAMES:
        raise ValueError(f"variant {name!r} is built in and cannot be removed")
    _REGISTERED.pop(name, None)


def refresh_variants() -> None:
    """Read the installed ``dropsearch.variants`` entry points again on the next look-up."""
    _PLUGINS.refresh()


def _plugin_points() -> dict[str, Any]:
    return _PLUGINS.points(taken=_BUILTIN_NAMES)


def builtin_variant_names() -> tuple[str, ...]:
    """The names of the built-in variants, in their registry order."""
    _ensure_builtins()
    return tuple(_BUILTIN_NAMES)


def variant_names() -> tuple[str, ...]:
    """Built-in names in their order, then registered and installed plugin names (plugins are not imported)."""
    _ensure_builtins()
    extra = sorted((set(_REGISTERED) | set(_plugin_points())) - set(_BUILTIN_NAMES))
    return (*_BUILTIN_NAMES, *extra)


def is_variant(name: object) -> bool:
    """Whether ``name`` is a registered, built-in or installed plugin variant (without loading a plugin)."""
    _ensure_builtins()
    return isinstance(name, str) and (name in _REGISTERED or name in _plugin_points())


def get_variant(name: object) -> VariantSpec:
    """The spec of variant ``name``, loading its plugin on first use.

    Raises:
        ValueError: naming an unknown variant and listing the known ones, or a plugin that names no VariantSpec.
    """
    _ensure_builtins()
    if isinstance(name, str) and name in _REGISTERED:
        return _REGISTERED[name]
    points = _plugin_points()
    if not isinstance(name, str) or name not in points:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(variant_names())}")
    loaded = points[name].load()
    spec = loaded() if callable(loaded) and not isinstance(loaded, VariantSpec) else loaded
    if not isinstance(spec, VariantSpec) or spec.name != name:
        raise ValueError(f"{ENTRY_POINT_GROUP} entry point {name!r} must name a VariantSpec called {name!r}")
    return register_variant(spec, replace=True)


def variants() -> tuple[VariantSpec, ...]:
    """Every variant's spec, built-ins first (installed plugins are loaded)."""
    return tuple(get_variant(n) for n in variant_names())
