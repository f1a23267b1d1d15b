"""MemoryFormer (Ding et al., NeurIPS 2024): hashed table lookups in place of dense layers.

A :class:`MemoryLayer` splits ``x ∈ R^d`` into ``K = d / tau`` chunks ``z_k`` of ``tau``
elements and returns ``y = Σ_k p(z_k) · T_k[h(z_k)] + b``:

- hash ``h(z) = Σ_j [z_j >= 0] · 2^(tau-1-j)``: sign bits, **most significant bit first**
  (element 0 of the chunk is bit ``tau-1``), ``sign(0) = +1`` (as the official code);
- weight ``"paper"``: ``p(z) = Π_j sigmoid(2|z_j|/t)`` (the paper's softmax over the
  ``2^tau`` sign patterns, in closed form); ``"official"``: ``||z||_1 · p(z)`` (what the
  official code computes; it uses ``t = 1``);
- tables ``T_k ∈ R^{2^tau x h}``; the table gradient is a scatter-add of ``p(z_k) · dY``
  into the hashed rows only (custom autograd); the input gradient flows through
  ``p(z)`` (``d|z|/dz = sign(z)``, 0 at 0, as autograd's ``abs``).

A MemoryFormer block is: LayerNorm, one shared hash, Q/K/V from three tables, unchanged
causal multi-head attention (no output projection: the paper's cost model has none),
residual; then the FFN replaced by :class:`MemoryBlock` (LayerNorm, memory layer to
``(tau+2)·K`` values, LayerNorm, memory layer with ``tau+2``-bit chunks back to ``d``),
residual. The classifier is the only dense layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn

from .transformer import TransformerConfig, causal_attention

__all__ = [
    "MemoryBlock",
    "MemoryFormerBlock",
    "MemoryFormerConfig",
    "MemoryFormerLM",
    "MemoryLayer",
    "block_flops",
    "gather_accumulate",
]

WEIGHTS = ("paper", "official")


class _GatherAccumulate(torch.autograd.Function):
    """``y[n] = Σ_k w[n,k] · T[k, idx[n,k]]`` with a scatter-add table gradient."""

    @staticmethod
    def forward(ctx, weights, indices, tables):
        k, rows, h = tables.shape
        flat = indices + torch.arange(k, device=indices.device) * rows
        ctx.save_for_backward(weights, flat, tables)
        return nnf.embedding_bag(
            flat, tables.reshape(k * rows, h), per_sample_weights=weights, mode="sum"
        )

    @staticmethod
    def backward(ctx, dy):
        weights, flat, tables = ctx.saved_tensors
        k, rows, h = tables.shape
        dw = dtables = None
        if ctx.needs_input_grad[0]:
            gathered = tables.reshape(k * rows, h)[flat]  # (N, K, h)
            dw = (gathered @ dy.unsqueeze(-1)).squeeze(-1)
        if ctx.needs_input_grad[2]:
            contrib = (weights.unsqueeze(-1) * dy.unsqueeze(1)).reshape(-1, h)
            dtables = torch.zeros_like(tables).reshape(k * rows, h)
            dtables.index_add_(0, flat.reshape(-1), contrib)
            dtables = dtables.reshape(k, rows, h)
        return dw, None, dtables


def gather_accumulate(
    weights: torch.Tensor, indices: torch.Tensor, tables: torch.Tensor
) -> torch.Tensor:
    """Weighted sum of one hashed row per table: the lookup engine's GATHER.

    Parameters
    ----------
    weights : torch.Tensor
        ``(N, K)`` per-chunk weights ``p(z_k)``.
    indices : torch.Tensor
        ``(N, K)`` int64 rows in ``[0, 2^tau)``.
    tables : torch.Tensor
        ``(K, 2^tau, h)``.

    Returns
    -------
    torch.Tensor
        ``(N, h)``. Backward: ``dT[k, idx[n,k]] += w[n,k]·dY[n]`` (nothing elsewhere) and
        ``dw[n,k] = <T[k, idx[n,k]], dY[n]>``.
    """
    return _GatherAccumulate.apply(weights, indices, tables)


class MemoryLayer(nn.Module):
    """Hashed-table replacement of ``nn.Linear(in_features, out_features)``.

    Parameters
    ----------
    in_features : int
        ``d``; must be a multiple of ``tau``.
    out_features : int
        ``h``, the width of a table row.
    tau : int, default 8
        Bits per chunk; each of the ``K = d / tau`` tables has ``2^tau`` rows.
    temperature : float, default 1.0
        ``t`` in ``sigmoid(2|z_j|/t)``.
    weight : {"paper", "official"}, default "paper"
    bias : bool, default True

    Raises
    ------
    ValueError
        For ``in_features`` not a multiple of ``tau``, a non-positive size or temperature,
        or an unknown ``weight``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        tau: int = 8,
        temperature: float = 1.0,
        weight: str = "paper",
        bias: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(tau, int) or not 1 <= tau <= 20:
            raise ValueError(f"tau must be an integer in [1, 20], not {tau!r}")
        if in_features % tau:
            raise ValueError(f"in_features must be a multiple of tau={tau}, not {in_features!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, not {temperature!r}")
        if weight not in WEIGHTS:
            raise ValueError(f"weight must be 'paper' or 'official', not {weight!r}")
        self.in_features, self.out_features = in_features, out_features
        self.tau, self.temperature, self.weight_kind = tau, float(temperature), weight
        self.num_tables = in_features // tau
        self.tables = nn.Parameter(
            torch.randn(self.num_tables, 2**tau, out_features) / math.sqrt(self.num_tables)
        )
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.register_buffer("bit_values", 2 ** torch.arange(tau - 1, -1, -1), persistent=False)

    def hash(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Table indices and weights of ``x``.

        Parameters
        ----------
        x : torch.Tensor
            ``(..., in_features)``.

        Returns
        -------
        indices : torch.Tensor
            ``(..., K)`` int64, MSB-first sign bits.
        weights : torch.Tensor
            ``(..., K)``, differentiable with respect to ``x``.
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"MemoryLayer: expected input (..., {self.in_features}), got {tuple(x.shape)}"
            )
        z = x.reshape(*x.shape[:-1], self.num_tables, self.tau)
        indices = ((z >= 0).long() * self.bit_values).sum(-1)
        log_p = nnf.logsigmoid(2 * z.abs() / self.temperature).sum(-1)
        weights = log_p.exp()
        if self.weight_kind == "official":
            weights = z.abs().sum(-1) * weights
        return indices, weights

    def lookup(self, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``Σ_k weights_k · T_k[indices_k] + b`` for hashes from :meth:`hash`."""
        lead = indices.shape[:-1]
        y = gather_accumulate(
            weights.reshape(-1, self.num_tables).to(self.tables.dtype),
            indices.reshape(-1, self.num_tables),
            self.tables,
        )
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lookup(*self.hash(x))

    @torch.no_grad()
    def bucket_counts(self, x: torch.Tensor) -> torch.Tensor:
        """How often each row of each table is hit by the tokens of ``x``: ``(K, 2^tau)``."""
        indices, _ = self.hash(x)
        flat = indices.reshape(-1, self.num_tables)
        offsets = torch.arange(self.num_tables, device=flat.device) * 2**self.tau
        counts = torch.bincount(
            (flat + offsets).reshape(-1), minlength=self.num_tables * 2**self.tau
        )
        return counts.reshape(self.num_tables, 2**self.tau)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, tau={self.tau}, "
            f"tables={self.num_tables}x{2**self.tau}, weight={self.weight_kind!r}"
        )


@dataclass(frozen=True)
class MemoryFormerConfig:
    """Shape of a MemoryFormer LM (and of its same-shape dense twin).

    Parameters
    ----------
    vocab_size, d_model, n_layers, n_heads, max_seq_len : int
        As :class:`algorithms.transformer.TransformerConfig`.
    tau : int, default 8
        ``K = d_model / tau`` tables per memory layer.
    temperature : float, default 1.0
    weight : {"paper", "official"}, default "paper"
    """

    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    max_seq_len: int = 128
    tau: int = 8
    temperature: float = 1.0
    weight: str = "paper"

    def __post_init__(self) -> None:
        self.dense_twin()  # validates the shared fields
        if self.d_model % self.tau:
            raise ValueError(f"tau must divide d_model={self.d_model}, not {self.tau!r}")
        if self.weight not in WEIGHTS:
            raise ValueError(f"weight must be 'paper' or 'official', not {self.weight!r}")

    @property
    def num_tables(self) -> int:
        """``K = d_model / tau``."""
        return self.d_model // self.tau

    @classmethod
    def preset(cls, name: str, **overrides) -> MemoryFormerConfig:
        """Pythia-shaped presets ``"tiny"`` (6x512, 8 heads), ``"small"`` (12x768, 12
        heads), ``"base"`` (24x1024, 16 heads), sequence 2048, tau 8."""
        shapes = {"tiny": (6, 512, 8), "small": (12, 768, 12), "base": (24, 1024, 16)}
        if name not in shapes:
            raise ValueError(f"preset must be one of 'tiny', 'small', 'base', not {name!r}")
        layers, d, heads = shapes[name]
        fields = dict(d_model=d, n_layers=layers, n_heads=heads, max_seq_len=2048)
        return cls(**{**fields, **overrides})

    def dense_twin(self) -> TransformerConfig:
        """The same-shape dense transformer (4x FFN)."""
        return TransformerConfig(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            max_seq_len=self.max_seq_len,
        )


class MemoryBlock(nn.Module):
    """FFN replacement: ``ML2(LN2(ML1(LN1(x))))``, no activation, residual left to the caller.

    ``ML1`` maps ``d`` to ``(tau+2)·K`` with ``tau``-bit chunks; ``ML2`` maps back to ``d``
    with ``(tau+2)``-bit chunks (4x the rows, like a 4x FFN).
    """

    def __init__(self, d_model: int, tau: int = 8, temperature: float = 1.0, weight="paper"):
        super().__init__()
        hidden = (tau + 2) * (d_model // tau)
        self.norm1 = nn.LayerNorm(d_model)
        self.up = MemoryLayer(d_model, hidden, tau, temperature, weight)
        self.norm2 = nn.LayerNorm(hidden)
        self.down = MemoryLayer(hidden, d_model, tau + 2, temperature, weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.norm2(self.up(self.norm1(x))))


class MemoryFormerBlock(nn.Module):
    """LN, shared hash, Q/K/V memory layers, causal MHA, residual; MemoryBlock, residual.

    Parameters
    ----------
    config : MemoryFormerConfig
    """

    def __init__(self, config: MemoryFormerConfig) -> None:
        super().__init__()
        d, tau, t, w = config.d_model, config.tau, config.temperature, config.weight
        self.n_heads = config.n_heads
        self.norm = nn.LayerNorm(d)
        self.q, self.k, self.v = (MemoryLayer(d, d, tau, t, w) for _ in range(3))
        self.ffn = MemoryBlock(d, tau, t, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        indices, weights = self.q.hash(self.norm(x))  # one hash shared by Q, K and V
        heads = [
            layer.lookup(indices, weights).view(b, s, self.n_heads, -1).transpose(1, 2)
            for layer in (self.q, self.k, self.v)
        ]
        out, _ = causal_attention(*heads)
        x = x + out.transpose(1, 2).reshape(b, s, d)
        return x + self.ffn(x)


class MemoryFormerLM(nn.Module):
    """Embeddings, MemoryFormer blocks, final LayerNorm, dense classifier.

    Parameters
    ----------
    config : MemoryFormerConfig
    """

    def __init__(self, config: MemoryFormerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.max_seq_len, config.d_model)
        self.blocks = nn.ModuleList(MemoryFormerBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, S, vocab)`` of token ids ``(B, S)``."""
        if idx.shape[1] > self.config.max_seq_len:
            raise ValueError(
                f"sequence length {idx.shape[1]} exceeds max_seq_len={self.config.max_seq_len}"
            )
        x = self.embed(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def block_flops(config: MemoryFormerConfig, seq_len: int) -> dict[str, dict[str, int]]:
    """Multiply-accumulates of one block's forward pass, MemoryFormer and dense.

    A multiply-add counts as one FLOP (the paper's convention). Attention counts the
    full ``S x S`` score and value GEMMs (``2·S²·d``, no causal halving). A memory layer
    with ``K`` tables of ``h``-wide rows costs ``S·K·h`` (one weighted row accumulate per
    table); hashing and the weights ``p(z)`` are elementwise (``S·d_in`` each) and listed
    separately, not in ``total``. The paper's approximation is ``2S²d + 6KSd`` versus
    ``2S²d + 12Sd²``; the exact count here is ``2S²d + 5KSd + 2SK²`` for MemoryFormer.

    Parameters
    ----------
    config : MemoryFormerConfig
    seq_len : int

    Returns
    -------
    dict
        ``{"memoryformer": {...}, "dense": {...}}`` each with ``attention``, ``qkv``,
        ``out_proj``, ``ffn``, ``total`` (MACs) and, for MemoryFormer, ``hash_elementwise``.
    """
    s, d, k, tau = seq_len, config.d_model, config.num_tables, config.tau
    hidden = (tau + 2) * k
    attention = 2 * s * s * d
    mf = {
        "attention": attention,
        "qkv": 3 * s * k * d,
        "out_proj": 0,
        "ffn": s * k * hidden + s * k * d,
        "hash_elementwise": 2 * (2 * s * d + s * hidden),
    }
    mf["total"] = mf["attention"] + mf["qkv"] + mf["ffn"]
    dense = {
        "attention": attention,
        "qkv": 3 * s * d * d,
        "out_proj": s * d * d,
        "ffn": 2 * s * d * 4 * d,
    }
    dense["total"] = sum(dense.values())
    return {"memoryformer": mf, "dense": dense}
