import os

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn import functional as F

from dropsearch.regularizers.gsnr import default_gsnr_params, gsnr_stats, parameter_gsnr

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))
EPS = 1e-8


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3))


def cnn() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 3, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(5, 3),
    )
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BN differs from batch statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def naive_group_grads(model, x, y, groups):
    """One backward per group of example indices, model in eval mode; returns name -> (G, *shape)."""
    model.eval()
    names = default_gsnr_params(model)
    named = dict(model.named_parameters())
    out = {n: [] for n in names}
    for idx in groups:
        model.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        for n in names:
            out[n].append(named[n].grad.detach().clone())
    model.zero_grad()
    return {n: torch.stack(v) for n, v in out.items()}


def setup(factory, shape, batch, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    model = factory().to(device=DEVICE, dtype=dtype)
    x = torch.randn(batch, *shape, device=DEVICE, dtype=dtype)
    y = torch.randint(0, 3, (batch,), device=DEVICE)
    return model, x, y


@pytest.mark.parametrize(("factory", "shape"), [(mlp, (5,)), (cnn, (2, 6, 6))])
@pytest.mark.parametrize("chunks", [1, 3])
def test_per_example_matches_naive_loop(factory, shape, chunks):
    model, x, y = setup(factory, shape, batch=10)
    model.train()
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    stats = gsnr_stats(model, F.cross_entropy, x, y, estimator="per_example", chunks=chunks, eps=EPS)
    assert model.training and all(m.training for m in model.modules())
    for n, b in model.named_buffers():  # eval-mode BN: running statistics untouched
        assert torch.equal(b, buffers[n])
    assert all(p.grad is None for p in model.parameters())
    g = naive_group_grads(model, x, y, [[b] for b in range(10)])
    assert set(stats.gsnr) == set(g)
    for n, gb in g.items():
        ref = gb.mean(0) ** 2 / (gb.var(0, unbiased=True) + EPS)
        torch.testing.assert_close(stats.gsnr[n], ref, rtol=1e-5, atol=0.0)
        torch.testing.assert_close(stats.mean_grad[n], gb.mean(0), rtol=1e-7, atol=1e-12)
    model.eval()
    with torch.no_grad():
        expected = float(F.cross_entropy(model(x), y))
    assert float(stats.loss) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("batch", [12, 14])  # equal micro-batches (vmap) and unequal ones (loop)
def test_microbatch_matches_hand_computation(batch):
    model, x, y = setup(cnn, (2, 6, 6), batch=batch)
    K = 4
    got = parameter_gsnr(model, F.cross_entropy, x, y, estimator="microbatch", chunks=K, eps=EPS)
    groups = [idx.tolist() for idx in torch.arange(batch).tensor_split(K)]
    g = naive_group_grads(model, x, y, groups)
    sizes = torch.tensor([len(gr) for gr in groups], dtype=torch.float64, device=DEVICE)
    for n, gd in g.items():
        w = sizes.view(-1, *([1] * (gd.ndim - 1)))
        mean = (w * gd).sum(0) / sizes.sum()
        var = (w * (gd - mean) ** 2).sum(0) / (K - 1)
        if batch == 12:  # equal sizes: micro-batch size times the unbiased variance of the micro-batch means
            torch.testing.assert_close(var, 3 * gd.var(0, unbiased=True))
        torch.testing.assert_close(got[n], mean**2 / (var + EPS), rtol=1e-5, atol=0.0)


def test_domain_estimator_equals_microbatch_on_contiguous_domains():
    model, x, y = setup(mlp, (5,), batch=12)
    domains = (torch.arange(12, device=DEVICE) // 3) * 15  # 4 domains of 3 examples, like 4 micro-batches
    by_domain = parameter_gsnr(model, F.cross_entropy, x, y, estimator="domain", domains=domains)
    by_chunk = parameter_gsnr(model, F.cross_entropy, x, y, estimator="microbatch", chunks=4)
    for n in by_chunk:
        torch.testing.assert_close(by_domain[n], by_chunk[n], rtol=1e-9, atol=0.0)


def test_microbatch_ranks_like_per_example():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3)).to(DEVICE)
    x = torch.randn(512, 10, device=DEVICE)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()  # a learnable rule: some weights carry signal
    exact = parameter_gsnr(model, F.cross_entropy, x, y, estimator="per_example", chunks=4)
    micro = parameter_gsnr(model, F.cross_entropy, x, y, estimator="microbatch", chunks=16)
    for n in exact:
        rho = spearmanr(exact[n].flatten().cpu().numpy(), micro[n].flatten().cpu().numpy()).statistic
        assert rho >= 0.8, (n, rho)


def test_zero_gradients_give_zero_gsnr_not_nan():
    model, x, y = setup(mlp, (5,), batch=6)
    x[:, 2] = 0.0  # the first layer's column 2 always sees a zero input: its gradient is exactly zero
    g = parameter_gsnr(model, F.cross_entropy, x, y)
    assert torch.isfinite(g["0.weight"]).all()
    assert torch.equal(g["0.weight"][:, 2], torch.zeros_like(g["0.weight"][:, 2]))
    assert (g["0.weight"][:, 0] > 0).all()


def test_default_params_are_conv_and_linear_weights_but_the_classifier():
    model = cnn()
    assert default_gsnr_params(model) == ["0.weight", "3.weight", "6.weight"]
    assert default_gsnr_params(model, exclude=()) == ["0.weight", "3.weight", "6.weight", "9.weight"]
    model[3].weight.requires_grad_(False)
    assert default_gsnr_params(model) == ["0.weight", "6.weight"]
    assert default_gsnr_params(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 1))) == ["0.weight", "1.weight"]


def test_explicit_params_select_any_parameter():
    model, x, y = setup(mlp, (5,), batch=6)
    g = parameter_gsnr(model, F.cross_entropy, x, y, params=["4.weight", "0.bias"])
    assert set(g) == {"4.weight", "0.bias"} and g["0.bias"].shape == (7,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimator": "exact"}, "estimator"),
        ({"chunks": 0}, "chunks"),
        ({"estimator": "microbatch", "chunks": 1}, "chunks"),
        ({"estimator": "microbatch", "chunks": 7}, "chunks"),
        ({"params": ["nope.weight"]}, "nope.weight"),
        ({"estimator": "domain"}, "domains"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    model, x, y = setup(mlp, (5,), batch=6)
    with pytest.raises(ValueError, match=match):
        parameter_gsnr(model, F.cross_entropy, x, y, **kwargs)
