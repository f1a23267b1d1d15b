"""Shared by the block tests: drive combinational Amaranth logic with operand pairs, or run a
clocked testbench."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.sim import Simulator

__all__ = ["run_clocked", "run_comb"]


def run_comb(build, vectors, width: int = 32) -> list[int]:
    """Drive ``(a, b)`` pairs through combinational logic built by ``build(m, a, b)`` and
    return its output for each pair."""
    m = Module()
    a, b = Signal(width), Signal(width)
    out = build(m, a, b)
    got = []

    async def bench(ctx):
        for x, y in vectors:
            ctx.set(a, int(x))
            ctx.set(b, int(y))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


def run_clocked(dut, bench) -> None:
    """Run the async testbench ``bench`` on ``dut`` with a 100 MHz clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
