"""cocotb bench for ``satmem_top`` built with the AXI4 master port (``port="axi4"``).

Serves the ``m_axi_*`` port with ``cocotbext.axi.AxiRam`` (optionally with random pauses on
every AXI channel), drives the command words on ``cmd`` and waits until every command retired
and then until ``idle`` (which the AXI top raises only once every write's B response came back).
Loaded by the simulator, not by pytest (``test_axi_cocotb.py`` writes the spec and compares).

Spec (``SATMEM_SPEC``): ``{"bus_bytes": B, "mem_bytes": n, "seed": S, "max_cycles": c,
"programs": [{"words": [hex...], "dram": hex, "pause": p}, ...]}`` (``pause``: the probability
that an AXI channel of the RAM stalls on a cycle; ``max_cycles`` per program). Result
(``SATMEM_OUT``), per program: the accept cycle of every command, the (cycle, unit mask) of
every retire pulse, the cycle ``idle`` rose (cycle 0 is the cycle the first command is
accepted), the AR and AW bursts (address, length), the final memory (the image's length) and
both error flags.
"""

from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from accel_bench import sample_retire  # rtl/cosim is on the simulator's path
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam


def _pauses(rng: random.Random, p: float):
    while True:
        yield rng.random() < p


class TB:
    """Clock, reset, an AXI4 RAM on ``m_axi`` and a command driver for one DUT."""

    def __init__(self, dut, mem_bytes: int, seed: int):
        self.dut = dut
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        # the AXI models log every burst at INFO: seconds of simulation time and a huge log
        logging.getLogger(f"cocotb.{dut._name}.m_axi").setLevel(logging.WARNING)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst,
                          reset_active_level=True, size=mem_bytes)

    def channels(self):
        r, w = self.ram.read_if, self.ram.write_if
        return (r.ar_channel, r.r_channel, w.aw_channel, w.w_channel, w.b_channel)

    async def reset(self, pause: float) -> None:
        d = self.dut
        d.rst.value = 1
        d.cmd__valid.value = 0
        d.cmd__payload.value = 0
        for ch in self.channels():
            ch.set_pause_generator(_pauses(self.rng, pause) if pause else None)
            ch.pause = False  # clearing the generator leaves the last value it set
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0

    async def run_program(self, words: list[int], image: bytes, *,
                          max_cycles: int = 1_000_000) -> dict:
        d = self.dut
        self.ram.write(0, bytes(self.ram.size))
        self.ram.write(0, image)
        accept, retires, ar, aw = [], [], [], []
        idx, cycle, started, retired = 0, 0, False, 0
        while True:
            await FallingEdge(d.clk)
            d.cmd__valid.value = int(idx < len(words))
            d.cmd__payload.value = words[idx] if idx < len(words) else 0
            await ReadOnly()
            if idx < len(words) and int(d.cmd__ready.value):
                started = True
                accept.append(cycle)
                idx += 1
            retired += sample_retire(d, cycle, retires)
            for ch, log in (("ar", ar), ("aw", aw)):
                if int(getattr(d, f"m_axi_{ch}valid").value) and \
                        int(getattr(d, f"m_axi_{ch}ready").value):
                    log.append((int(getattr(d, f"m_axi_{ch}addr").value),
                                int(getattr(d, f"m_axi_{ch}len").value)))
            if retired >= len(words) and int(d.idle.value):
                break
            if started:
                cycle += 1
            if cycle > max_cycles:
                state = {s: str(getattr(d, s).value) for s in (
                    "idle", "m_axi_arvalid", "m_axi_arready", "m_axi_rvalid", "m_axi_rready",
                    "m_axi_awvalid", "m_axi_awready", "m_axi_wvalid", "m_axi_wready",
                    "m_axi_bvalid", "m_axi_bready")}
                raise AssertionError(f"program did not finish within {max_cycles} cycles: "
                                     f"{idx} of {len(words)} commands accepted, {retired} "
                                     f"retired, {len(ar)} AR, {len(aw)} AW bursts; {state}")
        await FallingEdge(d.clk)
        d.cmd__valid.value = 0
        return {"accept": accept, "retires": retires, "idle_cycle": cycle, "ar": ar, "aw": aw,
                "dram": self.ram.read(0, len(image)).hex(), "error": int(d.error.value),
                "axi_error": int(d.axi_error.value)}


@cocotb.test()
async def programs(dut):
    """Run the programs of ``$SATMEM_SPEC`` and write the observations to ``$SATMEM_OUT``."""
    with open(os.environ["SATMEM_SPEC"]) as f:
        spec = json.load(f)
    tb = TB(dut, spec["mem_bytes"], spec.get("seed", 0))
    results = []
    for prog in spec["programs"]:
        await tb.reset(prog.get("pause", 0.0))
        words = [int(w, 16) for w in prog["words"]]
        results.append(await tb.run_program(words, bytes.fromhex(prog["dram"]),
                                            max_cycles=spec.get("max_cycles", 1_000_000)))
    with open(os.environ["SATMEM_OUT"], "w") as f:
        json.dump(results, f)
