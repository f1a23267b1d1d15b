"""``satmem scalesim``: SCALE-Sim's command line and report files, satmem's machine underneath.

``satmem scalesim -c CFG -t TOPOLOGY [-p LOGPATH] [-i gemm|conv]`` takes SCALE-Sim's flags
(v3 ``scalesim/scale.py``), reads its ``.cfg`` and topology files unchanged
(:mod:`dataflow.scalesim`), runs every layer on hwsim (:mod:`reports.topology`) and writes
SCALE-Sim's reports under ``LOGPATH/<run_name>/`` with SCALE-Sim v3's file names, column names
and layout (``simulator.generate_reports``): ``COMPUTE_REPORT.csv``, ``BANDWIDTH_REPORT.csv``,
``DETAILED_ACCESS_REPORT.csv`` and, with ``SparsitySupport``, ``SPARSE_REPORT.csv``. The values
are satmem's, in SCALE-Sim's units (words: one operand or one output element) and with cycle 0
the array's first cycle, so that DRAM prefetch cycles are negative as in SCALE-Sim:

- ``Total Cycles (incl. prefetch)``: the whole run (first DMA to last store);
- ``Total Cycles``: first GEMM tile's start to last tile's end; ``Stall Cycles``: the array's
  idle cycles within it (:data:`reports.topology.TERMS` ``dram_stall``);
- ``Overall Util %``: dense MACs ``M N K`` / (``Total Cycles`` x PEs), SCALE-Sim's definition;
  ``Mapping Efficiency %``: the mean share of PEs a tile maps (SCALE-Sim's, per fold);
  ``Compute Util %``: MACs performed / (PEs x cycles the array is busy);
- SRAM reads and writes: operand and output elements the array reads from ACT and WGT (and IDX:
  the metadata) and writes to ACC; their start and stop cycles are the first tile's start and
  the last tile's end (OFMAP: from the first tile's end);
- DRAM: elements the LOADs bring into ACT and WGT and the STOREs write out, between their first
  start and last end; bandwidths are those over that span, words per cycle.

SCALE-Sim's cycles for the same layers (its compute model) and the terms between them are in
the printed table and ``--json``, not in these files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dataflow.scalesim import (
    ScaleSimRun,
    TopologyError,
    read_scalesim_run,
    read_topology,
    split_depthwise,
)

from .topology import TERMS, LayerRun, run_layers, table_rows

if TYPE_CHECKING:
    from hwsim.config import AcceleratorConfig

__all__ = ["COMPUTE_HEADER", "DETAIL_HEADER", "ScaleSimResult", "layer_report", "run_scalesim"]

COMPUTE_HEADER = ("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, "
                  "Overall Util %, Mapping Efficiency %, Compute Util %,\n")
BANDWIDTH_HEADER = ("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
                    "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,\n")
BANDWIDTH_SPARSE_HEADER = ("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, "
                           "Avg FILTER Metadata SRAM BW, Avg OFMAP SRAM BW, Avg IFMAP DRAM BW, "
                           "Avg FILTER DRAM BW, Avg OFMAP DRAM BW,\n")
DETAIL_HEADER = (
    "LayerID, SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, "
    "SRAM Filter Start Cycle, SRAM Filter Stop Cycle, SRAM Filter Reads, "
    "SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, SRAM OFMAP Writes, "
    "DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
    "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, "
    "DRAM OFMAP Start Cycle, DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,\n")
SPARSE_HEADER = ("LayerID, Sparsity Representation, Original Filter Storage, "
                 "New Storage (Filter+Metadata), Filter Metadata Storage, "
                 "Avg FILTER Metadata SRAM BW, \n")
"""SCALE-Sim v3's report headers, byte for byte (``scalesim/simulator.py``)."""


@dataclass
class ScaleSimResult:
    """What :func:`run_scalesim` did: the cfg read, the machine run (the cfg's, with the
    topology's N:M patterns when it has ``SparsitySupport``), the layers, the files written."""

    run: ScaleSimRun
    config: AcceleratorConfig
    topology: Path
    runs: list[LayerRun]
    outdir: Path
    files: list[Path]


def _transfers(r: LayerRun, buf: int, store: bool = False):
    """``(words, first start, last end)`` of the layer's LOADs into ``buf`` (or STOREs)."""
    from hwsim import isa
    from hwsim.program import COL

    t = r.program.table
    op = isa.Opcode.STORE if store else isa.Opcode.LOAD
    sel = t[:, COL["opcode"]] == op
    if not store:
        sel &= t[:, COL["buf"]] == buf
    if not sel.any():
        return 0, 0, 0
    sched = r.stats.schedule
    return (int((t[sel, COL["rows"]] * t[sel, COL["elems"]]).sum()), int(sched.start[sel].min()),
            int(sched.end[sel].max()))


def layer_report(r: LayerRun, config: AcceleratorConfig) -> dict[str, list]:
    """The values of one layer's rows in SCALE-Sim's report files (module docstring), keyed by
    file: ``compute``, ``bandwidth`` (with the metadata column), ``detail`` and ``sparse``."""
    from hwsim import isa
    from hwsim.program import COL

    R, C = config.array.rows, config.array.cols
    m_, n_, k_ = r.shape
    t = r.program.table
    gemm = t[:, COL["opcode"]] == isa.Opcode.GEMM
    k, m = t[gemm, COL["k"]], t[gemm, COL["m"]]
    os_ = t[gemm, COL["dataflow"]] == isa.Dataflow.OS
    sparse = t[gemm, COL["sparse"]] != 0
    gm, gn = 1 << t[gemm, COL["log2m"]], np.maximum(t[gemm, COL["n"]], 1)
    act_entries = np.where(os_, np.where(sparse, k // gn * gm, k),
                           np.where(sparse, m * (gm // gn), m))
    sched = r.stats.schedule
    c0 = int(sched.start[gemm].min())
    last = int(sched.end[gemm].max())
    busy = int(sched.duration[gemm].sum())
    total = last + 1 - c0
    kc = k_ if r.sparsity is None else -(-k_ // r.sparsity[1]) * r.sparsity[0]
    if r.dataflow == "os":
        mapping = m_ * n_ / (-(-m_ // R) * -(-n_ // C) * R * C)
    else:
        mapping = kc * n_ / (-(-kc // R) * -(-n_ // C) * R * C)
    sram = {"ifmap": int((act_entries * R).sum()), "filter": int((k * C).sum()),
            "meta": int((np.where(sparse, k, 0) * C).sum()),
            "ofmap": int(np.where(os_, R * C, m * C).sum())}
    dram = {"ifmap": _transfers(r, isa.Buffer.ACT), "filter": _transfers(r, isa.Buffer.WGT),
            "ofmap": _transfers(r, 0, store=True)}
    first_out = int(sched.end[gemm].min())

    def bw(words, start, end):
        return words / (end - start + 1)

    compute = [r.stats.cycles, total, r.terms["dram_stall"],
               100.0 * m_ * n_ * k_ / (total * R * C), 100.0 * mapping,
               100.0 * m_ * n_ * kc / (busy * R * C)]
    bandwidth = [sram["ifmap"] / total, sram["filter"] / total, sram["meta"] / total,
                 sram["ofmap"] / total, *(bw(*dram[x]) for x in ("ifmap", "filter", "ofmap"))]
    detail = [0, last - c0, sram["ifmap"], 0, last - c0, sram["filter"],
              first_out - c0, last - c0, sram["ofmap"]]
    for x in ("ifmap", "filter", "ofmap"):
        words, start, end = dram[x]
        detail += [start - c0, end - c0, words]
    meta_words = 0 if r.sparsity is None else kc * n_ / config.array.elem_bytes
    sparse_items = [k_ * n_, kc * n_ + meta_words, meta_words, sram["meta"] / total]
    return {"compute": compute, "bandwidth": bandwidth, "detail": detail, "sparse": sparse_items}


def _write(path: Path, header: str, rows: list[list], prefix=lambda i: f"{i}, ") -> Path:
    # SCALE-Sim's layout: "<id>, v1, v2, ...,\n" under a header ending in ",\n"
    path.write_text(header + "".join(prefix(i) + ", ".join(str(v) for v in row) + ",\n"
                                     for i, row in enumerate(rows)))
    return path


def _check_encodable(path: Path, layers) -> None:
    """Refuse N:M patterns the GEMM command cannot carry (its ``n`` and ``log2m`` fields)."""
    from hwsim import isa

    widths = dict(isa.command_class(isa.Opcode.GEMM).FIELDS)
    n_max, m_max = (1 << widths["n"]) - 1, 1 << ((1 << widths["log2m"]) - 1)
    for ly in layers:
        if ly.sparsity and (ly.sparsity[0] > n_max or ly.sparsity[1] > m_max):
            raise TopologyError(path, ly.line, "Sparsity", f"layer {ly.name!r}: "
                                f"{ly.sparsity[0]}:{ly.sparsity[1]} is beyond the machine's "
                                f"N:M (N <= {n_max}, M <= {m_max})")


def run_scalesim(cfg_path: str | Path, topology: str | Path | None = None,
                 logpath: str | Path = "results", input_type: str | None = None,
                 base=None) -> ScaleSimResult:
    """Run a SCALE-Sim ``.cfg`` and topology on satmem and write SCALE-Sim's reports.

    Parameters
    ----------
    cfg_path : str or Path
        SCALE-Sim ``.cfg`` (:func:`dataflow.scalesim.read_scalesim_run`).
    topology : str or Path, optional
        Topology CSV; default the cfg's ``[network_presets] TopologyCsvLoc``.
    logpath : str or Path
        Reports go to ``logpath/<run_name>/`` (created).
    input_type : {"conv", "gemm"}, optional
        SCALE-Sim's ``-i``: the format the file must have (default: the one its header names).
    base : AcceleratorConfig, optional
        The machine's fields the cfg does not set (default ``tiny``: int8, SCALE-Sim's
        one-byte words).

    Raises
    ------
    TopologyError
        A bad cfg or topology, a format other than ``input_type``, or an N:M layer without
        ``SparsitySupport`` (with it, the machine runs the topology's patterns); nothing is
        written.
    ConfigError, ValueError, OSError
        The machine rejects the cfg's values; the folder cannot be written.
    """
    run = read_scalesim_run(cfg_path, base)
    if topology is None:
        if run.topology is None:
            raise TopologyError(cfg_path, 0, "[network_presets] TopologyCsvLoc",
                                "no topology: give -t FILE or set this key")
        topology = run.topology
    topology = Path(topology)
    layers = read_topology(topology)
    kind = layers[0].kind
    if input_type is not None and input_type != kind:
        raise TopologyError(topology, 1, "", f"-i {input_type} but the header is SCALE-Sim's "
                            f"{kind} format (-i {kind}, or leave -i out)")
    if not run.sparsity_support:
        for ly in layers:
            if ly.sparsity is not None:
                raise TopologyError(topology, ly.line, "Sparsity", f"layer {ly.name!r} is "
                                    f"{ly.sparsity[0]}:{ly.sparsity[1]} but {cfg_path} does not "
                                    "set [sparsity] SparsitySupport = true")
    config = run.config
    if run.sparsity_support:
        # SparsitySupport: the machine runs the N:M patterns the topology names, per layer
        _check_encodable(topology, layers)
        wanted = {f"{ly.sparsity[0]}:{ly.sparsity[1]}" for ly in layers if ly.sparsity}
        extra = tuple(sorted(wanted - set(config.array.patterns)))
        if extra:
            config = config.replace(array__patterns=config.array.patterns + extra)
    runs = run_layers(split_depthwise(layers), config, run.dataflow)
    if not run.run_name or Path(run.run_name).name != run.run_name or run.run_name == "..":
        raise TopologyError(cfg_path, 0, "[general] run_name", f"{run.run_name!r} is not a "
                            "folder name (the reports go to LOGPATH/<run_name>/)")
    outdir = Path(logpath) / run.run_name
    outdir.mkdir(parents=True, exist_ok=True)
    reports = [layer_report(r, config) for r in runs]
    sp = run.sparsity_support
    files = [
        _write(outdir / "COMPUTE_REPORT.csv", COMPUTE_HEADER, [x["compute"] for x in reports]),
        _write(outdir / "BANDWIDTH_REPORT.csv", BANDWIDTH_SPARSE_HEADER if sp else
               BANDWIDTH_HEADER, [x["bandwidth"] if sp else x["bandwidth"][:2] +
                                  x["bandwidth"][3:] for x in reports]),
        _write(outdir / "DETAILED_ACCESS_REPORT.csv", DETAIL_HEADER,
               [x["detail"] for x in reports]),
    ]
    if sp:
        files.append(_write(outdir / "SPARSE_REPORT.csv", SPARSE_HEADER,
                            [x["sparse"] for x in reports],
                            prefix=lambda i: f"{i}, {run.sparse_rep}, "))
    return ScaleSimResult(run, config, topology, runs, outdir, files)


_SHOWN = ("layer", "M", "N", "K", "sparsity", "cycles", "scalesim_cycles", "vs_scalesim_pct",
          *TERMS, "utilisation")


def format_result(res: ScaleSimResult, *, as_json: bool = False, traces: bool = False) -> str:
    """The command's output: a per-layer table (or JSON) of satmem's cycles, SCALE-Sim's model
    and the terms between them, the files written and what was not modelled."""
    rows = table_rows(res.runs)
    cfg = res.config
    notes = []
    if res.run.not_modelled:
        notes.append("not modelled (SCALE-Sim's memory-stall parameters; hwsim's DMA and DRAM "
                     "set the stalls): " + ", ".join(res.run.not_modelled))
    if traces:
        notes.append("no SCALE-Sim traces written (layer*/..._TRACE.csv); per-command traces: "
                     "satmem simulate-gemm --trace")
    if as_json:
        return json.dumps({
            "run_name": res.run.run_name, "dataflow": res.run.dataflow,
            "array": [cfg.array.rows, cfg.array.cols], "topology": str(res.topology),
            "outdir": str(res.outdir), "files": [p.name for p in res.files],
            "not_modelled": list(res.run.not_modelled), "layers": rows}, indent=2)
    total = sum(r["cycles"] for r in rows)
    model = sum(r["scalesim_cycles"] for r in rows)
    head = (f"{res.topology} on {res.run.run_name} ({cfg.array.rows}x{cfg.array.cols} "
            f"{res.run.dataflow}, {len(rows)} layers): satmem {total:,} cycles, SCALE-Sim's "
            f"model {model:,} ({100.0 * (total / model - 1):+.1f}%)")
    cells = [list(_SHOWN)] + [[str(r[c]) for c in _SHOWN] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_SHOWN))]
    lines = [head] + ["  ".join(v.rjust(w) if i else v.ljust(w)
                                for i, (v, w) in enumerate(zip(row, widths, strict=True)))
                      for row in cells]
    lines.append(f"wrote {res.outdir}: " + ", ".join(p.name for p in res.files))
    return "\n".join(lines + [f"note: {n}" for n in notes])
