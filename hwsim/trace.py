"""Compact execution traces: one row per command, not one per cycle.

A per-cycle trace of a ResNet-50 training step would run to gigabytes (SCALE-Sim's does); the
per-command rows here hold everything needed to redraw a unit timeline: when the controller
accepted each command, when its unit started and finished it. The same timeline also exports to
the Chrome trace-event JSON that Perfetto (``ui.perfetto.dev``) and ``chrome://tracing`` open,
one track per unit (:func:`write_chrome_trace`, :func:`csv_to_chrome_trace`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from . import isa
from .engine import Stats
from .program import Program

__all__ = ["TRACE_COLUMNS", "chrome_trace", "csv_to_chrome_trace", "program_trace", "read_trace",
           "write_chrome_trace", "write_trace"]

TRACE_COLUMNS = ("index", "opcode", "unit", "accept", "start", "end", "wait", "signal")


def write_trace(program: Program, stats: Stats, path: str | Path) -> Path:
    """Write the per-command trace of a run as CSV (written whole to a temporary name, then
    renamed, so an interrupted write leaves no truncated trace behind)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    table = program.table  # not program.commands: decoding every command takes seconds
    op = table[:, 0]
    names = {int(o): o.name for o in isa.Opcode}
    units = _unit_names()
    unit = _opcode_units(op)
    sch = stats.schedule
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TRACE_COLUMNS)
        w.writerows(zip(range(len(table)), (names[o] for o in op.tolist()),
                        (units[u] for u in unit.tolist()), sch.accept.tolist(),
                        sch.start.tolist(), sch.end.tolist(), table[:, 1].tolist(),
                        table[:, 2].tolist(), strict=True))
    tmp.replace(path)
    return path


def read_trace(path: str | Path) -> list[dict]:
    """The rows of a CSV trace (:func:`write_trace`), integer columns as ``int``."""
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("index", "accept", "start", "end", "wait", "signal"):
            r[k] = int(r[k])
    return rows


# --- Chrome / Perfetto trace-event JSON ----------------------------------------------------------

def _unit_names() -> dict[int, str]:
    return {int(u): u.name.lower() for u in isa.Unit}


def _opcode_units(opcode: np.ndarray) -> np.ndarray:
    """The :class:`hwsim.isa.Unit` of each opcode."""
    lut = np.zeros(max(int(o) for o in isa.Opcode) + 1, np.int64)
    for o in isa.Opcode:
        lut[int(o)] = int(isa.command_class(o).UNIT)
    return lut[np.asarray(opcode, np.int64)]


def chrome_trace(opcode, unit, start, end, clock_mhz: float, *, names=None,
                 process: str = "satmem") -> dict:
    """A run's timeline in the Chrome trace-event format (``chrome://tracing``, Perfetto).

    One complete event (``"ph": "X"``) per command, on one track (``tid``) per unit that ran a
    command, named by a ``thread_name`` metadata event; ``ts`` and ``dur`` are microseconds at
    ``clock_mhz`` (cycle ``c`` is at ``c / clock_mhz`` us), and each event's ``args`` hold the
    exact cycles (``start``, ``cycles``) and the command's index. Commands the controller runs
    itself (SETREG, SYNC: unit ``control``) are left out: they are fences, not work, and
    :attr:`hwsim.engine.Stats.busy` does not count them either, so each track's durations sum
    to its unit's busy cycles.

    Parameters
    ----------
    opcode : int array
        Per command, its :class:`hwsim.isa.Opcode`.
    unit : sequence
        Per command, its unit: an :class:`hwsim.isa.Unit` value or its lower-case name.
    start, end : int arrays
        First and last cycle of each command (inclusive, as :class:`hwsim.engine.Stats`).
    clock_mhz : float
    names : sequence of str, optional
        Per command, a name shown in the viewer (default: the opcode's name).
    process : str
        The process (pid 1) name shown above the tracks.
    """
    if not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be positive, not {clock_mhz!r}")
    by_value = _unit_names()
    units = [by_value[int(u)] if not isinstance(u, str) else u for u in unit]
    order = [u.name.lower() for u in isa.Unit]
    ran = sorted({u for u in units if u != "control"},
                 key=lambda u: order.index(u) if u in order else len(order))
    tid = {u: i + 1 for i, u in enumerate(ran)}
    us = 1.0 / float(clock_mhz)
    events: list[dict] = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                           "args": {"name": process}}]
    events += [{"name": "thread_name", "ph": "M", "pid": 1, "tid": t, "args": {"name": u}}
               for u, t in tid.items()]
    events += [{"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": t,
                "args": {"sort_index": t}} for t in tid.values()]
    for i, u in enumerate(units):
        if u == "control":
            continue
        s, e = int(start[i]), int(end[i])
        op = isa.Opcode(int(opcode[i])).name
        events.append({"name": names[i] if names is not None else op, "cat": u, "ph": "X",
                       "ts": s * us, "dur": (e - s + 1) * us, "pid": 1, "tid": tid[u],
                       "args": {"index": i, "opcode": op, "start": s, "cycles": e - s + 1}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"clock_mhz": float(clock_mhz)}}


def program_trace(program: Program, stats: Stats, clock_mhz: float, *,
                  process: str = "satmem") -> dict:
    """:func:`chrome_trace` of a run of ``program``; a compiled program's commands are named
    by their op (``GEMM conv1.fwd``: :class:`dataflow.compiler.CompiledProgram` items)."""
    table = program.table
    sch = stats.schedule
    names = None
    items, item_of = getattr(program, "items", None), getattr(program, "item_of", None)
    if items is not None and item_of is not None:
        ops = [isa.Opcode(int(o)).name for o in table[:, 0]]
        names = [f"{op} {items[k].name}" if k >= 0 else op
                 for op, k in zip(ops, item_of.tolist(), strict=True)]
    return chrome_trace(table[:, 0], _opcode_units(table[:, 0]), sch.start, sch.end,
                        clock_mhz, names=names, process=process)


def _write_json(doc: dict, path: Path) -> Path:
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w") as f:
        json.dump(doc, f, separators=(",", ":"))
    tmp.replace(path)
    return path


def write_chrome_trace(program: Program, stats: Stats, path: str | Path, clock_mhz: float, *,
                       process: str = "satmem") -> Path:
    """Write :func:`program_trace` as JSON (open it in ``ui.perfetto.dev`` or
    ``chrome://tracing``); written whole to a temporary name, then renamed."""
    return _write_json(program_trace(program, stats, clock_mhz, process=process), Path(path))


def csv_to_chrome_trace(csv_path: str | Path, json_path: str | Path, clock_mhz: float, *,
                        process: str = "satmem") -> Path:
    """Convert a per-command CSV trace (:func:`write_trace`) to the Chrome trace-event JSON."""
    rows = read_trace(csv_path)
    doc = chrome_trace([isa.Opcode[r["opcode"]] for r in rows], [r["unit"] for r in rows],
                       [r["start"] for r in rows], [r["end"] for r in rows], clock_mhz,
                       process=process)
    return _write_json(doc, Path(json_path))
