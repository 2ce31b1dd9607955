"""The built-in variant entries: GradAug's model exclusion and explicit resolutions, and the catalog built from them."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import dropsearch
from dropsearch.regularizers.pattern import Site, get_variant
from dropsearch.regularizers.variants.gradaug import DEFAULT_RESOLUTIONS
from dropsearch.search.builtin import build_space
from dropsearch.search.codec import pattern_to_tokens, tokens_to_pattern
from dropsearch.search.variant_catalog import model_variants, variant_entry

CONV_SITES = (Site("c1", "conv", 8), Site("c2", "conv", 8), Site("head", "features", 8))
MLP_SITES = (Site("fc1", "linear", 16), Site("head", "features", 16))
TRANSFORMER_SITES = (Site("blocks.0.drop", "sequence", 16), Site("head", "features", 16))


def _convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 3),
    )  # fmt: skip


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))


def _gradaug_tokens(space, **values) -> list[int]:
    tokens = [0] * len(space)
    tokens[space.position("variant")] = space["variant"].index("gradaug")
    for key, value in values.items():
        tokens[space.position(f"gradaug/{key}")] = space[f"gradaug/{key}"].index(value)
    return tokens


def test_gradaug_is_not_offered_to_models_with_sequence_sites_in_the_space_or_the_catalog():
    assert get_variant("gradaug").offered_to(CONV_SITES) and get_variant("gradaug").offered_to(MLP_SITES)
    assert not get_variant("gradaug").offered_to(TRANSFORMER_SITES)
    space = build_space(TRANSFORMER_SITES, variants=["bernoulli", "gradaug", "gsnr"])
    assert space["variant"].choices == ("bernoulli", "gsnr")
    assert not any(n.startswith("gradaug/") for n in space.names)
    with pytest.raises(ValueError, match="none of the variants"):
        build_space(TRANSFORMER_SITES, variants=["gradaug"])
    assert variant_entry(get_variant("gradaug"))["excluded_site_kinds"] == ["sequence"]
    assert "gradaug" not in model_variants("transformer")
    assert {"gradaug", "autodropout", "spatial"} <= set(model_variants("convnet"))
    assert "gradaug" in model_variants("mlp") and "spatial" not in model_variants("mlp")
    assert model_variants("some-plugin-model") is None


def test_searched_gradaug_patterns_state_their_resolutions():
    conv = build_space(CONV_SITES, variants=["gradaug"])
    pattern = tokens_to_pattern(conv, _gradaug_tokens(conv, resolutions=[1.0, 0.875, 0.75]))
    assert pattern.params == {"min_width": 0.7, "n_subnets": 2, "resolutions": [1.0, 0.875, 0.75]}
    # a model without conv sites cannot take resized inputs: no decision, and the pattern says so
    mlp = build_space(MLP_SITES, variants=["gradaug", "bernoulli"])
    assert "gradaug/resolutions" not in mlp and "gradaug/min_width" in mlp
    flat = tokens_to_pattern(mlp, _gradaug_tokens(mlp, n_subnets=4))
    assert flat.params == {"min_width": 0.7, "n_subnets": 4, "resolutions": None}
    document = json.loads(json.dumps(flat.to_dict()))
    assert document["params"]["resolutions"] is None
    assert tokens_to_pattern(mlp, pattern_to_tokens(mlp, document)) == flat
    with pytest.raises(ValueError, match=r"params.resolutions of a 'gradaug' pattern must be None"):
        pattern_to_tokens(mlp, {**document, "params": {**document["params"], "resolutions": [1.0]}})


def test_apply_of_a_gradaug_pattern_without_resolutions_uses_the_documented_default():
    assert DEFAULT_RESOLUTIONS == (1.0, 0.875, 0.75)  # the paper's CIFAR (32, 28, 24), as scales of any side
    named_none = dropsearch.apply(_convnet(), {"variant": "gradaug", "params": {"min_width": 0.9}}).helper
    assert named_none.resolutions == DEFAULT_RESOLUTIONS and named_none.min_width == 0.9
    explicit = {"variant": "gradaug", "params": {"resolutions": [1.0, 0.5]}}
    assert dropsearch.apply(_convnet(), explicit).helper.resolutions == (1.0, 0.5)
    null = {"variant": "gradaug", "params": {"resolutions": None}}
    assert dropsearch.apply(_convnet(), null).helper.resolutions is None
    assert dropsearch.apply(_mlp(), {"variant": "gradaug"}).helper.resolutions is None  # no Conv2d: no resizing


def test_the_default_resolutions_resize_the_sub_networks_inputs():
    model = _convnet()
    seen = []
    model[0].register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    applied = dropsearch.apply(model, {"variant": "gradaug", "params": {"n_subnets": 3}})
    applied.helper.generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        applied.training_step(torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0]), nn.functional.cross_entropy)
    assert seen[0] == (32, 32)  # the full network
    assert set(seen) <= {(32, 32), (28, 28), (24, 24)} and {(28, 28), (24, 24)} & set(seen)
