"""Model registry and built-in models: shapes, dropout sites, params, plugins."""

from __future__ import annotations

import copy
import os
import sys
import warnings
from importlib import metadata

import pytest
import torch
from torch import nn

from dropsearch.regularizers.pattern import Site
from dropsearch.workers import _plugins
from dropsearch.workers.models import (
    build_model,
    dropout_sites,
    model_info,
    model_names,
    register_model,
    registry,
)

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))
IMAGE_SHAPES = [(1, 8, 8), (3, 16, 16), (3, 32, 32)]
CLASSIFIERS = ["convnet", "resnet", "mlp", "transformer"]


def tiny(name: str, **extra) -> dict:
    return {**model_info(name).tiny_params, **extra}


def site_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, list[torch.Size]]:
    """Run ``model`` on ``x`` and record the output shape of every site module at each call."""
    seen: dict[str, list[torch.Size]] = {}
    handles = []
    for site in dropout_sites(model):
        mod = model.get_submodule(site.name)
        handles.append(mod.register_forward_hook(lambda m, i, o, n=site.name: seen.setdefault(n, []).append(o.shape)))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_builtin_names_are_registered():
    from dropsearch.search.catalog import DATASETS, MODELS  # the names the job-spec layer accepts
    from dropsearch.workers.datasets import dataset_names

    assert set(MODELS) <= set(model_names()) and set(DATASETS) <= set(dataset_names())
    assert model_info("transformer").input_kinds == ("sequence", "image")
    assert model_info("convnet").params == {"widths": (32, 64), "width_mult": 1.0}
    assert model_info("resnet").params == {"depth": 18, "widen": 1, "width": 16}


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_shapes_and_sites(name, shape):
    torch.manual_seed(0)
    model = build_model(name, params=tiny(name), in_shape=shape, num_classes=7).to(DEVICE).eval()
    x = torch.randn(3, *shape, device=DEVICE)
    assert model(x).shape == (3, 7)

    sites = dropout_sites(model)
    assert all(isinstance(s, Site) for s in sites)
    modules = dict(model.named_modules())
    assert all(type(modules[s.name]) is nn.Identity for s in sites)
    # module (forward) order, exactly one features site, and it is the last one
    order = list(modules)
    assert [order.index(s.name) for s in sites] == sorted(order.index(s.name) for s in sites)
    assert [s.kind for s in sites].count("features") == 1 and sites[-1].kind == "features"

    # every site is on the forward path exactly once, with the declared rank and channels
    seen = site_outputs(model, x)
    assert set(seen) == {s.name for s in sites}
    for s in sites:
        (out,) = seen[s.name]
        rank = {"conv": 4, "linear": 2, "features": 2, "sequence": 3}[s.kind]
        assert len(out) == rank, s
        assert out[1 if rank in (2, 4) else 2] == s.channels, s


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_features_site_feeds_the_classifier_directly(name):
    model = build_model(name, params=tiny(name), in_shape=(1, 8, 8), num_classes=5).to(DEVICE).eval()
    features = [s for s in dropout_sites(model) if s.kind == "features"][0]
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert fc.out_features == 5 and fc.in_features == features.channels
    got = {}
    model.get_submodule(features.name).register_forward_hook(lambda m, i, o: got.setdefault("site", o))
    fc.register_forward_hook(lambda m, i, o: got.setdefault("fc_in", i[0]))
    model(torch.randn(4, 1, 8, 8, device=DEVICE))
    assert torch.equal(got["site"], got["fc_in"])


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_dropout_at_sites_changes_nothing_in_eval(name):
    torch.manual_seed(1)
    model = build_model(name, params=tiny(name), in_shape=(1, 8, 8), num_classes=4).to(DEVICE)
    x = torch.randn(8, 1, 8, 8, device=DEVICE)
    dropped = copy.deepcopy(model)
    targets = [s.name for s in dropout_sites(model)]
    targets += [n for n, _ in model.named_modules() if n.endswith("shortcut_drop")]
    for path in targets:
        parent, _, attr = path.rpartition(".")
        setattr(dropped.get_submodule(parent) if parent else dropped, attr, nn.Dropout(0.5))
    model.eval()
    dropped.eval()
    torch.testing.assert_close(dropped(x), model(x), rtol=0, atol=0)
    dropped.train()
    assert not torch.allclose(dropped(x), model(x))  # the sites really are on the path
    assert dropout_sites(dropped) == dropout_sites(model)  # the list survives the swap


def test_convnet_structure_and_width_mult():
    model = build_model("convnet", params={"widths": [4, 6, 8], "width_mult": 0.5}, in_shape=(1, 8, 8), num_classes=3)
    assert [(s.name, s.kind, s.channels) for s in dropout_sites(model)] == [
        ("features.drop1", "conv", 2),
        ("features.drop2", "conv", 3),
        ("features.drop3", "conv", 4),
        ("head.drop", "features", 4),
    ]
    # no flatten of spatial maps: the classifier only sees the pooled channels
    assert model.head.fc.in_features == 4
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2  # 8 -> 4 -> 2


def test_resnet18_and_wrn_match_published_parameter_counts():
    # CIFAR ResNet-18 (kuangliu/pytorch-cifar): 11,173,962; WRN-28-10 on CIFAR-10: 36,479,194.
    r18 = build_model("resnet", params={"width": 64}, in_shape=(3, 32, 32), num_classes=10)
    assert sum(p.numel() for p in r18.parameters()) == 11_173_962
    wrn = build_model("resnet", params={"depth": 28, "widen": 10}, in_shape=(3, 32, 32), num_classes=10)
    assert sum(p.numel() for p in wrn.parameters()) == 36_479_194
    assert len([s for s in dropout_sites(wrn) if s.kind == "conv"]) == 12


@pytest.mark.parametrize("params", [{"width": 4}, {"depth": 10, "widen": 2, "width": 4}])
def test_resnet_blocks_have_branch_site_and_shortcut_placeholder(params):
    model = build_model("resnet", params=params, in_shape=(3, 16, 16), num_classes=10)
    sites = dropout_sites(model)
    blocks = [n.removesuffix(".drop") for n in (s.name for s in sites) if n.endswith(".drop") and n != "head.drop"]
    assert blocks and all(n.startswith("layer") for n in blocks)
    names = {s.name for s in sites}
    for b in blocks:
        assert type(model.get_submodule(f"{b}.shortcut_drop")) is nn.Identity
        assert f"{b}.shortcut_drop" not in names
    # the shortcut placeholder is on the path: zeroing it changes the output of its block
    block = model.get_submodule(blocks[0]).eval()
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    ref = block(x)
    block.shortcut_drop = nn.Dropout(1.0)
    block.train()
    block.bn1.eval(), block.bn2.eval()
    assert not torch.allclose(block(x), ref)


def test_transformer_language_model_is_causal_and_has_sequence_sites():
    torch.manual_seed(0)
    model = build_model("transformer", params=tiny("transformer", n_layer=2), in_shape=(10,), num_classes=13)
    model = model.to(DEVICE).eval()
    sites = dropout_sites(model)
    assert {s.kind for s in sites} == {"sequence"}  # a language model has no features site
    assert [s.name for s in sites] == [
        "embed_drop",
        "blocks.0.attn.drop",
        "blocks.0.mlp.drop_hidden",
        "blocks.0.mlp.drop",
        "blocks.1.attn.drop",
        "blocks.1.mlp.drop_hidden",
        "blocks.1.mlp.drop",
    ]
    assert sites[2].channels == 4 * sites[1].channels
    tokens = torch.randint(0, 13, (2, 10), device=DEVICE)
    out = model(tokens)
    assert out.shape == (2, 10, 13)
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 13
    out2 = model(changed)
    torch.testing.assert_close(out2[:, :6], out[:, :6])  # the past does not see the future
    assert not torch.allclose(out2[:, 6:], out[:, 6:])
    seen = site_outputs(model, tokens)
    assert all(shape == [torch.Size([2, 10, s.channels])] for s, shape in zip(sites, seen.values(), strict=True))


def test_transformer_token_classifier_and_bad_task():
    model = build_model(
        "transformer", params=tiny("transformer", task="classification", vocab_size=20), in_shape=(6,), num_classes=3
    )
    assert model(torch.randint(0, 20, (4, 6))).shape == (4, 3)
    with pytest.raises(ValueError, match="language_model"):
        build_model("transformer", params={"task": "language_model"}, in_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(ValueError, match="n_head"):
        build_model("transformer", params={"n_embd": 10, "n_head": 4}, in_shape=(8,), num_classes=3)


def test_unknown_model_and_param_names_are_refused():
    with pytest.raises(ValueError, match=r"unknown model 'vgg-huge'.*convnet.*transformer"):
        build_model("vgg-huge", in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="os.system"):
        build_model("os.system", in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="dropout_rate"):
        build_model("convnet", params={"dropout_rate": 0.1}, in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mlp", params={"num_classes": 3}, in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="widths"):
        build_model("convnet", params={"widths": [8, 0]}, in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="depth"):
        build_model("resnet", params={"depth": 20}, in_shape=(3, 32, 32), num_classes=10)
    with pytest.raises(ValueError, match="in_shape"):
        build_model("convnet", in_shape=(8, 8), num_classes=10)


def test_register_model_validates_name_and_builder():
    with pytest.raises(ValueError, match="Bad_Name"):
        register_model("Bad_Name", build_plugin_net)
    with pytest.raises(ValueError, match="already registered"):
        register_model("convnet", build_plugin_net)
    with pytest.raises(ValueError, match="num_classes"):
        register_model("no-classes", lambda *, in_shape: nn.Identity())
    with pytest.raises(ValueError, match="voxels"):
        register_model("bad-kind", build_plugin_net, input_kinds=("voxels",))


# ---- entry-point plugins -------------------------------------------------------------------------------------


def build_plugin_net(*, in_shape, num_classes, hidden: int = 5) -> nn.Module:
    """A plugin model for the entry-point test."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), hidden), nn.Linear(hidden, num_classes)
    )


build_plugin_net.input_kinds = ("image",)


@pytest.fixture
def fake_plugins(monkeypatch):
    """Install entry points of group ``dropsearch.models`` and restore the registry afterwards."""
    saved = dict(registry._REGISTRY._entries)
    points = []

    def entry_points(**kwargs):
        return [ep for ep in points if ep.group == kwargs.get("group")]

    monkeypatch.setattr(_plugins.metadata, "entry_points", entry_points)
    registry._REGISTRY.refresh()
    yield points
    registry._REGISTRY._entries.clear()
    registry._REGISTRY._entries.update(saved)
    registry._REGISTRY.refresh()


def test_entry_point_plugin_is_listed_lazily_and_builds(fake_plugins):
    group = registry.ENTRY_POINT_GROUP
    fake_plugins += [
        metadata.EntryPoint(name="plugin-net", value=f"{__name__}:build_plugin_net", group=group),
        metadata.EntryPoint(name="lazy-net", value="dropsearch_no_such_module_xyz:build", group=group),
    ]
    names = model_names()  # listing imports nothing
    assert {"plugin-net", "lazy-net", "convnet"} <= set(names)
    assert "dropsearch_no_such_module_xyz" not in sys.modules
    info = model_info("plugin-net")
    assert info.params == {"hidden": 5} and info.description == "A plugin model for the entry-point test."
    model = build_model("plugin-net", params={"hidden": 3}, in_shape=(1, 8, 8), num_classes=4)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    with pytest.raises(ValueError, match="depth"):
        build_model("plugin-net", params={"depth": 3}, in_shape=(1, 8, 8), num_classes=4)
    with pytest.raises(ModuleNotFoundError):
        build_model("lazy-net", in_shape=(1, 8, 8), num_classes=4)


def test_entry_point_cannot_shadow_a_builtin_or_use_a_bad_name(fake_plugins):
    group = registry.ENTRY_POINT_GROUP
    fake_plugins += [
        metadata.EntryPoint(name="convnet", value=f"{__name__}:build_plugin_net", group=group),
        metadata.EntryPoint(name="Evil Name", value=f"{__name__}:build_plugin_net", group=group),
        metadata.EntryPoint(name="other-group", value=f"{__name__}:build_plugin_net", group="something.else"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = model_names()
    assert "Evil Name" not in names and "other-group" not in names
    assert len(caught) == 2
    model = build_model("convnet", params=tiny("convnet"), in_shape=(1, 8, 8), num_classes=10)
    assert type(model).__name__ == "ConvNet"
