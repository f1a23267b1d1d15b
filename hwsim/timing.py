"""Closed-form cycle costs of each command: the timing mode, and the RTL's contract.

The controller runs one command at a time: it accepts the command word (one cycle), starts the
unit, and retires the command on the cycle the unit is done, so a command costs
``1 + unit_cycles(cmd)``. ``unit_cycles`` counts from the unit's start cycle to its done cycle,
inclusive. The RTL (``rtl.array_unit``, ``rtl.dma``) documents the same expressions and the cocotb
tests check the RTL's measured retire cycles against :func:`command_cycles`.
"""

from __future__ import annotations

import math

from . import isa
from .config import AcceleratorConfig
from .systolic_array import os_feed_cycles, ws_stream_cycles

__all__ = [
    "ACCEPT_CYCLES", "command_cycles", "dram_request_cycles", "elem_bytes", "unit_cycles",
]

ACCEPT_CYCLES = 1


def dram_request_cycles(nbytes: int, config: AcceleratorConfig) -> int:
    """Issue slots one DMA request of ``nbytes`` occupies: one per cycle while a request fits
    in a cycle's worth of DRAM bandwidth, proportionally more otherwise."""
    return max(1, math.ceil(nbytes / config.dram_bytes_per_cycle - 1e-9))


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
        slots = dram_request_cycles(cmd.elems * elem_bytes(cmd.buf, config), config)
        return cmd.rows * slots + config.dram_latency_cycles + 1
    if isinstance(cmd, isa.Store):
        if cmd.rows == 0:
            return 2
        slots = dram_request_cycles(cmd.elems * elem_bytes(cmd.buf, config), config)
        return cmd.rows * slots + 2
    if isinstance(cmd, isa.Gemm):
        if cmd.dataflow == isa.Dataflow.OS:
            # start, feed, then drain one ACC row per cycle plus one read-latency cycle
            return 1 + os_feed_cycles(cmd.k, R, C) + R + 1
        # start, preload k weight rows (read latency 1), stream, one cycle of write latency
        return 1 + (cmd.k + 1) + ws_stream_cycles(cmd.m, R, C) + 1
    if isinstance(cmd, isa.SetReg | isa.Sync):
        return 1
    raise NotImplementedError(f"{cmd.name} has no timing model yet")


def command_cycles(cmd: isa.Command, config: AcceleratorConfig) -> int:
    """Accept-to-retire cycles of one command on the in-order controller."""
    return ACCEPT_CYCLES + unit_cycles(cmd, config)
