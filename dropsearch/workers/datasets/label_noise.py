"""Symmetric label noise on the training split: a seeded fraction of training labels flipped to another class.

Label noise makes a small dataset over-fit much sooner, which is where dropout is expected to help (e.g. Arpit
et al. 2017, arXiv 1706.05394). Only the training labels change: validation, held-out-domain and test labels stay
clean, so rewards and final numbers measure the clean task. Exactly ``floor(label_noise * N + 0.5)`` of the ``N``
training labels are flipped, each to a class drawn uniformly among the *other* ``K - 1`` classes. The flips come
from their own random stream derived from the dataset seed, so the same seed gives the same flips and turning
noise on does not change the train / validation split.
"""

from __future__ import annotations

import torch

__all__ = ["check_label_noise", "flip_labels"]

#: Mixed into the dataset seed so the flips do not reuse the split's random stream.
_STREAM = 0x6C61_6265_6C5F_6E6F  # "label_no"


def check_label_noise(value: object, *, name: str) -> float:
    """``value`` as a float in ``[0, 1)``, else ValueError naming ``name`` (e.g. ``"digits param label_noise"``)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= f < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return f


def flip_labels(
    y: torch.Tensor, label_noise: float, num_classes: int, *, seed: int, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip exactly ``floor(label_noise * N + 0.5)`` labels of ``y``, each to a uniformly drawn other class.

    Args:
        y: training class ids, int64 (N,).
        label_noise: the fraction to flip, in ``[0, 1)``.
        num_classes: the number of classes K (at least 2 when anything is flipped).
        seed: the dataset seed; the flips use a stream derived from it.
        name: how the param is called in messages (``"digits param label_noise"``).

    Returns:
        ``(noisy, flipped)``: a new label tensor (N,) and the sorted indices of the flipped labels.

    Raises:
        ValueError: naming ``name`` for a value outside ``[0, 1)``, or when there is one class only.
    """
    fraction = check_label_noise(label_noise, name=name)
    n = len(y)
    k = min(n, int(fraction * n + 0.5))
    noisy = y.clone()
    if k == 0:
        return noisy, torch.zeros(0, dtype=torch.int64)
    if num_classes < 2:
        raise ValueError(f"{name} needs at least 2 classes to flip a label to, got {num_classes}")
    g = torch.Generator().manual_seed((int(seed) ^ _STREAM) & 0x7FFF_FFFF_FFFF_FFFF)
    flipped = torch.randperm(n, generator=g)[:k].sort().values  # (k,)
    offset = torch.randint(1, num_classes, (k,), generator=g)  # (k,) in [1, K-1]: never the same class
    noisy[flipped] = (y[flipped] + offset) % num_classes
    return noisy, flipped
