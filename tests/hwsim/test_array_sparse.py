"""N:M sparse output-stationary tiles: values against numpy and torch, cycles against a formula."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow import compile_gemm, simulate_gemm, sparse_operands
from hwsim import preset, run
from hwsim.numerics import fp16_mac_bitlevel, fp16_matmul
from hwsim.sparse_tile import os_sparse_tile_per_cycle, ws_sparse_tile_per_cycle
from hwsim.systolic_array import os_feed_cycles, os_tile_per_cycle, ws_stream_cycles


def _wrap32(x):
    return ((x + 2**31) % 2**32 - 2**31).astype(np.int32)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), groups=st.integers(0, 5),
       pattern=st.sampled_from([(1, 4), (2, 4), (2, 8), (1, 8), (4, 8)]),
       seed=st.integers(0, 2**31))
def test_int8_tile_values_and_cycles(rows, cols, groups, pattern, seed):
    n, m = pattern
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (groups * m, rows)).astype(np.int8)
    vals = rng.integers(-128, 128, (groups * n, cols)).astype(np.int8)
    idx = np.sort(np.stack([np.stack([rng.choice(m, n, replace=False) for _ in range(cols)], 1)
                            for _ in range(groups)]), axis=1).reshape(groups * n, cols) \
        if groups else np.zeros((0, cols), np.int64)
    acc, cycles = os_sparse_tile_per_cycle(a, vals, idx, n, m, rows, cols)
    assert cycles == os_feed_cycles(groups * n, rows, cols)
    # the dense B the compressed format stands for
    b = np.zeros((groups * m, cols), np.int64)
    for s in range(groups * n):
        for j in range(cols):
            b[s // n * m + idx[s, j], j] = vals[s, j]
    np.testing.assert_array_equal(acc, _wrap32(a.T.astype(np.int64) @ b))


def _random_idx(rng, groups, n, m, cols):
    return np.sort(rng.permuted(np.tile(np.arange(m), (groups, cols, 1)), axis=2)[:, :, :n],
                   axis=2).transpose(0, 2, 1).reshape(groups * n, cols)


@settings(max_examples=40, deadline=None)
@given(rows_groups=st.integers(1, 3), cols=st.integers(1, 5), t=st.integers(0, 7),
       pattern=st.sampled_from([(1, 4), (2, 4), (2, 8), (1, 8)]), acc=st.booleans(),
       seed=st.integers(0, 2**31))
def test_ws_int8_tile_values_and_cycles(rows_groups, cols, t, pattern, acc, seed):
    n, m = pattern
    rows = rows_groups * n + (1 if n == 1 else 0)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, rows // n + 1)) * n  # preloaded compressed rows, whole groups
    e = m // n
    a = rng.integers(-128, 128, (t, e * rows)).astype(np.int8)
    vals = rng.integers(-128, 128, (k, cols)).astype(np.int8)
    idx = _random_idx(rng, k // n, n, m, cols) if k else np.zeros((0, cols), np.int64)
    c0 = rng.integers(-2**31, 2**31, (t, cols)).astype(np.int32) if acc else None
    out, cycles = ws_sparse_tile_per_cycle(a, vals, idx, n, m, rows, cols, acc=c0)
    assert cycles == ws_stream_cycles(k, t, rows, cols) or t == 0
    ref = np.zeros((t, cols), np.int64) if c0 is None else c0.astype(np.int64)
    for r in range(k):
        for j in range(cols):
            ref[:, j] += a[:, r // n * m + idx[r, j]].astype(np.int64) * int(vals[r, j])
    np.testing.assert_array_equal(out, _wrap32(ref))


def test_fp16_tile_sums_in_step_order_like_a_dense_tile_of_the_selected_operands():
    rng = np.random.default_rng(3)
    rows, cols, n, m, groups = 4, 3, 2, 8, 5
    a = rng.standard_normal((groups * m, rows)).astype(np.float16)
    vals = rng.standard_normal((groups * n, cols)).astype(np.float16)
    idx = np.sort(rng.permuted(np.tile(np.arange(m), (groups, cols, 1)), axis=2)[:, :, :n],
                  axis=2).transpose(0, 2, 1).reshape(groups * n, cols)
    acc, cycles = os_sparse_tile_per_cycle(a, vals, idx, n, m, rows, cols)
    assert cycles == os_feed_cycles(groups * n, rows, cols)
    for j in range(cols):
        # column j sees, at step s, activation row (s // n) * m + idx[s, j]
        sel = a[np.arange(groups * n) // n * m + idx[:, j]]
        dense, _ = os_tile_per_cycle(sel, np.repeat(vals[:, j:j + 1], cols, 1), rows, cols)
        np.testing.assert_array_equal(acc[:, j].view(np.uint32), dense[:, 0].view(np.uint32))
        ref = fp16_matmul(sel.T.copy(), vals[:, j:j + 1].copy())
        np.testing.assert_array_equal(acc[:, j].view(np.uint32), ref[:, 0].view(np.uint32))


# +-0, subnormals, 1, max, inf, NaN (quiet and signalling), a tie-maker
F16_CORNERS = np.array([0x0000, 0x8000, 0x0001, 0x83FF, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF,
                        0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x1400], np.uint16)


def _fp16_with_corners(rng, shape):
    x = (rng.standard_normal(shape) * 4).astype(np.float16).view(np.uint16)
    pick = rng.random(shape) < 0.3
    x[pick] = rng.choice(F16_CORNERS, int(pick.sum()))
    return x


@settings(max_examples=25, deadline=None)
@given(rows_groups=st.integers(1, 3), cols=st.integers(1, 5), t=st.integers(1, 9),
       pattern=st.sampled_from([(1, 4), (2, 4), (2, 8), (1, 8), (4, 8)]),
       seed=st.integers(0, 2**31))
def test_fp16_ws_tile_equals_bit_level_datapath_on_corner_operands_and_accumulators(
        rows_groups, cols, t, pattern, seed):
    n, m = pattern
    rows = rows_groups * n + (1 if n == 1 else 0)
    rng = np.random.default_rng(seed)
    k = rows // n * n  # every array row whose group is whole holds a compressed row
    a = _fp16_with_corners(rng, (t, m // n * rows))
    vals = _fp16_with_corners(rng, (k, cols))
    idx = _random_idx(rng, k // n, n, m, cols)
    # old ACC entries: fp32 subnormals of both signs, +-0, +-inf, NaN, the largest finite
    c0 = rng.integers(0, 2**23, (t, cols)) | rng.integers(0, 2, (t, cols)) << 31
    pick = rng.random((t, cols)) < 0.3
    specials = np.array([0, 2**31, 0x7F800000, 0xFF800000, 0x7FC00001, 0x7F7FFFFF])
    c0[pick] = rng.choice(specials, int(pick.sum()))
    c0 = c0.astype(np.uint32)
    out, cycles = ws_sparse_tile_per_cycle(a, vals, idx, n, m, rows, cols,
                                           acc=c0.view(np.float32))
    assert cycles == ws_stream_cycles(k, t, rows, cols)
    ref = c0.copy()
    for s in range(t):
        for j in range(cols):
            for r in range(k):  # from the old entry, then r = 0, 1, ... as the column sums
                ref[s, j] = fp16_mac_bitlevel(ref[s, j], a[s, r // n * m + idx[r, j]],
                                              vals[r, j])
    np.testing.assert_array_equal(out.view(np.uint32), ref)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("config_name", ["tiny", "small8"])
@pytest.mark.parametrize("pattern", [(2, 4), (2, 8), (1, 8)])
@pytest.mark.parametrize("shape", [(5, 7, 13), (9, 20, 100), (16, 16, 64)])
def test_sparse_gemm_programs_functional_equals_reference_and_timing(config_name, pattern, shape,
                                                                     dataflow):
    cfg = preset(config_name)
    m_, n_, k_ = shape
    rng = np.random.default_rng(sum(shape) + pattern[0] * 10 + pattern[1])
    ops = sparse_operands(rng.integers(-128, 128, (m_, k_)), rng.integers(-128, 128, (k_, n_)),
                          *pattern, ws_rows=cfg.array.rows if dataflow == "ws" else None)
    prog = compile_gemm(m_, n_, k_, cfg, dataflow=dataflow, sparsity=pattern)
    fun = run(prog, cfg, "functional", inputs={t: ops[t] for t in ("A", "Bv", "Bi")})
    tim = run(prog, cfg, "timing")
    ref = _wrap32(ops["A_dense"].astype(np.int64) @ ops["B"].astype(np.int64))
    np.testing.assert_array_equal(fun.outputs["C"], ref)
    assert fun.stats.retire_cycles == tim.stats.retire_cycles
    assert fun.stats.cycles == tim.stats.cycles


def test_fp16_sparse_program_matches_torch_within_bound():
    cfg = preset("tiny").replace(name="tiny_fp16", array__dtype="fp16")
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 40)).astype(np.float16)
    b = rng.standard_normal((40, 9)).astype(np.float16)
    ops = sparse_operands(a, b, 2, 8)
    prog = compile_gemm(6, 9, 40, cfg, dataflow="os", sparsity=(2, 8))
    out = run(prog, cfg, "functional", inputs={t: ops[t] for t in ("A", "Bv", "Bi")}).outputs["C"]
    ref = torch.from_numpy(ops["A"]).double() @ torch.from_numpy(ops["B"]).double()
    # fp32 accumulation of exact products: relative error well below fp16's
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_sparse_gemm_is_faster_than_dense_and_moves_fewer_weight_bytes():
    dense = simulate_gemm(64, 48, 256, "tiny", dataflow="os")
    sparse = simulate_gemm(64, 48, 256, "tiny", sparsity="2:8")
    assert dense.cycles / 4 < sparse.cycles < dense.cycles
    assert sparse.bytes["dram_write"] == dense.bytes["dram_write"]
    assert sparse.bytes["dram_read"] < dense.bytes["dram_read"]
    fun = simulate_gemm(16, 12, 40, "tiny", sparsity="1:8", mode="functional")
    assert fun.cycles == simulate_gemm(16, 12, 40, "tiny", sparsity="1:8").cycles


def test_misaligned_sparse_tile_is_refused_naming_the_field():
    from hwsim import Program, ProgramError

    cfg = preset("tiny")
    prog = compile_gemm(4, 4, 16, cfg, dataflow="os", sparsity=(2, 8))
    from dataclasses import replace

    cmds = [replace(c, a_addr=4) if c.name == "GEMM" else c for c in prog.commands]
    prog = Program(cmds, prog.dram_bytes, prog.tensors)
    with pytest.raises(ProgramError, match="a_addr.*not a multiple of 8"):
        run(prog, cfg, "timing")
