"""``satmem demo``: the product in about a minute, written as a report.

The report is a list of sections (:data:`SECTIONS`), each a function of the run's
:class:`DemoContext` that returns its Markdown, its tables (written as CSV) and the figures it
drew into the run directory:

1. the fidelity chain on ``tiny``: GEMMs and MemoryFormer memory layers on the generated
   Verilog and on hwsim, cycles and values compared;
2. a whole BDWP 2:8 training step of a 2-layer GPT with values on hwsim (``dataflow.run_step``)
   against PyTorch autograd: loss, every gradient and every updated weight;
3. the headline: a zoo model's BDWP 2:8 training step on ``vcu1525`` against dense and against
   its ideal bound, the critical-path split of both steps and what eats the gap to the bound,
   the energy by component and the roofline per layer and pass (:mod:`reports.figures`);
4. one GEMM dense, 2:4 and 2:8: cycles, speedup against the M/N bound, energy;
5. a MemoryFormer memory layer (MemoryFormer-tiny's shape) on the lookup engine: forward and
   training step, where the cycles go, tier traffic and energy;
6. the GEMM utilisation sweep on ``vcu1525``.

Every number is simulated when the demo runs. Another section is a :class:`DemoSection` more
in :data:`SECTIONS`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd
from matplotlib.figure import Figure

from dataflow import simulate_gemm
from dataflow.lower.lookup import LayerShape
from hwsim import preset
from hwsim.paths import build_dir, runs_dir

from .fidelity import (
    LOOKUP_TIERS,
    gemm_cosim,
    layer_step_cosim,
    lookup_cosim,
    lookup_test_config,
)
from .progress import progress_for, stage

__all__ = ["SECTIONS", "DemoContext", "DemoSection", "SectionResult", "figure_files",
           "gap_table", "memory_layer_table", "run_demo"]

# (m, n, k, dataflow, N:M pattern of B or None)
FIDELITY_SHAPES = [(4, 4, 4, "os", None), (7, 5, 9, "ws", None), (16, 16, 16, "os", None),
                   (9, 13, 70, "os", None), (16, 16, 64, "os", (2, 8)),
                   (9, 13, 70, "ws", (2, 4)), (8, 6, 40, "ws", (1, 8))]
# GEMMs on tiny with the wide DMA (dram.dma: wide), tile-blocked: LOADs of four entries a request
WIDE_SHAPES = [(16, 16, 64, "os", None), (9, 13, 70, "ws", (2, 8))]
# MemoryFormer memory-layer forwards (HASH, GATHER): (tokens, d, h, tau, official, tier)
LOOKUP_SHAPES = [(4, 32, 32, 8, False, LOOKUP_TIERS.index("ddr4")),
                 (3, 40, 16, 10, True, LOOKUP_TIERS.index("pmem"))]
# A MemoryFormer memory-layer training step compiled by dataflow: (tokens, d, h, tau)
STEP_SHAPE = (6, 16, 16, 4)
SWEEP_SHAPES = [(64, 64, 64), (256, 256, 256), (1024, 1024, 1024), (3136, 64, 576),
                (196, 384, 1536), (2048, 512, 512)]
CONFIG = "vcu1525"
"""The machine of the performance sections."""
STEP = ("resnet18", "bdwp", "2:8", 8)
"""(zoo model, method, pattern, batch) of the training-step section (the SAT report's batch)."""
SPARSE_GEMMS = [(1024, 1024, 1024), (3136, 64, 576)]
"""GEMMs run dense, 2:4 and 2:8 (the second: ResNet's 3x3 conv of 64 channels at 56x56)."""
SPARSE_PATTERNS = (None, "2:4", "2:8")


@dataclass
class DemoContext:
    """What a section may use: the run directory it writes figures into, the RTL simulator and
    its build cache, ``quick`` (the test suite's short fidelity chain) and ``progress`` (a
    :mod:`reports.progress` callable or None)."""

    work: Path
    sim: str = "verilator"
    build: Path = field(default_factory=build_dir)
    quick: bool = False
    progress: Callable[[str], None] | None = None

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)


@dataclass
class SectionResult:
    """A section's report: Markdown ``lines`` (under its heading), ``tables`` (CSV stem ->
    table, written into the run directory), ``figures`` (files it wrote there) and ``ok``
    (False when a check the section makes failed: the report says so)."""

    lines: list[str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    ok: bool = True


@dataclass(frozen=True)
class DemoSection:
    """One section of the demo: its heading and the function that runs it."""

    title: str
    run: Callable[[DemoContext], SectionResult]


# --- 1. fidelity ------------------------------------------------------------------------------

def fidelity_section(ctx: DemoContext) -> SectionResult:
    """GEMMs and memory layers on the RTL (cocotb) and hwsim, on ``tiny``."""
    tiny = preset("tiny")
    wide = tiny.replace(dram__dma="wide", name="tiny_wide")
    gemms = [(tiny, s) for s in (FIDELITY_SHAPES[:2] if ctx.quick else FIDELITY_SHAPES)]
    gemms += [] if ctx.quick else [(wide, s) for s in WIDE_SHAPES]
    layers = LOOKUP_SHAPES[:1] if ctx.quick else LOOKUP_SHAPES
    stage(ctx.progress, f"fidelity on RTL ({ctx.sim}) and hwsim", len(gemms) + len(layers) + 1)
    rows = []
    for i, (cfg, (m, n, k, df, nm)) in enumerate(gemms):
        kind = "dense" if nm is None else f"{nm[0]}:{nm[1]}"
        rows.append(gemm_cosim(cfg, m, n, k, sim=ctx.sim, seed=i, build_root=ctx.build,
                               dataflow=df, sparsity=nm, blocked=cfg is wide))
        ctx.say(f"[fidelity {i + 1}/{len(gemms)}] {cfg.name} {kind} {df} GEMM {m}x{n}x{k}: "
                + _equal(rows[-1]))
    fid = pd.DataFrame(rows)
    lk_cfg = lookup_test_config("tiny")
    lk_rows = []
    for i, (t, d, h, tau, official, tier) in enumerate(layers):
        lk_rows.append(lookup_cosim(lk_cfg, t, d, h, tau, sim=ctx.sim, seed=i,
                                    build_root=ctx.build, official=official, tier=tier))
        ctx.say(f"[fidelity lookup {i + 1}/{len(layers)}] memory layer {t}x{d} -> {h}, tau "
                f"{tau}, tier {LOOKUP_TIERS[tier]}: " + _equal(lk_rows[-1]))
    lk = pd.DataFrame(lk_rows)
    t, d, h, tau = STEP_SHAPE
    step = pd.DataFrame([layer_step_cosim(lk_cfg, LayerShape(t, d, h, tau=tau), sim=ctx.sim,
                                          build_root=ctx.build)])
    ctx.say(f"[fidelity lookup step] memory layer {t}x{d} -> {h}, tau {tau}, forward, backward "
            "and SGD update: " + _equal(step.iloc[0]))
    ok = bool(fid["cycles_equal"].all() and fid["values_equal"].all()
              and lk["cycles_equal"].all() and lk["values_equal"].all()
              and step["cycles_equal"].all() and step["values_equal"].all())
    lines = [
        "Each GEMM is compiled to LOAD/GEMM/STORE commands, run by hwsim (functional: per-cycle",
        f"array model; timing: closed forms) and by the generated Verilog under {ctx.sim} "
        "(cocotb),",
        "and compared with the exact int32 product. Cycles compare every command's accept and",
        "retire cycle. N:M rows load B compressed (values and indices, the format of",
        "`algorithms.nm.compress`) and run sparse tiles: each PE picks its activation by index.",
        "Rows on `tiny_wide` use the wide DMA vcu1525 has (`dram.dma: wide`): operands stored",
        "tile-blocked, a LOAD of whole contiguous entries asks for a bus word (four entries) a",
        "request and writes them in one cycle.",
        "",
        fid.to_markdown(index=False),
        "",
        "The lookup engine on `tiny_lookup` (`tiny` with the DDR4, HBM2e, CXL and persistent-",
        "memory tiers): a MemoryFormer memory layer's forward, HASH (row indices and chunk",
        "weights through the hardware sigmoid) then GATHER (rows from the tier, weighted fp32",
        "sums). The bench's table memory is hwsim's tier model itself, request by request, so",
        "every row request, answer and lane cycle of the RTL is checked against hwsim's.",
        "",
        lk.to_markdown(index=False),
        "",
        "A whole training step of a memory layer as `dataflow` compiles it (HASH, GATHER; the",
        "backward's HASH, GATHER mode 1 (dL/dp), HASH mode 2 (dX) and SCATTER (the table",
        "gradient, repeated rows forwarded or waited for); SCATTER mode 1, the lazy SGD-momentum",
        "update of the listed rows): every output bit-equal between RTL and hwsim, hwsim within",
        "the stated bounds of MemoryFormer's PyTorch layer and autograd (`worst_error_over_bound`",
        "at most 1).",
        "",
        step.to_markdown(index=False),
        "",
        f"**All equal: {'yes' if ok else 'NO'}**",
    ]
    return SectionResult(lines, {"fidelity": fid, "fidelity_lookup": lk,
                                 "fidelity_lookup_step": step}, ok=ok)


def _equal(row) -> str:
    return ("cycles and values equal" if row["cycles_equal"] and row["values_equal"] else
            f"cycles equal {bool(row['cycles_equal'])}, values equal "
            f"{bool(row['values_equal'])}")


# --- 2. the BDWP training step ----------------------------------------------------------------

_PARTS = {"GEMM tiles": ("gemm_dense", "gemm_sparse"), "vector passes": ("vector",),
          "optimizer updates": ("update",), "exposed DMA": ("dma_in", "dma_out"),
          "SORE": ("sore",), "lookup": ("lookup",), "control": ("control",)}


def gap_table(sparse: dict, dense: dict, bound: float) -> pd.DataFrame:
    """The critical-path split of a sparse step and its dense baseline (``totals`` of
    :func:`dataflow.simulate_model`), and what each part adds to the gap to the bound.

    A step at the bound would take ``dense cycles / bound``: every part of the dense step's
    critical path shrunk by the bound. A part's ``excess`` is its sparse cycles less its dense
    cycles over the bound; the excesses sum to the gap (``sparse cycles - dense cycles /
    bound``). Rows: the parts of :data:`dataflow.PATH_PARTS` grouped; columns ``part,
    dense_cycles, at_bound, sparse_cycles, excess, share_of_gap``."""
    rows = []
    gap = sparse["cycles"] - dense["cycles"] / bound
    for name, keys in _PARTS.items():
        d = sum(dense.get(f"path_{k}", 0) for k in keys)
        s = sum(sparse.get(f"path_{k}", 0) for k in keys)
        if not d and not s:
            continue
        rows.append({"part": name, "dense_cycles": int(d), "at_bound": d / bound,
                     "sparse_cycles": int(s), "excess": s - d / bound,
                     "share_of_gap": (s - d / bound) / gap if gap else 0.0})
    return pd.DataFrame(rows)


def training_step_section(ctx: DemoContext) -> SectionResult:
    """:data:`STEP` on :data:`CONFIG`: speedup, bound, critical path, energy, roofline."""
    from dataflow.simulate import simulate_model

    from . import figures as fg

    model, method, pattern, batch = STEP
    cfg = preset(CONFIG)
    stage(ctx.progress, f"{model} {method} {pattern} training step", 2)
    t0 = time.perf_counter()

    def timed(prog) -> bool:  # the step first, then its dense baseline
        w = prog.workload
        ctx.say(f"[{model}] {w.method}{'' if w.method == 'dense' else ' ' + w.pattern} step "
                f"compiled and timed ({time.perf_counter() - t0:.1f} s)")
        return True

    with fg.capture_runs(timed) as runs:
        res = simulate_model(model, method, pattern, cfg, batch)
    (prog, st), (dprog, dst) = runs[0], runs[-1]
    t = res.totals
    dense = {"cycles": dst.cycles, "energy_pj": dst.energy_total_pj,
             **{f"energy_{k}_pj": v for k, v in dst.energy_pj.items()},
             **{f"path_{k}": v for k, v in _critical_path(dprog, dst, cfg).items()}}
    label = f"{method.upper()} {pattern}"
    speed = pd.DataFrame([{
        "model": model, "batch": batch, "config": cfg.name, "method": method,
        "pattern": pattern, "cycles": t["cycles"], "dense_cycles": res.dense_cycles,
        "ms": t["seconds"] * 1e3, "dense_ms": res.dense_cycles / (cfg.clock_mhz * 1e3),
        "speedup": res.speedup, "bound": res.ideal_speedup,
        "share_of_bound": res.speedup / res.ideal_speedup, "utilisation": t["utilisation"]}])
    gap = gap_table(t, dense, res.ideal_speedup)
    energy = fg.energy_table({"dense": dense, label: t})
    energy["reported_total"] = [dense["energy_pj"], t["energy_pj"]]
    roofs = {label: fg.roofline(prog, st, cfg), "dense": fg.roofline(dprog, dst, cfg)}
    what = f"{model} training step, batch {batch}, {cfg.name}"
    for ext in ("png", "svg"):  # PNG for the report, SVG for slides (and the tests' checks)
        fg.plot_energy({what: {"dense": dense, label: t}}, ctx.work / f"step_energy.{ext}",
                       title="Energy by component")
        fg.plot_roofline(roofs, ctx.work / f"step_roofline.{ext}",
                         title=f"Roofline per layer and pass: {what}")
    roof = pd.concat([r.assign(step=k) for k, r in roofs.items()], ignore_index=True)
    r = speed.iloc[0]
    g_gap = r.cycles - r.dense_cycles / r.bound
    top = gap.sort_values("excess", ascending=False).iloc[0]
    mem = {k: int(v.memory_bound.sum()) for k, v in roofs.items()}
    lines = [
        f"{model} at batch {batch} on `{cfg.name}` ({cfg.array.rows}x{cfg.array.cols} "
        f"{cfg.array.dtype} at {cfg.clock_mhz:g} MHz), one training step (forward, loss, "
        f"backward, SGD update) compiled by `dataflow` and timed by hwsim, {label} against "
        "the same step dense (the stem and classifier stay dense in both, "
        "`dataflow.workload.default_skip`). The bound is the dense step's GEMM MACs over the "
        "sparse step's (`Workload.ideal_speedup`): the speedup with every cycle spent on "
        "useful MACs.",
        "",
        "| step | cycles | ms | speedup | bound | share of bound | utilisation |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| dense | {r.dense_cycles:,} | {r.dense_ms:,.2f} | 1.000x | | | |",
        f"| {label} | {r.cycles:,} | {r.ms:,.2f} | **{r.speedup:.3f}x** | {r.bound:.3f}x | "
        f"{r.share_of_bound:.1%} | {r.utilisation:.1%} |",
        "",
        "### Where the cycles go, and what eats the gap to the bound",
        "",
        "Critical path (`dataflow.simulate.critical_path`: a walk back from the last command "
        "through whatever bound each start) of both steps. At the bound every part of the "
        f"dense step would shrink {r.bound:.3f}x; a part's excess is what it keeps beyond "
        f"that, and the excesses add up to the gap ({g_gap:,.0f} cycles, "
        f"{g_gap / r.cycles:.1%} of the sparse step).",
        "",
        "| part | dense step | at the bound | " + label + " step | excess | share of gap |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {p.part} | {p.dense_cycles:,} | {p.at_bound:,.0f} | {p.sparse_cycles:,} | "
          f"{p.excess:+,.0f} | {p.share_of_gap:.1%} |" for p in gap.itertuples()],
        "",
        f"The largest share: {top.part} ({top.share_of_gap:.0%}). GEMM tiles keep their fill "
        "and drain, and underfill the array rows when the compressed reduction (K·N/M) is "
        "short; vector passes, optimizer updates and DMA do about the same work in both "
        "steps, so they do not shrink with the MACs.",
        "",
        "### Energy by component",
        "",
        "![energy by component](step_energy.png)",
        "",
        "| step | " + " | ".join(c for c in energy.columns if c != "reported_total")
        + " |", "|---|" + "---:|" * (len(energy.columns) - 1),
        *[f"| {k} | " + " | ".join(f"{v / 1e9:,.3f}" for c, v in row.items()
                                   if c != "reported_total") + " |"
          for k, row in energy.iterrows()],
        "",
        "mJ (`hwsim.energy`); the SRAM buffers' parts (ACT, WGT, ACC, IDX, VEC) are stacked "
        "in place of one SRAM segment in the figure.",
        "",
        "### Roofline per layer and pass",
        "",
        "![roofline](step_roofline.png)",
        "",
        f"Each GEMM item (a layer's pass) at its MACs per DMA byte against the MACs per cycle "
        f"it attained over its window, under the compute roof ({cfg.peak_macs_per_cycle:,} "
        f"MACs per cycle) and the bandwidth roof ({cfg.dram_bytes_per_cycle:,.0f} bytes per "
        f"cycle). Memory-bound items (open triangles): "
        + ", ".join(f"{k} {v} of {len(roofs[k])}" for k, v in mem.items()) + ".",
    ]
    ctx.say(f"[{model}] {label} {r.speedup:.3f}x over dense (bound {r.bound:.3f}x)")
    return SectionResult(lines, {"step_speedup": speed, "step_critical_path": gap,
                                 "step_energy": energy.rename_axis("step").reset_index(),
                                 "step_roofline": roof},
                         ["step_energy.png", "step_roofline.png", "step_energy.svg",
                          "step_roofline.svg"])


def _critical_path(prog, st, cfg) -> dict:
    from dataflow.simulate import critical_path

    return critical_path(prog.table, st, cfg.queue_depth)


# --- 3. sparse against dense GEMM -------------------------------------------------------------

def sparse_gemm_section(ctx: DemoContext) -> SectionResult:
    """:data:`SPARSE_GEMMS` dense and at each pattern, in both dataflows."""
    cfg = preset(CONFIG)
    stage(ctx.progress, "sparse against dense GEMMs", len(SPARSE_GEMMS))
    rows = []
    for m, n, k in SPARSE_GEMMS:
        for df in cfg.array.dataflows:
            base = None
            for pat in SPARSE_PATTERNS:
                s = simulate_gemm(m, n, k, cfg, dataflow=df, sparsity=pat, mapping="search")
                base = base or s
                pn, pm = (1, 1) if pat is None else (int(x) for x in pat.split(":"))
                rows.append({"gemm": f"{m}x{n}x{k}", "dataflow": df, "pattern": pat or "dense",
                             "cycles": s.cycles, "speedup": base.cycles / s.cycles,
                             "bound": pm / pn, "utilisation": s.utilisation,
                             "energy_uJ": s.energy_total_pj / 1e6,
                             "energy_vs_dense": s.energy_total_pj / base.energy_total_pj,
                             "dram_MB": (s.bytes["dram_read"] + s.bytes["dram_write"]) / 1e6})
        best = max((r for r in rows if r["gemm"] == f"{m}x{n}x{k}"), key=lambda r: r["speedup"])
        ctx.say(f"[GEMM {m}x{n}x{k}] best {best['pattern']} {best['dataflow']}: "
                f"{best['speedup']:.2f}x over dense (bound {best['bound']:.0f}x)")
    tab = pd.DataFrame(rows)
    lines = [
        f"The same GEMM C[M,N] = A[M,K]·B[K,N] on `{cfg.name}` with B dense and N:M along K "
        "(compressed values and indices loaded, sparse tiles on the array), each dataflow, "
        "each at the mapping `dataflow.search` picks in that dataflow (as the compiler does "
        "for a model's GEMMs). "
        "Bound: M/N, the MACs skipped. Utilisation counts the MACs performed.",
        "",
        "| GEMM | dataflow | B | cycles | speedup | bound | utilisation | energy, uJ | energy "
        "vs dense | DRAM MB |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {r.gemm} | {r.dataflow} | {r.pattern} | {r.cycles:,} | {r.speedup:.2f}x | "
          f"{r.bound:.0f}x | {r.utilisation:.1%} | {r.energy_uJ:,.1f} | "
          f"{r.energy_vs_dense:.0%} | {r.dram_MB:,.2f} |" for r in tab.itertuples()],
    ]
    sparse = tab[tab.pattern != "dense"]
    slow = sparse[sparse.speedup < 1]
    if len(slow):
        lines += ["", "Slower than dense: " + ", ".join(
            f"{r.gemm} {r.dataflow} {r.pattern} ({r.speedup:.2f}x)" for r in slow.itertuples())
            + ". The DMA takes a request a cycle, as the RTL's does (`dram.dma: wide`: a bus "
            "word of four contiguous entries, or one strided entry): a sparse tile reads as "
            "many activation entries as a dense one in fewer cycles, and its indices beside its "
            "values, so where a GEMM waits on its loads, sparse waits longer."]
    if (sparse.energy_vs_dense >= 1 / sparse.speedup).all():
        lines += ["", "Energy falls less than the cycles: the array's MACs shrink by M/N, but "
                  "A is read in full, B's indices are loaded beside its values, and SRAM and "
                  "DRAM traffic does not shrink with the MACs."]
    return SectionResult(lines, {"sparse_gemm": tab})


# --- 4. a MemoryFormer layer on the lookup engine ---------------------------------------------

_LOOKUP_COMMANDS = {("HASH", 0): "HASH: rows and chunk weights",
                    ("HASH", 1): "HASH: rows and chunk weights",
                    ("HASH", 2): "HASH mode 2: dX", ("HASH", 3): "HASH mode 3: dX",
                    ("GATHER", 0): "GATHER: weighted row sums",
                    ("GATHER", 1): "GATHER mode 1: dL/dp",
                    ("SCATTER", 0): "SCATTER: table gradient",
                    ("SCATTER", 1): "SCATTER mode 1: SGD-momentum row update",
                    ("SCATTER", 2): "SCATTER mode 2: Adam row update"}


def memory_layer_table(prog, stats) -> pd.DataFrame:
    """Per kind of command of a run: ``command, unit, count, busy`` (cycles its commands
    occupy their unit) and ``share`` (of the run's cycles)."""
    from hwsim import isa
    from hwsim.program import COL

    op, mode = prog.table[:, 0], prog.table[:, COL["mode"]]
    dur = stats.schedule.duration
    rows: dict[str, dict] = {}
    for i in range(len(op)):
        o = isa.Opcode(int(op[i]))
        unit = isa.command_class(o).UNIT
        if unit == isa.Unit.LOOKUP:
            name = _LOOKUP_COMMANDS.get((o.name, int(mode[i])), f"{o.name} mode {int(mode[i])}")
        else:
            name = {"LOAD": "LOAD (DMA in)", "STORE": "STORE (DMA out)"}.get(o.name, o.name)
        r = rows.setdefault(name, {"command": name, "unit": unit.name.lower(), "count": 0,
                                   "busy": 0})
        r["count"] += 1
        r["busy"] += int(dur[i])
    df = pd.DataFrame(list(rows.values()))
    df["share"] = df["busy"] / stats.cycles
    return df.sort_values("busy", ascending=False, ignore_index=True)


def memory_layer_section(ctx: DemoContext) -> SectionResult:
    """MemoryFormer-tiny's Q memory layer over its full sequence, forward and training step."""
    from algorithms.memoryformer import MemoryFormerConfig
    from dataflow.lower.lookup import compile_memory_layer
    from hwsim import run

    from . import figures as fg

    cfg = preset(CONFIG)
    mf = MemoryFormerConfig.preset("tiny")
    shape = LayerShape(mf.max_seq_len, mf.d_model, mf.d_model, tau=mf.tau)
    phases = ("forward", "train")
    stage(ctx.progress, "MemoryFormer layer on the lookup engine", len(phases))
    rows, commands = [], {}
    for phase in phases:
        prog = compile_memory_layer(shape, cfg, phase=phase)
        st = run(prog, cfg, "timing").stats
        path = _critical_path(prog, st, cfg)
        tier = {k[len("tier_"):]: v for k, v in st.bytes.items() if k.startswith("tier_")}
        energy = fg.energy_components({f"energy_{k}_pj": v for k, v in st.energy_pj.items()})
        lookup_busy = st.busy.get("lookup", 0)
        moved = sum(tier.values())
        rows.append({"phase": phase, "commands": len(prog), "cycles": st.cycles,
                     "us": st.cycles / cfg.clock_mhz,
                     **{f"path_{k}": v for k, v in path.items() if v},
                     "busy_lookup": lookup_busy,
                     **{f"{k}_MB": v / 1e6 for k, v in tier.items() if v},
                     "tier_GBps": moved * cfg.clock_mhz / 1e3 / max(lookup_busy, 1),
                     "energy_uJ": st.energy_total_pj / 1e6,
                     **{f"energy_{k}_uJ": v / 1e6 for k, v in energy.items() if v}})
        commands[phase] = memory_layer_table(prog, st)
        ctx.say(f"[MemoryFormer layer] {phase}: {st.cycles:,} cycles, lookup engine on the "
                f"critical path {path['lookup'] / st.cycles:.0%}")
    tab = pd.DataFrame(rows).fillna(0)
    train = commands["train"]
    fwd, trn = tab.iloc[0], tab.iloc[-1]
    tiers = [c[:-3] for c in tab.columns if c.endswith("_MB")]
    etiers = [c for c in tab.columns if c.startswith("energy_tier_")]
    lk = cfg.lookup
    lines = [
        f"MemoryFormer-tiny's memory layer (d = {shape.d}, rows of h = {shape.h}, tau = "
        f"{shape.tau}: {shape.chunks} tables of {1 << shape.tau} rows) over its sequence of "
        f"{shape.tokens:,} tokens on `{cfg.name}`'s lookup engine ({lk.hash_lanes} hash lanes, "
        f"{lk.gather_lanes} gather lanes, tiers "
        + ", ".join(f"{t.name} ({t.kind})" for t in lk.tiers)
        + "), compiled by `dataflow.compile_memory_layer` and timed by hwsim (the model the "
        "RTL matches in section 1).",
        "",
        "| phase | commands | cycles | us | lookup on the critical path | exposed DMA | "
        + " | ".join(f"{t.replace('_', ' ')} MB" for t in tiers)
        + " | tier GB/s (lookup busy) | energy, uJ | tier share of energy |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(tiers) + "---:|---:|---:|",
        *[f"| {r['phase']} | {int(r['commands']):,} | {int(r['cycles']):,} | {r['us']:,.1f} | "
          f"{r.get('path_lookup', 0) / r['cycles']:.1%} | "
          f"{(r.get('path_dma_in', 0) + r.get('path_dma_out', 0)) / r['cycles']:.1%} | "
          + " | ".join(f"{r[t + '_MB']:,.1f}" for t in tiers)
          + f" | {r['tier_GBps']:,.2f} | {r['energy_uJ']:,.1f} | "
          f"{sum(r[c] for c in etiers) / r['energy_uJ']:.0%} |" for _, r in tab.iterrows()],
        "",
        f"Where the training step's {int(trn.cycles):,} cycles go "
        f"({trn.cycles / fwd.cycles:.1f}x the forward's), per kind of command (busy cycles; "
        "units overlap, so shares can add to more than 100%):",
        "",
        "| command | unit | count | busy cycles | share of the step |",
        "|---|---|---:|---:|---:|",
        *[f"| {r.command} | {r.unit} | {r.count:,} | {r.busy:,} | {r.share:.1%} |"
          for r in train.itertuples()],
        "",
        "Tiers each phase touched (`hwsim.tiers.place_tables` puts the fp16 table the forward "
        "reads first, the training step's fp32 master, gradient and momentum tables where "
        "they fit): " + "; ".join(
            f"{r['phase']} " + ", ".join(t.replace("_", " ") for t in tiers if r[t + "_MB"])
            for _, r in tab.iterrows())
        + f". The largest command of the step: {train.command.iloc[0]} "
        f"({train.share.iloc[0]:.0%} of its cycles).",
    ]
    return SectionResult(lines, {"memory_layer": tab,
                                 "memory_layer_commands": train.assign(phase="train")})


# --- 5. GEMM sweep ----------------------------------------------------------------------------

def gemm_sweep_section(ctx: DemoContext) -> SectionResult:
    """:data:`SWEEP_SHAPES` in each dataflow of :data:`CONFIG`, with a utilisation figure."""
    vcu = preset(CONFIG)
    stage(ctx.progress, "GEMM sweep", len(SWEEP_SHAPES))
    sweep = []
    for m, n, k in SWEEP_SHAPES:
        for df in vcu.array.dataflows:
            t0 = time.perf_counter()
            s = simulate_gemm(m, n, k, vcu, dataflow=df)
            sweep.append({"gemm": f"{m}x{n}x{k}", "dataflow": df, "cycles": s.cycles,
                          "utilisation": round(s.utilisation, 4),
                          "dram_MB": round((s.bytes["dram_read"] + s.bytes["dram_write"]) / 1e6,
                                           3),
                          "energy_uJ": round(s.energy_total_pj / 1e6, 3),
                          "sim_seconds": round(time.perf_counter() - t0, 3)})
        ctx.say(f"[sweep] GEMM {m}x{n}x{k}: utilisation "
                + ", ".join(f"{r['dataflow']} {r['utilisation']:.0%}" for r in sweep[-2:]))
    sw = pd.DataFrame(sweep)
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    piv = sw.pivot(index="gemm", columns="dataflow", values="utilisation").loc[
        [f"{m}x{n}x{k}" for m, n, k in SWEEP_SHAPES]]
    piv.plot.bar(ax=ax, rot=20)
    ax.set_ylabel("PE utilisation")
    ax.set_title(f"{vcu.name} ({vcu.array.rows}x{vcu.array.cols} {vcu.array.dtype}): GEMM "
                 "utilisation")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(ctx.work / "gemm_utilisation.png", dpi=120)
    lines = [sw.to_markdown(index=False), "", "![utilisation](gemm_utilisation.png)", "",
             "DMA-in, the array and DMA-out overlap under the semaphores of the double-buffered",
             "lowering; what remains is tile fill/drain and, for thin GEMMs, weight traffic."]
    return SectionResult(lines, {"gemm_sweep": sw}, ["gemm_utilisation.png"])


# --- a whole training step with values against autograd -------------------------------------

VALUES_MODEL = dict(vocab_size=128, d_model=64, n_layers=2, n_heads=4)
"""The Pythia-shaped GPT of the values section: 2 layers, d 64, 4 heads, 128 tokens."""
VALUES_BATCH = (4, 16)
VALUES_BOUND = 4 * 2.0 ** -11
"""Normwise relative error allowed for every gradient and updated weight: fp16's unit roundoff
for the array's two operands, twice (``tests/dataflow/test_step_values.py``)."""


def training_values_section(ctx: DemoContext) -> SectionResult:
    """One BDWP 2:8 training step of a 2-layer GPT with values on hwsim against autograd."""
    import copy

    import torch

    from algorithms import sparsify
    from dataflow.execute import compare, reference_step, run_step
    from dataflow.workload import required_skip
    from dataflow.zoo.gpt import GPT, GPTConfig

    stage(ctx.progress, "a training step with values", 1)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**VALUES_MODEL))
    model = sparsify(model, "2:8", "bdwp", skip=required_skip(model, "bdwp", "2:8")).train()
    x = torch.randint(0, VALUES_MODEL["vocab_size"], VALUES_BATCH)
    y = torch.randint(0, VALUES_MODEL["vocab_size"], VALUES_BATCH)
    ref = reference_step(copy.deepcopy(model), x, y)
    got = run_step(copy.deepcopy(model), x, y, CONFIG, pattern="2:8")
    err = compare(got, ref)
    ok = err["loss"] <= VALUES_BOUND and err["grads"] <= VALUES_BOUND and \
        err["weights"] <= VALUES_BOUND
    ctx.say(f"[values] GPT 2-layer BDWP 2:8 step: loss {got.loss:.6f} (autograd "
            f"{ref.loss:.6f}), worst gradient {err['grads']:.1e}, worst weight "
            f"{err['weights']:.1e} (bound {VALUES_BOUND:.1e})")
    worst = sorted(((v, k.split(":", 1)[1]) for k, v in err.items() if k.startswith("grad:")),
                   reverse=True)[:3]
    ops = got.ops
    tab = pd.DataFrame([{"tensor": k, "kind": k.split(":")[0], "rel_error": v}
                        for k, v in err.items() if ":" in k])
    lines = [
        f"A Pythia-shaped GPT (2 layers, d {VALUES_MODEL['d_model']}, "
        f"{VALUES_MODEL['n_heads']} heads), batch {VALUES_BATCH[0]} x {VALUES_BATCH[1]} "
        "tokens, BDWP 2:8: one whole training step (forward, cross-entropy, backward, SGD with "
        f"momentum) with every op on hwsim's functional units on `{CONFIG}` "
        "(`dataflow.run_step`): each GEMM its compiled program on the array with fp16 operands, "
        "norms, softmax, GELU, the loss and their backward the vector engine's fp32 kernels, "
        "the update UPDATE's. Against PyTorch autograd and `torch.optim.SGD` in fp32, "
        "normwise relative errors:",
        "",
        "| quantity | machine | autograd | relative error | bound |",
        "|---|---:|---:|---:|---:|",
        f"| loss | {got.loss:.6f} | {ref.loss:.6f} | {err['loss']:.1e} | {VALUES_BOUND:.1e} |",
        f"| worst of {len(got.grads)} gradients | | | {err['grads']:.1e} | "
        f"{VALUES_BOUND:.1e} |",
        f"| worst of {len(got.weights)} updated weights | | | {err['weights']:.1e} | "
        f"{VALUES_BOUND:.1e} |",
        "",
        f"{ops['gemms']:,} GEMM programs ({ops['macs_fwd'] + ops['macs_bwd']:,} MACs, "
        f"{ops['sparse_macs']:,} of them on the sparse path), {ops['array_cycles']:,} array "
        "cycles run one after another; largest gradient errors: "
        + ", ".join(f"`{n}` {v:.1e}" for v, n in worst) + ".",
    ]
    if not ok:
        lines += ["", "**A value left its bound.**"]
    return SectionResult(lines, {"training_values": tab}, ok=ok)


SECTIONS: list[DemoSection] = [
    DemoSection("Fidelity chain on `tiny` (4x4 int8)", fidelity_section),
    DemoSection(f"A whole training step with values on hwsim against autograd (`{CONFIG}`)",
                training_values_section),
    DemoSection(f"BDWP 2:8 training step on `{CONFIG}`: speedup, bound, where the cycles go",
                training_step_section),
    DemoSection(f"Sparse against dense GEMM on `{CONFIG}`", sparse_gemm_section),
    DemoSection("A MemoryFormer layer on the lookup engine", memory_layer_section),
    DemoSection(f"GEMM sweep on `{CONFIG}` (timing mode)", gemm_sweep_section),
]
"""The demo's sections, in report order."""


def run_demo(out_root: str | Path | None = None, *, sim: str = "verilator",
             progress: bool | Callable[[str], None] | None = True,
             build_root: str | Path | None = None, quick: bool = False,
             sections: list[DemoSection] | None = None) -> Path:
    """Run :data:`SECTIONS` (or ``sections``) and write ``report.md`` and ``report.html``, one
    CSV per table and the figures into ``demo-<stamp>/`` under ``out_root``; return the
    Markdown file.

    The report directory is written under a temporary name and renamed when complete, so an
    interrupted demo never leaves a half-written report where a finished one is expected.
    Simulator builds are cached under ``build_root``. ``quick``: the first two GEMMs and the
    first memory layer of the fidelity chain only (the test suite's end-to-end run).
    ``progress``: True for a bar on a terminal (:func:`reports.progress.progress_for`),
    False or None for silence, or a :mod:`reports.progress` callable.
    """
    from .html import write_html

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_root = out_root if out_root is not None else runs_dir()
    final = Path(out_root) / f"demo-{stamp}"
    work = Path(out_root) / f".demo-{stamp}.partial"
    work.mkdir(parents=True, exist_ok=True)
    if progress is True:
        progress = progress_for()
    ctx = DemoContext(work, sim, Path(build_root) if build_root is not None else build_dir(),
                      quick, progress or None)
    text = ["# satmem demo report", "",
            f"Generated {dt.datetime.now().isoformat(timespec='seconds')}.", ""]
    t0 = time.perf_counter()
    took = []
    try:
        for i, sec in enumerate(sections if sections is not None else SECTIONS, 1):
            t1 = time.perf_counter()
            res = sec.run(ctx)
            took.append(f"{i}. {time.perf_counter() - t1:.0f} s")
            text += [f"## {i}. {sec.title}", "", *res.lines, ""]
            if not res.ok:
                text += [f"**Section {i} failed its checks.**", ""]
            for stem, table in res.tables.items():
                table.to_csv(work / f"{stem}.csv", index=False)
    finally:
        done = getattr(ctx.progress, "done", None)
        if done is not None:
            done()
    text += [f"Demo run in {time.perf_counter() - t0:.0f} s (sections {', '.join(took)}).", ""]
    (work / "report.md").write_text("\n".join(text))
    write_html(work / "report.md")
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    return final / "report.md"


def figure_files(report: str | Path) -> list[Path]:
    """The figures of a demo report, in the order the report shows them."""
    from .html import image_refs

    report = Path(report)
    return [report.parent / ref for ref in image_refs(report.read_text())]

