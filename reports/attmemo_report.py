"""``satmem report attmemo``: AttMEMO's memoized attention on the machine, across memory tiers,
hit rates, sequence lengths and batch sizes.

For each sequence length and batch, BERT-base (:mod:`dataflow.zoo.bert`) runs one inference pass
three ways per tier (:func:`dataflow.memo.simulate_memo`): plain, memoized with every sequence
missing, memoized with every sequence hitting. Every other hit rate ``r`` is the expectation
``r·T(hit) + (1 - r)·T(miss)`` per layer: exact for one sequence (a layer hits or not) and,
for a batch, what the simulator gives at ``r·B`` hits (the grid test of ``tests/dataflow/
test_memo.py`` checks that linearity against simulated intermediate hit counts). The break-even
hit rate is where that line crosses the plain pass; the performance model's
(:func:`dataflow.memo.memo_model`, closed forms only) is beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from dataflow.memo import MemoStore, MemoStoreError, attention_sites, simulate_memo, store_bytes
from dataflow.workload import extract
from dataflow.zoo import get_model
from hwsim.config import AcceleratorConfig, load_config
from hwsim.paths import report_dir
from hwsim.tiers import tier_preset

from .progress import stage

__all__ = ["PAPER_AVERAGE_SAVING", "attmemo_grid", "attmemo_report"]

PAPER_AVERAGE_SAVING = 0.22
"""AttMEMO's average inference-latency reduction on its big-memory CPU server (REFERENCES.md;
up to 68%)."""
TIERS = ("hbm2e", "ddr4", "cxl", "pmem")
RATES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


def attmemo_grid(config: AcceleratorConfig | str = "vcu1525", *, seqs: Sequence[int] = (128, 512),
                 batches: Sequence[int] = (1, 8), tiers: Sequence[str] = TIERS,
                 store: MemoStore | None = None, n_layers: int | None = None,
                 progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """Plain, all-miss and all-hit passes for each sequence, batch and tier.

    Returns
    -------
    table : pandas.DataFrame
        One row per (seq, batch, tier): ``fits``, ``store_gib``, ``plain, miss, hit``
        (cycles of the pass), ``attn_plain`` (the attention layers' cycles in the plain pass),
        ``sim_break_even``, ``model_break_even``, and the energy of each pass by component.
    results : dict
        ``(seq, batch, tier) -> (miss MemoResult, hit MemoResult)``.
    """
    cfg = load_config(config)
    base = store or MemoStore()
    kw = {} if n_layers is None else {"n_layers": n_layers}
    rows, results = [], {}
    stage(progress, "AttMEMO grid", len(seqs) * len(batches) * len(tiers))
    for seq in seqs:
        model, x = get_model("bert_base", batch=1, device="meta", seq_len=seq, **kw)
        sites = attention_sites(extract(model, x, method="dense", training=False), 1)
        need = sum(sum(store_bytes(s, base)) for s in sites)
        for b in batches:
            plain_run = None  # the plain pass, simulated once per sequence and batch
            for tier in tiers:
                st = dataclasses.replace(base, tier=tier)
                row = {"seq": seq, "batch": b, "tier": tier, "store_gib": need / 2**30,
                       "tier_gib": tier_preset(tier).capacity_bytes / 2**30}
                try:
                    miss = simulate_memo("bert_base", 0.0, st, cfg, b, seq_len=seq,
                                         baseline=plain_run, **kw)
                    plain_run = miss.baseline
                except MemoStoreError:
                    rows.append({**row, "fits": False})
                    if progress:
                        progress(f"  seq {seq} batch {b} {tier}: the store does not fit")
                    continue
                hit = simulate_memo("bert_base", 1.0, st, cfg, b, seq_len=seq,
                                    baseline=plain_run, **kw)
                results[(seq, b, tier)] = (miss, hit)
                plain, tm, th = miss.plain["cycles"], miss.memo["cycles"], hit.memo["cycles"]
                gain = tm - th
                row.update(fits=True, plain=plain, miss=tm, hit=th,
                           attn_plain=int(miss.layers["plain_cycles"].sum()),
                           sim_break_even=(tm - plain) / gain if gain > 0 else float("inf"),
                           model_break_even=float(miss.layers["break_even"].iloc[0]))
                for name, tot in (("plain", miss.plain), ("miss", miss.memo), ("hit", hit.memo)):
                    for k, v in tot.items():
                        if k.startswith("energy_") and k != "energy_pj":
                            row[f"{name}_{k}"] = v
                    row[f"{name}_energy_pj"] = tot["energy_pj"]
                rows.append(row)
                if progress:
                    progress(f"  seq {seq} batch {b} {tier}: plain {plain:,}, all miss {tm:,}, "
                             f"all hit {th:,} cycles")
    return pd.DataFrame(rows), results


def _ms(cycles: float, batch: int, clock_mhz: float) -> float:
    """Milliseconds per inference of a batch's cycles."""
    return cycles / batch / (clock_mhz * 1e3)


def _latency_table(df: pd.DataFrame, clock: float, rates: Sequence[float]) -> pd.DataFrame:
    out = []
    for _, r in df.iterrows():
        row = {"seq": r.seq, "batch": r.batch, "tier": r.tier}
        if not r.fits:
            row["plain (ms)"] = "store does not fit"
            out.append(row)
            continue
        row["plain (ms)"] = f"{_ms(r.plain, r.batch, clock):.3f}"
        for rate in rates:
            t = rate * r.hit + (1 - rate) * r.miss
            row[f"r={rate:g}"] = f"{_ms(t, r.batch, clock):.3f} ({1 - t / r.plain:+.1%})"
        out.append(row)
    return pd.DataFrame(out).fillna("-")


def _break_even_table(df: pd.DataFrame) -> pd.DataFrame:
    def fmt(v):
        return "never" if v == float("inf") or v > 1 else f"{v:.1%}"

    ok = df[df.fits]
    out = ok[["seq", "batch", "tier"]].copy()
    out["simulated"] = [(f"{v:.1%}" if v <= 1 else f"never ({v:.2f})") for v in
                        ok.sim_break_even]
    out["model"] = [fmt(v) for v in ok.model_break_even]
    out["attention share of plain"] = [f"{a / p:.1%}" for a, p in zip(ok.attn_plain, ok.plain,
                                                                         strict=True)]
    out["saving at r=1"] = [f"{1 - h / p:+.1%}" for h, p in zip(ok.hit, ok.plain, strict=True)]
    return out


def _energy_table(df: pd.DataFrame, seq: int, batch: int) -> pd.DataFrame:
    """Per tier and pass, the energy per inference by component, SRAM by buffer
    (:func:`reports.figures.energy_components`: the columns sum to the total); a component no
    pass spends (a buffer the model never touches) is left out."""
    from .figures import component_label, energy_components

    sel = df[(df.seq == seq) & (df.batch == batch) & df.fits]
    keys, rows = [], []
    for _, r in sel.iterrows():
        for name in ("plain", "miss", "hit"):
            comps = energy_components({k[len(name) + 1:]: v for k, v in r.items()
                                       if k.startswith(f"{name}_energy_")})
            keys.append((r.tier, {"plain": "plain", "miss": "memo, r=0",
                                  "hit": "memo, r=1"}[name], r[f"{name}_energy_pj"]))
            rows.append(comps)
    mj = pd.DataFrame(rows).fillna(0.0) / 1e9 / batch
    mj = mj.loc[:, (mj != 0).any()]
    out = pd.DataFrame({"tier": [k[0] for k in keys], "pass": [k[1] for k in keys],
                        "total (mJ)": [f"{k[2] / 1e9 / batch:.3f}" for k in keys]})
    for c in mj.columns:
        out[f"{component_label(c)} (mJ)"] = [f"{v:.3f}" for v in mj[c]]
    return out


def _experiment_rows(path: Path | None) -> tuple[pd.DataFrame | None, str]:
    if path is None or not (path / "attmemo_results.csv").is_file():
        where = "" if path is None else f" (looked in `{path}`)"
        return None, ("No AttMEMO experiment results found" + where + ": run `satmem experiment "
                      "attmemo` (or `--quick`) and pass `--experiment DIR`.")
    res = pd.read_csv(path / "attmemo_results.csv")
    return res, f"From `{path / 'attmemo_results.csv'}`."


def _plot(df: pd.DataFrame, seq: int, batch: int, clock: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = df[(df.seq == seq) & (df.batch == batch) & df.fits]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    rates = [i / 20 for i in range(21)]
    for _, r in sel.iterrows():
        ax.plot([x * 100 for x in rates],
                [_ms(x * r.hit + (1 - x) * r.miss, batch, clock) for x in rates], label=r.tier)
    if len(sel):
        ax.axhline(_ms(sel.iloc[0].plain, batch, clock), color="k", ls="--", label="no memo")
    ax.set_xlabel("hit rate (%)")
    ax.set_ylabel("ms per inference")
    ax.set_title(f"BERT-base, sequence {seq}, batch {batch}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def attmemo_report(out_dir: str | Path | None = None, config: AcceleratorConfig | str = "vcu1525",
                   *, seqs: Sequence[int] = (128, 512), batches: Sequence[int] = (1, 8),
                   tiers: Sequence[str] = TIERS, store: MemoStore | None = None,
                   experiment: str | Path | None = None, n_layers: int | None = None,
                   pools: Sequence[int] = (2, 4, 8),
                   progress: Callable[[str], None] | None = None) -> Path:
    """Write ``attmemo_report.md``, ``attmemo_grid.csv`` and ``attmemo_latency.png``.

    Parameters
    ----------
    experiment : path, optional
        A ``satmem experiment attmemo`` output directory (``attmemo_results.csv``): its hit
        rates are shown beside the paper's 22%, with what they buy on the machine.
    n_layers : int, optional
        Fewer encoder layers (tests); default BERT-base's 12.
    pools : sequence of int
        Max-pool sizes of the embedding MLP's input tried at the largest sequence and batch
        (the projector's first layer is a matrix-vector product per sequence, the search's
        main cost); ``()`` skips that section.
    """
    cfg = load_config(config)
    store = store or MemoStore()
    for t in tiers:
        tier_preset(t)
    out = Path(out_dir) if out_dir is not None else report_dir("attmemo")
    out.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"AttMEMO on {cfg.name}: BERT-base, sequences {list(seqs)}, batches "
                 f"{list(batches)}, tiers {list(tiers)}")
    df, results = attmemo_grid(cfg, seqs=seqs, batches=batches, tiers=tiers, store=store,
                               n_layers=n_layers, progress=progress)
    df.to_csv(out / "attmemo_grid.csv", index=False)
    clock = cfg.clock_mhz
    big_seq, big_b = max(seqs), max(batches)
    _plot(df, big_seq, big_b, clock, out / "attmemo_latency.png")
    lines = [f"# AttMEMO on the machine: memoized attention from big memory ({cfg.name})", ""]
    lines += [
        f"BERT-base-shaped encoder ({n_layers or 12} layers, d 768, 12 heads), one inference "
        f"pass, dense fp16 on `{cfg.name}` at {clock:g} MHz. The map store holds "
        f"{store.entries:,} maps a layer (fp16, heads x seq x seq each) and their keys in one "
        f"tier (the lookup engine's only tier in these runs); the embedding MLP is AttnCache's "
        f"feature projector ({store.pool}x{store.pool} max pool, -> {store.hidden} -> "
        f"{store.d_embed}); the index is "
        + (f"IVF-Flat ({store.lists} lists, nprobe {store.nprobe})" if store.lists else
           f"exact (below {store.exact_below:,} entries)")
        + f": {store.keys_scanned:,} keys scanned a query. What runs on a hit and "
        "on a miss: `dataflow/memo.py`. Hit rates other than 0 and 1 are the expectation of "
        "the two simulated passes (module docstring of `reports/attmemo_report.py`).", "",
        "Rerun: `satmem experiment attmemo` then `satmem report attmemo --experiment "
        "runs/experiments/attmemo` (about five minutes on this 2-core machine).", "",
        "## Map store size", ""]
    sizes = []
    for seq in seqs:
        m, x = get_model("bert_base", device="meta", seq_len=seq,
                         **({} if n_layers is None else {"n_layers": n_layers}))
        sites = attention_sites(extract(m, x, method="dense", training=False), 1)
        kb, mb = store_bytes(sites[0], store)
        sizes.append({"seq": seq, "map per entry (MiB)": f"{sites[0].map_bytes / 2**20:.2f}",
                      "per layer (GiB)": f"{(kb + mb) / 2**30:.2f}",
                      "whole store (GiB)": f"{len(sites) * (kb + mb) / 2**30:.1f}",
                      **{f"fits {t}": ("yes" if len(sites) * (kb + mb)
                                       <= tier_preset(t).capacity_bytes else "no")
                         for t in tiers}})
    lines += [pd.DataFrame(sizes).to_markdown(index=False), ""]
    lines += ["## Time per inference, with and without memoization", "",
              "Milliseconds per inference (batch time / batch) and the change against the plain "
              "pass, by hit rate r:", "",
              _latency_table(df, clock, RATES).to_markdown(index=False), "",
              "![latency vs hit rate](attmemo_latency.png)", "",
              "## Break-even hit rate", "",
              "The hit rate above which memoizing is faster (`never`: not even at r = 1), from "
              "the simulator and from the performance model (closed forms, "
              "`dataflow.memo.memo_model`), and the attention layers' share of the plain pass "
              "(the most memoization could save):", "",
              _break_even_table(df).to_markdown(index=False), ""]
    key = next((k for k in results if k[0] == big_seq and k[1] == big_b), None)
    if key is not None:
        miss, hit = results[key]
        layers = miss.layers[["layer", "plain_cycles", "memo_cycles", "search", "skipped",
                              "fetch"]].rename(columns={"memo_cycles": "memo r=0 cycles"})
        layers.insert(3, "memo r=1 cycles", hit.layers["memo_cycles"].to_numpy())
        for c in ("search", "skipped", "fetch"):
            layers[c] = layers[c].round().astype(int)
        lines += [f"## Per layer (sequence {key[0]}, batch {key[1]}, {key[2]})", "",
                  "The attention layers' cycles (search, fetch, QKᵀ, softmax, PV) in each pass, "
                  "and the model's terms: `search` per batch, `skipped` and `fetch` per hit "
                  "sequence:", "", layers.to_markdown(index=False), ""]
    if pools and key is not None:
        lines += _pool_section(cfg, key, results[key][0], store, pools, n_layers, progress)
    lines += [f"## Energy (sequence {big_seq}, batch {big_b}), per inference", "",
              _energy_table(df, big_seq, big_b).to_markdown(index=False), ""]
    res, where = _experiment_rows(Path(experiment) if experiment is not None else None)
    lines += ["## Hit rates measured, beside the paper", "",
              f"The AttMEMO paper reports a {PAPER_AVERAGE_SAVING:.0%} average inference-"
              "latency cut (up to 68%) on a big-memory CPU server. " + where, ""]
    ok = df[df.fits & (df.seq == big_seq) & (df.batch == big_b)]
    if res is not None and len(ok):
        r = ok.iloc[0]
        res = res.copy()
        res[f"saving on the machine ({r.tier}, seq {big_seq}, batch {big_b})"] = [
            f"{1 - (h * r.hit + (1 - h) * r.miss) / r.plain:+.1%}" for h in res["hit_rate"]]
        lines += [res.to_markdown(index=False, floatfmt=".4g"), ""]
    lines += ["## Findings", ""] + _findings(df) + [""]
    path = out / "attmemo_report.md"
    path.write_text("\n".join(lines))
    return path


def _pool_section(cfg, key, miss, store, pools, n_layers, progress) -> list[str]:
    seq, b, tier = key
    kw = {} if n_layers is None else {"n_layers": n_layers}
    rows = []
    stage(progress, "projector pools", len(pools))
    for pool in pools:
        st = dataclasses.replace(store, tier=tier, pool=pool)
        m0 = simulate_memo("bert_base", 0.0, st, cfg, b, seq_len=seq, baseline=miss.baseline,
                           **kw)
        m1 = simulate_memo("bert_base", 1.0, st, cfg, b, seq_len=seq, baseline=miss.baseline,
                           **kw)
        plain, tm, th = m0.plain["cycles"], m0.memo["cycles"], m1.memo["cycles"]
        be = (tm - plain) / (tm - th) if tm > th else float("inf")
        embed1 = m0.ops[m0.ops.name.str.endswith(".memo.embed1")].cycles.sum()
        rows.append({"pool": f"{pool}x{pool}", "projector weights (MiB)":
                     f"{-(-seq // pool) * -(-768 // pool) * st.hidden * 2 / 2**20:.1f}",
                     "first-layer cycles (all layers)": f"{embed1:,}",
                     "search share of a miss pass": f"{(tm - plain) / tm:.1%}",
                     "break-even (simulated)": f"{be:.1%}" if be <= 1 else "never",
                     "model": (f"{m0.layers.break_even.iloc[0]:.1%}"
                               if m0.layers.break_even.iloc[0] <= 1 else "never")})
        if progress:
            progress(f"  pool {pool}: break-even {be:.3f}")
    return [f"## The projector's size (sequence {seq}, batch {b}, {tier})", "",
            "The embedding MLP's first layer reads the pooled (S, d) input: per sequence a "
            "matrix-vector product, which the systolic array runs one row (or column) of PEs "
            "wide, and whose weights stream from DRAM once per batch. Pooling the input harder "
            "shrinks both (what it does to the hit rate's quality is the algorithm's question, "
            "not measured here):", "", pd.DataFrame(rows).to_markdown(index=False), ""]


def _findings(df: pd.DataFrame) -> list[str]:
    out = []
    ok = df[df.fits]
    for (seq, b), g in ok.groupby(["seq", "batch"]):
        best = g.loc[(g.hit / g.plain).idxmin()]
        be = g.sim_break_even.min()
        out.append(f"- Sequence {seq}, batch {b}: at r = 1 the best tier ({best.tier}) saves "
                   f"{1 - best.hit / best.plain:.1%} of the pass (attention is "
                   f"{best.attn_plain / best.plain:.1%} of it); memoizing pays above "
                   + (f"{be:.0%} hits." if be <= 1 else "no hit rate (the search costs more "
                      "than the attention it skips)."))
    miss = df[~df.fits]
    for _, r in miss.iterrows():
        out.append(f"- Sequence {r.seq}: the store ({r.store_gib:,.1f} GiB) does not fit "
                   f"{r.tier} ({r.tier_gib:,.0f} GiB).")
    return sorted(set(out), key=out.index)
