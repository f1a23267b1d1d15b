"""Whole programs on the generated Verilog under Icarus and Verilator, against hwsim and torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwsim import isa
from hwsim.config import preset
from hwsim.engine import run
from hwsim.gemm import compile_gemm
from hwsim.timing import command_cycles
from rtl.cosim import available_simulators, run_bench

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

SHAPES = {
    "tiny": [(4, 4, 4), (5, 7, 3), (9, 6, 13), (1, 1, 1), (8, 12, 130), (3, 9, 2)],
    "small8": [(8, 8, 8), (11, 5, 17), (17, 19, 4)],
}


def _program_case(config, m, n, k, rng):
    a = rng.integers(-128, 128, (m, k), dtype=np.int64).astype(np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int64).astype(np.int8)
    prog = compile_gemm(m, n, k, config)
    return prog, {"A": a, "B": b}


@pytest.mark.parametrize("config_name", list(SHAPES))
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_dense_gemm_programs_match_hwsim_and_torch(sim, config_name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = preset(config_name)
    seed = 1234
    rng = np.random.default_rng(seed)
    cases = [(shape, *_program_case(config, *shape, rng)) for shape in SHAPES[config_name]]
    spec = {
        "latency": config.dram_latency_cycles,
        "bus_bytes": config.dram.bus_bytes,
        "bytes_per_cycle": config.dram_bytes_per_cycle,
        "seed": seed,
        "programs": [{"words": [f"{isa.encode(c):x}" for c in p.commands],
                      "dram": p.dram_image(v).tobytes().hex()} for _, p, v in cases],
    }
    results = run_bench(sim, config, spec, tag=f"gemm-seed{seed}", build_root=BUILD)
    for (shape, prog, values), got in zip(cases, results, strict=True):
        m, n, k = shape
        where = f"{sim}/{config_name} GEMM {m}x{n}x{k} (seed {seed})"
        model = run(prog, config, "functional", inputs=values)
        dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
        rtl_c = prog.tensors["C"].read(dram.copy())
        ref = torch.from_numpy(values["A"]).int() @ torch.from_numpy(values["B"]).int()
        assert got["error"] == 0, where
        np.testing.assert_array_equal(rtl_c, ref.numpy(), err_msg=f"{where}: RTL vs torch")
        np.testing.assert_array_equal(rtl_c, model.outputs["C"], err_msg=f"{where}: RTL vs hwsim")
        # cycles, command by command and in total
        assert got["retire"] == model.stats.retire_cycles, f"{where}: retire cycles differ"
        durations = [r - a + 1 for a, r in zip(got["accept"], got["retire"], strict=True)]
        assert durations == [command_cycles(c, config) for c in prog.commands], where
        assert got["retire"][-1] + 1 == model.stats.cycles
