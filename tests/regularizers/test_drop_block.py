import os

import pytest
import torch

from dropsearch.regularizers.drop_block import (
    DropBlock2d,
    _expand_seeds,
    drop_block_2d,
    expected_drop_rate,
    seed_rate,
)

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def _naive_block_mask(seeds: torch.Tensor, bs: int, H: int, W: int) -> torch.Tensor:
    """Loop over seed positions: a seed at (i, j) zeroes rows i..i+bs-1 and columns j..j+bs-1."""
    keep = torch.ones(seeds.shape[0], seeds.shape[1], H, W)
    for b, c, i, j in seeds.nonzero().tolist():
        keep[b, c, i : i + bs, j : j + bs] = 0.0
    return keep


@pytest.mark.parametrize("bs", [1, 2, 3, 4])
def test_seed_expansion_matches_naive_loop(bs):
    H, W = 7, 9
    seeds = (torch.rand(2, 3, H - bs + 1, W - bs + 1, generator=torch.Generator().manual_seed(bs)) < 0.15).float()
    got = 1.0 - _expand_seeds(seeds.to(DEVICE), bs).cpu()
    assert torch.equal(got, _naive_block_mask(seeds, bs, H, W))


def test_every_dropped_pixel_lies_in_a_whole_dropped_block_inside_the_map():
    H, W, bs = 9, 8, 3
    x = torch.rand(4, 3, H, W, device=DEVICE) + 0.5
    out = drop_block_2d(x, 0.3, bs, generator=_gen(0)).cpu()
    dropped = out == 0
    assert dropped.any()
    # naive reference: a zero pixel must be covered by some all-zero bs x bs block fully inside the map
    covered = torch.zeros_like(dropped)
    for i in range(H - bs + 1):
        for j in range(W - bs + 1):
            block_all = dropped[:, :, i : i + bs, j : j + bs].flatten(2).all(dim=2)  # (B, C)
            covered[:, :, i : i + bs, j : j + bs] |= block_all[:, :, None, None]
    assert torch.equal(covered, dropped)
    kept = ~dropped
    scale = dropped.numel() / kept.sum().item()  # numel / kept over the batch
    torch.testing.assert_close(out[kept], (x.cpu() * scale)[kept])


def test_seed_rate_formula():
    assert seed_rate(0.1, 3, 16, 16) == pytest.approx(0.1 / 9 * 256 / 196)
    assert seed_rate(0.2, 5, 3, 8) == pytest.approx(0.2 / 9 * 24 / 6)  # block clipped to 3
    assert seed_rate(0.9, 7, 7, 7) == pytest.approx(0.9)  # one block position: gamma == p


@pytest.mark.parametrize("p,bs", [(0.1, 3), (0.1, 5), (0.2, 3), (0.3, 3), (0.5, 5)])
def test_realized_fraction_matches_expectation(p, bs):
    H = W = 16
    x = torch.ones(128, 16, H, W, device=DEVICE)
    out = drop_block_2d(x, p, bs, generator=_gen(int(p * 100) + bs))
    realized = (out == 0).float().mean().item()
    assert abs(realized - expected_drop_rate(p, bs, H, W)) < 0.01
    if p <= 0.1:
        assert abs(realized - p) < 0.02  # the paper's gamma is accurate at low rates


def test_mean_activation_preserved():
    x = torch.rand(64, 8, 12, 12, device=DEVICE) + 0.5
    out = DropBlock2d(0.2, 3)(x, generator=_gen(5))
    assert abs(out.mean().item() / x.mean().item() - 1) < 0.02


def test_eval_identity_and_zero_rate():
    x = torch.randn(2, 2, 6, 6, device=DEVICE)
    assert DropBlock2d(0.3).eval()(x) is x
    assert drop_block_2d(x, 0.0, 3) is x


def test_seeds():
    x = torch.ones(8, 4, 10, 10, device=DEVICE)
    a, b = drop_block_2d(x, 0.2, 3, generator=_gen(1)), drop_block_2d(x, 0.2, 3, generator=_gen(1))
    c = drop_block_2d(x, 0.2, 3, generator=_gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_block_larger_than_map_is_clipped():
    x = torch.ones(256, 1, 2, 3, device=DEVICE)
    out = drop_block_2d(x, 0.3, 7, generator=_gen(0))
    rows = (out == 0).flatten(1)
    # a 2 x 2 block on a 2 x 3 map covers column 1 whenever it is placed
    assert rows.any() and torch.equal(rows.any(dim=1), rows[:, [1, 4]].all(dim=1))


def test_validation():
    with pytest.raises(ValueError, match="1.0"):
        DropBlock2d(1.0)
    with pytest.raises(ValueError, match="0"):
        DropBlock2d(0.1, block_size=0)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        DropBlock2d(0.1)(torch.ones(2, 3, 4, device=DEVICE))
    assert "block_size=5" in repr(DropBlock2d(0.1, 5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype):
    x = torch.ones(4, 4, 8, 8, device=DEVICE, dtype=dtype)
    out = DropBlock2d(0.2)(x, generator=_gen(0))
    assert out.dtype == dtype and out.device == x.device and (out == 0).any()
