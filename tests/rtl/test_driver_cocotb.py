"""The host driver (:mod:`rtl.driver`) running compiled programs on the kernel top
(:class:`rtl.kernel.SatmemKernel`, SAT-only) under Icarus and Verilator: the board flow minus
the board. The driver writes the command words and DRAM image into the ``AxiRam`` device
memory, the arguments and ``ap_start`` through ``s_axi_control``, waits for ``ap_done``
(polling, or the interrupt) and reads the outputs back; they equal hwsim's functional run bit
for bit, and nothing else in the image changed. The register accesses are the ones the driver
documents, ``ap_done`` comes once per run and within a few register reads of the kernel's
cycle count, a second ``ap_start`` runs again, and a malformed program ends in a
:class:`~rtl.driver.KernelError` naming the status bit, not a hang.
"""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import numpy as np
import pytest

from dataflow import compile_gemm
from hwsim import isa
from hwsim.config import preset
from hwsim.engine import run
from hwsim.program import Program
from reports.fidelity import gather_program_case, lookup_test_config, memory_layer_case
from rtl.axilite import CTRL, GIE, IER, ISR, STATUS_BITS
from rtl.cosim import available_simulators
from rtl.cosim.runner import run_block
from rtl.driver import (
    AP_DONE,
    AP_IDLE,
    AP_START,
    DeviceLayout,
    KernelDriver,
    KernelError,
    KernelTimeoutError,
    memory_images,
    register_writes,
)
from rtl.kernel import KERNEL_NAME, SatmemKernel
from tests.rtl.training_step import step_tensors, step_values, training_step_program

BUILD = Path(__file__).resolve().parents[2] / "build"
SEED = 23
STEP_DIMS = (4, 8, 8, 4)  # batch, in, hidden, out: test_training_step_cocotb's tiny step
# a run ends at most this many cycles after the kernel's last cycle before the host knows:
# one AXI4-Lite read of the control register (about 5 cycles) or the interrupt's wait, plus the
# ap_start write's own cycles before the kernel counts
DONE_SLACK = 24


def _config(name):
    if name == "tiny_fp16":
        return preset("tiny").replace(name="tiny_fp16", array__dtype="fp16")
    return preset(name)


def _gemm(config, m, n, k, rng):
    if config.array.dtype == "int8":
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    else:
        a = rng.standard_normal((m, k)).astype(np.float16)
        b = rng.standard_normal((k, n)).astype(np.float16)
    return compile_gemm(m, n, k, config, dataflow="os"), {"A": a, "B": b}


def _jobs(config):
    """``[(job, program, values)]``: a dense GEMM polled, the BDWP 2:4 training step on the
    interrupt, the GEMM again elsewhere in memory under AXI pauses, and a malformed program."""
    rng = np.random.default_rng(SEED)
    gemm, gemm_values = _gemm(config, 6, 7, 12, rng)
    step, ops, _ = training_step_program(config, *STEP_DIMS, method="bdwp", pattern="2:4")
    assert sum(op.sparsity is not None for op in ops) == 4
    step_inputs, _ = step_values(step, ops, step_tensors(config.array.dtype, rng, *STEP_DIMS),
                                  config)
    # the program above its data, neither at 0: the arguments, not a packed layout, place them
    moved = DeviceLayout(program=0x9010, data=0x3000)
    # a HASH on a kernel without the lookup engine, after the valid GEMM
    bad = Program(gemm.commands + [isa.Hash(in_addr=0, p_addr=0, out_addr=0, table=0,
                                            tokens=1, chunks=1, width=8)],
                  gemm.dram_bytes, gemm.tensors, gemm.inputs, gemm.outputs)
    cases = [("dense gemm, polled", gemm, gemm_values, DeviceLayout.pack(gemm), False, 0.0),
             ("bdwp step, interrupt", step, step_inputs, DeviceLayout.pack(step, 0x1000),
              True, 0.0),
             ("dense gemm again, moved, AXI pauses", gemm, gemm_values, moved, False, 0.3),
             ("malformed", bad, gemm_values, DeviceLayout.pack(bad), True, 0.0)]
    return [({"label": label, "program": prog, "values": values, "layout": layout,
              "interrupt": irq, "pause": pause, "max_polls": 20_000, "max_cycles": 100_000},
             prog, values) for label, prog, values, layout, irq, pause in cases]


def _run(sim, config, jobs, tag, lookup=False):
    run_dir = BUILD / "cocotb" / f"driver-{sim}-{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    jobs_path, out_path = run_dir / "jobs.pkl", run_dir / "results.pkl"
    with open(jobs_path, "wb") as f:
        pickle.dump(jobs, f)
    out_path.unlink(missing_ok=True)
    mem_bytes = max(j["layout"].size(j["program"]) + min(j["layout"].program, j["layout"].data)
                    for j in jobs)
    spec = {"mem_bytes": -(-mem_bytes // 4096) * 4096, "seed": SEED, "lookup": lookup,
            "jobs": str(jobs_path), "out": str(out_path)}
    # the SAT-only build is test_kernel_cocotb's
    name = f"kernel-{config.name}-{config.key()}" + ("" if lookup else "-sat")
    got = run_block(sim, lambda: SatmemKernel(config, lookup=lookup), name,
                    "tests.rtl.driver_bench", spec, tag=f"driver-seed{SEED}", build_root=BUILD,
                    top=KERNEL_NAME)
    assert got["jobs"] == len(jobs)
    with open(out_path, "rb") as f:
        return pickle.load(f)


def _check_job(where, res, prog, values, config, interrupt, lookup=False):
    model = run(prog, config, "functional", inputs=values)
    assert res["error"] is None and res["status"] == 0, f"{where}: {res['error']}"
    for name in prog.outputs:
        np.testing.assert_array_equal(res["outputs"][name].view(np.uint8),
                                      model.outputs[name].view(np.uint8),
                                      err_msg=f"{where}: {name} RTL vs hwsim")
    want = prog.dram_image(values)
    for name in prog.outputs:
        prog.tensors[name].write(want, model.outputs[name])
    np.testing.assert_array_equal(res["dram"], want, err_msg=f"{where}: stray writes")

    # the host's side: the argument writes in order, then ap_start, then ap_done seen once
    log = res["log"]
    writes = [(o, v) for _, rw, o, v in log
              if rw == "w" and (o >= 0x10 or (o, v) == (CTRL, AP_START))]
    assert writes == register_writes(res["layout"], len(prog), lookup=lookup), where
    t_start = next(t for t, rw, o, v in log if (rw, o, v) == ("w", CTRL, AP_START))
    if interrupt:
        done = [t for t, rw, o, v in log if rw == "r" and o == ISR and v & 1]
    else:
        done = [t for t, rw, o, v in log if rw == "r" and o == CTRL and v & AP_DONE]
    assert len(done) == 1, f"{where}: ap_done seen {len(done)} times"
    # the kernel counts its run's cycles; the host sees the end a few cycles later, never
    # before. hwsim's timing is that of its fixed-latency memory model; AxiRam answers about as
    # fast, slower under pauses (measured 0.99-1.11x without, 1.31x with p=0.3)
    host = done[0] - t_start
    assert len(prog) <= res["cycles"] <= host <= res["cycles"] + DONE_SLACK, \
        f"{where}: kernel {res['cycles']} cycles, host saw {host}"
    if not lookup:  # hwsim's lookup tiers are not AxiRam's timing
        assert 0.9 * model.stats.cycles <= res["cycles"] <= 2 * model.stats.cycles, \
            f"{where}: kernel {res['cycles']} cycles, hwsim {model.stats.cycles}"
    assert res["irq_rises"] == int(interrupt), where  # GIE is off when polling
    assert res["ctrl_after"] == AP_IDLE, where  # no second ap_done
    print(f"{where}: kernel {res['cycles']} cycles, host {host}, "
          f"hwsim functional {model.stats.cycles}")


@pytest.mark.cocotb
@pytest.mark.parametrize("config_name", ["tiny", pytest.param("tiny_fp16",
                                                              marks=pytest.mark.slow)])
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_driver_runs_gemm_and_bdwp_step_through_kernel_bit_equal_to_hwsim(sim, config_name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = _config(config_name)
    jobs = _jobs(config)
    results = _run(sim, config, [j for j, _, _ in jobs], config_name)
    assert [r["label"] for r in results] == [j["label"] for j, _, _ in jobs]
    for (job, prog, values), res in zip(jobs[:-1], results[:-1], strict=True):
        _check_job(f"{sim}/{config_name}: {job['label']}", res, prog, values, config,
                   job["interrupt"])

    bad = results[-1]
    assert bad["error"] is not None and "command_error" in bad["error"], bad["error"]
    assert bad["status"] == 1 << STATUS_BITS["command_error"], bad["status"]
    assert bad["irq_rises"] == 1 and bad["ctrl_after"] == AP_IDLE
    # the valid GEMM before the bad command ran and its outputs came back
    good = jobs[0][1]
    model = run(good, config, "functional", inputs=jobs[0][2])
    for name in good.outputs:
        np.testing.assert_array_equal(bad["outputs"][name].view(np.uint8),
                                      model.outputs[name].view(np.uint8))



@pytest.mark.cocotb
@pytest.mark.slow  # the kernel with the lookup engine: its own Verilog and simulator build
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_driver_runs_lookup_programs_through_the_lookup_kernel_bit_equal_to_hwsim(sim):
    """A GATHER and a MemoryFormer memory layer (HASH + GATHER) on the kernel with the lookup
    engine: the driver writes the ``tables`` argument too (the data buffer: hwsim's one address
    space), the tables come over ``m_axi_lk``."""
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = lookup_test_config("tiny")
    rng = np.random.default_rng(SEED)
    gather = gather_program_case(config, 3, 4, 16, rng)
    layer = memory_layer_case(config, 2, 8, 16, 4, rng)
    cases = [("gather, polled", *gather, False), ("memory layer, interrupt", *layer, True)]
    jobs = [({"label": label, "program": prog, "values": values,
              "layout": DeviceLayout.pack(prog, 0x1000 * i), "interrupt": irq, "pause": 0.0,
              "max_polls": 20_000, "max_cycles": 100_000}, prog, values)
            for i, (label, prog, values, irq) in enumerate(cases)]
    results = _run(sim, config, [j for j, _, _ in jobs], "tiny-lookup", lookup=True)
    for (job, prog, values), res in zip(jobs, results, strict=True):
        _check_job(f"{sim}/lookup: {job['label']}", res, prog, values, config,
                   job["interrupt"], lookup=True)

# -- the host side alone, no simulator ------------------------------------------------------

class _Kernel:
    """A transport whose kernel finishes ``delay`` control reads after ``ap_start`` (never,
    with ``None``), with the status ``status``; memory is a bytearray."""

    def __init__(self, delay=2, status=0):
        self.regs, self.mem, self.delay, self.status = {CTRL: AP_IDLE}, bytearray(1 << 16), \
            delay, status
        self.writes, self.left = [], None

    async def write_reg(self, offset, value):
        self.writes.append((offset, value))
        self.regs[offset] = value
        if offset == CTRL and value & AP_START:
            self.regs[CTRL], self.left = AP_START, self.delay

    async def read_reg(self, offset):
        if offset == CTRL and self.left is not None:
            self.left -= 1
            if self.left < 0:
                self.left, self.regs[CTRL] = None, AP_IDLE | AP_DONE
        value = self.regs.get(offset, 0) if offset != 0x40 else self.status
        if offset == CTRL:
            self.regs[CTRL] &= ~AP_DONE  # clear on read
        return value

    async def write_mem(self, addr, data):
        self.mem[addr:addr + len(data)] = data

    async def read_mem(self, addr, nbytes):
        return bytes(self.mem[addr:addr + nbytes])


def _small_gemm():
    config = preset("tiny")
    return _gemm(config, 3, 4, 5, np.random.default_rng(1))


def test_device_layout_packs_program_then_page_aligned_data():
    prog, _ = _small_gemm()
    layout = DeviceLayout.pack(prog, base=0x2000)
    assert layout.program == 0x2000 and layout.data % 4096 == 0
    assert layout.data >= 0x2000 + 16 * len(prog)
    assert layout.size(prog) == layout.data + prog.dram_bytes - 0x2000
    assert layout.tables_base == layout.data


@pytest.mark.parametrize("kwargs, message", [
    ({"program": 0x1008, "data": 0}, "program must be a multiple of 16, not 0x1008"),
    ({"program": 0, "data": 0x1010}, "data must be a multiple of 4096, not 0x1010"),
    ({"program": 0, "data": 0, "tables": 0x800}, "tables must be a multiple of 4096, not 0x800"),
    ({"program": -16, "data": 0}, "program must be a 64-bit device address, not -16"),
    ({"program": 0, "data": 1 << 64}, "data must be a 64-bit device address"),
])
def test_device_layout_refuses_misplaced_images(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeviceLayout(**kwargs)


def test_memory_images_refuse_overlap_and_register_writes_are_the_kernel_args():
    prog, values = _small_gemm()
    with pytest.raises(ValueError, match="overlap"):
        memory_images(prog, values, DeviceLayout(program=0x10, data=0))
    layout = DeviceLayout(program=0x1_0000_0010, data=0x2000, tables=0x5000)
    assert register_writes(layout, 7, lookup=True) == [
        (0x10, 0x10), (0x14, 1), (0x18, 7), (0x1C, 0), (0x20, 0x2000), (0x24, 0),
        (0x28, 0x5000), (0x2C, 0), (CTRL, AP_START)]
    assert len(register_writes(layout, 7, lookup=False)) == 7  # no tables argument
    with pytest.raises(ValueError, match=r"program_words must be below 268435456, not -1"):
        register_writes(layout, -1, lookup=False)


def test_driver_polls_reads_back_and_reports_status_and_timeout():
    prog, values = _small_gemm()
    kernel = _Kernel(delay=3)
    out = asyncio.run(KernelDriver(kernel).run(prog, values))
    assert kernel.writes[-1] == (CTRL, AP_START)
    # nothing ran: the outputs are the zeros of the image the driver wrote
    assert all(not v.any() for v in out.outputs.values()) and out.status == 0
    np.testing.assert_array_equal(out.dram, prog.dram_image(values))
    with pytest.raises(KernelError, match=r"status 0x9 \(command_error, bad_argument\)"):
        asyncio.run(KernelDriver(_Kernel(status=0x9)).run(prog, values))
    assert asyncio.run(KernelDriver(_Kernel(status=1)).run(prog, values, check=False)).errors \
        == ("command_error",)
    with pytest.raises(KernelTimeoutError, match="no ap_done in 5 reads"):
        asyncio.run(KernelDriver(_Kernel(delay=None), max_polls=5).run(prog, values))


def test_driver_refuses_a_transport_without_the_interface():
    with pytest.raises(TypeError, match="transport must implement InterruptTransport"):
        KernelDriver(_Kernel(), interrupt=True)
    with pytest.raises(TypeError, match="transport must implement Transport"):
        KernelDriver(object())
    with pytest.raises(ValueError, match="max_polls must be a positive integer, not 0"):
        KernelDriver(_Kernel(), max_polls=0)


def test_driver_waits_on_the_interrupt_and_refuses_a_busy_kernel():
    prog, values = _small_gemm()

    class Irq(_Kernel):
        def __init__(self, fires):
            super().__init__(delay=0)
            self.fires = fires

        async def wait_interrupt(self):
            return self.fires

    kernel = Irq(True)
    asyncio.run(KernelDriver(kernel, interrupt=True).run(prog, values))
    assert (GIE, 1) in kernel.writes and (IER, 1) in kernel.writes
    with pytest.raises(KernelTimeoutError, match="no interrupt"):
        asyncio.run(KernelDriver(Irq(False), interrupt=True).run(prog, values))
    busy = _Kernel()
    busy.regs[CTRL] = AP_START
    with pytest.raises(RuntimeError, match="the kernel is not idle"):
        asyncio.run(KernelDriver(busy).run(prog, values))
