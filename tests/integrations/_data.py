"""Small learnable data sets for the integration tests (seeded, in memory)."""

from __future__ import annotations

import torch


def blobs(n: int = 512, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 8, 8) noisy images whose class sets a fixed mean image, and (n,) labels."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, 1, 8, 8, generator=g)
    y = torch.arange(n) % classes
    x = means[y] + 0.8 * torch.randn(n, 1, 8, 8, generator=g)
    return x, y


def token_rows(n: int = 512, length: int = 10, vocab: int = 40, classes: int = 3, seed: int = 0):
    """(n, length) token ids whose label is set by which of ``classes`` marker tokens fills half the row."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    ids = torch.randint(classes + 1, vocab, (n, length), generator=g)
    marks = torch.rand(n, length, generator=g) < 0.5
    ids[marks] = (y + 1).unsqueeze(1).expand(n, length)[marks]
    return ids, y


def mean_first_last(losses: list[float], k: int) -> tuple[float, float]:
    """Mean of the first ``k`` and of the last ``k`` values."""
    return sum(losses[:k]) / k, sum(losses[-k:]) / k
