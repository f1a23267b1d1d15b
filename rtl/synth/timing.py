"""A clock estimate from Yosys: its ``sta`` pass on the mapped netlist.

What the number **is**: the longest register-to-register (or port-to-register,
register-to-port) path through the cells ``synth_xilinx`` mapped to, summing the delays of the
``specify`` blocks of Yosys' ``xilinx/cells_sim.v``: clock-to-Q of the start flip-flop, every
LUT and carry cell on the way, and the end flip-flop's setup time. Those delays are **7-series**
figures (Project X-Ray's Artix-7 database, which ``cells_sim.v`` cites), the only Xilinx delays
Yosys carries.

What it **is not**: a Vivado timing result or an fmax. It has no routing delay (on an FPGA often
half of a path or more), no clock skew or uncertainty, no UltraScale+ cell delays (faster than
7-series), and it does not time any cell without a ``specify`` block: **DSP48E2, RAMB18E2,
RAMB36E2 and URAM288** (listed per design as ``untimed``), so no path into, out of or through
the multipliers and block RAMs counts. Primary inputs arrive at time 0, so a design synthesized
alone (out of context) shows its own paths, not those it joins in the whole machine.

So the frequency it gives, ``1 / path``, is an upper bound for the logic it covers, and its
path (cells and LUT levels) says where the logic is deepest; a design is only as fast as
Vivado's place-and-route says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["STA_LOG", "TimingEstimate", "parse_sta", "sta_script"]

STA_LOG = "sta.log"

_ARRIVAL = re.compile(r"^Latest arrival time in '[^']*' is (-?\d+):", re.M)
_UNTIMED = re.compile(r"Module '\\?([^']+)' has no timing arcs")
_STEP = re.compile(r"^\s+(\d+) \S.* \((\w+)\.([^()]+)\)\s*$")
_START = re.compile(r"^\s+(\d+)\s+(\S.*) \(<primary input>\)\s*$")
# the hierarchy a flattened name keeps: cells `$flatten\a.\b.$12`, wires `\a.b.sig [3]`
_FLAT_CELL = re.compile(r"\$flatten((?:\\[^.\s\\]+\.)+)")
_PUBLIC_WIRE = re.compile(r"^\s+\\([A-Za-z_][\w.]*)\.[A-Za-z_]\w*(?: \[\d+\])?\s*$")
_SEQUENTIAL = re.compile(r"^(FD|SRL|RAM|DSP|URAM)")  # cells a path starts at


def sta_script() -> str:
    """The Yosys commands that follow ``stat`` in :mod:`rtl.synth.run`'s flow.

    ``synth_xilinx`` ends with ``blackbox =A:whitebox``, which empties the flip-flops' and
    carry cells' models, ``specify`` blocks included, so the cell library is read again with
    them. Flip-flops whose ``INIT`` parameter is set derive a model without timing arcs
    (Yosys 0.70), so ``INIT`` (the power-on value, no part of timing) is cleared first; the
    netlist is not written after this.
    """
    return ("# clock estimate (rtl/synth/timing.py): Yosys' sta, 7-series cell delays, "
            "no routing\n"
            "read_verilog -lib -specify -overwrite +/xilinx/cells_sim.v\n"
            "setparam -unset INIT t:FD*\n"
            f"tee -q -o {STA_LOG} sta\n")


@dataclass(frozen=True)
class TimingEstimate:
    """Yosys ``sta``'s critical path of one design (see the module docstring for what it is
    and is not).

    Parameters
    ----------
    path_ps : int
        The path's delay in picoseconds, clock-to-Q and setup included.
    cells : tuple of str
        The cell types along it, from start to end (``FDRE``, ``LUT6``, ``CARRY4``, ..).
    start, end : str
        The start (``FDRE.C->Q`` or ``primary input``) and end (``FDRE.D`` or ``primary
        output``) of the path.
    untimed : tuple of str
        Cell types of the design without timing arcs, whose paths do not count.
    where : tuple of str
        The submodules (flattened hierarchy, ``core.vector``) the path's names show, start to
        end, each once; empty when every name on it is one Yosys made up.
    """

    path_ps: int
    cells: tuple[str, ...]
    start: str
    end: str
    untimed: tuple[str, ...] = ()
    where: tuple[str, ...] = ()

    @property
    def period_ns(self) -> float:
        return self.path_ps / 1000

    @property
    def fmax_mhz(self) -> float:
        """``1 / path``: an upper bound, see the module docstring."""
        return 1e6 / self.path_ps if self.path_ps > 0 else float("inf")

    @property
    def lut_levels(self) -> int:
        return sum(c.startswith("LUT") for c in self.cells)

    def summary(self) -> str:
        """One line: the path, its bound and what it passes through."""
        carry = sum(c.startswith("CARRY") for c in self.cells)
        where = f" through {', '.join(self.where)}" if self.where else ""
        return (f"{self.period_ns:.2f} ns logic-only path (<= {self.fmax_mhz:.0f} MHz): "
                f"{self.lut_levels} LUT levels, {carry} carry cells, {self.start} to "
                f"{self.end}{where}")

    def to_dict(self) -> dict:
        return {"path_ps": self.path_ps, "cells": list(self.cells), "start": self.start,
                "end": self.end, "untimed": list(self.untimed), "where": list(self.where)}

    @classmethod
    def from_dict(cls, data: dict) -> TimingEstimate:
        return cls(int(data["path_ps"]), tuple(data["cells"]), data["start"], data["end"],
                   tuple(data.get("untimed", ())), tuple(data.get("where", ())))


def parse_sta(text: str) -> TimingEstimate | None:
    """The critical path of Yosys ``sta``'s log, or None when it found no timed path.

    Raises
    ------
    ValueError
        If ``text`` has neither an arrival time nor ``No timing paths found``.
    """
    untimed = tuple(sorted(set(_UNTIMED.findall(text))))
    m = _ARRIVAL.search(text)
    if m is None:
        if "No timing paths found" in text:
            return None
        raise ValueError("not the log of Yosys' sta pass (no 'Latest arrival time')")
    lines = text[m.end():].splitlines()[1:]
    end = "primary output"
    if lines and (sink := _STEP.match(lines[0])):
        end, lines = f"{sink[2]}.{sink[3]}", lines[1:]
    steps, scopes = [], []  # from the end back to the start
    for line in lines:
        if _START.match(line) or (line.strip() and not line.startswith(" ")):
            break
        if step := _STEP.match(line):
            steps.append((step[2], step[3]))
        if cell := _FLAT_CELL.search(line):
            scopes.append(cell[1].replace("\\", "").rstrip("."))
        elif wire := _PUBLIC_WIRE.match(line):
            scopes.append(wire[1])
    # a path from a register is traced back through its clock pin to the clock port
    start = "primary input"
    if steps and _SEQUENTIAL.match(steps[-1][0]):
        start = f"{steps[-1][0]}.{steps[-1][1]}"
    where = tuple(dict.fromkeys(reversed(scopes)))
    return TimingEstimate(int(m[1]), tuple(t for t, _ in reversed(steps)), start, end, untimed,
                          where)
