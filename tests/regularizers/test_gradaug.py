"""GradAug training step: gradients checked against a hand-assembled loss (full CE + sum of KLs)."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers.gradaug import GradAug, check_resolutions, gradaug_kl, gradaug_step, sample_widths
from dropsearch.regularizers.slimmable import get_width, is_sliceable, make_sliceable, set_width

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))
torch.set_num_threads(1)


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return net.to(DEVICE).train()


class ResBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.short, self.bn_s = nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16)

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.bn_s(self.short(x)))


def batch(n: int = 8, size: int = 16, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g).to(DEVICE), torch.randint(10, (n,), generator=g).to(DEVICE)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def ref_forward(net: nn.Sequential, x: torch.Tensor, c1: int, c2: int) -> torch.Tensor:
    """small_cnn by hand with c1/c2 channels and batch-statistics batch norm (train mode)."""

    def bn(h, m, c):
        mean, var = h.mean(dim=(0, 2, 3), keepdim=True), h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + m.eps) * m.weight[:c, None, None] + m.bias[:c, None, None]

    h = F.relu(bn(F.conv2d(x, net[0].weight[:c1], net[0].bias[:c1], padding=1), net[1], c1))
    h = F.relu(bn(F.conv2d(h, net[3].weight[:c2, :c1], net[3].bias[:c2], padding=1), net[4], c2))
    return F.linear(h.mean(dim=(2, 3)), net[8].weight[:, :c2], net[8].bias)


def record_passes(net: nn.Sequential) -> list[dict]:
    """Hook the model: per forward pass, the input image it saw and its two conv widths."""
    passes: list[dict] = []
    net[0].register_forward_hook(lambda m, i, o: passes.append({"x": i[0].detach().clone(), "c1": o.shape[1]}))
    net[3].register_forward_hook(lambda m, i, o: passes[-1].update(c2=o.shape[1]))
    return passes


def test_sample_widths_contract():
    for seed in range(20):
        ws = sample_widths(0.8, 3, generator=torch.Generator().manual_seed(seed))
        assert len(ws) == 3 and ws[-1] == 0.8
        assert all(0.8 <= w <= 1.0 for w in ws) and ws == sorted(ws, reverse=True)
    u = torch.rand(4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected = sorted((0.6 + 0.4 * u).tolist(), reverse=True) + [0.6]
    assert sample_widths(0.6, 5, generator=torch.Generator().manual_seed(7)) == pytest.approx(expected)
    assert sample_widths(0.9, 1) == [0.9]
    a = sample_widths(0.5, 4, generator=torch.Generator().manual_seed(1))
    assert a == sample_widths(0.5, 4, generator=torch.Generator().manual_seed(1))
    assert a != sample_widths(0.5, 4, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.01, True, "0.8"])
def test_bad_min_width(bad):
    with pytest.raises(ValueError, match="min_width"):
        GradAug(small_cnn(), min_width=bad)
    with pytest.raises(ValueError, match="min_width"):
        gradaug_step(small_cnn(), None, *batch(), min_width=bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_n_subnets(bad):
    with pytest.raises(ValueError, match="n_subnets"):
        GradAug(small_cnn(), n_subnets=bad)


@pytest.mark.parametrize(
    "bad",
    [[], 32, [0], [-4], ["a"], [(3,)], [(8, 0)], [0.0], [-0.5], [float("nan")], [float("inf")], [True], "32", 0.5],
)
def test_bad_resolutions(bad):
    with pytest.raises(ValueError, match="resolutions"):
        GradAug(small_cnn(), resolutions=bad)
    with pytest.raises(ValueError, match="resolutions"):
        gradaug_step(small_cnn(), None, *batch(), resolutions=bad)


def test_resolutions_normalized():
    assert check_resolutions((32, (28, 24), 0.75)) == ((32, 32), (28, 24), 0.75)
    assert check_resolutions(None) is None


def test_kl_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    sub = torch.randn(5, 7, generator=g, requires_grad=True)
    full = torch.randn(5, 7, generator=g, requires_grad=True)
    p = torch.exp(full) / torch.exp(full).sum(1, keepdim=True)
    q = torch.exp(sub) / torch.exp(sub).sum(1, keepdim=True)
    hand = (p * (torch.log(p) - torch.log(q))).sum() / 5
    kl = gradaug_kl(sub, full)
    torch.testing.assert_close(kl, hand.detach())
    kl.backward()
    assert full.grad is None and sub.grad is not None
    torch.testing.assert_close(sub.grad, (q - p).detach() / 5)  # d KL / d sub-logits


@pytest.mark.parametrize(
    ("min_width", "resolutions"), [(0.5, (16, 12, (10, 14))), (0.8, None), (0.3, (20,)), (0.6, (1.0, 0.875, 0.75))]
)
def test_gradient_equals_hand_assembled_loss(min_width, resolutions):
    net = make_sliceable(small_cnn())
    ref = copy.deepcopy(net)
    passes = record_passes(net)
    x, y = batch()
    loss = gradaug_step(net, None, x, y, min_width=min_width, n_subnets=3, resolutions=resolutions, generator=gen())
    assert len(passes) == 4 and (passes[0]["c1"], passes[0]["c2"]) == (8, 16)
    assert torch.equal(passes[0]["x"], x)
    c2s = [p["c2"] for p in passes[1:]]
    assert c2s == sorted(c2s, reverse=True) and c2s[-1] == int(16 * min_width + 0.5)  # min width last
    assert all(int(16 * min_width + 0.5) <= c <= 16 for c in c2s)
    scales = {1.0: (16, 16), 0.875: (14, 14), 0.75: (12, 12)}  # by hand on 16x16 inputs
    allowed = (
        {(16, 16)} if resolutions is None else {(r, r) if isinstance(r, int) else scales.get(r, r) for r in resolutions}
    )
    if resolutions is not None:
        assert any(tuple(p["x"].shape[-2:]) != (16, 16) for p in passes[1:])  # some sub-network input was resized
    for p in passes[1:]:
        size = tuple(p["x"].shape[-2:])
        assert size in allowed
        expected_x = x if size == (16, 16) else F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        torch.testing.assert_close(p["x"], expected_x)

    full = ref_forward(ref, x, 8, 16)
    total = F.cross_entropy(full, y)
    q_full = F.softmax(full.detach(), dim=1)
    for p in passes[1:]:
        sub = ref_forward(ref, p["x"], p["c1"], p["c2"])
        total = total + F.kl_div(F.log_softmax(sub, dim=1), q_full, reduction="batchmean")
    grads = torch.autograd.grad(total, list(ref.parameters()))
    torch.testing.assert_close(loss, F.cross_entropy(full, y).detach(), rtol=1e-5, atol=1e-6)
    for (name, param), g in zip(net.named_parameters(), grads, strict=True):
        torch.testing.assert_close(param.grad, g, rtol=1e-4, atol=1e-6, msg=name)


def test_one_optimizer_step_after_zero_grad():
    x, y = batch()
    free = make_sliceable(small_cnn())
    gradaug_step(free, None, x, y, resolutions=(16, 12), generator=gen(5))
    net = small_cnn()
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=1.0)  # built before the conversion GradAug does
    steps = []
    opt.register_step_post_hook(lambda *_: steps.append(1))
    for p in net.parameters():
        p.grad = torch.full_like(p, 1e3)  # stale gradients must be zeroed first
    aug = GradAug(net, resolutions=(16, 12), generator=gen(5))
    assert aug.converted and is_sliceable(net)
    aug.training_step(x, y, F.cross_entropy, optimizer=opt)
    assert len(steps) == 1
    for p0, p, pf in zip(before, net.parameters(), free.parameters(), strict=True):
        torch.testing.assert_close(p, p0 - pf.grad)  # one SGD step with lr 1 on the fresh gradient


def test_running_stats_updated_by_full_pass_only():
    net = make_sliceable(small_cnn())
    ref = copy.deepcopy(net)
    x, y = batch()
    for _ in range(2):
        GradAug(net, min_width=0.3, resolutions=(16, 12)).training_step(x, y, F.cross_entropy)
        ref(x)  # one full-width forward in train mode per step
    for (name, b), rb in zip(net.named_buffers(), ref.buffers(), strict=True):
        assert torch.equal(b, rb), name
    assert int(net[1].num_batches_tracked) == 2


def test_width_restored_on_errors():
    net = small_cnn()
    aug = GradAug(net, resolutions=(12,), generator=gen())
    set_width(net, 0.7)
    aug.training_step(*batch(), F.cross_entropy)
    assert get_width(net) == 1.0

    def failing_loss(logits, targets):
        raise RuntimeError("loss failed")

    with pytest.raises(RuntimeError, match="loss failed"):
        aug.training_step(*batch(), failing_loss)
    assert get_width(net) == 1.0
    flat = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 16 * 16, 10))
    with pytest.raises(ValueError, match="flatten"):  # the sub-network pass fails at width < 1
        GradAug(flat.to(DEVICE), resolutions=None).training_step(*batch(), F.cross_entropy)
    assert get_width(flat) == 1.0


def test_already_sliceable_and_empty_models():
    net = make_sliceable(small_cnn(), input_layers=["0"], output_layers=["8"])
    assert not GradAug(net).converted
    with pytest.raises(ValueError, match="no Conv2d"):
        GradAug(nn.Sequential(nn.Flatten()))


def test_residual_model_step_and_upsampling():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), ResBlock(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).to(DEVICE)  # fmt: skip
    x, y = batch()
    loss = GradAug(net, min_width=0.55, resolutions=(20, 12), generator=gen()).training_step(x, y)
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_training_reduces_loss():
    net = small_cnn()
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    aug = GradAug(net, resolutions=(16, 12), generator=gen())
    x, y = batch(n=16)
    losses = [float(aug.training_step(x, y, F.cross_entropy, optimizer=opt)) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]
