"""Pieces shared by the built-in models: dropout-site placeholders and the classifier head.

A dropout site is an ``nn.Identity()`` placeholder module; :func:`dropsearch.apply` swaps it for a dropout module.
:func:`add_site` creates the placeholder and records its kind on the module that owns it, so the list of sites
survives the swap. :class:`SiteModel` lists them in module order.
"""

from __future__ import annotations

import torch
from torch import nn

from dropsearch.regularizers.pattern import SITE_KINDS, Site

__all__ = ["SITES_ATTR", "add_site", "add_placeholder", "collect_sites", "SiteModel", "ClassifierHead", "check_shape"]

#: Name of the per-module dict ``{attribute: (kind, channels)}`` that records the sites a module owns.
SITES_ATTR = "_dropsearch_sites"


def add_site(module: nn.Module, attr: str, kind: str, channels: int) -> None:
    """Put an ``nn.Identity()`` placeholder at ``module.<attr>`` and record it as a dropout site.

    Args:
        module: the module that owns the site.
        attr: the attribute (and last module-path component) of the placeholder.
        kind: one of ``SITE_KINDS``.
        channels: channels (conv), features (linear/features) or model width (sequence) at the site.
    """
    if kind not in SITE_KINDS:
        raise ValueError(f"site kind must be one of {SITE_KINDS}, got {kind!r}")
    add_placeholder(module, attr)
    module.__dict__.setdefault(SITES_ATTR, {})[attr] = (kind, int(channels))


def add_placeholder(module: nn.Module, attr: str) -> None:
    """Put an ``nn.Identity()`` placeholder at ``module.<attr>`` that is *not* a site of its own.

    Used for ResNet's ``shortcut_drop``: ``apply`` fills it when the AutoDropout ``residual`` token is true.
    """
    setattr(module, attr, nn.Identity())


def collect_sites(model: nn.Module) -> list[Site]:
    """Every site recorded by :func:`add_site` inside ``model``, in module (forward) order."""
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    sites = []
    for prefix, module in model.named_modules():
        for attr, (kind, channels) in module.__dict__.get(SITES_ATTR, {}).items():
            name = f"{prefix}.{attr}" if prefix else attr
            sites.append(Site(name=name, kind=kind, channels=channels))
    return sorted(sites, key=lambda s: order.get(s.name, len(order)))


class SiteModel(nn.Module):
    """Base of the built-in models: adds :meth:`dropout_sites`."""

    def dropout_sites(self) -> list[Site]:
        """The dropout sites (module path, kind, channels), in module order."""
        cached = self.__dict__.get("_site_cache")
        if cached is None:
            cached = collect_sites(self)
            self.__dict__["_site_cache"] = cached
        return list(cached)


class ClassifierHead(nn.Module):
    """The "features" site followed by the linear classifier.

    Args:
        in_features: width of the pooled penultimate features.
        num_classes: number of outputs.

    Shape:
        - Input: (B, F)
        - Output: (B, num_classes)
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        add_site(self, "drop", "features", in_features)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        return self.fc(self.drop(x))  # (B, F) -> (B, num_classes)


def check_shape(in_shape: object, ranks: tuple[int, ...], *, model: str) -> tuple[int, ...]:
    """``in_shape`` as a tuple of positive ints of one of the given lengths, else ValueError naming it."""
    try:
        shape = tuple(int(d) for d in in_shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{model}: in_shape must be a sequence of ints, got {in_shape!r}") from None
    if len(shape) not in ranks or min(shape, default=0) < 1:
        expected = " or ".join(f"{r}" for r in ranks)
        raise ValueError(f"{model}: in_shape must have {expected} positive dims, got {in_shape!r}")
    return shape
