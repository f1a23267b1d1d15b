"""Fast tier: the PE array and the GEMM unit in Amaranth's simulator against hwsim's kernels."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from hwsim import isa
from hwsim.config import preset
from hwsim.systolic_array import os_feed_cycles, os_tile_per_cycle
from hwsim.timing import unit_cycles
from rtl.array_unit import ArrayUnit
from rtl.systolic_array import SystolicArray


@pytest.mark.parametrize(("rows", "cols", "k"), [(4, 4, 6), (3, 5, 2), (1, 1, 3), (2, 6, 9)])
def test_systolic_array_skewed_feed_matches_hwsim_kernel(rows, cols, k):
    rng = np.random.default_rng(rows * 100 + cols * 10 + k)
    a = rng.integers(-128, 128, (k, rows)).astype(np.int8)
    b = rng.integers(-128, 128, (k, cols)).astype(np.int8)
    expect, feed = os_tile_per_cycle(a, b, rows, cols)
    dut = SystolicArray(rows, cols)
    got = {}

    async def bench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        # cycle c carries step c - 1 - i on row i (the read latency plus the skew)
        for c in range(feed):
            for i in range(rows):
                t = c - 1 - i
                ctx.set(dut.a_in[i], int(a[t, i]) if 0 <= t < k else 0)
            for j in range(cols):
                t = c - 1 - j
                ctx.set(dut.b_in[j], int(b[t, j]) if 0 <= t < k else 0)
            await ctx.tick()
        got["acc"] = [[ctx.get(dut.acc[i][j]) for j in range(cols)] for i in range(rows)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(np.array(got["acc"]), expect)
    assert dut.latency == rows + cols - 2
    assert feed == os_feed_cycles(k, rows, cols)


@pytest.mark.parametrize(("k", "accumulate"), [(5, 0), (1, 1), (0, 0), (12, 1)])
def test_array_unit_done_cycle_equals_hwsim_unit_cycles(k, accumulate):
    cfg = preset("tiny")
    R, C = cfg.array.rows, cfg.array.cols
    rng = np.random.default_rng(k)
    a = rng.integers(-128, 128, (k, R)).astype(np.int8)
    b = rng.integers(-128, 128, (k, C)).astype(np.int8)
    old = rng.integers(-2**20, 2**20, (R, C)).astype(np.int32)

    m = Module()
    m.submodules.unit = unit = ArrayUnit(cfg)
    # behavioural buffers: the testbench answers the unit's read ports one cycle late
    bufs = {"act": [int(_pack(r, 8)) for r in a], "wgt": [int(_pack(r, 8)) for r in b],
            "acc": [int(_pack(r, 32)) for r in old]}
    writes = {}
    out = {}

    async def bench(ctx):
        ctx.set(unit.k, k)
        ctx.set(unit.accumulate, accumulate)
        ctx.set(unit.start, 1)
        cycles = 1
        pending = {}
        while True:
            for name, port in (("act", unit.act), ("wgt", unit.wgt), ("acc", unit.acc_rd)):
                if name in pending:
                    ctx.set(port.data, pending[name])
            if ctx.get(unit.acc_wr.en):
                writes[ctx.get(unit.acc_wr.addr)] = ctx.get(unit.acc_wr.data)
            if ctx.get(unit.done):
                break
            for name, port in (("act", unit.act), ("wgt", unit.wgt), ("acc", unit.acc_rd)):
                if ctx.get(port.en):
                    addr = ctx.get(port.addr)
                    rows = bufs[name]
                    pending[name] = rows[addr] if addr < len(rows) else 0
            await ctx.tick()
            ctx.set(unit.start, 0)
            cycles += 1
        out["cycles"] = cycles

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    cmd = isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=k, m=0, accumulate=accumulate)
    assert out["cycles"] == unit_cycles(cmd, cfg) == ArrayUnit.cycles(k, R, C)
    tile, _ = os_tile_per_cycle(a, b, R, C)
    expect = (tile.astype(np.int64) + (old if accumulate else 0)).astype(np.int32)
    assert sorted(writes) == list(range(R))
    for i in range(R):
        row = [(writes[i] >> (32 * j)) & 0xFFFFFFFF for j in range(C)]
        np.testing.assert_array_equal(np.array(row, np.uint32).view(np.int32), expect[i])


def _pack(row, bits):
    return sum((int(v) & (2**bits - 1)) << (bits * i) for i, v in enumerate(row))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "4"])
def test_systolic_array_rejects_bad_dimensions(bad):
    with pytest.raises(TypeError, match=f"^rows must be a positive integer, not {bad!r}$"):
        SystolicArray(bad, 4)
    with pytest.raises(TypeError, match=f"^cols must be a positive integer, not {bad!r}$"):
        SystolicArray(4, bad)
