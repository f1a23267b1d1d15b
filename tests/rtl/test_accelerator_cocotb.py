"""Whole programs on the generated Verilog under Icarus and Verilator, against hwsim and torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwsim.config import preset
from hwsim.engine import run
from reports.fidelity import command_end_cycles, cosim_programs, gemm_program_case
from rtl.cosim import available_simulators

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

SHAPES = {
    "tiny": [(4, 4, 4), (5, 7, 3), (9, 6, 13), (1, 1, 1), (8, 12, 130), (3, 9, 2)],
    "small8": [(8, 8, 8), (11, 5, 17), (17, 19, 4)],
}


@pytest.mark.parametrize("config_name", list(SHAPES))
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_dense_gemm_programs_match_hwsim_and_torch(sim, config_name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = preset(config_name)
    seed = 1234
    rng = np.random.default_rng(seed)
    cases = [gemm_program_case(config, *shape, rng) for shape in SHAPES[config_name]]
    results = cosim_programs(config, cases, sim=sim, seed=seed, build_root=BUILD,
                             tag=f"gemm-seed{seed}")
    for shape, (prog, values), got in zip(SHAPES[config_name], cases, results, strict=True):
        m, n, k = shape
        where = f"{sim}/{config_name} GEMM {m}x{n}x{k} (seed {seed})"
        model = run(prog, config, "functional", inputs=values)
        dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
        rtl_c = prog.tensors["C"].read(dram.copy())
        ref = torch.from_numpy(values["A"]).int() @ torch.from_numpy(values["B"]).int()
        assert got["error"] == 0, where
        np.testing.assert_array_equal(rtl_c, ref.numpy(), err_msg=f"{where}: RTL vs torch")
        np.testing.assert_array_equal(rtl_c, model.outputs["C"], err_msg=f"{where}: RTL vs hwsim")
        # cycles, command by command: when the controller accepted it, when its unit finished
        assert got["accept"] == model.stats.accept_cycles, f"{where}: accept cycles differ"
        ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
        assert ends == model.stats.retire_cycles, f"{where}: retire cycles differ"
        assert max(ends) + 1 == model.stats.cycles


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
