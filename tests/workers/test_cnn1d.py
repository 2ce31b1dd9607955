"""The 1-D CNN child (cnn1d) and the MLP child on 1-D signals: shapes, sites, a naive reference, the offered space."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dropsearch
from dropsearch.regularizers.bernoulli import BernoulliDropout
from dropsearch.regularizers.sequence_pattern import SequencePatternDropout
from dropsearch.search.builtin import build_space
from dropsearch.search.catalog import MODELS
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.models import INPUT_KINDS, build_model, dropout_sites, model_info
from dropsearch.workers.train import train_child


def test_registered_for_signals():
    assert "cnn1d" in MODELS and "signal" in INPUT_KINDS
    assert model_info("cnn1d").input_kinds == ("signal",)
    assert "signal" in model_info("mlp").input_kinds
    assert model_info("cnn1d").params == {"widths": (32, 32, 32), "kernel_size": 5}


@pytest.mark.parametrize(("in_shape", "x_shape"), [((1, 40), (3, 1, 40)), ((40,), (3, 40)), ((2, 17), (3, 2, 17))])
def test_shapes_and_sites_see_positions_as_tokens(in_shape, x_shape):
    torch.manual_seed(0)
    model = build_model("cnn1d", params={"widths": [4, 6, 8]}, in_shape=in_shape, num_classes=7).eval()
    sites = dropout_sites(model)
    assert [(s.name, s.kind, s.channels) for s in sites[:3]] == [
        ("drop1", "sequence", 4),
        ("drop2", "sequence", 6),
        ("drop3", "sequence", 8),
    ]
    length = in_shape[-1]
    lengths = [length, (length - 1) // 2 + 1]
    lengths.append((lengths[1] - 1) // 2 + 1)
    assert sites[3].name == "head.drop" and sites[3].kind == "features" and sites[3].channels == 8 * lengths[2]
    seen = {}
    handles = [
        model.get_submodule(s.name).register_forward_hook(lambda m, i, o, n=s.name: seen.__setitem__(n, i[0].shape))
        for s in sites
    ]
    assert model(torch.randn(*x_shape)).shape == (3, 7)
    for h in handles:
        h.remove()
    assert [seen[f"drop{i}"] for i in (1, 2, 3)] == [(3, n, c) for n, c in zip(lengths, (4, 6, 8), strict=True)]
    assert seen["head.drop"] == (3, 8 * lengths[2])


def test_matches_a_plain_conv1d_stack():
    """Independent reference: the same weights in an nn.Sequential without sites compute the same logits."""
    torch.manual_seed(1)
    model = build_model("cnn1d", params={"widths": [5, 7], "kernel_size": 3}, in_shape=(2, 12), num_classes=4).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    ref = nn.Sequential(
        nn.Conv1d(2, 5, 3, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv1d(5, 7, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(7 * 6, 4),
    )
    ref[0].load_state_dict(convs[0].state_dict())
    ref[2].load_state_dict(convs[1].state_dict())
    ref[5].load_state_dict(model.head.fc.state_dict())
    x = torch.randn(5, 2, 12)
    torch.testing.assert_close(model(x), ref(x))


def test_sequence_sites_take_the_sequence_pattern_and_bernoulli():
    torch.manual_seed(0)
    model = build_model("cnn1d", params={"widths": [8, 8]}, in_shape=(1, 40), num_classes=10)
    pattern = {
        "variant": "autodropout",
        "sites": [
            {"site": "drop1", "rate": 0.3, "shape": {"size": 2, "stride": 2, "share": True}},
            {"site": "drop2", "rate": 0.2, "shape": {"size": 1, "stride": 1, "share": False}},
        ],
    }
    applied = dropsearch.apply(model, pattern)
    assert isinstance(model.drop1, SequencePatternDropout) and isinstance(model.drop2, SequencePatternDropout)
    x = torch.randn(4, 1, 40)
    model.train()
    # share=True drops whole positions: at drop1, every channel of a dropped position is zero together
    seen = {}
    h = model.drop1.register_forward_hook(lambda m, i, o: seen.update(x=i[0], out=o))
    model(x)
    h.remove()
    live = seen["x"] != 0  # (B, L, C); the ReLU zeroes some entries already
    dropped, kept = live & (seen["out"] == 0), live & (seen["out"] != 0)
    assert dropped.any() and kept.any()
    assert not (dropped.any(-1) & kept.any(-1)).any()  # no position is partly dropped
    model.eval()
    bare = build_model("cnn1d", params={"widths": [8, 8]}, in_shape=(1, 40), num_classes=10)
    bare.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x), bare.eval()(x))  # identity in eval mode
    loss = applied.training_step(x, torch.arange(4), nn.functional.cross_entropy)
    assert torch.isfinite(loss)
    dropsearch.apply(model, {"variant": "bernoulli", "sites": [{"site": "drop1", "rate": 0.5}]})
    assert isinstance(model.drop1, BernoulliDropout)


def test_space_offers_only_variants_that_fit_1d_sites():
    model = build_model("cnn1d", params={}, in_shape=(1, 40), num_classes=10)
    sites = dropout_sites(model)
    space = build_space(sites)
    variants = space.decisions[space.position("variant")].choices
    assert "spatial" not in variants and "dropblock" not in variants  # 2-D maps only
    assert {"bernoulli", "autodropout", "gsnr"} <= set(variants)
    for v in ("spatial", "dropblock"):
        with pytest.raises(ValueError, match="fits"):
            build_space(sites, variants=[v])
    # AutoDropout on these sites uses the sequence tokens, not the ConvNet ones
    names = set(space.names)
    assert {"drop1/size", "drop1/stride", "drop1/share"} <= names and "drop1/rotate" not in names


def test_mlp_40_512_512_10_has_a_site_after_both_hidden_layers():
    model = build_model("mlp", params={"hidden": [512, 512]}, in_shape=(1, 40), num_classes=10)
    assert [(s.name, s.kind, s.channels) for s in dropout_sites(model)] == [
        ("layers.drop1", "linear", 512),
        ("head.drop", "features", 512),
    ]
    assert sum(p.numel() for p in model.parameters()) == (40 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10)
    order = [name for name, _ in model.named_modules()]
    assert order.index("layers.relu1") < order.index("layers.drop1") < order.index("layers.fc2")
    assert order.index("layers.relu2") < order.index("head.drop") < order.index("head.fc")


@pytest.mark.parametrize("variant", ["none", "bernoulli", "autodropout", "gsnr", "ydrop", "largedrop"])
def test_every_fitting_variant_trains_cnn1d_on_mnist1d(variant):
    torch.set_num_threads(1)
    bundle = load_dataset("mnist1d", params={"n_train": 1000}, seed=0)
    seq = {"size": 2, "stride": 2, "share": True}
    sites = {
        "none": [],
        "bernoulli": [{"site": s, "rate": 0.1} for s in ("drop1", "drop2", "head.drop")],
        "autodropout": [{"site": "drop1", "rate": 0.1, "shape": seq}, {"site": "drop2", "rate": 0.1, "shape": seq}],
        "gsnr": [],
        "ydrop": [{"site": "head.drop", "rate": 0.1}],
        "largedrop": [{"site": "head.drop", "rate": 0.5}],
    }[variant]
    pattern = {"variant": variant, "sites": sites} if sites else {"variant": variant}
    if variant == "gsnr":
        pattern["params"] = {"p": 0.05}
    config = ChildConfig(
        model="cnn1d",
        model_params={"widths": [16, 16]},
        dataset="mnist1d",
        pattern=pattern,
        epochs=3,
        batch_size=50,
        lr=3e-3,
        device="cpu",
        pretrain_epochs=2 if variant == "largedrop" else 0,
    )
    history = train_child(config, report=lambda m: None, bundle=bundle)
    assert history[-1]["val_accuracy"] > 0.25, history[-1]  # chance is 0.10
