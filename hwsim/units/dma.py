"""The DMA unit: LOAD (DRAM -> buffer, queue DMA_IN) and STORE (buffer -> DRAM, queue DMA_OUT).

Semantics (:class:`hwsim.isa.Load`, :class:`hwsim.isa.Store`): entry ``r`` of the command
moves ``elems`` elements between DRAM byte address ``dram_addr + r * stride`` and buffer entry
``sram_addr + r``; a LOAD zero-fills the rest of the entry (how partial tiles are padded).

Cycles (start to done, inclusive), ``fixed`` DRAM model (the RTL testbench's)::

    LOAD   1 + dma_issue_cycles(rows, bytes) + dram_latency_cycles
    STORE  2 + dma_issue_cycles(rows, bytes)
    empty  2

with ``dma_issue_cycles = ceil(rows / channels) * dram_request_cycles(bytes)``, or, for a LOAD
of ``k`` entries a request (``dram.dma == "wide"``, :func:`load_beats`), the same over its
requests of ``k`` entries' bytes (the last one the rest). With the
``banked`` model a command's duration depends on its addresses and on the row buffers earlier
commands left open: :func:`hwsim.dram.dma_cycles` times the program's DMA commands in program
order (its docstring states the ordering rule); it returns these closed forms for ``fixed``.
RTL: ``rtl/dma.py``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import buffers, isa
from ..config import AcceleratorConfig
from ..dram import dma_cycles
from ..program import COL
from . import Access, Accounting, UnitModel, UnitTiming

__all__ = ["WIDE_BUFFERS", "DmaModel", "dma_issue_cycles", "dram_request_cycles", "load_beats",
           "wide_entries"]

WIDE_BUFFERS = (isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.IDX)
"""The buffers a ``dram.dma == "wide"`` LOAD fills several entries a cycle (banked by
:func:`wide_entries` in ``rtl/accelerator.py``); ACC (two read ports) and VEC take an entry a
request."""


def wide_entries(buf: int, config: AcceleratorConfig) -> int:
    """Entries of buffer ``buf`` one ``dram.dma == "wide"`` LOAD request asks for: the largest
    power of two of them in ``dram.bus_bytes``, for :data:`WIDE_BUFFERS`; 1 otherwise (other
    DMA modes, other buffers, or entries wider than half the bus)."""
    if config.dram.dma != "wide" or buf not in WIDE_BUFFERS:
        return 1
    k = config.dram.bus_bytes // (buffers.width(buf, config) * buffers.elem_bytes(buf, config))
    return 1 << (k.bit_length() - 1) if k >= 2 else 1


def load_beats(load, buf, sram_addr, elems, stride, config: AcceleratorConfig) -> np.ndarray:
    """Entries per request of DMA commands (vectorised over the fields): ``k =``
    :func:`wide_entries` for a LOAD of whole entries (``elems`` the buffer's width) stored
    contiguously (``stride`` their bytes) at a buffer address that is a multiple of ``k``; 1
    for every other command. Such a LOAD asks for ``k`` entries a request (the last request
    the rest) and writes them in one cycle; the RTL's ``rtl.dma.DmaIn`` decides the same."""
    buf = np.asarray(buf, np.int64)
    out = np.ones(np.broadcast(load, buf, sram_addr, elems, stride).shape, np.int64)
    if config.dram.dma != "wide":
        return out
    for b in WIDE_BUFFERS:
        k = wide_entries(b, config)
        if k == 1:
            continue
        w = buffers.width(b, config)
        ok = (np.asarray(load, bool) & (buf == b) & (np.asarray(elems) == w)
              & (np.asarray(stride) == w * buffers.elem_bytes(b, config))
              & (np.asarray(sram_addr) % k == 0))
        out = np.where(ok, k, out)
    return out


def dram_request_cycles(nbytes: int, config: AcceleratorConfig) -> int:
    """Issue slots one DMA request of ``nbytes`` occupies on one DRAM channel: one per cycle
    while a request fits a cycle's worth of the channel's bandwidth, proportionally more
    otherwise."""
    per_channel = config.dram_bytes_per_cycle / config.dram.channels
    return max(1, math.ceil(nbytes / per_channel - 1e-9))


def dma_issue_cycles(rows: int, nbytes: int, config: AcceleratorConfig, beat: int = 1) -> int:
    """Cycles a DMA command spends issuing ``rows`` entries of ``nbytes``, ``beat`` entries a
    request (:func:`load_beats`): the requests are striped over the ``dram.channels``
    channels, each taking one request per slot. With one channel (the RTL's memory port) this
    is the sum of the requests' ``dram_request_cycles``."""
    full, tail = divmod(rows, beat)
    ch = config.dram.channels
    return (-(-full // ch) * dram_request_cycles(beat * nbytes, config)
            + (dram_request_cycles(tail * nbytes, config) if tail else 0))


def _fields(rows: np.ndarray, config: AcceleratorConfig):
    store = rows[:, COL["opcode"]] == isa.Opcode.STORE
    nbytes = rows[:, COL["elems"]] * buffers.elem_bytes_of(rows[:, COL["buf"]], config)
    return store, rows[:, COL["dram_addr"]], rows[:, COL["rows"]], nbytes, rows[:, COL["stride"]]


def _beats(rows: np.ndarray, config: AcceleratorConfig) -> np.ndarray:
    return load_beats(rows[:, COL["opcode"]] == isa.Opcode.LOAD, rows[:, COL["buf"]],
                      rows[:, COL["sram_addr"]], rows[:, COL["elems"]],
                      rows[:, COL["stride"]], config)


class DmaModel(UnitModel):
    """LOAD and STORE (module docstring)."""

    name = "dma"
    opcodes = (isa.Opcode.LOAD, isa.Opcode.STORE)

    def check(self, cmd, config):
        if cmd.buf not in isa.Buffer._value2member_map_:
            return "buf", f"buffer {cmd.buf} is not one of {[b.name for b in isa.Buffer]}"
        b = isa.Buffer(cmd.buf)
        depth, width = buffers.depth(b, config), buffers.width(b, config)
        if cmd.sram_addr + cmd.rows > depth:
            last = cmd.sram_addr + cmd.rows - 1
            return "rows", (f"entries {cmd.sram_addr}..{last} overflow the {b.name} buffer of "
                            f"{depth} entries")
        if cmd.elems > width:
            return "elems", f"{cmd.elems} elements exceed the {b.name} entry of {width}"
        return None

    def execute(self, cmd, machine, config):
        buf = machine.buffers[isa.Buffer(cmd.buf)]
        esz = buf.dtype.itemsize
        n = cmd.elems * esz
        if cmd.OPCODE == isa.Opcode.LOAD:
            for r in range(cmd.rows):
                a = cmd.dram_addr + r * cmd.stride
                raw = np.zeros(buf.shape[1] * esz, np.uint8)
                chunk = machine.dram[a:a + n]
                raw[:len(chunk)] = chunk
                buf[cmd.sram_addr + r] = raw.view(buf.dtype)
        else:
            for r in range(cmd.rows):
                a = cmd.dram_addr + r * cmd.stride
                machine.dram[a:a + n] = buf[cmd.sram_addr + r].view(np.uint8)[:n]

    def cycles(self, rows, config):
        timing = dma_cycles(*_fields(rows, config), config, beat=_beats(rows, config))
        return UnitTiming(timing.cycles, timing)

    def command_cycles(self, cmd, config):
        if cmd.rows == 0:
            return 2
        beat = int(load_beats(cmd.OPCODE == isa.Opcode.LOAD, cmd.buf, cmd.sram_addr, cmd.elems,
                              cmd.stride, config))
        issue = dma_issue_cycles(cmd.rows, cmd.elems * buffers.elem_bytes(cmd.buf, config),
                                 config, beat)
        return issue + (config.dram_latency_cycles + 1 if cmd.OPCODE == isa.Opcode.LOAD else 2)

    def footprint(self, cmd, config):
        lo, hi = cmd.sram_addr, cmd.sram_addr + cmd.rows
        if cmd.OPCODE == isa.Opcode.LOAD:
            return [Access(cmd.buf, "w", lo, hi, True)]
        # the ACC buffer has a read port of its own for stores (the array drains through another)
        return [Access(cmd.buf, "r_store" if cmd.buf == isa.Buffer.ACC else "r", lo, hi, False)]

    def account(self, rows, timing, config, acc: Accounting):
        store, _, n, nbytes, _ = _fields(rows, config)
        moved = n * nbytes
        read, written = int(moved[~store].sum()), int(moved[store].sum())
        acc.bytes["dram_read"] += read
        acc.bytes["dram_write"] += written
        # a LOAD writes the buffer its command names, a STORE reads it
        buf = rows[:, COL["buf"]]
        for b in np.unique(buf):
            mine = buf == b
            acc.sram(int(moved[mine & store].sum()), int(moved[mine & ~store].sum()), int(b))
        acc.add("dram", "dram_byte", read + written)
        t = timing.detail
        acc.stall("dram_latency", int(((~store) & (n > 0)).sum()) * config.dram_latency_cycles)
        acc.stall("dram_bandwidth", int((t.transfer - t.ideal).sum()))
        acc.dram["row_hits"] += int(t.row_hits.sum())
        acc.dram["row_misses"] += int(t.row_misses.sum())
