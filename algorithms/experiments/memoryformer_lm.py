"""A tiny MemoryFormer LM against the same-shape dense transformer on stdlib bytes."""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..memoryformer import MemoryFormerConfig, MemoryFormerLM, block_flops
from ..transformer import TransformerLM, lm_loss
from ._common import batches, byte_corpus, progress_steps, say, torch_threads, write_table

__all__ = ["run_memoryformer_experiment", "train_lm"]


def train_lm(model, train, steps, seq_len, batch_size, lr, seed, progress=None,
             desc: str = "training") -> float:
    """Train ``model`` with AdamW (cosine decay) on random windows; return seconds taken.
    ``progress``: a ``reports.progress`` bar advanced each step (None: silent)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    model.train()
    start = time.perf_counter()
    for _ in progress_steps(range(steps), progress, desc):
        x, y = batches(train, seq_len, batch_size, g)
        loss = lm_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return time.perf_counter() - start


@torch.no_grad()
def evaluate_lm(model, data, seq_len, batch_size, n_batches, seed=1234) -> float:
    """Mean next-byte cross entropy (nats) over ``n_batches`` fixed random windows."""
    g = torch.Generator().manual_seed(seed)
    model.eval()
    losses = [
        lm_loss(model(x), y).item()
        for x, y in (batches(data, seq_len, batch_size, g) for _ in range(n_batches))
    ]
    return float(np.mean(losses))


def run_memoryformer_experiment(
    out_dir,
    steps: int = 600,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    seq_len: int = 64,
    batch_size: int = 16,
    tau: int = 8,
    lr: float = 3e-3,
    seed: int = 0,
    corpus_bytes: int = 1_000_000,
    eval_batches: int = 20,
    threads: int | None = 1,
    progress=None,
) -> pd.DataFrame:
    """Train a MemoryFormer LM and its dense twin for the same number of steps.

    The corpus is :func:`~algorithms.experiments._common.byte_corpus`; the last 10% is
    held out for validation. Writes ``memoryformer_results.{csv,md}`` and
    ``memoryformer_buckets.png`` (bucket-usage histogram of the first block's shared
    Q/K/V hash on validation tokens) into ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
    steps : int, default 600
        Training steps of each model (AdamW, cosine decay, clip 1.0).
    d_model, n_layers, n_heads, seq_len, batch_size, tau : int
        Shape shared by both models (``tau`` for MemoryFormer only).
    lr : float, default 3e-3
    seed : int, default 0
    corpus_bytes : int, default 1_000_000
    eval_batches : int, default 20
        Validation batches of ``batch_size`` windows.
    threads : int or None, default 1
        ``torch`` intra-op threads while running (restored afterwards).
    progress : callable, optional
        Receives a line per trained model; a ``reports.progress.ProgressBar`` also draws a
        bar over the training steps. None: silent.

    Returns
    -------
    pandas.DataFrame
        Rows ``memoryformer`` and ``dense``: ``params``, ``val_loss`` (nats/byte),
        ``bits_per_byte``, ``block_macs_per_token`` (forward, all blocks; from
        :func:`~algorithms.memoryformer.block_flops`), ``classifier_macs_per_token``,
        ``train_seconds``, and for MemoryFormer ``bucket_entropy`` (usage entropy over
        ``log 2^tau``, averaged over tables; 1 is uniform) and ``buckets_used`` (fraction).
    """
    with torch_threads(threads):
        return _run_memoryformer_experiment(
            out_dir,
            steps=steps,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            seq_len=seq_len,
            batch_size=batch_size,
            tau=tau,
            lr=lr,
            seed=seed,
            corpus_bytes=corpus_bytes,
            eval_batches=eval_batches,
            progress=progress,
        )


def _run_memoryformer_experiment(
    out_dir,
    steps,
    d_model,
    n_layers,
    n_heads,
    seq_len,
    batch_size,
    tau,
    lr,
    seed,
    corpus_bytes,
    eval_batches,
    progress=None,
) -> pd.DataFrame:
    torch.manual_seed(seed)
    data = byte_corpus(corpus_bytes)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    config = MemoryFormerConfig(
        d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_seq_len=seq_len, tau=tau
    )
    flops = block_flops(config, seq_len)
    rows = []
    models = {
        "memoryformer": MemoryFormerLM(config),
        "dense": TransformerLM(config.dense_twin()),
    }
    for name, model in models.items():
        torch.manual_seed(seed)
        seconds = train_lm(model, train, steps, seq_len, batch_size, lr, seed, progress,
                           f"{name} training steps")
        loss = evaluate_lm(model, val, seq_len, batch_size, eval_batches)
        say(progress, f"{name}: validation loss {loss:.4f} nats/byte after {steps} steps "
                      f"({seconds:.1f} s)")
        rows.append(
            {
                "model": name,
                "params": sum(p.numel() for p in model.parameters()),
                "val_loss": loss,
                "bits_per_byte": loss / math.log(2),
                "block_macs_per_token": n_layers * flops[name]["total"] / seq_len,
                "classifier_macs_per_token": d_model * config.vocab_size,
                "train_seconds": seconds,
            }
        )
    counts = _bucket_counts(models["memoryformer"], val, seq_len, batch_size)
    probs = counts / counts.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(probs > 0, probs * np.log(probs), 0.0), axis=1)
    rows[0]["bucket_entropy"] = float(ent.mean() / math.log(2**tau))
    rows[0]["buckets_used"] = float((counts > 0).mean())
    results = pd.DataFrame(rows)
    out = Path(out_dir)
    write_table(results, out, "memoryformer_results", f"MemoryFormer vs dense, {steps} steps")
    _plot_buckets(counts, out / "memoryformer_buckets.png")
    return results


@torch.no_grad()
def _bucket_counts(model: MemoryFormerLM, val, seq_len, batch_size) -> np.ndarray:
    g = torch.Generator().manual_seed(99)
    x, _ = batches(val, seq_len, batch_size * 4, g)
    block = model.blocks[0]
    captured = {}
    handle = block.norm.register_forward_hook(lambda m, a, out: captured.setdefault("h", out))
    try:
        model.eval()
        model(x)
    finally:
        handle.remove()
    return block.q.bucket_counts(captured["h"]).numpy()


def _plot_buckets(counts: np.ndarray, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    usage = counts / counts.sum(1, keepdims=True) * counts.shape[1]
    left.hist(usage.ravel(), bins=50, color="C0")
    left.set_xlabel("bucket use relative to uniform (1 = uniform)")
    left.set_ylabel("buckets (all tables)")
    left.set_title("block 0 Q/K/V hash: bucket-usage histogram")
    right.bar(range(counts.shape[1]), np.sort(counts[0])[::-1], color="C1", width=1.0)
    right.set_xlabel("bucket rank (table 0)")
    right.set_ylabel("tokens")
    right.set_title("table 0, buckets sorted by use")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
