"""Input checks shared by the regularizers; every failure is a ValueError that names the value."""

from __future__ import annotations

import torch

from dropsearch.regularizers.pattern import check_rate

__all__ = ["check_rate", "check_rank", "check_positive_int"]


def check_rank(x: torch.Tensor, ranks: tuple[int, ...], *, name: str = "x") -> None:
    """Raise ValueError unless ``x.ndim`` is one of ``ranks``.

    Args:
        x: the tensor to check.
        ranks: accepted numbers of dimensions.
        name: how the tensor is called in the message.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in ranks:
        expected = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{name} must be {expected}, got a {x.ndim}-D tensor of shape {tuple(x.shape)}")


def check_positive_int(value: int, *, name: str) -> int:
    """Return ``value`` as an int, or raise ValueError naming it when it is not a positive integer."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
