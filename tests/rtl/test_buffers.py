"""BufferMemory in Amaranth's simulator against a Python model of its entries: one-entry
writes anywhere, k-entry writes (the wide DMA's) at aligned addresses, reads of an entry and
of its group."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl.buffers import BufferMemory


@pytest.mark.parametrize("banks,group,lanes", [(1, 1, 1), (4, 4, 1), (4, 1, 4), (8, 4, 4),
                                               (8, 8, 2), (4, 2, 4)])
def test_buffer_entries_and_groups_equal_a_model_of_its_writes(banks, group, lanes):
    W, depth = 8, 40
    dut = BufferMemory(W, depth, banks=banks, group=group, write_lanes=lanes)
    rng = np.random.default_rng(banks * 100 + group * 10 + lanes)
    model = np.zeros(-(-depth // banks) * banks, np.int64)
    ops = []
    for _ in range(300):
        if rng.random() < 0.5:
            n = int(rng.integers(1, lanes + 1)) if lanes > 1 and rng.random() < 0.7 else 1
            addr = (int(rng.integers(0, depth // lanes)) * lanes if n > 1
                    else int(rng.integers(0, depth)))
            vals = [int(v) for v in rng.integers(0, 256, n)]
            ops.append(("w", addr, n, vals))
        else:
            ops.append(("r", int(rng.integers(0, depth)), 0, None))
    seen = []

    async def bench(ctx):
        for kind, addr, n, vals in ops:
            if kind == "w":
                ctx.set(dut.wr.addr, addr)
                ctx.set(dut.wr.en, 1)
                ctx.set(dut.wr.data, sum(v << (W * j) for j, v in enumerate(vals)))
                if lanes > 1:
                    ctx.set(dut.wr.mask, (1 << n) - 1)
                await ctx.tick()
                ctx.set(dut.wr.en, 0)
                for j, v in enumerate(vals):
                    model[addr + j] = v
            else:
                ctx.set(dut.rd.addr, addr)
                ctx.set(dut.rd.en, 1)
                await ctx.tick()
                ctx.set(dut.rd.en, 0)
                row = ctx.get(dut.row) if group > 1 else None
                seen.append((addr, ctx.get(dut.rd.data), row))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # replay: every read saw the model's state at its time
    model[:] = 0
    reads = iter(seen)
    for kind, addr, _n, vals in ops:
        if kind == "w":
            for j, v in enumerate(vals):
                model[addr + j] = v
            continue
        a, data, row = next(reads)
        assert data == model[a], (kind, a)
        if group > 1:
            g0 = a - a % group
            assert row == sum(int(model[g0 + j]) << (W * j) for j in range(group)), a
    assert any(n > 1 for _, _, n, _ in ops) == (lanes > 1)


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_buffer_rejects_write_lanes_that_do_not_divide_its_banks():
    with pytest.raises(ValueError, match="divide banks"):
        BufferMemory(8, 16, banks=2, write_lanes=4)
    with pytest.raises(ValueError, match="power of two"):
        BufferMemory(8, 16, banks=4, group=3)
