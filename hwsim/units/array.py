"""The PE array unit: GEMM tiles, dense or N:M sparse, output- or weight-stationary.

Semantics: :class:`hwsim.isa.Gemm`. Values are computed register by register by the per-cycle
kernels of :mod:`hwsim.systolic_array` (dense) and :mod:`hwsim.sparse_tile` (N:M), in the
hardware's arithmetic (:mod:`hwsim.numerics`).

Cycles (start to done, inclusive), R x C array, ``k`` reduction steps (compressed steps for a
sparse tile: each PE picks its activation by index, so the array consumes one compressed
weight row per step)::

    OS  1 + os_feed_cycles(k) + R + 1 = k + 2R + C + 1   (start, feed, drain one ACC row
                                                          per cycle, one read-latency cycle)
    WS  1 + ws_stream_cycles(k, m)    = k + m + R + C + 1

RTL: ``rtl/array`` (the PE, the systolic array and the unit that sequences a tile).
"""

from __future__ import annotations

import numpy as np

from .. import isa
from ..numerics import fp32_add_array
from ..program import COL
from ..sparse_tile import os_sparse_tile_per_cycle, ws_sparse_tile_per_cycle
from ..systolic_array import os_feed_cycles, os_tile_per_cycle, ws_stream_cycles, ws_tile_per_cycle
from . import Access, UnitModel, UnitTiming

__all__ = ["ArrayModel", "gemm_cycles"]


def gemm_cycles(k, m, dataflow, config):
    """``unit_cycles`` of GEMM tiles (vectorised; scalars give an int)."""
    R, C = config.array.rows, config.array.cols
    k, m, df = (np.asarray(x, np.int64) for x in (k, m, dataflow))
    os_ = 1 + os_feed_cycles(k, R, C) + R + 1
    ws = 1 + ws_stream_cycles(k, m, R, C)
    out = np.where(df == isa.Dataflow.OS, os_, ws)
    return int(out) if out.ndim == 0 else out


def _act_rows(cmd: isa.Gemm) -> tuple[int, int]:
    """ACT entries a tile reads and the alignment of ``a_addr`` (1: none)."""
    os_ = cmd.dataflow == isa.Dataflow.OS
    if not cmd.sparse:
        return (cmd.k if os_ else cmd.m), 1
    gm, gn = 1 << cmd.log2m, max(cmd.n, 1)
    if os_:
        return cmd.k // gn * gm, gm  # the activations of whole groups
    return cmd.m * (gm // gn), gm // gn  # M/N entries per activation row


class ArrayModel(UnitModel):
    """GEMM (module docstring)."""

    name = "array"
    opcodes = (isa.Opcode.GEMM,)

    def check(self, cmd, config):
        R = config.array.rows
        os_ = cmd.dataflow == isa.Dataflow.OS
        if ("os" if os_ else "ws") not in config.array.dataflows:
            return "dataflow", f"config {config.name!r} supports {config.array.dataflows}"
        if cmd.sparse:
            gm = 1 << cmd.log2m
            if (cmd.n, gm) not in config.array.nm_patterns:
                return "n", (f"pattern {cmd.n}:{gm} is not supported by config "
                             f"{config.name!r} {config.array.patterns}")
            if cmd.k % cmd.n:
                return "k", (f"{cmd.k} compressed steps are not a whole number of groups of "
                             f"{cmd.n}")
            if not os_ and gm % cmd.n:
                return "n", (f"weight-stationary N:M tiles need N to divide M, not "
                             f"{cmd.n}:{gm}")
            rows_a, align = _act_rows(cmd)
            if cmd.a_addr % align:
                return "a_addr", (f"{cmd.a_addr} is not a multiple of {align}: a sparse tile "
                                  "reads each group of ACT entries in one access of the "
                                  "banked buffer")
            if cmd.idx_addr + cmd.k > config.idx_depth:
                return "idx_addr", (f"entries {cmd.idx_addr}..{cmd.idx_addr + cmd.k - 1} "
                                    f"overflow the IDX buffer of {config.idx_depth} entries")
        if not os_ and cmd.k > R:
            return "k", f"{cmd.k} preloaded weight rows exceed {R} array rows"
        for a in self.footprint(cmd, config)[:3]:
            depth = {isa.Buffer.ACT: config.act_depth, isa.Buffer.WGT: config.wgt_depth,
                     isa.Buffer.ACC: config.acc_depth}[a.buf]
            if a.hi > depth:
                fname = {isa.Buffer.ACT: "a_addr", isa.Buffer.WGT: "b_addr",
                         isa.Buffer.ACC: "c_addr"}[a.buf]
                return fname, (f"entries {a.lo}..{a.hi - 1} overflow the "
                               f"{isa.Buffer(a.buf).name} buffer of {depth} entries")
        return None

    def execute(self, cmd, machine, config):
        R, C = config.array.rows, config.array.cols
        act, wgt, acc, idx = (machine.buffers[b] for b in (isa.Buffer.ACT, isa.Buffer.WGT,
                                                           isa.Buffer.ACC, isa.Buffer.IDX))
        rows_a, _ = _act_rows(cmd)
        a = act[cmd.a_addr:cmd.a_addr + rows_a]
        b = wgt[cmd.b_addr:cmd.b_addr + cmd.k]
        ix = idx[cmd.idx_addr:cmd.idx_addr + cmd.k]
        gm = 1 << cmd.log2m
        if cmd.dataflow == isa.Dataflow.WS:
            # WS accumulate: the old entries enter the columns as the initial partial sums
            dst = acc[cmd.c_addr:cmd.c_addr + cmd.m]
            init = dst.copy() if cmd.accumulate else None
            if cmd.sparse:
                a_rows = a.reshape(cmd.m, (gm // cmd.n) * R)  # M/N entries per row
                dst[:], _ = ws_sparse_tile_per_cycle(a_rows, b, ix, cmd.n, gm, R, C, acc=init)
            else:
                dst[:], _ = ws_tile_per_cycle(a, b, R, C, acc=init)
            return
        if cmd.sparse:
            res, _ = os_sparse_tile_per_cycle(a, b, ix, cmd.n, gm, R, C)
        else:
            res, _ = os_tile_per_cycle(a, b, R, C)
        dst = acc[cmd.c_addr:cmd.c_addr + R]
        if not cmd.accumulate:
            dst[:] = res
        elif config.array.dtype == "int8":
            dst[:] = (dst.astype(np.int64) + res).astype(np.int32)
        else:
            # OS drain read-modify-write: one fp32 RNE addition of the tile's rounded sum
            dst[:] = fp32_add_array(dst.view(np.uint32), res.view(np.uint32)).view(np.float32)

    def cycles(self, rows, config):
        return UnitTiming(gemm_cycles(rows[:, COL["k"]], rows[:, COL["m"]],
                                      rows[:, COL["dataflow"]], config).reshape(-1))

    def footprint(self, cmd, config):
        rows_a, _ = _act_rows(cmd)
        rows_c = config.array.rows if cmd.dataflow == isa.Dataflow.OS else cmd.m
        out = [Access(isa.Buffer.ACT, "r", cmd.a_addr, cmd.a_addr + rows_a, False),
               Access(isa.Buffer.WGT, "r", cmd.b_addr, cmd.b_addr + cmd.k, False),
               Access(isa.Buffer.ACC, "w", cmd.c_addr, cmd.c_addr + rows_c, True)]
        if cmd.sparse:
            out.append(Access(isa.Buffer.IDX, "r", cmd.idx_addr, cmd.idx_addr + cmd.k, False))
        return out

    def account(self, rows, timing, config, acc):
        R, C = config.array.rows, config.array.cols
        k, m = rows[:, COL["k"]], rows[:, COL["m"]]
        os_ = rows[:, COL["dataflow"]] == isa.Dataflow.OS
        sparse = rows[:, COL["sparse"]] != 0
        macs = int(np.where(os_, k * R * C, m * k * C).sum())
        acc.macs += macs
        acc.add("array", "mac_int8" if config.array.dtype == "int8" else "mac_fp16", macs)
        eb = config.array.elem_bytes
        # a sparse tile's ACT read is a whole banked row of the largest group, plus IDX
        widest = max((p for _, p in config.array.nm_patterns), default=1)
        rows_a = np.where(os_, k, m) * np.where(sparse, widest, 1)
        out_rows = np.where(os_, R, m)
        accumulate = rows[:, COL["accumulate"]] != 0
        acc.sram(int((rows_a * R * eb).sum()), 0, isa.Buffer.ACT)
        acc.sram(int((k * C * eb).sum()), 0, isa.Buffer.WGT)
        acc.sram(int(np.where(sparse, k * C, 0).sum()), 0, isa.Buffer.IDX)  # 1-byte indices
        # the result's entries, read first when accumulating (read-modify-write)
        acc.sram(int(np.where(accumulate, out_rows * C * 4, 0).sum()),
                 int((out_rows * C * 4).sum()), isa.Buffer.ACC)
        acc.stall("pipeline", int((timing.cycles - np.where(os_, k, m)).sum()))
