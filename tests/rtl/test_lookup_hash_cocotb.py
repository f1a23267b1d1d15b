"""HASH modes 2 and 3 (the backward of MemoryFormer's chunk weight) on the lookup engine's RTL
under Icarus and Verilator: ``dz`` bit-equal to hwsim functional, every command's accept and
finish cycle equal to hwsim's (so to :func:`hwsim.units.lookup.hash_cycles`), and hwsim's ``dz``
within the numerics' stated bound of torch autograd on MemoryFormer's chunk weight (float64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms.memoryformer import MemoryLayer
from hwsim.engine import run
from hwsim.numerics import CHUNK_WEIGHT_MAX_REL_ERROR, SIGMOID_MAX_REL_ERROR
from reports.fidelity import command_end_cycles, cosim_programs, hash_grad_case, lookup_test_config
from rtl.cosim import available_simulators

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"
U = 2.0**-24  # fp32 unit roundoff

# (tokens, chunks, tau, official, t, in_place): hash_lanes = 4 in both configs; vector.lanes 4
# (tiny: the engine read-bound, a group's g entry and tau z entries a group) and 8 (small8: two
# groups a g entry, the reads ahead of the lanes). Chunk counts n = tokens x chunks multiples of
# 4 and not, of L and not; in_place writes dz over z.
CASES = {
    "tiny": [(1, 1, 2, False, 1.0, False), (3, 4, 4, True, 1.0, False),
             (2, 3, 16, False, 0.5, True), (6, 2, 3, True, 0.5, False),
             (4, 5, 8, False, 1.0, False), (5, 3, 10, True, 1.0, True),
             (1, 7, 5, False, 0.5, False), (2, 2, 13, True, 0.5, False)],
    "small8": [(1, 3, 2, True, 1.0, False), (2, 8, 4, False, 1.0, False),
               (6, 3, 16, True, 0.5, False), (3, 5, 7, False, 0.5, True),
               (4, 4, 8, True, 1.0, False), (1, 9, 11, False, 1.0, False),
               (5, 2, 6, True, 0.5, True), (2, 6, 3, False, 0.5, False)],
}


def _grad_bound(tau: int) -> float:
    """Relative bound of the chunk weight's backward for chunks of ``tau``: the derivation of
    :data:`~hwsim.numerics.CHUNK_WEIGHT_MAX_REL_ERROR` (``tau x SIGMOID_MAX_REL_ERROR + 4 tau
    u``), which the numerics state and test at ``tau`` 8 and 10 only, taken at every ``tau``
    (it grows with ``tau``: one sigmoid and four roundings an element), plus ``u`` for the
    final ``g (x) dw/dz`` rounding."""
    return tau * (SIGMOID_MAX_REL_ERROR + 4 * U) + U


def _autograd_dz(x, g, tau, t, official):
    """``g . dw/dx`` by torch autograd through MemoryFormer's chunk weight, in float64; and the
    scale the bound is relative to: ``(2/t) p(z)``, times ``1 + ||z||_1`` (official form)."""
    tokens, d = x.shape
    layer = MemoryLayer(d, 4, tau=tau, temperature=t,
                        weight="official" if official else "paper", bias=False)
    xt = torch.from_numpy(x).double().requires_grad_(True)
    _, w = layer.hash(xt)
    (w * torch.from_numpy(g).double()).sum().backward()
    z = x.astype(np.float64).reshape(tokens, -1, tau)
    p = np.exp(torch.nn.functional.logsigmoid(torch.from_numpy(2 * np.abs(z) / t)).sum(-1)
               .numpy())
    scale = 2 / t * p
    if official:
        scale = scale * (1 + np.abs(z).sum(-1))
    return xt.grad.numpy(), np.repeat(scale, tau, axis=-1)


def test_grad_bound_is_the_numerics_bound_at_tau_8_and_10():
    """The bound taken at every tau is the stated one where the numerics state it."""
    for tau in (8, 10):
        assert _grad_bound(tau) - U <= CHUNK_WEIGHT_MAX_REL_ERROR[tau] < 1.02 * _grad_bound(tau)


@pytest.mark.parametrize("sim, name", [
    ("icarus", "tiny"), ("verilator", "tiny"), ("verilator", "small8"), ("icarus", "small8")])
def test_hash_backward_programs_match_hwsim_and_memoryformer_autograd(sim, name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = lookup_test_config(name)
    rng = np.random.default_rng(23)
    cases = [hash_grad_case(config, tokens, chunks, tau, rng, official=official, t=t,
                            in_place=in_place)
             for tokens, chunks, tau, official, t, in_place in CASES[name]]
    results = cosim_programs(config, cases, sim=sim, seed=23, build_root=BUILD,
                             tag="lookup-hash")
    for shape, (prog, values), got in zip(CASES[name], cases, results, strict=True):
        tokens, chunks, tau, official, t, in_place = shape
        where = f"{sim}/{config.name} HASH mode {2 + official} {shape}"
        model = run(prog, config, "functional", inputs=values)
        assert got["error"] == 0, f"{where}: the RTL rejected a command"
        dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
        rtl = prog.tensors["DX"].read(dram.copy())
        np.testing.assert_array_equal(rtl.view(np.uint32),
                                      model.outputs["DX"].view(np.uint32),
                                      err_msg=f"{where}: dz, RTL vs hwsim")
        assert got["accept"] == model.stats.accept_cycles, f"{where}: accept cycles differ"
        ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
        assert ends == model.stats.retire_cycles, f"{where}: finish cycles differ"
        # hwsim against MemoryFormer's autograd, within the bound relative to its scale
        ref, scale = _autograd_dz(values["X"], values["G"], tau, t, official)
        g = np.repeat(np.abs(values["G"].astype(np.float64)), tau, axis=-1)
        err = np.abs(model.outputs["DX"].astype(np.float64) - ref)
        assert (err <= _grad_bound(tau) * g * scale).all(), (
            f"{where}: hwsim dz vs autograd, worst {np.max(err / (g * scale)):.3g} of scale")
        zeros = values["X"] == 0
        assert zeros.any() and (model.outputs["DX"][zeros] == 0).all(), where  # sign(+-0) = 0
