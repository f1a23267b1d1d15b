# amaranth: UnusedElaboratable=no
"""The kernel's control registers and command fetcher in Amaranth's simulator (the fast tier;
``test_kernel_cocotb.py`` runs the whole kernel under Icarus and Verilator)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from rtl.axilite import (
    ARG_BASE,
    ARG_STRIDE,
    CTRL,
    CYCLES,
    GIE,
    IER,
    ISR,
    MAX_ARGS,
    STATUS,
    AxiLiteControl,
)
from rtl.kernel import CommandFetcher, data_args, kernel_args


def _bus(dut, name):
    return getattr(dut, f"s_axi_control_{name}")


async def _handshake(ctx, valid, ready):
    ctx.set(valid, 1)
    while not ctx.get(ready):
        await ctx.tick()
    await ctx.tick()
    ctx.set(valid, 0)


async def axil_write(ctx, dut, addr, value, strb=0xF):
    s = lambda n: _bus(dut, n)  # noqa: E731
    ctx.set(s("awaddr"), addr)
    await _handshake(ctx, s("awvalid"), s("awready"))
    ctx.set(s("wdata"), value)
    ctx.set(s("wstrb"), strb)
    await _handshake(ctx, s("wvalid"), s("wready"))
    ctx.set(s("bready"), 1)
    while not ctx.get(s("bvalid")):
        await ctx.tick()
    await ctx.tick()
    ctx.set(s("bready"), 0)


async def axil_read(ctx, dut, addr):
    s = lambda n: _bus(dut, n)  # noqa: E731
    ctx.set(s("araddr"), addr)
    await _handshake(ctx, s("arvalid"), s("arready"))
    ctx.set(s("rready"), 1)
    while not ctx.get(s("rvalid")):
        await ctx.tick()
    value = ctx.get(s("rdata"))
    await ctx.tick()
    ctx.set(s("rready"), 0)
    return value


def _simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_control_rejects_more_args_than_the_map_holds():
    with pytest.raises(ValueError, match=r"^nargs must be an integer from 0 to 126, not 127$"):
        AxiLiteControl(127)


def test_register_map_puts_every_argument_below_the_status_and_cycle_registers():
    assert (ARG_BASE, ARG_STRIDE, STATUS, CYCLES, MAX_ARGS) == (0x10, 8, 0x400, 0x408, 126)
    assert ARG_BASE + MAX_ARGS * ARG_STRIDE == STATUS
    one = [(a.name, a.offset, a.port) for a in kernel_args(False)]
    assert one == [("program", 0x10, "m_axi_cmd"), ("program_words", 0x18, None),
                   ("data", 0x20, "m_axi_gmem")]
    # vcu1525: four DRAM channels, a base each, and the lookup engine's tables: 7 arguments
    four = [(a.name, a.offset, a.port) for a in kernel_args(True, 4)]
    assert four == [("program", 0x10, "m_axi_cmd"), ("program_words", 0x18, None),
                    ("data0", 0x20, "m_axi_ch0"), ("data1", 0x28, "m_axi_ch1"),
                    ("data2", 0x30, "m_axi_ch2"), ("data3", 0x38, "m_axi_ch3"),
                    ("tables", 0x40, "m_axi_lk")]
    assert data_args(1) == ("data",) and data_args(2) == ("data0", "data1")
    assert kernel_args(True, 64)[-1].offset == 0x10 + 66 * 8  # 64 channels still fit
    with pytest.raises(ValueError, match=r"^129 kernel arguments \(127 DRAM channels\) do not "
                                         r"fit the register map's 126$"):
        kernel_args(False, 127)
    with pytest.raises(ValueError, match=r"^channels must be a positive integer, not 0$"):
        kernel_args(False, 0)


def test_control_of_seven_args_decodes_the_last_one_and_status_and_cycles_above_them():
    dut = AxiLiteControl(7)
    seen = {}

    async def bench(ctx):
        last = ARG_BASE + 6 * ARG_STRIDE  # 0x40: vcu1525's tables, where status used to be
        await axil_write(ctx, dut, last, 0x0000F000)
        await axil_write(ctx, dut, last + 4, 0x4)
        await axil_write(ctx, dut, STATUS, 0xFF)  # read only: ignored
        ctx.set(dut.status, 0x9)
        ctx.set(dut.cycles, 0x1_2345_6789)
        seen["arg6"] = ctx.get(dut.arg6)
        seen["regs"] = [await axil_read(ctx, dut, a)
                        for a in (last, last + 4, STATUS, CYCLES, CYCLES + 4, 0x3FC)]

    _simulate(dut, bench)
    assert seen["arg6"] == 0x4_0000_F000
    assert seen["regs"] == [0xF000, 0x4, 0x9, 0x2345_6789, 0x1, 0]


def test_control_ap_start_done_ready_and_auto_restart_follow_ap_ctrl_hs():
    dut = AxiLiteControl(2)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.ap_idle, 1)
        seen["reset"] = await axil_read(ctx, dut, CTRL)
        await axil_write(ctx, dut, CTRL, 0x1)
        seen["start"] = (ctx.get(dut.ap_start), await axil_read(ctx, dut, CTRL))
        ctx.set(dut.ap_idle, 0)
        for _ in range(3):
            await ctx.tick()
        seen["held"] = ctx.get(dut.ap_start)  # held until ap_ready
        ctx.set(dut.ap_done, 1)
        ctx.set(dut.ap_ready, 1)
        await ctx.tick()
        ctx.set(dut.ap_done, 0)
        ctx.set(dut.ap_ready, 0)
        ctx.set(dut.ap_idle, 1)
        seen["cleared"] = ctx.get(dut.ap_start)
        seen["done"] = [await axil_read(ctx, dut, CTRL), await axil_read(ctx, dut, CTRL)]
        # auto_restart: ap_ready sets ap_start again
        await axil_write(ctx, dut, CTRL, 0x81)
        ctx.set(dut.ap_ready, 1)
        await ctx.tick()
        ctx.set(dut.ap_ready, 0)
        seen["restart"] = ctx.get(dut.ap_start)
        # the arguments: 64 bits, low word at the offset, high word 4 above
        await axil_write(ctx, dut, 0x18, 0x89ABCDEF)
        await axil_write(ctx, dut, 0x1C, 0x01234567)
        seen["arg1"] = ctx.get(dut.arg1)
        ctx.set(dut.status, 0x5)
        seen["status"] = await axil_read(ctx, dut, STATUS)

    _simulate(dut, bench)
    assert seen["reset"] == 0x4  # ap_idle only
    assert seen["start"] == (1, 0x5)
    assert seen["held"] == 1 and seen["cleared"] == 0
    assert seen["done"] == [0xE, 0x4]  # ap_done, ap_ready clear on read
    assert seen["restart"] == 1
    assert seen["arg1"] == 0x0123456789ABCDEF and seen["status"] == 0x5


def test_control_isr_sets_only_when_enabled_and_toggles_on_write():
    dut = AxiLiteControl(0)
    seen = []

    async def pulse_done(ctx):
        ctx.set(dut.ap_done, 1)
        await ctx.tick()
        ctx.set(dut.ap_done, 0)

    async def bench(ctx):
        await pulse_done(ctx)  # IER off: no status
        seen.append((await axil_read(ctx, dut, ISR), ctx.get(dut.interrupt)))
        await axil_write(ctx, dut, IER, 0x1)
        await pulse_done(ctx)  # IER on, GIE off: status, no interrupt
        seen.append((await axil_read(ctx, dut, ISR), ctx.get(dut.interrupt)))
        await axil_write(ctx, dut, GIE, 0x1)
        await ctx.tick()
        seen.append((await axil_read(ctx, dut, ISR), ctx.get(dut.interrupt)))
        await axil_write(ctx, dut, ISR, 0x1)  # toggle: clears
        await ctx.tick()
        seen.append((await axil_read(ctx, dut, ISR), ctx.get(dut.interrupt)))

    _simulate(dut, bench)
    assert seen == [(0, 0), (1, 0), (1, 1), (0, 0)]


@pytest.mark.parametrize("count", [0, 1, 7, 40])
def test_fetcher_streams_every_word_in_order_under_backpressure(count):
    dut = CommandFetcher()
    rng = random.Random(count)
    got, addrs = [], []
    latency = 3

    async def bench(ctx):
        ctx.set(dut.count, count)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        pending = []  # (cycle the response is ready, address), in request order
        for cycle in range(40 * count + 20):
            # this cycle's inputs: the memory answers reads `latency` cycles after them
            head = pending[0] if pending and pending[0][0] <= cycle else None
            ctx.set(dut.mem_rd_req.ready, rng.random() < 0.7)
            ctx.set(dut.mem_rd_rsp.valid, head is not None)
            ctx.set(dut.mem_rd_rsp.payload, 0 if head is None else 0xC0DE << 64 | head[1] >> 4)
            ctx.set(dut.cmd.ready, rng.random() < 0.6)
            # the handshakes at the coming edge
            if ctx.get(dut.mem_rd_req.valid) and ctx.get(dut.mem_rd_req.ready):
                addrs.append(ctx.get(dut.mem_rd_req.payload.addr))
                pending.append((cycle + latency, addrs[-1]))
            if ctx.get(dut.cmd.valid) and ctx.get(dut.cmd.ready):
                assert ctx.get(dut.mem_rd_rsp.ready)
                got.append(ctx.get(dut.cmd.payload))
                pending.pop(0)
            await ctx.tick()
            if not ctx.get(dut.busy) and len(got) == count:
                break
        assert not ctx.get(dut.busy) and not pending

    _simulate(dut, bench)
    assert addrs == [16 * i for i in range(count)]
    assert got == [0xC0DE << 64 | i for i in range(count)]
