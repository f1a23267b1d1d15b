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
from hwsim.dram import channel_interleave, channel_map
from hwsim.engine import run
from hwsim.program import Program
from reports.fidelity import gather_program_case, lookup_test_config, memory_layer_case
from rtl.axilite import CTRL, GIE, IER, ISR, STATUS, STATUS_BITS
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
    channel_images,
    image_sizes,
    join_channels,
    memory_images,
    register_writes,
)
from rtl.kernel import KERNEL_NAME, SatmemKernel
from tests.rtl.test_channels import two_channel_tiny
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


def _run(sim, config, jobs, tag, lookup=False, banks=None):
    """Run ``jobs`` through the driver on ``config``'s kernel; ``banks``: ``(bank_bytes,
    mem_bytes)`` for a kernel of several DRAM channels, one memory of ``mem_bytes`` per
    channel master at device address ``c * bank_bytes``."""
    run_dir = BUILD / "cocotb" / f"driver-{sim}-{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    jobs_path, out_path = run_dir / "jobs.pkl", run_dir / "results.pkl"
    with open(jobs_path, "wb") as f:
        pickle.dump(jobs, f)
    out_path.unlink(missing_ok=True)
    spec = {"seed": SEED, "lookup": lookup, "jobs": str(jobs_path), "out": str(out_path)}
    if banks is None:
        mem_bytes = max(j["layout"].size(j["program"]) + min(j["layout"].program,
                                                             j["layout"].data) for j in jobs)
        spec["mem_bytes"] = -(-mem_bytes // 4096) * 4096
    else:
        config_path = run_dir / "config.pkl"
        with open(config_path, "wb") as f:
            pickle.dump(config, f)
        spec.update(mem_bytes=banks[1], bank_bytes=banks[0], config=str(config_path))
    # the SAT-only build is test_kernel_cocotb's
    name = f"kernel-{config.name}-{config.key()}" + ("" if lookup else "-sat")
    got = run_block(sim, lambda: SatmemKernel(config, lookup=lookup), name,
                    "tests.rtl.driver_bench", spec, tag=f"driver-seed{SEED}", build_root=BUILD,
                    top=KERNEL_NAME)
    assert got["jobs"] == len(jobs)
    with open(out_path, "rb") as f:
        return pickle.load(f)


def _check_job(where, res, prog, values, config, interrupt, lookup=False, hwsim_cycles=True):
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
    if not lookup and hwsim_cycles:  # hwsim's lookup tiers are not AxiRam's timing
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

BANK = 1 << 34  # device address of DRAM channel c's bank: c * 16 GiB, as XRT's DDR banks


def _bank_images(config, prog, image, layout, mem_bytes):
    """Every byte each channel's bank must hold after a run whose DRAM image is ``image``:
    zero but for the command words (bank 0) and channel c's bytes of the image, each at its
    channel address (hwsim's channel map, byte by byte) from ``layout.data[c]``."""
    banks = np.zeros((config.dram.channels, mem_bytes), np.uint8)
    ch, local = channel_map(np.arange(image.size), config)
    for c, base in enumerate(layout.data):
        assert base // BANK == c
        banks[c, base % BANK + local[ch == c]] = image[ch == c]
    words = np.frombuffer(prog.binary(), np.uint8)
    banks[0, layout.program:layout.program + words.size] = words
    return banks


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_driver_runs_a_gemm_through_the_two_channel_kernel_one_buffer_per_channel(sim):
    """tiny with two DRAM channels: ``m_axi_ch0`` and ``m_axi_ch1``, each its own ``AxiRam``
    (its bank, 16 GiB apart in device addresses: the bases' high words are set), ``data0`` and
    ``data1``. The driver splits the DRAM image by hwsim's channel map and gathers the outputs
    back: bit-equal to hwsim, and each bank holds exactly what the channel map puts there. A
    ``data1`` off its 4 KiB page (bit 4 flipped on its way to the register) runs nothing."""
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = two_channel_tiny()
    rng = np.random.default_rng(SEED)
    prog, values = _gemm(config, 12, 10, 20, rng)  # a DRAM image over several 256-byte chunks
    assert prog.dram_bytes >= 4 * channel_interleave(config)
    mem_bytes = 1 << 15
    layouts = [("dense gemm, polled", DeviceLayout(program=0, data=(0x1000, BANK + 0x3000)),
                False, 0.0),
               ("again, moved, interrupt, AXI pauses",
                DeviceLayout(program=0x5010, data=(0x2000, BANK)), True, 0.3)]
    jobs = [{"label": label, "program": prog, "values": values, "layout": layout,
             "interrupt": irq, "pause": pause, "max_polls": 20_000, "max_cycles": 100_000}
            for label, layout, irq, pause in layouts]
    jobs.append({**jobs[0], "label": "data1 misaligned", "flip": {0x28: 0x10}})
    results = _run(sim, config, jobs, "tiny-2ch", banks=(BANK, mem_bytes))
    model = run(prog, config, "functional", inputs=values)
    want = prog.dram_image(values)
    for name in prog.outputs:
        prog.tensors[name].write(want, model.outputs[name])
    bad = results.pop()
    assert bad["status"] == 1 << STATUS_BITS["bad_argument"] and "bad_argument" in bad["error"]
    assert bad["irq_rises"] == 0 and bad["ctrl_after"] == AP_IDLE and bad["cycles"] == 0
    got = np.stack([np.frombuffer(b, np.uint8) for b in bad["banks"]])
    np.testing.assert_array_equal(got, _bank_images(config, prog, prog.dram_image(values),
                                                    jobs[0]["layout"], mem_bytes),
                                  err_msg=f"{sim}: a refused run wrote nothing")
    for job, res in zip(jobs[:-1], results, strict=True):
        where = f"{sim}/tiny_2ch: {job['label']}"
        _check_job(where, res, prog, values, config, job["interrupt"], hwsim_cycles=False)
        assert [v for o, v in register_writes(job["layout"], len(prog), lookup=False)
                if o == 0x2C] == [BANK >> 32]  # data1's high word
        got = np.stack([np.frombuffer(b, np.uint8) for b in res["banks"]])
        np.testing.assert_array_equal(got, _bank_images(config, prog, want, job["layout"],
                                                        mem_bytes),
                                      err_msg=f"{where}: a bank's bytes")


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
        value = self.regs.get(offset, 0) if offset != STATUS else self.status
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


# -- several DRAM channels on the host side: the image split and the layout --------------------

@pytest.mark.parametrize("config_name", ["tiny_2ch", "vcu1525"])
@pytest.mark.parametrize("nbytes", [0, 1, 256, 257, 3 * 256 + 5, 12345])
def test_channel_images_put_each_byte_where_hwsims_channel_map_does(config_name, nbytes):
    config = two_channel_tiny() if config_name == "tiny_2ch" else preset("vcu1525")
    n, g = config.dram.channels, channel_interleave(config)
    image = np.random.default_rng(nbytes).integers(0, 256, nbytes).astype(np.uint8)
    parts = channel_images(image, config)
    assert len(parts) == n and all(p.dtype == np.uint8 and p.size % g == 0 for p in parts)
    ch, local = channel_map(np.arange(nbytes), config)  # the oracle, byte by byte
    for c, part in enumerate(parts):
        np.testing.assert_array_equal(part[local[ch == c]], image[ch == c])
        assert part.size == -(-(local[ch == c].max(initial=-1) + 1) // g) * g
    np.testing.assert_array_equal(join_channels(parts, config, nbytes), image)
    assert sum(p.size for p in parts) == -(-nbytes // g) * g  # only the last chunk's padding


def test_image_sizes_and_packed_layout_of_a_two_channel_program():
    config = two_channel_tiny()
    prog, values = _gemm(config, 12, 10, 20, np.random.default_rng(1))  # 1,024 bytes of DRAM
    sizes = image_sizes(prog, config)
    assert sizes == {"program": 16 * len(prog), "data0": 512, "data1": 512}
    assert image_sizes(prog) == {"program": 16 * len(prog), "data": 1024}
    layout = DeviceLayout.pack(prog, 0x2000, config)
    assert layout.program == 0x2000 and layout.data == (0x3000, 0x4000)
    assert layout.bases == layout.data and layout.channels == 2
    assert layout.size(prog, config) == 0x4000 + 512 - 0x2000
    images = memory_images(prog, values, layout, config)
    image = prog.dram_image(values)
    assert [a for a, _ in images] == [0x2000, 0x3000, 0x4000]
    assert images[0][1] == prog.binary()
    assert [np.frombuffer(d, np.uint8).tolist() for _, d in images[1:]] \
        == [p.tolist() for p in channel_images(image, config)]
    # the arguments: program, program_words, data0, data1 (high words of a bank 16 GiB up)
    far = DeviceLayout(program=0x10, data=(0x1000, BANK + 0x2000))
    assert register_writes(far, 9, lookup=False) == [
        (0x10, 0x10), (0x14, 0), (0x18, 9), (0x1C, 0), (0x20, 0x1000), (0x24, 0),
        (0x28, 0x2000), (0x2C, 4), (CTRL, AP_START)]
    assert register_writes(DeviceLayout(0, (0, BANK), tables=0x8000), 1, lookup=True)[-3:-1] \
        == [(0x30, 0x8000), (0x34, 0)]


@pytest.mark.parametrize("kwargs, message", [
    ({"program": 0, "data": (0x1000,)}, r"data must be one base, or a tuple of one per DRAM "
                                        r"channel \(at least two\), not \(4096,\)"),
    ({"program": 0, "data": (0x1000, 0x2010)}, r"data\[1\] must be a multiple of 4096, "
                                               r"not 0x2010"),
    ({"program": 0, "data": (0, -4096)}, r"data\[1\] must be a 64-bit device address"),
])
def test_device_layout_refuses_bad_channel_bases(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeviceLayout(**kwargs)


def test_layouts_and_configs_must_agree_on_the_channels():
    config = two_channel_tiny()
    prog, values = _gemm(config, 12, 10, 20, np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"the layout has 1 DRAM base\(s\), the kernel's config "
                                         r"2 DRAM channel\(s\)"):
        memory_images(prog, values, DeviceLayout(program=0, data=0x1000), config)
    with pytest.raises(ValueError, match=r"the layout has 2 DRAM base\(s\), the kernel's config "
                                         r"1 DRAM channel\(s\)"):
        memory_images(prog, values, DeviceLayout(program=0, data=(0x1000, 0x2000)))
    with pytest.raises(ValueError, match="overlap"):
        memory_images(prog, values, DeviceLayout(program=0, data=(0x1000, 0x1000)), config)
    with pytest.raises(ValueError, match="tables has no default with several DRAM channels"):
        register_writes(DeviceLayout(program=0, data=(0, 0x1000)), 1, lookup=True)
    with pytest.raises(ValueError, match="the driver runs lookup programs on kernels of one "
                                         "DRAM channel only, not 2"):
        KernelDriver(_Kernel(), config, lookup=True)


class _Banked(_Kernel):
    """:class:`_Kernel` with a memory bank per 16 GiB of device addresses."""

    def __init__(self):
        super().__init__(delay=1)
        self.banks = {}

    async def write_mem(self, addr, data):
        bank = self.banks.setdefault(addr // BANK, bytearray(1 << 14))
        bank[addr % BANK:addr % BANK + len(data)] = data

    async def read_mem(self, addr, nbytes):
        return bytes(self.banks[addr // BANK][addr % BANK:addr % BANK + nbytes])


def test_driver_writes_each_channels_share_to_its_bank_and_gathers_the_image_back():
    config = two_channel_tiny()
    prog, values = _gemm(config, 12, 10, 20, np.random.default_rng(3))
    layout = DeviceLayout(program=0x10, data=(0x1000, BANK + 0x2000))
    kernel = _Banked()
    out = asyncio.run(KernelDriver(kernel, config).run(prog, values, layout))
    image = prog.dram_image(values)
    want = _bank_images(config, prog, image, layout, 1 << 14)
    for c in range(2):
        np.testing.assert_array_equal(np.frombuffer(kernel.banks[c], np.uint8), want[c])
    np.testing.assert_array_equal(out.dram, image)  # gathered back: nothing ran
    assert [w for w in kernel.writes if 0x20 <= w[0] < 0x30] == [
        (0x20, 0x1000), (0x24, 0), (0x28, 0x2000), (0x2C, 4)]
    with pytest.raises(ValueError, match=r"the layout has 1 DRAM base\(s\)"):
        asyncio.run(KernelDriver(_Banked(), config).run(prog, values, DeviceLayout(0, 0x1000)))
