"""The synthesis sweep of a config: run every design, fit, estimate, write the report.

:func:`synth_report` builds the designs (:mod:`rtl.synth.designs`), runs Yosys on them in
parallel (:mod:`rtl.synth.run`), and :func:`_report` turns the results into the verdict
(:mod:`rtl.synth.fit`), the Markdown (:mod:`rtl.synth.render`) and the same data as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amaranth.back import rtlil, verilog

from hwsim.config import AcceleratorConfig, load_config

from .buffers import _BRAM_SHAPE, _BUFFERS, _URAM_SHAPE, _buffer_blocks
from .designs import (
    _LOOKUP,
    FULL_TOP_PES,
    _array_dtype,
    _check_lanes,
    _check_vector_lanes,
    _default_vector_lanes,
    _engine_designs,
    _sweep_designs,
)
from .fit import FIT_LIMIT, _components, _fit_dict, _total, _verdict, _verdict_rows
from .lookup import _check_lookup_lanes, _lookup_designs
from .render import _render
from .resources import DEVICES, RESOURCES, SynthResult, _check_part
from .run import _synthesize_text
from .shell import _shell_designs

__all__ = ["synth_report"]


def synth_report(config_name: str | AcceleratorConfig, out_dir: str | Path, *,
                 part: str = "xcvu9p", sizes: tuple[int, ...] = (1, 2, 4),
                 jobs: int | None = None, timeout_s: float | None = None,
                 accelerator: bool = True, sore_lanes: tuple[int, ...] | None = None,
                 vector_lanes: tuple[int, ...] | None = None,
                 lookup_lanes: tuple[int, ...] = (),
                 gather_lanes: tuple[int, ...] | None = None, reuse: bool = False,
                 buffer_check: dict | None = None, previous: dict | None = None,
                 shell: bool | None = None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Synthesize the PE, square arrays, SORE, vector-engine and lookup-engine lanes, the
    accelerator top and the shell; write ``synth_report.md``.

    The report holds the measured resources of each design, a per-resource linear fit
    ``a + b * PEs`` through the arrays and ``a + b * lanes`` through each engine's lane points,
    the config's array, SORE (``sore.lanes``), vector engine (``vector.lanes``) and lookup
    engine (its hash engine at ``lookup.hash_lanes``, its gather, scatter and row-update
    engines at ``lookup.gather_lanes``), each measured if its size was swept, otherwise
    extrapolated from its fit, the systolic array and the lookup engine side by side against
    each of the part's resources, and a verdict: their sum plus the buffers within
    :data:`~rtl.synth.fit.FIT_LIMIT` of the part's DSP48E2, LUT and BRAM/URAM, with the shell
    (:mod:`rtl.synth.shell`: control slave, command fetcher, DRAM channels, controller, DMA,
    buffer port multiplexers) measured and counted in it. Every number
    says whether it is measured, extrapolated or analytical
    (buffer block counts from capacity). ``synth_report.json`` holds the same data.

    Parameters
    ----------
    config_name : str or AcceleratorConfig
        A preset name, a YAML path or a config (:func:`hwsim.config.load_config`).
    out_dir : str or Path
        One subdirectory per design (Verilog, script, log), the report at the top.
    part : str
        A key of :data:`~rtl.synth.resources.DEVICES`.
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
    vector_lanes : tuple of int, optional
        Lane counts of ``VectorUnit`` (``config`` with ``vector.lanes=n``) to synthesize: empty
        or at least two distinct ones, each at most 64 and at most ``dram.bus_bytes / 4`` (a
        VEC entry fits one DMA beat). Default: those of 1, 2, 4, 8 the config builds (``tiny``:
        1, 2, 4). A lane is about 3,300 LUTs, so the 64 lanes of ``vcu1525`` are extrapolated
        rather than synthesized.
    lookup_lanes : tuple of int
        Lane counts of the lookup engine's hash, gather, scatter and row-update engines (each
        synthesized apart, :func:`rtl.synth.lookup._lookup_designs`): empty (the default: the
        lookup engine is then left out of the verdict) or at least two distinct divisors of
        ``vector.lanes``. A hash lane synthesizes in minutes, so 1, 2 (and 4) are the
        practical sweep; the gather engine, and with it the scatter and row-update engines,
        leaves out counts whose accumulator Yosys cannot map (1 at 1 KiB rows).
    gather_lanes : tuple of int, optional
        The gather, scatter and row-update engines' lane counts instead of those of
        ``lookup_lanes`` (at least two distinct divisors of ``vector.lanes``).
    reuse : bool
        Take a design's ``result.json`` from an earlier run in ``out_dir`` instead of running
        Yosys again when it was made from the same Verilog (SHA-256), part and flow options;
        the report says how many were reused.
    buffer_check : dict, optional
        What :func:`~rtl.synth.buffers.buffer_mapping_check` measured for this config: the
        report then states the synthesized mapping of the buffers and counts them, scaled to
        full depth, in the verdict instead of the analytical tile counts.
    shell : bool, optional
        Synthesize the shell designs of :func:`rtl.synth.shell._shell_designs` (each a part of
        ``SatmemKernel(config, lookup=False)``) and count them, measured, in the verdict. For
        ``vcu1525`` nine designs, about 5 minutes of Yosys in all (the channel splitter 2.6
        minutes, a channel's AXI4 master 1.5, the others seconds). Default: for a config
        whose own accelerator top the sweep does not synthesize (more than
        :data:`~rtl.synth.designs.FULL_TOP_PES` PEs).
    previous : dict, optional
        The data of an earlier ``synth_report.json`` of this config (by name; its key may be
        older) and part: a design of this sweep that it measured is not synthesized again but
        taken from it, and the report names those designs and says of each whether today's
        Verilog is still the one measured (SHA-256). For a report whose older designs take
        longer to synthesize than there is time for, after only new designs were added.
    progress : callable, optional
        Called with one line as each design's Yosys run starts and as it finishes (with its
        elapsed seconds and how many of the designs are done).

    Returns
    -------
    Path
        The Markdown report.

    Raises
    ------
    ValueError
        Fewer than two sizes, a lane tuple neither empty nor two distinct counts, a lookup
        lane count that does not divide ``vector.lanes``, an unknown part, or a
        ``buffer_check`` or ``previous`` of another config or part.
    SynthError
        A design failed to synthesize.
    """
    config = load_config(config_name)
    if sore_lanes is None:
        sore_lanes = (1, 2, 4, config.sore.lanes)
    if vector_lanes is None:
        vector_lanes = _default_vector_lanes(config)
    if len(set(sizes)) < 2 or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must hold at least two positive integers, not {sizes!r}")
    _check_lanes("sore_lanes", tuple(sore_lanes))
    _check_vector_lanes(config, tuple(vector_lanes))
    _check_lookup_lanes(config, tuple(lookup_lanes),
                        gather_lanes=None if gather_lanes is None else tuple(gather_lanes))
    _check_part(part)
    if buffer_check is not None and (buffer_check.get("config_key") != config.key()
                                     or buffer_check.get("part") != part):
        raise ValueError(f"buffer_check is of config {buffer_check.get('config')!r} "
                         f"(key {buffer_check.get('config_key')}) on "
                         f"{buffer_check.get('part')!r}, not {config.name!r} (key "
                         f"{config.key()}) on {part!r}")
    if previous is not None and (previous.get("config") != config.name
                                 or previous.get("part") != part):
        raise ValueError(f"previous is of config {previous.get('config')!r} (key "
                         f"{previous.get('config_key')}) on {previous.get('part')!r}, not "
                         f"{config.name!r} (key {config.key()}) on {part!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    designs, acc_note = _sweep_designs(config, tuple(sorted(set(sizes))), accelerator)
    engines, engine_note = _engine_designs(config, tuple(sorted(set(sore_lanes))),
                                           tuple(sorted(set(vector_lanes))))
    lookup, lookup_note = _lookup_designs(
        config, tuple(sorted(set(lookup_lanes))),
        gather_lanes=None if gather_lanes is None else tuple(gather_lanes))
    if shell is None:
        shell = config.array.rows * config.array.cols > FULL_TOP_PES
    shells, shell_note = _shell_designs(config) if shell else ([], "")
    designs += engines + lookup + shells
    if shells and any(d.name.startswith("accelerator_") for d in designs):
        acc_note = (acc_note + " The verdict does not count the accelerator top: it counts "
                    f"the shell designs (`rtl/synth/shell.py`), the non-array logic of "
                    f"`{config.name}`'s own kernel, measured.").strip()
    notes = [n for n in (acc_note, engine_note, lookup_note, shell_note) if n]
    noshare = [d.name for d in designs if not d.share]
    if noshare:
        notes.append(
            f"{', '.join(noshare)} ran without Yosys' `share` pass (SAT-based resource "
            "sharing; `rtl.synth.run.NOSHARE`): on the row-update lanes' fp32 divisions and "
            "square roots it ran over an hour without finishing. Their LUTs are what Yosys "
            "maps before sharing, an upper bound of what `share` (or Vivado's resource "
            "sharing) would leave.")
    t0 = time.perf_counter()
    if progress:
        progress(f"exporting the Verilog of {len(designs)} designs: "
                 f"{', '.join(d.name for d in designs)}")
    # Export in this thread (Amaranth's Verilog backend is not known to be thread-safe); the
    # Yosys runs are subprocesses and run in parallel.
    texts = [(rtlil if d.rtlil else verilog).convert(d.build(), name=d.name, emit_src=False)
             for d in designs]
    earlier = {e["name"]: e for e in (previous or {}).get("designs", [])}
    todo = sum(d.name not in earlier for d in designs)
    def say(line: str) -> None:
        if progress:
            progress(line)

    say(f"{len(designs)} designs exported in {time.perf_counter() - t0:.0f} s; "
        f"{todo} to synthesize ({jobs or min(todo, os.cpu_count() or 1) or 1} at a time)")
    finished = []
    lock = threading.Lock()

    def run_one(design, text, **kw):
        say(f"started  {design.name}")
        start = time.perf_counter()
        try:
            result = _synthesize_text(text, **kw)
        except Exception:
            say(f"failed   {design.name} after {time.perf_counter() - start:.0f} s")
            raise
        with lock:
            finished.append(design.name)
            n = len(finished)
        cached = " (cached result)" if result[1] else ""
        say(f"finished {design.name} in {time.perf_counter() - start:.0f} s{cached} "
            f"[{n}/{todo}, {time.perf_counter() - t0:.0f} s in all]")
        return result

    with ThreadPoolExecutor(max_workers=jobs or min(len(designs), os.cpu_count() or 1)) as ex:
        futures = {d.name: ex.submit(run_one, d, text, top=d.name, out_dir=out / d.name,
                                     part=part, timeout_s=timeout_s, reuse=reuse,
                                     rtlil=d.rtlil, share=d.share)
                   for d, text in zip(designs, texts, strict=True) if d.name not in earlier}
        runs = [futures[d.name].result() if d.name in futures
                else (SynthResult.from_dict(earlier[d.name]), True) for d in designs]
    results = [r for r, _ in runs]
    wall = time.perf_counter() - t0
    reused = sum(hit for _, hit in runs)
    taken = [(d.name, hashlib.sha256(t.encode()).hexdigest() == earlier[d.name].get(
        "verilog_sha256")) for d, t in zip(designs, texts, strict=True) if d.name in earlier]
    if taken:
        changed = [n for n, same in taken if not same]
        notes.append(
            f"{len(taken)} designs were not synthesized for this report but taken from an "
            f"earlier report of this config (its Yosys seconds and wall time are that run's): "
            f"{', '.join(n for n, _ in taken)}. "
            + (f"The RTL changed since for {', '.join(changed)}: today's Verilog is not the "
               "one measured, so their rows are of the earlier RTL. " if changed else
               "Today's Verilog of each is the one measured (SHA-256). ")
            + "Synthesized for this report: " + (", ".join(
                d.name for d in designs if d.name not in earlier) or "none") + "."
            + (f" The earlier report was of config key `{previous.get('config_key')}`; the "
               "Verilog comparison above is what says whether a design is still the one "
               "measured." if previous.get("config_key") != config.key() else ""))
        reused -= len(taken)
    if reused:
        notes.append(f"{reused} of {len(designs)} designs were not synthesized again: their "
                     "`result.json` from an earlier run was made from the same Verilog "
                     "(SHA-256), part and flow; their Yosys seconds are those of that run.")
    text, data = _report(config, part, designs, results, notes, wall, buffer_check, reused)
    (out / "synth_report.json").write_text(json.dumps(data, indent=2))
    path = out / "synth_report.md"
    path.write_text(text)
    return path


def _report(config, part, designs, results, notes, wall, check=None, reused=0
            ) -> tuple[str, dict]:
    """The report's Markdown and its JSON data from the designs' results."""
    totals = DEVICES[part].totals()
    comps = _components(config, designs, results)
    array = comps[0]
    rows = _verdict_rows(config, comps, totals, check)
    fits_ok, mem = _verdict(rows)
    dtype = _array_dtype(config.array.dtype)
    text = _render(config, part, designs, results, comps, rows, fits_ok, mem, dtype, notes,
                   wall, check, reused)
    data = {
        "config": config.name, "config_key": config.key(), "part": part, "wall_s": wall,
        "reused": reused,
        "designs": [{"name": d.name, "what": d.what, "pes": d.pes, "engine": d.engine,
                     "lanes": d.lanes, "shell": d.shell, "count": d.count,
                     "netlist": "rtlil" if d.rtlil else "verilog",
                     **r.to_dict()}
                    for d, r in zip(designs, results, strict=True)],
        "fit": _fit_dict(array.fits),
        "array_estimate": {"pes": array.target, "source": array.source, **array.values},
        "engine_estimates": {c.key: c.to_dict() for c in comps[1:] if not c.shell},
        "shell_estimates": {c.key: c.to_dict() for c in comps if c.shell},
        "buffers_analytical": {"URAM": _buffer_blocks(config, _URAM_SHAPE),
                               "BRAM36": _buffer_blocks(config, _BRAM_SHAPE),
                               "buffers": list(_BUFFERS)},
        "buffer_check": check,
        "verdict": [{"resource": n, "estimate": v, "source": s, "of_part": t,
                     "utilisation": v / t} for n, v, s, t in rows],
        "fits": fits_ok, "limit": FIT_LIMIT,
        "array_and_lookup": _array_and_lookup(comps, totals),
    }
    return text, data


def _array_and_lookup(comps, totals: dict[str, int]) -> dict | None:
    """The systolic array plus the lookup engine per resource, their utilisation and whether it
    is under :data:`FIT_LIMIT`; None without the lookup engine."""
    lookup = [c for c in comps if c.key in _LOOKUP]
    if not lookup:
        return None
    both = _total([comps[0], *lookup])
    return {"lookup": _total(lookup), "both": both,
            "utilisation": {k: both[k] / totals[k] for k in RESOURCES},
            "fits": all(both[k] / totals[k] < FIT_LIMIT for k in RESOURCES)}
