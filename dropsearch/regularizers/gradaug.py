"""GradAug: regularize a network with randomly sliced, input-transformed sub-networks (arXiv 2006.07989).

Yang, Zhu and Chen, "GradAug: A New Regularization Method for Deep Neural Networks", NeurIPS 2020; reference code
``taoyang1122/GradAug`` (``train_cifar.py``). One training step:

1. the full network (width 1) on the batch, cross-entropy loss, backward;
2. ``n_subnets`` sub-networks, widest first: ``n_subnets - 1`` widths drawn uniformly from ``[min_width, 1]``
   and then ``min_width`` itself. Each sees the batch bilinearly resized to a resolution drawn from
   ``resolutions`` and is pulled to the full network's prediction by
   ``KL(softmax(full logits, detached) || softmax(sub logits))`` (``batchmean``, weight 1), backward after each
   sub-network so only one graph is alive at a time;
3. at most one ``optimizer.step()``.

Draw order with a ``generator`` (a reproducibility contract): ``torch.rand(n_subnets - 1)`` for the widths, then
one ``torch.randint`` per sub-network (widest first) for its resolution. Widths are set through
:mod:`dropsearch.regularizers.slimmable`; batch norm at width < 1 uses batch statistics and never updates the
running statistics. Cost: about 2.7-2.8x the FLOPs of a plain step (n=3); inference is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers._checks import check_positive_int, check_rank
from dropsearch.regularizers.slimmable import is_sliceable, make_sliceable, set_width, width

__all__ = ["GradAug", "gradaug_step", "gradaug_kl", "sample_widths", "check_resolutions"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Resolution = int | float | tuple[int, int]


def check_resolutions(resolutions: Sequence[Resolution] | None) -> tuple[tuple[int, int] | float, ...] | None:
    """Normalize ``resolutions`` to ``(H, W)`` sizes and float scale factors; ``None`` stays ``None``.

    An int ``s`` becomes the size ``(s, s)``, a pair stays an ``(H, W)`` size, and a float stays a scale factor
    of the input's sides, rounded half up (``0.875`` on 32x32 inputs gives 28x28).

    Raises:
        ValueError: naming ``resolutions`` when it is empty, not a sequence, or holds a non-positive size or
            a scale that is not a positive finite float.
    """
    if resolutions is None:
        return None
    if isinstance(resolutions, (int, float, str, bytes)) or not isinstance(resolutions, Sequence) or not resolutions:
        raise ValueError(f"resolutions must be a non-empty sequence of sizes or None, got {resolutions!r}")
    out: list[tuple[int, int] | float] = []
    for r in resolutions:
        if isinstance(r, float):
            if not (math.isfinite(r) and r > 0):
                raise ValueError(f"resolutions scale factors must be positive and finite, got {r!r} in {resolutions!r}")
            out.append(r)
            continue
        hw = (r, r) if isinstance(r, int) else tuple(r) if isinstance(r, Sequence) else ()
        if len(hw) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in hw):
            raise ValueError(
                f"resolutions must hold positive ints, (H, W) pairs or scales, got {r!r} in {resolutions!r}"
            )
        out.append(hw)
    return tuple(out)


def _check_min_width(min_width: float) -> float:
    if isinstance(min_width, bool) or not isinstance(min_width, (int, float)) or not 0.0 < min_width <= 1.0:
        raise ValueError(f"min_width must be in (0, 1], got {min_width!r}")
    return float(min_width)


def sample_widths(min_width: float, n_subnets: int, *, generator: torch.Generator | None = None) -> list[float]:
    """Draw the sub-network widths of one step, widest first; the last one is always ``min_width``.

    Args:
        min_width: smallest width, in (0, 1].
        n_subnets: number of sub-networks, >= 1.
        generator: random source. Default: ``None`` (the global one)

    Returns:
        ``n_subnets`` floats: ``n_subnets - 1`` uniform draws from ``[min_width, 1]`` sorted descending, then
        ``min_width``.
    """
    min_width = _check_min_width(min_width)
    n_subnets = check_positive_int(n_subnets, name="n_subnets")
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(n_subnets - 1, generator=generator, device=device, dtype=torch.float64)
    drawn = sorted((min_width + (1.0 - min_width) * u).tolist(), reverse=True)
    return drawn + [min_width]


def gradaug_kl(sub_logits: torch.Tensor, full_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(full_logits) || softmax(sub_logits))`` averaged over the batch; no gradient to the full logits.

    Shape:
        - sub_logits: (B, K)
        - full_logits: (B, K)
        - Output: scalar
    """
    target = F.softmax(full_logits.detach(), dim=1)
    return F.kl_div(F.log_softmax(sub_logits, dim=1), target, reduction="batchmean")


def _resize(x: torch.Tensor, res: tuple[int, int] | float | None, align_corners: bool) -> torch.Tensor:
    if res is None:
        return x
    B, C, H, W = x.shape
    size = res if isinstance(res, tuple) else (max(1, int(H * res + 0.5)), max(1, int(W * res + 0.5)))
    if (H, W) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def gradaug_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: LossFn = F.cross_entropy,
    min_width: float = 0.8,
    n_subnets: int = 3,
    resolutions: Sequence[Resolution] | None = (32, 28, 24),
    align_corners: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run one GradAug training step; see :class:`GradAug` for details.

    ``model`` is converted with :func:`~dropsearch.regularizers.slimmable.make_sliceable` when it still holds
    plain ``Conv2d``/``BatchNorm2d``/``Linear`` layers. Gradients accumulate into ``.grad``; with an
    ``optimizer`` they are zeroed first and exactly one ``optimizer.step()`` follows.

    Args:
        model: the network (in training mode, as a rule); its width is 1 again on return, also after an error.
        optimizer: optimizer to zero and step, or ``None`` to only accumulate gradients.
        inputs: image batch.
        targets: labels for ``loss_fn``.
        loss_fn: loss of the full network. Default: ``F.cross_entropy``
        min_width: smallest sub-network width, in (0, 1]. Default: 0.8
        n_subnets: number of sub-networks per step, >= 1. Default: 3
        resolutions: sizes (ints or (H, W) pairs) or scale factors of the input sides (floats, e.g.
            ``(1.0, 0.875, 0.75)``) the sub-networks' inputs are resized to, or ``None`` to keep the input size.
            Default: ``(32, 28, 24)``
        align_corners: ``align_corners`` of the bilinear resize (the reference code uses ``True``). Default: True
        generator: random source for widths and resolutions. Default: ``None``

    Shape:
        - inputs: (B, C, H, W) (any shape the model takes when ``resolutions`` is ``None``)
        - targets: what ``loss_fn`` takes, e.g. (B,) class indices
        - Output: scalar, the full network's loss (detached)
    """
    sizes = check_resolutions(resolutions)
    widths = sample_widths(min_width, n_subnets, generator=generator)
    if sizes is not None:
        check_rank(inputs, (4,), name="inputs")
    if not is_sliceable(model):
        make_sliceable(model)
    if optimizer is not None:
        optimizer.zero_grad()
    set_width(model, 1.0)  # sub-network widths are set by a context manager that restores 1
    full_logits = model(inputs)
    loss = loss_fn(full_logits, targets)
    loss.backward()
    full_logits = full_logits.detach()
    device = generator.device if generator is not None else "cpu"
    for w in widths:  # widest first
        size = None
        if sizes is not None:
            size = sizes[int(torch.randint(len(sizes), (1,), generator=generator, device=device))]
        with width(model, w):
            sub_logits = model(_resize(inputs, size, align_corners))
        gradaug_kl(sub_logits, full_logits).backward()  # frees this sub-network's graph
    if optimizer is not None:
        optimizer.step()
    return loss.detach()


class GradAug:
    """GradAug training step holder (Yang et al., NeurIPS 2020, arXiv 2006.07989).

    ``__init__`` converts ``model`` in place with :func:`~dropsearch.regularizers.slimmable.make_sliceable`
    when it still holds plain ``Conv2d``/``BatchNorm2d``/``Linear`` layers (parameters keep their identity, so
    an existing optimizer stays valid); call ``make_sliceable`` yourself first to choose the input/output
    layers. ``converted`` records whether ``__init__`` converted the model.

    Args:
        model: a classifier; see the limitations in :mod:`dropsearch.regularizers.slimmable`.
        min_width: smallest sub-network width ``alpha`` (CIFAR 0.8, ImageNet 0.9), in (0, 1]. Default: 0.8
        n_subnets: sub-networks per step, >= 1. Default: 3
        resolutions: sizes for the sub-networks' inputs (CIFAR (32, 28, 24), ImageNet (224, 192, 160, 128)),
            floats as scale factors of the input sides (``(1.0, 0.875, 0.75)`` is CIFAR's list for any input
            size), or ``None`` to keep the input size. Default: ``(32, 28, 24)``
        align_corners: ``align_corners`` of the bilinear resize. Default: ``True``
        generator: random source for widths and resolutions. Default: ``None``

    Shape:
        - inputs: (B, C, H, W)
        - Output of ``training_step``: scalar, the full network's loss

    Examples::

        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(8, 4))
        >>> step = GradAug(net, resolutions=(16, 12))
        >>> loss = step.training_step(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        min_width: float = 0.8,
        n_subnets: int = 3,
        resolutions: Sequence[Resolution] | None = (32, 28, 24),
        align_corners: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        self.min_width = _check_min_width(min_width)
        self.n_subnets = check_positive_int(n_subnets, name="n_subnets")
        self.resolutions = check_resolutions(resolutions)
        self.align_corners = align_corners
        self.generator = generator
        self.converted = not is_sliceable(model)
        if self.converted:
            make_sliceable(model)
        if not is_sliceable(model):
            raise ValueError(f"model has no Conv2d, BatchNorm2d or Linear layer to slice: {type(model).__name__}")
        self.model = model

    def training_step(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        loss_fn: LossFn = F.cross_entropy,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.Tensor:
        """Run one GradAug step (full pass + sub-networks, backward each) and return the full network's loss.

        Args:
            inputs: image batch.
            targets: labels for ``loss_fn``.
            loss_fn: loss of the full network. Default: ``F.cross_entropy``
            optimizer: zeroed before and stepped once after, if given. Default: ``None``
        """
        return gradaug_step(
            self.model,
            optimizer,
            inputs,
            targets,
            loss_fn=loss_fn,
            min_width=self.min_width,
            n_subnets=self.n_subnets,
            resolutions=self.resolutions,
            align_corners=self.align_corners,
            generator=self.generator,
        )

    def __repr__(self) -> str:
        return (
            f"GradAug(min_width={self.min_width}, n_subnets={self.n_subnets}, resolutions={self.resolutions}, "
            f"align_corners={self.align_corners})"
        )
