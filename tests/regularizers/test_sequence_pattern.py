import math
import os

import pytest
import torch

from dropsearch.regularizers.pattern import SequenceShape, SitePattern
from dropsearch.regularizers.sequence_pattern import (
    SequencePatternDropout,
    _sequence_mask_from_offsets,
    implied_drop_rate,
    sequence_pattern_mask,
)

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def _bit_reverse6(k: int) -> int:
    return int(format(k, "06b")[::-1], 2)


def _ref_mask(t: SequenceShape, rate: float, shape, offsets) -> torch.Tensor:
    """Naive loop: run k of a 64-run period is active when bitrev6(k) < m; positions t + offset."""
    B, T, C = shape
    pitch = t.size + t.stride
    m = min(64, math.floor(64 * rate / (t.size / pitch) + 0.5))
    out = torch.ones(B, T, C)
    for b in range(B):
        for c in range(C):
            o = offsets[b][0 if t.share else c]
            for pos in range(T):
                q = (pos + o) % (64 * pitch)
                if q % pitch < t.size and _bit_reverse6(q // pitch) < m:
                    out[b, pos, c] = 0.0
    return out


@pytest.mark.parametrize(
    "tokens,rate,shape",
    [
        (dict(size=1, stride=1), 0.2, (3, 40, 2)),
        (dict(size=3, stride=2, share=False), 0.4, (2, 30, 5)),
        (dict(size=2, stride=5, share=False), 0.1, (2, 90, 3)),
    ],
)
def test_mask_matches_naive_loop_reference(tokens, rate, shape):
    t = SequenceShape(**tokens)
    B, T, C = shape
    period = 64 * (t.size + t.stride)
    offsets = torch.randint(0, period, (B, 1 if t.share else C), generator=torch.Generator().manual_seed(1))
    got = _sequence_mask_from_offsets(t, rate, shape, offsets.to(DEVICE)).cpu()
    want = _ref_mask(t, rate, shape, offsets.tolist())
    assert torch.equal(got, want)
    assert (want == 0).any()


SWEEP = [dict(size=1, stride=1), dict(size=2, stride=2), dict(size=4, stride=1), dict(size=1, stride=6)]


@pytest.mark.parametrize("tokens", SWEEP)
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
@pytest.mark.parametrize("share", [True, False])
def test_realized_fraction_matches_implied_and_tracks_rate(tokens, rate, share):
    pattern = {"rate": rate, **tokens, "share": share}
    shape = (512, 24, 8) if share else (64, 24, 64)
    mask = sequence_pattern_mask(pattern, shape, generator=_gen(int(rate * 10)), device=DEVICE)
    implied = implied_drop_rate(pattern, shape)
    assert abs((1.0 - mask.mean().item()) - implied) < 0.02
    density = tokens["size"] / (tokens["size"] + tokens["stride"])
    assert abs(implied - min(rate, density)) <= density / 128 + 1e-12


def test_share_drops_whole_tokens():
    shape = (8, 20, 6)
    shared = sequence_pattern_mask({"rate": 0.3, "size": 2, "stride": 1}, shape, generator=_gen(0), device=DEVICE)
    assert torch.equal(shared, shared[:, :, :1].expand(shape))
    own = sequence_pattern_mask({"rate": 0.3, "size": 2, "stride": 1, "share": False}, shape, generator=_gen(0))
    assert not torch.equal(own, own[:, :, :1].expand(shape))
    # every dropped run that does not touch the ends is exactly `size` = 2 positions long
    for row in shared[:, :, 0].cpu().tolist():
        text = "".join("0" if v == 0 else "1" for v in row)
        inner = text.strip("0")
        assert all(len(run) == 2 for run in inner.split("1") if run)


def test_module_rescale_mean_eval_seeds():
    m = SequencePatternDropout(size=2, stride=2, share=False, rate=0.3)
    ones = torch.ones(6, 16, 8, device=DEVICE)
    sums = m(ones, generator=_gen(1)).flatten(1).sum(1)
    torch.testing.assert_close(sums, torch.full_like(sums, 128.0))  # per-example numel / kept
    x = torch.rand(6, 16, 8, device=DEVICE) + 0.5
    gen = _gen(2)
    mean = torch.stack([m(x, generator=gen) for _ in range(200)]).mean().item()
    assert abs(mean / x.mean().item() - 1) < 0.02
    assert m.eval()(x) is x
    assert SequencePatternDropout(rate=0.0)(x) is x
    m.train()
    a, b, c = m(x, generator=_gen(5)), m(x, generator=_gen(5)), m(x, generator=_gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_from_site_and_repr():
    site = SitePattern(site="blocks.0.ffn", rate=0.2, shape={"size": 3, "stride": 1, "share": False})
    m = SequencePatternDropout.from_site(site)
    assert (m.size, m.stride, m.share, m.rate) == (3, 1, False, 0.2)
    assert repr(m).endswith("(size=3, stride=1, share=False, rate=0.200)")
    assert implied_drop_rate(site, (1, 4, 1)) == implied_drop_rate({"rate": 0.2, "shape": site.shape}, (1, 4, 1))


def test_validation():
    with pytest.raises(ValueError, match="1.97"):
        SequencePatternDropout(rate=1.97)
    with pytest.raises(ValueError, match="-1"):
        SequencePatternDropout(size=-1)
    with pytest.raises(ValueError, match="maybe"):
        SequencePatternDropout(share="maybe")
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        SequencePatternDropout()(torch.ones(2, 8, device=DEVICE))
    with pytest.raises(ValueError, match="repeat"):
        sequence_pattern_mask({"rate": 0.1, "repeat": 2}, (1, 4, 1))
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        sequence_pattern_mask({"rate": 0.1}, (1, 4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype):
    x = torch.ones(4, 16, 8, device=DEVICE, dtype=dtype)
    out = SequencePatternDropout(size=2, stride=1, rate=0.4)(x, generator=_gen(0))
    assert out.dtype == dtype and out.device == x.device and (out == 0).any()
