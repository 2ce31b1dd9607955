"""Every variant through ``dropsearch.regularizers.apply`` on the built-in models: the shared contract.

References are independent of the code under test: the unmodified model (eval identity), the input itself (mean
activation), the requested rate or the exact expectation the tokens imply (DropBlock's coverage formula, the
AutoDropout canvas fraction), a second run from the same seed (determinism) and parameter snapshots (training).
"""

import copy
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers._apply import apply
from dropsearch.regularizers.conv_pattern import PatternDropout2d
from dropsearch.regularizers.conv_pattern import implied_drop_rate as conv_implied
from dropsearch.regularizers.drop_block import expected_drop_rate
from dropsearch.regularizers.sequence_pattern import SequencePatternDropout
from dropsearch.regularizers.sequence_pattern import implied_drop_rate as seq_implied
from dropsearch.regularizers.ydrop import YDrop
from dropsearch.workers.models import build_model, dropout_sites

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))
CONV_TOKENS = {"size": 2, "stride": 1, "repeat": 2, "rotate": 30, "shear_x": 0.15, "shear_y": 0.0, "residual": False}

# (case id, model name, variant, site kinds it uses, rate, shape tokens, params)
CASES = [
    ("bernoulli-mlp", "mlp", "bernoulli", ("linear", "features"), 0.3, {}, {}),
    ("bernoulli-convnet", "convnet", "bernoulli", ("conv", "features"), 0.2, {}, {}),
    ("spatial-convnet", "convnet", "spatial", ("conv",), 0.25, {}, {}),
    ("dropblock-convnet", "convnet", "dropblock", ("conv",), 0.15, {"block_size": 3}, {}),
    ("autodropout-share", "convnet", "autodropout", ("conv",), 0.2, {**CONV_TOKENS, "share_c": True}, {}),
    ("autodropout-per-channel", "convnet", "autodropout", ("conv",), 0.2, {**CONV_TOKENS, "share_c": False}, {}),
    ("autodropout-sequence", "transformer", "autodropout", ("sequence",), 0.2, {"size": 2, "stride": 3}, {}),
    ("autodropout-seq-channels", "transformer", "autodropout", ("sequence",), 0.1, {"size": 1, "share": False}, {}),
    ("ydrop-mlp", "mlp", "ydrop", ("linear",), 0.3, {}, {"refresh_every": 1, "steps": 3}),
    ("ydrop-convnet", "convnet", "ydrop", ("conv",), 0.3, {}, {"refresh_every": 1, "steps": 3}),
    ("largedrop-convnet", "convnet", "largedrop", ("features",), 0.9, {}, {}),
    ("gsnr-convnet", "convnet", "gsnr", (), 0.0, {}, {"p": 0.2, "estimator": "microbatch", "chunks": 2}),
    ("gradaug-convnet", "convnet", "gradaug", (), 0.0, {}, {"min_width": 0.8, "n_subnets": 2, "resolutions": [8, 6]}),
]
IDS = [c[0] for c in CASES]


def make_model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if name == "mlp":
        model = build_model("mlp", params={"hidden": [32, 32]}, in_shape=(1, 6, 6), num_classes=5)
    elif name == "convnet":
        model = build_model("convnet", params={"widths": [8, 16]}, in_shape=(1, 8, 8), num_classes=5)
    elif name == "resnet":
        model = build_model("resnet", params={"width": 4}, in_shape=(3, 8, 8), num_classes=5)
    else:
        params = {"n_layer": 1, "n_head": 2, "n_embd": 16, "task": "classification", "vocab_size": 11}
        model = build_model("transformer", params=params, in_shape=(12,), num_classes=5)
    return model.to(DEVICE)


def make_batch(name: str, batch: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if name == "transformer":
        x = torch.randint(0, 11, (batch, 12), generator=g)
    else:
        x = torch.randn(batch, 1, 6, 6, generator=g) if name == "mlp" else torch.randn(batch, 1, 8, 8, generator=g)
    return x.to(DEVICE), torch.randint(0, 5, (batch,), generator=g).to(DEVICE)


def pattern_for(case, model: nn.Module) -> dict:
    _, _, variant, kinds, rate, shape, params = case
    sites = [{"site": s.name, "rate": rate, "shape": dict(shape)} for s in dropout_sites(model) if s.kind in kinds]
    return {"variant": variant, "sites": sites, "params": dict(params)}


def captured_site_inputs(model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The activation each installed module receives, from one eval-mode forward."""
    seen: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(name, args[0].detach()))
        for name, m in modules.items()
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return seen


def expected_drop(module: nn.Module, shape: tuple[int, ...]) -> float:
    """The drop fraction the module's settings imply, computed without the module's sampling code."""
    if isinstance(module, PatternDropout2d):
        return conv_implied(module.tokens(), shape)
    if isinstance(module, SequencePatternDropout):
        return seq_implied(module.tokens(), shape)
    if type(module).__name__ == "DropBlock2d":
        return expected_drop_rate(module.p, module.block_size, shape[2], shape[3])
    return module.p


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_eval_mode_is_exactly_the_unmodified_model(case):
    name = case[1]
    reference, model = make_model(name), make_model(name)
    x, y = make_batch(name)
    applied = apply(model, pattern_for(case, model))
    assert applied.model is model
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # train (and refresh Y-Drop) first: eval must be the identity afterwards too
        applied.training_step(x, y, F.cross_entropy, opt)
    reference.load_state_dict(model.state_dict(), strict=True)  # same weights and BN statistics, no pattern
    with torch.no_grad():
        expected, got = reference.eval()(x), model.eval()(x)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_train_mode_mean_and_drop_fraction(case):
    torch.set_num_threads(1)
    name = case[1]
    model = make_model(name)
    x, y = make_batch(name, batch=16)
    applied = apply(model, pattern_for(case, model))
    assert applied.modules, "the pattern installed no module"
    if case[2] == "ydrop":  # a conductance refresh first, so the per-unit keep probabilities are in use
        applied.training_step(x, y, F.cross_entropy)
        applied.training_step(x, y, F.cross_entropy)
        assert all(m.keep_prob is not None for m in applied.modules.values())
    inputs = captured_site_inputs(model, applied.modules, x)
    for site, module in applied.modules.items():
        h = inputs[site].abs() + 0.5  # positive, so the mean is far from 0 and zeros mean "dropped"
        h = h.repeat(16, *([1] * (h.ndim - 1)))  # 256 examples: 256 independent masks per position
        module.train()
        outs = torch.stack([module(h) for _ in range(8)])  # (8, 256, ...)
        mean_ratio = outs.mean().item() / h.mean().item()
        dropped = (outs == 0).float().mean().item()
        assert abs(mean_ratio - 1) <= 0.02, (site, mean_ratio)
        assert abs(dropped - expected_drop(module, tuple(h.shape))) <= 0.02, (site, dropped)
        if case[2] == "ydrop":  # the mean keep probability is exactly 1 - p
            assert module.keep_prob.mean().item() == pytest.approx(1 - module.p, abs=1e-5)


def test_gsnr_masks_the_requested_fraction_of_each_layer():
    case = CASES[IDS.index("gsnr-convnet")]
    model = make_model("convnet")
    x, y = make_batch("convnet")
    applied = apply(model, pattern_for(case, model))
    applied.training_step(x, y, F.cross_entropy)
    masks = applied.helper.masks
    assert set(masks) == {"features.conv1.weight", "features.conv2.weight"}  # not BN, biases or the classifier
    for mask in masks.values():
        assert abs(mask.float().mean().item() - 0.2) <= 0.02


def _run_twice(case, seed: int) -> list[torch.Tensor]:
    name = case[1]
    model = make_model(name)
    x, _ = make_batch(name, batch=16)
    applied = apply(model, pattern_for(case, model))
    inputs = captured_site_inputs(model, applied.modules, x)
    outs = []
    for site, module in applied.modules.items():
        module.train()
        if isinstance(module, YDrop):
            module.generator = torch.Generator(device=DEVICE).manual_seed(seed)
            outs.append(module(inputs[site] + 1))
        else:
            outs.append(module(inputs[site] + 1, generator=torch.Generator(device=DEVICE).manual_seed(seed)))
    return outs


@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_same_generator_seed_gives_the_same_masks(case):
    first, again, other = _run_twice(case, 7), _run_twice(case, 7), _run_twice(case, 8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_gradaug_with_a_seeded_generator_is_deterministic():
    case = CASES[IDS.index("gradaug-convnet")]
    grads = []
    for seed in (3, 3, 4):
        model = make_model("convnet")
        x, y = make_batch("convnet")
        applied = apply(model, pattern_for(case, model))
        applied.helper.generator = torch.Generator(device="cpu").manual_seed(seed)
        applied.helper.min_width = 0.5  # widths differ visibly between seeds
        applied.training_step(x, y, F.cross_entropy)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.equal(grads[0], grads[1])
    assert not torch.equal(grads[0], grads[2])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_training_step_gives_a_finite_loss_and_moves_the_weights(case):
    name = case[1]
    model = make_model(name)
    x, y = make_batch(name)
    applied = apply(model, pattern_for(case, model))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = [applied.training_step(x, y, F.cross_entropy, opt) for _ in range(2)]
    assert all(loss.ndim == 0 and math.isfinite(loss.item()) for loss in losses)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "head.fc.weight" in moved and len(moved) >= 3, moved


def test_dropsearch_apply_is_the_same_function():
    import dropsearch

    assert dropsearch.apply is apply
    model = make_model("mlp")
    applied = dropsearch.apply(model, {"variant": "bernoulli", "sites": [{"site": "layers.drop1", "rate": 0.5}]})
    assert type(model.layers.drop1).__name__ == "BernoulliDropout" and applied.modules["layers.drop1"].p == 0.5


def test_copies_of_an_applied_model_stay_independent():
    case = CASES[IDS.index("autodropout-share")]
    model = make_model("convnet")
    apply(model, pattern_for(case, model))
    twin = copy.deepcopy(model)
    x, _ = make_batch("convnet")
    with torch.no_grad():
        assert torch.equal(model.eval()(x), twin.eval()(x))


def test_package_attribute_apply_is_the_function_after_the_submodule_was_imported():
    import dropsearch.regularizers as regs
    import dropsearch.regularizers._apply  # noqa: F401

    assert regs.apply is apply
