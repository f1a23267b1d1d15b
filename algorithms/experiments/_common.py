"""Shared pieces of the experiments: offline byte corpus, table and figure writers."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import matplotlib
import pandas as pd
import torch

matplotlib.use("Agg")

__all__ = ["batches", "byte_corpus", "markdown_table", "torch_threads", "write_table"]


def byte_corpus(max_bytes: int = 2_000_000) -> torch.Tensor:
    """Bytes of the Python standard library's top-level ``*.py`` sources.

    Files directly under the directory of the ``os`` module, sorted by name and
    concatenated until ``max_bytes``: text already on the machine, read
    deterministically (for a given Python installation).

    Returns
    -------
    torch.Tensor
        ``(max_bytes,)`` (or fewer) ``torch.long`` token ids in ``[0, 256)``.
    """
    root = Path(os.path.dirname(os.__file__))
    chunks, total = [], 0
    for path in sorted(root.glob("*.py")):
        data = path.read_bytes()
        chunks.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    raw = b"".join(chunks)[:max_bytes]
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()


def batches(
    data: torch.Tensor, seq_len: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of ``(inputs, targets)`` windows from a token stream."""
    starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=generator)
    offsets = torch.arange(seq_len + 1)
    windows = data[starts[:, None] + offsets]
    return windows[:, :-1], windows[:, 1:]


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (no extra dependency)."""

    def fmt(v):
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_table(df: pd.DataFrame, out_dir, stem: str, title: str = "") -> tuple[Path, Path]:
    """Write ``stem.csv`` and ``stem.md`` into ``out_dir`` (created); return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    df.to_csv(csv_path, index=False)
    text = (f"# {title}\n\n" if title else "") + markdown_table(df)
    md_path.write_text(text)
    return csv_path, md_path


def progress_stage(progress, desc: str, total: int | None = None) -> None:
    """Announce a loop of ``total`` units to ``progress`` when it draws a bar (a
    ``reports.progress.ProgressBar``); nothing for None or a plain line callback."""
    fn = getattr(progress, "stage", None)
    if fn is not None:
        fn(desc, total)


def progress_steps(iterable, progress, desc: str, total: int | None = None):
    """``iterable``, advancing ``progress``'s bar after each item when it draws one (training
    steps say no line each)."""
    fn = getattr(progress, "track", None)
    return iter(iterable) if fn is None else fn(iterable, desc, total)


def say(progress, line: str) -> None:
    """One line to ``progress``, if any."""
    if progress is not None:
        progress(line)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``torch.set_num_threads(threads)``, then restore the old value.

    The experiments' models are tiny: intra-op threads cost more in synchronisation than
    they gain (40x slower on a loaded 2-core machine), so they default to one thread.
    ``None`` leaves the setting alone.
    """
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)
