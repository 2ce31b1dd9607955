"""Y-Drop: dropout whose per-unit drop probability grows with the unit's conductance.

Georgiou, Paraskevopoulos, Potamianos 2024, arXiv 2409.09088. Units (features of a (B, F) input, channels of a
(B, C, H, W) input) that carry more of the target logit (higher conductance,
:func:`~dropsearch.regularizers.conductance.layer_conductance`) are dropped more often, so the network cannot lean
on a few units. Our choices (the paper leaves them open):

- ``keep = clamp(sigmoid(logit(1 - p) - scale * zscore(score) + shift), floor, 1)`` with ``score`` the batch mean
  of the conductance; ``shift`` is solved by bisection so that ``mean(keep) == 1 - p`` exactly, so the realized
  drop fraction stays at ``p`` (the effective floor is ``min(floor, 1 - p)``, otherwise no solution exists);
- the keep probabilities are smoothed with an EMA across refreshes (the first refresh sets them directly); the
  mean of an EMA of vectors with mean ``1 - p`` stays ``1 - p``;
- kept units are rescaled by ``1 / keep`` (per unit), so the expected activation is unchanged;
- before the first refresh the module is Bernoulli(``p``) dropout with ``1 / (1 - p)`` scaling; eval mode is the
  identity;
- ``keep_prob`` is a **non-persistent** buffer (it is re-estimated from data every refresh, and its size is only
  known at the first refresh): a restored checkpoint behaves as Bernoulli(``p``) until the next refresh.

:class:`YDropTrainer` refreshes every ``refresh_every`` steps: one batched conductance pass
(``steps + 1`` path points, dropout off) attributing the output of every :class:`YDrop` module, which in eval mode
is the identity, so its output is the layer output ``h`` it regularizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dropsearch.regularizers._checks import check_positive_int, check_rank
from dropsearch.regularizers.conductance import METHODS, layers_conductance
from dropsearch.regularizers.pattern import check_rate

__all__ = ["ydrop_keep_probs", "y_drop", "YDrop", "YDropTrainer"]


def ydrop_keep_probs(scores: torch.Tensor, p: float, *, scale: float = 1.0, floor: float = 0.3) -> torch.Tensor:
    """Per-unit keep probabilities from importance scores, with mean exactly ``1 - p`` (see the module docstring).

    Args:
        scores: one score per unit; higher scores get lower keep probabilities.
        p: the mean drop probability, in ``[0, 1)``.
        scale: how strongly the z-scored score moves the logit. Default: 1.0.
        floor: lowest keep probability (capped at ``1 - p``). Default: 0.3.

    Shape:
        - scores: (U,)
        - Output: (U,), values in ``[min(floor, 1 - p), 1]``, mean ``1 - p``.

    Returns:
        The keep probabilities (float32 or the scores' floating dtype).
    """
    check_rate(p, name="p")
    check_rank(scores, (1,), name="scores")
    s = scores.detach().to(torch.float64)
    if p == 0.0:
        return torch.ones_like(scores, dtype=torch.get_default_dtype())
    std = s.std(unbiased=False) if s.numel() > 1 else s.new_zeros(())
    z = (s - s.mean()) / std if std > 0 else torch.zeros_like(s)
    logits = math.log((1 - p) / p) - scale * z
    lo_keep = min(floor, 1.0 - p)
    bound = float(logits.abs().max()) + 40.0  # beyond it every sigmoid saturates: mean keep is lo_keep or 1
    lo, hi = s.new_tensor(-bound), s.new_tensor(bound)
    frac = torch.linspace(0.0, 1.0, 65, dtype=s.dtype, device=s.device)
    for _ in range(8):  # 64-way bisection of the logit shift (mean keep increases with it): 2 * bound / 64^8 wide
        grid = lo + (hi - lo) * frac  # (65,)
        means = torch.sigmoid(logits.unsqueeze(0) + grid.unsqueeze(1)).clamp(lo_keep, 1.0).mean(1)  # (65,)
        above = (means < 1 - p).sum().clamp(1, 64)  # grid[above - 1] is too low (or the first), grid[above] not
        lo, hi = grid[above - 1], grid[above]
    keep = torch.sigmoid(logits + (lo + hi) / 2).clamp(lo_keep, 1.0)
    dtype = scores.dtype if scores.is_floating_point() else torch.get_default_dtype()
    return keep.to(dtype)


def y_drop(
    x: torch.Tensor, keep: torch.Tensor, training: bool = True, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Drop each unit of each example with probability ``1 - keep[unit]``; scale kept units by ``1 / keep``.

    Args:
        x: (B, U) or (B, U, H, W) activations; units are dim 1 (whole channels of a feature map).
        keep: per-unit keep probabilities in ``(0, 1]``.
        training: apply the mask; ``False`` returns ``x``. Default: ``True``.
        generator: random source of the mask (on ``x``'s device).

    Shape:
        - x: (B, U) or (B, U, H, W); keep: (U,)
        - Output: same as ``x``.

    Returns:
        The masked, rescaled activations.
    """
    check_rank(x, (2, 4), name="x")
    if keep.shape != (x.shape[1],):
        raise ValueError(
            f"keep must have shape ({x.shape[1]},) for x of shape {tuple(x.shape)}, got {tuple(keep.shape)}"
        )
    if not training:
        return x
    B, U = x.shape[:2]
    keep = keep.to(device=x.device, dtype=x.dtype)
    draw_device = generator.device if generator is not None else x.device  # a CPU generator may seed CUDA masks
    mask = torch.rand((B, U), generator=generator, device=draw_device).to(x.device) < keep  # (B, U)
    factor = mask.to(x.dtype) / keep
    return x * factor.view(B, U, *([1] * (x.ndim - 2)))


class YDrop(nn.Module):
    """Conductance-biased dropout of features or channels (Y-Drop, arXiv 2409.09088).

    Args:
        p: mean drop probability, in ``[0, 1)``. Default: 0.5.
        scale: strength of the conductance bias. Default: 1.0.
        floor: lowest keep probability. Default: 0.3.
        ema: weight of the old keep probabilities at a refresh, in ``[0, 1)``. Default: 0.9.
        generator: random source of the masks.

    Shape:
        - Input: (B, F) or (B, C, H, W)
        - Output: same as input.

    Examples::

        >>> drop = YDrop(p=0.5)
        >>> drop.update_scores(torch.tensor([0.0, 1.0, 2.0, 3.0]))
        >>> round(float(drop.keep_prob.mean()), 4)
        0.5
        >>> drop(torch.ones(2, 4, 3, 3)).shape
        torch.Size([2, 4, 3, 3])
    """

    keep_prob: torch.Tensor | None

    def __init__(
        self,
        p: float = 0.5,
        *,
        scale: float = 1.0,
        floor: float = 0.3,
        ema: float = 0.9,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.p = check_rate(p, name="p")
        if not 0.0 < floor <= 1.0:
            raise ValueError(f"floor must be in (0, 1], got {floor!r}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema!r}")
        self.scale, self.floor, self.ema = float(scale), float(floor), float(ema)
        self.generator = generator
        self.register_buffer("keep_prob", None, persistent=False)

    def update_scores(self, scores: torch.Tensor) -> None:
        """Refresh the keep probabilities from per-unit scores (e.g. batch-mean conductance), with EMA smoothing.

        Args:
            scores: one score per unit, shape (U,).
        """
        keep = ydrop_keep_probs(scores, self.p, scale=self.scale, floor=self.floor)
        if self.keep_prob is not None:
            if self.keep_prob.shape != keep.shape:
                raise ValueError(f"scores must have shape {tuple(self.keep_prob.shape)}, got {tuple(scores.shape)}")
            keep = self.ema * self.keep_prob + (1 - self.ema) * keep.to(self.keep_prob)
        self.keep_prob = keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop units with the current keep probabilities in training mode; identity in eval mode."""
        check_rank(x, (2, 4), name="x")
        if not self.training or self.p == 0.0:
            return x
        keep = self.keep_prob if self.keep_prob is not None else x.new_full((x.shape[1],), 1.0 - self.p)
        return y_drop(x, keep, True, generator=self.generator)

    def extra_repr(self) -> str:
        """The settings shown by ``print(module)``."""
        return f"p={self.p}, scale={self.scale}, floor={self.floor}, ema={self.ema}"


class YDropTrainer:
    """Training-step helper that refreshes every :class:`YDrop` module of a model from conductance.

    Every ``refresh_every`` steps (at steps ``refresh_every, 2 * refresh_every, ...``; the first steps run as
    Bernoulli dropout) the batch-mean conductance of each YDrop module's units (its input ``h``) for the target
    logit is computed in one batched pass (:func:`~dropsearch.regularizers.conductance.layers_conductance`) and
    passed to :meth:`YDrop.update_scores`; then a plain forward/backward runs.

    Args:
        model: a network containing :class:`YDrop` modules.
        refresh_every: steps between refreshes (K). Default: 10.
        steps: conductance path intervals (S). Default: 5.
        method: conductance point placement (captum's ``method``). Default: ``"riemann_trapezoid"``.
        refresh_batch: use only the first ``refresh_batch`` examples of the batch for the conductance pass (it
            costs about ``steps + 1`` forwards and a backward of ``steps + 1`` times that many rows); ``None`` uses
            the whole batch. The default 16 keeps the amortized cost at a refresh every 10 steps within 1.3x a
            plain-dropout step for batches of 32 and more (``benchmarks/regularizers.py``); the batch-mean score
            of 16 examples is further averaged over refreshes by the modules' EMA. Default: 16.

    Shape:
        - inputs: (B, ...); targets: (B,) class indices.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        refresh_every: int = 10,
        steps: int = 5,
        method: str = "riemann_trapezoid",
        refresh_batch: int | None = 16,
    ) -> None:
        self.model = model
        self.modules = [m for m in model.modules() if isinstance(m, YDrop)]
        if not self.modules:
            raise ValueError(f"model {type(model).__name__} contains no YDrop module")
        self.refresh_every = check_positive_int(refresh_every, name="refresh_every")
        self.steps = check_positive_int(steps, name="steps")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.refresh_batch = None if refresh_batch is None else check_positive_int(refresh_batch, name="refresh_batch")
        self.step = 0

    def refresh(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Recompute every YDrop module's keep probabilities from this batch's conductance."""
        if self.refresh_batch is not None:
            inputs, targets = inputs[: self.refresh_batch], targets[: self.refresh_batch]
        conds = layers_conductance(self.model, self.modules, inputs, targets, steps=self.steps, method=self.method)
        for module, cond in zip(self.modules, conds, strict=True):
            module.update_scores(cond.mean(0))

    def training_step(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.Tensor:
        """Refresh when due, then one forward/backward (and ``zero_grad`` + one ``step`` if an optimizer is given).

        Returns:
            The detached loss.
        """
        if self.step > 0 and self.step % self.refresh_every == 0:
            self.refresh(inputs, targets)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(self.model(inputs), targets)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        self.step += 1
        return loss.detach()
