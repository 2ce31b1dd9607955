"""Layer conductance: how much of the target logit flows through each unit of a layer.

Dhamdhere et al. 2018, arXiv 1805.12233; the importance score of Y-Drop (Georgiou et al. 2024, arXiv 2409.09088).

Along the straight path ``x(a) = x' + a (x - x')`` from a baseline ``x'`` (zeros by default) to ``x``, evaluated at
``steps + 1`` points ``a_0 < ... < a_steps``, the conductance of unit ``u`` is::

    cond_u = sum_{i < steps} dF/dh_u(a_i) * (h_u(a_{i+1}) - h_u(a_i))

with ``F`` the target-class logit and ``h`` the layer's output. This is exactly captum's ``LayerConductance`` with
``n_steps=steps`` and the same ``method`` (captum evaluates ``n_steps + 1`` points and only uses their positions,
not the step weights). ``method="riemann_trapezoid"`` (our default) is the uniform path ``a_i = i / steps``;
``"riemann_left" | "riemann_right" | "riemann_middle" | "gausslegendre"`` place the points like captum does.

All path points go through ONE batched forward (``B * (steps + 1)`` rows) with every module in eval mode (dropout
off, BatchNorm on running statistics: the baseline rows would otherwise distort the batch statistics), and the
gradient is taken only w.r.t. the hooked layer outputs (``torch.autograd.grad``; no ``.grad`` is touched). Module
modes are restored afterwards. Unit scores are summed over every dimension after the unit (channel) dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dropsearch.regularizers._checks import check_positive_int

__all__ = ["METHODS", "path_alphas", "layer_conductance", "layers_conductance"]

METHODS = ("riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle", "gausslegendre")


def path_alphas(n: int, method: str = "riemann_trapezoid") -> torch.Tensor:
    """Positions in ``[0, 1]`` of ``n`` path points, as captum's ``approximation_parameters(method)[1](n)``.

    Gauss-Legendre nodes come from the eigenvalues of the Jacobi matrix (Golub-Welsch), in float64.

    Returns:
        A float64 tensor of ``n`` increasing positions.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if n < 2:
        raise ValueError(f"the path needs at least 2 points, got {n}")
    if method == "gausslegendre":
        k = torch.arange(1, n, dtype=torch.float64)
        off = k / torch.sqrt(4 * k * k - 1)
        nodes = torch.linalg.eigvalsh(torch.diag(off, 1) + torch.diag(off, -1))
        return 0.5 * (1 + nodes)
    lo, hi = {
        "riemann_trapezoid": (0.0, 1.0),
        "riemann_left": (0.0, 1 - 1 / n),
        "riemann_right": (1 / n, 1.0),
        "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
    }[method]
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def layers_conductance(
    model: nn.Module,
    layers: Sequence[nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int = 5,
    baseline: torch.Tensor | float | None = None,
    method: str = "riemann_trapezoid",
) -> list[torch.Tensor]:
    """Conductance of the units of several layers, from one batched forward and one backward.

    Args:
        model: the network; ``model(x)`` returns logits (B, classes).
        layers: modules of ``model``, each called once per forward; their outputs are attributed.
        inputs: the batch.
        targets: class indices, the logit ``F`` whose conductance is measured.
        steps: number of path intervals (``steps + 1`` points). Default: 5.
        baseline: the path's start, broadcastable to ``inputs``; ``None`` is zeros. Default: ``None``.
        method: point placement, one of :data:`METHODS`. Default: ``"riemann_trapezoid"``.

    Shape:
        - inputs: (B, ...); targets: (B,)
        - Output: per layer (B, U), U = size of the layer output's dim 1 (features or channels).

    Returns:
        One conductance tensor per layer.
    """
    steps = check_positive_int(steps, name="steps")
    B = inputs.shape[0]
    if targets.shape != (B,):
        raise ValueError(f"targets must be class indices of shape ({B},), got shape {tuple(targets.shape)}")
    alphas = path_alphas(steps + 1, method).to(device=inputs.device, dtype=inputs.dtype)
    base = torch.zeros_like(inputs) if baseline is None else torch.as_tensor(baseline).to(inputs).expand_as(inputs)
    path = base.unsqueeze(0) + alphas.view(-1, *([1] * inputs.ndim)) * (inputs - base).unsqueeze(0)
    path = path.reshape(-1, *inputs.shape[1:])  # (S+1 * B, ...), step-major like captum
    captured: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(layers))}

    def make_hook(i: int):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if not output.requires_grad:  # nothing upstream needs a gradient: make h a leaf
                output = output.detach().requires_grad_()
            captured[i].append(output)
            return output

        return hook

    modes = [(m, m.training) for m in model.modules()]
    handles = [layer.register_forward_hook(make_hook(i)) for i, layer in enumerate(layers)]
    model.eval()
    try:
        logits = model(path)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    for i, outs in captured.items():
        if len(outs) != 1:
            raise ValueError(f"layer {i} ({type(layers[i]).__name__}) ran {len(outs)} times in one forward, expected 1")
    hs = [captured[i][0] for i in range(len(layers))]
    picked = logits.gather(1, targets.repeat(steps + 1).unsqueeze(1)).sum()
    grads = torch.autograd.grad(picked, hs, allow_unused=True, materialize_grads=True)
    out = []
    for h, g in zip(hs, grads, strict=True):
        h = h.detach().reshape(steps + 1, B, *h.shape[1:])
        g = g.reshape(steps + 1, B, *h.shape[2:])
        cond = (g[:-1] * (h[1:] - h[:-1])).sum(0)  # (B, U, ...)
        out.append(cond.reshape(B, cond.shape[1], -1).sum(-1) if cond.ndim > 2 else cond)
    return out


def layer_conductance(
    model: nn.Module,
    layer: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int = 5,
    baseline: torch.Tensor | float | None = None,
    method: str = "riemann_trapezoid",
) -> torch.Tensor:
    """Conductance of each unit of ``layer``'s output for the target-class logit (see the module docstring).

    Args:
        model: the network; ``model(x)`` returns logits (B, classes).
        layer: a module of ``model`` called once per forward.
        inputs: the batch.
        targets: class indices.
        steps: number of path intervals (``steps + 1`` points, captum's ``n_steps``). Default: 5.
        baseline: the path's start, broadcastable to ``inputs``; ``None`` is zeros. Default: ``None``.
        method: point placement as captum's ``method``. Default: ``"riemann_trapezoid"``.

    Shape:
        - inputs: (B, ...); targets: (B,)
        - Output: (B, U): U = out features of a linear layer, channels of a conv layer (summed over positions).

    Returns:
        The conductance of every unit for every example.

    Examples::

        >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        >>> layer_conductance(net, net[0], torch.randn(2, 4), torch.tensor([0, 2]), steps=8).shape
        torch.Size([2, 6])
    """
    return layers_conductance(model, [layer], inputs, targets, steps=steps, baseline=baseline, method=method)[0]
