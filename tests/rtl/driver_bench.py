"""cocotb bench of ``test_driver_cocotb``: the host driver (:class:`rtl.driver.KernelDriver`)
on the simulated kernel, through :class:`rtl.driver.CocotbTransport` (``AxiLiteMaster`` on
``s_axi_control``, one ``AxiRam`` memory behind ``m_axi_cmd`` and ``m_axi_gmem``: the bench
:class:`rtl.cosim.kernel_bench.TB`; with ``lookup``, ``m_axi_lk`` on the same memory too).
With ``config`` of several DRAM channels, one ``AxiRam`` of ``mem_bytes`` per channel master
(``m_axi_ch<c>``), the memory bank at device address ``c * bank_bytes``; the fetcher reads
bank 0. Loaded by the simulator, not by pytest.

Spec (``SATMEM_SPEC``): ``{"mem_bytes": n, "seed": s, "lookup": bool, "jobs": path, "out":
path, "config": path (optional), "bank_bytes": b (with config)}``; ``jobs`` is a pickle of
``[{"label", "program", "values", "layout", "interrupt", "pause", "max_polls", "flip"
(optional: RecordingTransport's)}, ...]`` and
``config`` of the :class:`~hwsim.config.AcceleratorConfig` (the pytest side's objects: no
compiler in the simulator). The pickle at ``out`` holds per job the driver's
:class:`~rtl.driver.KernelRun` fields (or the :class:`~rtl.driver.KernelError`'s run), the
error's text, every register access as ``(cycle, "r"|"w", offset, value)``, the interrupt's
rising edges, the control register 20 cycles after the run and, with several banks, every
byte of each bank (``banks``). ``SATMEM_OUT`` gets ``{"jobs": n}``.
"""

from __future__ import annotations

import json
import os
import pickle

import cocotb
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiRam

from rtl.axi import dma_prefixes
from rtl.cosim.kernel_bench import TB
from rtl.driver import CocotbTransport, KernelDriver, KernelError


class RecordingTransport(CocotbTransport):
    """:class:`CocotbTransport` that logs every register access with its ending cycle;
    ``flip``: ``{offset: mask}``, bits flipped in what the driver writes there (an argument
    the kernel must refuse), logged as written."""

    def __init__(self, tb: TB, max_cycles: int, bank_bytes: int, flip: dict | None = None):
        super().__init__(tb.ctrl, [(c * bank_bytes, ram) for c, ram in enumerate(tb.rams)],
                         tb.dut.interrupt, tb.dut.ap_clk, max_cycles)
        self.tb, self.log, self.flip = tb, [], flip or {}

    async def write_reg(self, offset: int, value: int) -> None:
        await super().write_reg(offset, value ^ self.flip.get(offset, 0))
        self.log.append((self.tb.cycle, "w", offset, value))

    async def read_reg(self, offset: int) -> int:
        value = await super().read_reg(offset)
        self.log.append((self.tb.cycle, "r", offset, value))
        return value


async def run_job(tb: TB, job: dict, lookup: bool, config=None, bank_bytes: int = 0) -> dict:
    for ram in tb.rams:
        ram.write(0, bytes(ram.size))  # a fresh memory: stray writes show
    tb.set_pause(job.get("pause", 0.0))
    transport = RecordingTransport(tb, job.get("max_cycles", 1_000_000), bank_bytes,
                                   job.get("flip"))
    driver = KernelDriver(transport, config, lookup=lookup, interrupt=job["interrupt"],
                          max_polls=job.get("max_polls", 1_000_000))
    rises = tb.irq_rises
    out = {"label": job["label"], "error": None}
    try:
        run = await driver.run(job["program"], job["values"], job["layout"])
    except KernelError as e:
        run, out["error"] = e.run, str(e)
    out.update(outputs=run.outputs, status=run.status, cycles=run.cycles, dram=run.dram,
               layout=run.layout)
    await ClockCycles(tb.dut.ap_clk, 20)  # no second ap_done without a second ap_start
    out["irq_rises"] = tb.irq_rises - rises
    out["ctrl_after"] = await tb.read(0x00)
    out["log"] = transport.log
    if len(tb.rams) > 1:
        out["banks"] = [ram.read(0, ram.size) for ram in tb.rams]
    return out


@cocotb.test()
async def driver_jobs(dut):
    """The jobs of ``$SATMEM_SPEC``, one after another on one kernel, through the driver."""
    with open(os.environ["SATMEM_SPEC"]) as f:
        spec = json.load(f)
    with open(spec["jobs"], "rb") as f:
        jobs = pickle.load(f)
    config = None
    if spec.get("config"):
        with open(spec["config"], "rb") as f:
            config = pickle.load(f)
    prefixes = ("m_axi_gmem",) if config is None or config.dram.channels == 1 \
        else dma_prefixes(config)
    tb = TB(dut, spec["mem_bytes"], spec.get("seed", 0), prefixes)
    if spec.get("lookup", False):  # the lookup engine's tables: one address space, as hwsim's
        tb.lk_ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_lk"), dut.ap_clk, dut.ap_rst_n,
                           reset_active_level=False, mem=tb.ram.mem)
    await tb.reset()
    results = [await run_job(tb, job, spec.get("lookup", False), config,
                             spec.get("bank_bytes", 0)) for job in jobs]
    with open(spec["out"], "wb") as f:
        pickle.dump(results, f)
    with open(os.environ["SATMEM_OUT"], "w") as f:
        json.dump({"jobs": len(results)}, f)
