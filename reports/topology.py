"""SCALE-Sim topologies through hwsim: per layer, satmem's cycles beside SCALE-Sim's.

Each layer is one GEMM (SCALE-Sim's im2col convention, :mod:`dataflow.scalesim`) compiled by
:func:`dataflow.lower.gemm.compile_gemm` and run by hwsim in timing mode. Beside satmem's
cycles stand the cycles SCALE-Sim's own compute model counts for the layer
(:func:`dataflow.scalesim.scalesim_cycles`: folds x fill + compute, no memory stalls) and the
terms that separate the two, which add up exactly::

    cycles = scalesim_cycles + tile_edges + output_drain + weight_load + tile_overhead
             + first_load + dram_stall + store_tail

- ``tile_edges``: SCALE-Sim's per-fold count summed over satmem's GEMM tiles, minus SCALE-Sim's
  own folds: what cutting a fold into more tiles costs (OS: reduction chunks that fit half of
  ACT and WGT, each filling the array again; WS: activation chunks that fit half of ACT and
  ACC, each paying weight load, fill and drain again). Zero when the tiles are SCALE-Sim's folds.
- ``output_drain``: OS only, ``R`` cycles a GEMM command (a tile, or a reduction chunk of one):
  satmem's array shifts the finished outputs out one ACC row a cycle before the next command
  starts (hwsim's array timing, checked against the RTL); SCALE-Sim's OS fold of
  ``K + R + C - 2`` cycles does not count a drain (its output writes overlap the fill).
- ``weight_load``: WS only, ``k - R`` a GEMM command: satmem preloads the ``k`` weight rows a
  tile uses, SCALE-Sim always counts ``R`` (negative when ``k < R``, e.g. GEMMs with ``K = 1``).
- ``tile_overhead``: 3 cycles a GEMM command (the start cycle and the array's edge registers:
  operand read and output write), which SCALE-Sim's fold does not have.
- ``first_load``: cycles before the first GEMM starts (the first operands' DMA from DRAM);
  SCALE-Sim reports this prefetch apart (``Total Cycles (incl. prefetch)``).
- ``dram_stall``: cycles the array waits between its GEMMs for operands (DMA and DRAM) or for an
  accumulator half.
- ``store_tail``: cycles after the last GEMM (the last outputs written back to DRAM).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dataflow.scalesim import Layer, read_topology, scalesim_cycles

if TYPE_CHECKING:
    import pandas as pd

    from hwsim.config import AcceleratorConfig
    from hwsim.engine import Stats
    from hwsim.program import Program

__all__ = ["TERMS", "LayerRun", "format_table", "run_layer", "run_layers", "simulate_topology",
           "topology_rows"]

TERMS = ("tile_edges", "output_drain", "weight_load", "tile_overhead", "first_load",
         "dram_stall", "store_tail")
"""The terms from SCALE-Sim's cycles to satmem's (module docstring), in order."""


@dataclass
class LayerRun:
    """One topology layer run by hwsim.

    Attributes
    ----------
    layer : Layer
    dataflow : str
    shape : tuple of int
        ``(M, N, K)`` of the lowered GEMM.
    sparsity : tuple of int or None
        The N:M pattern run (the layer's).
    program : Program
    stats : Stats
    scalesim_cycles : int
        SCALE-Sim's compute model for the same layer and array.
    terms : dict
        :data:`TERMS` -> cycles.
    sim_s : float
        Wall time of compile + run (0 for a shape already run in the same call).
    """

    layer: Layer
    dataflow: str
    shape: tuple[int, int, int]
    sparsity: tuple[int, int] | None
    program: Program
    stats: Stats
    scalesim_cycles: int
    terms: dict[str, int] = field(default_factory=dict)
    sim_s: float = 0.0


def explain(program: Program, stats: Stats, config: AcceleratorConfig,
            scalesim: int) -> dict[str, int]:
    """The :data:`TERMS` between SCALE-Sim's ``scalesim`` cycles and ``stats.cycles`` (module
    docstring), from the program's GEMM tiles and their start and end cycles."""
    from hwsim import isa
    from hwsim.program import COL

    R, C = config.array.rows, config.array.cols
    table = program.table
    gemm = table[:, COL["opcode"]] == isa.Opcode.GEMM
    k = table[gemm, COL["k"]].astype(np.int64)
    m = table[gemm, COL["m"]].astype(np.int64)
    os_ = table[gemm, COL["dataflow"]] == isa.Dataflow.OS
    sched = stats.schedule
    busy = int(sched.duration[gemm].sum())
    first, last = int(sched.start[gemm].min()), int(sched.end[gemm].max())
    as_folds = int(np.where(os_, k + R + C - 2, m + 2 * R + C - 2).sum())
    drain = int(R * os_.sum())
    wload = int(np.where(os_, 0, k - R).sum())
    return {
        "tile_edges": as_folds - scalesim,
        "output_drain": drain,
        "weight_load": wload,
        "tile_overhead": busy - as_folds - drain - wload,
        "first_load": first,
        "dram_stall": last + 1 - first - busy,
        "store_tail": stats.cycles - last - 1,
    }


def run_layer(layer: Layer, config: AcceleratorConfig, dataflow: str) -> LayerRun:
    """Compile and run one layer in timing mode, with SCALE-Sim's cycles and the terms.

    Raises
    ------
    ValueError, ConfigError
        A dataflow or sparsity pattern the config does not support.
    """
    from dataflow.lower.gemm import compile_gemm, compressed_rows
    from hwsim.engine import run

    m, n, k = layer.gemm_shape()
    nm = layer.sparsity
    if nm is not None and not config.supports_pattern(nm):
        from hwsim.config import ConfigError

        raise ConfigError("sparsity", f"{nm[0]}:{nm[1]}", f"a pattern of config "
                          f"{config.name!r}: {config.array.patterns}")
    t0 = time.perf_counter()
    prog = compile_gemm(m, n, k, config, dataflow=dataflow, sparsity=nm)
    stats = run(prog, config, "timing", macs=m * n * compressed_rows(k, nm)).stats
    sc = scalesim_cycles(m, n, k, config.array.rows, config.array.cols, dataflow, nm)
    return LayerRun(layer, dataflow, (m, n, k), nm, prog, stats, sc,
                    explain(prog, stats, config, sc), time.perf_counter() - t0)


def run_layers(layers: list[Layer], config: AcceleratorConfig, dataflow: str) -> list[LayerRun]:
    """:func:`run_layer` for each layer; a GEMM shape and pattern met before is not run again
    (SCALE-Sim's depthwise layers repeat one shape per channel).

    Raises
    ------
    ValueError
        A layer the machine cannot run; the message names the layer and its line first.
    """
    seen: dict[tuple, LayerRun] = {}
    out = []
    for layer in layers:
        key = (layer.gemm_shape(), layer.sparsity)
        if key in seen:
            r = seen[key]
            out.append(LayerRun(layer, r.dataflow, r.shape, r.sparsity, r.program, r.stats,
                                r.scalesim_cycles, r.terms, 0.0))
        else:
            try:
                r = run_layer(layer, config, dataflow)
            except ValueError as e:  # which layer, then why (the machine's own message)
                raise ValueError(f"layer {layer.name!r} (line {layer.line}): {e}") from None
            out.append(seen.setdefault(key, r))
    return out


def table_rows(runs: list[LayerRun]) -> list[dict]:
    """One dict a layer: shape, satmem's cycles and traffic, SCALE-Sim's cycles, the terms."""
    rows = []
    for r in runs:
        s = r.stats
        m, n, k = r.shape
        rows.append({
            "layer": r.layer.name, "M": m, "N": n, "K": k,
            "sparsity": "dense" if r.sparsity is None else f"{r.sparsity[0]}:{r.sparsity[1]}",
            "cycles": s.cycles, "scalesim_cycles": r.scalesim_cycles,
            "vs_scalesim_pct": round(100.0 * (s.cycles / r.scalesim_cycles - 1.0), 1),
            **r.terms,
            "utilisation": round(s.utilisation, 4),
            "dram_read_B": s.bytes["dram_read"], "dram_write_B": s.bytes["dram_write"],
            "energy_uJ": round(s.energy_total_pj / 1e6, 3),
            "sim_s": round(r.sim_s, 3),
        })
    return rows


def topology_rows(path: str | Path, config: AcceleratorConfig, *,
                  dataflow: str = "ws") -> list[dict]:
    """:func:`simulate_topology`'s rows as dicts of Python values, without pandas (what
    ``satmem simulate --topology`` prints: importing pandas costs more than a small topology's
    simulation)."""
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
            for row in table_rows(run_layers(read_topology(path), config, dataflow))]


def _float_cells(values: list) -> list[str] | None:
    """pandas' fixed-width float column (6 digits, trailing zeros trimmed alike, at least one
    decimal); None where pandas would switch to scientific notation or print NaN."""
    if any(v != v for v in values):
        return None
    cells = [f"{v:.6f}" for v in values]
    big = any(abs(v) > 1e6 for v in values)
    if any(0 < abs(v) < 1e-6 for v in values) or (big and max(map(len, cells)) > 12):
        return None
    while all(c.endswith("0") for c in cells):
        cells = [c[:-1] for c in cells]
    return [c + "0" if c.endswith(".") else c for c in cells]


def format_table(rows: list[dict]) -> str:
    """Rows as ``pandas.DataFrame(rows).to_string(index=False)`` prints them (right-aligned
    columns, floats to 6 digits with trailing zeros trimmed alike), without importing pandas
    unless a float column needs its scientific notation."""
    if not rows:
        return "Empty DataFrame\nColumns: []\nIndex: []"
    columns: list[list[str]] = []
    for name in rows[0]:
        values = [r[name] for r in rows]
        if all(isinstance(v, float) for v in values):
            cells = _float_cells(values)
            if cells is None:
                import pandas as pd

                return pd.DataFrame(rows).to_string(index=False)
            head = " " + name  # pandas' header of a numeric column
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            cells, head = [str(v) for v in values], " " + name
        elif all(isinstance(v, str) for v in values):
            cells, head = values, name
        else:
            import pandas as pd

            return pd.DataFrame(rows).to_string(index=False)
        width = max(len(head), *map(len, cells))
        columns.append([head.rjust(width), *(c.rjust(width) for c in cells)])
    return "\n".join(" ".join(line) for line in zip(*columns, strict=True))


def simulate_topology(path: str | Path, config: AcceleratorConfig, *,
                      dataflow: str = "ws") -> pd.DataFrame:
    """Simulate every layer of a SCALE-Sim topology CSV (forward GEMMs, SCALE-Sim's im2col
    convention) in timing mode; one row per layer (:func:`table_rows`: satmem's cycles,
    SCALE-Sim's and the terms between them).

    Raises
    ------
    TopologyError
        Malformed file (names the file, line and column).
    ConfigError
        A layer's sparsity pattern that the config does not support.
    """
    import pandas as pd

    return pd.DataFrame(topology_rows(path, config, dataflow=dataflow))
