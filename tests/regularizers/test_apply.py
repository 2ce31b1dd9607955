"""``apply(model, pattern)``: where modules go, re-applying, the residual token and bad input."""

import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers._apply import apply
from dropsearch.regularizers.bernoulli import BernoulliDropout
from dropsearch.regularizers.conv_pattern import PatternDropout2d
from dropsearch.regularizers.drop_block import DropBlock2d
from dropsearch.regularizers.gradaug import GradAug
from dropsearch.regularizers.gsnr_dropout import GSNRDropout
from dropsearch.regularizers.sequence_pattern import SequencePatternDropout
from dropsearch.regularizers.spatial import SpatialDropout
from dropsearch.regularizers.ydrop import YDrop, YDropTrainer
from dropsearch.workers.models import build_model

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))
TOKENS = {"size": 2, "stride": 1, "repeat": 1, "rotate": 0, "shear_x": 0.0, "shear_y": 0.0, "share_c": True}


def resnet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet", params={"width": 4}, in_shape=(3, 8, 8), num_classes=3).to(DEVICE)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3)).to(DEVICE)


def autodropout(residual: bool, site: str = "layer1.0.drop", rate: float = 0.3) -> dict:
    shape = {**TOKENS, "residual": residual}
    return {"variant": "autodropout", "sites": [{"site": site, "rate": rate, "shape": shape}]}


def test_residual_token_also_fills_the_shortcut_placeholder_of_resnet_blocks():
    model = resnet()
    applied = apply(model, autodropout(True))
    block = model.layer1[0]
    assert isinstance(block.drop, PatternDropout2d) and isinstance(block.shortcut_drop, PatternDropout2d)
    assert block.drop is not block.shortcut_drop  # own module, same tokens
    assert block.shortcut_drop.tokens() == block.drop.tokens()
    assert set(applied.modules) == {"layer1.0.drop", "layer1.0.shortcut_drop"}
    assert isinstance(model.layer1[1].shortcut_drop, nn.Identity)  # other blocks untouched
    model.train()
    x = torch.ones(4, 3, 8, 8, device=DEVICE)
    seen = []
    block.shortcut_drop.register_forward_hook(lambda m, a, out: seen.append((out == 0).float().mean().item()))
    model(x)
    assert seen and seen[0] > 0  # the shortcut branch really is masked


def test_without_the_residual_token_the_shortcut_stays_empty():
    model = resnet()
    apply(model, autodropout(False))
    assert isinstance(model.layer1[0].drop, PatternDropout2d)
    assert isinstance(model.layer1[0].shortcut_drop, nn.Identity)


def test_reapplying_replaces_modules_and_clears_what_the_new_pattern_leaves_out():
    model = resnet()
    apply(model, autodropout(True))
    apply(model, {"variant": "spatial", "sites": [{"site": "layer1.0.drop", "rate": 0.2}]})
    assert isinstance(model.layer1[0].drop, SpatialDropout) and model.layer1[0].drop.p == 0.2
    assert isinstance(model.layer1[0].shortcut_drop, nn.Identity)  # the old residual twin is gone
    apply(model, autodropout(True, rate=0.1))
    assert model.layer1[0].shortcut_drop.rate == 0.1  # a filled twin is refilled
    apply(model, {"variant": "bernoulli", "sites": [{"site": "layer1.0.drop", "rate": 0.0}]})
    assert isinstance(model.layer1[0].drop, nn.Identity) and isinstance(model.layer1[0].shortcut_drop, nn.Identity)


def test_existing_dropout_is_replaced_and_other_modules_get_a_hook():
    model = mlp()
    applied = apply(model, {"variant": "bernoulli", "sites": [{"site": "2", "rate": 0.25}, {"site": "1", "rate": 0.5}]})
    assert isinstance(model[2], BernoulliDropout) and model[2].p == 0.25  # nn.Dropout replaced
    assert isinstance(model[1], nn.ReLU) and model[1].dropsearch_drop is applied.modules["1"]  # hooked
    x = torch.randn(4000, 6, device=DEVICE)
    out = model[1].train()(x.abs() + 1)  # the hook applies the dropout to the ReLU's output
    assert abs((out == 0).float().mean().item() - 0.5) <= 0.02
    apply(model, {"variant": "bernoulli", "sites": [{"site": "1", "rate": 0.1}]})  # re-apply: one hook, new p
    assert len(model[1]._forward_hooks) == 1 and model[1].dropsearch_drop.p == 0.1
    apply(model, {"variant": "bernoulli", "sites": [{"site": "1", "rate": 0.0}]})
    assert isinstance(model[1].dropsearch_drop, nn.Identity)
    assert torch.equal(model[1](x), torch.relu(x))


@pytest.mark.parametrize(
    ("variant", "module_type", "shape"),
    [
        ("bernoulli", BernoulliDropout, {}),
        ("largedrop", BernoulliDropout, {}),
        ("spatial", SpatialDropout, {}),
        ("dropblock", DropBlock2d, {"block_size": 2}),
        ("ydrop", YDrop, {}),
    ],
)
def test_each_site_variant_installs_its_module(variant, module_type, shape):
    model = resnet()
    apply(model, {"variant": variant, "sites": [{"site": "layer2.1.drop", "rate": 0.2, "shape": shape}]})
    assert type(model.layer2[1].drop) is module_type


def test_model_wide_variants_return_their_step_helper_and_take_the_params():
    model = resnet()
    gsnr = apply(model, {"variant": "gsnr", "params": {"p": 0.2, "chunks": 2, "gsnr_batch": 4}}).helper
    assert isinstance(gsnr, GSNRDropout) and (gsnr.p, gsnr.chunks, gsnr.gsnr_batch) == (0.2, 2, 4)
    assert gsnr.bn_refresh == "gsnr_pass"
    forward = apply(resnet(), {"variant": "gsnr", "params": {"bn_refresh": "forward"}}).helper
    assert forward.bn_refresh == "forward"
    with pytest.raises(ValueError, match="bn_refresh"):
        apply(resnet(), {"variant": "gsnr", "params": {"bn_refresh": "never"}})
    ydrop = apply(resnet(), {"variant": "ydrop", "sites": [{"site": "layer1.0.drop", "rate": 0.3}]}).helper
    assert isinstance(ydrop, YDropTrainer) and (ydrop.refresh_every, ydrop.refresh_batch) == (10, 16)
    gradaug = apply(resnet(), {"variant": "gradaug", "params": {"min_width": 0.9, "n_subnets": 2}}).helper
    assert isinstance(gradaug, GradAug) and (gradaug.min_width, gradaug.n_subnets) == (0.9, 2)
    assert apply(resnet(), {"variant": "none"}).helper is None


def test_gsnr_batch_measures_the_gsnr_on_the_first_examples():
    from dropsearch.regularizers._gsnr_mask import gsnr_masks
    from dropsearch.regularizers.gsnr import parameter_gsnr

    model = resnet()
    x, y = torch.randn(8, 3, 8, 8, device=DEVICE), torch.arange(8, device=DEVICE) % 3
    helper = apply(model, {"variant": "gsnr", "params": {"p": 0.2, "chunks": 2, "gsnr_batch": 4}}).helper
    expected = gsnr_masks(parameter_gsnr(model, F.cross_entropy, x[:4], y[:4], estimator="microbatch", chunks=2), 0.2)
    helper.training_step(x, y, F.cross_entropy)
    assert set(helper.masks) == set(expected)
    assert all(torch.equal(helper.masks[n], expected[n]) for n in expected)


def test_sequence_sites_get_the_sequence_pattern_even_without_the_share_token():
    torch.manual_seed(0)
    params = {"n_layer": 1, "n_head": 2, "n_embd": 8}
    model = build_model("transformer", params=params, in_shape=(6,), num_classes=7).to(DEVICE)
    apply(model, {"variant": "autodropout", "sites": [{"site": "blocks.0.mlp.drop", "rate": 0.2, "shape": {}}]})
    assert isinstance(model.blocks[0].mlp.drop, SequencePatternDropout)
    tokens = torch.randint(0, 7, (3, 6), device=DEVICE)
    assert model.train()(tokens).shape == (3, 6, 7)


def test_pattern_object_and_json_dict_give_the_same_modules():
    from dropsearch.regularizers.pattern import Pattern

    doc = autodropout(True)
    a, b = resnet(), resnet()
    apply(a, doc)
    apply(b, Pattern.from_dict(doc))
    assert a.layer1[0].drop.tokens() == b.layer1[0].drop.tokens()


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "high"])
def test_a_rate_outside_the_unit_interval_is_refused_with_its_value(rate):
    with pytest.raises(ValueError, match=r"rate") as err:
        apply(resnet(), {"variant": "bernoulli", "sites": [{"site": "layer1.0.drop", "rate": rate}]})
    assert repr(rate) in str(err.value)


def test_an_unknown_variant_is_refused_with_its_name():
    with pytest.raises(ValueError, match="'superdrop'"):
        apply(resnet(), {"variant": "superdrop", "sites": []})


def test_a_site_not_in_the_model_is_refused_with_its_path_and_nothing_is_installed():
    model = resnet()
    pattern = {"variant": "bernoulli", "sites": [{"site": "layer1.0.drop", "rate": 0.2}, {"site": "layer9.drop"}]}
    with pytest.raises(ValueError, match="'layer9.drop'"):
        apply(model, pattern)
    assert isinstance(model.layer1[0].drop, nn.Identity)  # checked before anything changes


def test_a_tensor_of_the_wrong_rank_is_refused_with_its_shape():
    model = mlp()
    apply(model, {"variant": "spatial", "sites": [{"site": "2", "rate": 0.2}]})  # channel dropout on (B, F)
    with pytest.raises(ValueError, match=r"\(5, 16\)"):
        model.train()(torch.randn(5, 6, device=DEVICE))


def test_site_variants_refuse_model_wide_variants_with_sites():
    with pytest.raises(ValueError, match="'gradaug'"):
        apply(resnet(), {"variant": "gradaug", "sites": [{"site": "layer1.0.drop", "rate": 0.2}]})


def test_training_step_without_optimizer_leaves_gradients_for_the_caller():
    model = mlp()
    applied = apply(model, {"variant": "bernoulli", "sites": [{"site": "2", "rate": 0.2}]})
    x, y = torch.randn(8, 6, device=DEVICE), torch.arange(8, device=DEVICE) % 3
    before = [p.detach().clone() for p in model.parameters()]
    loss = applied.training_step(x, y, F.cross_entropy)
    assert not loss.requires_grad
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_mismatched_sites_name_every_missing_and_extra_site_with_the_closest_paths():
    model = build_model("convnet", params={"width_mult": 0.25}, in_shape=(3, 8, 8), num_classes=3)
    listed = [s.name for s in model.dropout_sites()]
    pattern = {
        "variant": "bernoulli",
        "sites": [
            {"site": listed[0], "rate": 0.1},
            {"site": listed[0].replace(".", "_"), "rate": 0.1},  # a typo of the first site
            {"site": "nowhere.at.all", "rate": 0.1},
        ],
    }
    with pytest.raises(ValueError) as err:
        apply(model, pattern)
    message = str(err.value)
    assert message.startswith("2 pattern site(s) are not modules of ConvNet")
    assert f"{listed[0].replace('.', '_')!r} (closest: {listed[0]!r}" in message
    assert "'nowhere.at.all'" in message and "'nowhere.at.all' (closest" not in message
    extra = message.split("does not name: ")[1]
    assert extra.split(", ") == [repr(s) for s in listed[1:]]
    assert isinstance(model.get_submodule(listed[0]), nn.Identity)  # nothing was installed


def test_mismatch_without_a_site_list_suggests_the_existing_dropout_layers():
    from collections import OrderedDict

    named = nn.Sequential(OrderedDict(fc1=nn.Linear(6, 16), act=nn.ReLU(), drop1=nn.Dropout(0.5), fc2=nn.Linear(16, 3)))
    with pytest.raises(ValueError, match=r"'dropout1' \(closest: 'drop1'\).*does not name: 'drop1'$"):
        apply(named, {"variant": "bernoulli", "sites": [{"site": "dropout1", "rate": 0.1}]})


def test_a_downloaded_best_pattern_with_its_validation_table_applies_as_is():
    from dropsearch.regularizers.pattern import Pattern

    document = {
        "format": "dropsearch.pattern/v1",
        "variant": "bernoulli",
        "sites": [{"site": "drop", "rate": 0.3}],
        "params": {},
        "provenance": {"validated": True, "arm": "search-1"},
        "validation": {"chosen": "search-1", "arms": [], "conclusion": "..."},
    }
    pattern = Pattern.from_dict(document)
    assert pattern.variant == "bernoulli" and pattern.sites[0].rate == 0.3
    assert "validation" not in pattern.to_dict()
    with pytest.raises(ValueError, match="unknown pattern field"):
        Pattern.from_dict({**document, "surprise": 1})
