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
from hwsim.tiers import PlacementError, tier_preset

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
