"""A Pythia-70M-shaped GPT (Biderman et al., 2023): GPT-NeoX layout and module names.

Parallel residual ``x + Attn(LN1(x)) + MLP(LN2(x))``, rotary position embedding on the
first quarter of each head's dimensions, exact GELU, untied input embedding and output
projection (``embed_out`` has no bias). Attention is written out (``QKᵀ``, causal mask,
softmax, ``PV``) so its GEMMs appear in a workload. Randomly initialised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["GPT", "GPTConfig", "pythia70m"]


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT-NeoX-style LM; defaults are Pythia-70M.

    Parameters
    ----------
    vocab_size : int, default 50304
    d_model : int, default 512
    n_layers : int, default 6
    n_heads : int, default 8
        Must divide ``d_model``.
    ffn_mult : int, default 4
    rotary_pct : float, default 0.25
        Fraction of each head's dimensions that are rotated.
    rotary_base : float, default 10000.0
    """

    vocab_size: int = 50304
    d_model: int = 512
    n_layers: int = 6
    n_heads: int = 8
    ffn_mult: int = 4
    rotary_pct: float = 0.25
    rotary_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "ffn_mult"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads must divide d_model, not {self.n_heads!r} for d_model={self.d_model}"
            )
        if not 0 <= self.rotary_pct <= 1:
            raise ValueError(f"rotary_pct must be in [0, 1], not {self.rotary_pct!r}")


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Causal self-attention with partial rotary embedding."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.d_model
        self.heads = config.n_heads
        head_dim = d // config.n_heads
        self.rotary = int(head_dim * config.rotary_pct) // 2 * 2
        self.base = config.rotary_base
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)

    def _cos_sin(self, s: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        inv = self.base ** (-torch.arange(0, self.rotary, 2, device=device) / self.rotary)
        angles = torch.arange(s, device=device)[:, None] * inv[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        qkv = self.query_key_value(x).view(b, s, self.heads, 3 * (d // self.heads))
        q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)
        if self.rotary:
            cos, sin = self._cos_sin(s, x.device)
            r = self.rotary
            q = torch.cat((_rotate(q[..., :r], cos, sin), q[..., r:]), dim=-1)
            k = torch.cat((_rotate(k[..., :r], cos, sin), k[..., r:]), dim=-1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        future = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)
        probs = scores.masked_fill(future, float("-inf")).softmax(-1)
        return self.dense((probs @ v).transpose(1, 2).reshape(b, s, d))


class Mlp(nn.Module):
    """``dense_h_to_4h``, GELU, ``dense_4h_to_h``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.ffn_mult * config.d_model
        self.dense_h_to_4h = nn.Linear(config.d_model, hidden)
        self.act = nn.GELU()
        self.dense_4h_to_h = nn.Linear(hidden, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(self.act(self.dense_h_to_4h(x)))


class Layer(nn.Module):
    """Parallel-residual block: ``x + Attn(LN1(x)) + MLP(LN2(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(config.d_model)
        self.post_attention_layernorm = nn.LayerNorm(config.d_model)
        self.attention = Attention(config)
        self.mlp = Mlp(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.input_layernorm(x)) + self.mlp(
            self.post_attention_layernorm(x))


class GPT(nn.Module):
    """Decoder-only LM: token ids ``(B, S)`` to logits ``(B, S, vocab)``.

    Parameters
    ----------
    config : GPTConfig
    """

    def __init__(self, config: GPTConfig = GPTConfig()) -> None:
        super().__init__()
        self.config = config
        self.embed_in = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.Sequential(*(Layer(config) for _ in range(config.n_layers)))
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.embed_out = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.embed_out(self.final_layer_norm(self.layers(self.embed_in(idx))))


def pythia70m(**overrides) -> GPT:
    """Pythia-70M: 70,426,624 parameters (untied embeddings); ``overrides`` go to GPTConfig."""
    return GPT(GPTConfig(**overrides))
