"""AutoDropout patterns for Transformer sequences (Pham and Le, AAAI 2021, arXiv 2101.01761).

Tokens of a sequence site (their value sets are the ``autodropout`` variant's ``site_tokens["sequence"]`` in
:mod:`dropsearch.regularizers.registry`): ``size`` consecutive positions are dropped, then ``stride`` positions are
kept (pitch ``size + stride``); ``share`` drops whole tokens (all channels alike) or gives every channel its own
offset; ``rate`` picks how many runs are active. The keep pattern is periodic with period ``P = 64 * (size +
stride)``: run ``k`` of a period is active when the bit reversal of ``k`` (a 1-D ordered dither) is below ``m =
round(64 * min(1, rate / density))``, ``density = size / (size + stride)``. For example ``b`` (and channel ``c``
unless ``share``), with a uniform integer offset ``o``::

    mask[b, t, c] = canvas[(t + o) mod P]

so the expected drop fraction is exactly ``m / 64 * density`` (:func:`implied_drop_rate`): within
``density / 128`` of ``rate`` when ``rate <= density``, capped at ``density`` otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from dropsearch.regularizers._checks import check_rank, check_rate
from dropsearch.regularizers._pattern_common import (
    DITHER_LEVELS,
    active_cells,
    bit_reversed_order,
    check_mask_shape,
    read_tokens,
    rescale_per_example,
)
from dropsearch.regularizers._rng import randint
from dropsearch.regularizers.pattern import SequenceShape, SitePattern

__all__ = ["sequence_pattern_mask", "implied_drop_rate", "SequencePatternDropout"]


def _seq_tokens(pattern: SitePattern | Mapping[str, Any]) -> tuple[SequenceShape, float]:
    return read_tokens(pattern, SequenceShape, flags=("share",))


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return check_mask_shape(shape, ("B", "T", "C"))


def _density(tokens: SequenceShape) -> float:
    return tokens.size / (tokens.size + tokens.stride)


def _period(tokens: SequenceShape) -> int:
    return DITHER_LEVELS * (int(tokens.size) + int(tokens.stride))


def _keep_canvas(positions: torch.Tensor, tokens: SequenceShape, active: int) -> torch.Tensor:
    """The {0, 1} float32 keep value at integer ``positions`` (any shape; taken modulo the period)."""
    pitch = int(tokens.size) + int(tokens.stride)
    positions = positions.remainder(_period(tokens))
    threshold = bit_reversed_order(DITHER_LEVELS, device=positions.device)[positions // pitch]
    dropped = ((positions % pitch) < tokens.size) & (threshold < active)
    return (~dropped).float()


def implied_drop_rate(pattern: SitePattern | Mapping[str, Any], shape: Sequence[int]) -> float:
    """The exact expected fraction of zeros of :func:`sequence_pattern_mask`: ``m / 64 * size / (size + stride)``.

    Args:
        pattern: a :class:`SitePattern` or a mapping with ``rate`` and :class:`SequenceShape` tokens.
        shape: ``(B, T, C)`` (only validated: the expectation does not depend on it).

    Returns:
        The implied drop rate in ``[0, 1)``.
    """
    _check_shape(shape)
    tokens, rate = _seq_tokens(pattern)
    density = _density(tokens)
    return active_cells(rate, density) / DITHER_LEVELS * density


def _sequence_mask_from_offsets(
    tokens: SequenceShape, rate: float, shape: tuple[int, int, int], offsets: torch.Tensor
) -> torch.Tensor:
    """The mask for explicit integer offsets: ``(B, 1)`` when ``share``, else ``(B, C)``."""
    B, T, C = shape
    active = active_cells(rate, _density(tokens))
    t = torch.arange(T, device=offsets.device)
    positions = t[None, :, None] + offsets[:, None, :]  # (B, T, 1) or (B, T, C)
    keep = _keep_canvas(positions, tokens, active)
    return keep.expand(B, T, C)


def sequence_pattern_mask(
    pattern: SitePattern | Mapping[str, Any],
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sample an AutoDropout sequence keep mask (Pham and Le 2021, arXiv 2101.01761).

    Args:
        pattern: a :class:`SitePattern` (``rate`` + :class:`SequenceShape` tokens) or a mapping, flat or with a
            nested ``"shape"``. Missing tokens take the :class:`SequenceShape` defaults.
        shape: ``(B, T, C)`` of the activations.
        generator: draws the offsets when given.
        device: where the mask is built. Default: the CPU.

    Returns:
        A float32 {0, 1} mask of ``shape`` (0 = dropped; the caller rescales). With ``share`` it is an expanded
        ``(B, T, 1)`` view.

    Shape:
        - Output: ``(B, T, C)``

    Examples::

        >>> m = sequence_pattern_mask({"rate": 0.2, "size": 2, "stride": 2}, (2, 10, 4))
        >>> m.shape
        torch.Size([2, 10, 4])
    """
    dims = _check_shape(shape)
    tokens, rate = _seq_tokens(pattern)
    device = torch.device(device) if device is not None else torch.device("cpu")
    B, T, C = dims
    if active_cells(rate, _density(tokens)) == 0:
        return torch.ones(B, T, 1, device=device).expand(B, T, C)
    offsets = randint(_period(tokens), (B, 1 if tokens.share else C), generator=generator, device=device)
    return _sequence_mask_from_offsets(tokens, rate, dims, offsets)


class SequencePatternDropout(nn.Module):
    """AutoDropout structured dropout for token sequences (Pham and Le 2021, arXiv 2101.01761).

    Multiplies ``x`` by a fresh :func:`sequence_pattern_mask` every training step and rescales each example by
    its own ``numel / kept``. Eval mode is the identity.

    Args:
        size: consecutive positions dropped per run. Default: 2
        stride: kept positions between runs. Default: 2
        share: drop whole tokens (``True``) or give each channel its own offset. Default: ``True``
        rate: target drop fraction, in ``[0, 1)``; see :func:`implied_drop_rate`. Default: 0.1

    Shape:
        - Input: ``(B, T, C)``
        - Output: same shape as input

    Examples::

        >>> m = SequencePatternDropout(size=2, stride=2, share=True, rate=0.2)
        >>> m(torch.randn(2, 10, 8)).shape
        torch.Size([2, 10, 8])
    """

    def __init__(self, size: int = 2, stride: int = 2, share: bool = True, rate: float = 0.1) -> None:
        super().__init__()
        shape, rate = _seq_tokens({"rate": rate, "size": size, "stride": stride, "share": share})
        self.size, self.stride, self.share, self.rate = int(shape.size), int(shape.stride), share, rate

    @classmethod
    def from_site(cls, site: SitePattern | Mapping[str, Any]) -> SequencePatternDropout:
        """Build the module from a site's tokens (a :class:`SitePattern` or a mapping)."""
        shape, rate = _seq_tokens(site)
        return cls(**dataclasses.asdict(shape), rate=rate)

    def tokens(self) -> dict[str, Any]:
        """The pattern as a flat mapping accepted by :func:`sequence_pattern_mask`."""
        return {"size": self.size, "stride": self.stride, "share": self.share, "rate": self.rate}

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply the pattern in training mode; identity in eval mode."""
        check_rank(x, (3,))
        if not self.training or check_rate(self.rate) == 0.0:
            return x
        keep = sequence_pattern_mask(self.tokens(), x.shape, generator=generator, device=x.device)  # (B, T, C)
        return rescale_per_example(x, keep)

    def extra_repr(self) -> str:
        """The settings shown by ``print(module)``."""
        return f"size={self.size}, stride={self.stride}, share={self.share}, rate={self.rate:.3f}"
