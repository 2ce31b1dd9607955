"""Gradient signal-to-noise ratio (GSNR) of each scalar parameter over a batch.

GSNR of scalar parameter ``j`` (Liu et al. 2020, arXiv 2001.07384; used by GSNR dropout, Michalkiewicz et al.
2023, arXiv 2310.07361)::

    GSNR_j = mean_b(g_bj) ** 2 / (var_b(g_bj) + eps)

with ``g_bj`` the gradient of example ``b``'s loss. ``var`` is the **unbiased** (Bessel-corrected) estimate of the
per-example gradient variance. Three estimators:

- ``"per_example"``: exact per-example gradients with ``torch.func`` (``functional_call`` + ``vmap(grad)``),
  processed in ``chunks`` pieces to bound memory (B x the gradient memory otherwise).
- ``"microbatch"``: ``chunks`` micro-batch mean gradients (one plain backward each, ``torch.autograd.grad``);
  their spread is rescaled to estimate the per-example variance (``var`` of micro-batch means times the
  micro-batch size). About the cost of one full-batch backward; holds ``chunks`` gradients at once, and reduces
  them in cache-sized blocks (two passes: mean, then spread).
- ``"domain"``: one gradient per source domain (``domains`` gives each example's domain), rescaled the same way.

For groups ``d`` of sizes ``n_d`` (per-example: all 1) with mean gradients ``g_d``, ``N = sum n_d`` and ``G``
groups: ``mean = sum_d n_d g_d / N`` and ``var = sum_d n_d (g_d - mean) ** 2 / (G - 1)``, an unbiased estimate of
the per-example variance (for equal sizes ``m`` it is ``m`` times the unbiased variance of the group means).

The pass runs the model in eval mode (BatchNorm uses its running statistics, which do not couple the examples of a
batch and are not updated; dropout is off); every module's mode is restored afterwards. No ``.grad`` is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from dropsearch.regularizers._checks import check_positive_int

__all__ = ["ESTIMATORS", "GSNRStats", "default_gsnr_params", "gsnr_stats", "parameter_gsnr"]

ESTIMATORS = ("per_example", "microbatch", "domain")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class GSNRStats:
    """What one GSNR pass measures.

    Args:
        gsnr: parameter name -> GSNR tensor shaped like the parameter.
        mean_grad: parameter name -> mean per-example gradient (eval-mode model, unmasked weights).
        loss: the mean eval-mode loss over the examples used (detached scalar).
    """

    gsnr: dict[str, torch.Tensor]
    mean_grad: dict[str, torch.Tensor]
    loss: torch.Tensor


def default_gsnr_params(model: nn.Module, *, exclude: Sequence[str] | None = None) -> list[str]:
    """Names of the weights GSNR dropout acts on: conv and linear weights except the final classifier.

    The final classifier is the last ``nn.Linear`` in module order (``model.named_modules()``). Biases, norm
    layers and frozen weights are never included.

    Args:
        model: the network.
        exclude: parameter names to leave out instead of the last linear layer's weight. Default: ``None``
            (exclude the last ``nn.Linear``'s weight); pass ``()`` to keep every conv/linear weight.

    Returns:
        Parameter names in module order.
    """
    weighted = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and module.weight.requires_grad
    ]
    if exclude is None:
        linears = [name for name, module in weighted if isinstance(module, nn.Linear)]
        exclude = [f"{linears[-1]}.weight" if linears[-1] else "weight"] if linears else []
    names = [f"{name}.weight" if name else "weight" for name, _ in weighted]
    return [n for n in names if n not in set(exclude)]


def _groups(
    x: torch.Tensor, y: torch.Tensor, estimator: str, chunks: int, domains: torch.Tensor | None
) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """Split the batch into pieces ``(xg, yg, m)``: ``xg`` is ``(c, m, ...)``, ``c`` groups of ``m`` examples."""
    B = x.shape[0]
    if estimator == "per_example":
        if B < 2:
            raise ValueError(f"per-example GSNR needs a batch of at least 2 examples, got {B}")
        return [
            (xc.unsqueeze(1), yc.unsqueeze(1), 1)
            for xc, yc in zip(x.tensor_split(chunks), y.tensor_split(chunks), strict=True)
            if xc.shape[0] > 0
        ]
    if estimator == "microbatch":
        if chunks < 2 or B < chunks:
            raise ValueError(f"chunks must be in [2, batch size {B}] for the microbatch estimator, got {chunks}")
        return [
            (xc.unsqueeze(0), yc.unsqueeze(0), xc.shape[0])
            for xc, yc in zip(x.tensor_split(chunks), y.tensor_split(chunks), strict=True)
        ]
    if domains is None or domains.shape[:1] != x.shape[:1]:
        raise ValueError(f"the domain estimator needs domains of shape ({B},), got {domains!r}")
    ids = domains.unique()
    if ids.numel() < 2:
        raise ValueError(f"the domain estimator needs at least 2 domains in the batch, got {ids.tolist()}")
    out = []
    for d in ids:  # one gradient per source domain (a few domains, not examples)
        idx = (domains == d).nonzero().squeeze(1)
        out.append((x[idx].unsqueeze(0), y[idx].unsqueeze(0), idx.numel()))
    return out


#: Elements per block of :func:`_weighted_moments` (1 MiB of float32): a block of every group's gradient stays in
#: the CPU cache across the few passes over it.
_BLOCK = 1 << 18


def _weighted_moments(
    groups: list[torch.Tensor], weights: list[float], eps: float, in_place: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and GSNR of one parameter from its ``G`` group-mean gradients, in cache-sized blocks.

    ``mean = sum_d w_d g_d / N`` and ``var = sum_d w_d (g_d - mean) ** 2 / (G - 1)`` (two passes, so no
    cancellation when the variance is small against the mean, which is exactly where GSNR is high); the blocks
    make each pass read memory once instead of streaming every whole gradient per operation.

    With ``in_place`` (contiguous groups that share no memory and that nothing else reads: the caller's scratch),
    the mean is written over ``groups[0]`` and the GSNR over ``groups[1]`` (each block once every group's block
    has been read), so no fresh parameter-sized outputs are allocated (on the CPU their first touch, page faults,
    costs as much as the arithmetic). Same values either way.

    Shape:
        - groups: ``G >= 2`` tensors shaped like the parameter
        - Output: (mean, gsnr), each shaped like the parameter
    """
    total = float(sum(weights))
    flats = [g.reshape(-1) for g in groups]
    numel = flats[0].numel()
    # three block-sized scratch buffers, reused: each op writes into a buffer (or a block of the outputs)
    mean_buf = torch.empty(min(numel, _BLOCK), dtype=flats[0].dtype, device=flats[0].device)
    diff_buf = torch.empty_like(mean_buf)
    m2_buf = torch.empty_like(mean_buf)
    mean_out = flats[0] if in_place else torch.empty_like(flats[0])
    gsnr_out = flats[1] if in_place else torch.empty_like(flats[0])
    for start in range(0, numel, _BLOCK):
        block = [f[start : start + _BLOCK] for f in flats]
        size = block[0].numel()
        mean = torch.mul(block[0], weights[0] / total, out=mean_buf[:size])
        for g, w in zip(block[1:], weights[1:], strict=True):
            mean.add_(g, alpha=w / total)
        m2 = m2_buf[:size].zero_()
        diff = diff_buf[:size]
        for g, w in zip(block, weights, strict=True):
            torch.sub(g, mean, out=diff)
            m2.addcmul_(diff, diff, value=w)
        m2.div_(len(groups) - 1).add_(eps)
        # every group's block is read: the outputs may now overwrite groups[0] and groups[1] there
        torch.mul(mean, mean, out=gsnr_out[start : start + size]).div_(m2)
        mean_out[start : start + size].copy_(mean)
    return mean_out.view_as(groups[0]), gsnr_out.view_as(groups[0])


def _grouped_moments(
    pieces: Iterable[tuple[list[torch.Tensor], int, int]], eps: float
) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """Mean, GSNR and total weight from one mean gradient per group (``c == 1`` pieces of ``m`` examples)."""
    collected = list(pieces)
    weights = [float(m) for _, _, m in collected]
    per_param = [[grads[i][0] for grads, _, _ in collected] for i in range(len(collected[0][0]))]
    # the gradients are fresh autograd outputs, scratch once reduced: write the outputs over them unless two share
    # memory (autograd may hand one tensor to two parameters, e.g. ``w1 + w2``) or one is not contiguous
    flat = [g for groups in per_param for g in groups]
    in_place = all(g.is_contiguous() for g in flat) and len({g.untyped_storage().data_ptr() for g in flat}) == len(flat)
    moments = [_weighted_moments(groups, weights, eps, in_place) for groups in per_param]
    return [mean for mean, _ in moments], [gsnr for _, gsnr in moments], sum(weights)


def _streamed_moments(
    pieces: Iterable[tuple[list[torch.Tensor], int, int]], eps: float
) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """Mean, GSNR and total weight from pieces of ``c`` gradients each, by Chan's parallel update (bounded memory)."""
    total, n_groups = 0.0, 0
    mean: list[torch.Tensor] = []
    m2: list[torch.Tensor] = []
    for g, c, m in pieces:
        w_b = float(c * m)
        mu_b = [t[0] for t in g] if c == 1 else [t.mean(0) for t in g]
        if c > 1:  # the spread inside this piece
            m2_b = torch._foreach_sub(g, [t.unsqueeze(0) for t in mu_b])
            m2_b = [t.square().sum(0) for t in m2_b]
            torch._foreach_mul_(m2_b, float(m))
        if not mean:  # the first piece: its statistics are the running ones (no copies)
            mean, m2 = mu_b, m2_b if c > 1 else [torch.zeros_like(t) for t in mu_b]
        else:  # Chan's parallel update of the weighted mean and M2, fused over all parameters
            new_total = total + w_b
            torch._foreach_sub_(mu_b, mean)  # in place (fresh tensors): the offset from the running mean
            delta = mu_b
            torch._foreach_add_(mean, delta, alpha=w_b / new_total)
            if c > 1:
                torch._foreach_add_(m2, m2_b)
            torch._foreach_addcmul_(m2, delta, delta, value=total * w_b / new_total)
        total, n_groups = total + w_b, n_groups + c
    torch._foreach_div_(m2, float(n_groups - 1))  # the unbiased per-example variance ...
    torch._foreach_add_(m2, eps)  # ... plus eps: the denominator, computed in place
    gsnr = torch._foreach_mul(mean, mean)
    torch._foreach_div_(gsnr, m2)
    return mean, gsnr, total


def _set_eval(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    return modes


def _restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    for m, mode in modes:
        m.training = mode


def gsnr_stats(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    estimator: str = "per_example",
    chunks: int = 8,
    eps: float = 1e-8,
    params: Sequence[str] | None = None,
    domains: torch.Tensor | None = None,
) -> GSNRStats:
    """GSNR, mean gradient and loss of the chosen parameters over a batch (see the module docstring).

    Args:
        model: the network; called as ``model(x)``.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` with mean (or sum) reduction over its batch.
        inputs: the batch.
        targets: the batch's targets (first dimension B).
        estimator: ``"per_example"``, ``"microbatch"`` or ``"domain"``. Default: ``"per_example"``.
        chunks: per-example: number of vmap chunks (bounds memory); microbatch: number of micro-batches K.
            Default: 8.
        eps: added to the variance. Default: 1e-8.
        params: parameter names; default :func:`default_gsnr_params`.
        domains: per-example domain ids, for ``estimator="domain"``.

    Shape:
        - inputs: (B, ...); targets: (B, ...); domains: (B,)
        - Output: each GSNR and mean gradient is shaped like its parameter.

    Returns:
        :class:`GSNRStats`.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    chunks = check_positive_int(chunks, name="chunks")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    names = list(default_gsnr_params(model) if params is None else params)
    named = dict(model.named_parameters())
    unknown = [n for n in names if n not in named or not named[n].requires_grad]
    if unknown or not names:
        raise ValueError(f"params must name trainable parameters of the model, got {unknown or names!r}")
    selected = {n: named[n].detach() for n in names}
    frozen = {n: t.detach() for n, t in named.items() if n not in selected}
    frozen.update({n: t.detach() for n, t in model.named_buffers()})

    def group_loss(sel: dict[str, torch.Tensor], xg: torch.Tensor, yg: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, (sel, frozen), (xg,)), yg)

    per_example = vmap(grad_and_value(group_loss), in_dims=(None, 0, 0))

    def per_group(xg: torch.Tensor, yg: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if estimator == "per_example":
            return per_example(selected, xg, yg)
        # one group: a plain backward is cheaper than vmap over micro-batches (measured on CPU)
        with torch.enable_grad():
            loss = loss_fn(model(xg[0]), yg[0])
        grads = torch.autograd.grad(loss, [named[n] for n in names], allow_unused=True, materialize_grads=True)
        return {n: g.detach().unsqueeze(0) for n, g in zip(names, grads, strict=True)}, loss.detach().view(1)

    loss_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)

    def pieces() -> Iterator[tuple[list[torch.Tensor], int, int]]:
        """Per piece of the batch: its gradients (``(c, ...)`` per parameter), ``c`` and ``m``; sums the loss."""
        for xg, yg, m in _groups(inputs, targets, estimator, chunks, domains):
            grads, losses = per_group(xg, yg)
            loss_sum.add_(losses.detach().to(torch.float64).sum() * m)
            yield [grads.pop(n) for n in names], xg.shape[0], m

    modes = _set_eval(model)
    try:
        if estimator == "per_example":  # B per-example gradients: stream them, chunk by chunk
            mean, gsnr, total = _streamed_moments(pieces(), eps)
        else:  # a few group-mean gradients: keep them all, then two cache-blocked passes
            mean, gsnr, total = _grouped_moments(pieces(), eps)
    finally:
        _restore_modes(modes)
    gsnr, mean = dict(zip(names, gsnr, strict=True)), dict(zip(names, mean, strict=True))
    return GSNRStats(gsnr=gsnr, mean_grad=mean, loss=(loss_sum / total).to(mean[names[0]].dtype))


def parameter_gsnr(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    estimator: str = "per_example",
    chunks: int = 8,
    eps: float = 1e-8,
    params: Sequence[str] | None = None,
    domains: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """GSNR of each chosen parameter over a batch (Liu et al. 2020, arXiv 2001.07384).

    ``GSNR_j = mean_b(g_bj)^2 / (var_b(g_bj) + eps)`` with the unbiased variance; see the module docstring for
    the estimators and :func:`gsnr_stats` for the variant that also returns the mean gradient.

    Args:
        model: the network; called as ``model(x)``.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.
        inputs: the batch.
        targets: the batch's targets.
        estimator: ``"per_example"``, ``"microbatch"`` or ``"domain"``. Default: ``"per_example"``.
        chunks: vmap chunks (per-example) or micro-batches (microbatch). Default: 8.
        eps: added to the variance. Default: 1e-8.
        params: parameter names; default :func:`default_gsnr_params` (conv/linear weights but the classifier).
        domains: per-example domain ids, for ``estimator="domain"``.

    Shape:
        - inputs: (B, ...); targets: (B, ...)
        - Output: name -> tensor shaped like the parameter.

    Returns:
        Parameter name -> GSNR tensor.

    Examples::

        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> g = parameter_gsnr(net, nn.functional.cross_entropy, torch.randn(6, 4), torch.tensor([0, 1, 2] * 2))
        >>> list(g), g["0.weight"].shape
        (['0.weight'], torch.Size([8, 4]))
    """
    return gsnr_stats(
        model, loss_fn, inputs, targets, estimator=estimator, chunks=chunks, eps=eps, params=params, domains=domains
    ).gsnr
