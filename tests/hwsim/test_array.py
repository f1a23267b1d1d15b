"""Per-cycle array kernels: values equal exact int32 / bit-exact fp16 matmul, cycles equal the
closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim import isa
from hwsim.config import preset
from hwsim.numerics import fp16_mac_bitlevel, fp16_matmul
from hwsim.systolic_array import (
    os_feed_cycles,
    os_tile_per_cycle,
    ws_stream_cycles,
    ws_tile_per_cycle,
)
from hwsim.units import unit_cycles

# +-0, subnormals, 1, max, inf, NaN (quiet and signalling), a tie-maker
F16_CORNERS = np.array([0x0000, 0x8000, 0x0001, 0x83FF, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF,
                        0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x1400], np.uint16)


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def _int8(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


def _fp16(rng, shape, corners=0.2):
    """Random finite fp16 of moderate range, with a fraction of corner patterns mixed in."""
    x = (rng.standard_normal(shape) * 4).astype(np.float16).view(np.uint16)
    pick = rng.random(shape) < corners
    x[pick] = rng.choice(F16_CORNERS, int(pick.sum()))
    return x


def _bits(x):
    return np.asarray(x).view(np.uint32)


@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, 40), rows=st.integers(1, 9), cols=st.integers(1, 9),
       seed=st.integers(0, 2**32 - 1))
def test_os_tile_values_and_cycles(k, rows, cols, seed):
    rng = np.random.default_rng(seed)
    a, b = _int8(rng, (k, rows)), _int8(rng, (k, cols))
    acc, cycles = os_tile_per_cycle(a, b, rows, cols)
    np.testing.assert_array_equal(acc, _wrap32(a.T.astype(np.int64) @ b.astype(np.int64)))
    assert cycles == os_feed_cycles(k, rows, cols)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 40), rows=st.integers(1, 9), cols=st.integers(1, 9),
       k=st.integers(0, 9), seed=st.integers(0, 2**32 - 1))
def test_ws_tile_values_and_cycles(m, rows, cols, k, seed):
    k = min(k, rows)
    rng = np.random.default_rng(seed)
    a, w = _int8(rng, (m, rows)), _int8(rng, (k, cols))
    c0 = rng.integers(-2**31, 2**31, (m, cols)).astype(np.int32)
    out, cycles = ws_tile_per_cycle(a, w, rows, cols)
    np.testing.assert_array_equal(out, _wrap32(a[:, :k].astype(np.int64) @ w.astype(np.int64)))
    assert cycles == ws_stream_cycles(k, m, rows, cols)
    out, _ = ws_tile_per_cycle(a, w, rows, cols, acc=c0)
    np.testing.assert_array_equal(
        out, _wrap32(c0 + a[:, :k].astype(np.int64) @ w.astype(np.int64)))


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 30), rows=st.integers(1, 6), cols=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1))
def test_fp16_os_tile_is_bit_exact_with_numerics_sequential_matmul(k, rows, cols, seed):
    rng = np.random.default_rng(seed)
    a, b = _fp16(rng, (k, rows)), _fp16(rng, (k, cols))
    acc, cycles = os_tile_per_cycle(a, b, rows, cols)
    assert acc.dtype == np.float32
    np.testing.assert_array_equal(_bits(acc), _bits(fp16_matmul(a.T.copy(), b)))
    assert cycles == os_feed_cycles(k, rows, cols)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 20), rows=st.integers(1, 6), cols=st.integers(1, 6),
       k=st.integers(0, 6), seed=st.integers(0, 2**32 - 1))
def test_fp16_ws_tile_is_bit_exact_with_numerics_from_old_accumulators(m, rows, cols, k, seed):
    k = min(k, rows)
    rng = np.random.default_rng(seed)
    a, w = _fp16(rng, (m, rows)), _fp16(rng, (k, cols))
    c0 = (rng.standard_normal((m, cols)) * 100).astype(np.float32)
    out, cycles = ws_tile_per_cycle(a, w, rows, cols, acc=c0)
    np.testing.assert_array_equal(_bits(out), _bits(fp16_matmul(a[:, :k].copy(), w, acc=c0)))
    assert cycles == ws_stream_cycles(k, m, rows, cols)
    out, _ = ws_tile_per_cycle(a, w, rows, cols)
    np.testing.assert_array_equal(_bits(out), _bits(fp16_matmul(a[:, :k].copy(), w)))


def _bit_level_matmul(a, b, acc):
    """``acc + a @ b`` through the RTL's integer datapath, one MAC at a time, k = 0, 1, ..."""
    out = acc.astype(np.uint32).copy()
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            for t in range(a.shape[1]):
                out[i, j] = fp16_mac_bitlevel(out[i, j], a[i, t], b[t, j])
    return out


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 12), rows=st.integers(1, 5), cols=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_fp16_tiles_equal_bit_level_datapath_from_subnormal_and_special_accumulators(
        m, rows, cols, seed):
    rng = np.random.default_rng(seed)
    a = _fp16(rng, (m, rows), corners=0.4)
    w = _fp16(rng, (rows, cols), corners=0.4)
    b = _fp16(rng, (m, cols), corners=0.4)
    # old ACC entries: fp32 subnormals of both signs, some +-0, +-inf, NaN, the largest finite
    c0 = rng.integers(0, 2**23, (m, cols)) | rng.integers(0, 2, (m, cols)) << 31
    pick = rng.random((m, cols)) < 0.3
    specials = np.array([0, 2**31, 0x7F800000, 0xFF800000, 0x7FC00001, 0x7F7FFFFF])
    c0[pick] = rng.choice(specials, int(pick.sum()))
    c0 = c0.astype(np.uint32)
    out, _ = ws_tile_per_cycle(a, w, rows, cols, acc=c0.view(np.float32))
    np.testing.assert_array_equal(_bits(out), _bit_level_matmul(a, w, c0))
    acc, _ = os_tile_per_cycle(a, b, rows, cols)
    np.testing.assert_array_equal(
        _bits(acc), _bit_level_matmul(a.T, b, np.zeros((rows, cols), np.uint32)))


def test_fp16_nan_is_canonical_and_infinities_propagate():
    one = np.full((2, 1), 0x3C00, np.uint16)
    acc, _ = os_tile_per_cycle(np.array([[0x7C01], [0x3C00]], np.uint16), one, 1, 1)  # sNaN
    assert int(_bits(acc)[0, 0]) == 0x7FC00000
    acc, _ = os_tile_per_cycle(np.array([[0x7C00], [0xFC00]], np.uint16), one, 1, 1)  # inf-inf
    assert int(_bits(acc)[0, 0]) == 0x7FC00000
    old = np.array([[np.inf]], np.float32)  # WS accumulate from an overflowed entry
    out, _ = ws_tile_per_cycle(np.array([[0xFBFF]], np.uint16), one[:1], 1, 1, acc=old)
    assert out[0, 0] == np.inf


def test_os_zero_operands_still_take_the_structural_cycles():
    a = np.zeros((5, 4), np.int8)
    acc, cycles = os_tile_per_cycle(a, np.zeros((5, 4), np.int8), 4, 4)
    assert cycles == 5 + 4 + 4 - 1 and not acc.any()


@pytest.mark.parametrize("k", [70000])
def test_int32_accumulator_wraps_like_hardware(k):
    a = np.full((k, 1), -128, np.int8)
    acc, _ = os_tile_per_cycle(a, a.copy(), 1, 1)
    assert int(acc[0, 0]) == (16384 * k + 2**31) % 2**32 - 2**31


def test_unit_cycles_of_both_dataflows_follow_the_closed_forms():
    cfg = preset("tiny")
    R, C = cfg.array.rows, cfg.array.cols
    os_ = isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=7, m=0)
    ws = isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=3, m=9, dataflow=1)
    assert unit_cycles(os_, cfg) == 7 + 2 * R + C + 1
    assert unit_cycles(ws, cfg) == 3 + 9 + R + C + 1


def test_kernels_reject_mixed_or_unknown_operand_types():
    with pytest.raises(TypeError, match="^a_cols and b_rows must both be int8 or both fp16$"):
        os_tile_per_cycle(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.float16), 1, 1)
    with pytest.raises(TypeError, match=r"^w must be int8, float16 or uint16 \(fp16 bits\), "
                                        r"not float32$"):
        ws_tile_per_cycle(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.float32), 1, 1)
    with pytest.raises(ValueError, match="^3 weight rows exceed 2 array rows$"):
        ws_tile_per_cycle(np.zeros((1, 2), np.int8), np.zeros((3, 1), np.int8), 2, 1)
