"""AttMEMO on a small trained transformer: hit rate, loss change and MACs saved vs threshold."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..attmemo import (
    AttentionEmbedder,
    MemoDB,
    MemoIndex,
    MemoizedSelfAttention,
    collect_attention,
    train_embedder,
    write_trace,
)
from ..transformer import TransformerConfig, TransformerLM, lm_loss
from ._common import batches, byte_corpus, progress_stage, say, torch_threads, write_table
from .memoryformer_lm import train_lm

__all__ = ["run_attmemo_experiment"]


def run_attmemo_experiment(
    out_dir,
    thresholds: Sequence[float] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99),
    train_steps: int = 400,
    memo_sequences: int = 2048,
    eval_sequences: int = 256,
    layer: int = 0,
    embed_steps: int = 400,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    seq_len: int = 32,
    seed: int = 0,
    corpus_bytes: int = 1_000_000,
    threads: int | None = 1,
    progress=None,
) -> pd.DataFrame:
    """Train a byte-level LM, memoize one layer's attention, sweep the threshold.

    Steps: train :class:`~algorithms.transformer.TransformerLM` on the stdlib byte
    corpus (first 90%); store the layer's maps of ``memo_sequences`` training windows
    in a :class:`~algorithms.memo_db.MemoDB` (a file in a temporary directory) and
    :class:`~algorithms.memo_db.MemoIndex`; train the embedder on them; then, for each
    threshold, evaluate ``eval_sequences`` held-out windows with the memoized layer.
    Writes ``attmemo_results.{csv,md}`` and ``attmemo_threshold.png`` into ``out_dir``, and per
    threshold the hit of every evaluated sequence, ``traces/threshold_<t>.csv``
    (:func:`~algorithms.attmemo.write_trace`: ``satmem simulate --memo`` reads it).

    Parameters
    ----------
    out_dir : str or os.PathLike
    thresholds : sequence of float
        Cosine-similarity thresholds to sweep.
    train_steps : int, default 400
        LM training steps (AdamW, batch 16).
    memo_sequences, eval_sequences : int
        Windows stored in the memo DB / evaluated.
    layer : int, default 0
        The memoized block.
    embed_steps : int, default 400
        Embedder training steps.
    d_model, n_layers, n_heads, seq_len : int
        LM shape.
    seed : int, default 0
    corpus_bytes : int, default 1_000_000
    threads : int or None, default 1
        ``torch`` intra-op threads while running (restored afterwards).
    progress : callable, optional
        Receives a line per stage (LM, embedder, each threshold); a
        ``reports.progress.ProgressBar`` also draws a bar over the LM's training steps and
        the thresholds. None: silent.

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``threshold``, ``hit_rate``, ``val_loss``,
        ``loss_change`` (vs. no memoization, nats/byte), ``attention_macs_saved``
        (QKᵀ MACs skipped over the evaluation set) and ``saved_fraction`` (of the
        memoized layer's QKᵀ MACs).
    """
    with torch_threads(threads):
        return _run_attmemo_experiment(
            out_dir,
            thresholds=thresholds,
            train_steps=train_steps,
            memo_sequences=memo_sequences,
            eval_sequences=eval_sequences,
            layer=layer,
            embed_steps=embed_steps,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            seq_len=seq_len,
            seed=seed,
            corpus_bytes=corpus_bytes,
            progress=progress,
        )


def _run_attmemo_experiment(
    out_dir,
    thresholds,
    train_steps,
    memo_sequences,
    eval_sequences,
    layer,
    embed_steps,
    d_model,
    n_layers,
    n_heads,
    seq_len,
    seed,
    corpus_bytes,
    progress=None,
) -> pd.DataFrame:
    torch.manual_seed(seed)
    data = byte_corpus(corpus_bytes)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    config = TransformerConfig(
        d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_seq_len=seq_len
    )
    model = TransformerLM(config)
    seconds = train_lm(model, train, train_steps, seq_len, 16, 3e-3, seed, progress,
                       "LM training steps")
    say(progress, f"LM trained: {train_steps} steps in {seconds:.1f} s")
    model.eval()
    g = torch.Generator().manual_seed(seed + 1)
    memo_x, _ = batches(train, seq_len, memo_sequences, g)
    eval_x, eval_y = batches(val, seq_len, eval_sequences, torch.Generator().manual_seed(7))
    inputs, maps = collect_attention(model, memo_x, layer)
    embedder = AttentionEmbedder(seq_len, d_model)
    train_embedder(embedder, inputs, maps, steps=embed_steps, seed=seed)
    say(progress, f"embedder trained on {len(maps)} attention maps ({embed_steps} steps)")
    embedder.eval()
    with torch.no_grad():
        baseline = lm_loss(model(eval_x), eval_y).item()
        keys = embedder(inputs)
    block = model.blocks[layer]
    original = block.attn
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = MemoDB(Path(tmp) / "attmemo.db", keys.shape[1], tuple(maps.shape[1:]), durable=False)
        index = MemoIndex(keys.shape[1])
        for key, m in zip(keys, maps, strict=True):
            db.append(key, m)
        index.add(keys)
        progress_stage(progress, "thresholds", len(thresholds))
        try:
            for threshold in thresholds:
                memo = MemoizedSelfAttention(original, embedder, db, index, threshold,
                                             layer=layer)
                block.attn = memo
                with torch.no_grad():
                    loss = lm_loss(model(eval_x), eval_y).item()
                rows.append(
                    {
                        "threshold": threshold,
                        "hit_rate": memo.hit_rate,
                        "val_loss": loss,
                        "loss_change": loss - baseline,
                        "attention_macs_saved": memo.macs_saved,
                        "saved_fraction": memo.macs_saved
                        / (eval_sequences * seq_len * seq_len * d_model),
                    }
                )
                (Path(out_dir) / "traces").mkdir(parents=True, exist_ok=True)
                write_trace(Path(out_dir) / "traces" / f"threshold_{threshold:g}.csv", [memo])
                say(progress, f"threshold {threshold:g}: hit rate {memo.hit_rate:.1%}, loss "
                              f"change {loss - baseline:+.4f}")
        finally:
            block.attn = original
    results = pd.DataFrame(rows)
    out = Path(out_dir)
    title = (
        f"AttMEMO on layer {layer}: baseline loss {baseline:.4f} nats/byte "
        f"({baseline / math.log(2):.3f} bits/byte), index {'IVF' if index.approximate else 'exact'}"
    )
    write_table(results, out, "attmemo_results", title)
    _plot(results, out / "attmemo_threshold.png")
    return results


def _plot(results: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(results))
    ax.plot(x, results["hit_rate"] * 100, "o-", color="C0", label="hit rate (%)")
    ax.set_xticks(x, [str(t) for t in results["threshold"]])
    ax.set_xlabel("similarity threshold")
    ax.set_ylabel("hit rate (%)", color="C0")
    twin = ax.twinx()
    twin.plot(x, results["loss_change"], "s--", color="C3", label="loss change")
    twin.set_ylabel("validation loss change (nats/byte)", color="C3")
    ax.set_title("AttMEMO: reuse vs accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
