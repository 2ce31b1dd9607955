import os

import pytest
import torch
from captum.attr import LayerConductance
from torch import nn

from dropsearch.regularizers.conductance import METHODS, layer_conductance, layers_conductance, path_alphas

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def cnn() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 5, 3),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.Dropout2d(0.3),
        nn.Flatten(),
        nn.Linear(5 * 4 * 4, 8),
        nn.Tanh(),
        nn.Dropout(0.4),
        nn.Linear(8, 4),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def setup(seed=0, batch=6):
    torch.manual_seed(seed)
    model = cnn().to(DEVICE)
    x = torch.randn(batch, 3, 6, 6, device=DEVICE)
    y = torch.randint(0, 4, (batch,), device=DEVICE)
    return model, x, y


def captum_units(model, layer, x, y, steps, method, baseline=None):
    model.eval()
    attr = LayerConductance(model, layer).attribute(x, baselines=baseline, target=y, n_steps=steps, method=method)
    return attr.reshape(attr.shape[0], attr.shape[1], -1).sum(-1)  # sum a conv layer over positions


def rel_err(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("layer_idx", "units"), [(0, 5), (5, 8)])
def test_matches_captum_layer_conductance(method, layer_idx, units):
    model, x, y = setup()
    model.train()  # dropout and batch statistics on: the function must switch them off and restore the modes
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    ours = layer_conductance(model, model[layer_idx], x, y, steps=7, method=method)
    assert ours.shape == (6, units)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())
    assert all(p.grad is None for p in model.parameters())
    ref = captum_units(model, model[layer_idx], x, y, 7, method)
    assert rel_err(ours, ref) <= 1e-4


def test_nonzero_baseline_matches_captum():
    model, x, y = setup(seed=1)
    base = torch.full((1, 3, 6, 6), 0.25, device=DEVICE)
    ours = layer_conductance(model, model[5], x, y, steps=4, baseline=base)
    ref = captum_units(model, model[5], x, y, 4, "riemann_trapezoid", baseline=base)
    assert rel_err(ours, ref) <= 1e-4


def test_completeness_sum_of_units_approaches_logit_difference():
    model, x, y = setup(seed=2)
    cond = layer_conductance(model, model[5], x, y, steps=400)
    model.eval()
    with torch.no_grad():
        delta = model(x).gather(1, y[:, None]) - model(torch.zeros_like(x)).gather(1, y[:, None])
    torch.testing.assert_close(cond.sum(1), delta.squeeze(1), rtol=1e-2, atol=1e-3)


def test_frozen_model_still_gets_layer_gradients():
    model, x, y = setup(seed=5)
    model.requires_grad_(False)
    ours = layer_conductance(model, model[0], x, y, steps=3)
    ref = captum_units(model, model[0], x, y, 3, "riemann_trapezoid")
    assert rel_err(ours, ref) <= 1e-4


def test_several_layers_in_one_pass_equal_single_layer_calls():
    model, x, y = setup(seed=3)
    both = layers_conductance(model, [model[0], model[6]], x, y, steps=5)
    torch.testing.assert_close(both[0], layer_conductance(model, model[0], x, y, steps=5))
    torch.testing.assert_close(both[1], layer_conductance(model, model[6], x, y, steps=5))


def test_one_batched_forward_of_all_path_points():
    model, x, y = setup(seed=4)
    batches = []
    model.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    layer_conductance(model, model[0], x, y, steps=5)
    assert batches == [6 * 6]


def test_path_alphas():
    torch.testing.assert_close(path_alphas(5), torch.linspace(0, 1, 5, dtype=torch.float64))
    gl = path_alphas(4, "gausslegendre")  # nodes of 4-point Gauss-Legendre on [0, 1]
    a, b = (3 / 7 - 2 / 7 * (6 / 5) ** 0.5) ** 0.5, (3 / 7 + 2 / 7 * (6 / 5) ** 0.5) ** 0.5
    expected = torch.tensor([-b, -a, a, b], dtype=torch.float64).add(1).mul(0.5)
    torch.testing.assert_close(gl, expected)


def test_bad_arguments_raise_value_error():
    model, x, y = setup()
    with pytest.raises(ValueError, match="method"):
        layer_conductance(model, model[0], x, y, method="simpson")
    with pytest.raises(ValueError, match="steps"):
        layer_conductance(model, model[0], x, y, steps=0)
    with pytest.raises(ValueError, match="targets"):
        layer_conductance(model, model[0], x, y[:3])
