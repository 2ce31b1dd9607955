import os

import pytest
import torch

from dropsearch.regularizers.bernoulli import BernoulliDropout, bernoulli_dropout

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def test_eval_and_zero_rate_are_identity():
    x = torch.randn(4, 8, device=DEVICE)
    m = BernoulliDropout(0.5).eval()
    assert m(x) is x
    assert bernoulli_dropout(x, 0.5, training=False) is x
    assert bernoulli_dropout(x, 0.0, generator=_gen(0)) is x


@pytest.mark.parametrize("use_generator", [True, False])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_fraction_scale_and_mean(p, use_generator):
    torch.manual_seed(0)
    x = torch.rand(200, 1000, device=DEVICE) + 0.5  # strictly positive: zeros in the output are drops
    gen = _gen(1) if use_generator else None
    out = bernoulli_dropout(x, p, generator=gen)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - p) < 0.02
    kept = ~dropped
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    assert abs(out.mean().item() / x.mean().item() - 1) < 0.02


def test_same_seed_same_mask_different_seed_different_mask():
    x = torch.ones(64, 64, device=DEVICE)
    a = bernoulli_dropout(x, 0.3, generator=_gen(7))
    b = bernoulli_dropout(x, 0.3, generator=_gen(7))
    c = bernoulli_dropout(x, 0.3, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1, "x"])
def test_bad_rate_raises_naming_value(p):
    with pytest.raises(ValueError, match=str(p)):
        BernoulliDropout(p)
    with pytest.raises(ValueError, match=str(p)):
        bernoulli_dropout(torch.ones(3), p)


def test_non_tensor_input_raises():
    with pytest.raises(ValueError, match="list"):
        bernoulli_dropout([1.0, 2.0], 0.1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_dtype_and_device(dtype):
    x = torch.ones(32, 32, device=DEVICE, dtype=dtype)
    out = BernoulliDropout(0.5)(x, generator=_gen(0))
    assert out.dtype == dtype and out.device == x.device
    assert set(out.unique().float().tolist()) <= {0.0, 2.0}


def test_module_repr_and_training_flag():
    m = BernoulliDropout(0.25)
    assert "p=0.250" in repr(m)
    x = torch.ones(1000, device=DEVICE)
    assert (m(x, generator=_gen(0)) == 0).any()
