"""The lookup engine's RTL under Icarus and Verilator against hwsim and MemoryFormer's reference:
HASH, GATHER (modes 0 and 1) and SCATTER programs over every tier, values bit for bit with
hwsim, every command's accept and finish cycle equal; the scatters repeat rows so that some are
forwarded from a held slot and some wait for a write's acknowledgement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms.memoryformer import MemoryLayer
from dataflow.lower.lookup import LayerShape
from hwsim.engine import run
from hwsim.numerics import CHUNK_WEIGHT_MAX_REL_ERROR
from hwsim.units.scatter_timing import scatter_run
from hwsim.units.update_timing import update_run
from reports.fidelity import (
    LOOKUP_TIERS,
    UPDATE_HYPER,
    command_end_cycles,
    compiled_layer_case,
    cosim_programs,
    gather_program_case,
    layer_errors,
    lookup_test_config,
    memory_layer_case,
    scatter_program_case,
    update_program_case,
)
from rtl.cosim import available_simulators

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

GATHERS = {  # (tokens, chunks, h, tier): the rows of a window of 16 or 32 slots, every tier
    "tiny": [(3, 4, 16, 0), (2, 5, 32, 1), (4, 3, 16, 2), (1, 6, 32, 3), (6, 2, 16, 0),
             (1, 1, 32, 1)],
    "small8": [(3, 4, 16, 0), (2, 3, 32, 3), (4, 2, 32, 1)],
}
DOTS = {  # GATHER mode 1, (tokens, chunks, h, tier): rows of two VEC entries or more
    "tiny": [(3, 4, 16, 0), (2, 3, 32, 1), (5, 2, 16, 2), (1, 6, 32, 3), (4, 2, 32, 0)],
    "small8": [(3, 4, 16, 0), (2, 3, 32, 3), (5, 2, 16, 1)],
}
LAYERS = {  # (tokens, d, h, tau, official, t, tier): HASH then GATHER
    "tiny": [(3, 16, 16, 4, False, 1.0, 0), (2, 24, 32, 8, True, 1.0, 1),
             (5, 12, 16, 3, False, 0.5, 3), (1, 20, 16, 10, True, 2.0, 2),
             (2, 4, 16, 2, False, 1.0, 0)],
    "small8": [(3, 16, 16, 8, False, 1.0, 2), (4, 30, 32, 10, True, 1.0, 0),
               (9, 8, 16, 4, False, 1.0, 3)],
}

COMPILED = {  # memory layers compiled by dataflow (tables placed by hwsim.tiers.place_tables):
    # the forward, or a training step (forward, backward, SGD-momentum or Adam table update)
    "tiny": [(LayerShape(6, 16, 16, tau=4), "forward"),
             (LayerShape(5, 24, 32, tau=8, weight="official", t=0.5), "forward"),
             (LayerShape(6, 16, 16, tau=4), "train"),
             (LayerShape(5, 24, 16, tau=8, weight="official"), "train"),
             (LayerShape(5, 16, 16, tau=4), "train", "adam")],
    "small8": [(LayerShape(9, 32, 16, tau=8), "forward"),
               (LayerShape(7, 32, 16, tau=8, weight="official"), "train")],
}
UPDATES = {  # SCATTER modes 1 and 2, (tokens, chunks, h, tier, rows, optimizer): row updates
    "tiny": [(12, 2, 16, 0, "runs", "sgd_momentum"), (10, 3, 16, 2, "cycle3", "sgd_momentum"),
             (16, 2, 16, 1, "uniform", "sgd_momentum"), (15, 2, 16, 3, "cycle5", "adam"),
             (10, 3, 16, 0, "runs", "adam")],
    "small8": [(10, 2, 16, 2, "cycle3", "sgd_momentum"), (12, 3, 16, 0, "uniform", "adam")],
}
MAP_FETCHES = {  # AttMEMO's map fetch (dataflow.memo.compile_map_fetch): (store rows, S, rows,
    # tier), whole maps' rows from a store, each the row itself (GATHER mode 0, weight 1)
    "tiny": [(48, 16, 12, 3), (40, 32, 9, 1)],
    "small8": [(64, 16, 16, 2)],
}
SCATTERS = {  # (tokens, chunks, h, tier, rows): rows of chunk k at k * 64 + ...
    "tiny": [(12, 2, 8, 0, "runs"), (10, 3, 16, 2, "cycle3"), (16, 2, 8, 1, "uniform"),
             (8, 4, 16, 3, "cycle3")],
    "small8": [(10, 2, 16, 2, "cycle3"), (12, 3, 16, 0, "runs"), (8, 2, 16, 3, "uniform"),
               (12, 3, 16, 1, "cycle5")],
}


def _update_reference(values, rows, optimizer):
    """The row update in NumPy float32 (each operation correctly rounded, as the engine's; not
    torch, whose CPU float32 sqrt is not correctly rounded): each row, in list order, whose
    gradient is not all zero gets ``g' = g + wd w`` then SGD with momentum (``v = mu v + g'``,
    ``w = w - lr v``) or Adam (``m = m + (g' - m) c1``, ``v = v + (g'^2 - v) c2``,
    ``w = w - lr_t (m / (sqrt(v) + eps))``), its fp16 copy and a zeroed gradient; returns the
    tables."""
    t = {k: values[k].copy() for k in ("T", "W", "G", "M", "V") if k in values}
    hp = [np.float32(x) for x in UPDATE_HYPER[optimizer]]
    for r in rows.reshape(-1).tolist():
        g = t["G"][r]
        if not (g != 0).any():
            continue
        gp = g + hp[-1] * t["W"][r]
        if optimizer == "adam":
            lr, c1, c2, eps, _ = hp
            t["M"][r] = t["M"][r] + (gp - t["M"][r]) * c1
            t["V"][r] = t["V"][r] + (gp * gp - t["V"][r]) * c2
            t["W"][r] = t["W"][r] - lr * (t["M"][r] / (np.sqrt(t["V"][r]) + eps))
        else:
            lr, mu, _ = hp
            t["V"][r] = mu * t["V"][r] + gp
            t["W"][r] = t["W"][r] - lr * t["V"][r]
        t["T"][r] = t["W"][r].astype(np.float16)
        t["G"][r] = 0
    return t


def _map_fetch_case(config, store_rows, s_k, rows, tier, rng):
    from dataflow.memo import compile_map_fetch

    prog = compile_map_fetch(store_rows, s_k, rows, config, tier=tier)
    values = {"T": rng.standard_normal((store_rows, s_k)).astype(np.float16),
              "R": rng.integers(0, store_rows, (rows, 1)).astype(np.int32),
              "P": np.ones((rows, 1), np.float32)}
    return prog, values


def _scatter_rows(tokens, chunks, pattern, rng):
    """Row indices that repeat on purpose: ``runs`` (three tokens in a row on one row: the
    repeats close behind, forwarded), ``cycle3``/``cycle5`` (a row every third or fifth token:
    the previous write often issued and not yet acknowledged), ``uniform`` (40 rows a
    chunk)."""
    t = np.arange(tokens)[:, None]
    offset = {"runs": (t // 3) % 2, "cycle3": t % 3, "cycle5": t % 5,
              "uniform": rng.integers(0, 40, (tokens, chunks))}[pattern]
    return np.arange(chunks) * 64 + offset


def _table_gradient(g0, rows, p, dy):
    """MemoryFormer's table gradient by autograd (float64): ``G0`` plus the gradient of
    ``y[t] = sum_k p[t,k] T[rows[t,k]]`` for the upstream gradient ``dy``."""
    table = torch.zeros(g0.shape, dtype=torch.float64, requires_grad=True)
    y = (torch.from_numpy(p).double()[..., None] * table[torch.from_numpy(rows)]).sum(1)
    y.backward(torch.from_numpy(dy).double())
    return g0.astype(np.float64) + table.grad.numpy()


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


def _check_dot(where, got, dy, rows, table):
    """GATHER mode 1 against ``dY[t] . T[row]`` in float64, within fp32 summation's bound:
    ``h + 1`` roundings of at most ``2**-24`` of the sum of the terms' magnitudes."""
    terms = dy.astype(np.float64)[:, None, :] * table.astype(np.float64)[rows]
    bound = (terms.shape[-1] + 1) * 2.0 ** -24 * np.abs(terms).sum(-1)
    err = np.abs(got.astype(np.float64) - terms.sum(-1))
    assert (err <= bound).all(), f"{where}: dY . T off by {err.max()} (bound {bound.min()})"


@pytest.mark.parametrize("sim, name", [
    ("icarus", "tiny"), ("verilator", "tiny"), ("verilator", "small8"),
    pytest.param("icarus", "small8", marks=pytest.mark.slow)])  # make test-slow: the fourth
def test_lookup_programs_match_hwsim_and_memoryformer(sim, name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = lookup_test_config(name)
    rng = np.random.default_rng(7)
    groups = {
        "gather": [gather_program_case(config, t, k, h, rng, tier=tier)
                   for t, k, h, tier in GATHERS[name]],
        "dot": [gather_program_case(config, t, k, h, rng, tier=tier, mode=1)
                for t, k, h, tier in DOTS[name]],
        "layer": [memory_layer_case(config, t, d, h, tau, rng, official=o, t=temp, tier=tier)
                  for t, d, h, tau, o, temp, tier in LAYERS[name]],
        "scatter": [scatter_program_case(config, _scatter_rows(t, k, pattern, rng), h, rng,
                                         tier=tier)
                    for t, k, h, tier, pattern in SCATTERS[name]],
        "compiled": [compiled_layer_case(config, shape, phase, rng, optimizer=opt[0]
                                         if opt else "sgd_momentum")
                     for shape, phase, *opt in COMPILED[name]],
        "update": [update_program_case(config, _scatter_rows(t, k, pattern, rng), h, rng,
                                       tier=tier, optimizer=opt)
                   for t, k, h, tier, pattern, opt in UPDATES[name]],
        "memo": [_map_fetch_case(config, n, s, rows, tier, rng)
                 for n, s, rows, tier in MAP_FETCHES[name]],
    }
    results = iter(cosim_programs(config, [c for g in groups.values() for c in g], sim=sim,
                                  seed=7, build_root=BUILD, tag="lookup"))
    got = {kind: [next(results) for _ in cases] for kind, cases in groups.items()}
    passes = np.zeros(2, np.int64)
    for shape, (prog, values), out in zip(UPDATES[name], groups["update"], got["update"],
                                          strict=True):
        tokens, chunks, h, tier, _, opt = shape
        where = f"{sim}/{config.name} SCATTER {opt} {shape} ({LOOKUP_TIERS[tier]})"
        model = _check_run(where, prog, config, values, out, prog.outputs)
        ref = _update_reference(values, values["R"], opt)
        for k in prog.outputs:
            np.testing.assert_array_equal(model.outputs[k], ref[k], err_msg=f"{where}: {k}")
        bases = tuple(prog.tensors[k].addr for k in prog.outputs)
        dirty = np.zeros(values["R"].size, bool)
        seen = set()
        for i, r in enumerate(values["R"].reshape(-1).tolist()):
            dirty[i] = r not in seen and bool((values["G"][r] != 0).any())
            seen.add(r)
        _, _, _, _, _, skipped, updated = update_run(config, values["R"], dirty, h, tier, bases)
        assert updated == dirty.sum(), where
        passes += (skipped, values["R"].size - skipped - updated)
    skipped, clean_reads = passes
    assert skipped > 0 and clean_reads > 0, f"repeats not provoked: {skipped=} {clean_reads=}"
    for shape, (prog, values), out in zip(COMPILED[name], groups["compiled"], got["compiled"],
                                          strict=True):
        layer, phase, *opt = shape
        where = f"{sim}/{config.name} compiled {phase} {layer}"
        model = _check_run(where, prog, config, values, out, prog.outputs)
        errors = layer_errors(layer, phase, model.outputs, values,
                              optimizer=opt[0] if opt else "sgd_momentum")
        assert max(errors.values()) <= 1, f"{where}: outside the bounds (error / bound) {errors}"
    for shape, (prog, values), out in zip(DOTS[name], groups["dot"], got["dot"], strict=True):
        where = f"{sim}/{config.name} GATHER mode 1 {shape} ({LOOKUP_TIERS[shape[3]]})"
        model = _check_run(where, prog, config, values, out, ("Y",))
        _check_dot(where, model.outputs["Y"], values["DY"], values["R"], values["T"])
    for shape, (prog, values), out in zip(GATHERS[name], groups["gather"], got["gather"],
                                          strict=True):
        where = f"{sim}/{config.name} GATHER {shape} ({LOOKUP_TIERS[shape[3]]})"
        model = _check_run(where, prog, config, values, out, ("Y",))
        ref = _gather_reference(values["P"], values["R"], values["T"])
        np.testing.assert_allclose(model.outputs["Y"], ref, rtol=1e-5, atol=1e-5)
    for shape, (prog, values), out in zip(MAP_FETCHES[name], groups["memo"], got["memo"],
                                          strict=True):
        where = f"{sim}/{config.name} AttMEMO map fetch {shape} ({LOOKUP_TIERS[shape[3]]})"
        model = _check_run(where, prog, config, values, out, ("Y",))
        np.testing.assert_array_equal(model.outputs["Y"],
                                      values["T"][values["R"][:, 0]].astype(np.float32))
    hazards = np.zeros(2, np.int64)
    for shape, (prog, values), out in zip(SCATTERS[name], groups["scatter"], got["scatter"],
                                          strict=True):
        tokens, chunks, h, tier, _ = shape
        where = f"{sim}/{config.name} SCATTER {shape} ({LOOKUP_TIERS[tier]})"
        model = _check_run(where, prog, config, values, out, ("G",))
        ref = _table_gradient(values["G"], values["R"], values["P"], values["DY"])
        np.testing.assert_allclose(model.outputs["G"], ref, rtol=1e-5, atol=1e-5, err_msg=where)
        hazards += scatter_run(config, values["R"], h, tier)[5:7]
    forwarded, waited = hazards
    assert forwarded > 0 and waited > 0, f"hazards not provoked: {forwarded=} {waited=}"
    for shape, (prog, values), out in zip(LAYERS[name], groups["layer"], got["layer"],
                                          strict=True):
        tokens, d, h, tau, official, temp, tier = shape
        where = f"{sim}/{config.name} memory layer {shape} ({LOOKUP_TIERS[tier]})"
        model = _check_run(where, prog, config, values, out, ("R", "P", "Y"))
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
