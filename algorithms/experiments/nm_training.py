"""N:M sparse training on scikit-learn's digits: dense vs SR-STE vs BDWP vs transposable."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from ..flops import ideal_speedup, training_macs
from ..sparsify_model import sparsify
from ._common import progress_stage, torch_threads, write_table

__all__ = ["digits_model", "run_nm_experiment", "train_digits"]

SKIP = {"mlp": ("4",), "cnn": ("0", "12")}  # first conv (C_in = 1) and the classifiers


def digits_model(kind: str) -> nn.Module:
    """The ``"mlp"`` (64-256-256-10) or ``"cnn"`` (convs 16-32-32, linears 128-64-10)."""
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(128, 64), nn.ReLU(),
            nn.Dropout(0.0), nn.Linear(64, 10),
        )  # fmt: skip
    raise ValueError(f"model must be 'mlp' or 'cnn', not {kind!r}")


def _digits(kind: str):
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target)
    if kind == "cnn":
        x = x.reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return xtr, xte, ytr, yte


def train_digits(
    kind: str, method: str, pattern: str, seed: int, epochs: int = 30, lr: float = 2e-3
) -> dict:
    """Train one digits classifier and return its test accuracy and wall time.

    Parameters
    ----------
    kind : {"mlp", "cnn"}
    method : {"dense", "srste", "bdwp", "transposable"}
    pattern : str
        ``"N:M"`` (ignored for dense).
    seed : int
        Initialisation and batch order; the 70/30 train/test split is fixed.
    epochs : int, default 30
        Adam, batch 64.
    lr : float, default 2e-3

    Returns
    -------
    dict
        ``model, method, pattern, seed, accuracy, seconds``.
    """
    torch.manual_seed(seed)
    xtr, xte, ytr, yte = _digits(kind)
    model = digits_model(kind)
    if method != "dense":
        model = sparsify(model, pattern, method, skip=SKIP[kind], inplace=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            b = order[i : i + 64]
            loss = nn.functional.cross_entropy(model(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(xte).argmax(1) == yte).float().mean())
    return {
        "model": kind,
        "method": method,
        "pattern": "" if method == "dense" else pattern,
        "seed": seed,
        "accuracy": accuracy,
        "seconds": time.perf_counter() - start,
    }


def run_nm_experiment(
    out_dir,
    models: Sequence[str] = ("mlp", "cnn"),
    methods: Sequence[str] = ("dense", "srste", "bdwp", "transposable"),
    patterns: Sequence[str] = ("2:4", "2:8", "1:8"),
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 30,
    threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Train every (model, method, pattern, seed); write a table and a plot.

    Writes ``nm_runs.csv`` (one row per run), ``nm_results.csv``/``nm_results.md``
    (aggregated) and ``nm_accuracy.png`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
    models, methods, patterns, seeds : sequences
    epochs : int, default 30
    progress : callable or None
        Called with a one-line message after each training run (for a CLI progress
        display).
    threads : int or None, default 1
        ``torch`` intra-op threads while running (restored afterwards).

    Returns
    -------
    pandas.DataFrame
        One row per (model, method, pattern): ``accuracy_mean``, ``accuracy_std``
        (sample std over seeds), ``runs``, ``fwd_macs``, ``bgrad_macs``, ``wgrad_macs``
        (per training sample) and ``ideal_speedup`` (dense MACs over method MACs).
    """
    with torch_threads(threads):
        return _run_nm_experiment(out_dir, models, methods, patterns, seeds, epochs, progress)


def _run_nm_experiment(out_dir, models, methods, patterns, seeds, epochs, progress):
    runs, rows = [], []
    total = len(models) * len(seeds) * sum(1 if m == "dense" else len(patterns) for m in methods)
    progress_stage(progress, "N:M training runs", total)
    for kind in models:
        example = _digits(kind)[0][:1]
        for method in methods:
            for pattern in ["2:8"] if method == "dense" else patterns:
                accs = []
                for seed in seeds:
                    run = train_digits(kind, method, pattern, seed, epochs)
                    runs.append(run)
                    accs.append(run["accuracy"])
                    if progress is not None:
                        progress(
                            f"[{len(runs)}/{total}] {kind} {method} {run['pattern'] or 'dense'} "
                            f"seed {seed}: accuracy {run['accuracy']:.4f}"
                        )
                model = digits_model(kind)
                if method == "dense":
                    table = training_macs(model, example)
                else:
                    table = training_macs(model, example, method, pattern, skip=SKIP[kind])
                per_pass = table.groupby("pass")["macs"].sum()
                rows.append(
                    {
                        "model": kind,
                        "method": method,
                        "pattern": "" if method == "dense" else pattern,
                        "accuracy_mean": float(np.mean(accs)),
                        "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                        "runs": len(accs),
                        "fwd_macs": int(per_pass["fwd"]),
                        "bgrad_macs": int(per_pass["bgrad"]),
                        "wgrad_macs": int(per_pass["wgrad"]),
                        "ideal_speedup": ideal_speedup(table),
                    }
                )
    results = pd.DataFrame(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(runs).to_csv(out / "nm_runs.csv", index=False)
    write_table(results, out, "nm_results", "N:M sparse training on digits (test accuracy)")
    _plot(results, out / "nm_accuracy.png")
    return results


def _plot(results: pd.DataFrame, path: Path) -> None:
    kinds = list(dict.fromkeys(results["model"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        sub = results[results["model"] == kind]
        labels = [
            f"{m}\n{p}" if p else m for m, p in zip(sub["method"], sub["pattern"], strict=True)
        ]
        colors = itertools.cycle(["0.5", "C0", "C1", "C2"])
        color_of = {m: next(colors) for m in dict.fromkeys(sub["method"])}
        ax.bar(
            range(len(sub)),
            sub["accuracy_mean"] * 100,
            yerr=sub["accuracy_std"] * 100,
            color=[color_of[m] for m in sub["method"]],
            capsize=3,
        )
        ax.set_xticks(range(len(sub)), labels, fontsize=7, rotation=90)
        low = float((sub["accuracy_mean"] - sub["accuracy_std"]).min() * 100)
        ax.set_ylim(max(0.0, low - 5), 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"digits, {kind}: mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
