import os

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dropsearch.regularizers._gsnr_mask import _SAMPLE, drop_count, gsnr_masks, top_k_mask
from dropsearch.regularizers._gsnr_meta import meta_ratio_slope, meta_split
from dropsearch.regularizers.gsnr import parameter_gsnr
from dropsearch.regularizers.gsnr_dropout import GSNRDropout

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 10),
        nn.ReLU(),
        nn.Linear(10, 3),
    )


def setup(seed=0, batch=8):
    torch.manual_seed(seed)
    model = net().to(DEVICE)
    x = torch.randn(batch, 2, 5, 5, device=DEVICE)
    y = torch.randint(0, 3, (batch,), device=DEVICE)
    return model, x, y


class CountingSGD(torch.optim.SGD):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


def test_masks_drop_exactly_the_top_p_of_each_tensor():
    torch.manual_seed(0)
    gsnr = {"a": torch.rand(7, 3), "b": torch.rand(40), "c": torch.rand(1)}
    masks = gsnr_masks(gsnr, 0.3)
    assert set(masks) == {"a", "b"}  # floor(0.3 * 1 + 0.5) = 0: nothing to drop in "c"
    assert int(masks["a"].sum()) == 6 and int(masks["b"].sum()) == 12  # floor(6.3 + .5), floor(12 + .5)
    for n, m in masks.items():
        assert gsnr[n][m].min() > gsnr[n][~m].max()
    assert [drop_count(n, 0.3) for n in (1, 2, 21, 40)] == [0, 1, 6, 12]
    assert drop_count(10, 0.0) == 0 and drop_count(10, 1.0) == 10


def test_step_zeroes_top_p_per_layer_restores_weights_and_masks_gradients():
    model, x, y = setup()
    helper = GSNRDropout(model, p=0.2, estimator="per_example", chunks=2)
    before = {n: t.detach().clone() for n, t in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    gsnr = parameter_gsnr(model, F.cross_entropy, x, y, estimator="per_example")
    seen = {}
    hooks = [
        model[i].register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, m.weight.detach().clone()))
        for i in (0, 4, 6)
    ]
    loss = helper.training_step(x, y, F.cross_entropy)
    for h in hooks:
        h.remove()
    named = dict(model.named_parameters())
    assert set(helper.masks) == {"0.weight", "4.weight"}  # not the classifier, biases or BN
    for i, name in ((0, "0.weight"), (4, "4.weight")):
        mask = helper.masks[name]
        assert int(mask.sum()) == drop_count(mask.numel(), 0.2)
        assert gsnr[name][mask].min() >= gsnr[name][~mask].max()  # the highest-GSNR weights were dropped
        assert torch.equal(seen[i][mask], torch.zeros_like(seen[i][mask]))  # zeroed during the forward
        assert torch.equal(seen[i][~mask], before[name][~mask])
        assert torch.equal(named[name].grad[mask], torch.zeros_like(named[name].grad[mask]))
    assert torch.equal(seen[6], before["6.weight"])
    for n, t in model.named_parameters():  # restored bit for bit
        assert torch.equal(t, before[n])
    # independent reference: the gradient of the loss with those weights zeroed by hand
    ref = net().to(DEVICE)
    ref.load_state_dict({**before, **buffers})
    with torch.no_grad():
        for name, mask in helper.masks.items():
            dict(ref.named_parameters())[name][mask] = 0
    ref_loss = F.cross_entropy(ref(x), y)
    ref_loss.backward()
    assert float(loss) == pytest.approx(float(ref_loss.detach()), rel=1e-6)
    for n, t in ref.named_parameters():
        g = t.grad.clone()
        if n in helper.masks:
            g[helper.masks[n]] = 0
        torch.testing.assert_close(named[n].grad, g)


def test_one_optimizer_step_per_call_and_masked_weights_do_not_move_with_plain_sgd():
    model, x, y = setup(seed=1)
    opt = CountingSGD(model.parameters(), lr=0.1)
    helper = GSNRDropout(model, p=0.3)
    for k in range(1, 4):
        before = {n: t.detach().clone() for n, t in model.named_parameters()}
        helper.training_step(x, y, F.cross_entropy, opt)
        assert opt.steps == k
        for n, mask in helper.masks.items():
            w = dict(model.named_parameters())[n]
            assert torch.equal(w[mask], before[n][mask])
            assert not torch.equal(w[~mask], before[n][~mask])
    assert helper.step == 3


def test_adam_momentum_moves_masked_weights_unless_held():
    for hold in (False, True):
        model, x, y = setup(seed=2)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        helper = GSNRDropout(model, p=0.3, hold_masked=hold)
        helper.training_step(x, y, F.cross_entropy, opt)  # builds Adam moments for every weight
        before = {n: t.detach().clone() for n, t in model.named_parameters()}
        helper.training_step(x[:4], y[:4], F.cross_entropy, opt)
        w = dict(model.named_parameters())["0.weight"]
        mask = helper.masks["0.weight"]
        moved = not torch.equal(w[mask], before["0.weight"][mask])
        assert moved is (not hold)


def test_meta_slope_restores_parameters_and_buffers_exactly():
    model, x, y = setup(seed=3)
    model.train()
    gsnr = parameter_gsnr(model, F.cross_entropy, x, y)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    slope = meta_ratio_slope(
        model, F.cross_entropy, gsnr, x, y, p=0.2, p_max=0.5, delta=0.1, inner_lr=0.5, generator=torch.Generator()
    )
    assert slope != 0.0
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.training and all(p.grad is None for p in model.parameters())


def test_meta_split_holds_out_one_domain_or_halves():
    domains = torch.tensor([0, 0, 15, 15, 30, 30, 30])
    train, test = meta_split(7, domains, torch.device("cpu"), torch.Generator().manual_seed(0))
    held = domains[test].unique()
    assert held.numel() == 1 and not (domains[train] == held).any()
    assert sorted(train.tolist() + test.tolist()) == list(range(7))
    train, test = meta_split(7, torch.zeros(7), torch.device("cpu"), torch.Generator().manual_seed(0))
    assert len(train) == 3 and len(test) == 4 and sorted(train.tolist() + test.tolist()) == list(range(7))


def test_meta_ratio_moves_p_and_stays_inside_bounds():
    model, x, y = setup(seed=4, batch=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    helper = GSNRDropout(
        model,
        p=0.2,
        meta=True,
        p_max=0.4,
        meta_every=2,
        meta_lr=50.0,
        delta=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    domains = torch.arange(16, device=DEVICE) % 2
    for _ in range(8):
        helper.training_step(x, y, F.cross_entropy, opt, domains=domains)
    assert len(helper.history) == 1 + 4
    assert helper.history[0] == pytest.approx(0.2)
    assert len(set(helper.history)) > 1  # p moved
    assert all(0.0 < p < 0.4 for p in helper.history)
    assert helper.p == pytest.approx(helper.history[-1])


def test_zero_p_is_a_plain_step():
    model, x, y = setup(seed=5)
    ref = net().to(DEVICE)
    ref.load_state_dict(model.state_dict())
    loss = GSNRDropout(model, p=0.0).training_step(x, y, F.cross_entropy)
    ref_loss = F.cross_entropy(ref(x), y)
    ref_loss.backward()
    assert float(loss) == pytest.approx(float(ref_loss.detach()))
    for (_, a), (_, b) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 1.5}, "p must be"),
        ({"p": -0.1}, "p must be"),
        ({"p": 0.6, "meta": True, "p_max": 0.5}, "p must be in"),
        ({"p": 0.1, "meta": True, "delta": 0.0}, "delta"),
        ({"estimator": "exact"}, "estimator"),
        ({"meta_every": 0}, "meta_every"),
        ({"bn_refresh": "none"}, "bn_refresh"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GSNRDropout(net(), **kwargs)


def bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.BatchNorm2d(4, momentum=None),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


@pytest.mark.parametrize("gsnr_batch", [None, 12])
def test_batchnorm_running_stats_come_from_the_unmasked_network_in_the_gsnr_pass(gsnr_batch):
    """Default: one update from the BN inputs of the unmasked eval-mode network (GSNR pass), none from the masked."""
    import copy

    torch.manual_seed(0)
    model = bn_net().to(DEVICE)
    with torch.no_grad():  # non-trivial running statistics, so eval-mode inputs differ from train-mode ones
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(16, 1, 6, 6, device=DEVICE), torch.randint(0, 3, (16,), device=DEVICE)
    n = 16 if gsnr_batch is None else gsnr_batch
    reference = copy.deepcopy(model).eval()  # independent reference: the BN inputs of an eval-mode forward, by hand
    seen = {}
    for i in (1, 4):
        reference[i].register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, a[0].detach().double()))
    with torch.no_grad():
        reference(x[:n])
    expected = {}
    for i, momentum in ((1, 0.1), (4, 1.0)):  # momentum=None: cumulative average, 1 / num_batches_tracked = 1
        a = seen[i].transpose(0, 1).reshape(4, -1)
        old_mean, old_var = reference[i].running_mean.double(), reference[i].running_var.double()
        expected[i] = ((1 - momentum) * old_mean + momentum * a.mean(1), (1 - momentum) * old_var + momentum * a.var(1))
    helper = GSNRDropout(model.train(), p=0.3, gsnr_batch=gsnr_batch)
    helper.training_step(x, y, nn.functional.cross_entropy)
    assert helper.masks, "p=0.3 must mask some weights"
    for i in (1, 4):
        torch.testing.assert_close(model[i].running_mean.double(), expected[i][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model[i].running_var.double(), expected[i][1], rtol=1e-5, atol=1e-6)
        assert int(model[i].num_batches_tracked) == 1
    assert all(m.training for m in model.modules())


def test_batchnorm_refresh_forward_matches_one_unmasked_train_mode_forward():
    """``bn_refresh="forward"``: the statistics equal those of one unmasked train-mode forward of the whole batch."""
    import copy

    torch.manual_seed(0)
    model = bn_net().to(DEVICE)
    x, y = torch.randn(16, 1, 6, 6, device=DEVICE), torch.randint(0, 3, (16,), device=DEVICE)
    reference = copy.deepcopy(model).train()
    with torch.no_grad():
        reference(x)
    helper = GSNRDropout(model.train(), p=0.3, bn_refresh="forward", gsnr_batch=8)
    helper.training_step(x, y, nn.functional.cross_entropy)
    assert helper.masks, "p=0.3 must mask some weights"
    for bn, ref in zip([model[1], model[4]], [reference[1], reference[4]], strict=True):
        torch.testing.assert_close(bn.running_mean, ref.running_mean)
        torch.testing.assert_close(bn.running_var, ref.running_var)
        assert int(bn.num_batches_tracked) == 1


def test_frozen_batchnorm_and_eval_mode_models_keep_their_statistics():
    model, x, y = setup(seed=6)
    model[1].eval()  # e.g. largedrop's frozen BatchNorm: no running-statistics update at all
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "tracked" in k}
    GSNRDropout(model, p=0.3).training_step(x, y, F.cross_entropy)
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v), k
    assert not model[1].training and model[0].training


def _check_top_k(score, k):
    mask = top_k_mask(score, k)
    assert mask.shape == score.shape and mask.dtype == torch.bool
    assert int(mask.sum()) == k
    if 0 < k < score.numel():  # independent reference: the k-th largest value by a full sort
        kth = score.reshape(-1).sort(descending=True).values[k - 1]
        assert score[mask].min() == kth and (score[~mask] <= kth).all()
    return mask


def test_top_k_mask_is_exact_on_large_tensors():
    gen = torch.Generator().manual_seed(0)
    n = 200_003  # above the plain-topk size: the sampled-bracket path
    smooth = torch.rand(n, generator=gen, dtype=torch.float64).pow(3).to(DEVICE)
    for k in (0, 1, 17, n // 10, n // 2, n - 1, n):
        _check_top_k(smooth, k)
    periodic = (torch.arange(n, device=DEVICE) % 9).float() + 1e-3 * torch.rand(n, generator=gen).to(DEVICE)
    _check_top_k(periodic.view(-1, 1), n // 9 + 5)  # a kernel-like period: a strided sample would alias
    ties = torch.randint(0, 4, (n,), generator=gen).float().to(DEVICE)  # huge ties at the threshold
    mask = _check_top_k(ties, n // 10)
    assert (ties[mask] == 3).all()
    # a tensor whose sampled positions all hold the smallest value: the bracket misses, exact topk fallback
    picked = (torch.arange(_SAMPLE, dtype=torch.float64) * 0.6180339887498949).frac().mul(n).long()
    tricky = torch.rand(n, generator=gen).add(1.0)
    tricky[picked] = 0.0
    _check_top_k(tricky.to(DEVICE), n // 10)
    with pytest.raises(ValueError, match="k must be"):
        top_k_mask(smooth, n + 1)
