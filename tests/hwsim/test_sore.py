"""SORE model: PRUNE equals algorithms.nm.compress; counted cycles equal the closed form."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms.nm import compress, decompress, nm_mask
from hwsim import isa
from hwsim.config import ArrayConfig, SoreConfig, preset
from hwsim.units.sore import (
    check_prune,
    magnitude_keys,
    prune,
    prune_compares,
    prune_cost,
    prune_cycles,
)

PATTERNS = [(1, 4), (2, 4), (2, 8), (1, 8), (4, 8)]


def _reference(w: np.ndarray, n: int, m: int):
    values, indices = compress(torch.from_numpy(w.astype(np.float32)), n, m, dim=0)
    return values.numpy().astype(w.dtype), indices.numpy()


@settings(max_examples=120, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), groups=st.integers(0, 5), cols=st.integers(1, 9),
       lanes=st.integers(1, 10), narrow=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_int8_prune_equals_compress_and_counts_closed_form_cycles(pattern, groups, cols, lanes,
                                                                   narrow, seed):
    n, m = pattern
    rng = np.random.default_rng(seed)
    lo, hi = (-2, 3) if narrow else (-128, 128)  # narrow: ties in almost every group
    w = rng.integers(lo, hi, (groups * m, cols)).astype(np.int8)
    out = prune(w, n, m, lanes=lanes)
    ref_v, ref_i = _reference(w, n, m)
    np.testing.assert_array_equal(out.values, ref_v)
    np.testing.assert_array_equal(out.indices, ref_i)
    assert out.values.dtype == np.int8 and out.indices.dtype == np.uint8
    if groups:
        dense = decompress(torch.from_numpy(out.values.astype(np.float32)),
                           torch.from_numpy(out.indices), m, 0, n=n)
        mask = nm_mask(torch.from_numpy(w.astype(np.float32)), n, m, dim=0)
        assert torch.equal(dense != 0, mask & torch.from_numpy(w != 0))
    assert out.cycles == prune_cycles(groups * m, cols, n, m, lanes)
    assert out.compares == prune_compares(groups * m, cols, n)


def test_int8_ties_and_minus_128():
    # column 0: |-128| beats 127; column 1: equal magnitudes, lower index wins; column 2: zeros
    w = np.array([[127, 3, 0], [-128, -3, 0], [5, 3, 0], [-5, -3, 0]], np.int8)
    out = prune(w, 2, 4)
    np.testing.assert_array_equal(out.values, [[127, 3, 0], [-128, -3, 0]])
    np.testing.assert_array_equal(out.indices, [[0, 0, 0], [1, 1, 1]])
    out = prune(w, 1, 4)
    np.testing.assert_array_equal(out.values, [[-128, 3, 0]])
    np.testing.assert_array_equal(out.indices, [[1, 0, 0]])


@settings(max_examples=60, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), groups=st.integers(1, 3), cols=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1))
def test_fp16_prune_equals_compress_without_nan(pattern, groups, cols, seed):
    n, m = pattern
    rng = np.random.default_rng(seed)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 6e-8, -6e-8, 65504.0, 1.0, -1.0], np.float16)
    w = np.where(rng.random((groups * m, cols)) < 0.4,
                 rng.choice(special, (groups * m, cols)),
                 rng.standard_normal((groups * m, cols)).astype(np.float16))
    out = prune(w, n, m, lanes=2)
    values, indices = compress(torch.from_numpy(w), n, m, dim=0)
    np.testing.assert_array_equal(out.values.view(np.uint16), values.numpy().view(np.uint16))
    np.testing.assert_array_equal(out.indices, indices.numpy())


def test_fp16_nan_ranks_above_inf_and_by_payload():
    bits = np.array([[0x7C00], [0x7E00], [0xFC00], [0x7C01]], np.uint16)  # inf, qNaN, -inf, sNaN
    out = prune(bits.view(np.float16), 1, 4)
    assert out.indices.tolist() == [[1]]  # the NaN with the larger payload
    assert magnitude_keys(bits.view(np.float16)).ravel().tolist() == [0x7C00, 0x7E00, 0x7C00,
                                                                      0x7C01]


def test_closed_form_pins_the_schedule():
    # 4 columns on 4 lanes: 8 reads, N writes, start + read latency + capture
    assert prune_cycles(8, 4, 2, 4, 4) == 8 + 2 + 3
    assert prune_cycles(16, 8, 2, 8, 3) == 16 * 3 + 2 + 3  # three passes, last one 2/3 idle
    assert prune_cycles(0, 4, 2, 4, 4) == 2
    assert prune(np.zeros((0, 4), np.int8), 2, 4).cycles == 2


@pytest.mark.parametrize(("args", "message"), [
    ((np.zeros((6, 4), np.int8), 2, 4), r"^rows 6 must be a non-negative multiple of m=4"),
    ((np.zeros((8, 4), np.int8), 5, 4), r"^pattern 5:4 needs integers 1 <= n <= m <= 256"),
    ((np.zeros((8, 4), np.int8), 1, 6), r"^pattern 1:6 needs"),
    ((np.zeros((8, 4), np.float32), 2, 4), r"^src must be a 2-D int8 or float16 array, not "
                                           r"float32 array of shape \(8, 4\)$"),
    ((np.zeros(8, np.int8), 2, 4), r"^src must be a 2-D int8 or float16 array"),
])
def test_prune_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        prune(*args)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_prune_rejects_bad_lanes(bad):
    with pytest.raises(ValueError, match=f"^lanes must be a positive integer, not {bad!r}$"):
        prune(np.zeros((4, 4), np.int8), 2, 4, lanes=bad)


def _cmd(**kw):
    fields = dict(src_buf=isa.Buffer.WGT, src_addr=0, dst_addr=64, idx_addr=0, rows=16,
                  groups=0, n=2, log2m=3, axis=1)
    return isa.Prune(**{**fields, **kw})


@pytest.mark.parametrize(("kw", "field", "why"), [
    ({"axis": 0}, "axis", "axis 0 (groups within an entry) is not implemented"),
    ({"n": 3}, "n", "pattern 3:8 is not supported by config 'tiny'"),
    ({"rows": 12}, "rows", "12 entries are not a whole number of groups of 8"),
    ({"src_buf": isa.Buffer.ACC}, "src_buf", "buffer 2 does not hold entries of 4 operands"),
    ({"src_addr": 250}, "rows", "source entries 250..265 overflow the WGT buffer of 256"),
    ({"dst_addr": 253}, "dst_addr", "value entries 253..256 overflow the WGT buffer of 256"),
    ({"src_addr": 8, "dst_addr": 9}, "dst_addr", "value entries 9..12 would overwrite source"),
])
def test_check_prune_names_the_field(kw, field, why):
    problem = check_prune(_cmd(**kw), preset("tiny"))
    assert problem is not None and problem[0] == field and problem[1].startswith(why)


def test_check_prune_accepts_in_place_and_disjoint_destinations():
    for src, dst in [(8, 8), (8, 0), (0, 16), (20, 4)]:
        assert check_prune(_cmd(src_addr=src, dst_addr=dst), preset("tiny")) is None


def test_prune_cost_of_a_valid_command():
    cfg = dataclasses.replace(preset("small8"), sore=SoreConfig(lanes=4),
                              array=ArrayConfig(rows=8, cols=8))
    cmd = _cmd()
    assert check_prune(cmd, cfg) is None
    cost = prune_cost(cmd, cfg)
    assert cost.cycles == 16 * 2 + 2 + 3
    assert cost.compares == 16 * 8 * 2
    assert cost.energy_pj == pytest.approx(cost.compares * cfg.energy.sore_compare)
    assert cost.sram_read_bytes == 16 * 2 * 8  # two passes re-read every entry
    assert cost.sram_write_bytes == 4 * 8 * 2  # four value entries and four index entries
