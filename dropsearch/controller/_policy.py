"""The autoregressive LSTM policy of the REINFORCE controller (ENAS/AutoDropout style, arXiv 2101.01761)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LSTMPolicy"]


class LSTMPolicy(nn.Module):
    """An LSTM that emits one decision after another, each conditioned on all earlier ones.

    The input at step ``i`` is the embedding of the token chosen at step ``i - 1`` (a start token at step 0) plus a
    learned embedding of decision ``i``; decision ``i``'s logits come from its own linear head, padded to the largest
    choice count and masked, so all heads run as one batched ``einsum``.

    Args:
        sizes: number of choices of each decision, in order.
        embedding_size: token and position embedding width. Default: 32
        hidden_size: LSTM hidden width. Default: 64
        generator: draws the initial weights (uniform in [-0.1, 0.1]). Default: ``None`` (global RNG).

    Shape:
        - tokens: (B, L) integer tokens, L = ``len(sizes)``
        - log_prob / entropy output: (B, L)
    """

    def __init__(
        self,
        sizes: tuple[int, ...],
        *,
        embedding_size: int = 32,
        hidden_size: int = 64,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not sizes or min(sizes) < 1:
            raise ValueError(f"sizes must be positive choice counts, got {sizes}")
        self.sizes = tuple(int(s) for s in sizes)
        L, V = len(self.sizes), max(self.sizes)
        offsets = torch.tensor([0, *self.sizes[:-1]]).cumsum(0) + 1  # row 0 is the start token
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("valid", torch.arange(V)[None, :] < torch.tensor(self.sizes)[:, None], persistent=False)
        self.token_emb = nn.Embedding(sum(self.sizes) + 1, embedding_size)
        self.pos_emb = nn.Embedding(L, embedding_size)
        self.lstm = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.head_w = nn.Parameter(torch.empty(L, hidden_size, V))
        self.head_b = nn.Parameter(torch.empty(L, V))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=generator) * 0.2 - 0.1)

    def _inputs(self, prev: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Embeddings of the previous tokens (already offset) plus the decision embeddings of ``steps``."""
        return self.token_emb(prev) + self.pos_emb(steps)

    def _logits(self, h: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Masked logits (B, S, V) of decisions ``steps`` (S,) from hidden states ``h`` (B, S, H)."""
        logits = torch.einsum("bsh,shv->bsv", h, self.head_w[steps]) + self.head_b[steps]
        return logits.masked_fill(~self.valid[steps], float("-inf"))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced log-probabilities and entropies of given token sequences, both (B, L)."""
        B, L = tokens.shape
        steps = torch.arange(L, device=tokens.device)
        prev = torch.cat([tokens.new_zeros(B, 1), tokens[:, :-1] + self.offsets[:-1]], dim=1)  # (B, L)
        h, _ = self.lstm(self._inputs(prev, steps))  # (B, L, H)
        log_p = torch.log_softmax(self._logits(h, steps), dim=-1)  # (B, L, V)
        chosen = log_p.gather(-1, tokens[..., None]).squeeze(-1)  # (B, L)
        entropy = -(log_p.exp() * log_p.nan_to_num(neginf=0.0)).sum(-1)  # (B, L)
        return chosen, entropy

    @torch.no_grad()
    def sample(
        self, n: int, *, greedy: bool = False, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``n`` sequences token by token (or decode greedily); returns tokens (n, L) and their log-prob (n,)."""
        device = self.head_w.device
        prev = torch.zeros(n, dtype=torch.long, device=device)
        state = None
        tokens, log_prob = [], torch.zeros(n, device=device)
        for i in range(len(self.sizes)):
            step = torch.tensor([i], device=device)
            h, state = self.lstm(self._inputs(prev[:, None], step), state)  # (n, 1, H)
            log_p = torch.log_softmax(self._logits(h, step)[:, 0], dim=-1)  # (n, V)
            if greedy:
                tok = log_p.argmax(-1)
            else:
                tok = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(-1)
            log_prob += log_p.gather(-1, tok[:, None]).squeeze(-1)
            tokens.append(tok)
            prev = tok + self.offsets[i]
        return torch.stack(tokens, dim=1), log_prob
