import math
import os

import pytest
import torch
from captum.attr import LayerConductance
from torch import nn
from torch.nn import functional as F

from dropsearch.regularizers.conductance import layer_conductance
from dropsearch.regularizers.ydrop import YDrop, YDropTrainer, y_drop, ydrop_keep_probs

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def skewed_scores(units: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(units, device=DEVICE).exp() ** 2  # heavy right tail


def test_eval_mode_is_identity_and_p_zero_is_identity():
    x = torch.randn(4, 6, 3, 3, device=DEVICE)
    drop = YDrop(p=0.5).eval()
    drop.update_scores(skewed_scores(6))
    assert drop(x) is x
    assert YDrop(p=0.0).train()(x) is x


def test_before_refresh_behaves_as_bernoulli():
    p = 0.3
    x = torch.ones(2000, 50, device=DEVICE)
    out = YDrop(p=p, generator=gen(0))(x)
    kept = out != 0
    assert abs(1 - kept.float().mean().item() - p) <= 0.02
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.65, 0.8])
def test_refreshed_keep_probs_mean_floor_and_order(p):
    scores = skewed_scores(64)
    keep = ydrop_keep_probs(scores, p, scale=2.0, floor=0.3)
    assert keep.mean().item() == pytest.approx(1 - p, abs=1e-6)
    assert keep.min().item() >= min(0.3, 1 - p) - 1e-7 and keep.max().item() <= 1.0
    if 1 - p <= 0.3:  # the floor is capped at 1 - p: the only way to keep the mean is uniform keep
        torch.testing.assert_close(keep, torch.full_like(keep, 1 - p))
        return
    order = scores.argsort()
    assert (keep[order].diff() <= 1e-7).all()  # higher score -> lower (or equal) keep probability
    assert keep[order[-1]] < keep[order[0]]
    # hand formula before the mean-preserving shift: the shift only moves every logit by one constant
    z = (scores - scores.mean()) / scores.std(unbiased=False)
    raw = torch.sigmoid(math.log((1 - p) / p) - 2.0 * z)
    inside = (keep > min(0.3, 1 - p) + 1e-6) & (keep < 1 - 1e-6)
    shift = torch.logit(keep[inside].double()) - torch.logit(raw[inside].double())
    assert shift.std().item() < 1e-4


def test_realized_drop_and_mean_activation_after_refresh_with_skewed_scores():
    p, units, batch = 0.4, 40, 3000
    drop = YDrop(p=p, scale=1.5, generator=gen(1))
    drop.update_scores(skewed_scores(units))
    x = torch.rand(batch, units, 2, 2, device=DEVICE) + 0.5
    out = drop(x)
    dropped = (out[:, :, 0, 0] == 0).float()
    assert abs(dropped.mean().item() - p) <= 0.02
    assert torch.equal(out == 0, (out[:, :, :1, :1] == 0).expand_as(out))  # whole channels
    torch.testing.assert_close(out.mean(0), x.mean(0), rtol=0.1, atol=0.0)  # per unit
    assert abs(out.mean().item() / x.mean().item() - 1) <= 0.02
    kept = out != 0
    scale = (1 / drop.keep_prob).view(1, units, 1, 1).expand_as(x)
    torch.testing.assert_close(out[kept], x[kept] * scale[kept])
    rate = dropped.mean(0)
    order = skewed_scores(units).argsort()
    assert rate[order[-5:]].mean() > rate[order[:5]].mean() + 0.1  # high-conductance units dropped more


def test_ema_smoothing_and_shape_check():
    drop = YDrop(p=0.5, ema=0.75)
    first, second = skewed_scores(8), -skewed_scores(8)
    drop.update_scores(first)
    k1 = ydrop_keep_probs(first, 0.5)
    torch.testing.assert_close(drop.keep_prob, k1)
    drop.update_scores(second)
    torch.testing.assert_close(drop.keep_prob, 0.75 * k1 + 0.25 * ydrop_keep_probs(second, 0.5))
    assert drop.keep_prob.mean().item() == pytest.approx(0.5, abs=1e-6)
    assert "keep_prob" not in drop.state_dict()  # non-persistent
    with pytest.raises(ValueError, match="scores"):
        drop.update_scores(torch.ones(5, device=DEVICE))
    with pytest.raises(ValueError, match="keep"):
        drop.train()(torch.ones(2, 5, device=DEVICE))


def test_same_seed_same_mask():
    x = torch.randn(16, 12, device=DEVICE)
    a, b, c = (YDrop(p=0.5, generator=gen(s)) for s in (7, 7, 8))
    for d in (a, b, c):
        d.update_scores(skewed_scores(12))
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    keep = torch.full((12,), 0.5, device=DEVICE)
    assert torch.equal(y_drop(x, keep, generator=gen(3)), y_drop(x, keep, generator=gen(3)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: YDrop(p=1.0), "p must be"),
        (lambda: YDrop(p=-0.2), "p must be"),
        (lambda: YDrop(p=0.5, floor=0.0), "floor"),
        (lambda: YDrop(p=0.5, ema=1.0), "ema"),
        (lambda: YDrop(p=0.5)(torch.ones(2, 3, 4)), "x must be 2-D or 4-D"),
        (lambda: y_drop(torch.ones(2, 3, 4), torch.ones(3)), "x must be 2-D or 4-D"),
        (lambda: ydrop_keep_probs(torch.ones(2, 3), 0.5), "scores must be 1-D"),
    ],
)
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.ReLU(),
        YDrop(p=0.3, generator=gen(0)),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 6),
        nn.ReLU(),
        YDrop(p=0.4, generator=gen(1)),
        nn.Linear(6, 3),
    )


def test_trainer_refreshes_from_captum_conductance_every_k_steps():
    torch.manual_seed(0)
    model = small_net().to(DEVICE)
    x = torch.randn(10, 2, 5, 5, device=DEVICE)
    y = torch.randint(0, 3, (10,), device=DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: weights stay put, so the reference is simple
    trainer = YDropTrainer(model, refresh_every=3, steps=4)
    for _ in range(3):
        trainer.training_step(x, y, F.cross_entropy, opt)
    assert model[2].keep_prob is None and model[6].keep_prob is None  # Bernoulli until step 3
    trainer.training_step(x, y, F.cross_entropy, opt)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    for relu, drop in ((model[1], model[2]), (model[5], model[6])):  # the YDrop input h is the ReLU output
        cond = LayerConductance(model, relu).attribute(x, target=y, n_steps=4, method="riemann_trapezoid")
        score = cond.detach().reshape(10, cond.shape[1], -1).sum(-1).mean(0)
        torch.testing.assert_close(drop.keep_prob, ydrop_keep_probs(score, drop.p), rtol=1e-4, atol=1e-5)


def test_trainer_refresh_batch_uses_the_first_examples():
    torch.manual_seed(2)
    model = small_net().to(DEVICE)
    x = torch.randn(10, 2, 5, 5, device=DEVICE)
    y = torch.randint(0, 3, (10,), device=DEVICE)
    trainer = YDropTrainer(model, refresh_every=1, steps=3, refresh_batch=4)
    trainer.refresh(x, y)
    score = layer_conductance(model, model[6], x[:4], y[:4], steps=3).mean(0)
    torch.testing.assert_close(model[6].keep_prob, ydrop_keep_probs(score, 0.4))


def test_extreme_scores_still_keep_the_mean():
    scores = torch.linspace(0, 1, 400, device=DEVICE) ** 8
    keep = ydrop_keep_probs(scores, 0.25, scale=50.0, floor=0.3)
    assert keep.mean().item() == pytest.approx(0.75, abs=1e-6)


def test_trainer_takes_one_optimizer_step_per_call():
    torch.manual_seed(1)
    model = small_net().to(DEVICE)
    steps = []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.register_step_post_hook(lambda *a: steps.append(1))
    trainer = YDropTrainer(model, refresh_every=2)
    x, y = torch.randn(6, 2, 5, 5, device=DEVICE), torch.arange(6, device=DEVICE) % 3
    losses = [float(trainer.training_step(x, y, F.cross_entropy, opt)) for _ in range(5)]
    assert len(steps) == 5 and all(math.isfinite(v) for v in losses)
    with pytest.raises(ValueError, match="no YDrop"):
        YDropTrainer(nn.Linear(2, 2))
