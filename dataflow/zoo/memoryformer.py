"""MemoryFormer LMs in Pythia shapes (Ding et al., NeurIPS 2024), from ``algorithms.memoryformer``.

``memoryformer(size)`` is :class:`algorithms.memoryformer.MemoryFormerLM` at
:meth:`MemoryFormerConfig.preset` ``size`` (tiny 6x512/8 heads, small 12x768/12, base
24x1024/16; tau 8, so ``K = d/8``; sequence 2048) with the 50,304-word vocabulary of the
``pythia70m`` entry: per block one LayerNorm, a hash shared by the Q/K/V memory layers
(``d -> d``), causal attention without an output projection, and the memory block
(LayerNorm, ``d -> (tau+2)·K`` with tau 8, LayerNorm, ``(tau+2)·K -> d`` with tau 10);
learned token and position embeddings; a dense classifier with bias.

The tables hold ``K·2^tau·h`` entries per memory layer (about 69.2 M per tiny block), so
build on ``device="meta"`` for workloads: construction and extraction then allocate nothing.

A decode step with a KV cache is ``context > 0``: :class:`CachedMemoryFormerLM` runs the
``seq_len`` new tokens (1 for one decode step) through the memory layers and lets their
queries attend to ``context`` cached positions plus themselves, so the attention GEMMs are
``S·(context+S)`` and the lookups touch only the new tokens.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from algorithms.memoryformer import MemoryFormerBlock, MemoryFormerConfig, MemoryFormerLM

__all__ = ["CachedMemoryFormerBlock", "CachedMemoryFormerLM", "memoryformer"]

VOCAB = 50304
"""The padded GPT-NeoX vocabulary of Pythia (and of the ``pythia70m`` zoo entry)."""


class CachedMemoryFormerBlock(MemoryFormerBlock):
    """A :class:`MemoryFormerBlock` whose queries also attend to ``context`` cached positions.

    Parameters
    ----------
    config : MemoryFormerConfig
    context : int
        Cached positions before the block's input.
    """

    def __init__(self, config: MemoryFormerConfig, context: int) -> None:
        super().__init__(config)
        self.context = context

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        """``x`` ``(B, S, d)``; ``cache`` ``(k, v)``, each ``(B, H, context, d/H)``, or None for
        zeros of that shape (a workload depends on the cache's shape, not its values)."""
        b, s, d = x.shape
        indices, weights = self.q.hash(self.norm(x))  # one hash shared by Q, K and V
        q, k, v = (layer.lookup(indices, weights).view(b, s, self.n_heads, -1).transpose(1, 2)
                   for layer in (self.q, self.k, self.v))
        if cache is None:
            shape = (b, self.n_heads, self.context, d // self.n_heads)
            cache = (torch.zeros(shape, device=x.device, dtype=x.dtype),) * 2
        k = torch.cat((cache[0], k), dim=2)
        v = torch.cat((cache[1], v), dim=2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        future = torch.ones(s, self.context + s, dtype=torch.bool, device=x.device)
        probs = scores.masked_fill(future.triu(self.context + 1), float("-inf")).softmax(-1)
        x = x + (probs @ v).transpose(1, 2).reshape(b, s, d)
        return x + self.ffn(x)


class CachedMemoryFormerLM(MemoryFormerLM):
    """:class:`MemoryFormerLM` for ``S`` new tokens after ``context`` cached ones.

    Same parameters and module paths as :class:`MemoryFormerLM`; positions run from
    ``context`` to ``context + S - 1``.

    Parameters
    ----------
    config : MemoryFormerConfig
    context : int
    """

    def __init__(self, config: MemoryFormerConfig, context: int) -> None:
        nn.Module.__init__(self)  # MemoryFormerLM's layout with cached blocks
        self.config, self.context = config, context
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.max_seq_len, config.d_model)
        self.blocks = nn.ModuleList(
            CachedMemoryFormerBlock(config, context) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, idx: torch.Tensor, cache=None) -> torch.Tensor:
        """Logits ``(B, S, vocab)`` of the new token ids ``(B, S)``; ``cache`` is one
        ``(k, v)`` per block or None (zeros)."""
        s = idx.shape[1]
        if self.context + s > self.config.max_seq_len:
            raise ValueError(f"context + sequence length {self.context + s} exceeds "
                             f"max_seq_len={self.config.max_seq_len}")
        positions = torch.arange(self.context, self.context + s, device=idx.device)
        x = self.embed(idx) + self.pos(positions)
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[i])
        return self.head(self.norm(x))


def memoryformer(size: str, *, context: int = 0, **overrides) -> MemoryFormerLM:
    """MemoryFormer ``"tiny"``, ``"small"`` or ``"base"`` with the Pythia vocabulary.

    Parameters
    ----------
    size : {"tiny", "small", "base"}
    context : int, default 0
        Cached positions: 0 gives :class:`MemoryFormerLM` itself, more a
        :class:`CachedMemoryFormerLM`.
    **overrides
        :class:`MemoryFormerConfig` fields (``vocab_size`` defaults to 50,304).

    Raises
    ------
    ValueError
        For an unknown size, a negative context or a bad config field.
    """
    if not isinstance(context, int) or isinstance(context, bool) or context < 0:
        raise ValueError(f"context must be a non-negative integer, not {context!r}")
    config = MemoryFormerConfig.preset(size, **{"vocab_size": VOCAB, **overrides})
    return CachedMemoryFormerLM(config, context) if context else MemoryFormerLM(config)
