"""A BERT-base-shaped encoder (Devlin et al., 2019) in Hugging Face's module layout and names.

Word, position and token-type embeddings, then ``n_layers`` post-norm blocks
``LN(x + Attn(x))``, ``LN(x + FFN(x))`` with exact GELU, a tanh pooler on the first token and a
sequence classifier (``num_labels`` outputs). Attention is bidirectional and written out
(``QKᵀ``, scale, softmax, ``PV``) so that its GEMMs and the softmax appear in a workload, and
so that AttMEMO's memoization (:mod:`dataflow.memo`) can find the ops a stored map replaces.
Randomly initialised; no attention mask (every sequence is full length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Bert", "BertConfig", "bert_base"]


@dataclass(frozen=True)
class BertConfig:
    """Shape of a BERT encoder; defaults are BERT-base (uncased).

    Parameters
    ----------
    vocab_size : int, default 30522
    d_model : int, default 768
    n_layers : int, default 12
    n_heads : int, default 12
        Must divide ``d_model``.
    ffn : int, default 3072
    max_positions : int, default 512
    type_vocab : int, default 2
    num_labels : int, default 2
    """

    vocab_size: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    ffn: int = 3072
    max_positions: int = 512
    type_vocab: int = 2
    num_labels: int = 2

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads must divide d_model, not {self.n_heads!r} for d_model={self.d_model}")


class SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention: ``query``, ``key``, ``value`` projections."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.d_model
        self.heads = config.n_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        h = self.heads

        def split(t):
            return t.view(b, s, h, d // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        probs = scores.softmax(-1)
        return (probs @ v).transpose(1, 2).reshape(b, s, d)


class AttentionOutput(nn.Module):
    """``LayerNorm(x + dense(a))``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.LayerNorm = nn.LayerNorm(config.d_model, eps=1e-12)

    def forward(self, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(x + self.dense(a))


class Attention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = SelfAttention(config)
        self.output = AttentionOutput(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x), x)


class Intermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.ffn)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class Output(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.ffn, config.d_model)
        self.LayerNorm = nn.LayerNorm(config.d_model, eps=1e-12)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(x + self.dense(h))


class Layer(nn.Module):
    """One post-norm encoder block."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = Output(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(Layer(config) for _ in range(config.n_layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.d_model
        self.word_embeddings = nn.Embedding(config.vocab_size, d)
        self.position_embeddings = nn.Embedding(config.max_positions, d)
        self.token_type_embeddings = nn.Embedding(config.type_vocab, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        s = idx.shape[1]
        pos = torch.arange(s, device=idx.device)
        types = torch.zeros_like(idx)
        x = (self.word_embeddings(idx) + self.position_embeddings(pos)
             + self.token_type_embeddings(types))
        return self.LayerNorm(x)


class Bert(nn.Module):
    """Encoder with a pooler and a sequence classifier: token ids ``(B, S)`` to logits
    ``(B, num_labels)``.

    Parameters
    ----------
    config : BertConfig
    """

    def __init__(self, config: BertConfig = BertConfig()) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = nn.Linear(config.d_model, config.d_model)
        self.classifier = nn.Linear(config.d_model, config.num_labels)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.shape[1] > self.config.max_positions:
            raise ValueError(f"sequence {idx.shape[1]} exceeds max_positions "
                             f"{self.config.max_positions}")
        h = self.encoder(self.embeddings(idx))
        return self.classifier(torch.tanh(self.pooler(h[:, 0])))


def bert_base(**overrides) -> Bert:
    """BERT-base: 109,483,778 parameters (with the pooler and a 2-label classifier);
    ``overrides`` go to :class:`BertConfig`."""
    return Bert(BertConfig(**overrides))
