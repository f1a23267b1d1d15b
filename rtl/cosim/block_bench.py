"""cocotb bench for one component's Verilog (:func:`rtl.cosim.runner.run_block`).

Loaded by the simulator, not by pytest: nothing here imports torch, numpy or hwsim (seconds per
launch). The pytest side (``tests/rtl/test_blocks_cocotb.py``) generates the vectors, writes
them into a JSON spec, and compares what this bench records with ``hwsim`` and ``algorithms``.
The bench only drives inputs, serves buffer ports, clocks and records outputs; all values are
raw bit patterns (unsigned integers), the pytest side gives them meaning.

``spec["kind"]`` picks the bench:

``"steps"`` (cycle by cycle, e.g. :class:`rtl.array.PE`)
    Spec ``{"inputs": [port, ...], "outputs": [port, ...], "steps": [[value per input], ...]}``.
    Step ``t``'s inputs are driven through cycle ``t``; result row ``t`` holds the outputs in
    cycle ``t + 1``, i.e. the registers after the rising edge that sampled step ``t``.
    Result ``{"outputs": [[value per output], ...]}``.

``"jobs"`` (start/done units with buffer ports, e.g. :class:`rtl.sore.Sore`,
:class:`rtl.vector.VectorUnit`)
    Spec ``{"reads": {port: memory}, "writes": {port: memory}, "memories": {memory: {addr:
    value}}, "fill": value, "max_cycles": n, "jobs": [{"fields": {port: value}, "load":
    {memory: {addr: value}}, "idle": cycles}, ...]}``. Memories persist from job to job; a
    job's ``load`` entries are stored before it starts, after ``idle`` cycles with ``start``
    low. ``start`` is high on the job's cycle 1 with the fields; cycles count to ``done``
    inclusive. A read port answers in the next cycle with the entry (``fill`` where never
    written) and holds its data while ``en`` is low; a write lands after the same cycle's
    reads, so a read never sees a same-cycle write: ``rtl.buffers.BufferMemory``'s ports.
    Result ``{"jobs": [{"cycles": n, "busy": cycles with busy high, "busy_after": busy in the
    cycle after done, "writes": [[cycle, port, addr, data], ...]}, ...], "memories": {...}}``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

__all__ = ["TB", "run_jobs", "run_steps"]


class TB:
    """Clock, reset and checked access to the ports of one component (``clk``/``rst``)."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self._handles = {}
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    def port(self, name: str):
        if name not in self._handles:
            self._handles[name] = getattr(self.dut, name)
        return self._handles[name]

    def set(self, name: str, value: int) -> None:
        self.port(name).value = value

    def get(self, name: str) -> int:
        """The port's value as an unsigned integer; X or Z fails the test (with the cycle)."""
        value = self.port(name).value
        if not value.is_resolvable:
            raise AssertionError(f"{name} is {value} on cycle {self.cycle}")
        return int(value)

    async def reset(self, inputs) -> None:
        """Reset for three cycles with ``inputs`` low; returns in a falling-edge phase."""
        self.set("rst", 1)
        for name in inputs:
            self.set(name, 0)
        for _ in range(3):
            await FallingEdge(self.dut.clk)
        self.set("rst", 0)


async def run_steps(tb: TB, spec: dict) -> dict:
    """The ``"steps"`` bench (module docstring): drive rows, record outputs a cycle later."""
    inputs, outputs = spec["inputs"], spec["outputs"]
    await tb.reset(inputs)
    rows = []
    # at each falling edge: read the outputs of the previous row's rising edge, drive the next
    for t, row in enumerate(spec["steps"]):
        tb.cycle = t
        if t:
            rows.append([tb.get(name) for name in outputs])
        for name, value in zip(inputs, row, strict=True):
            tb.set(name, value)
        await FallingEdge(tb.dut.clk)
    tb.cycle = len(spec["steps"])
    rows.append([tb.get(name) for name in outputs])
    return {"outputs": rows}


async def run_jobs(tb: TB, spec: dict) -> dict:
    """The ``"jobs"`` bench (module docstring): one command after another on buffer ports."""
    reads, writes = spec["reads"], spec["writes"]
    mems = {name: {int(a): v for a, v in entries.items()}
            for name, entries in spec["memories"].items()}
    fill, max_cycles = spec.get("fill", 0), spec.get("max_cycles", 100_000)
    fields = sorted({f for job in spec["jobs"] for f in job["fields"]})
    await tb.reset(["start", *fields, *(f"{p}__data" for p in reads)])
    results = []
    for job in spec["jobs"]:
        for _ in range(job.get("idle", 0)):
            await FallingEdge(tb.dut.clk)
        for name, entries in job.get("load", {}).items():
            mems[name].update((int(a), v) for a, v in entries.items())
        for name, value in job["fields"].items():
            tb.set(name, value)
        tb.set("start", 1)
        cycle, busy, log, pending = 1, 0, [], {}
        while True:
            tb.cycle = cycle
            for p, data in pending.items():
                tb.set(f"{p}__data", data)
            pending = {}
            await ReadOnly()
            done = tb.get("done")
            busy += tb.get("busy")
            for p, mem in reads.items():
                if tb.get(f"{p}__en"):
                    pending[p] = mems[mem].get(tb.get(f"{p}__addr"), fill)
            for p, mem in writes.items():
                if tb.get(f"{p}__en"):
                    addr, data = tb.get(f"{p}__addr"), tb.get(f"{p}__data")
                    mems[mem][addr] = data
                    log.append([cycle, p, addr, data])
            if done:
                break
            if cycle >= max_cycles:
                raise AssertionError(f"job {len(results)} not done within {max_cycles} cycles")
            await FallingEdge(tb.dut.clk)
            tb.set("start", 0)
            cycle += 1
        await FallingEdge(tb.dut.clk)
        tb.set("start", 0)
        await ReadOnly()
        results.append({"cycles": cycle, "busy": busy, "busy_after": tb.get("busy"),
                        "writes": log})
        await FallingEdge(tb.dut.clk)
    return {"jobs": results, "memories": mems}


@cocotb.test()
async def block(dut):
    """Run the bench ``$SATMEM_SPEC`` names and write its record to ``$SATMEM_OUT``."""
    with open(os.environ["SATMEM_SPEC"]) as f:
        spec = json.load(f)
    bench = {"steps": run_steps, "jobs": run_jobs}[spec["kind"]]
    result = await bench(TB(dut), spec)
    with open(os.environ["SATMEM_OUT"], "w") as f:
        json.dump(result, f)
