"""The lookup engine's RTL under Icarus and Verilator against hwsim and MemoryFormer's reference:
HASH and GATHER programs over every tier, values bit for bit with hwsim, every command's accept
and finish cycle equal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms.memoryformer import MemoryLayer
from hwsim.engine import run
from hwsim.numerics import CHUNK_WEIGHT_MAX_REL_ERROR
from reports.fidelity import (
    LOOKUP_TIERS,
    command_end_cycles,
    cosim_programs,
    gather_program_case,
    lookup_test_config,
    memory_layer_case,
)
from rtl.cosim import available_simulators

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

GATHERS = {  # (tokens, chunks, h, tier): the rows of a window of 16 or 32 slots, every tier
    "tiny": [(3, 4, 16, 0), (2, 5, 32, 1), (4, 3, 16, 2), (1, 6, 32, 3), (6, 2, 16, 0),
             (1, 1, 32, 1)],
    "small8": [(3, 4, 16, 0), (2, 3, 32, 3), (4, 2, 32, 1)],
}
LAYERS = {  # (tokens, d, h, tau, official, t, tier): HASH then GATHER
    "tiny": [(3, 16, 16, 4, False, 1.0, 0), (2, 24, 32, 8, True, 1.0, 1),
             (5, 12, 16, 3, False, 0.5, 3), (1, 20, 16, 10, True, 2.0, 2),
             (2, 4, 16, 2, False, 1.0, 0)],
    "small8": [(3, 16, 16, 8, False, 1.0, 2), (4, 30, 32, 10, True, 1.0, 0),
               (9, 8, 16, 4, False, 1.0, 3)],
}


def _check_run(where, prog, config, values, got, outputs):
    """RTL outputs bit-equal to hwsim's, accept and finish cycles equal; returns hwsim's run."""
    model = run(prog, config, "functional", inputs=values)
    assert got["error"] == 0, f"{where}: the RTL rejected a command"
    dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
    for name in outputs:
        rtl = prog.tensors[name].read(dram.copy())
        np.testing.assert_array_equal(rtl.view(np.uint32), model.outputs[name].view(np.uint32),
                                      err_msg=f"{where}: {name}, RTL vs hwsim")
    assert got["accept"] == model.stats.accept_cycles, f"{where}: accept cycles differ"
    ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    assert ends == model.stats.retire_cycles, f"{where}: finish cycles differ"
    return model


def _gather_reference(p, rows, table):
    """The forward's formula in float64: sum over chunks of p times the (fp16) row."""
    return np.einsum("tk,tkh->th", p.astype(np.float64), table.astype(np.float64)[rows])


@pytest.mark.parametrize("sim, name", [
    ("icarus", "tiny"), ("verilator", "tiny"), ("verilator", "small8"),
    pytest.param("icarus", "small8", marks=pytest.mark.slow)])  # make test-slow: the fourth
def test_lookup_programs_match_hwsim_and_memoryformer(sim, name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = lookup_test_config(name)
    rng = np.random.default_rng(7)
    gathers = [gather_program_case(config, t, k, h, rng, tier=tier)
               for t, k, h, tier in GATHERS[name]]
    layers = [memory_layer_case(config, t, d, h, tau, rng, official=o, t=temp, tier=tier)
              for t, d, h, tau, o, temp, tier in LAYERS[name]]
    results = cosim_programs(config, gathers + layers, sim=sim, seed=7, build_root=BUILD,
                             tag="lookup")
    for shape, (prog, values), got in zip(GATHERS[name], gathers, results, strict=False):
        where = f"{sim}/{config.name} GATHER {shape} ({LOOKUP_TIERS[shape[3]]})"
        model = _check_run(where, prog, config, values, got, ("Y",))
        ref = _gather_reference(values["P"], values["R"], values["T"])
        np.testing.assert_allclose(model.outputs["Y"], ref, rtol=1e-5, atol=1e-5)
    for shape, (prog, values), got in zip(LAYERS[name], layers, results[len(gathers):],
                                          strict=True):
        tokens, d, h, tau, official, temp, tier = shape
        where = f"{sim}/{config.name} memory layer {shape} ({LOOKUP_TIERS[tier]})"
        model = _check_run(where, prog, config, values, got, ("R", "P", "Y"))
        # against MemoryFormer's PyTorch layer: row indices exact, weights within the bound
        layer = MemoryLayer(d, h, tau=tau, temperature=temp,
                            weight="official" if official else "paper", bias=False)
        idx, w = layer.hash(torch.from_numpy(values["X"]).double())
        K = d // tau
        np.testing.assert_array_equal(model.outputs["R"], idx.numpy() + (np.arange(K) << tau),
                                      err_msg=where)
        bound = CHUNK_WEIGHT_MAX_REL_ERROR[8 if tau <= 8 else 10]
        np.testing.assert_allclose(model.outputs["P"], w.numpy(), rtol=bound, atol=0)
        ref = _gather_reference(model.outputs["P"], model.outputs["R"], values["T"])
        np.testing.assert_allclose(model.outputs["Y"], ref, rtol=1e-5, atol=1e-5)
