"""The AXI4 top (``write_verilog(..., port="axi4")``) under Icarus and Verilator, its DMA's
master served by ``cocotbext.axi.AxiRam``: SAT programs give hwsim's outputs bit for bit. tiny
runs on the lookup test config's top (the build ``test_lookup_axi_cocotb.py`` uses, which tests
its second master; here that master stays idle and tied off), small8 on a SAT-only top
(``lookup=False``).

Cycles differ from hwsim's (its fixed-latency memory model is not AxiRam's timing): they are
printed (``pytest -s``), not compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataflow import compile_gemm, sparse_operands
from hwsim import isa
from hwsim.config import preset
from hwsim.engine import run
from hwsim.program import Program, TensorRef
from reports.fidelity import lookup_test_config
from rtl.cosim import available_simulators, run_bench

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

GEMMS = {  # label: (m, n, k, dataflow, sparsity (N, M) or None, AXI pause probability)
    "tiny": [("dense os", 5, 7, 9, "os", None, 0.0), ("dense ws", 9, 6, 13, "ws", None, 0.0),
             ("2:4 os", 5, 7, 13, "os", (2, 4), 0.0), ("2:8 ws", 4, 4, 16, "ws", (2, 8), 0.0),
             ("dense os, AXI pauses", 8, 6, 11, "os", None, 0.3),
             ("2:4 os, AXI pauses", 6, 5, 14, "os", (2, 4), 0.3)],
    "small8": [("dense os", 11, 5, 17, "os", None, 0.0), ("dense ws", 17, 19, 4, "ws", None, 0.0),
               ("2:4 os", 11, 5, 30, "os", (2, 4), 0.0),
               ("2:8 ws, AXI pauses", 10, 9, 70, "ws", (2, 8), 0.3)],
}
RUNS = [("icarus", "tiny"), ("verilator", "tiny"), ("verilator", "small8")]
LOOKUP_TOPS = {"tiny"}  # configs whose top carries the lookup engine (lookup_test_config)


def _gemm_case(config, m, n, k, dataflow, sparsity, rng):
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    prog = compile_gemm(m, n, k, config, dataflow=dataflow, sparsity=sparsity)
    if sparsity is None:
        return prog, {"A": a, "B": b}
    ws_rows = config.array.rows if dataflow == "ws" else None
    return prog, sparse_operands(a, b, *sparsity, ws_rows=ws_rows)


def _copy_case(config, rng):
    """LOAD then STORE of ACC (int32, a full bus word per row) and WGT rows at unaligned
    addresses, with a read across the 4 KiB boundary and a write across the 8 KiB one: the
    bridge issues those as two single-beat bursts."""
    c, rows = config.array.cols, 8
    xa = 4096 - 3 * 4 * c + 5
    ya = 8192 - 4 * 4 * c + 6
    wa, va = 64, ya + rows * 4 * c + 9
    t = {"X": TensorRef(xa, (rows, c), "int32"), "Y": TensorRef(ya, (rows, c), "int32"),
         "w": TensorRef(wa, (rows, c), "int8"), "v": TensorRef(va, (rows, c), "int8")}
    cmds = [isa.Load(isa.Buffer.ACC, 0, xa, rows, c, 4 * c, signal=1),
            isa.Load(isa.Buffer.WGT, 0, wa, rows, c, c, signal=2),
            isa.Store(isa.Buffer.ACC, 0, ya, rows, c, 4 * c, wait=1),
            isa.Store(isa.Buffer.WGT, 0, va, rows, c, c, wait=2)]
    values = {"X": rng.integers(-2**31, 2**31, (rows, c)).astype(np.int32),
              "w": rng.integers(-128, 128, (rows, c)).astype(np.int8)}
    return Program(cmds, va + rows * c + 7, t, inputs=("X", "w"), outputs=("Y", "v")), values


def _page_splits(bursts, bus):
    """Pairs of one-beat bursts at ``page - bus`` and ``page`` (a straddling request split at
    a 4 KiB boundary)."""
    return sum(1 for (a0, l0), (a1, l1) in zip(bursts, bursts[1:], strict=False)
               if l0 == l1 == 0 and a1 % 4096 == 0 and a0 == a1 - bus)


@pytest.mark.parametrize("sim,config_name", RUNS)
def test_axi_top_runs_programs_bit_equal_to_hwsim(sim, config_name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    lookup = config_name in LOOKUP_TOPS
    config = lookup_test_config(config_name) if lookup else preset(config_name)
    bus = config.dram.bus_bytes
    seed = 2024
    rng = np.random.default_rng(seed)
    cases = [(label, *_gemm_case(config, m, n, k, df, nm, rng), pause)
             for label, m, n, k, df, nm, pause in GEMMS[config_name]]
    cases.append(("copy across 4 KiB pages", *_copy_case(config, rng), 0.0))
    mem_bytes = -(-(max(p.dram_bytes for _, p, _, _ in cases) + 2 * bus) // 4096) * 4096
    spec = {"bus_bytes": bus, "mem_bytes": mem_bytes, "seed": seed, "max_cycles": 200_000,
            "programs": [{"words": [f"{isa.encode(c):x}" for c in p.commands],
                          "dram": p.dram_image(v).tobytes().hex(), "pause": pause}
                         for _, p, v, pause in cases]}
    results = run_bench(sim, config, spec, tag=f"axi-seed{seed}", build_root=BUILD,
                        module="axi_bench", port="axi4", lookup=lookup)
    design = f"{sim}-{config.name}-{config.key()}-axi4{'' if lookup else '-sat'}"
    manifest = json.loads((BUILD / "cocotb" / design / "src/manifest.json").read_text())
    assert manifest["port"] == "axi4" and manifest["axi4"]["data_bits"] == 8 * bus
    assert "m_axi_awaddr" in manifest["ports"] and "mem_rd_req" not in manifest["ports"]
    assert ("m_axi_lk_araddr" in manifest["ports"]) == ("lookup" in manifest["axi4"]) == lookup

    rows = []
    for (label, prog, values, _), got in zip(cases, results, strict=True):
        where = f"{sim}/{config_name} {label}"
        model = run(prog, config, "functional", inputs=values)
        assert got["error"] == 0 and got["axi_error"] == 0, where
        assert len(got["accept"]) == len(prog.commands), where
        assert sum(bin(mask).count("1") for _, mask in got["retires"]) == len(prog.commands)
        dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8).copy()
        for name in prog.outputs:
            np.testing.assert_array_equal(
                prog.tensors[name].read(dram.copy()).view(np.uint8),
                model.outputs[name].view(np.uint8), err_msg=f"{where}: {name} RTL vs hwsim")
        # nothing else written: the whole memory is the inputs plus hwsim's outputs
        want = prog.dram_image(values)
        for name in prog.outputs:
            prog.tensors[name].write(want, model.outputs[name])
        np.testing.assert_array_equal(dram, want, err_msg=f"{where}: stray writes")
        for addr, blen in got["ar"] + got["aw"]:
            assert addr % bus == 0 and blen in (0, 1), f"{where}: burst {addr:#x} len {blen}"
            assert addr // 4096 == (addr + (blen + 1) * bus - 1) // 4096, where
        if label.startswith("copy"):
            assert _page_splits(got["ar"], bus) >= 1 and _page_splits(got["aw"], bus) >= 1
        retired = max(c for c, _ in got["retires"]) + 1
        rows.append((label, model.stats.cycles, retired, got["idle_cycle"] + 1,
                     len(got["ar"]), len(got["aw"])))
    print(f"\n{sim}/{config_name}: cycles, hwsim fixed-latency model vs AXI top on AxiRam")
    print(f"{'program':<26}{'hwsim':>8}{'retired':>9}{'idle':>7}{'AR':>6}{'AW':>6}")
    for label, *nums in rows:
        print(f"{label:<26}" + "".join(f"{x:>{w}}" for x, w in zip(nums, (8, 9, 7, 6, 6),
                                                                    strict=True)))
