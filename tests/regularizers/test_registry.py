"""The variant registry: built-ins, validation, in-process registration and entry-point plugins."""

from __future__ import annotations

import random
import sys
import warnings

import pytest
import torch
from torch import nn

import dropsearch
from dropsearch.regularizers import registry
from dropsearch.regularizers.pattern import VARIANTS, Pattern, Site
from dropsearch.regularizers.registry import (
    VariantSpec,
    get_variant,
    is_variant,
    refresh_variants,
    register_variant,
    unregister_variant,
    variant_names,
)
from dropsearch.regularizers.site_modules import is_dropout_module
from dropsearch.search.builtin import build_space
from dropsearch.search.codec import canonical_tokens, pattern_to_tokens, tokens_to_pattern
from tests.regularizers.variant_plugin import NAME, write_plugin

BUILTINS = ("none", "bernoulli", "spatial", "dropblock", "autodropout", "gsnr", "ydrop", "gradaug", "largedrop")


def test_builtins_are_registered_in_order_with_their_tables():
    assert VARIANTS == BUILTINS and variant_names()[: len(BUILTINS)] == BUILTINS
    # the tables the search space used to hard-code, one variant at a time
    kinds = {name: get_variant(name).site_kinds for name in BUILTINS}
    assert kinds == {
        "none": (),
        "bernoulli": ("conv", "linear", "sequence", "features"),
        "spatial": ("conv",),
        "dropblock": ("conv",),
        "autodropout": ("conv", "sequence"),
        "gsnr": (),
        "ydrop": ("conv", "linear", "features"),
        "gradaug": (),
        "largedrop": ("features",),
    }
    assert dict(get_variant("gsnr").params) == {
        "p": (0.05, 0.1, 0.2, 0.3),
        "meta": (False, True),
        "estimator": ("microbatch", "per_example"),
    }
    assert get_variant("dropblock").shape_params == ("block_size",)
    assert get_variant("largedrop").rate_param == "rate" and get_variant("largedrop").constants == {"freeze_bn": True}
    assert get_variant("largedrop").fine_tune and get_variant("autodropout").residual_twin
    assert get_variant("gradaug").excluded_site_kinds == ("sequence",)
    with_preview = {n for n in BUILTINS if get_variant(n).mask_preview is not None}
    assert with_preview == {"bernoulli", "spatial", "dropblock", "autodropout"}
    for name in BUILTINS:
        spec = get_variant(name)
        assert len(spec.description) > 40, name
        assert spec.model_wide == (spec.build_module is None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "variant name must match"),
        ({"description": " "}, "description must be a non-empty string"),
        ({"site_kinds": ("pixels",)}, r"unknown site kind\(s\) \['pixels'\]"),
        ({"params": {"p": ()}}, "param 'p': needs at least one choice"),
        ({"params": {"p": "abc"}}, "choices must be a list"),
        ({"shape_params": ("k",)}, r"\['k'\] must also be listed in params"),
        ({"params": {"a": (1,)}, "constants": {"a": 2}}, r"\['a'\] are both constants and searched params"),
        ({"site_tokens": {"sequence": {"size": (1,)}}}, "kind 'sequence', which is not in site_kinds"),
        ({"build_module": None}, "build_module is required exactly when"),
        ({"params": {"a/b": (1,)}}, "must not contain"),
    ],
)
def test_spec_validation_names_the_problem(kwargs, message):
    base = {
        "name": "ok-variant",
        "description": "a variant",
        "site_kinds": ("conv",),
        "build_module": lambda site, params, target, kind: nn.Identity(),
    }
    with pytest.raises(ValueError, match=message):
        VariantSpec(**{**base, **kwargs})


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor if self.training else x


def _scale_module(site, params, target, kind):
    return Scale(1.0 - site.rate * float(params["strength"])) if site.rate else None


SCALE = VariantSpec(
    name="scale-test",
    description="Test variant: scales linear activations down by rate x strength in training.",
    site_kinds=("linear",),
    params={"strength": (0.5, 1.0), "width": (1, 2)},
    site_tokens={"linear": {"mode": ("a", "b")}},
    shape_params=("width",),
    constants={"tag": "x"},
    build_module=_scale_module,
)


@pytest.fixture
def scale_variant():
    register_variant(SCALE)
    yield SCALE
    unregister_variant(SCALE.name)


def test_a_registered_variant_is_searched_decoded_applied_and_trained(scale_variant):
    sites = (Site("1", "linear", 16), Site("3", "linear", 16), Site("head", "features", 16))
    space = build_space(sites, variants=["scale-test", "spatial"], rates=[0.0, 0.5])
    assert space["variant"].choices == ("scale-test",)  # spatial needs a conv site
    assert space.names == ("variant", "scale-test/strength", "scale-test/width", "1/rate", "1/mode", "3/rate", "3/mode")
    rng = random.Random(0)
    for _ in range(20):  # round trip over random tokens
        tokens = tuple(rng.randrange(n) for n in space.sizes)
        pattern = tokens_to_pattern(space, tokens)
        assert pattern_to_tokens(space, pattern) == canonical_tokens(space, tokens)
    tokens = [0] * len(space)
    tokens[space.position("scale-test/strength")] = 1
    tokens[space.position("scale-test/width")] = 1
    tokens[space.position("1/rate")] = 1
    tokens[space.position("3/mode")] = 1
    pattern = tokens_to_pattern(space, tokens)
    assert pattern.to_dict()["sites"] == [
        {"site": "1", "rate": 0.5, "shape": {"mode": "a", "width": 2}},
        {"site": "3", "rate": 0.0, "shape": {"mode": "b", "width": 2}},
    ]
    assert pattern.params == {"strength": 1.0, "tag": "x"}
    model = nn.Sequential(nn.Linear(4, 16), nn.Identity(), nn.ReLU(), nn.Identity(), nn.Linear(16, 2))
    applied = dropsearch.apply(model, pattern.to_dict())
    assert isinstance(model[1], Scale) and model[1].factor == 0.5 and isinstance(model[3], nn.Identity)
    assert is_dropout_module(model[1])  # a later pattern replaces it outright
    x, y = torch.ones(3, 4), torch.tensor([0, 1, 0])
    loss = applied.training_step(x, y, nn.functional.cross_entropy)
    assert torch.isfinite(loss) and model[0].weight.grad is not None
    dropsearch.apply(model, {"variant": "bernoulli", "sites": [{"site": "1", "rate": 0.2}]})
    assert type(model[1]).__name__ == "BernoulliDropout"


def test_unregistered_variant_is_unknown_again():
    register_variant(SCALE)
    assert Pattern(variant="scale-test").variant == "scale-test"
    unregister_variant("scale-test")
    with pytest.raises(ValueError, match="unknown variant 'scale-test'; expected one of none, bernoulli"):
        Pattern(variant="scale-test")


def test_builtins_cannot_be_replaced_or_removed(scale_variant):
    with pytest.raises(ValueError, match="'bernoulli' is already registered"):
        register_variant(VariantSpec(name="bernoulli", description="imposter"), replace=True)
    with pytest.raises(ValueError, match="'scale-test' is already registered"):
        register_variant(SCALE)
    with pytest.raises(ValueError, match="built in"):
        unregister_variant("none")
    with pytest.raises(ValueError, match="needs a VariantSpec"):
        register_variant({"name": "x"})  # type: ignore[arg-type]


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A directory with installed-looking plugins on sys.path; the registry forgets them afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    refresh_variants()
    yield tmp_path
    monkeypatch.undo()
    for name in set(variant_names()) - set(BUILTINS):
        unregister_variant(name)
    refresh_variants()


def test_entry_point_variant_is_listed_without_import_then_loaded(plugin_path):
    write_plugin(plugin_path, module="dropsearch_linedrop_unit")
    refresh_variants()
    assert NAME in variant_names() and is_variant(NAME)
    assert "dropsearch_linedrop_unit" not in sys.modules  # listing imports nothing
    spec = get_variant(NAME)
    assert "dropsearch_linedrop_unit" in sys.modules and spec.site_kinds == ("conv",)
    sites = (Site("1", "conv", 4), Site("3", "linear", 8))
    space = build_space(sites, variants=[NAME], rates=[0.5])
    assert space.names == ("variant", f"{NAME}/shared", "1/rate", "1/axis")
    pattern = tokens_to_pattern(space, (0, 1, 0, 1))
    assert pattern.to_dict()["sites"] == [{"site": "1", "rate": 0.5, "shape": {"axis": "cols"}}]
    assert pattern.params == {"shared": False}
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Identity(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    dropsearch.apply(model, pattern)
    assert type(model[1]).__name__ == "LineDropout" and model[1].axis == "cols"
    torch.manual_seed(0)
    x = torch.ones(2, 1, 6, 6)
    full, out = model[0](x), model[:2](x)
    dropped = out == 0  # (2, 4, 6, 6); per channel (shared false), whole columns go
    assert (dropped.all(dim=2) | (~dropped).all(dim=2)).all()
    assert 0 < dropped.all(dim=2).float().mean() < 1
    assert torch.allclose(out[~dropped], 2.0 * full[~dropped])  # kept values scaled by 1 / (1 - 0.5)
    mask, caption = spec.mask_preview({"rate": 0.5, "shape": {"axis": "rows"}}, 8, torch.Generator().manual_seed(1))
    assert mask.shape == (8, 8) and caption == "rows"
    assert all(float(mask[r].min()) == float(mask[r].max()) for r in range(8))  # whole rows


def test_entry_points_cannot_shadow_a_builtin_or_name_something_else(plugin_path):
    write_plugin(plugin_path / "a", module="dropsearch_shadow_unit", name="bernoulli")
    write_plugin(plugin_path / "b", module="dropsearch_wrongname_unit", name="other-test")
    sys.path[:0] = [str(plugin_path / "a"), str(plugin_path / "b")]
    try:
        refresh_variants()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = variant_names()
        assert any("a built-in has that name" in str(w.message) for w in caught)
        assert names.count("bernoulli") == 1 and get_variant("bernoulli").build_module is not None
        assert "dropsearch_shadow_unit" not in sys.modules
        with pytest.raises(ValueError, match="entry point 'other-test' must name a VariantSpec called 'other-test'"):
            get_variant("other-test")  # it names the spec called linedrop-test
    finally:
        sys.path.remove(str(plugin_path / "a"))
        sys.path.remove(str(plugin_path / "b"))


def test_registry_module_loads_no_torch():
    import subprocess

    code = (
        "import sys, dropsearch.regularizers.registry as r; r.variants(); "
        "print('torch' in sys.modules, len(r.variant_names()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", str(len(BUILTINS))]
    assert registry.ENTRY_POINT_GROUP == "dropsearch.variants"
