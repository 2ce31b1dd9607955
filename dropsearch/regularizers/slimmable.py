"""Width-sliceable (slimmable) conv, batch-norm and linear layers for GradAug (arXiv 2006.07989).

At width ``w`` every sliced conv/linear uses its first ``round(C_out * w)`` output channels and the first
``C_in'`` input channels, where ``C_in'`` is the channel count of the tensor it receives (the rule of slimmable
networks, Yu et al., arXiv 1812.08928, and of the GradAug reference code ``models/randwidth_ops.py``).
Rounding is half up: ``floor(C * w + 0.5)``, at least 1. The first layer of a network keeps all its input
channels (``slice_in=False``) and the classifier all its outputs (``slice_out=False``). Batch norm at width < 1
normalizes with the batch statistics of the channels it receives and never touches the running statistics;
at width 1 it is an ordinary :class:`torch.nn.BatchNorm2d`.

The layers subclass the plain torch layers, so ``isinstance`` checks and ``state_dict`` keys are unchanged, and
:func:`make_sliceable` converts the layers of any model *in place* (the parameter objects stay the same, so an
optimizer built before the conversion still works).

Limitations (checked at run time where possible):

- Only ``nn.Conv2d``, ``nn.BatchNorm2d`` and ``nn.Linear`` (exact types) are sliced; other norm layers
  (``GroupNorm``, ``LayerNorm``, ``BatchNorm1d``) and custom subclasses are left alone and fail at width < 1.
- Grouped convolutions are refused with ValueError; depthwise convs (``groups == in == out``) are supported.
- A layer's input must come from layers of the same full width: at width ``w < 1`` a sliced layer accepts
  ``C_in`` or ``round(C_in * w)`` input channels and raises ValueError otherwise. This catches the two
  patterns slicing cannot follow: a flatten of spatial maps into a linear layer (supported only through a
  global-pooled head) and channel concatenation (DenseNet-style).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SlicedConv2d",
    "SlicedBatchNorm2d",
    "SlicedLinear",
    "sliced_channels",
    "set_width",
    "get_width",
    "width",
    "make_sliceable",
    "is_sliceable",
]


def sliced_channels(channels: int, w: float) -> int:
    """Return ``max(1, floor(channels * w + 0.5))``: the channels a layer keeps at width ``w``."""
    return max(1, int(math.floor(channels * w + 0.5)))


def _check_width(w: float) -> float:
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 < float(w) <= 1.0:
        raise ValueError(f"width must be a float in (0, 1], got {w!r}")
    return float(w)


class _Sliceable:
    """Mixin holding the current width and the slicing flags; adds no parameters or buffers."""

    width: float = 1.0
    slice_in: bool = True
    slice_out: bool = True

    def _in_channels_at_width(self, c_in: int, full: int) -> int:
        """Validate the received channel count ``c_in`` against the layer's full input width."""
        if not self.slice_in or self.width == 1.0:
            return full  # the torch op itself raises on a mismatch
        if c_in not in (full, sliced_channels(full, self.width)):
            raise ValueError(
                f"{type(self).__name__} at width {self.width} received {c_in} input channels, expected {full} or "
                f"{sliced_channels(full, self.width)}; a flatten of spatial maps or a channel concatenation "
                "before this layer cannot be width-sliced (use a global-pooled head)"
            )
        return c_in

    def _flags_repr(self) -> str:
        return f"slice_in={self.slice_in}, slice_out={self.slice_out}"


class SlicedConv2d(_Sliceable, nn.Conv2d):
    """``nn.Conv2d`` that runs on its first channels at the width set by :func:`set_width`.

    Args:
        in_channels: full input channels.
        out_channels: full output channels.
        kernel_size: as for ``nn.Conv2d``.
        stride: as for ``nn.Conv2d``. Default: 1
        padding: as for ``nn.Conv2d``. Default: 0
        dilation: as for ``nn.Conv2d``. Default: 1
        groups: 1, or ``in_channels == out_channels`` (depthwise); other values raise ValueError. Default: 1
        bias: whether to add a learnable bias. Default: ``True``
        padding_mode: as for ``nn.Conv2d``. Default: ``"zeros"``
        slice_in: slice the input channels (``False`` for the network's input conv). Default: ``True``
        slice_out: slice the output channels. Default: ``True``
        device: parameter device. Default: ``None``
        dtype: parameter dtype. Default: ``None``

    Shape:
        - Input: (B, C_in', H, W), with C_in' = C_in or round(C_in * w)
        - Output: (B, round(C_out * w), H', W'), or (B, C_out, H', W') when ``slice_out=False``

    Examples::

        >>> conv = SlicedConv2d(8, 16, 3, padding=1)
        >>> with width(conv, 0.5):
        ...     conv(torch.randn(2, 4, 8, 8)).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        slice_in: bool = True,
        slice_out: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device=device,
            dtype=dtype,
        )
        _check_groups(self, "SlicedConv2d")
        self.width, self.slice_in, self.slice_out = 1.0, slice_in, slice_out

    @property
    def depthwise(self) -> bool:
        """Whether this is a depthwise conv (``groups == in_channels == out_channels > 1``)."""
        return self.groups > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` with the weight slice of the current width."""
        if self.width == 1.0:
            return super().forward(x)
        c_in = self._in_channels_at_width(x.shape[1], self.in_channels)
        if self.depthwise:  # output channel i only sees input channel i
            c_out, groups, weight = c_in, c_in, self.weight[:c_in]
        else:
            c_out = sliced_channels(self.out_channels, self.width) if self.slice_out else self.out_channels
            groups, weight = 1, self.weight[:c_out, :c_in]
        bias = None if self.bias is None else self.bias[:c_out]
        if self.padding_mode != "zeros":
            pad = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(pad, weight, bias, self.stride, 0, self.dilation, groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def extra_repr(self) -> str:
        """Torch's repr plus the slicing flags."""
        return f"{super().extra_repr()}, {self._flags_repr()}"


class SlicedBatchNorm2d(_Sliceable, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that, at width < 1, normalizes its first channels with batch statistics only.

    At width 1 this is exactly ``nn.BatchNorm2d`` (running statistics are used in eval mode and updated in
    training mode). At width < 1 it normalizes the ``C'`` channels it receives with the statistics of the
    current batch, scales with the first ``C'`` affine parameters, and never reads or updates
    ``running_mean``, ``running_var`` or ``num_batches_tracked`` (in train and in eval mode alike).

    Args:
        num_features: full number of channels.
        eps: as for ``nn.BatchNorm2d``. Default: 1e-5
        momentum: as for ``nn.BatchNorm2d``. Default: 0.1
        affine: as for ``nn.BatchNorm2d``. Default: ``True``
        track_running_stats: as for ``nn.BatchNorm2d``. Default: ``True``
        device: parameter device. Default: ``None``
        dtype: parameter dtype. Default: ``None``

    Shape:
        - Input: (B, C', H, W), with C' = C or round(C * w)
        - Output: same as input

    Examples::

        >>> bn = SlicedBatchNorm2d(16)
        >>> with width(bn, 0.5):
        ...     bn(torch.randn(4, 8, 5, 5)).shape
        torch.Size([4, 8, 5, 5])
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.width, self.slice_in, self.slice_out = 1.0, True, True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x``; see the class docstring for the width < 1 rule."""
        if self.width == 1.0:
            return super().forward(x)
        self._check_input_dim(x)
        c = self._in_channels_at_width(x.shape[1], self.num_features)
        weight = None if self.weight is None else self.weight[:c]
        bias = None if self.bias is None else self.bias[:c]
        return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)


class SlicedLinear(_Sliceable, nn.Linear):
    """``nn.Linear`` that runs on its first features at the width set by :func:`set_width`.

    Args:
        in_features: full input features.
        out_features: full output features.
        bias: whether to add a learnable bias. Default: ``True``
        slice_in: slice the input features. Default: ``True``
        slice_out: slice the output features (``False`` for the classifier). Default: ``True``
        device: parameter device. Default: ``None``
        dtype: parameter dtype. Default: ``None``

    Shape:
        - Input: (*, F_in'), with F_in' = F_in or round(F_in * w)
        - Output: (*, round(F_out * w)), or (*, F_out) when ``slice_out=False``

    Examples::

        >>> fc = SlicedLinear(16, 10, slice_out=False)
        >>> with width(fc, 0.5):
        ...     fc(torch.randn(2, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        slice_in: bool = True,
        slice_out: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.width, self.slice_in, self.slice_out = 1.0, slice_in, slice_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the weight slice of the current width to ``x``."""
        if self.width == 1.0:
            return super().forward(x)
        c_in = self._in_channels_at_width(x.shape[-1], self.in_features)
        c_out = sliced_channels(self.out_features, self.width) if self.slice_out else self.out_features
        bias = None if self.bias is None else self.bias[:c_out]
        return F.linear(x, self.weight[:c_out, :c_in], bias)

    def extra_repr(self) -> str:
        """Torch's repr plus the slicing flags."""
        return f"{super().extra_repr()}, {self._flags_repr()}"


def _check_groups(conv: nn.Conv2d, name: str) -> None:
    depthwise = conv.groups == conv.in_channels == conv.out_channels
    if conv.groups != 1 and not depthwise:
        raise ValueError(
            f"{name} cannot width-slice a grouped convolution (groups={conv.groups}, in={conv.in_channels}, "
            f"out={conv.out_channels}); only groups=1 and depthwise (groups == in == out) are supported"
        )


def _sliced_modules(model: nn.Module) -> Iterator[_Sliceable]:
    return (m for m in model.modules() if isinstance(m, _Sliceable))


def is_sliceable(model: nn.Module) -> bool:
    """Whether ``model`` holds sliced layers and no plain ``Conv2d``/``BatchNorm2d``/``Linear`` left."""
    plain = any(type(m) in _CONVERSIONS for m in model.modules())
    return not plain and any(True for _ in _sliced_modules(model))


def set_width(model: nn.Module, w: float) -> None:
    """Set the width of every sliced layer in ``model`` (the model itself may be one); ``w`` in (0, 1]."""
    w = _check_width(w)
    for m in _sliced_modules(model):
        m.width = w


def get_width(model: nn.Module) -> float:
    """Return the width of the model's sliced layers; ValueError if it has none or they disagree."""
    widths = {m.width for m in _sliced_modules(model)}
    if len(widths) != 1:
        raise ValueError(f"model must hold sliced layers of one width, got widths {sorted(widths)}")
    return widths.pop()


@contextmanager
def width(model: nn.Module, w: float) -> Iterator[nn.Module]:
    """Run the block with ``model`` at width ``w``; every layer's previous width is restored on exit."""
    w = _check_width(w)
    previous = [(m, m.width) for m in _sliced_modules(model)]
    try:
        for m, _ in previous:
            m.width = w
        yield model
    finally:
        for m, old in previous:
            m.width = old


_CONVERSIONS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv2d: SlicedConv2d,
    nn.BatchNorm2d: SlicedBatchNorm2d,
    nn.Linear: SlicedLinear,
}


def _default_ends(model: nn.Module) -> tuple[list[str], list[str]]:
    """First conv/linear (keeps its inputs) and last linear, else last conv (keeps its outputs)."""
    weighted = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not weighted:
        return [], []
    linears = [n for n, m in weighted if isinstance(m, nn.Linear)]
    return [weighted[0][0]], [linears[-1] if linears else weighted[-1][0]]


def make_sliceable(
    model: nn.Module,
    *,
    input_layers: Sequence[str] | None = None,
    output_layers: Sequence[str] | None = None,
) -> nn.Module:
    """Convert every plain ``nn.Conv2d``/``nn.BatchNorm2d``/``nn.Linear`` of ``model`` into its sliced class.

    The conversion is in place and swaps only the module class, so parameters, buffers, hooks and
    ``state_dict`` keys stay the same objects and the outputs at width 1 are identical. Only the exact torch
    types are converted (subclasses are left alone); layers that already are sliced keep their flags.

    Args:
        model: the model to convert (may itself be a single layer).
        input_layers: module paths (as in ``named_modules``) of the conv/linear layers that keep all their input
            channels. Default: the first conv or linear in registration order.
        output_layers: module paths of the layers that keep all their outputs. Default: the last ``nn.Linear``
            (the classifier), or the last conv when the model has no linear layer.

    Returns:
        ``model`` itself.

    Raises:
        ValueError: for a path that names no conv/linear layer, or a grouped (non-depthwise) convolution.

    Examples::

        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
        >>> with width(make_sliceable(net), 0.5):
        ...     net(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 4])
    """
    modules = dict(model.named_modules())
    first, last = _default_ends(model)
    ins = list(first if input_layers is None else input_layers)
    outs = list(last if output_layers is None else output_layers)
    for path in ins + outs:
        if not isinstance(modules.get(path), (nn.Conv2d, nn.Linear)):
            raise ValueError(f"layer path {path!r} names no nn.Conv2d or nn.Linear of the model")
    for path, m in modules.items():
        if isinstance(m, nn.Conv2d):
            _check_groups(m, f"make_sliceable (layer {path!r})")
    for path, m in modules.items():
        cls = _CONVERSIONS.get(type(m))
        if cls is None:
            continue
        m.__class__ = cls  # same parameters and buffers: outputs at width 1 are unchanged
        m.width, m.slice_in, m.slice_out = 1.0, path not in ins, path not in outs
    return model
