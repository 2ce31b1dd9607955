"""A small nanoGPT-style Transformer for character-level language modelling or sequence classification.

Based on karpathy/nanoGPT ``model.py`` (Vaswani et al. 2017, arXiv 1706.03762).

Dropout sites, all of kind "sequence" on (B, T, C) tensors as in AutoDropout's Transformer space (arXiv
2101.01761): ``embed_drop`` after the embeddings, then per block ``blocks.<i>.attn.drop`` (attention output),
``blocks.<i>.mlp.drop_hidden`` (FFN hidden, 4C wide) and ``blocks.<i>.mlp.drop`` (FFN output). A classifier adds
``head.drop`` (kind "features") on the mean-pooled tokens.

Inputs are token ids ``(B, T)`` (``in_shape = (block_size,)``), or images ``(B, C, H, W)`` read as ``H`` tokens of
``C * W`` features (one token per row), which lets the model run on the image datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dropsearch.regularizers._checks import check_positive_int
from dropsearch.workers.models._common import ClassifierHead, SiteModel, add_site, check_shape

__all__ = ["TransformerConfig", "CausalSelfAttention", "FeedForward", "Block", "Transformer", "build_transformer"]

TASKS = ("auto", "language_model", "classification")


@dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters of :class:`Transformer`.

    Args:
        block_size: longest sequence (positions of the position embedding).
        n_out: outputs per token (vocabulary, language model) or per sequence (classes, classifier).
        vocab_size: token vocabulary, or ``None`` for image rows projected by a linear layer.
        in_features: features of one image row (``C * W``); unused with a vocabulary.
        n_layer: number of blocks.
        n_head: attention heads (must divide ``n_embd``).
        n_embd: model width.
        causal: mask attention to earlier positions.
        classify: pool the tokens and classify the sequence (else predict per token).
    """

    block_size: int
    n_out: int
    vocab_size: int | None = None
    in_features: int = 0
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    causal: bool = True
    classify: bool = False


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention (causal when ``config.causal``); its output is a "sequence" site.

    Shape:
        - Input: (B, T, C)
        - Output: (B, T, C)
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.causal = config.n_head, config.causal
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        add_site(self, "drop", "sequence", config.n_embd)  # regularization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.drop(self.c_proj(y))


class FeedForward(nn.Module):
    """Position-wise Linear-GELU-Linear; the hidden (B, T, 4C) and output (B, T, C) are "sequence" sites.

    Shape:
        - Input: (B, T, C)
        - Output: (B, T, C)
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU()
        add_site(self, "drop_hidden", "sequence", 4 * config.n_embd)  # regularization
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        add_site(self, "drop", "sequence", config.n_embd)  # regularization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        h = self.drop_hidden(self.gelu(self.c_fc(x)))  # (B, T, 4C)
        return self.drop(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm Transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``.

    Shape:
        - Input: (B, T, C)
        - Output: (B, T, C)
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = FeedForward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class Transformer(SiteModel):
    """Token (or image-row) embedding + position embedding, blocks, final LayerNorm, then an LM or class head.

    Args:
        config: the hyperparameters.

    Shape:
        - Input: (B, T) token ids, or (B, C, H, W) images (T = H rows of C * W features)
        - Output: (B, T, n_out) for a language model, (B, n_out) for a classifier

    Examples::

        >>> model = Transformer(TransformerConfig(block_size=8, n_out=5, vocab_size=5, n_layer=1, n_head=2, n_embd=8))
        >>> model(torch.randint(0, 5, (2, 8))).shape
        torch.Size([2, 8, 5])
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        if config.vocab_size is not None:
            self.wte: nn.Module = nn.Embedding(config.vocab_size, config.n_embd)
        else:
            self.wte = nn.Linear(config.in_features, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        add_site(self, "embed_drop", "sequence", config.n_embd)  # regularization
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        if config.classify:
            self.head: nn.Module = ClassifierHead(config.n_embd, config.n_out)
        else:
            self.lm_head = nn.Linear(config.n_embd, config.n_out, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on ``x`` (see the class ``Shape:``)."""
        if x.ndim == 4:
            x = x.permute(0, 2, 1, 3).flatten(2)  # (B, C, H, W) -> (B, H, C*W): one token per row
        T = x.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=x.device)  # (T,)
        h = self.embed_drop(self.wte(x) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            h = block(h)  # (B, T, C)
        h = self.ln_f(h)  # (B, T, C)
        if self.config.classify:
            return self.head(h.mean(dim=1))  # (B, C) -> (B, n_out)
        return self.lm_head(h)  # (B, T, n_out)


def build_transformer(
    *,
    in_shape: Sequence[int],
    num_classes: int,
    n_layer: int = 2,
    n_head: int = 4,
    n_embd: int = 64,
    task: str = "auto",
    vocab_size: int | None = None,
) -> Transformer:
    """Small nanoGPT-style Transformer: a causal character-level language model or a sequence classifier.

    Args:
        in_shape: ``(block_size,)`` for token ids, or ``(C, H, W)`` for images read row by row.
        num_classes: the vocabulary size (language model) or the number of classes (classifier).
        n_layer: number of blocks. Default: ``2``
        n_head: attention heads; must divide ``n_embd``. Default: ``4``
        n_embd: model width. Default: ``64``
        task: ``"language_model"`` (causal, per-token logits; token inputs only), ``"classification"``
            (bidirectional, pooled) or ``"auto"``: a language model for token inputs, a classifier for images.
            Default: ``"auto"``
        vocab_size: token vocabulary of a token-input classifier; a language model's vocabulary is
            ``num_classes``. Default: ``None`` (``num_classes``)
    """
    shape = check_shape(in_shape, (1, 3), model="transformer")
    n_layer = check_positive_int(n_layer, name="transformer param n_layer")
    n_head = check_positive_int(n_head, name="transformer param n_head")
    n_embd = check_positive_int(n_embd, name="transformer param n_embd")
    num_classes = check_positive_int(num_classes, name="num_classes")
    if n_embd % n_head:
        raise ValueError(f"transformer param n_embd={n_embd} must be divisible by n_head={n_head}")
    if task not in TASKS:
        raise ValueError(f"transformer param task must be one of {TASKS}, got {task!r}")
    tokens = len(shape) == 1
    vocab = num_classes if vocab_size is None else check_positive_int(vocab_size, name="transformer param vocab_size")
    if task == "auto":
        task = "language_model" if tokens else "classification"
    if task == "language_model" and not tokens:
        raise ValueError(f"transformer param task='language_model' needs token inputs, got in_shape {tuple(shape)}")
    config = TransformerConfig(
        block_size=shape[0] if tokens else shape[1],
        n_out=num_classes,
        vocab_size=vocab if tokens else None,
        in_features=0 if tokens else shape[0] * shape[2],
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        causal=task == "language_model",
        classify=task == "classification",
    )
    return Transformer(config)


build_transformer.input_kinds = ("sequence", "image")  # type: ignore[attr-defined]
build_transformer.tiny_params = {"n_layer": 1, "n_head": 2, "n_embd": 16}  # type: ignore[attr-defined]
