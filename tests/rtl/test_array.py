"""Fast tier: the PE array and the GEMM unit in Amaranth's simulator against hwsim's kernels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from hwsim import isa
from hwsim.config import preset
from hwsim.numerics import fp32_add_array
from hwsim.systolic_array import os_feed_cycles, os_tile_per_cycle, ws_tile_per_cycle
from hwsim.units import unit_cycles
from rtl.array import ArrayUnit, SystolicArray

F16_CORNERS = np.array([0x0000, 0x8000, 0x0001, 0x83FF, 0x3C00, 0xBC00, 0x7BFF, 0x7C00,
                        0xFC00, 0x7E00, 0x7C01, 0x1400], np.uint16)


def _config(dtype):
    cfg = preset("tiny")
    return cfg if dtype == "int8" else replace(cfg, array=replace(cfg.array, dtype="fp16"))


def _operands(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, shape).astype(np.int8)
    x = (rng.standard_normal(shape) * 4).astype(np.float16).view(np.uint16)
    pick = rng.random(shape) < 0.15
    x[pick] = rng.choice(F16_CORNERS, int(pick.sum()))
    return x


def _old_acc(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-2**20, 2**20, shape).astype(np.int32)
    return (rng.standard_normal(shape) * 50).astype(np.float32)


def _bits(x, width):
    return np.asarray(x).view(np.uint32 if width == 32 else np.uint16 if width == 16
                              else np.uint8).astype(np.int64)


def _pack(row, bits):
    return sum((int(v) & (2**bits - 1)) << (bits * i) for i, v in enumerate(row))


@pytest.mark.parametrize(("rows", "cols", "k", "dtype"),
                         [(4, 4, 6, "int8"), (3, 5, 2, "int8"), (1, 1, 3, "int8"),
                          (2, 6, 9, "int8"), (3, 4, 7, "fp16"), (1, 2, 4, "fp16")])
def test_systolic_array_skewed_feed_matches_hwsim_kernel(rows, cols, k, dtype):
    rng = np.random.default_rng(rows * 100 + cols * 10 + k)
    a = _operands(rng, (k, rows), dtype)
    b = _operands(rng, (k, cols), dtype)
    expect, feed = os_tile_per_cycle(a, b, rows, cols)
    dut = SystolicArray(rows, cols, dtype)
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
    width = 32 if dtype == "fp16" else None
    exp = _bits(expect, 32) if width else expect
    np.testing.assert_array_equal(np.array(got["acc"]), exp)
    assert dut.latency == rows + cols - 2
    assert feed == os_feed_cycles(k, rows, cols)


def _run_unit(cfg, cmd, a, b, old):
    """Run one GEMM on an ArrayUnit with behavioural buffers; return (cycles, ACC writes)."""
    R, C = cfg.array.rows, cfg.array.cols
    W = 8 if cfg.array.dtype == "int8" else 16
    m = Module()
    m.submodules.unit = unit = ArrayUnit(cfg)
    # behavioural buffers: the testbench answers the unit's read ports one cycle late
    bufs = {"act": [_pack(_bits(r, W), W) for r in a], "wgt": [_pack(_bits(r, W), W) for r in b],
            "acc": [_pack(_bits(r, 32), 32) for r in old]}
    writes = {}
    out = {}

    async def bench(ctx):
        for f in ("a_addr", "b_addr", "c_addr", "k", "m", "accumulate", "dataflow"):
            ctx.set(getattr(unit, f), getattr(cmd, f))
        ctx.set(unit.start, 1)
        cycles = 1
        pending = {}
        while True:
            for name, port in (("act", unit.act), ("wgt", unit.wgt), ("acc", unit.acc_rd)):
                if name in pending:
                    ctx.set(port.data, pending[name])
            if ctx.get(unit.acc_wr.en):
                addr = ctx.get(unit.acc_wr.addr)
                assert addr not in writes
                writes[addr] = ctx.get(unit.acc_wr.data)
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
            assert cycles < 10_000
        out["cycles"] = cycles

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    rows = {a: [(v >> (32 * j)) & 0xFFFFFFFF for j in range(C)] for a, v in writes.items()}
    assert out["cycles"] == unit_cycles(cmd, cfg) == ArrayUnit.cycles(
        cmd.k, R, C, dataflow=cmd.dataflow, m=cmd.m)
    return rows


@pytest.mark.parametrize(("k", "accumulate", "dtype"),
                         [(5, 0, "int8"), (1, 1, "int8"), (0, 0, "int8"), (12, 1, "int8"),
                          (6, 0, "fp16"), (9, 1, "fp16")])
def test_array_unit_os_done_cycle_and_values_equal_hwsim(k, accumulate, dtype):
    cfg = _config(dtype)
    R, C = cfg.array.rows, cfg.array.cols
    rng = np.random.default_rng(k)
    a = _operands(rng, (k, R), dtype)
    b = _operands(rng, (k, C), dtype)
    old = _old_acc(rng, (R, C), dtype)
    cmd = isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=k, m=0, accumulate=accumulate)
    rows = _run_unit(cfg, cmd, a, b, old)
    tile, _ = os_tile_per_cycle(a, b, R, C)
    if dtype == "int8":
        expect = _bits((tile.astype(np.int64) + (old if accumulate else 0)).astype(np.int32), 32)
    else:
        expect = _bits(fp32_add_array(old, tile) if accumulate else tile, 32)
    assert sorted(rows) == list(range(R))
    for i in range(R):
        np.testing.assert_array_equal(rows[i], expect[i])


@pytest.mark.parametrize(("k", "m", "accumulate", "dtype"),
                         [(4, 6, 0, "int8"), (2, 3, 1, "int8"), (0, 2, 0, "int8"),
                          (3, 0, 0, "int8"), (4, 5, 1, "fp16"), (1, 3, 0, "fp16")])
def test_array_unit_ws_done_cycle_and_values_equal_hwsim(k, m, accumulate, dtype):
    cfg = _config(dtype)
    R, C = cfg.array.rows, cfg.array.cols
    rng = np.random.default_rng(10 * k + m)
    a = _operands(rng, (m, R), dtype)
    w = _operands(rng, (k, C), dtype)
    old = _old_acc(rng, (m + 3, C), dtype)
    c_addr = 2
    cmd = isa.Gemm(a_addr=0, b_addr=0, c_addr=c_addr, idx_addr=0, k=k, m=m, dataflow=1,
                   accumulate=accumulate)
    rows = _run_unit(cfg, cmd, a, w, old)
    expect, _ = ws_tile_per_cycle(a, w, R, C,
                                  acc=old[c_addr:c_addr + m] if accumulate else None)
    assert sorted(rows) == list(range(c_addr, c_addr + m))
    for t in range(m):
        np.testing.assert_array_equal(rows[c_addr + t], _bits(expect, 32)[t])


@pytest.mark.filterwarnings("ignore:.*created but never used")
@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "4"])
def test_systolic_array_rejects_bad_dimensions(bad):
    with pytest.raises(TypeError, match=f"^rows must be a positive integer, not {bad!r}$"):
        SystolicArray(bad, 4)
    with pytest.raises(TypeError, match=f"^cols must be a positive integer, not {bad!r}$"):
        SystolicArray(4, bad)


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_systolic_array_and_array_unit_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"^dtype must be one of \('int8', 'fp16'\), not 'bf16'$"):
        SystolicArray(2, 2, "bf16")
    with pytest.raises(TypeError, match="^config must be an AcceleratorConfig, not 'tiny'$"):
        ArrayUnit("tiny")
