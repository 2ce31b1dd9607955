import copy
import io
import os

import pytest
import torch
from torch import nn

from dropsearch.regularizers.large_dropout import LargeDropoutHead, freeze_batchnorm, is_batchnorm_frozen

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.BatchNorm1d(64)
    ).to(DEVICE)


def test_head_eval_is_plain_linear_and_train_drops_features():
    head = LargeDropoutHead(in_features=32, num_classes=5, p=0.9).to(DEVICE)
    x = torch.rand(256, 32, device=DEVICE) + 0.5
    torch.testing.assert_close(head.eval()(x), head.fc(x))
    head.train()
    features = head.dropout(x, generator=_gen(0))
    assert abs((features == 0).float().mean().item() - 0.9) < 0.02
    assert abs(features.mean().item() / x.mean().item() - 1) < 0.02
    logits = head(x, generator=_gen(0))
    torch.testing.assert_close(logits, head.fc(features))


def test_head_allows_p_099_and_validates():
    assert LargeDropoutHead(8, 2, p=0.99).p == 0.99
    with pytest.raises(ValueError, match="1.0"):
        LargeDropoutHead(8, 2, p=1.0)
    with pytest.raises(ValueError, match="-3"):
        LargeDropoutHead(-3, 2)
    head = LargeDropoutHead(8, 2)
    with pytest.raises(ValueError, match=r"\(4, 7\)"):
        head(torch.ones(4, 7))
    with pytest.raises(ValueError, match=r"\(4, 8, 1, 1\)"):
        head(torch.ones(4, 8, 1, 1))
    assert "p=0.900" in repr(head) and "num_classes=2" in repr(head)


def _stats(net):
    return [b.running_mean.clone() for b in net.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]


def test_unfrozen_batchnorm_updates_statistics():  # the control for the test below
    net = _net().train()
    before = _stats(net)
    net(torch.randn(8, 3, 6, 6, device=DEVICE))
    assert not any(torch.equal(a, b) for a, b in zip(before, _stats(net), strict=True))


def test_frozen_batchnorm_stays_in_eval_mode():
    net = freeze_batchnorm(_net())
    net.train()
    assert not net[1].training and not net[5].training
    assert net[0].training and net[4].training  # other modules follow train()
    before = _stats(net)
    x = torch.randn(8, 3, 6, 6, device=DEVICE)
    net(x)
    assert all(torch.equal(a, b) for a, b in zip(before, _stats(net), strict=True))
    # BN output in train mode equals its eval-mode output (running statistics are used)
    h = net[0](x)
    torch.testing.assert_close(
        net[1](h),
        nn.functional.batch_norm(
            h, net[1].running_mean, net[1].running_var, net[1].weight, net[1].bias, False, 0.0, net[1].eps
        ),
    )


def test_direct_training_flag_is_overridden_by_hook():
    net = freeze_batchnorm(_net())
    net[1].training = True  # code that bypasses train()
    before = _stats(net)
    net.train()(torch.randn(8, 3, 6, 6, device=DEVICE))
    assert all(torch.equal(a, b) for a, b in zip(before, _stats(net), strict=True))
    assert not net[1].training


def test_freeze_survives_copy_and_save_and_is_idempotent():
    net = freeze_batchnorm(freeze_batchnorm(_net()))
    assert len(net[1]._forward_pre_hooks) == 1 and is_batchnorm_frozen(net[1])
    clone = copy.deepcopy(net).train()
    assert not clone[1].training and clone[0].training
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).train()
    assert not loaded[1].training and not loaded[5].training


def test_freeze_affine_optional():
    net = freeze_batchnorm(_net())
    assert net[1].weight.requires_grad
    net = freeze_batchnorm(_net(), freeze_affine=True)
    assert not net[1].weight.requires_grad and not net[5].bias.requires_grad
    assert net[0].weight.requires_grad
    with pytest.raises(ValueError, match="str"):
        freeze_batchnorm("model")
