"""Memory layers lowered onto the lookup engine: values against MemoryFormer's reference and
autograd, blocks that pipeline without races, placement errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from algorithms.memoryformer import MemoryLayer
from dataflow.lower.lookup import LayerShape, compile_memory_layer, token_block
from hwsim import isa, preset, run
from hwsim.config import LookupConfig
from hwsim.numerics import CHUNK_WEIGHT_MAX_REL_ERROR
from hwsim.program import COL
from hwsim.tiers import PlacementError, tier_preset
from hwsim.units.lookup import timing_rows
from hwsim.units.update_timing import first_access, update_run

F32 = np.float32


def _layer(s: LayerShape, seed=0):
    torch.manual_seed(seed)
    layer = MemoryLayer(s.d, s.h, tau=s.tau, weight=s.weight, temperature=s.t, bias=False)
    with torch.no_grad():  # the table the hardware holds: fp16
        layer.tables.copy_(layer.tables.half().float())
    return layer, torch.randn(s.tokens, s.d)


def _normwise(got, ref, rel):
    assert np.abs(got - ref).max() <= rel * np.abs(ref).max(), np.abs(got - ref).max()


@pytest.mark.parametrize("weight", ["paper", "official"])
def test_forward_in_several_blocks_matches_memoryformer(weight):
    s = LayerShape(tokens=12, d=16, h=8, tau=4, weight=weight)
    cfg = preset("tiny")
    assert token_block(s, cfg, "forward") < s.tokens  # several blocks, pipelined
    layer, x = _layer(s)
    prog = compile_memory_layer(s, cfg, phase="forward")
    res = run(prog, cfg, "functional", inputs={
        "X": x.numpy(), "T": layer.tables.detach().reshape(-1, s.h).numpy()})
    ref = layer(x).detach().numpy()
    _, w = layer.hash(x)
    bound = (w.abs().detach().numpy()[..., None] * layer.tables.detach().abs().reshape(
        -1, s.h).numpy()[layer.hash(x)[0].numpy() + np.arange(s.chunks) * 16]).sum(1)
    rel = CHUNK_WEIGHT_MAX_REL_ERROR[8] + s.chunks * 2.0 ** -24
    assert np.all(np.abs(res.outputs["Y"] - ref) <= bound * rel + 1e-30)
    lookups = [c for c in prog.commands if c.UNIT == isa.Unit.LOOKUP]
    assert [type(c).__name__ for c in lookups[:2]] == ["Hash", "Gather"]


def test_training_step_matches_autograd_and_updates_touched_rows_once():
    s = LayerShape(tokens=10, d=16, h=8, tau=4)
    cfg = preset("tiny")
    layer, x = _layer(s, seed=1)
    dy = np.random.default_rng(1).standard_normal((s.tokens, s.h)).astype(F32)
    table = layer.tables.detach().reshape(-1, s.h).numpy()
    prog = compile_memory_layer(s, cfg, phase="train", lr=0.5, momentum=0.9)
    res = run(prog, cfg, "functional", inputs={
        "X": x.numpy(), "T": table, "dY": dy, "W": table, "G": np.zeros_like(table),
        "V": np.zeros_like(table)})
    xg = x.clone().requires_grad_(True)
    y = layer(xg)
    y.backward(torch.from_numpy(dy))
    g = layer.tables.grad.reshape(-1, s.h).numpy()
    # normwise: the chunk weights' bound (CHUNK_WEIGHT_MAX_REL_ERROR) and fp32 sums of a few
    # terms; dX also carries the sigmoid's error through dp/dz
    _normwise(res.outputs["Y"], y.detach().numpy(), 2 * CHUNK_WEIGHT_MAX_REL_ERROR[8])
    _normwise(res.outputs["dX"], xg.grad.numpy(), 1e-3)
    touched = np.abs(g).sum(1) > 0
    # first SGD-with-momentum step from v = 0: v = g, w -= lr * g on touched rows only
    _normwise(res.outputs["V"], g, 2 * CHUNK_WEIGHT_MAX_REL_ERROR[8])
    assert np.all(res.outputs["V"][~touched] == 0)
    assert np.array_equal(res.outputs["W"][~touched], table[~touched])
    _normwise(res.outputs["W"] - table, -F32(0.5) * g, 2 * CHUNK_WEIGHT_MAX_REL_ERROR[8])
    assert np.array_equal(res.outputs["T"], res.outputs["W"].astype(np.float16))
    # timing mode runs the same program (its rows drawn, not computed)
    assert run(prog, cfg).stats.cycles > 0


def test_a_table_that_fits_no_tier_names_the_tiers():
    small = dataclasses.replace(preset("tiny"), lookup=LookupConfig(
        tiers=(tier_preset("sram", capacity_gib=1 / 1024),)))
    s = LayerShape(tokens=4, d=64, h=512, tau=8)  # 8 x 256 x 512 fp16 = 2 MiB
    with pytest.raises(PlacementError, match="sram"):
        compile_memory_layer(s, small)


def test_bad_shapes_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="not a multiple of tau"):
        LayerShape(tokens=4, d=18, h=8, tau=4)
    with pytest.raises(ValueError, match="VEC words"):
        token_block(LayerShape(tokens=4, d=4096, h=8, tau=8), preset("tiny"), "forward")


def test_adam_training_step_matches_sparse_adam_on_autograds_gradient():
    s = LayerShape(tokens=10, d=16, h=8, tau=4)
    cfg = preset("tiny")
    layer, x = _layer(s, seed=2)
    dy = np.random.default_rng(2).standard_normal((s.tokens, s.h)).astype(F32)
    table = layer.tables.detach().reshape(-1, s.h).numpy().copy()
    prog = compile_memory_layer(s, cfg, phase="train", optimizer="adam", lr=0.05,
                                betas=(0.8, 0.99), eps=1e-6)
    updates = [c for c in prog.commands if isinstance(c, isa.Scatter) and c.mode == 2]
    assert updates and not [c for c in prog.commands if isinstance(c, isa.Scatter)
                            and c.mode == 1]
    zeros = np.zeros_like(table)
    res = run(prog, cfg, "functional", inputs={
        "X": x.numpy(), "T": table, "dY": dy, "W": table, "G": zeros, "M": zeros, "V": zeros})
    y = layer(x)
    y.backward(torch.from_numpy(dy))
    g = layer.tables.grad.reshape(-1, s.h)
    touched = np.flatnonzero(g.abs().sum(1).numpy() > 0)
    param = torch.nn.Parameter(torch.from_numpy(table.copy()))
    opt = torch.optim.SparseAdam([param], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    param.grad = torch.sparse_coo_tensor(torch.from_numpy(touched[None]), g[touched],
                                         param.shape, check_invariants=True)
    opt.step()
    st = opt.state[param]
    # the gradient carries the chunk weights' error (CHUNK_WEIGHT_MAX_REL_ERROR): M = (1-b1) g
    # to that, V = (1-b2) g^2 to twice that; the step lr_t m/(sqrt(v) + eps) ~ lr sign(g) is
    # insensitive to it
    rel = CHUNK_WEIGHT_MAX_REL_ERROR[8]
    _normwise(res.outputs["M"], st["exp_avg"].numpy(), 2 * rel)
    _normwise(res.outputs["V"], st["exp_avg_sq"].numpy(), 4 * rel)
    _normwise(res.outputs["W"] - table, param.detach().numpy() - table, 2 * rel)
    rest = np.setdiff1d(np.arange(len(table)), touched)
    assert np.array_equal(res.outputs["W"][rest], table[rest])
    assert not res.outputs["M"][rest].any() and not res.outputs["V"][rest].any()
    assert np.array_equal(res.outputs["T"], res.outputs["W"].astype(np.float16))


@pytest.mark.parametrize("phase", ["update", "train"])
def test_memoryformer_tiny_layer_adam_step_moves_the_formulas_table_bytes(phase):
    """A memory layer of memoryformer_tiny's shape (d = h = 512, tau 8: 64 chunk tables of 256
    rows), 64 tokens, on vcu1525 (URAM and DDR4 tiers) in timing mode. The row update reads 4
    fp32 rows (G, W, M, V) for each listed row it does not skip (a repeat of a row in flight)
    and writes 4 plus the fp16 row for each distinct row (timing mode's rows: the first access
    to a row finds it dirty), each access rounded up to the tier's access granularity."""
    s = LayerShape(tokens=64, d=512, h=512, tau=8)
    cfg = preset("vcu1525")
    prog = compile_memory_layer(s, cfg, phase=phase, optimizer="adam")
    sgd = compile_memory_layer(s, cfg, phase=phase)
    # one more fp32 table (M) in the footprint
    assert prog.tensors["M"].shape == (64 * 256, 512) and "M" not in sgd.tensors
    assert prog.dram_bytes - sgd.dram_bytes >= 64 * 256 * 512 * 4
    st = run(prog, cfg).stats
    n = s.tokens * s.chunks

    def moved(nbytes, tier):
        gran = cfg.lookup.tiers[tier].access_bytes
        return -(-nbytes // gran) * gran

    def tier_bytes(tier, kind):
        return st.bytes.get(f"tier_{cfg.lookup.tiers[tier].name}_{kind}", 0)

    upd = next(c for c in prog.commands if isinstance(c, isa.Scatter) and c.mode == 2)
    expect = {}  # (tier, read/write): bytes

    def charge(tier, kind, nbytes):
        expect[tier, kind] = expect.get((tier, kind), 0) + nbytes

    i = prog.commands.index(upd)
    rows = timing_rows(upd, int(prog.table[i, COL["trows"]]))
    distinct = len(np.unique(rows))
    _, _, _, _, _, skipped, updated = update_run(cfg, rows, first_access(rows), s.h, upd.tier,
                                                 (0,) * 5)
    assert updated == distinct < n and 0 <= skipped <= n - distinct
    charge(upd.tier, "read", (n - skipped) * 4 * moved(512 * 4, upd.tier))
    charge(upd.tier, "write",
           distinct * (4 * moved(512 * 4, upd.tier) + moved(512 * 2, upd.tier)))
    if phase == "train":  # two fp16 gathers (forward, dL/dp), one fp32 scatter-add
        gt = next(c for c in prog.commands if isinstance(c, isa.Gather)).tier
        sc = next(c for c in prog.commands if isinstance(c, isa.Scatter) and c.mode == 0).tier
        charge(gt, "read", 2 * n * moved(512 * 2, gt))
        charge(sc, "read", n * moved(512 * 4, sc))
        charge(sc, "write", n * moved(512 * 4, sc))
    for t in range(len(cfg.lookup.tiers)):
        for kind in ("read", "write"):
            assert tier_bytes(t, kind) == expect.get((t, kind), 0), (t, kind)
    assert st.cycles > 0 and st.energy_pj["lookup"] > 0


def test_unknown_table_optimizer_is_refused():
    with pytest.raises(ValueError, match="table optimizer must be one of"):
        compile_memory_layer(LayerShape(tokens=4, d=16, h=8, tau=4), preset("tiny"),
                             phase="train", optimizer="adagrad")
