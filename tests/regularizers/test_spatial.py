import os

import pytest
import torch

from dropsearch.regularizers.spatial import SpatialDropout, spatial_dropout

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def test_eval_and_zero_rate_are_identity():
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    assert SpatialDropout(0.5).eval()(x) is x
    assert spatial_dropout(x, 0.0) is x
    assert spatial_dropout(x, 0.4, training=False) is x


@pytest.mark.parametrize("shape", [(64, 64, 3, 5), (64, 64, 7)])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_whole_channels_dropped_at_rate(shape, p):
    torch.manual_seed(0)
    x = torch.rand(shape, device=DEVICE) + 0.5
    out = spatial_dropout(x, p, generator=_gen(3))
    flat_out, flat_x = out.flatten(2), x.flatten(2)
    dropped = (flat_out == 0).all(dim=2)  # (B, C)
    # every channel is either entirely zero or entirely kept and scaled by 1 / (1 - p)
    assert torch.equal((flat_out == 0).any(dim=2), dropped)
    torch.testing.assert_close(flat_out[~dropped], flat_x[~dropped] / (1 - p))
    assert abs(dropped.float().mean().item() - p) < 0.02


def test_mean_over_many_masks_matches_input():
    x = torch.rand(8, 4, 5, 5, device=DEVICE) + 0.5
    gen = _gen(11)
    outs = torch.stack([spatial_dropout(x, 0.3, generator=gen) for _ in range(400)])
    assert abs(outs.mean().item() / x.mean().item() - 1) < 0.02


def test_seeds():
    x = torch.ones(16, 16, 2, 2, device=DEVICE)
    a, b = spatial_dropout(x, 0.5, generator=_gen(1)), spatial_dropout(x, 0.5, generator=_gen(1))
    c = spatial_dropout(x, 0.5, generator=_gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_wrong_rank_and_bad_rate():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        SpatialDropout(0.1)(torch.ones(2, 3, device=DEVICE))
    with pytest.raises(ValueError, match="1.2"):
        SpatialDropout(1.2)
    with pytest.raises(ValueError, match="-0.5"):
        spatial_dropout(torch.ones(2, 3, 4, device=DEVICE), -0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype):
    x = torch.ones(4, 8, 3, 3, device=DEVICE, dtype=dtype)
    out = SpatialDropout(0.5)(x, generator=_gen(0))
    assert out.dtype == dtype and out.device == x.device
    assert set(out.unique().float().tolist()) <= {0.0, 2.0}
    assert "p=0.500" in repr(SpatialDropout(0.5))
