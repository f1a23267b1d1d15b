"""cocotb bench for the host-controlled kernel (:class:`rtl.kernel.SatmemKernel`): the host's
side of a Vitis ``ap_ctrl_hs`` run, minus the board.

``cocotbext.axi.AxiLiteMaster`` drives ``s_axi_control``; one memory (``AxiRam`` on
``m_axi_gmem`` and a second ``AxiRam`` over the same bytes on ``m_axi_cmd``, each optionally
with random pauses on every channel) holds the program's command words and its DRAM image.
Loaded by the simulator, not by pytest (``tests/rtl/test_kernel_cocotb.py`` writes the spec and
compares).

Spec (``SATMEM_SPEC``): ``{"mem_bytes": n, "seed": s, "max_cycles": c, "args": {name:
offset}, "runs": [{"program_addr": a, "program": hex (the 16-byte words), "data_base": d,
"dram": hex, "pause": p, "words": w (default: the program's), "tables": t (default
data_base; written when the kernel has that argument)}, ...]}``.
Result (``SATMEM_OUT``): ``{"registers": {...}, "runs": [...]}``: the register checks'
observations after reset, and per run the control register while running and after the
interrupt (twice: ``ap_done`` is clear-on-read), the ISR, the interrupt's rising edges, the
status and cycle registers, the cycles from ``ap_start``'s write to the interrupt, and the
DRAM image read back from ``data_base``.
"""

from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from rtl.axilite import CTRL, CYCLES, GIE, IER, ISR, STATUS


def _pauses(rng: random.Random, p: float):
    while True:
        yield rng.random() < p


class TB:
    """Clock, active-low reset, the control master and the memory of one kernel.

    ``data_prefixes``: the DMA's masters, each with its own ``AxiRam`` of ``mem_bytes``
    (``rams``; a kernel of several DRAM channels has ``m_axi_ch0``, ...: one memory bank each).
    ``ram`` is the first; the fetcher's master ``m_axi_cmd`` reads the same bytes."""

    def __init__(self, dut, mem_bytes: int, seed: int,
                 data_prefixes: tuple[str, ...] = ("m_axi_gmem",)):
        self.dut = dut
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        dut.ap_rst_n.value = 0
        for prefix in (*data_prefixes, "m_axi_cmd", "s_axi_control"):
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
        self.rams = [AxiRam(AxiBus.from_prefix(dut, prefix), dut.ap_clk, dut.ap_rst_n,
                            reset_active_level=False, size=mem_bytes)
                     for prefix in data_prefixes]
        self.ram = self.rams[0]
        self.cmd_ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_cmd"), dut.ap_clk, dut.ap_rst_n,
                              reset_active_level=False, mem=self.ram.mem)
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk,
                                  dut.ap_rst_n, reset_active_level=False)
        self.cycle = 0
        self.irq_rises = 0
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Count cycles and the interrupt's rising edges."""
        last = 0
        while True:
            await RisingEdge(self.dut.ap_clk)
            await ReadOnly()
            self.cycle += 1
            irq = int(self.dut.interrupt.value) if self.dut.interrupt.value.is_resolvable else 0
            if irq and not last:
                self.irq_rises += 1
            last = irq

    async def reset(self):
        self.dut.ap_rst_n.value = 0
        for _ in range(4):
            await RisingEdge(self.dut.ap_clk)
        self.dut.ap_rst_n.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.ap_clk)

    def set_pause(self, p: float):
        for ram in (*self.rams, self.cmd_ram):
            for ch in (ram.read_if.ar_channel, ram.read_if.r_channel, ram.write_if.aw_channel,
                       ram.write_if.w_channel, ram.write_if.b_channel):
                ch.set_pause_generator(_pauses(self.rng, p) if p else None)
                ch.pause = False

    async def read(self, addr: int) -> int:
        return await self.ctrl.read_dword(addr)

    async def write(self, addr: int, value: int):
        await self.ctrl.write_dword(addr, value)

    async def write64(self, addr: int, value: int):
        await self.write(addr, value & 0xFFFFFFFF)
        await self.write(addr + 4, value >> 32)

    async def read64(self, addr: int) -> int:
        return await self.read(addr) | await self.read(addr + 4) << 32

    async def wait_irq(self, max_cycles: int) -> bool:
        for _ in range(max_cycles):
            await RisingEdge(self.dut.ap_clk)
            if self.dut.interrupt.value.is_resolvable and int(self.dut.interrupt.value):
                return True
        return False


async def check_registers(tb: TB, arg: int) -> dict:
    """Observations of the register map after reset (no run); ``arg``: an argument's offset."""
    obs = {"ctrl_after_reset": await tb.read(CTRL), "gie": await tb.read(GIE),
           "ier": await tb.read(IER), "isr": await tb.read(ISR),
           "status": await tb.read(STATUS), "unmapped": await tb.read(0x3FC)}
    await tb.write(GIE, 1)
    await tb.write(IER, 0x3)
    obs["gie_ier_written"] = [await tb.read(GIE), await tb.read(IER)]
    irq = []
    for value in (0x1, 0x1, 0x2, 0x3):  # ISR toggles on write
        await tb.write(ISR, value)
        await RisingEdge(tb.dut.ap_clk)
        irq.append([await tb.read(ISR), int(tb.dut.interrupt.value)])
    obs["isr_toggles"] = irq
    await tb.write(GIE, 0)
    await RisingEdge(tb.dut.ap_clk)
    obs["irq_gie_off"] = int(tb.dut.interrupt.value)
    await tb.write(ISR, await tb.read(ISR))  # clear: toggle the set bits back to 0
    obs["isr_cleared"] = await tb.read(ISR)
    await tb.write(IER, 0)
    await tb.write64(arg, 0x0123456789ABCDEF)
    obs["arg_readback"] = await tb.read64(arg)
    # byte strobes: only byte 1 of the low word is written
    await tb.ctrl.write(arg + 1, b"\x55")
    obs["arg_after_byte_write"] = await tb.read64(arg)
    await tb.write64(arg, 0)
    obs["ctrl_end"] = await tb.read(CTRL)
    return obs


async def run_once(tb: TB, run: dict, args: dict, max_cycles: int) -> dict:
    """One host run: images into memory, arguments, ap_start, wait, read back."""
    mem = tb.ram
    mem.write(0, bytes(mem.size))
    program = bytes.fromhex(run["program"])
    dram = bytes.fromhex(run["dram"])
    mem.write(run["program_addr"], program)
    mem.write(run["data_base"], dram)
    tb.set_pause(run.get("pause", 0.0))
    words = run.get("words", len(program) // 16)
    await tb.write(GIE, 1)
    await tb.write(IER, 0x1)
    await tb.write64(args["program"], run["program_addr"])
    await tb.write64(args["program_words"], words)
    await tb.write64(args["data"], run["data_base"])
    if "tables" in args:
        await tb.write64(args["tables"], run.get("tables", run["data_base"]))
    rises = tb.irq_rises
    t0 = tb.cycle
    await tb.write(CTRL, 0x1)
    ctrl_running = await tb.read(CTRL)
    finished = tb.dut.interrupt.value.is_resolvable and int(tb.dut.interrupt.value)
    if not finished:
        finished = await tb.wait_irq(max_cycles)
    out = {"finished": bool(finished), "irq_cycles": tb.cycle - t0, "ctrl_running": ctrl_running}
    out["isr"] = await tb.read(ISR)
    out["ctrl_done"] = await tb.read(CTRL)
    out["ctrl_again"] = await tb.read(CTRL)
    out["status"] = await tb.read(STATUS)
    out["cycles"] = await tb.read64(CYCLES)
    await tb.write(ISR, out["isr"])  # toggle the set bits back to 0
    await RisingEdge(tb.dut.ap_clk)
    out["irq_after_clear"] = int(tb.dut.interrupt.value)
    for _ in range(20):  # no second ap_done without a second ap_start
        await RisingEdge(tb.dut.ap_clk)
    out["irq_rises"] = tb.irq_rises - rises
    out["ctrl_idle"] = await tb.read(CTRL)
    out["dram"] = mem.read(run["data_base"], len(dram)).hex()
    return out


@cocotb.test()
async def kernel(dut):
    """The register checks, then the runs of ``$SATMEM_SPEC``; observations to
    ``$SATMEM_OUT``."""
    with open(os.environ["SATMEM_SPEC"]) as f:
        spec = json.load(f)
    tb = TB(dut, spec["mem_bytes"], spec.get("seed", 0))
    await tb.reset()
    args = spec["args"]
    result = {"registers": await check_registers(tb, args["data"]), "runs": []}
    for run in spec["runs"]:
        result["runs"].append(await run_once(tb, run, args, spec.get("max_cycles", 200_000)))
    with open(os.environ["SATMEM_OUT"], "w") as f:
        json.dump(result, f)
