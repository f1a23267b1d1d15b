"""Compact execution traces: one row per command, not one per cycle.

A per-cycle trace of a ResNet-50 training step would run to gigabytes (SCALE-Sim's does); the
per-command rows here hold everything needed to redraw a unit timeline: when the controller
accepted each command, when its unit started and finished it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .engine import Stats
from .program import Program

__all__ = ["TRACE_COLUMNS", "read_trace", "write_trace"]

TRACE_COLUMNS = ("index", "opcode", "unit", "accept", "start", "end", "wait", "signal")


def write_trace(program: Program, stats: Stats, path: str | Path) -> Path:
    """Write the per-command trace of a run as CSV (written whole to a temporary name, then
    renamed, so an interrupted write leaves no truncated trace behind)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TRACE_COLUMNS)
        for i, cmd in enumerate(program.commands):
            w.writerow([i, cmd.name, cmd.UNIT.name.lower(), stats.accept_cycles[i],
                        stats.start_cycles[i], stats.retire_cycles[i], cmd.wait, cmd.signal])
    tmp.replace(path)
    return path


def read_trace(path: str | Path) -> list[dict]:
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("index", "accept", "start", "end", "wait", "signal"):
            r[k] = int(r[k])
    return rows
