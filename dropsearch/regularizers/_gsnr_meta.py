"""Meta-learning of the GSNR dropout ratio by a finite difference over p (our choice; arXiv 2310.07361).

One meta step: split the batch into meta-train / meta-test (a held-out source domain when ``domains`` holds
two or more domains, random halves otherwise); for ``q`` in ``{p + delta, p - delta}`` (clipped to
``[0, p_max]``) take one inner SGD step on meta-train with the top-``q`` GSNR weights zeroed (masked weights get no
gradient), then measure the meta-test loss with every module in eval mode; the slope
``(L(q+) - L(q-)) / (q+ - q-)`` estimates ``dL/dp``. Every parameter and buffer (BatchNorm running statistics
included) is restored bit for bit afterwards, and no ``.grad`` is touched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dropsearch.regularizers._gsnr_mask import gsnr_masks, masked_weights

__all__ = ["meta_split", "meta_ratio_slope"]


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def meta_split(
    batch: int, domains: torch.Tensor | None, device: torch.device, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of meta-train and meta-test examples.

    Args:
        batch: the batch size B (at least 2).
        domains: per-example domain ids (B,) or ``None``.
        device: where the index tensors live.
        generator: random source for the held-out domain / the permutation.

    Returns:
        ``(train_idx, test_idx)``, 1-D long tensors.
    """
    if batch < 2:
        raise ValueError(f"the meta step needs a batch of at least 2 examples, got {batch}")
    if domains is not None:
        ids = domains.unique()
        if ids.numel() >= 2:
            pick = int(torch.randint(ids.numel(), (1,), generator=generator, device=_gen_device(generator)))
            held_out = domains == ids[pick]
            return (~held_out).nonzero().squeeze(1).to(device), held_out.nonzero().squeeze(1).to(device)
    perm = torch.randperm(batch, generator=generator, device=_gen_device(generator)).to(device)
    return perm[: batch // 2], perm[batch // 2 :]


def meta_ratio_slope(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    gsnr: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    p: float,
    p_max: float,
    delta: float,
    inner_lr: float,
    domains: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """Finite-difference estimate of d(meta-test loss)/dp (see the module docstring).

    Returns:
        The slope; 0.0 when ``p + delta`` and ``p - delta`` clip to the same value.
    """
    train_idx, test_idx = meta_split(inputs.shape[0], domains, inputs.device, generator)
    q_hi, q_lo = min(p + delta, p_max), max(p - delta, 0.0)
    if q_hi <= q_lo:
        return 0.0
    params = [(n, t) for n, t in model.named_parameters() if t.requires_grad]
    state = [t for _, t in model.named_parameters()] + [b for _, b in model.named_buffers()]
    snapshot = [t.detach().clone() for t in state]
    modes = [(m, m.training) for m in model.modules()]
    losses = []
    try:
        for q in (q_hi, q_lo):
            masks = gsnr_masks(gsnr, q)
            with masked_weights(model, masks):
                inner = loss_fn(model(inputs[train_idx]), targets[train_idx])
                grads = torch.autograd.grad(inner, [t for _, t in params], allow_unused=True)
            with torch.no_grad():
                for (name, t), g in zip(params, grads, strict=True):
                    if g is not None:
                        t.sub_(g.masked_fill(masks[name], 0) if name in masks else g, alpha=inner_lr)
            model.eval()
            with torch.no_grad():
                losses.append(float(loss_fn(model(inputs[test_idx]), targets[test_idx])))
            for m, mode in modes:
                m.training = mode
            with torch.no_grad():
                for t, s in zip(state, snapshot, strict=True):
                    t.copy_(s)
    finally:
        for m, mode in modes:
            m.training = mode
        with torch.no_grad():
            for t, s in zip(state, snapshot, strict=True):
                t.copy_(s)
    return (losses[0] - losses[1]) / (q_hi - q_lo)
