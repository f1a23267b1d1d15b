"""The host-controlled kernel (``rtl.kernel.SatmemKernel``, SAT-only ``tiny``) under Icarus and
Verilator, driven as XRT drives an ``ap_ctrl_hs`` kernel: ``cocotbext.axi.AxiLiteMaster`` on
``s_axi_control``, the program and its tensors in an ``AxiRam`` behind the fetcher's and the
DMA's masters. Outputs equal hwsim's functional run bit for bit; the register map behaves as
Vitis HLS's (ap_idle after reset, ap_done clear-on-read, ISR toggle-on-write, one interrupt per
run); a bad argument and a malformed program end the run with a status bit, not a hang.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataflow import compile_gemm, sparse_operands
from hwsim import isa
from hwsim.config import preset
from hwsim.engine import run
from rtl.axilite import STATUS_BITS
from rtl.cosim import available_simulators
from rtl.cosim.runner import run_block
from rtl.kernel import KERNEL_NAME, SatmemKernel, kernel_args

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"
PROGRAM_ADDR = 0x1010  # 16-byte aligned, not page aligned
DATA_BASE = 0x4000  # the tensors' base: a 4 KiB multiple, not 0, so the offset is exercised

GEMMS = [  # label, m, n, k, dataflow, N:M or None, AXI pause probability
    ("dense os", 5, 7, 9, "os", None, 0.0),
    ("2:4 ws, AXI pauses", 9, 6, 16, "ws", (2, 4), 0.3),
    ("2:8 os", 4, 5, 16, "os", (2, 8), 0.0),
]
CTRL_IDLE, CTRL_DONE_IDLE_READY = 0x4, 0xE


def _gemm(config, m, n, k, dataflow, sparsity, rng):
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    prog = compile_gemm(m, n, k, config, dataflow=dataflow, sparsity=sparsity)
    if sparsity is None:
        return prog, {"A": a, "B": b}
    ws_rows = config.array.rows if dataflow == "ws" else None
    return prog, sparse_operands(a, b, *sparsity, ws_rows=ws_rows)


def _run_spec(prog, values, pause=0.0, **over):
    return {"program_addr": PROGRAM_ADDR, "program": prog.binary().hex(),
            "data_base": DATA_BASE, "dram": prog.dram_image(values).tobytes().hex(),
            "pause": pause, **over}


def _expected_image(prog, values, config):
    model = run(prog, config, "functional", inputs=values)
    want = prog.dram_image(values)
    for name in prog.outputs:
        prog.tensors[name].write(want, model.outputs[name])
    return model, want


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_kernel_runs_gemms_through_s_axi_control_bit_equal_to_hwsim(sim):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = preset("tiny")
    seed = 19
    rng = np.random.default_rng(seed)
    cases = [(label, *_gemm(config, m, n, k, df, nm, rng), pause)
             for label, m, n, k, df, nm, pause in GEMMS]
    runs = [_run_spec(p, v, pause) for _, p, v, pause in cases]
    # the first program again: a second ap_start after a finished run works
    runs.append(_run_spec(cases[0][1], cases[0][2]))
    bad_prog, bad_values = cases[0][1], cases[0][2]
    # data not 4 KiB aligned: refused, nothing runs
    runs.append(_run_spec(bad_prog, bad_values, data_base=DATA_BASE + 0x10))
    runs.append(_run_spec(bad_prog, bad_values, words=0))  # an empty program
    # malformed: a HASH on a kernel without the lookup engine, after a valid program
    malformed = bad_prog.binary() + isa.encode_program(
        [isa.Hash(in_addr=0, p_addr=0, out_addr=0, table=0, tokens=1, chunks=1, width=8)])
    runs.append(_run_spec(bad_prog, bad_values, program=malformed.hex()))
    dram_bytes = max(p.dram_bytes for _, p, _, _ in cases)
    spec = {"mem_bytes": -(-(DATA_BASE + dram_bytes + 0x20) // 4096) * 4096, "seed": seed,
            "max_cycles": 100_000, "args": {a.name: a.offset for a in kernel_args(False)},
            "runs": runs}
    got = run_block(sim, lambda: SatmemKernel(config, lookup=False),
                    f"kernel-{config.name}-{config.key()}-sat", "kernel_bench", spec,
                    tag=f"kernel-seed{seed}", build_root=BUILD, top=KERNEL_NAME)

    regs = got["registers"]
    assert regs["ctrl_after_reset"] == CTRL_IDLE  # ap_idle only
    assert [regs[k] for k in ("gie", "ier", "isr", "status", "unmapped")] == [0] * 5
    assert regs["gie_ier_written"] == [1, 3]
    # ISR bits toggle on write (1, 1, 2, 3 written), the interrupt is GIE & any ISR bit
    assert regs["isr_toggles"] == [[1, 1], [0, 0], [2, 1], [1, 1]]
    assert regs["irq_gie_off"] == 0 and regs["isr_cleared"] == 0
    assert regs["arg_readback"] == 0x0123456789ABCDEF
    assert regs["arg_after_byte_write"] == 0x0123456789AB55EF  # WSTRB: byte 1 only
    assert regs["ctrl_end"] == CTRL_IDLE

    results = got["runs"]
    labels = [c[0] for c in cases] + ["dense os again"]
    for (label, prog, values), res in zip(
            [(c[0], c[1], c[2]) for c in cases] + [(labels[-1], cases[0][1], cases[0][2])],
            results, strict=False):
        where = f"{sim}: {label}"
        model, want = _expected_image(prog, values, config)
        assert res["finished"], where
        assert res["ctrl_running"] & 0x5 == 0x1, where  # ap_start held, not idle
        assert res["ctrl_done"] == CTRL_DONE_IDLE_READY, where
        assert res["ctrl_again"] == CTRL_IDLE, where  # ap_done and ap_ready clear on read
        assert res["isr"] == 1 and res["irq_after_clear"] == 0, where
        assert res["irq_rises"] == 1, where  # one ap_done per run
        assert res["status"] == 0, where
        dram = np.frombuffer(bytes.fromhex(res["dram"]), np.uint8)
        for name in prog.outputs:
            np.testing.assert_array_equal(prog.tensors[name].read(dram.copy()).view(np.uint8),
                                          model.outputs[name].view(np.uint8),
                                          err_msg=f"{where}: {name} RTL vs hwsim")
        np.testing.assert_array_equal(dram, want, err_msg=f"{where}: stray writes")
        # the run's cycles: at least hwsim's (AxiRam is no faster than its fixed latency
        # model on this bus), and the interrupt follows within the register accesses
        assert res["cycles"] >= len(prog.commands), where
        print(f"{where}: {res['cycles']} kernel cycles, hwsim {model.stats.cycles}")

    bad, empty, broken = results[len(cases) + 1:]
    image = cases[0][1].dram_image(cases[0][2])
    assert bad["finished"] and bad["status"] == 1 << STATUS_BITS["bad_argument"]
    assert bad["irq_rises"] == 1
    # nothing ran: the (misplaced) image is as written
    np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(bad["dram"]), np.uint8), image)
    assert empty["finished"] and empty["status"] == 0 and empty["irq_rises"] == 1
    for res in (bad, empty, broken):
        # these end within the first control read: ap_done shows on exactly one read (COR)
        reads = [res[k] for k in ("ctrl_running", "ctrl_done", "ctrl_again")]
        assert sum(r >> 1 & 1 for r in reads) == 1 and reads[-1] == CTRL_IDLE, reads
    np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(empty["dram"]), np.uint8), image)
    assert broken["finished"], "a malformed program must end the run, not hang"
    assert broken["status"] == 1 << STATUS_BITS["command_error"]
    assert broken["irq_rises"] == 1
    _, want = _expected_image(cases[0][1], cases[0][2], config)
    np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(broken["dram"]), np.uint8), want,
                                  err_msg="the valid commands before the bad one ran")
