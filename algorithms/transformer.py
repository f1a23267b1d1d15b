"""A plain pre-norm causal transformer LM: the dense baseline of MemoryFormer and AttMEMO.

Attention is written out (``softmax(QKᵀ/√d_h)·V``) rather than fused, because AttMEMO
needs the probability maps and the FLOP counts need the GEMMs to be visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn

__all__ = [
    "CausalSelfAttention",
    "TransformerBlock",
    "TransformerConfig",
    "TransformerLM",
    "causal_attention",
    "lm_loss",
]


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of a dense causal transformer LM.

    Parameters
    ----------
    vocab_size : int, default 256
        Byte-level by default.
    d_model : int, default 128
    n_layers : int, default 2
    n_heads : int, default 4
        Must divide ``d_model``.
    max_seq_len : int, default 128
    ffn_mult : int, default 4
        FFN hidden width is ``ffn_mult * d_model``.
    """

    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    max_seq_len: int = 128
    ffn_mult: int = 4

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len", "ffn_mult"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads must divide d_model, not {self.n_heads!r} for d_model={self.d_model}"
            )


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal multi-head attention with explicit probabilities.

    Parameters
    ----------
    q, k, v : torch.Tensor
        ``(B, H, S, d_h)``.
    probs : torch.Tensor or None
        If given, ``(B, H, S, S)`` probabilities to use instead of computing
        ``softmax(QKᵀ/√d_h)`` (AttMEMO's reuse path; ``q`` and ``k`` are then unused).

    Returns
    -------
    out : torch.Tensor
        ``(B, H, S, d_h)``.
    probs : torch.Tensor
        ``(B, H, S, S)``, zero above the diagonal.
    """
    if probs is None:
        s = q.shape[-2]
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        future = torch.ones(s, s, dtype=torch.bool, device=q.device).triu(1)
        probs = scores.masked_fill(future, float("-inf")).softmax(-1)
    return probs @ v, probs


class CausalSelfAttention(nn.Module):
    """Dense multi-head causal self-attention: QKV projection, attention, out projection.

    Parameters
    ----------
    d_model, n_heads : int
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, S, d)`` to ``(B, H, S, d_h)``."""
        b, s, d = t.shape
        return t.view(b, s, self.n_heads, d // self.n_heads).transpose(1, 2)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head ``q, k, v`` of ``x``."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.split_heads(q), self.split_heads(k), self.split_heads(v)

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        """Merge heads and apply the output projection."""
        b, h, s, dh = out.shape
        return self.out(out.transpose(1, 2).reshape(b, s, h * dh))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.project(x)
        out, _ = causal_attention(q, k, v)
        return self.finish(out)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))``, then ``x + FFN(LN(x))`` with GELU."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.norm1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, config.n_heads)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, config.ffn_mult * d), nn.GELU(), nn.Linear(config.ffn_mult * d, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TransformerLM(nn.Module):
    """Token and learned position embeddings, blocks, final norm, dense classifier.

    Parameters
    ----------
    config : TransformerConfig
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.max_seq_len, config.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """Token plus position embeddings of ``idx`` ``(B, S)``."""
        if idx.shape[1] > self.config.max_seq_len:
            raise ValueError(
                f"sequence length {idx.shape[1]} exceeds max_seq_len={self.config.max_seq_len}"
            )
        positions = torch.arange(idx.shape[1], device=idx.device)
        return self.embed(idx) + self.pos(positions)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, S, vocab)`` of token ids ``idx`` ``(B, S)``."""
        x = self.embed_tokens(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross entropy (nats) of ``(B, S, V)`` logits and ``(B, S)`` targets."""
    return nnf.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
