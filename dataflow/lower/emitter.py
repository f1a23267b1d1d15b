"""The program being built: command-table rows, and DRAM space handed out in order.

Every lowering (:mod:`dataflow.lower.gemm`, :mod:`dataflow.lower.vector`,
:mod:`dataflow.lower.sore`) appends rows to one :class:`Emitter`; the rows are those of
:data:`hwsim.program.COLUMNS` (plain lists while the program grows, one ``int64`` array at the
end), each tagged with the plan item it belongs to and the useful MACs it performs.
"""

from __future__ import annotations

import numpy as np

from hwsim import isa
from hwsim.program import COLUMNS

__all__ = ["ADDR_MOD", "Alloc", "Emitter"]

ADDR_MOD = 1 << 32
"""DRAM addresses wrap at 4 GiB, the LOAD/STORE field width (:mod:`dataflow.compiler`)."""
_NCOL = len(COLUMNS)
_SYNC = int(isa.Opcode.SYNC)


class Emitter:
    """Command rows with, per row, the item index (``cur`` when it was added) and useful MACs.

    Attributes
    ----------
    rows : list of list of int
        One row of :data:`hwsim.program.COLUMNS` per command; ``rows[i][1]`` is its wait mask,
        ``rows[i][2]`` its signal mask (lowerings add semaphore bits after the fact).
    item, macs : list of int
    cur : int
        The item the next rows belong to (-1: none).
    """

    def __init__(self):
        self.rows: list[list[int]] = []
        self.item: list[int] = []
        self.macs: list[int] = []
        self.cur = -1

    def new(self, opcode: int, wait: int = 0, signal: int = 0, macs: int = 0) -> list[int]:
        """Append a zeroed row with its header; returns it for the caller to fill."""
        r = [0] * _NCOL
        r[0], r[1], r[2] = opcode, wait, signal
        self.rows.append(r)
        self.item.append(self.cur)
        self.macs.append(macs)
        return r

    def sync(self) -> None:
        """A SYNC fence: every earlier command finishes before any later one starts."""
        self.new(_SYNC)

    def table(self) -> np.ndarray:
        """The rows as a command table."""
        return np.asarray(self.rows, np.int64).reshape(-1, _NCOL)


class Alloc:
    """DRAM space in allocation order, each tensor 64-byte aligned; ``top`` is the footprint."""

    def __init__(self):
        self.top = 0

    def __call__(self, nbytes: int) -> int:
        a = self.top
        self.top += (nbytes + 63) // 64 * 64
        return a
