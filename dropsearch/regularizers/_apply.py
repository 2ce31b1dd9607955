"""``dropsearch.apply(model, pattern)``: install a downloaded pattern into a model (docs/REGULARIZERS.md).

Sites are module paths. A site whose module is a placeholder (``nn.Identity``) or an existing dropout module is
replaced by the variant's dropout module; any other module keeps its place and the dropout is applied to its
output through a forward hook (the dropout module is registered as the child ``dropsearch_drop`` so that
``model.train()`` / ``model.eval()`` reach it). For sites with ``residual: true`` of a variant that declares
``residual_twin`` (AutoDropout) the same pattern is also installed on a sibling ``shortcut_drop`` placeholder when
the site's parent block has one. What each variant installs comes from the variant registry.

Example::

    >>> import torch, torch.nn as nn
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Identity(), nn.Linear(16, 3))
    >>> pattern = {"variant": "bernoulli", "sites": [{"site": "2", "rate": 0.3}]}
    >>> applied = apply(model, pattern)
    >>> loss = applied.training_step(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]), nn.CrossEntropyLoss())
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dropsearch.regularizers.pattern import Pattern, Site, SitePattern, get_variant
from dropsearch.regularizers.site_modules import build_site_module, step_helper_for

__all__ = ["AppliedPattern", "apply", "clear_site", "install_module"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class AppliedPattern:
    """A model with a pattern installed, and the training step the pattern's variant needs.

    Attributes:
        model: the modified model (the same object that was passed to :func:`apply`).
        pattern: the installed pattern.
        modules: the dropout module installed at each site path.
        helper: the variant's step helper (GSNR, GradAug, Y-Drop refresh), or ``None`` for a plain step.
    """

    model: nn.Module
    pattern: Pattern
    modules: dict[str, nn.Module] = field(default_factory=dict)
    helper: Any = None

    def training_step(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        domains: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run forward and backward the way the variant needs and return the (detached) training loss.

        Without ``optimizer`` the gradients are left in ``.grad`` for the caller's ``optimizer.step()`` (call
        ``zero_grad`` before); with one, this zeroes the gradients and takes exactly one optimizer step.

        Args:
            inputs: a batch, e.g. ``(B, C, H, W)`` images or ``(B, T)`` token ids.
            targets: ``(B,)`` class labels (or ``(B, T)`` next-token ids).
            loss_fn: ``loss_fn(outputs, targets) -> scalar``; it owns any reshaping (e.g. ``(B, T, V)`` logits).
            optimizer: optional optimizer to step once.
            domains: source-domain id of each example, int64 ``(B,)``, for datasets with domains (e.g. the
                rotation of rotated digits). Passed to step helpers that declare ``uses_domains = True`` (GSNR
                dropout: its ``"domain"`` estimator and its meta-learned ratio's held-out-domain split); ignored
                by the others. Default: ``None``

        Raises:
            ValueError: when ``domains`` is not an integer tensor of shape ``(B,)``.
        """
        self.model.train()
        if domains is not None and (
            domains.shape != inputs.shape[:1] or domains.is_floating_point() or domains.is_complex()
        ):
            raise ValueError(
                f"domains must be an integer tensor of shape ({inputs.shape[0]},), got {domains.dtype} "
                f"{tuple(domains.shape)}"
            )
        if self.helper is not None:
            if domains is not None and getattr(self.helper, "uses_domains", False):
                return self.helper.training_step(inputs, targets, loss_fn, optimizer=optimizer, domains=domains)
            return self.helper.training_step(inputs, targets, loss_fn, optimizer=optimizer)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(self.model(inputs), targets)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        return loss.detach()


def _is_placeholder(module: nn.Module) -> bool:
    """True for modules a site module may replace outright (placeholders, dropout and stochastic depth)."""
    from dropsearch.regularizers.find_sites import is_stochastic_depth
    from dropsearch.regularizers.site_modules import is_dropout_module

    return isinstance(module, nn.Identity) or is_dropout_module(module) or is_stochastic_depth(module)


def install_module(model: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` at site ``path``: replace a placeholder, or hook it onto another module's output.

    Raises:
        ValueError: naming ``path`` when the model has no such module.
    """
    try:
        target = model.get_submodule(path)
    except AttributeError:
        raise ValueError(f"pattern site {path!r} is not a module of the model") from None
    if _is_placeholder(target):
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, name, module)
        return
    if hasattr(target, "dropsearch_drop"):
        target.dropsearch_drop = module  # re-applying a pattern replaces the hooked module, hook stays
        return
    target.add_module("dropsearch_drop", module)
    target.register_forward_hook(lambda mod, _inputs, output: mod.dropsearch_drop(output))


def clear_site(model: nn.Module, path: str) -> None:
    """Remove the dropout at site ``path``: a dropout module there becomes ``nn.Identity()``, a hooked one too.

    Re-applying a pattern with rate 0 at a site (or without the ``residual`` token) must not leave the previous
    pattern's module in place.
    """
    target = model.get_submodule(path)
    if hasattr(target, "dropsearch_drop"):
        target.dropsearch_drop = nn.Identity()
    elif _is_placeholder(target) and not isinstance(target, nn.Identity):
        install_module(model, path, nn.Identity())


def _residual_sibling(model: nn.Module, path: str) -> str | None:
    """The ``shortcut_drop`` placeholder next to site ``path`` (empty, or filled by an earlier pattern)."""
    parent_path, _, _ = path.rpartition(".")
    sibling = f"{parent_path}.shortcut_drop" if parent_path else "shortcut_drop"
    try:
        module = model.get_submodule(sibling)
    except AttributeError:
        return None
    return sibling if _is_placeholder(module) else None


def apply(
    model: nn.Module, pattern: Pattern | Mapping[str, Any], *, sites: Sequence[Site] | None = None
) -> AppliedPattern:
    """Install ``pattern`` (a :class:`Pattern` or its JSON dict) into ``model``, in place.

    Args:
        model: any ``nn.Module`` whose module paths include the pattern's sites.
        pattern: the pattern, as downloaded from ``GET /v1/searches/{id}/best``.
        sites: the model's sites with their kinds, e.g. from :func:`dropsearch.find_sites`; they tell AutoDropout
            which sites are token sequences. Default: the model's ``dropout_sites()`` when it has one.

    Returns:
        An :class:`AppliedPattern` whose ``training_step`` runs the variant's step.

    Raises:
        ValueError: for an unknown variant, or a rate outside ``[0, 1)``, naming the value; for pattern sites
            that are not modules of the model, naming every missing site with the closest module paths and the
            model's sites the pattern leaves out.
    """
    if not isinstance(pattern, Pattern):
        pattern = Pattern.from_dict(dict(pattern))
    _check_sites(model, pattern, sites)
    applied = AppliedPattern(model=model, pattern=pattern)
    kinds = _site_kinds(model) if sites is None else {s.name: s.kind for s in sites}
    for site in pattern.sites:
        _install_site(applied, site, kinds.get(site.site))
    applied.helper = step_helper_for(pattern, model)
    return applied


def _check_sites(model: nn.Module, pattern: Pattern, sites: Sequence[Site] | None) -> None:
    """ValueError naming every pattern site missing from ``model`` (with suggestions) and the unused model sites."""
    from dropsearch.regularizers.find_sites import candidate_site_paths, closest_paths

    names = [name for name, _ in model.named_modules() if name]
    known = set(names)
    missing = [s.site for s in pattern.sites if s.site not in known]
    if not missing:
        return
    if sites is not None:
        model_sites = [s.name for s in sites]
    else:
        listed = _site_kinds(model)
        model_sites = list(listed) if listed else candidate_site_paths(model)
    named = {s.site for s in pattern.sites}
    extra = [s for s in model_sites if s not in named]
    parts = []
    for path in missing:
        near = closest_paths(path, model_sites + [n for n in names if n not in model_sites])
        parts.append(f"{path!r} (closest: {', '.join(map(repr, near))})" if near else repr(path))
    message = f"{len(missing)} pattern site(s) are not modules of {type(model).__name__}: {'; '.join(parts)}"
    if extra:
        message += f". The model's sites that the pattern does not name: {', '.join(map(repr, extra))}"
    raise ValueError(message)


def _site_kinds(model: nn.Module) -> dict[str, str]:
    """Site path -> kind, from the model's ``dropout_sites()`` when it has one (the built-in models do)."""
    lister = getattr(model, "dropout_sites", None)
    if not callable(lister):
        return {}
    return {s.name: s.kind for s in lister() if hasattr(s, "name") and hasattr(s, "kind")}


def _install_site(applied: AppliedPattern, site: SitePattern, kind: str | None) -> None:
    model, variant = applied.model, applied.pattern.variant
    target = model.get_submodule(site.site)
    module = build_site_module(variant, site, applied.pattern.params, target, kind=kind)
    sibling = _residual_sibling(model, site.site)
    if sibling is not None:
        clear_site(model, sibling)  # a residual twin of an earlier pattern goes
    if module is None:
        clear_site(model, site.site)
        return
    install_module(model, site.site, module)
    applied.modules[site.site] = module
    if get_variant(variant).residual_twin and bool(site.shape.get("residual", False)) and sibling is not None:
        twin = build_site_module(variant, site, applied.pattern.params, target, kind=kind)
        install_module(model, sibling, twin)
        applied.modules[sibling] = twin
