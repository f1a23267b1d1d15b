"""Per-cycle array kernels: values equal exact int32 matmul, cycles equal the closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.systolic_array import (
    os_feed_cycles,
    os_tile_per_cycle,
    ws_stream_cycles,
    ws_tile_per_cycle,
)


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, 40), rows=st.integers(1, 9), cols=st.integers(1, 9),
       seed=st.integers(0, 2**32 - 1))
def test_os_tile_values_and_cycles(k, rows, cols, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (k, rows)).astype(np.int8)
    b = rng.integers(-128, 128, (k, cols)).astype(np.int8)
    acc, cycles = os_tile_per_cycle(a, b, rows, cols)
    np.testing.assert_array_equal(acc, _wrap32(a.T.astype(np.int64) @ b.astype(np.int64)))
    assert cycles == os_feed_cycles(k, rows, cols)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 40), rows=st.integers(1, 9), cols=st.integers(1, 9),
       seed=st.integers(0, 2**32 - 1))
def test_ws_tile_values_and_cycles(m, rows, cols, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, rows)).astype(np.int8)
    w = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    out, cycles = ws_tile_per_cycle(a, w, rows, cols)
    np.testing.assert_array_equal(out, _wrap32(a.astype(np.int64) @ w.astype(np.int64)))
    assert cycles == ws_stream_cycles(m, rows, cols)


def test_os_zero_operands_still_take_the_structural_cycles():
    a = np.zeros((5, 4), np.int8)
    acc, cycles = os_tile_per_cycle(a, np.zeros((5, 4), np.int8), 4, 4)
    assert cycles == 5 + 4 + 4 - 1 and not acc.any()


@pytest.mark.parametrize("k", [70000])
def test_int32_accumulator_wraps_like_hardware(k):
    a = np.full((k, 1), -128, np.int8)
    acc, _ = os_tile_per_cycle(a, a.copy(), 1, 1)
    assert int(acc[0, 0]) == (16384 * k + 2**31) % 2**32 - 2**31
