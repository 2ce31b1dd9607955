"""Every built-in model x every variant its space offers: one real training step through ``dropsearch.apply``."""

from __future__ import annotations

import random

import pytest
import torch

import dropsearch
from dropsearch.regularizers.pattern import variant_names
from dropsearch.search.builtin import DEFAULT_RATES, build_space
from dropsearch.search.codec import tokens_to_pattern
from dropsearch.search.spec import SpaceSpec
from dropsearch.search.variant_catalog import BUILTIN_MODEL_SITE_KINDS, model_variants
from dropsearch.workers.models import build_model, dropout_sites, model_info
from dropsearch.workers.train import loss_for_task

MODELS = tuple(BUILTIN_MODEL_SITE_KINDS)
SHAPES = {"image": (1, 8, 8), "signal": (1, 40), "sequence": (12,)}  # one example of each input kind


def _tiny(model: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    """A fresh tiny model, a synthetic batch of 4 for its first input kind, its targets and task."""
    kind = model_info(model).input_kinds[0]
    in_shape, classes = SHAPES[kind], 10
    generator = torch.Generator().manual_seed(0)
    net = build_model(model, params=model_info(model).tiny_params, in_shape=in_shape, num_classes=classes)
    if kind == "sequence":
        inputs = torch.randint(classes, (4, *in_shape), generator=generator)
        return net, inputs, torch.roll(inputs, -1, dims=1), "language_model"
    inputs = torch.randn(4, *in_shape, generator=generator)
    return net, inputs, torch.randint(classes, (4,), generator=generator), "classification"


def _pattern(space, variant: str, seed: int) -> dict:
    rng = random.Random(seed)
    tokens = [rng.randrange(len(d.choices)) for d in space.decisions]
    tokens[space.position("variant")] = space["variant"].choices.index(variant)
    for d in space.decisions:  # a rate that actually drops something at every site
        if d.name.endswith("/rate") and not d.name.startswith(f"{variant}/"):
            tokens[space.position(d.name)] = len(d.choices) - 1
    return tokens_to_pattern(space, tokens).to_dict()


@pytest.mark.parametrize("which", ["default", "all"])
@pytest.mark.parametrize("model", MODELS)
def test_default_space_of_every_builtin_model_trains_every_variant_it_offers(model, which):
    torch.manual_seed(0)
    sites = dropout_sites(_tiny(model)[0])
    requested = SpaceSpec().variants if which == "default" else list(variant_names())
    space = build_space(sites, variants=requested, rates=DEFAULT_RATES)
    offered = space["variant"].choices
    assert set(offered) <= set(requested) and offered
    if which == "all":  # the catalog lists what any form of the model is offered (the LM has no features site)
        assert set(offered) <= set(model_variants(model))
    for variant in offered:
        net, inputs, targets, task = _tiny(model)
        before = [p.detach().clone() for p in net.parameters()]
        applied = dropsearch.apply(net, _pattern(space, variant, seed=len(variant)))
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
        loss = applied.training_step(inputs, targets, loss_for_task(task), optimizer=optimizer)
        assert torch.isfinite(loss), (model, variant)
        changed = any(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))
        assert changed, (model, variant)


def test_builtin_model_site_kinds_in_the_catalog_match_the_real_models():
    for model in MODELS:
        kinds = set()
        for kind in model_info(model).input_kinds:  # e.g. the transformer: language model and image classifier
            net = build_model(model, params=model_info(model).tiny_params, in_shape=SHAPES[kind], num_classes=10)
            kinds |= {s.kind for s in dropout_sites(net)}
        assert kinds == set(BUILTIN_MODEL_SITE_KINDS[model]), model


def test_gradaug_is_not_offered_to_the_transformer_because_it_cannot_run_there():
    assert "gradaug" not in model_variants("transformer")
    assert "gradaug" in model_variants("convnet") and "gradaug" in model_variants("mlp")
    net, inputs, targets, task = _tiny("transformer")
    with pytest.raises(ValueError, match="none of the variants"):
        build_space(dropout_sites(net), variants=["gradaug"])
    # what the exclusion prevents: a width-sliced sub-network breaks on the unsliced attention / residual stream
    applied = dropsearch.apply(net, {"variant": "gradaug", "params": {"min_width": 0.5, "n_subnets": 1}})
    with pytest.raises((RuntimeError, ValueError)):
        applied.training_step(inputs, targets, loss_for_task(task))
