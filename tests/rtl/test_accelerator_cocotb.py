"""Whole programs on the generated Verilog under Icarus and Verilator, against hwsim and torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwsim.config import preset
from hwsim.engine import run
from hwsim.numerics import matmul_error_bound
from reports.fidelity import command_end_cycles, cosim_programs, gemm_program_case
from rtl.cosim import available_simulators

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

SHAPES = {  # (m, n, k, dataflow)
    "tiny": [(4, 4, 4, "os"), (5, 7, 3, "os"), (9, 6, 13, "ws"), (1, 1, 1, "os"),
             (8, 12, 130, "os"), (3, 9, 2, "ws"), (10, 5, 7, "ws")],
    "small8": [(8, 8, 8, "os"), (11, 5, 17, "os"), (17, 19, 4, "ws")],
    "tiny_fp16": [(4, 4, 4, "os"), (6, 5, 19, "os"), (7, 9, 11, "ws")],
    # dram.dma "wide": whole contiguous entries several a request (ACT/WGT/IDX 4 a request at
    # int8, ACT/WGT 2 and IDX 4 at fp16), the tile-blocked cases mostly so; every other case
    # is blocked (_blocked)
    "tiny_wide": [(9, 6, 13, "ws"), (9, 6, 13, "ws"), (8, 12, 130, "os"), (11, 5, 17, "os"),
                  (17, 19, 4, "ws"), (3, 9, 2, "ws")],
    "tiny_fp16_wide": [(10, 5, 7, "ws"), (10, 5, 7, "ws"), (6, 5, 19, "os"), (8, 12, 30, "os")],
}


def _config(name):
    base = preset("small8" if name.startswith("small8") else "tiny")
    if "fp16" in name:
        base = base.replace(array__dtype="fp16")
    if name.endswith("_wide"):
        base = base.replace(dram__dma="wide")
    return base.replace(name=name)


def _blocked(config_name, i):
    """Case ``i`` of a ``_wide`` config in the tile-blocked layouts: every other one."""
    return config_name.endswith("_wide") and i % 2 == 1


def test_wide_cases_load_several_entries_a_request():
    """The ``_wide`` cases exercise what they are for: LOADs of several entries a request (k
    = 4 and, at fp16, 2), beside LOADs of one entry."""
    from hwsim import isa
    from hwsim.program import COL
    from hwsim.units.dma import load_beats

    for name in ("tiny_wide", "tiny_fp16_wide"):
        config = _config(name)
        rng = np.random.default_rng(0)
        beats = []
        for i, (m, n, k, df) in enumerate(SHAPES[name]):
            prog, _ = gemm_program_case(config, m, n, k, rng, df, blocked=_blocked(name, i))
            t = prog.table[prog.table[:, COL["opcode"]] == isa.Opcode.LOAD]
            beats += list(load_beats(True, t[:, COL["buf"]], t[:, COL["sram_addr"]],
                                     t[:, COL["elems"]], t[:, COL["stride"]], config)
                          * (t[:, COL["rows"]] > 1))
        want = {1, 4} if name == "tiny_wide" else {1, 2}  # 1: several entries, one a request
        assert want <= set(beats), (name, set(beats))


@pytest.mark.parametrize("config_name", list(SHAPES))
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_dense_gemm_programs_match_hwsim_and_torch(sim, config_name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = _config(config_name)
    seed = 1234
    rng = np.random.default_rng(seed)
    cases = [gemm_program_case(config, m, n, k, rng, df, blocked=_blocked(config_name, i))
             for i, (m, n, k, df) in enumerate(SHAPES[config_name])]
    results = cosim_programs(config, cases, sim=sim, seed=seed, build_root=BUILD,
                             tag=f"gemm-seed{seed}")
    for shape, (prog, values), got in zip(SHAPES[config_name], cases, results, strict=True):
        m, n, k, df = shape
        where = f"{sim}/{config_name} {df} GEMM {m}x{n}x{k} (seed {seed})"
        model = run(prog, config, "functional", inputs=values)
        dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
        rtl_c = prog.tensors["C"].read(dram.copy())
        assert got["error"] == 0, where
        if config.array.dtype == "int8":
            ref = torch.from_numpy(values["A"]).int() @ torch.from_numpy(values["B"]).int()
            np.testing.assert_array_equal(rtl_c, ref.numpy(), err_msg=f"{where}: RTL vs torch")
        else:  # torch sums in another order: within the stated fp32 accumulation bound
            a, b = values["A"].astype(np.float64), values["B"].astype(np.float64)
            ref = torch.from_numpy(values["A"]).float() @ torch.from_numpy(values["B"]).float()
            bound = 2 * matmul_error_bound(values["A"], values["B"])
            assert (np.abs(rtl_c - ref.numpy()) <= bound + 1e-30).all(), where
            assert (np.abs(rtl_c - a @ b) <= bound / 2 + 1e-30).all(), where
        # bit for bit with hwsim
        np.testing.assert_array_equal(rtl_c.view(np.uint32), model.outputs["C"].view(np.uint32),
                                      err_msg=f"{where}: RTL vs hwsim")
        # cycles, command by command: when the controller accepted it, when its unit finished
        assert got["accept"] == model.stats.accept_cycles, f"{where}: accept cycles differ"
        ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
        assert ends == model.stats.retire_cycles, f"{where}: retire cycles differ"
        assert max(ends) + 1 == model.stats.cycles


SPARSE = {  # (m, n, k, (N, M), dataflow)
    "tiny": [(4, 4, 16, (2, 8), "os"), (5, 7, 13, (2, 4), "os"), (9, 6, 40, (1, 8), "os"),
             (8, 12, 130, (2, 8), "os"), (4, 4, 16, (2, 8), "ws"), (6, 7, 21, (2, 4), "ws"),
             (9, 5, 40, (1, 8), "ws")],
    "small8": [(8, 8, 64, (2, 8), "os"), (11, 5, 30, (2, 4), "os"), (10, 9, 70, (2, 8), "ws"),
               (5, 3, 19, (1, 8), "ws")],
    "tiny_fp16": [(4, 4, 16, (2, 8), "os"), (6, 5, 37, (1, 8), "os"), (7, 3, 12, (2, 4), "os"),
                  (5, 6, 30, (2, 8), "ws"), (3, 4, 11, (2, 4), "ws")],
    "tiny_wide": [(8, 12, 130, (2, 8), "os"), (8, 12, 130, (2, 8), "os"),
                  (6, 7, 21, (2, 4), "ws"), (9, 5, 40, (1, 8), "ws"), (17, 19, 40, (2, 8), "ws")],
    "tiny_fp16_wide": [(5, 6, 30, (2, 8), "ws"), (5, 6, 30, (2, 8), "ws"),
                       (7, 3, 12, (2, 4), "os")],
}


@pytest.mark.parametrize("config_name", list(SPARSE))
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_sparse_gemm_programs_match_hwsim_and_torch(sim, config_name):
    """N:M tiles: compressed weights and indices loaded from DRAM, activations selected by
    index in the PEs; outputs bit-equal to hwsim and every command's cycles equal."""
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = _config(config_name)
    seed = 4321
    rng = np.random.default_rng(seed)
    cases = [gemm_program_case(config, m, n, k, rng, df, sparsity=nm,
                               blocked=_blocked(config_name, i))
             for i, (m, n, k, nm, df) in enumerate(SPARSE[config_name])]
    results = cosim_programs(config, cases, sim=sim, seed=seed, build_root=BUILD,
                             tag=f"sparse-seed{seed}")
    for (m, n, k, nm, df), (prog, values), got in zip(SPARSE[config_name], cases, results,
                                                      strict=True):
        where = f"{sim}/{config_name} {df} {nm[0]}:{nm[1]} GEMM {m}x{n}x{k} (seed {seed})"
        model = run(prog, config, "functional", inputs=values)
        dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
        rtl_c = prog.tensors["C"].read(dram.copy())
        assert got["error"] == 0, where
        a_dense = values["A_dense"]
        if config.array.dtype == "int8":
            ref = torch.from_numpy(a_dense).int() @ torch.from_numpy(values["B"]).int()
            np.testing.assert_array_equal(rtl_c, ref.numpy(), err_msg=f"{where}: RTL vs torch")
        else:
            a, b = a_dense.astype(np.float64), values["B"].astype(np.float64)
            bound = matmul_error_bound(a_dense, values["B"])
            assert (np.abs(rtl_c - a @ b) <= bound + 1e-30).all(), where
        np.testing.assert_array_equal(rtl_c.view(np.uint32), model.outputs["C"].view(np.uint32),
                                      err_msg=f"{where}: RTL vs hwsim")
        assert got["accept"] == model.stats.accept_cycles, f"{where}: accept cycles differ"
        ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
        assert ends == model.stats.retire_cycles, f"{where}: retire cycles differ"


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_random_stalls_change_cycles_not_values(sim):
    """Commands withheld and memory backpressure at random: the semaphores keep the results."""
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = preset("tiny")
    seed = 77
    rng = np.random.default_rng(seed)
    cases = [gemm_program_case(config, *shape, rng) for shape in [(9, 7, 21), (4, 13, 5)]]
    from hwsim import isa

    spec_cases = []
    for prog, values in cases:
        spec_cases.append((prog, values))
    results = cosim_programs(config, spec_cases, sim=sim, seed=seed, build_root=BUILD,
                             tag=f"stall-seed{seed}", idle=0.3, backpressure=0.4)
    for (prog, values), got in zip(cases, results, strict=True):
        model = run(prog, config, "functional", inputs=values)
        rtl_c = prog.tensors["C"].read(np.frombuffer(bytes.fromhex(got["dram"]), np.uint8).copy())
        np.testing.assert_array_equal(rtl_c, model.outputs["C"], err_msg=f"seed {seed}")
        assert got["error"] == 0
        assert max(command_end_cycles(prog, [tuple(r) for r in got["retires"]])) + 1 \
            > model.stats.cycles  # the stalls cost cycles
        assert isa.Sync not in {type(c) for c in prog.commands}


def _prune_update_program(config, rng):
    """PRUNE a weight tile 2:8 on the SORE and run an SGD-momentum UPDATE on the vector unit,
    storing the results: the two non-GEMM units through the whole top."""
    from hwsim import isa
    from hwsim.numerics import f32_bits
    from hwsim.program import Program, TensorRef

    c, lanes = config.array.cols, config.vector.lanes
    k, n = 16, 10
    e = -(-n // lanes)
    row = 4 * lanes
    t = {"W": TensorRef(0, (k, c), "int8"), "V": TensorRef(64, (k // 4, c), "int8"),
         "I": TensorRef(128, (k // 4, c), "int8")}
    for i, name in enumerate(("w", "g", "v")):
        t[name] = TensorRef(192 + 64 * i, (1, n), "fp32")
    t["o"] = TensorRef(384, (1, n), "fp16")
    cmds = [
        isa.SetReg(0, int(f32_bits(np.float32(0.05)))),
        isa.SetReg(1, int(f32_bits(np.float32(0.9)))),
        isa.SetReg(2, int(f32_bits(np.float32(1e-3)))),
        isa.Load(isa.Buffer.WGT, 0, 0, k, c, c, signal=1),
        isa.Prune(isa.Buffer.WGT, 0, 32, 0, k, 1, 2, 3, axis=1, wait=1, signal=2),
        isa.Store(isa.Buffer.WGT, 32, 64, k // 4, c, c, wait=2, signal=4),
        isa.Store(isa.Buffer.IDX, 0, 128, k // 4, c, c, wait=4),
    ]
    for i, name in enumerate("wgv"):
        cmds.append(isa.Load(isa.Buffer.VEC, 8 * i, t[name].addr, e, lanes, row,
                             signal=1 << 5 if name == "v" else 0))
    cmds += [
        isa.Update(0, 8, 16, 24, n, optimizer=1, hp_base=0, wait=1 << 5, signal=1 << 6),
        isa.Store(isa.Buffer.VEC, 0, t["w"].addr, e, lanes, row, wait=1 << 6, signal=1 << 7),
        isa.Store(isa.Buffer.VEC, 16, t["v"].addr, e, lanes, row, wait=1 << 7, signal=1 << 3),
        isa.Store(isa.Buffer.VEC, 24, t["o"].addr, 2, lanes, row, wait=1 << 3),
    ]
    values = {"W": rng.integers(-128, 128, (k, c)).astype(np.int8)}
    for name in "wgv":
        values[name] = rng.standard_normal((1, n)).astype(np.float32)
    prog = Program(cmds, 448, t, inputs=("W", "w", "g", "v"), outputs=("V", "I", "w", "v", "o"))
    return prog, values


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_prune_and_update_programs_match_hwsim(sim):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = preset("tiny")
    seed = 99
    prog, values = _prune_update_program(config, np.random.default_rng(seed))
    got = cosim_programs(config, [(prog, values)], sim=sim, seed=seed, build_root=BUILD,
                         tag=f"prune-update-seed{seed}")[0]
    model = run(prog, config, "functional", inputs=values)
    dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
    assert got["error"] == 0
    for name in prog.outputs:
        rtl = prog.tensors[name].read(dram.copy())
        np.testing.assert_array_equal(rtl.view(np.uint8), model.outputs[name].view(np.uint8),
                                      err_msg=f"{sim}: {name} RTL vs hwsim (seed {seed})")
    assert got["accept"] == model.stats.accept_cycles
    assert command_end_cycles(prog, [tuple(r) for r in got["retires"]]) == \
        model.stats.retire_cycles
