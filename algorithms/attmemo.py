"""AttMEMO (Feng et al., arXiv 2301.09262): memoize self-attention probability maps.

Pieces:

- :class:`AttentionEmbedder`: a small MLP mapping a layer's attention input ``(S, d)``
  to a unit-norm key; :func:`train_embedder` trains it Siamese-style so that the cosine
  similarity of two keys tracks ``1 - TV`` of their maps (TV: total-variation distance,
  averaged over heads and query rows).
- :class:`~algorithms.memo_db.MemoDB` (memory-mapped, append-only, crash-safe) and
  :class:`~algorithms.memo_db.MemoIndex` (Faiss: exact for small stores, IVF-Flat above).
- :class:`MemoizedSelfAttention`: wraps a trained
  :class:`~algorithms.transformer.CausalSelfAttention`; per sequence, a key whose nearest
  stored key has similarity ``>= threshold`` is a hit and reuses the stored map, skipping
  ``QKᵀ`` and the softmax; V and the output projection still run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from .memo_db import MemoDB, MemoIndex
from .transformer import CausalSelfAttention, TransformerLM, causal_attention

__all__ = [
    "AttentionEmbedder",
    "MemoDB",
    "MemoIndex",
    "MemoizedSelfAttention",
    "collect_attention",
    "total_variation",
    "train_embedder",
    "write_trace",
]


class AttentionEmbedder(nn.Module):
    """MLP ``(S·d) -> hidden -> d_embed`` with unit-norm output.

    Parameters
    ----------
    seq_len, d_model : int
        Shape of one attention input.
    d_embed : int, default 128
    hidden : int, default 256
    """

    def __init__(self, seq_len: int, d_model: int, d_embed: int = 128, hidden: int = 256):
        super().__init__()
        self.seq_len, self.d_model, self.d_embed = seq_len, d_model, d_embed
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(seq_len * d_model, hidden),
            nn.ReLU(),
            nn.Linear(hidden, d_embed),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Keys ``(B, d_embed)`` of attention inputs ``(B, S, d)``."""
        return nnf.normalize(self.net(x), dim=-1)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean over heads and rows of ``½·Σ|p - q|``: ``(..., H, S, S)`` maps to ``(...)``."""
    return 0.5 * (p - q).abs().sum(-1).mean((-1, -2))


def train_embedder(
    embedder: AttentionEmbedder,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    steps: int = 300,
    batch: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Fit the embedder so that ``cos(e_i, e_j) ≈ 1 - TV(map_i, map_j)`` on random pairs.

    Half of each batch pairs a sample with itself plus small input noise, so that near
    duplicates are pulled to similarity 1.

    Parameters
    ----------
    embedder : AttentionEmbedder
    inputs : torch.Tensor
        ``(N, S, d)`` attention inputs.
    maps : torch.Tensor
        ``(N, H, S, S)`` their probability maps.
    steps, batch : int
    lr : float
    seed : int

    Returns
    -------
    list of float
        The loss (mean squared error) of each step.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(embedder.parameters(), lr=lr)
    losses = []
    n = len(inputs)
    for _ in range(steps):
        i = torch.randint(0, n, (batch,), generator=g)
        j = torch.randint(0, n, (batch,), generator=g)
        j[: batch // 2] = i[: batch // 2]
        xj = inputs[j] + 0.01 * torch.randn(inputs[j].shape, generator=g)
        target = 1 - total_variation(maps[i], maps[j])
        sim = (embedder(inputs[i]) * embedder(xj)).sum(-1)
        loss = nnf.mse_loss(sim, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def collect_attention(
    model: TransformerLM, idx: torch.Tensor, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention inputs and probability maps of block ``layer`` for token ids ``idx``.

    Returns
    -------
    inputs : torch.Tensor
        ``(B, S, d)``: the normalised hidden states entering the attention.
    maps : torch.Tensor
        ``(B, H, S, S)``.
    """
    attn = model.blocks[layer].attn
    captured = {}
    handle = attn.register_forward_pre_hook(lambda mod, args: captured.setdefault("x", args[0]))
    try:
        model(idx)
    finally:
        handle.remove()
    x = captured["x"]
    _, probs = causal_attention(*attn.project(x))
    return x, probs


class MemoizedSelfAttention(nn.Module):
    """Self-attention that reuses stored probability maps of similar inputs.

    Parameters
    ----------
    attention : CausalSelfAttention
        The trained attention whose maps are memoized (its weights are shared).
    embedder : AttentionEmbedder
    db : MemoDB
    index : MemoIndex
        Must hold exactly the keys of ``db``, in the same order.
    threshold : float, default 0.99
        Cosine similarity at or above which the nearest stored map is reused.
    populate : bool, default False
        If True, each miss is appended to ``db`` and ``index``.
    layer : int or str, default 0
        The layer this module memoizes, as its trace names it (:func:`write_trace`).

    Attributes
    ----------
    hits, misses : int
        Sequences served from the store / computed, since the last :meth:`reset_stats`.
    trace : list of bool
        Per sequence, in order, whether it hit (since the last :meth:`reset_stats`).
    macs_saved : int
        ``QKᵀ`` multiply-accumulates skipped: ``S²·d`` per hit (the softmax's ``H·S²``
        exponentials are skipped too and not counted).
    """

    def __init__(
        self,
        attention: CausalSelfAttention,
        embedder: AttentionEmbedder,
        db: MemoDB,
        index: MemoIndex,
        threshold: float = 0.99,
        populate: bool = False,
        layer: int | str = 0,
    ) -> None:
        super().__init__()
        if len(db) != len(index):
            raise ValueError(
                f"MemoizedSelfAttention: db holds {len(db)} maps but index {len(index)} keys"
            )
        self.attention, self.embedder, self.db, self.index = attention, embedder, db, index
        self.threshold, self.populate, self.layer = float(threshold), populate, layer
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero ``hits``, ``misses`` and ``macs_saved``; empty ``trace``."""
        self.hits = self.misses = self.macs_saved = 0
        self.trace: list[bool] = []

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.attention.project(x)
        keys = self.embedder(x)
        sims, ids = self.index.search(keys)
        hit = torch.from_numpy((sims >= self.threshold) & (ids >= 0))
        probs = torch.empty(b, v.shape[1], s, s, dtype=v.dtype, device=v.device)
        if hit.any():
            rows = hit.nonzero().flatten().tolist()
            stored = [self.db.get_map(int(ids[r])) for r in rows]
            probs[hit] = torch.stack(stored).to(dtype=v.dtype, device=v.device)
        miss = ~hit
        if miss.any():
            _, computed = causal_attention(q[miss], k[miss], v[miss])
            probs[miss] = computed
            if self.populate:
                for key, p in zip(keys[miss], computed, strict=True):
                    self.db.append(key, p)
                self.index.add(keys[miss])
        n_hits = int(hit.sum())
        self.trace.extend(bool(h) for h in hit.tolist())
        self.hits += n_hits
        self.misses += b - n_hits
        self.macs_saved += n_hits * s * s * d
        out, _ = causal_attention(q, k, v, probs=probs)
        return self.attention.finish(out)

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)`` (0 when nothing ran)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def write_trace(path, modules) -> int:
    """Write the hit traces of memoized layers as CSV (``layer, sequence, hit``), the format
    :func:`dataflow.memo.read_trace` reads; returns the rows written.

    Parameters
    ----------
    path : str or os.PathLike
    modules : iterable of MemoizedSelfAttention
        Each contributes its ``trace`` under its ``layer``.
    """
    import csv

    n = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["layer", "sequence", "hit"])
        for mod in modules:
            for i, hit in enumerate(mod.trace):
                w.writerow([mod.layer, i, int(hit)])
                n += 1
    return n
