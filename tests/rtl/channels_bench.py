"""cocotb bench of ``test_channels_cocotb``: ``satmem_top`` built with one AXI4 master per DRAM
channel (``m_axi_ch0``, ``m_axi_ch1``, ...: :mod:`rtl.channels`), each served by its own
``cocotbext.axi.AxiRam`` holding that channel's memory (optionally with random pauses on every
AXI channel). Loaded by the simulator, not by pytest.

Spec (``SATMEM_SPEC``): ``{"prefixes": [...], "channel_bytes": n, "seed": s, "max_cycles": c,
"programs": [{"words": [hex...], "mems": [hex per channel], "pause": p}, ...]}``; the pytest side
cuts the program's DRAM image into the channels' memories by ``hwsim.dram.channel_map``. Result
(``SATMEM_OUT``), per program: the accept cycle of every command, the (cycle, unit mask) of every
retire pulse, the cycle ``idle`` rose, every channel's AR and AW bursts (address, length), its
final memory (the image's length) and both error flags.
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
    """Clock, reset, one AxiRam per channel master and a command driver."""

    def __init__(self, dut, prefixes: list, channel_bytes: int, seed: int):
        self.dut, self.prefixes = dut, prefixes
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        for prefix in prefixes:  # the AXI models log every burst at INFO
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
        self.rams = [AxiRam(AxiBus.from_prefix(dut, p), dut.clk, dut.rst,
                            reset_active_level=True, size=channel_bytes) for p in prefixes]

    async def reset(self, pause: float) -> None:
        d = self.dut
        d.rst.value = 1
        d.cmd__valid.value = 0
        d.cmd__payload.value = 0
        for ram in self.rams:
            r, w = ram.read_if, ram.write_if
            for ch in (r.ar_channel, r.r_channel, w.aw_channel, w.w_channel, w.b_channel):
                ch.set_pause_generator(_pauses(self.rng, pause) if pause else None)
                ch.pause = False
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0

    async def run_program(self, words: list, mems: list, max_cycles: int) -> dict:
        d = self.dut
        for ram, image in zip(self.rams, mems, strict=True):
            ram.write(0, bytes(ram.size))
            ram.write(0, image)
        accept, retires = [], []
        bursts = {p: {"ar": [], "aw": []} for p in self.prefixes}
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
            for p in self.prefixes:
                for ch in ("ar", "aw"):
                    if int(getattr(d, f"{p}_{ch}valid").value) and \
                            int(getattr(d, f"{p}_{ch}ready").value):
                        bursts[p][ch].append((int(getattr(d, f"{p}_{ch}addr").value),
                                              int(getattr(d, f"{p}_{ch}len").value)))
            if retired >= len(words) and int(d.idle.value):
                break
            if started:
                cycle += 1
            if cycle > max_cycles:
                raise AssertionError(f"program did not finish within {max_cycles} cycles: "
                                     f"{idx} of {len(words)} commands accepted, {retired} "
                                     f"retired")
        await FallingEdge(d.clk)
        d.cmd__valid.value = 0
        return {"accept": accept, "retires": retires, "idle_cycle": cycle, "bursts": bursts,
                "mems": [ram.read(0, len(image)).hex()
                         for ram, image in zip(self.rams, mems, strict=True)],
                "error": int(d.error.value), "axi_error": int(d.axi_error.value)}


@cocotb.test()
async def programs(dut):
    """Run the programs of ``$SATMEM_SPEC`` and write the observations to ``$SATMEM_OUT``."""
    with open(os.environ["SATMEM_SPEC"]) as f:
        spec = json.load(f)
    tb = TB(dut, spec["prefixes"], spec["channel_bytes"], spec.get("seed", 0))
    results = []
    for prog in spec["programs"]:
        await tb.reset(prog.get("pause", 0.0))
        results.append(await tb.run_program([int(w, 16) for w in prog["words"]],
                                            [bytes.fromhex(m) for m in prog["mems"]],
                                            spec.get("max_cycles", 1_000_000)))
    with open(os.environ["SATMEM_OUT"], "w") as f:
        json.dump(results, f)
