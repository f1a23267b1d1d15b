"""The figures architects read: energy by component, a roofline per layer and pass, the Pareto
front of a sweep, unit utilisation over time.

Each figure is two functions: one computes its data from simulator results (a DataFrame the
tests check: the segments sum to the run's energy, the points lie under the roofs, the front is
non-dominated), the other draws exactly that data and saves a PNG. Plots use matplotlib's
object API (``matplotlib.figure.Figure``, rendered by Agg): no pyplot state, no display needed.

Where the numbers come from:

- **energy**: ``ModelResult.totals`` / ``Stats.energy_pj`` (:mod:`hwsim.energy`): components
  ``array, sram, dram, tier_<name>, sore, vector, lookup, static``, SRAM drawn per buffer: its
  parts ``sram_act, sram_wgt, sram_acc, sram_idx, sram_vec`` and the lookup engine's hot-row
  cache ``sram_hot_rows`` (:data:`hwsim.energy.SRAM_COMPONENTS`, which sum to ``sram``) are
  the segments. Results without the parts (sweep points stored before they were kept) draw
  ``sram`` as one segment.
- **roofline**: per item of a compiled program (a GEMM group of one layer and pass:
  ``conv1.fwd``, ``layer1.0.conv1.bgrad + wgrad``), the useful MACs over the item's DMA bytes
  (MACs per DRAM byte) against the MACs per cycle it attained over its window, the cycles from
  its first command's start to its last command's end. Roofs: ``config.peak_macs_per_cycle``
  and ``config.dram_bytes_per_cycle`` times the intensity; the ridge is their ratio. (The
  per-op ``cycles`` of ``ModelResult.ops`` are charged by completion and sum to the step; they
  are not a duration, so they do not bound the attained rate.)
- **Pareto**: non-dominated points of a sweep (minimise both axes), per workload.
- **utilisation**: per unit, the fraction of each time bin its commands occupy, from a run's
  schedule or a per-command trace (:mod:`hwsim.trace`).

The schedule of a model run (per command start and end) is not part of
:class:`dataflow.ModelResult`; :func:`capture_runs` records the compiled programs and their
:class:`hwsim.engine.Stats` while :func:`dataflow.simulate_model` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hwsim.energy import SRAM_COMPONENTS

__all__ = ["ENERGY_ORDER", "area_luts", "capture_runs", "component_label", "energy_components",
           "energy_table",
           "pareto_front", "plot_energy", "plot_pareto", "plot_roofline", "plot_utilisation",
           "roofline", "schedule_utilisation", "trace_utilisation", "utilisation_bins"]

ENERGY_ORDER = ("array", *SRAM_COMPONENTS, "sram", "dram", "sore", "vector", "lookup", "static")
"""Stacking order of the energy segments (``tier_<name>`` components follow ``dram``): ``sram``
is a segment only for what its parts do not cover (:func:`energy_components`)."""
_COLORS = {"array": "C0", "sram": "C1", "dram": "C3", "sore": "C4", "vector": "C2",
           "lookup": "C9", "static": "C7",
           # the SRAM buffers in shades of C1's orange, the hot-row cache darkest
           **dict(zip(SRAM_COMPONENTS, ("#fdae6b", "#fd8d3c", "#f16913", "#d94801", "#a63603",
                                        "#7f2704"), strict=True))}
_TIER_COLORS = ("C5", "C6", "C8", "tab:olive", "tab:cyan")
_UNIT_ORDER = ("dma_in", "dma_out", "array", "sore", "vector", "lookup")


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


# --- energy by component ------------------------------------------------------------------------

def energy_components(totals: Mapping[str, float]) -> dict[str, float]:
    """Picojoules per energy segment of one run, in :data:`ENERGY_ORDER` (tiers after
    ``dram``), from ``totals`` with ``energy_<component>_pj`` keys (``ModelResult.totals``,
    or ``{f"energy_{k}_pj": v}`` of ``Stats.energy_pj``). They sum to ``energy_pj``.

    SRAM is split by buffer: the parts ``sram_act`` ... ``sram_hot_rows`` replace ``sram``,
    which stays only with what they leave (all of it when ``totals`` has no parts, as sweep
    points stored before they were kept)."""
    parts = {k[len("energy_"):-len("_pj")]: float(v) for k, v in totals.items()
             if k.startswith("energy_") and k.endswith("_pj") and k != "energy_pj"
             and v is not None and not (isinstance(v, float) and np.isnan(v))}
    split = [c for c in SRAM_COMPONENTS if c in parts]
    if split:
        rest = parts.pop("sram", 0.0) - sum(parts[c] for c in split)
        if abs(rest) > 1e-9 * max(abs(sum(parts[c] for c in split)), 1.0):
            parts["sram"] = rest  # SRAM traffic filed with no buffer named
    return {k: parts[k] for k in _order(parts)}


def _order(components) -> list[str]:
    """``components`` in :data:`ENERGY_ORDER`, tiers after ``dram``, unknown ones last."""
    tiers = sorted(k for k in components if k.startswith("tier_"))
    cut = ENERGY_ORDER.index("dram") + 1
    order = [*ENERGY_ORDER[:cut], *tiers, *ENERGY_ORDER[cut:]]
    order += sorted(k for k in components if k not in order)
    return [k for k in order if k in components]


def component_label(component: str) -> str:
    """How figures and tables name a segment: ``sram ACT`` for ``sram_act``, ``sram hot rows``
    for ``sram_hot_rows``, ``tier ddr`` for ``tier_ddr``, other components as they are."""
    if component in SRAM_COMPONENTS:
        part = component[len("sram_"):]
        return "sram " + (part.upper() if part in ("act", "wgt", "acc", "idx", "vec")
                          else part.replace("_", " "))
    return component.replace("tier_", "tier ", 1) if component.startswith("tier_") \
        else component


def energy_table(runs: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """One row per run (``label -> totals``), one column per component (pJ), and ``total``."""
    rows = {label: energy_components(t) for label, t in runs.items()}
    df = pd.DataFrame.from_dict(rows, orient="index").fillna(0.0)
    df = df[_order(set(df.columns))]
    df["total"] = df.sum(axis=1)
    return df


def _color(component: str, tiers: list[str]) -> str:
    if component in _COLORS:
        return _COLORS[component]
    return _TIER_COLORS[tiers.index(component) % len(_TIER_COLORS)] if component in tiers \
        else "k"


def plot_energy(panels: Mapping[str, Mapping[str, Mapping[str, float]]],
                path: str | Path | None = None, *, title: str | None = None,
                unit: str = "mJ") -> Figure:
    """Stacked bars of energy by component: one panel per entry of ``panels`` (panel title ->
    ``{bar label: totals}``), one bar per run, one segment per component and SRAM one per
    buffer (:func:`energy_components`; segments that are zero in every run are left out).

    ``unit``: ``"mJ"``, ``"uJ"``, ``"pJ"`` or ``"auto"`` (per panel, mJ or uJ by its largest
    bar). Returns the figure (saved to ``path`` if given);
    ``figure.energy_tables`` holds each panel's :func:`energy_table`.
    """
    scales = {"mJ": 1e-9, "uJ": 1e-6, "pJ": 1.0}
    tables = {name: energy_table(runs) for name, runs in panels.items()}
    n = len(tables)
    cols = min(n, 4)
    rows = -(-n // cols)
    bars = max((len(df) for df in tables.values()), default=1)
    label = max((len(str(k)) for df in tables.values() for k in df.index), default=0)
    below = 0.07 * label if bars > 4 else 0.0  # room for labels turned upright
    fig = Figure(figsize=(2.2 + max(2.6, 0.32 * bars) * cols, 0.6 + (3.4 + below) * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    handles = {}
    for ax, (name, df) in zip(axes, tables.items(), strict=False):
        comps = [c for c in df.columns if c != "total"]
        u = unit if unit != "auto" else ("mJ" if df["total"].max() >= 1e8 else "uJ")
        scale = scales[u]
        tiers = [c for c in comps if c.startswith("tier_")]
        bottom = np.zeros(len(df))
        x = np.arange(len(df))
        for c in comps:
            v = df[c].to_numpy() * scale
            if not v.any():
                continue
            bars = ax.bar(x, v, 0.7, bottom=bottom, color=_color(c, tiers),
                          label=component_label(c))
            for patch in bars.patches:
                patch.set_gid(c)
            handles.setdefault(component_label(c), bars)
            bottom += v
        ax.set_xticks(x, list(df.index), fontsize=8 if len(df) <= 4 else 7,
                      rotation=0 if len(df) <= 2 else 15 if len(df) <= 4 else 90)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(f"energy, {u}", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    ncol = min(len(handles), 7)
    fig.legend(list(handles.values()), list(handles), loc="lower center",
               ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title or "Energy by component", fontsize=10)
    lines = -(-len(handles) // ncol) if handles else 1
    fig.tight_layout(rect=(0, (0.07 if rows == 1 else 0.04) * (1 + 0.6 * (lines - 1)), 1, 1))
    fig.energy_tables = tables
    return _save(fig, path)


# --- roofline -----------------------------------------------------------------------------------

@contextmanager
def capture_runs(keep: Callable | None = None) -> Iterator[list]:
    """Record ``(program, stats)`` of every compiled program timed while the block runs
    (:func:`dataflow.simulate_model` and :func:`dataflow.simulate_workload` time them with
    ``dataflow.simulate.simulate_program``), in the order they ran: a model run's own program
    first, then its dense comparison. ``keep(program)`` chooses which to keep (programs hold
    their command tables: tens of MB for the larger models)."""
    import dataflow.simulate as sim

    runs: list = []
    inner = sim.simulate_program

    def recording(program, config=None):
        stats = inner(program, config)
        if keep is None or keep(program):
            runs.append((program, stats))
        return stats

    sim.simulate_program = recording
    try:
        yield runs
    finally:
        sim.simulate_program = inner


def roofline(program, stats, config) -> pd.DataFrame:
    """One row per item of a compiled program that does MACs (GEMM groups of one layer and
    pass): ``name, layer, pass, macs, dram_bytes, cycles`` (its window: first start to last
    end), ``intensity`` (MACs per DMA byte; inf without DMA traffic), ``attained`` (MACs per
    cycle), ``roof`` (the lower roof at its intensity) and ``memory_bound`` (intensity below
    the ridge). ``attrs`` hold ``peak_macs_per_cycle``, ``dram_bytes_per_cycle``, ``ridge``
    and ``clock_mhz``.
    """
    from hwsim import isa
    from hwsim.buffers import elem_bytes_of
    from hwsim.program import COL

    table, sch = program.table, stats.schedule
    item_of = program.item_of
    n = len(program.items)
    ok = item_of >= 0
    it = item_of[ok]
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    last = np.full(n, -1, np.int64)
    np.minimum.at(first, it, sch.start[ok])
    np.maximum.at(last, it, sch.end[ok])
    op = table[:, 0]
    dma = ((op == isa.Opcode.LOAD) | (op == isa.Opcode.STORE)) & ok
    nbytes = table[:, COL["rows"]] * table[:, COL["elems"]] * elem_bytes_of(table[:, COL["buf"]],
                                                                            config)
    dram = np.bincount(item_of[dma], nbytes[dma], n)
    macs = np.bincount(it, program.useful_macs[ok], n)
    peak, bw = float(config.peak_macs_per_cycle), float(config.dram_bytes_per_cycle)
    rows = []
    for k, item in enumerate(program.items):
        if macs[k] <= 0:
            continue
        cycles = int(last[k] - first[k] + 1)
        intensity = macs[k] / dram[k] if dram[k] else np.inf
        rows.append({"name": item.name, "layer": item.layer, "pass": item.pass_,
                     "macs": int(macs[k]), "dram_bytes": int(dram[k]), "cycles": cycles,
                     "intensity": float(intensity), "attained": macs[k] / cycles,
                     "roof": min(peak, intensity * bw),
                     "memory_bound": bool(intensity < peak / bw)})
    df = pd.DataFrame(rows, columns=["name", "layer", "pass", "macs", "dram_bytes", "cycles",
                                     "intensity", "attained", "roof", "memory_bound"])
    df.attrs.update(peak_macs_per_cycle=peak, dram_bytes_per_cycle=bw, ridge=peak / bw,
                    clock_mhz=float(config.clock_mhz))
    return df


def plot_roofline(runs: Mapping[str, pd.DataFrame], path: str | Path | None = None, *,
                  title: str | None = None) -> Figure:
    """The roofline of one or more runs (``label -> roofline(...)``, one config): attained
    GMAC/s against MACs per DRAM byte, log-log, under the compute roof (PEs x clock) and the
    bandwidth roof (DRAM bytes per cycle x clock x intensity). Memory-bound points (left of
    the ridge) are drawn as open triangles. Items with no DMA traffic are counted in the
    legend, not drawn."""
    first = next(iter(runs.values()))
    a = first.attrs
    clock = a["clock_mhz"] * 1e6 / 1e9  # GMAC/s per MAC/cycle
    peak, bw, ridge = a["peak_macs_per_cycle"], a["dram_bytes_per_cycle"], a["ridge"]
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    finite = [df.intensity[np.isfinite(df.intensity)] for df in runs.values()]
    xs = pd.concat(finite) if finite else pd.Series(dtype=float)
    lo = min(xs.min() if len(xs) else ridge, ridge) / 3
    hi = max(xs.max() if len(xs) else ridge, ridge) * 3
    x = np.geomspace(lo, hi, 200)
    ax.plot(x, np.minimum(peak, x * bw) * clock, "k-", lw=1.5,
            label=f"roofs: {peak:,.0f} MAC/cycle, {bw:,.0f} B/cycle")
    ax.axvline(ridge, color="gray", ls=":", lw=1)
    ax.text(ridge, 0.02, f" ridge {ridge:.2f} MACs/B", fontsize=8, va="bottom",
            transform=ax.get_xaxis_transform())
    for j, (label, df) in enumerate(runs.items()):
        d = df[np.isfinite(df.intensity)]
        mem = d.memory_bound.to_numpy()
        c = f"C{j}"
        none = f" ({len(df) - len(d)} with no DMA, not drawn)" if len(df) > len(d) else ""
        if (~mem).any() or not mem.any():
            ax.scatter(d.intensity[~mem], d.attained[~mem] * clock, s=18, color=c,
                       label=f"{label}: {int((~mem).sum())} right of the ridge"
                       + ("" if mem.any() else none), gid=f"{label}:c")
        if mem.any():
            ax.scatter(d.intensity[mem], d.attained[mem] * clock, s=30, marker="^",
                       facecolors="none", edgecolors=c,
                       label=f"{label}: {int(mem.sum())} memory-bound" + none,
                       gid=f"{label}:m")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity, MACs per DRAM byte (DMA)")
    ax.set_ylabel("attained GMAC/s (over each item's window)")
    ax.set_title(title or "Roofline per layer and pass", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")  # above the bandwidth roof: no points there
    fig.tight_layout()
    return _save(fig, path)


# --- Pareto front -------------------------------------------------------------------------------

def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for the rows no other row dominates on ``(x, y)``, both minimised (a row dominates
    another when it is no worse on both and better on one); rows with a missing value are
    False and take no part."""
    valid = df[x].notna() & df[y].notna()
    pts = df.loc[valid, [x, y]].to_numpy(float)
    front = np.ones(len(pts), bool)
    for i, (a, b) in enumerate(pts):
        dominated = (pts[:, 0] <= a) & (pts[:, 1] <= b) & ((pts[:, 0] < a) | (pts[:, 1] < b))
        front[i] = not dominated.any()
    out = pd.Series(False, index=df.index)
    out[valid[valid].index] = front
    return out


def area_luts(df: pd.DataFrame, synth: Mapping) -> tuple[pd.Series | None, str]:
    """An area estimate (LUTs) per sweep row from a synthesis report's fits
    (``reports/synth/*_synth_report.json``, :mod:`rtl.synth`): ``a + b * PEs`` for the array
    and ``a + b * lanes`` for SORE, the vector engine and the lookup hash and gather engines.

    Returns ``(luts or None, why)``: None when the rows cannot be mapped (no array shape
    columns, or an array dtype other than the synthesized one).
    """
    designs = [d for d in synth.get("designs", []) if d.get("pes")]
    dtypes = {w.split("'")[1] for w in (d.get("what", "") for d in designs) if "'" in w}
    if "fit" not in synth or not designs or len(dtypes) != 1:
        return None, "the synthesis report has no array fit"
    dtype = dtypes.pop()
    need = ["array.rows", "array.cols"]
    if any(c not in df.columns for c in need):
        return None, "the sweep rows have no array shape"
    if "array.dtype" in df.columns and (df["array.dtype"].dropna() != dtype).any():
        return None, (f"the synthesized PEs are {dtype}; the sweep has "
                      f"{', '.join(sorted(set(df['array.dtype'].dropna()) - {dtype}))} arrays")
    fit = synth["fit"]["LUT"]
    luts = fit["a"] + fit["b"] * df["array.rows"] * df["array.cols"]
    parts = ["array"]
    engines = synth.get("engine_estimates", {})
    for name, col in (("sore", "sore.lanes"), ("vector", "vector.lanes"),
                      ("hash", "lookup.hash_lanes"), ("gather", "lookup.gather_lanes")):
        if name in engines and col in df.columns:
            f = engines[name]["fit"]["LUT"]
            luts = luts + f["a"] + f["b"] * df[col]
            parts.append(engines[name].get("label", name))
    return luts.astype(float), (f"LUTs from the {synth.get('part', '')} synthesis fits of "
                                f"{synth.get('config', '')} ({', '.join(parts)}; linear in PEs "
                                "and lanes)")


def plot_pareto(df: pd.DataFrame, path: str | Path | None = None, *, x: str = "seconds",
                y: str = "energy_pj", by: str = "workload", xlabel: str = "latency, ms",
                ylabel: str = "energy, mJ", xscale: float = 1e3, yscale: float = 1e-9,
                title: str | None = None) -> Figure:
    """One panel per ``by`` group (a sweep's workloads): every point, the non-dominated ones
    (:func:`pareto_front` within the group) highlighted and joined. ``figure.fronts`` maps
    each group to its front's row index."""
    groups = list(dict.fromkeys(df[by])) if len(df) else []
    n = max(len(groups), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(0.8 + 4.2 * cols, 0.6 + 3.6 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    fronts = {}
    for ax, g in zip(axes, groups, strict=False):
        sub = df[df[by] == g]
        front = pareto_front(sub, x, y)
        fronts[g] = list(sub.index[front])
        rest = sub[~front & sub[x].notna() & sub[y].notna()]
        ax.scatter(rest[x] * xscale, rest[y] * yscale, s=16, color="0.6", label="dominated",
                   gid="dominated")
        f = sub[front].sort_values(x)
        ax.plot(f[x] * xscale, f[y] * yscale, "o-", color="C3", ms=6, lw=1.2,
                label=f"Pareto front ({len(f)})", gid="front")
        ax.set_title(str(g), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    fig.suptitle(title or f"{ylabel} against {xlabel}", fontsize=10)
    fig.tight_layout()
    fig.fronts = fronts
    return _save(fig, path)


# --- utilisation over time ----------------------------------------------------------------------

def utilisation_bins(unit, start, end, cycles: int | None = None,
                     bins: int = 100) -> pd.DataFrame:
    """Per unit, the fraction of each of ``bins`` equal time bins its commands are busy.

    ``unit``: per command its unit name; ``start``, ``end``: its first and last cycle
    (inclusive). Commands of the controller (``control``) are left out. A unit runs one command
    at a time (:mod:`hwsim.schedule`), so its busy cycles up to time t are piecewise linear in
    t, and the bins are exact: ``fraction x bin width`` summed over the bins is the unit's busy
    cycles. Index: each bin's first cycle (``attrs["width"]``: cycles per bin).
    """
    unit = np.asarray(unit, dtype=object)
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    total = int(end.max()) + 1 if cycles is None and len(end) else int(cycles or 0)
    bins = max(1, min(int(bins), total)) if total else 1
    edges = np.linspace(0, total, bins + 1)
    names = [u for u in _UNIT_ORDER if (unit == u).any()]
    names += sorted({u for u in unit.tolist() if u not in names and u != "control"})
    out = {}
    for u in names:
        sel = unit == u
        s, e = start[sel], end[sel] + 1
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        dur = e - s
        before = np.concatenate(([0], np.cumsum(dur)[:-1]))
        xp = np.ravel(np.column_stack((s, e)))
        fp = np.ravel(np.column_stack((before, before + dur)))
        busy = np.interp(edges, xp, fp, left=0.0, right=float(dur.sum()))
        out[u] = np.diff(busy) / np.diff(edges)
    df = pd.DataFrame(out, index=pd.Index(edges[:-1], name="cycle"))
    df.attrs["width"] = total / bins if bins else 0.0
    return df


def schedule_utilisation(program, stats, bins: int = 100) -> pd.DataFrame:
    """:func:`utilisation_bins` of a run of ``program`` (its schedule)."""
    from hwsim.trace import _opcode_units, _unit_names

    names = _unit_names()
    units = [names[int(u)] for u in _opcode_units(program.table[:, 0])]
    sch = stats.schedule
    return utilisation_bins(units, sch.start, sch.end, stats.cycles, bins)


def trace_utilisation(path: str | Path, bins: int = 100) -> pd.DataFrame:
    """:func:`utilisation_bins` of a per-command CSV trace (:func:`hwsim.trace.write_trace`)."""
    from hwsim.trace import read_trace

    rows = read_trace(path)
    return utilisation_bins([r["unit"] for r in rows], [r["start"] for r in rows],
                            [r["end"] for r in rows], bins=bins)


def plot_utilisation(util: pd.DataFrame, path: str | Path | None = None, *,
                     clock_mhz: float | None = None, title: str | None = None) -> Figure:
    """One strip per unit: its busy fraction per time bin (:func:`utilisation_bins`), with
    the unit's mean over the run in its label. The time axis is in ms at ``clock_mhz``, else
    in cycles."""
    units = list(util.columns)
    fig = Figure(figsize=(9, 0.6 + 0.85 * max(len(units), 1)))
    axes = np.atleast_1d(fig.subplots(max(len(units), 1), 1, sharex=True, squeeze=False)).ravel()
    width = util.attrs.get("width", 1.0)
    t = util.index.to_numpy(float)
    scale = 1e3 / (clock_mhz * 1e6) if clock_mhz else 1.0
    for ax, (j, u) in zip(axes, enumerate(units), strict=False):
        v = util[u].to_numpy()
        ax.fill_between(np.append(t, t[-1] + width) * scale, np.append(v, v[-1]), step="post",
                        color=f"C{j}", alpha=0.8, lw=0)
        ax.set_ylim(0, 1.05)
        ax.set_yticks([0, 1])
        ax.set_ylabel(f"{u}\n{v.mean():.0%}", rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("time, ms" if clock_mhz else "cycle")
    fig.suptitle(title or "Busy fraction per unit over time", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
