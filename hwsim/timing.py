"""Closed-form cycle costs of each command: the timing mode, and the RTL's contract.

``unit_cycles`` counts from the cycle a unit starts a command to the cycle it reports done,
inclusive; :mod:`hwsim.schedule` places those intervals in time (queues, semaphores, fences).
The RTL units (``rtl.array_unit``, ``rtl.dma``, ``rtl.sore``, ``rtl.vector_unit``) document the
same expressions, and the cocotb tests check every command's measured accept and finish cycle
against hwsim's.

LOAD and STORE: these are the closed forms of the ``fixed`` DRAM model (what the RTL testbench
serves), which depend on the command alone. With ``config.dram.model == "banked"`` a DMA
command's duration depends on its addresses and on the row buffers earlier commands left open,
so :func:`hwsim.run` times DMA commands with :func:`hwsim.dram.dma_cycles` (which returns these
same closed forms for the fixed model) and ``unit_cycles`` of a LOAD/STORE stays the fixed
model's figure.
"""

from __future__ import annotations

import math

from . import isa
from .config import AcceleratorConfig
from .sore import prune_cycles
from .systolic_array import os_feed_cycles, ws_stream_cycles
from .vector_unit import update_cycles

__all__ = ["dma_issue_cycles", "dram_request_cycles", "elem_bytes", "unit_cycles"]

def dram_request_cycles(nbytes: int, config: AcceleratorConfig) -> int:
    """Issue slots one DMA request of ``nbytes`` occupies on one DRAM channel: one per cycle
    while a request fits a cycle's worth of the channel's bandwidth, proportionally more
    otherwise."""
    per_channel = config.dram_bytes_per_cycle / config.dram.channels
    return max(1, math.ceil(nbytes / per_channel - 1e-9))


def dma_issue_cycles(rows: int, nbytes: int, config: AcceleratorConfig) -> int:
    """Cycles a DMA command spends issuing ``rows`` requests of ``nbytes``: the rows are striped
    over the ``dram.channels`` channels, each taking one request per slot. With one channel (the
    RTL's memory port) this is ``rows * dram_request_cycles``."""
    return -(-rows // config.dram.channels) * dram_request_cycles(nbytes, config)


def elem_bytes(buf: int, config: AcceleratorConfig) -> int:
    """Bytes per element of buffer ``buf``."""
    if buf in (isa.Buffer.ACT, isa.Buffer.WGT):
        return config.array.elem_bytes
    if buf == isa.Buffer.IDX:
        return 1
    return 4


def unit_cycles(cmd: isa.Command, config: AcceleratorConfig) -> int:
    """Cycles from the unit's start to its done, inclusive."""
    R, C = config.array.rows, config.array.cols
    if isinstance(cmd, isa.Load):
        if cmd.rows == 0:
            return 2
        issue = dma_issue_cycles(cmd.rows, cmd.elems * elem_bytes(cmd.buf, config), config)
        return issue + config.dram_latency_cycles + 1
    if isinstance(cmd, isa.Store):
        if cmd.rows == 0:
            return 2
        issue = dma_issue_cycles(cmd.rows, cmd.elems * elem_bytes(cmd.buf, config), config)
        return issue + 2
    if isinstance(cmd, isa.Gemm):
        if cmd.dataflow == isa.Dataflow.OS:
            # start, feed, then drain one ACC row per cycle plus one read-latency cycle
            return 1 + os_feed_cycles(cmd.k, R, C) + R + 1
        # start, then weight preload, activation stream, skew and de-skew up to the last write
        return 1 + ws_stream_cycles(cmd.k, cmd.m, R, C)
    if isinstance(cmd, isa.Prune):
        return prune_cycles(cmd.rows, C, cmd.n, 1 << cmd.log2m, config.sore.lanes)
    if isinstance(cmd, isa.Update):
        return update_cycles(cmd.count, config.vector.lanes, cmd.optimizer)
    if isinstance(cmd, isa.SetReg | isa.Sync):
        return 1
    raise NotImplementedError(f"{cmd.name} has no timing model yet")
