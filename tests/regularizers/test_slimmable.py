"""Width-sliced layers: checked against plain torch layers built from the sliced weights."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers.slimmable import (
    SlicedBatchNorm2d,
    SlicedConv2d,
    SlicedLinear,
    get_width,
    is_sliceable,
    make_sliceable,
    set_width,
    sliced_channels,
    width,
)

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))
torch.set_num_threads(1)

# hand-computed round-half-up channel counts for the widths used below
CHANNELS = {
    (8, 1.0): 8, (16, 1.0): 16,
    (8, 0.8): 6, (16, 0.8): 13,  # 6.4, 12.8
    (8, 0.55): 4, (16, 0.55): 9,  # 4.4, 8.8
    (8, 0.3): 2, (16, 0.3): 5,  # 2.4, 4.8
}  # fmt: skip
WIDTHS = (1.0, 0.8, 0.55, 0.3)


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).to(DEVICE)  # fmt: skip


class ResBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.short, self.bn_s = nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.bn_s(self.short(x)))


def res_net() -> nn.Sequential:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), ResBlock(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    for m in net.modules():  # non-trivial affine parameters so slicing mistakes show
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return net.to(DEVICE)


def x16(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(3)).to(DEVICE)


def bn_batch(h, bn, c):
    """Batch-statistics normalization of the first c channels, written out by hand."""
    mean = h.mean(dim=(0, 2, 3), keepdim=True)
    var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + bn.eps) * bn.weight[:c, None, None] + bn.bias[:c, None, None]


def ref_res_net(net: nn.Sequential, x: torch.Tensor, w: float) -> torch.Tensor:
    """Independent forward of res_net at width w from the plain weights (batch statistics in every BN)."""
    a, b = CHANNELS[(8, w)], CHANNELS[(16, w)]
    stem, bn0, blk, fc = net[0], net[1], net[3], net[6]
    h = F.relu(bn_batch(F.conv2d(x, stem.weight[:a], stem.bias[:a], padding=1), bn0, a))
    r = F.relu(bn_batch(F.conv2d(h, blk.conv1.weight[:b, :a], padding=1), blk.bn1, b))
    r = bn_batch(F.conv2d(r, blk.conv2.weight[:b, :b], padding=1), blk.bn2, b)
    s = bn_batch(F.conv2d(h, blk.short.weight[:b, :a]), blk.bn_s, b)
    return F.linear(F.relu(r + s).mean(dim=(2, 3)), fc.weight[:, :b], fc.bias)


@pytest.mark.parametrize(
    ("c", "w", "expected"), [(10, 0.8, 8), (16, 0.55, 9), (16, 0.5, 8), (10, 0.25, 3), (3, 0.1, 1)]
)
def test_sliced_channels_round_half_up(c, w, expected):
    assert sliced_channels(c, w) == expected


def test_hooked_channel_counts_per_width():
    net = make_sliceable(small_cnn()).train()
    seen = []
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)):
            m.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].shape[1], out.shape[1])))
    for w in WIDTHS:
        seen.clear()
        with width(net, w):
            net(x16())
        a, b = CHANNELS[(8, w)], CHANNELS[(16, w)]
        # input conv keeps 3 input channels, classifier keeps all 10 classes
        assert seen == [(3, a), (a, a), (a, b), (b, b), (b, 10)]


def test_default_flags_and_overrides():
    net = make_sliceable(small_cnn())
    assert (net[0].slice_in, net[0].slice_out) == (False, True)
    assert (net[3].slice_in, net[3].slice_out) == (True, True)
    assert (net[8].slice_in, net[8].slice_out) == (True, False)
    other = make_sliceable(small_cnn(), input_layers=["0", "3"], output_layers=[])
    assert not other[3].slice_in and other[8].slice_out
    fully_conv = make_sliceable(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 5, 1)))
    assert not fully_conv[2].slice_out  # no linear layer: the last conv is the output layer
    with pytest.raises(ValueError, match="'1'"):
        make_sliceable(small_cnn(), input_layers=["1"])  # a BatchNorm, not a conv/linear
    with pytest.raises(ValueError, match="'nope'"):
        make_sliceable(small_cnn(), output_layers=["nope"])


@pytest.mark.parametrize("build", [small_cnn, res_net])
def test_width_one_is_identical_to_original(build):
    original = build()
    converted = copy.deepcopy(original)
    params_before = [id(p) for p in converted.parameters()]
    make_sliceable(converted)
    assert is_sliceable(converted) and not is_sliceable(original)
    assert [id(p) for p in converted.parameters()] == params_before  # an existing optimizer stays valid
    assert all(isinstance(m, (SlicedConv2d, SlicedBatchNorm2d, SlicedLinear)) for m in converted.modules()
               if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)))  # fmt: skip
    sd_a, sd_b = original.state_dict(), converted.state_dict()
    assert list(sd_a) == list(sd_b) and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    x = x16()
    assert torch.equal(original.train()(x), converted.train()(x))
    assert torch.equal(original.eval()(x), converted.eval()(x))
    sd_a, sd_b = original.state_dict(), converted.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)  # same running-stat updates


@pytest.mark.parametrize("w", WIDTHS[1:])
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_sliced_conv_equals_plain_conv_from_sliced_weights(w, mode):
    torch.manual_seed(0)
    conv = SlicedConv2d(8, 16, 3, stride=2, padding=1, padding_mode=mode).to(DEVICE)
    a, b = CHANNELS[(8, w)], CHANNELS[(16, w)]
    plain = nn.Conv2d(a, b, 3, stride=2, padding=1, padding_mode=mode).to(DEVICE)
    with torch.no_grad():
        plain.weight.copy_(conv.weight[:b, :a])
        plain.bias.copy_(conv.bias[:b])
    x = torch.randn(2, a, 9, 9, device=DEVICE)
    with width(conv, w):
        out = conv(x)
    torch.testing.assert_close(out, plain(x), rtol=1e-5, atol=1e-6)


def test_depthwise_conv_follows_its_input():
    torch.manual_seed(0)
    conv = SlicedConv2d(16, 16, 3, padding=1, groups=16).to(DEVICE)
    plain = nn.Conv2d(9, 9, 3, padding=1, groups=9).to(DEVICE)
    with torch.no_grad():
        plain.weight.copy_(conv.weight[:9])
        plain.bias.copy_(conv.bias[:9])
    x = torch.randn(2, 9, 6, 6, device=DEVICE)
    with width(conv, 0.55):
        torch.testing.assert_close(conv(x), plain(x), rtol=1e-5, atol=1e-6)


def test_grouped_conv_is_refused():
    with pytest.raises(ValueError, match="groups=2"):
        SlicedConv2d(8, 16, 3, groups=2)
    with pytest.raises(ValueError, match="'1.conv'"):
        make_sliceable(_named_grouped())


def _named_grouped() -> nn.Module:
    inner = nn.Module()
    inner.conv = nn.Conv2d(8, 8, 3, groups=4)
    return nn.Sequential(nn.Conv2d(3, 8, 1), inner)


@pytest.mark.parametrize("w", [0.8, 0.3])
def test_sliced_linear_equals_plain_linear(w):
    torch.manual_seed(0)
    fc = SlicedLinear(16, 8).to(DEVICE)
    a, b = CHANNELS[(16, w)], CHANNELS[(8, w)]
    x = torch.randn(5, a, device=DEVICE)
    with width(fc, w):
        out = fc(x)
    torch.testing.assert_close(out, x @ fc.weight[:b, :a].T + fc.bias[:b])
    head = SlicedLinear(16, 10, slice_out=False).to(DEVICE)
    with width(head, w):
        assert head(x).shape == (5, 10)


@pytest.mark.parametrize("train", [True, False])
def test_sliced_bn_uses_batch_stats_and_never_touches_running_stats(train):
    torch.manual_seed(0)
    bn = SlicedBatchNorm2d(16).to(DEVICE).train(train)
    nn.init.uniform_(bn.weight, 0.5, 1.5)
    nn.init.uniform_(bn.bias, -0.5, 0.5)
    bn.running_mean.fill_(0.3)
    bn.running_var.fill_(2.0)
    buffers = {k: v.clone() for k, v in bn.named_buffers()}
    x = torch.randn(6, 9, 5, 5, device=DEVICE) * 3 + 1
    with width(bn, 0.55):
        out = bn(x)
    torch.testing.assert_close(out, bn_batch(x, bn, 9), rtol=1e-4, atol=1e-5)
    for k, v in bn.named_buffers():
        assert torch.equal(v, buffers[k]), k


def test_sliced_bn_at_width_one_updates_like_plain_bn():
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(16).to(DEVICE)
    sliced = make_sliceable(copy.deepcopy(plain))
    assert isinstance(sliced, SlicedBatchNorm2d)
    x = torch.randn(6, 16, 5, 5, device=DEVICE) * 3 + 1
    assert torch.equal(plain(x), sliced(x))
    assert torch.equal(plain.running_mean, sliced.running_mean) and not torch.all(sliced.running_mean == 0)
    assert torch.equal(plain.running_var, sliced.running_var)
    assert int(sliced.num_batches_tracked) == 1


def test_model_running_stats_only_change_at_full_width():
    net = make_sliceable(small_cnn()).train()
    before = {k: v.clone() for k, v in net.named_buffers()}
    for w in WIDTHS[1:]:
        with width(net, w):
            net(x16())
    after = dict(net.named_buffers())
    assert all(torch.equal(after[k], before[k]) for k in before)
    net(x16())
    after = dict(net.named_buffers())
    for k in before:
        assert not torch.equal(after[k], before[k]), k  # running_mean, running_var, num_batches_tracked


@pytest.mark.parametrize("w", WIDTHS)
def test_residual_block_matches_independent_reference(w):
    net = make_sliceable(res_net()).train()
    x = x16()
    with width(net, w):
        out = net(x)
    ref = ref_res_net(net, x, w)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert out.shape == (4, 10)


def test_flatten_head_is_refused_below_full_width():
    torch.manual_seed(0)
    net = make_sliceable(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)))
    x = torch.randn(2, 3, 4, 4)
    assert net(x).shape == (2, 10)
    with width(net, 0.8), pytest.raises(ValueError, match="flatten"):
        net(x)  # 13 channels * 16 positions = 208 features, neither 256 nor round(256 * 0.8) = 205


def test_width_context_restores_and_validates():
    net = make_sliceable(small_cnn())
    set_width(net, 0.7)
    with pytest.raises(RuntimeError, match="boom"), width(net, 0.5):
        assert get_width(net) == 0.5
        raise RuntimeError("boom")
    assert get_width(net) == 0.7
    for bad in (0, 0.0, -0.5, 1.5, True, "1"):
        with pytest.raises(ValueError, match="width"):
            set_width(net, bad)
    net[0].width = 0.9
    with pytest.raises(ValueError, match="one width"):
        get_width(net)


def test_repr_shows_flags():
    assert "slice_in=False" in repr(make_sliceable(small_cnn())[0])
