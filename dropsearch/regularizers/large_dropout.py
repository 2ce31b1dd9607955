"""Very-large dropout fine-tuning (Zhang and Bottou 2024, "Fine-tuning with very large dropout", arXiv 2403.00946).

A pre-trained backbone is fine-tuned with ``Dropout(p ~ 0.9)`` on its pooled penultimate features, right before a
new linear head, and nowhere else; BatchNorm stays frozen in eval mode. :class:`LargeDropoutHead` is that head and
:func:`freeze_batchnorm` the BatchNorm freeze.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from dropsearch.regularizers._checks import check_positive_int, check_rank, check_rate
from dropsearch.regularizers.bernoulli import BernoulliDropout

__all__ = ["LargeDropoutHead", "freeze_batchnorm", "is_batchnorm_frozen"]

_FROZEN_FLAG = "_dropsearch_bn_frozen"


class LargeDropoutHead(nn.Module):
    """``Dropout(p)`` on pooled features followed by a new ``Linear`` classifier (arXiv 2403.00946).

    Args:
        in_features: size of the pooled feature vector.
        num_classes: number of output classes.
        p: feature drop probability, in ``[0, 1)`` (the paper uses 0.9; up to 0.99 is fine). Default: 0.9

    Shape:
        - Input: ``(B, in_features)``
        - Output: ``(B, num_classes)``

    Examples::

        >>> head = LargeDropoutHead(in_features=16, num_classes=3, p=0.9)
        >>> head(torch.randn(4, 16)).shape
        torch.Size([4, 3])
    """

    def __init__(self, in_features: int, num_classes: int, p: float = 0.9) -> None:
        super().__init__()
        self.in_features = check_positive_int(in_features, name="in_features")
        self.num_classes = check_positive_int(num_classes, name="num_classes")
        self.dropout = BernoulliDropout(check_rate(p, name="p"))  # regularization
        self.fc = nn.Linear(self.in_features, self.num_classes)

    @property
    def p(self) -> float:
        """The feature drop probability."""
        return self.dropout.p

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Drop features (training mode only), then classify."""
        check_rank(x, (2,))
        if x.shape[1] != self.in_features:
            raise ValueError(f"x must be (B, {self.in_features}), got a tensor of shape {tuple(x.shape)}")
        return self.fc(self.dropout(x, generator=generator))

    def extra_repr(self) -> str:
        """The settings shown by ``print(module)``."""
        return f"in_features={self.in_features}, num_classes={self.num_classes}, p={self.p:.3f}"


def _eval_only_train(module: nn.Module, mode: bool = True) -> nn.Module:
    """Replacement for ``module.train``: whatever ``mode`` is asked for, stay in eval mode."""
    return nn.Module.train(module, False)


def _force_eval_pre_hook(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: undo any direct ``module.training = True`` before the forward runs."""
    module.training = False


def freeze_batchnorm(model: nn.Module, *, freeze_affine: bool = False) -> nn.Module:
    """Keep every BatchNorm of ``model`` in eval mode, even after ``model.train()`` (arXiv 2403.00946).

    Each BatchNorm (any ``_BatchNorm``: 1d/2d/3d, lazy and synchronized variants) is put in eval mode; its
    ``train`` is replaced, on the instance, by one that always selects eval mode (so ``model.train()`` leaves
    ``bn.training == False``), and a forward pre-hook resets ``training`` to ``False`` in case code sets the
    attribute directly. Running statistics are therefore used and never updated. Both replacements are
    module-level functions, so the model still pickles, deep-copies and saves. Calling it twice is harmless.

    Args:
        model: the network (modified in place).
        freeze_affine: also stop gradients of the BatchNorm weight and bias. Default: ``False``

    Returns:
        ``model``.

    Examples::

        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> net = freeze_batchnorm(net).train()
        >>> net[1].training
        False
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    for module in model.modules():
        if not isinstance(module, _BatchNorm):
            continue
        if not getattr(module, _FROZEN_FLAG, False):
            module.train = functools.partial(_eval_only_train, module)  # instance attribute shadows the method
            module.register_forward_pre_hook(_force_eval_pre_hook)
            setattr(module, _FROZEN_FLAG, True)
        nn.Module.train(module, False)
        if freeze_affine:
            for param in (module.weight, module.bias):
                if param is not None:
                    param.requires_grad_(False)
    return model


def is_batchnorm_frozen(module: nn.Module) -> bool:
    """Whether :func:`freeze_batchnorm` has frozen this BatchNorm module."""
    return bool(getattr(module, _FROZEN_FLAG, False))
