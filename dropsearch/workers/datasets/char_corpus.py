"""A character-level language-modelling corpus from a local UTF-8 text file (as in nanoGPT's shakespeare_char).

The vocabulary is the sorted set of characters of the file. The text is cut into consecutive chunks of
``block_size + 1`` characters (stride ``block_size``); each gives an input ``chunk[:-1]`` and next-character targets
``chunk[1:]``. Chunks are assigned to training or validation at random by the seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.datasets.base import (
    DatasetBundle,
    check_fraction,
    confine_path,
    require_file,
)

__all__ = ["encode", "decode", "load_char_corpus"]


def encode(text: str, vocab: str) -> torch.Tensor:
    """Character ids of ``text`` under ``vocab`` (id ``i`` is ``vocab[i]``); ValueError naming unknown characters."""
    index = {ch: i for i, ch in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValueError(f"characters {missing[:10]!r} are not in the vocabulary")
    return torch.tensor([index[ch] for ch in text], dtype=torch.int64)


def decode(ids: torch.Tensor | Sequence[int], vocab: str) -> str:
    """The text of character ids ``ids`` (any shape; flattened)."""
    flat = ids.reshape(-1).tolist() if isinstance(ids, torch.Tensor) else list(ids)
    return "".join(vocab[i] for i in flat)


def load_char_corpus(
    *,
    seed: int,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    path: str | None = None,
    block_size: int = 64,
    val_fraction: float = 0.1,
    max_chars: int | None = None,
) -> DatasetBundle:
    """A character-level corpus from a local text file: sequences of ``block_size`` chars, next-char targets.

    Args:
        seed: seeds which chunks go to validation.
        allowed_roots: the configured dataset roots; ``path`` must lie inside one.
        path: the UTF-8 text file (absolute, or relative to a root). Required.
        block_size: characters per sequence. Default: ``64``
        val_fraction: share of the chunks held out for validation. Default: ``0.1``
        max_chars: read only the first ``max_chars`` characters. Default: the whole file.
    """
    name = "char-corpus param path"
    if path is None:
        raise ValueError(f"{name} is required")
    file = require_file(confine_path(path, allowed_roots, name=name), name=name)
    block_size = check_positive_int(block_size, name="char-corpus param block_size")
    val_fraction = check_fraction(val_fraction, name="char-corpus param val_fraction")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{name}: {str(file)!r} is not UTF-8 text ({err.reason})") from None
    if max_chars is not None:
        text = text[: check_positive_int(max_chars, name="char-corpus param max_chars")]
    vocab = "".join(sorted(set(text)))
    ids = encode(text, vocab)  # (L,)
    n = (len(ids) - 1) // block_size
    if n < 2:
        raise ValueError(f"{name}: {str(file)!r} has {len(text)} chars, too few for 2 blocks of {block_size + 1}")
    x = ids[: n * block_size].view(n, block_size)  # (N, T)
    y = ids[1 : n * block_size + 1].view(n, block_size)  # (N, T), shifted by one
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return DatasetBundle(
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_val=x[val_idx],
        y_val=y[val_idx],
        in_shape=(block_size,),
        num_classes=len(vocab),
        task="language_model",
        vocab=vocab,
        info={"source": str(file), "seed": int(seed), "chars": len(text), "chunks": n},
    )


load_char_corpus.input_kind = "sequence"  # type: ignore[attr-defined]
load_char_corpus.task = "language_model"  # type: ignore[attr-defined]
load_char_corpus.uses_path = True  # type: ignore[attr-defined]
