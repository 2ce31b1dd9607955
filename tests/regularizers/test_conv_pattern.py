import math
import os

import pytest
import torch

from dropsearch.regularizers.conv_pattern import (
    PatternDropout2d,
    _pattern_mask_from_offsets,
    implied_drop_rate,
    pattern_mask,
)
from dropsearch.regularizers.pattern import ConvShape, SitePattern

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))

# The classic 8 x 8 ordered-dither (Bayer) matrix, written out by hand.
BAYER8 = [
    [0, 32, 8, 40, 2, 34, 10, 42],
    [48, 16, 56, 24, 50, 18, 58, 26],
    [12, 44, 4, 36, 14, 46, 6, 38],
    [60, 28, 52, 20, 62, 30, 54, 22],
    [3, 35, 11, 43, 1, 33, 9, 41],
    [51, 19, 59, 27, 49, 17, 57, 25],
    [15, 47, 7, 39, 13, 45, 5, 37],
    [63, 31, 55, 23, 61, 29, 53, 21],
]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def _active(rate: float, density: float) -> int:
    return min(64, math.floor(64 * rate / density + 0.5))


def _ref_keep(Y: int, X: int, t: ConvShape, m: int) -> float:
    pitch = t.size + t.stride
    cell = t.repeat * pitch
    Y, X = Y % (8 * cell), X % (8 * cell)
    on_square = (Y % pitch) < t.size and (X % pitch) < t.size
    return 0.0 if on_square and BAYER8[Y // cell][X // cell] < m else 1.0


def _ref_mask(t: ConvShape, rate: float, shape, offsets) -> torch.Tensor:
    """Naive loop over examples, channels and pixels, following the documented geometry in float64."""
    B, C, H, W = shape
    m = _active(rate, (t.size / (t.size + t.stride)) ** 2)
    c, s = math.cos(math.radians(t.rotate)), math.sin(math.radians(t.rotate))
    rot = [[c, -s], [s, c]]
    shear = [[1.0, t.shear_x], [t.shear_y, 1.0]]
    M = [[sum(rot[r][k] * shear[k][q] for k in range(2)) for q in range(2)] for r in range(2)]
    out = torch.ones(B, C, H, W)
    for b in range(B):
        for ch in range(C):
            oy, ox = offsets[b if t.share_c else b * C + ch]
            for i in range(H):
                for j in range(W):
                    x = M[0][0] * j + M[0][1] * i + 0.02
                    y = M[1][0] * j + M[1][1] * i + 0.02
                    out[b, ch, i, j] = _ref_keep(round(y) + oy, round(x) + ox, t, m)
    return out


REF_CASES = [
    (dict(size=3, stride=2, repeat=2), 0.3, (2, 3, 9, 11)),
    (dict(size=2, stride=1, repeat=1, share_c=False), 0.5, (2, 3, 8, 7)),
    (dict(size=1, stride=1, repeat=3, shear_x=0.3, shear_y=-0.15), 0.2, (3, 2, 10, 10)),
    (dict(size=4, stride=3, repeat=2, shear_x=-0.3, share_c=False), 0.4, (2, 2, 12, 9)),
    (dict(size=3, stride=1, repeat=2, rotate=30), 0.4, (3, 2, 12, 12)),
    (dict(size=2, stride=2, repeat=2, rotate=75, shear_x=0.15, shear_y=0.3, share_c=False), 0.2, (2, 3, 11, 13)),
]


@pytest.mark.parametrize("tokens,rate,shape", REF_CASES)
def test_mask_matches_naive_loop_reference(tokens, rate, shape):
    t = ConvShape(**tokens)
    B, C, H, W = shape
    n = B if t.share_c else B * C
    period = 8 * t.repeat * (t.size + t.stride)
    offsets = torch.randint(0, period, (n, 2), generator=torch.Generator().manual_seed(0))
    got = _pattern_mask_from_offsets(t, rate, shape, offsets.to(DEVICE)).cpu()
    want = _ref_mask(t, rate, shape, offsets.tolist())
    mismatch = (got != want).float().mean().item()
    if t.rotate == 0:
        assert mismatch == 0.0  # integer and shear-only positions stay away from rounding ties
    else:
        assert mismatch < 0.01  # float32 vs float64 rounding near ties only
    assert (want == 0).any() and (want == 1).any()


SWEEP = [
    dict(size=1, stride=1, repeat=1),
    dict(size=3, stride=2, repeat=2),
    dict(size=7, stride=1, repeat=1, rotate=45),
    dict(size=5, stride=4, repeat=3, shear_x=0.3),
    dict(size=2, stride=3, repeat=4, rotate=15, shear_y=-0.3),
    dict(size=4, stride=2, repeat=6, rotate=60, shear_x=-0.15, shear_y=0.15),
    dict(size=7, stride=4, repeat=8, rotate=75, shear_x=0.3, shear_y=0.3),
    dict(size=1, stride=4, repeat=2, rotate=30, shear_x=0.15),
]


@pytest.mark.parametrize("tokens", SWEEP)
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
def test_realized_drop_fraction_matches_implied_rate(tokens, rate):
    # per-channel offsets give B * C independent windows; one window of a 16 x 16 map is noisy for big cells
    pattern = {"rate": rate, **tokens, "share_c": False}
    shape = (64, 64, 16, 16)
    mask = pattern_mask(pattern, shape, generator=_gen(int(rate * 10) + len(tokens)), device=DEVICE)
    realized = 1.0 - mask.mean().item()
    assert abs(realized - implied_drop_rate(pattern, shape)) < 0.02


@pytest.mark.parametrize("tokens", SWEEP)
def test_implied_rate_is_exact_canvas_count_and_tracks_rate(tokens):
    t = ConvShape(**tokens)
    period = 8 * t.repeat * (t.size + t.stride)
    density = (t.size / (t.size + t.stride)) ** 2
    rows = torch.arange(period)
    pitch, cell = t.size + t.stride, t.repeat * (t.size + t.stride)
    on = (rows % pitch) < t.size
    bayer = torch.tensor(BAYER8)[(rows // cell)[:, None], (rows // cell)[None, :]]
    for rate in [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]:
        zeros = (on[:, None] & on[None, :] & (bayer < _active(rate, density))).sum().item()
        implied = implied_drop_rate({"rate": rate, **tokens}, (1, 1, 5, 5))
        assert implied == pytest.approx(zeros / period**2)
        assert abs(implied - min(rate, density)) <= density / 128 + 1e-12


def test_share_c_shares_across_channels_and_offsets_differ_per_example():
    shape = (16, 4, 12, 12)
    shared = pattern_mask({"rate": 0.3, "size": 2, "stride": 1}, shape, generator=_gen(0), device=DEVICE)
    assert torch.equal(shared, shared[:, :1].expand(shape))
    assert len({tuple(m.flatten().tolist()) for m in shared[:, 0]}) > 1
    own = pattern_mask({"rate": 0.3, "size": 2, "stride": 1, "share_c": False}, shape, generator=_gen(0))
    assert not torch.equal(own, own[:, :1].expand(shape))
    assert shared.device.type == DEVICE.type and shared.dtype == torch.float32


def test_module_mean_activation_and_per_example_rescale():
    m = PatternDropout2d(size=3, stride=1, repeat=2, rotate=30, shear_x=0.15, share_c=False, rate=0.3)
    ones = torch.ones(8, 4, 10, 10, device=DEVICE)
    out = m(ones, generator=_gen(1))
    sums = out.flatten(1).sum(1)  # per-example numel / kept keeps each example's sum
    all_dropped = (out.flatten(1) == 0).all(1)
    torch.testing.assert_close(sums[~all_dropped], torch.full_like(sums[~all_dropped], 400.0))
    x = torch.rand(8, 4, 10, 10, device=DEVICE) + 0.5
    gen = _gen(2)
    mean = torch.stack([m(x, generator=gen) for _ in range(200)]).mean().item()
    assert abs(mean / x.mean().item() - 1) < 0.02


def test_eval_identity_rate_zero_and_seeds():
    x = torch.randn(2, 3, 8, 8, device=DEVICE)
    assert PatternDropout2d(rate=0.5).eval()(x) is x
    assert PatternDropout2d(rate=0.0)(x) is x
    m = PatternDropout2d(size=2, stride=1, rate=0.3)
    a, b, c = m(x, generator=_gen(3)), m(x, generator=_gen(3)), m(x, generator=_gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_from_site_and_pattern_forms_agree():
    shape = {
        "size": 4,
        "stride": 2,
        "repeat": 3,
        "rotate": 15,
        "shear_x": 0.0,
        "shear_y": 0.3,
        "share_c": False,
        "residual": True,
    }
    site = SitePattern(site="layer1.0", rate=0.2, shape=shape)
    m = PatternDropout2d.from_site(site)
    assert m.residual is True and m.share_c is False and m.rate == 0.2 and m.repeat == 3
    assert "rotate=15" in repr(m) and "residual=True" in repr(m)
    dims = (4, 3, 9, 9)
    forms = [site, {"rate": 0.2, **shape}, {"rate": 0.2, "shape": shape}, {"rate": 0.2, "shape": ConvShape(**shape)}]
    masks = [pattern_mask(f, dims, generator=_gen(9), device=DEVICE) for f in forms]
    assert all(torch.equal(masks[0], other) for other in masks[1:])
    assert len({implied_drop_rate(f, dims) for f in forms}) == 1


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(rate=1.5), "1.5"),
        (dict(rate=-0.2), "-0.2"),
        (dict(size=0), "0"),
        (dict(repeat=2.5), "2.5"),
        (dict(shear_x=1.7), "1.7"),
        (dict(rotate=float("nan")), "nan"),
        (dict(share_c="yes"), "yes"),
    ],
)
def test_bad_tokens_raise_naming_value(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        PatternDropout2d(**kwargs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        PatternDropout2d()(torch.ones(2, 3, 4, device=DEVICE))
    with pytest.raises(ValueError, match="bogus"):
        pattern_mask({"rate": 0.1, "bogus": 1}, (1, 1, 4, 4))
    with pytest.raises(ValueError, match="rate"):
        pattern_mask({"size": 2}, (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        pattern_mask({"rate": 0.1}, (1, 4, 4))
    with pytest.raises(ValueError, match="1.95"):
        pattern_mask({"rate": 1.95}, (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\['rate', 0.1\]"):
        pattern_mask(["rate", 0.1], (1, 1, 4, 4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype):
    x = torch.ones(4, 2, 8, 8, device=DEVICE, dtype=dtype)
    out = PatternDropout2d(size=2, stride=1, rate=0.4)(x, generator=_gen(0))
    assert out.dtype == dtype and out.device == x.device and (out == 0).any()


def test_cpu_generator_with_device_tensor():
    x = torch.ones(2, 2, 8, 8, device=DEVICE)
    out = PatternDropout2d(size=2, stride=1, rate=0.4)(x, generator=torch.Generator().manual_seed(0))
    assert out.device == x.device
