"""MemoryFormer on the machine: MemoryFormer-tiny against a dense and a BDWP 2:8 Pythia-70M, and
its tables in each memory tier.

:func:`memoryformer_report` writes ``memoryformer_report.md`` with

- the comparison (:func:`compare_table`): cycles, energy and bytes of a training step, a
  prefill and one decoded token (KV cache of the sequence length) of MemoryFormer-tiny, the
  Pythia-70M-shaped transformer (zoo ``pythia70m``) and its BDWP 2:8 version, on one config
  and sequence length, each from :func:`dataflow.simulate_model`; energy split into compute
  (array, SORE, vector, lookup), on-chip SRAM by buffer, the DMA's DRAM, each lookup tier and
  static power; bytes per memory level and tier; the critical path split
  (:data:`dataflow.PATH_PARTS`);
- the time per block (:func:`block_table`);
- the tier sweep (:func:`tier_sweep`): MemoryFormer-tiny with all its tables in one tier preset
  (:func:`hwsim.tiers.tier_preset`), the rest of the machine unchanged;
- the hot-row cache sweep (:func:`hot_row_sweep`): ``lookup.hot_rows`` of 0, 1k, 4k and 16k rows on
  one tier, the hit rate measured on a MemoryFormer-tiny layer's hash codes of real text and the
  training step as timing mode draws its rows;
- achieved gather bandwidth against row size and requests outstanding per tier
  (:func:`gather_curves`: :class:`hwsim.tiers.TierModel` and :func:`hwsim.tiers.gather_time`,
  the model ``benchmarks/bench_gather.py`` measures);

with the figures ``memoryformer_compare.png``, ``memoryformer_layers.png``,
``memoryformer_tiers.png``, ``memoryformer_gather.png`` and one CSV per table
(``memoryformer_hot_rows.csv``: the hot-row cache sweep); the figures of :mod:`reports.figures`
(``memoryformer_energy.png``: every step by energy component; ``memoryformer_roofline.png``:
the training steps' GEMM items; ``memoryformer_utilisation.png``: MemoryFormer-tiny's training
step, units busy over time); and ``memoryformer_report.html``, the report with its figures
embedded (:func:`reports.html.write_html`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dataflow.simulate import PATH_PARTS, ModelResult, simulate_model
from dataflow.workload import extract
from dataflow.zoo import get_model
from hwsim import isa
from hwsim.config import AcceleratorConfig, load_config
from hwsim.energy import SRAM_COMPONENTS
from hwsim.paths import report_dir
from hwsim.tiers import TIER_PRESETS, TierModel, gather_time, tier_preset
from hwsim.units.lookup import LookupModel
from hwsim.units.lookup_timing import events

from .progress import stage

__all__ = ["MODELS", "SENSITIVITY", "block_table", "compare_table", "engine_sensitivity",
           "gather_curves", "hot_row_sweep", "measured_rows", "memoryformer_report",
           "sweep_config", "tier_sweep", "update_traffic"]

MODELS = (("MemoryFormer-tiny", "memoryformer_tiny", "dense", None),
          ("Pythia-70M dense", "pythia70m", "dense", None),
          ("Pythia-70M BDWP 2:8", "pythia70m", "bdwp", "2:8"))
"""(label, zoo model, method, pattern) of the comparison."""
COMPUTE = ("array", "sore", "vector", "lookup")
"""Energy components counted as compute."""
ROW_BYTES = (256, 512, 1024, 2048, 4096)
HOT_ROWS = (0, 1024, 4096, 16384)
"""``lookup.hot_rows`` of the hot-row cache sweep (:func:`hot_row_sweep`)."""
OUTSTANDING = (1, 2, 4, 8, 16, 32, 64, 128, 256)
GIB = 1 << 30

Progress = Callable[[str], None] | None


def _say(progress: Progress, text: str) -> None:
    if progress:
        progress(text)


def _row(label: str, r: ModelResult) -> dict:
    """One comparison row from a result: cycles, energy split, bytes, critical path."""
    t = r.totals
    tiers = [k[len("energy_tier_"):-len("_pj")] for k in t if k.startswith("energy_tier_")]
    row = {"label": label, "model": r.model, "method": r.method, "phase": r.phase,
           "seq_len": r.seq_len, "context": r.context, "cycles": t["cycles"],
           "seconds": t["seconds"], "energy_pj": t["energy_pj"],
           "energy_compute_pj": sum(t.get(f"energy_{c}_pj", 0.0) for c in COMPUTE),
           "energy_sram_pj": t["energy_sram_pj"],
           **{f"energy_{c}_pj": t[f"energy_{c}_pj"] for c in SRAM_COMPONENTS},
           "energy_dram_pj": t["energy_dram_pj"], "energy_static_pj": t["energy_static_pj"],
           **{f"energy_tier_{n}_pj": t[f"energy_tier_{n}_pj"] for n in tiers},
           "dram_read": t["dram_read"], "dram_write": t["dram_write"],
           "dram_other": t["dram_other"],
           **{k: v for k, v in t.items() if k.startswith("tier_")},
           "busy_lookup": t.get("busy_lookup", 0), "busy_array": t.get("busy_array", 0),
           **{f"path_{k}": t[f"path_{k}"] for k in PATH_PARTS}}
    return row


def compare_table(config: AcceleratorConfig | str = "vcu1525", seq_len: int = 2048, *,
                  phases: Sequence[str] = ("train", "prefill", "decode"), batch: int = 1,
                  progress: Progress = None) -> tuple[pd.DataFrame, dict]:
    """MemoryFormer-tiny, Pythia-70M dense and BDWP 2:8 (:data:`MODELS`) in each phase.

    Decode is one token after a KV cache of ``seq_len`` positions.

    Returns
    -------
    table : pandas.DataFrame
        One row per (model, phase): ``label, model, method, phase, seq_len, context, cycles,
        seconds``, ``energy_pj`` and its parts ``energy_{compute,sram,dram,static}_pj`` and
        ``energy_tier_<name>_pj`` (``energy_sram_pj`` split by buffer beside it:
        ``energy_sram_{act,wgt,acc,idx,vec,hot_rows}_pj``), ``dram_read, dram_write, dram_other``,
        ``tier_<name>_read/_write``, ``busy_lookup, busy_array`` and ``path_<part>``.
    results : dict
        ``(label, phase) -> ModelResult``.
    """
    cfg = load_config(config)
    rows, results = [], {}
    n = len(MODELS) * len(phases)
    stage(progress, "MemoryFormer against Pythia-70M", n)
    for label, model, method, pattern in MODELS:
        for phase in phases:
            t0 = time.perf_counter()
            r = simulate_model(model, method, pattern, cfg, batch, compare_dense=False,
                               phase=phase, seq_len=seq_len)
            results[(label, phase)] = r
            rows.append(_row(label, r))
            _say(progress, f"[{len(rows)}/{n}] {label} {r.what}: {r.totals['cycles']:,} cycles "
                           f"({time.perf_counter() - t0:.1f} s)")
    df = pd.DataFrame(rows)
    counts = [c for c in df.columns if c.startswith(("tier_", "energy_tier_"))]
    df[counts] = df[counts].fillna(0)  # a tier a model does not use
    ints = [c for c in df.columns if c == "cycles" or c.startswith(("tier_", "dram_", "busy_",
                                                                    "path_"))]
    df[ints] = df[ints].astype(np.int64)
    return df, results


_BLOCK = re.compile(r"^(?:blocks|layers)\.(\d+)(?:\.|$)")
_OTHER = {"embed": "embedding", "pos": "embedding", "embed_in": "embedding",
          "norm": "final norm", "final_layer_norm": "final norm", "head": "classifier",
          "embed_out": "classifier", "(loss)": "loss",
          "": "embedding"}  # the model's own ops: MemoryFormer's token + position sum


def _block(layer: str) -> str:
    m = _BLOCK.match(layer)
    if m:
        return f"block {m.group(1)}"
    return _OTHER.get(layer, layer)


def block_table(results: dict, phase: str = "train") -> pd.DataFrame:
    """Cycles per block (``block <i>``, embedding, final norm, classifier, loss) of each
    model's ``phase``, one column per label; rows sum to each step's cycles."""
    cols = {}
    for (label, ph), r in results.items():
        if ph == phase:
            cols[label] = r.ops.groupby(r.ops["layer"].map(_block), sort=False)["cycles"].sum()
    df = pd.DataFrame(cols).fillna(0).astype(np.int64)
    order = sorted(df.index, key=lambda b: (0, "") if b == "embedding" else
                   (1, f"{int(b.split()[1]):04d}") if b.startswith("block ") else (2, b))
    return df.loc[order]


def _table_bytes(seq_len: int) -> tuple[int, int]:
    """(entries, tables) of MemoryFormer-tiny's lookup tables."""
    model, x = get_model("memoryformer_tiny", device="meta", seq_len=min(seq_len, 2048))
    tot = extract(model, x, training=False).lookup_totals()
    return tot["entries"], tot["tables"]


def sweep_config(config: AcceleratorConfig, tier: str, need_bytes: int
                 ) -> tuple[AcceleratorConfig, bool]:
    """``config`` with one lookup tier, preset ``tier``, of at least ``need_bytes``.

    A preset smaller than ``need_bytes`` grows to the next power-of-two GiB, every other field
    kept; returns the config and whether the capacity changed.
    """
    t = tier_preset(tier)
    grown = t.capacity_bytes < need_bytes
    if grown:
        t = dataclasses.replace(t, capacity_gib=float(2 ** math.ceil(math.log2(need_bytes / GIB))))
    cfg = dataclasses.replace(config, name=f"{config.name}+{tier}",
                              lookup=dataclasses.replace(config.lookup, tiers=(t,),
                                                         placement=()))
    return cfg, grown


def tier_sweep(config: AcceleratorConfig | str = "vcu1525", seq_len: int = 2048,
               tiers: Sequence[str] = TIER_PRESETS, *, batch: int = 1,
               progress: Progress = None) -> pd.DataFrame:
    """MemoryFormer-tiny's training step (``seq_len`` tokens) and one decoded token (KV cache of
    ``seq_len``) with every table in one tier preset (:func:`sweep_config`: sized for the
    training footprint, fp16 ``T`` plus fp32 master, gradient and momentum).

    Returns
    -------
    pandas.DataFrame
        One row per tier: ``tier, kind, channels, peak_gbps, write_gbps, random_row_ns``
        (see below), ``capacity_gib``,
        ``grown``, ``train_cycles, train_seconds, train_path_lookup, train_busy_lookup,
        train_read, train_write, train_energy_tier_pj, train_energy_pj``, the same
        ``decode_*``, ``train_lookup_gbps`` (tier bytes of the training step over the lookup
        engine's critical-path time) and ``train_peak_share`` (the time those bytes take at the
        tier's peak read and write bandwidth over that time). ``random_row_ns`` is one 1 KiB
        read on the idle tier (row miss, transfer, latency) by :class:`hwsim.tiers.TierModel`
        at 1 GHz.
    """
    cfg = load_config(config)
    entries, tables = _table_bytes(seq_len)
    # T fp16 + W, G, V fp32, and a row of alignment per table in each tier
    need = entries * (2 + 3 * 4) + 4 * tables * 8192
    rows = []
    stage(progress, "tier sweep", 2 * len(tiers))
    for i, name in enumerate(tiers):
        c, grown = sweep_config(cfg, name, need)
        t = c.lookup.tiers[0]
        row = {"tier": name, "kind": t.kind, "channels": t.channels, "peak_gbps": t.peak_gbps,
               "write_gbps": t.channels * t.write_bandwidth_gbps,
               "random_row_ns": TierModel(t, 1000.0).access(np.zeros(1, np.int64), 1024).cycles,
               "capacity_gib": t.capacity_gib,
               "grown": grown}
        for phase in ("train", "decode"):
            t0 = time.perf_counter()
            r = simulate_model("memoryformer_tiny", "dense", None, c, batch,
                               compare_dense=False, phase=phase, seq_len=seq_len)
            tt = r.totals
            row.update({f"{phase}_cycles": tt["cycles"], f"{phase}_seconds": tt["seconds"],
                        f"{phase}_path_lookup": tt["path_lookup"],
                        f"{phase}_busy_lookup": tt["busy_lookup"],
                        f"{phase}_read": tt.get(f"tier_{name}_read", 0),
                        f"{phase}_write": tt.get(f"tier_{name}_write", 0),
                        f"{phase}_energy_tier_pj": tt.get(f"energy_tier_{name}_pj", 0.0),
                        f"{phase}_energy_pj": tt["energy_pj"]})
            _say(progress, f"[tier {i + 1}/{len(tiers)}] {name} {r.what}: {tt['cycles']:,} "
                           f"cycles ({time.perf_counter() - t0:.1f} s)")
        moved = row["train_read"] + row["train_write"]
        row["train_lookup_gbps"] = moved * c.clock_mhz / 1e3 / max(row["train_path_lookup"], 1)
        at_peak = row["train_read"] / row["peak_gbps"] + row["train_write"] / row["write_gbps"]
        row["train_peak_share"] = at_peak * c.clock_mhz / 1e3 / max(row["train_path_lookup"], 1)
        rows.append(row)
    return pd.DataFrame(rows)


def measured_rows(seq_len: int, d: int = 512, tau: int = 8, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Row indices a MemoryFormer memory layer of MemoryFormer-tiny's Q shape (``d`` inputs,
    ``tau``-bit chunks) hashes ``seq_len`` tokens of real text to.

    The text: the first ``seq_len`` bytes of :func:`algorithms.experiments._common.byte_corpus`
    (the Python standard library's sources), each byte a token, through an initialised embedding
    (``torch.manual_seed(seed)``) and a LayerNorm, as a first block's input. The codes of an
    initialised layer depend on the token only, so their skew is the text's byte frequencies:
    a proxy for a trained model's concentrated codes, not a trained model's.

    Returns
    -------
    rows : numpy.ndarray
        ``(seq_len * K,)`` flat rows ``k * 2**tau + code``, token by token (a GATHER's order).
    counts : numpy.ndarray
        :meth:`algorithms.memoryformer.MemoryLayer.bucket_counts`, ``(K, 2**tau)``.
    """
    import torch

    from algorithms.experiments._common import byte_corpus
    from algorithms.memoryformer import MemoryLayer

    torch.manual_seed(seed)
    layer = MemoryLayer(d, 8, tau=tau, bias=False)  # the hash needs no table width
    emb = torch.nn.Embedding(256, d)
    tokens = byte_corpus(seq_len)[:seq_len]
    with torch.no_grad():
        x = torch.nn.functional.layer_norm(emb(tokens), (d,))
        idx, _ = layer.hash(x)
        counts = layer.bucket_counts(x)
    rows = idx + torch.arange(layer.num_tables) * 2**tau
    return rows.reshape(-1).numpy().astype(np.int64), counts.numpy()


def hot_row_sweep(config: AcceleratorConfig | str = "vcu1525", seq_len: int = 256,
                  tier: str = "cxl", sizes: Sequence[int] = HOT_ROWS, *,
                  progress: Progress = None) -> pd.DataFrame:
    """MemoryFormer-tiny with a hot-row cache of each of ``sizes`` rows (``lookup.hot_rows``) in
    front of one tier (:func:`sweep_config`).

    Two measurements per size:

    - **measured rows**: the Q layer's forward GATHERs (fp16 rows of 512, ``K = 64`` chunks of
      ``tau = 8``) over the rows :func:`measured_rows` hashes ``seq_len`` tokens of text to, in
      commands of the compiler's token block (:func:`dataflow.lower.lookup.token_block`), each
      through the lookup unit's row pipeline (:class:`hwsim.units.lookup.LookupModel`, the
      cache cold per command) beside the same commands with rows drawn uniformly (timing mode's
      assumption); and the share of references the ``N`` most popular rows take
      (``bucket_counts``: what a cache holding them for good, warm across commands, would hit);
    - **training step**: the whole step in timing mode (uniform rows, ``dataflow.simulate_model``).

    Returns
    -------
    pandas.DataFrame
        One row per size: ``hot_rows, tier, hit_rate`` (measured rows, LRU, cold per command),
        ``uniform_hit_rate``, ``top_share``, ``gather_cycles, gather_read`` (the measured Q
        GATHERs: cycles summed, tier bytes), ``uniform_gather_cycles``, ``train_cycles,
        train_path_lookup, train_read, train_write, train_energy_tier_pj, train_energy_pj``.
    """
    from dataflow.lower.lookup import LayerShape, token_block

    cfg = load_config(config)
    entries, tables = _table_bytes(seq_len)
    need = entries * (2 + 3 * 4) + 4 * tables * 8192
    base, _ = sweep_config(cfg, tier, need)
    d, tau, h = 512, 8, 512
    k = d // tau
    rows, counts = measured_rows(seq_len, d, tau)
    uniform = np.tile(np.arange(k), seq_len) * (1 << tau) + np.random.default_rng(0).integers(
        0, 1 << tau, seq_len * k)
    tb = token_block(LayerShape(seq_len, d, h, tau), base, "forward")
    ranked = np.sort(counts.reshape(-1))[::-1]
    t = base.lookup.tiers[0]
    moved = -(-h * base.lookup.element_bytes // t.access_bytes) * t.access_bytes
    model, regs = LookupModel(), np.zeros(16, np.int64)
    out = []
    stage(progress, f"hot-row cache on {tier}", len(sizes))
    for size in sizes:
        c = dataclasses.replace(base, lookup=dataclasses.replace(base.lookup, hot_rows=size))
        row = {"hot_rows": size, "tier": tier, "top_share": ranked[:size].sum() / len(rows)}
        for name, stream in (("", rows), ("uniform_", uniform)):
            cycles = hits = 0
            for a in range(0, seq_len, tb):
                part = stream[a * k:min(a + tb, seq_len) * k]
                cmd = isa.Gather(0, 0, 0, 0, len(part) // k, k, h, 0, 0)
                cy, hi, _ = model._run_pipeline(cmd, c, part, regs, events)
                cycles, hits = cycles + cy, hits + hi
            row[f"{name}hit_rate"] = hits / len(stream)
            row[f"{name}gather_cycles"] = cycles
            row[f"{name}gather_read"] = (len(stream) - hits) * moved
        t0 = time.perf_counter()
        r = simulate_model("memoryformer_tiny", "dense", None, c, 1, compare_dense=False,
                           phase="train", seq_len=seq_len)
        tt = r.totals
        row.update({"train_cycles": tt["cycles"], "train_path_lookup": tt["path_lookup"],
                    "train_read": tt.get(f"tier_{tier}_read", 0),
                    "train_write": tt.get(f"tier_{tier}_write", 0),
                    "train_energy_tier_pj": tt.get(f"energy_tier_{tier}_pj", 0.0),
                    "train_energy_pj": tt["energy_pj"]})
        out.append(row)
        _say(progress, f"[hot rows] {size} on {tier}: measured hit rate {row['hit_rate']:.1%}, "
                       f"train {tt['cycles']:,} cycles ({time.perf_counter() - t0:.1f} s)")
    return pd.DataFrame(out)


SENSITIVITY = (("as configured", {}), ("8x rows in flight", {"inflight_kib": 8}),
               ("4x request ports", {"request_ports": 4}), ("4x gather lanes", {"gather_lanes": 4}))
"""Lookup-engine knobs of :func:`engine_sensitivity`: (label, field -> factor)."""


def engine_sensitivity(config: AcceleratorConfig | str = "vcu1525", seq_len: int = 256,
                       tiers: Sequence[str] = ("hbm2e", "ddr4", "ddr5"), *, batch: int = 1,
                       knobs: Sequence[tuple[str, dict]] = SENSITIVITY,
                       progress: Progress = None) -> pd.DataFrame:
    """What bounds the lookup engine on fast tiers: MemoryFormer-tiny's training step with all
    tables in each tier (:func:`sweep_config`) and one engine knob multiplied
    (``knobs``, default :data:`SENSITIVITY`: the first entry is the config as it is).

    Returns
    -------
    pandas.DataFrame
        ``tier, knob, cycles, path_lookup, lookup_gbps`` (tier bytes moved over the lookup
        engine's critical-path time).
    """
    cfg = load_config(config)
    entries, tables = _table_bytes(seq_len)
    need = entries * (2 + 3 * 4) + 4 * tables * 8192
    rows = []
    stage(progress, "lookup-engine sensitivity", len(tiers) * len(knobs))
    for name in tiers:
        base, _ = sweep_config(cfg, name, need)
        for label, factors in knobs:
            lk = dataclasses.replace(base.lookup, **{k: getattr(base.lookup, k) * f
                                                     for k, f in factors.items()})
            c = dataclasses.replace(base, lookup=lk)
            r = simulate_model("memoryformer_tiny", "dense", None, c, batch,
                               compare_dense=False, seq_len=seq_len)
            t = r.totals
            moved = t.get(f"tier_{name}_read", 0) + t.get(f"tier_{name}_write", 0)
            rows.append({"tier": name, "knob": label, "cycles": t["cycles"],
                         "path_lookup": t["path_lookup"],
                         "lookup_gbps": moved * c.clock_mhz / 1e3 / max(t["path_lookup"], 1)})
            _say(progress, f"[engine] {name}, {label}: {t['cycles']:,} cycles")
    return pd.DataFrame(rows)


def update_traffic(seq_len: int, element_bytes: int = 2) -> dict[str, int]:
    """Tier bytes of MemoryFormer-tiny's table updates in a training step of ``seq_len``
    tokens: ``listed`` as the lookup unit's timing mode moves them (every listed row, one per
    token and chunk, read as gradient, master and momentum and written back with the fp16
    copy: ``3·4h + 3·4h + h·element_bytes`` bytes) and ``distinct`` if only the expected
    distinct rows (:func:`dataflow.workload.expected_rows`) were updated and each repeat cost
    its gradient-row read (``4h``), as the functional model does."""
    model, x = get_model("memoryformer_tiny", device="meta", seq_len=seq_len,
                         max_seq_len=max(2048, seq_len))
    listed = distinct = 0
    for op in extract(model, x).lookups():
        if op.op == "table_update":
            h, n = op.width, op.tokens * op.chunks
            full = 24 * h + element_bytes * h
            listed += n * full
            distinct += op.rows * full + (n - op.rows) * 4 * h
    return {"listed": listed, "distinct": distinct}


def _update_pass_bytes(per_pass) -> int:
    """Tier bytes of the training step's ``update`` pass (0 when it has none)."""
    if not len(per_pass):
        return 0
    rows = per_pass[per_pass["pass"] == "update"]
    return int(rows["tier_bytes"].sum())


def gather_curves(tiers: Sequence[str] = TIER_PRESETS, *, clock_mhz: float = 1000.0,
                  rows: int = 4096, row_bytes: Sequence[int] = ROW_BYTES,
                  outstanding: Sequence[int] = OUTSTANDING, seed: int = 0) -> pd.DataFrame:
    """Achieved bandwidth of ``rows`` random row reads per tier preset, row size and requests
    outstanding per channel: :class:`hwsim.tiers.TierModel` (the banked model) beside the
    closed form :func:`hwsim.tiers.gather_time`, as ``benchmarks/bench_gather.py`` measures.
    Rows come from a table of ``min(capacity, 64 GiB)``, far larger than the row buffers.

    Returns
    -------
    pandas.DataFrame
        ``tier, row_bytes, outstanding, gbps, closed_gbps, bound, peak_gbps``.
    """
    out = []
    for name in tiers:
        for row in row_bytes:
            rng = np.random.default_rng(seed)
            for q in outstanding:
                tier = tier_preset(name, outstanding=q)
                span = min(tier.capacity_bytes, 1 << 36) // row
                addrs = rng.integers(0, span, rows, dtype=np.int64) * row
                res = TierModel(tier, clock_mhz).access(addrs, row)
                est = gather_time(tier, rows, row, clock_mhz=clock_mhz)
                out.append({"tier": name, "row_bytes": row, "outstanding": q,
                            "gbps": res.bandwidth_gbps, "closed_gbps": est.gbps,
                            "bound": est.bound, "peak_gbps": tier.peak_gbps})
    return pd.DataFrame(out)


# --- figures -----------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _energy_parts(df: pd.DataFrame) -> list[str]:
    """Columns that sum to ``energy_pj``: compute, SRAM by buffer (the buffers some row
    spends), DRAM, the tiers, static."""
    tiers = [c for c in df.columns if c.startswith("energy_tier_")]
    sram = [f"energy_{c}_pj" for c in SRAM_COMPONENTS
            if f"energy_{c}_pj" in df and (df[f"energy_{c}_pj"] != 0).any()]
    return ["energy_compute_pj", *sram, "energy_dram_pj", *tiers, "energy_static_pj"]


def _name(col: str) -> str:
    from .figures import component_label

    return component_label(col[len("energy_"):-len("_pj")])


def _plot_compare(df: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    phases = list(dict.fromkeys(df.phase))
    fig, axes = plt.subplots(2, len(phases), figsize=(4.6 * len(phases), 7.5), squeeze=False)
    parts = _energy_parts(df)
    for j, ph in enumerate(phases):
        sub = df[df.phase == ph]
        ax = axes[0, j]
        ax.bar(range(len(sub)), sub.seconds * 1e3, color=["C3", "C0", "C2"][:len(sub)])
        for i, c in enumerate(sub.cycles):
            ax.text(i, 0, f"{c / 1e6:,.2f} M", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(sub)), [s.replace(" ", "\n", 1) for s in sub.label], fontsize=8)
        ax.set_ylabel("ms")
        first = sub.iloc[0]
        ax.set_title(f"decode: one token after {int(first['context']):,}" if ph == "decode"
                     else f"{ph}: {int(first['seq_len']):,} tokens")
        ax = axes[1, j]
        bottom = np.zeros(len(sub))
        for k, col in enumerate(parts):
            v = sub[col].to_numpy() / 1e9
            ax.bar(range(len(sub)), v, bottom=bottom, label=_name(col), color=f"C{k}")
            bottom += v
        ax.set_xticks(range(len(sub)), [s.replace(" ", "\n", 1) for s in sub.label], fontsize=8)
        ax.set_ylabel("energy, mJ")
    axes[1, 0].legend(fontsize=7)
    fig.suptitle("Time (top, cycles on the bars) and energy (bottom) per step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_blocks(blocks: pd.DataFrame, clock_mhz: float, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    n = len(blocks.columns)
    w = 0.8 / n
    for j, col in enumerate(blocks.columns):
        xs = np.arange(len(blocks)) + (j - n / 2 + 0.5) * w
        ax.bar(xs, blocks[col] / (clock_mhz * 1e3), w, label=col)
    ax.set_xticks(range(len(blocks)), blocks.index, rotation=30, fontsize=8)
    ax.set_ylabel("ms (critical path charged by completion)")
    ax.set_title("Training step: time per block")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_tiers(sweep: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, ph, unit, scale in ((axes[0], "train", "ms per training step", 1e3),
                                (axes[1], "decode", "us per decoded token", 1e6)):
        total = sweep[f"{ph}_seconds"] * scale
        look = sweep[f"{ph}_path_lookup"] / sweep[f"{ph}_cycles"] * total
        ax.bar(sweep.tier, total - look, label="rest of the critical path", color="C0")
        ax.bar(sweep.tier, look, bottom=total - look, label="lookup engine", color="C3")
        ax.set_ylabel(unit)
        ax.set_title(ph)
    axes[0].legend(fontsize=8)
    fig.suptitle("MemoryFormer-tiny with all tables in one tier")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_gather(curves: pd.DataFrame, lane_gbps: float | None, path: Path) -> None:
    plt = _plt()
    names = list(dict.fromkeys(curves.tier))
    cols = min(3, len(names))
    fig, axes = plt.subplots(-(-len(names) // cols), cols,
                             figsize=(5 * cols, 3.8 * -(-len(names) // cols)), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        pts = curves[curves.tier == name]
        for row in sorted(set(pts.row_bytes)):
            line = pts[pts.row_bytes == row]
            (h,) = ax.plot(line.outstanding, line.gbps, marker="o", ms=3, label=f"{row} B rows")
            ax.plot(line.outstanding, line.closed_gbps, ls=":", color=h.get_color(), lw=1)
        peak = float(pts.peak_gbps.iloc[0])
        ax.axhline(peak, color="k", ls="--", lw=1, label=f"peak {peak:.1f} GB/s")
        if lane_gbps is not None and lane_gbps < 1.05 * peak:
            ax.axhline(lane_gbps, color="C3", ls="-.", lw=1,
                       label=f"gather lanes {lane_gbps:.1f} GB/s")
        ax.set_xscale("log", base=2)
        ax.set_title(name)
        ax.set_xlabel("requests outstanding per channel")
        ax.set_ylabel("achieved GB/s")
        ax.set_ylim(0, 1.08 * peak)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("Random row gathers per tier (solid: banked model, dotted: closed form)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the report ----------------------------------------------------------------------------------

def _mb(x: float) -> str:
    return f"{x / 1e6:,.1f}"


def _markdown(d: dict) -> str:
    """The report from :func:`memoryformer_report`'s tables (``d``: their names)."""
    df, blocks, sweep, curves, cfg = d["df"], d["blocks"], d["sweep"], d["curves"], d["cfg"]
    seq_len, sweep_seq, runtime = d["seq_len"], d["sweep_seq"], d["runtime"]
    clock = cfg.clock_mhz
    lk = cfg.lookup
    lane_gbps = lk.gather_lanes * lk.element_bytes * clock / 1e3
    tiers_txt = ", ".join(f"{t.name} ({t.kind}, {t.capacity_gib * 1024:,.0f} MiB, "
                          f"{t.peak_gbps:.1f} GB/s)" for t in lk.tiers)
    mf = df[df.label == MODELS[0][0]].set_index("phase")
    lines = [
        f"# MemoryFormer on {cfg.name}: lookup engine against dense and BDWP 2:8 GEMMs", "",
        f"Regenerate: `satmem report memoryformer --seq-len {seq_len}"
        + (f" --sweep-seq-len {sweep_seq}" if sweep_seq != seq_len else "")
        + f" --config {cfg.name}`" + (f" ({runtime:.0f} s on the machine that wrote it)."
                                      if runtime else "."), "",
        f"Machine: {cfg.name}, {cfg.array.rows}x{cfg.array.cols} {cfg.array.dtype} array at "
        f"{clock:g} MHz, {cfg.dram.channels}-channel DRAM for the DMA; lookup engine with "
        f"{lk.gather_lanes} fp32 gather lanes ({lane_gbps:.1f} GB/s of {lk.element} rows), "
        f"{lk.request_ports} request ports, {lk.inflight_kib} KiB of rows in flight, tables "
        f"placed first-fit in: {tiers_txt}. Sequence {seq_len}, batch 1. MemoryFormer-tiny "
        f"has {d['table_bytes'] / GIB:.2f} GiB of fp16 tables (training adds fp32 master, gradient "
        "and momentum copies: 7x that in the tiers).", "",
        "## What is modelled and what is assumed", "",
        "- Every number comes from `hwsim.run` on the compiled command table "
        "(`dataflow.simulate_model`): GEMM tiles, DMA and SORE by their closed forms, vector "
        "passes by the compiler's estimates, HASH/GATHER/SCATTER by the lookup unit's row "
        "pipeline over the tier's banked timing model.",
        "- Timing mode draws lookup rows **uniformly** within each chunk's 2^tau rows (a seed "
        "per command shape); real sign hashes are skewed, so row-buffer locality and repeats "
        "in a batch differ. Table updates list every token's rows; the expected distinct rows "
        "for uniform hashes (at 2,048 tokens: the whole table) are what the workload counts.",
        "- Lookup items run in plan order between SYNC fences: no overlap of the lookup engine "
        "with the array or the vector engine (only a lookup op's own block loads, lookups and "
        "stores overlap). An overlapping schedule would hide part of the smaller of the two.",
        "- The lookup tiers and the DMA's DRAM are separate models: on the card they are the "
        "same DDR4, but lookup and DMA traffic do not contend here (they rarely run at once, "
        "given the previous point).",
        f"- Energy: the DMA's DRAM is priced by `energy.dram_byte` = "
        f"{cfg.energy.dram_byte:g} pJ/byte, the lookup tiers by their own "
        "`read/write_pj_per_byte` (vcu1525's `ddr` tier: "
        + ", ".join(f"{t.name} {t.read_pj_per_byte:g}" for t in lk.tiers)
        + " pJ/byte). **The two DDR prices differ by 8x for the same DIMMs** (20 pJ/bit versus "
        "20 pJ/byte); the table below therefore also gives each step's energy with the DMA's "
        "DRAM bytes priced like the `ddr` tier. SCATTER's update writes the fp16 copy to the "
        "master table's tier (its accounting charges one tier per command).",
        "- Decode: one token, batch 1, attending to a KV cache of the sequence length "
        "(zeros of its shape; the cache is read by the attention GEMMs' DMA). Weights are "
        "re-read from DRAM for every token. Pythia's cached attention is the zoo model with "
        "its keys and values concatenated to the cache (`dataflow.simulate`).",
        "- Pythia-70M BDWP 2:8 keeps the classifier (`embed_out`) dense (the default layer "
        "policy), N:M on every other Linear, in inference as in training.",
        "",
        "## Headline", "",
        "| model | train step (cycles) | ms | prefill (cycles) | decode (cycles/token) | "
        "us/token | energy/step mJ | energy/token uJ |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    by = {(r.label, r.phase): r for r in df.itertuples()}

    def cell(label: str, phase: str, attr: str, scale: float = 1.0, fmt: str = ",.2f") -> str:
        r = by.get((label, phase))
        if r is None:
            return "-"
        v = getattr(r, attr)
        return format(v if scale == 1.0 else v * scale, fmt)

    for label, *_ in MODELS:
        lines.append(f"| {label} | {cell(label, 'train', 'cycles', fmt=',')} | "
                     f"{cell(label, 'train', 'seconds', 1e3)} | "
                     f"{cell(label, 'prefill', 'cycles', fmt=',')} | "
                     f"{cell(label, 'decode', 'cycles', fmt=',')} | "
                     f"{cell(label, 'decode', 'seconds', 1e6, ',.1f')} | "
                     f"{cell(label, 'train', 'energy_pj', 1e-9)} | "
                     f"{cell(label, 'decode', 'energy_pj', 1e-6, ',.1f')} |")
    if ("Pythia-70M dense", "train") in by and (MODELS[0][0], "train") in by:
        pd_, mt = by[("Pythia-70M dense", "train")], by[(MODELS[0][0], "train")]
        pb = by.get(("Pythia-70M BDWP 2:8", "train"))
        lines += ["", f"Training step: MemoryFormer-tiny takes {mt.cycles / pd_.cycles:.2f}x "
                  "the cycles of dense Pythia-70M" + (f" and {mt.cycles / pb.cycles:.2f}x those "
                                                      "of BDWP 2:8" if pb else "") + "."]
        if (MODELS[0][0], "decode") in by:
            md_, pdd = by[(MODELS[0][0], "decode")], by[("Pythia-70M dense", "decode")]
            pbd = by.get(("Pythia-70M BDWP 2:8", "decode"))
            lines[-1] += (f" Decoding a token: {md_.cycles / pdd.cycles:.2f}x dense"
                          + (f", {md_.cycles / pbd.cycles:.2f}x BDWP 2:8" if pbd else "") + ".")
    lines += ["", "![time and energy per step](memoryformer_compare.png)"]
    # energy
    parts = _energy_parts(df)
    ddr = next((t for t in lk.tiers if t.kind == "ddr"), None)
    lines += ["", "## Energy per step (mJ; decode: uJ per token)", "",
              "| model | phase | " + " | ".join(_name(c) for c in parts) + " | total | "
              + (f"total, DMA DRAM at {ddr.read_pj_per_byte:g} pJ/B |" if ddr else "|"),
              "|---|---|" + "---:|" * (len(parts) + 1 + (ddr is not None))]
    for r in df.itertuples():
        s = 1e6 if r.phase == "decode" else 1e9
        rd = r._asdict()
        cells = [f"{rd[c] / s:,.2f}" for c in parts]
        extra = ""
        if ddr is not None:
            dram_b = r.dram_read + r.dram_write + r.dram_other
            alt = r.energy_pj + dram_b * (ddr.read_pj_per_byte - cfg.energy.dram_byte)
            extra = f" {alt / s:,.2f} |"
        lines.append(f"| {r.label} | {r.phase} | " + " | ".join(cells)
                     + f" | {r.energy_pj / s:,.2f} |" + extra)
    lines += ["", "Compute: array, SORE, vector engine and the lookup engine's arithmetic. "
              "sram ACT, WGT, ACC, IDX, VEC: the on-chip buffers (activations, weights, "
              "accumulators, N:M indices, the vector and lookup engines' scratch; a buffer no "
              "step touches is left out), their sum the SRAM component. DRAM: the DMA's "
              "traffic. tier NAME: bytes the lookup engine moved to and from that tier. "
              "Static: the config's static power over the step.", ""]
    # bytes
    tcols = [c for c in df.columns if c.startswith("tier_")]
    lines += ["## Bytes per memory level and tier (MB)", "",
              "| model | phase | DRAM read | DRAM write | DRAM other | "
              + " | ".join(c.replace("tier_", "tier ").replace("_", " ") for c in tcols) + " |",
              "|---|---|---:|---:|---:|" + "---:|" * len(tcols)]
    for r in df.itertuples():
        rd = r._asdict()
        lines.append(f"| {r.label} | {r.phase} | {_mb(r.dram_read)} | {_mb(r.dram_write)} | "
                     f"{_mb(r.dram_other)} | " + " | ".join(_mb(rd[c]) for c in tcols) + " |")
    if "decode" in mf.index:
        per_tok = sum(mf.loc["decode", c] for c in tcols if c.endswith("_read"))
        lines += ["", f"MemoryFormer-tiny reads {per_tok:,.0f} bytes of table rows per decoded "
                  f"token: {per_tok / 6 / 1024:,.0f} KiB per layer (Q, K, V: 3 x 64 rows x "
                  "1 KiB; the memory block: 64 rows x 1.25 KiB and 64 rows x 1 KiB; "
                  "REFERENCES.md: about 336 KB per token per layer)."]
    # critical path
    lines += ["", "## Critical path (share of cycles)", "",
              "| model | phase | " + " | ".join(PATH_PARTS) + " |",
              "|---|---|" + "---:|" * len(PATH_PARTS)]
    for r in df.itertuples():
        rd = r._asdict()
        lines.append(f"| {r.label} | {r.phase} | "
                     + " | ".join(f"{rd[f'path_{k}'] / r.cycles:.1%}" for k in PATH_PARTS) + " |")
    # passes and table updates
    per_pass = d["per_pass"]
    if len(per_pass):
        lines += ["", f"## MemoryFormer-tiny training step per pass (sequence {seq_len})", "",
                  "| pass | cycles | share | DRAM MB (DMA) | tier MB |",
                  "|---|---:|---:|---:|---:|"]
        total = per_pass.cycles.sum()
        for r in per_pass.to_dict(orient="records"):
            lines.append(f"| {r['pass']} | {r['cycles']:,} | {r['cycles'] / total:.1%} | "
                         f"{_mb(r['dram_bytes'])} | {_mb(r['tier_bytes'])} |")
        up = d["update"]
        moved = _update_pass_bytes(per_pass)
        lines += ["", f"Table updates: timing mode moves {moved / 1e9:,.1f} GB for them, "
                  "through the row-update pipeline the RTL runs (`hwsim.units.update_timing`): "
                  "the first access to a row updates it (reads gradient, master and momentum, "
                  "writes them back with the fp16 copy); a repeat while the row is still in "
                  "the engine is skipped, a later one reads the three rows and finds the "
                  "gradient zero. Bounds: every listed row (one per token and chunk) updated, "
                  f"{up['listed'] / 1e9:,.1f} GB; only the expected distinct rows, each repeat "
                  f"one gradient-row read, {up['distinct'] / 1e9:,.1f} GB."]
    # blocks
    lines += ["", "## Training step per block (M cycles)", "",
              "![time per block](memoryformer_layers.png)", "",
              "| block | " + " | ".join(blocks.columns) + " |",
              "|---|" + "---:|" * len(blocks.columns)]
    for b, r in blocks.iterrows():
        lines.append(f"| {b} | " + " | ".join(f"{v / 1e6:,.2f}" for v in r) + " |")
    lines.append("| total | " + " | ".join(f"{v / 1e6:,.2f}" for v in blocks.sum()) + " |")
    lines += ["", "A block's cycles are the critical-path cycles its items are charged by "
              "completion (`dataflow.simulate`): its forward, backward and update items "
              "(MemoryFormer's table updates included)."]
    # tier sweep
    if len(sweep):
        grown = sweep[sweep.grown]
        lines += ["", f"## Tier sweep: MemoryFormer-tiny with all tables in one tier "
                  f"(sequence {sweep_seq})", "", "![tier sweep](memoryformer_tiers.png)", "",
                  "| tier | peak read GB/s | write GB/s | random 1 KiB read ns | capacity GiB "
                  "| train cycles | train ms | lookup share | tier GB/s while looking up | "
                  "share of peak rate | decode cycles | decode us | train tier MB read / written | "
                  "train tier energy mJ | train energy mJ |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sweep.itertuples():
            lines.append(
                f"| {r.tier} | {r.peak_gbps:.1f} | {r.write_gbps:.1f} | {r.random_row_ns:.0f} "
                f"| {r.capacity_gib:g}{' *' if r.grown else ''} | {r.train_cycles:,} | "
                f"{r.train_seconds * 1e3:,.1f} | {r.train_path_lookup / r.train_cycles:.0%} | "
                f"{r.train_lookup_gbps:,.1f} | {r.train_peak_share:.0%} | {r.decode_cycles:,} | "
                f"{r.decode_seconds * 1e6:,.1f} | {_mb(r.train_read)} / {_mb(r.train_write)} | "
                f"{r.train_energy_tier_pj / 1e9:,.1f} | {r.train_energy_pj / 1e9:,.1f} |")
        lines += ["", "Each row is the same machine with `lookup.tiers` replaced by one "
                  "`hwsim.tiers.tier_preset` (placement: everything in it). Assumption: "
                  + ("tiers marked * are the preset grown to the next power-of-two GiB that "
                     f"holds the training footprint ({', '.join(grown.tier)}; every other field "
                     "the preset's): an on-chip SRAM of that size is a bound, not a buildable "
                     "part. " if len(grown) else "every preset holds the tables as it is. ")
                  + "Lookup share: the critical-path cycles of HASH, GATHER and SCATTER. Tier "
                  "GB/s while looking up: the training step's tier bytes over those cycles; "
                  "share of peak rate: the time those bytes take at the tier's peak read and write "
                  "bandwidth, over those cycles. "
                  "Random 1 KiB read: one request on the idle tier (`hwsim.tiers.TierModel`)."]
        if sweep_seq != seq_len:
            lines.append(f"The sweep runs at sequence {sweep_seq} (the comparison at "
                         f"{seq_len}) to keep the report's run time down.")
    engine = d["engine"]
    if len(engine):
        knobs = list(dict.fromkeys(engine.knob))
        lines += ["", f"### What bounds the engine on fast tiers (training step, sequence "
                  f"{d['engine_seq']})", "",
                  "Tier GB/s while looking up, with one lookup-engine knob of "
                  f"{cfg.name} multiplied (rows in flight: `lookup.inflight_kib` = "
                  f"{lk.inflight_kib}; request ports {lk.request_ports}; gather lanes "
                  f"{lk.gather_lanes}):", "", "| tier | " + " | ".join(knobs) + " |",
                  "|---|" + "---:|" * len(knobs)]
        for name in dict.fromkeys(engine.tier):
            e = engine[engine.tier == name].set_index("knob")
            lines.append(f"| {name} | " + " | ".join(
                f"{e.loc[k, 'lookup_gbps']:,.1f} ({e.loc[k, 'cycles'] / 1e6:,.1f} M cycles)"
                for k in knobs) + " |")
    hot = d.get("hot", pd.DataFrame())
    if len(hot):
        h0 = hot.iloc[0]
        lines += ["", f"## Hot-row cache (`lookup.hot_rows`): MemoryFormer-tiny on "
                  f"{h0.tier} (sequence {d['hot_seq']})", "",
                  "| hot rows | measured hit rate | uniform hit rate | top-N share | "
                  "Q GATHER cycles (measured) | Q GATHER tier MB | Q GATHER cycles (uniform) | "
                  "train cycles | train tier MB read / written | train energy mJ |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in hot.itertuples():
            lines.append(
                f"| {r.hot_rows:,} | {r.hit_rate:.1%} | {r.uniform_hit_rate:.1%} | "
                f"{r.top_share:.1%} | {r.gather_cycles:,} | {_mb(r.gather_read)} | "
                f"{r.uniform_gather_cycles:,} | {r.train_cycles:,} | {_mb(r.train_read)} / "
                f"{_mb(r.train_write)} | {r.train_energy_pj / 1e9:,.2f} |")
        lines += ["", "A fully associative LRU cache of whole rows, cold at each GATHER and "
                  "SCATTER (`hwsim.units.lookup`: hits take no tier request and arrive after "
                  "the `sram` preset's 2 ns; SCATTER writes through; the row update bypasses "
                  "it). Measured: the Q layer's forward GATHERs over the codes an initialised "
                  "layer hashes the first tokens of real text (Python sources, a byte a token) "
                  "to, in the compiler's token blocks, through the row pipeline; uniform: the "
                  "same commands with rows drawn as timing mode draws them. Top-N share: the "
                  "references the N most popular rows take (`MemoryLayer.bucket_counts`), what "
                  "a cache holding them for good would hit. The training step is timing mode "
                  "(uniform rows), so it shows only what repeats within a command save. Decode "
                  "gains nothing: one token is one row per chunk, no repeat within a command. "
                  "Cache bytes are priced at the `sram` preset's 12.8 pJ/byte (`hot_row_byte`); "
                  "every miss fills the cache, so a low hit rate costs energy."]
    # gather curves
    if len(curves):
        lines += ["", "## Gather bandwidth per tier", "",
                  "![gather bandwidth](memoryformer_gather.png)", "",
                  f"{curves.groupby(['tier', 'row_bytes', 'outstanding']).ngroups} points of "
                  f"{d['gather_rows']:,} random row reads through `hwsim.tiers.TierModel` "
                  "(solid) and the closed form `hwsim.tiers.gather_time` (dotted) at 1 GHz "
                  "(as `benchmarks/bench_gather.py`), each tier's peak dashed and the "
                  f"{cfg.name} gather lanes' accumulate rate ({lane_gbps:.1f} GB/s of fp16 "
                  "rows) dash-dotted where it is below the peak. Best share of peak and the "
                  "fewest requests outstanding per channel reaching 90%:",
                  "", "| tier | " + " | ".join(f"{b} B" for b in sorted(set(curves.row_bytes)))
                  + " |", "|---|" + "---:|" * len(set(curves.row_bytes))]
        for name in dict.fromkeys(curves.tier):
            cells = []
            for b in sorted(set(curves.row_bytes)):
                pts = curves[(curves.tier == name) & (curves.row_bytes == b)]
                best = float((pts.gbps / pts.peak_gbps).max())
                ok = pts[pts.gbps >= 0.9 * pts.peak_gbps].outstanding
                cells.append(f"{best:.0%} @ {int(ok.min()) if len(ok) else '-'}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Reading the numbers", "", *_findings(d), ""]
    if d.get("figures"):
        lines += ["## Energy by component, roofline, utilisation over time", ""]
        for alt, name, caption in d["figures"]:
            lines += [f"![{alt}]({name})", "", caption, ""]
    return "\n".join(lines)


def _findings(d: dict) -> list[str]:
    df, sweep, engine, up = d["df"], d["sweep"], d["engine"], d["update"]
    out = []
    by = {(r.label, r.phase): r for r in df.itertuples()}
    mt = by.get((MODELS[0][0], "train"))
    pdn = by.get(("Pythia-70M dense", "train"))
    if mt is not None:
        tier_b = sum(getattr(mt, c) for c in df.columns if c.startswith("tier_"))
        rest = mt.cycles - mt.path_lookup
        tier_e = sum(getattr(mt, c) for c in df.columns if c.startswith("energy_tier_"))
        out.append(f"- Training: MemoryFormer-tiny's step is {mt.path_lookup / mt.cycles:.0%} "
                   f"lookup engine on the critical path ({tier_b / 1e9:,.1f} GB to and from the "
                   "tiers: gathers, read-modify-write scatters of the gradient, table updates)"
                   + (f"; its other {rest / 1e6:,.0f} M cycles (attention, the 50,304-word "
                      f"classifier, vector passes) are {rest / pdn.cycles:.0%} of dense "
                      "Pythia-70M's whole step. " if pdn is not None else ". ")
                   + "Lookups do not overlap the array here; an overlapping schedule could hide "
                   f"the shorter of the two. The tiers take {tier_e / mt.energy_pj:.0%} of the "
                   "step's energy.")
    if up["listed"]:
        moved = _update_pass_bytes(d["per_pass"])
        out.append(f"- The table updates move {moved / 1e9:,.1f} GB, between the expected "
                   f"distinct rows' {up['distinct'] / 1e9:,.1f} GB and every listed row's "
                   f"{up['listed'] / 1e9:,.1f} GB: the row-update engine skips a repeat of a row "
                   "it still holds, but a repeat after the row has left it reads gradient, "
                   "master and momentum before it can see the gradient is zero (timing mode's "
                   "rows are uniform within each chunk's table, so repeats are those of "
                   "random rows).")
    dc = by.get((MODELS[0][0], "decode"))
    if dc is not None:
        out.append(f"- Decoding one token, MemoryFormer-tiny's lookups are "
                   f"{dc.path_lookup / dc.cycles:.1%} of the critical path; GEMMs take "
                   f"{(dc.path_gemm_dense + dc.path_gemm_sparse) / dc.cycles:.0%}: the "
                   "classifier GEMV (1 x 50,304 x 512) and attention over the cache, on a "
                   "32x32 array that fills and drains a weight tile for each single row. The "
                   "same GEMV dominates Pythia's decode step, so the steps are close.")
    if len(sweep) > 1:
        s = sweep.sort_values("peak_gbps")
        out.append("- Tier sweep, training step: " + ", ".join(
            f"{r.tier} {r.train_seconds * 1e3:,.0f} ms ({r.train_lookup_gbps:,.0f} GB/s, "
            f"{r.train_peak_share:.0%} of what its peaks allow)" for r in s.itertuples())
            + ". The slow tiers (CXL; persistent memory, whose writes are slower still) come "
            "closest to their bandwidth; the fast ones stay far below it.")
    if len(engine):
        e = engine.pivot(index="tier", columns="knob", values="lookup_gbps")
        base, more = SENSITIVITY[0][0], SENSITIVITY[1][0]
        kib = d["cfg"].lookup.inflight_kib
        out.append("- On the fast tiers the engine's rows in flight bind (Little's law: "
                   f"fp32 gradient and master rows are 2-2.5 KiB, so {kib} KiB holds about "
                   f"{kib // 2}): "
                   + ", ".join(f"{t} {e.loc[t, base]:,.0f} -> {e.loc[t, more]:,.0f} GB/s"
                               for t in e.index)
                   + f" with {more}; more request ports or gather lanes change little.")
    return out


def memoryformer_report(out_dir: str | Path | None = None,
                        config: AcceleratorConfig | str = "vcu1525", *, seq_len: int = 2048,
                        sweep_seq_len: int | None = None, tiers: Sequence[str] = TIER_PRESETS,
                        phases: Sequence[str] = ("train", "prefill", "decode"),
                        sensitivity_tiers: Sequence[str] = ("hbm2e", "ddr4", "ddr5"),
                        sensitivity_seq_len: int = 256, gather_rows: int = 16384,
                        hot_tier: str | None = "cxl", hot_rows: Sequence[int] = HOT_ROWS,
                        hot_seq_len: int = 256, progress: Progress = None) -> Path:
    """Write ``memoryformer_report.md``, its PNG figures and CSVs under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
    config : AcceleratorConfig or str
    seq_len : int
        Sequence of the comparison (and decode's KV cache).
    sweep_seq_len : int, optional
        Sequence of the tier sweep; default ``seq_len``.
    tiers : sequence of str
        :data:`hwsim.tiers.TIER_PRESETS` entries of the sweep and the gather curves.
    phases : sequence of str
        Phases of the comparison (``"train"`` and ``"decode"`` at least for the headline).
    sensitivity_tiers : sequence of str
        Tiers of :func:`engine_sensitivity` (``()``: none).
    sensitivity_seq_len : int
        Its sequence (at most ``seq_len``).
    gather_rows : int
        Random rows per point of the gather curves.
    hot_tier : str or None
        Tier of the hot-row cache sweep (:func:`hot_row_sweep`); None: no sweep.
    hot_rows : sequence of int
        Its cache sizes, rows.
    hot_seq_len : int
        Its sequence (at most ``seq_len``).
    progress : callable, optional
        Receives one line per finished simulation.

    Returns
    -------
    pathlib.Path
        The Markdown file.

    Raises
    ------
    ValueError
        An unknown tier (``hwsim.config.ConfigError``) or a bad sequence length.
    """
    t_start = time.perf_counter()
    cfg = load_config(config)
    for name in (*tiers, *sensitivity_tiers, *([hot_tier] if hot_tier else [])):
        tier_preset(name)  # an unknown name fails before any simulation
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, not {seq_len!r}")
    sweep_seq = seq_len if sweep_seq_len is None else sweep_seq_len
    out = Path(out_dir) if out_dir is not None else report_dir("memoryformer")
    out.mkdir(parents=True, exist_ok=True)
    from . import figures as fg
    from .html import write_html

    with fg.capture_runs(lambda prog: prog.workload.training) as runs:
        df, results = compare_table(cfg, seq_len, phases=phases, progress=progress)
    df.to_csv(out / "memoryformer_compare.csv", index=False)
    blocks = block_table(results, "train") if "train" in phases else pd.DataFrame()
    blocks.rename_axis("block").to_csv(out / "memoryformer_layers.csv")
    sweep = tier_sweep(cfg, sweep_seq, tiers, progress=progress) if tiers else pd.DataFrame()
    sweep.to_csv(out / "memoryformer_tiers.csv", index=False)
    engine_seq = min(sensitivity_seq_len, seq_len)
    engine = engine_sensitivity(cfg, engine_seq, sensitivity_tiers, progress=progress) \
        if sensitivity_tiers else pd.DataFrame()
    engine.to_csv(out / "memoryformer_engine.csv", index=False)
    hot_seq = min(hot_seq_len, seq_len)
    hot = hot_row_sweep(cfg, hot_seq, hot_tier, hot_rows, progress=progress) \
        if hot_tier and len(hot_rows) else pd.DataFrame()
    hot.to_csv(out / "memoryformer_hot_rows.csv", index=False)
    _say(progress, f"gather curves: {len(tiers)} tiers x {len(ROW_BYTES)} row sizes x "
                   f"{len(OUTSTANDING)} outstanding, {gather_rows} rows each")
    curves = gather_curves(tiers, rows=gather_rows) if tiers else pd.DataFrame()
    curves.to_csv(out / "memoryformer_gather.csv", index=False)
    lane_gbps = cfg.lookup.gather_lanes * cfg.lookup.element_bytes * cfg.clock_mhz / 1e3
    _plot_compare(df, out / "memoryformer_compare.png")
    if len(blocks):
        _plot_blocks(blocks, cfg.clock_mhz, out / "memoryformer_layers.png")
    if len(sweep):
        _plot_tiers(sweep, out / "memoryformer_tiers.png")
        _plot_gather(curves, lane_gbps, out / "memoryformer_gather.png")
    entries, _ = _table_bytes(seq_len)
    mf = results.get((MODELS[0][0], "train"))
    per_pass = mf.per_pass if mf is not None else pd.DataFrame()
    update = update_traffic(seq_len, cfg.lookup.element_bytes) if mf is not None else \
        {"listed": 0, "distinct": 0}
    figures = _figures(results, runs, cfg, out)
    md = out / "memoryformer_report.md"
    md.write_text(_markdown({
        "figures": figures,
        "df": df, "blocks": blocks, "sweep": sweep, "curves": curves, "engine": engine,
        "per_pass": per_pass, "update": update, "cfg": cfg, "seq_len": seq_len,
        "hot": hot, "hot_seq": hot_seq,
        "sweep_seq": sweep_seq, "engine_seq": engine_seq, "gather_rows": gather_rows,
        "table_bytes": entries * cfg.lookup.element_bytes,
        "runtime": time.perf_counter() - t_start}))
    write_html(md)
    return md


def _figures(results: dict, runs: list, cfg: AcceleratorConfig, out: Path) -> list:
    """``memoryformer_energy.png`` (one panel per phase, one bar per model),
    ``memoryformer_roofline.png`` and ``memoryformer_utilisation.png`` (``runs``: the training
    steps' programs and stats, in :data:`MODELS` order); returns ``(alt, file, caption)``."""
    from . import figures as fg

    panels: dict[str, dict] = {}
    for (label, _), r in results.items():
        panels.setdefault(r.what, {})[label.replace(" ", "\n", 1)] = r.totals
    figs = []
    if panels:
        fg.plot_energy(panels, out / "memoryformer_energy.png", unit="auto",
                       title=f"Energy by component on {cfg.name}")
        figs.append(("energy by component", "memoryformer_energy.png",
                     "Each step's energy by component (hwsim.energy; `tier NAME`: the lookup "
                     "engine's memory tiers), SRAM per buffer (`sram ACT` ... `sram VEC`)."))
    labels = [label for label, *_ in MODELS]
    if runs and len(runs) <= len(labels):
        roofs = {label: fg.roofline(p, s, cfg) for label, (p, s) in zip(labels, runs,
                                                                         strict=False)}
        fg.plot_roofline(roofs, out / "memoryformer_roofline.png",
                         title="Roofline per layer and pass: training steps")
        fg.plot_utilisation(fg.schedule_utilisation(*runs[0], bins=120),
                            out / "memoryformer_utilisation.png", clock_mhz=cfg.clock_mhz,
                            title=f"Units busy over the {labels[0]} training step")
        mem = ", ".join(f"{k} {int(v.memory_bound.sum())} of {len(v)}" for k, v in roofs.items())
        figs += [("roofline", "memoryformer_roofline.png",
                  "The GEMM items (a layer's pass) of each training step: attained MACs per "
                  "second over the item's window against MACs per DMA byte, under the compute "
                  "and DMA bandwidth roofs; memory-bound (open triangles): " + mem + ". The "
                  "lookup engine's HASH, GATHER and SCATTER do no MACs and are not drawn."),
                 ("utilisation over time", "memoryformer_utilisation.png",
                  f"{labels[0]} training step: the fraction of each time bin each unit is "
                  "busy.")]
    return figs
