"""N:M masks, transposable masks and the compressed format."""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms.nm import compress, decompress, nm_mask, parse_pattern, transposable_mask

PATTERNS = [(1, 4), (2, 4), (1, 8), (2, 8), (4, 8), (3, 3)]


@st.composite
def grouped_tensor(draw, max_groups=6):
    n, m = draw(st.sampled_from(PATTERNS))
    rows = draw(st.integers(1, 4))
    groups = draw(st.integers(1, max_groups))
    # Small integers give many ties, which exercises the tie rule.
    values = draw(
        st.lists(st.integers(-3, 3), min_size=rows * groups * m, max_size=rows * groups * m)
    )
    w = torch.tensor(values, dtype=torch.float64).reshape(rows, groups * m)
    return w, n, m


def reference_mask(w, n, m):
    """Per group, sort (-|w|, index) in Python: the largest n, lower index on ties."""
    out = torch.zeros_like(w, dtype=torch.bool)
    for r in range(w.shape[0]):
        for g in range(w.shape[1] // m):
            items = sorted(range(m), key=lambda i: (-abs(float(w[r, g * m + i])), i))
            for i in items[:n]:
                out[r, g * m + i] = True
    return out


@settings(max_examples=60, deadline=None)
@given(grouped_tensor())
def test_nm_mask_keeps_exactly_n_largest_per_group_lower_index_on_ties(case):
    w, n, m = case
    mask = nm_mask(w, n, m)
    assert mask.dtype == torch.bool
    assert (mask.reshape(w.shape[0], -1, m).sum(-1) == n).all()
    assert torch.equal(mask, reference_mask(w, n, m))


@settings(max_examples=40, deadline=None)
@given(grouped_tensor(), st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
def test_nm_mask_narrow_dtypes_use_the_same_tie_rule(case, dtype):
    w, n, m = case
    w = w * 0.25  # still exact in every dtype, still full of ties
    assert torch.equal(nm_mask(w.to(dtype), n, m), reference_mask(w, n, m))


@settings(max_examples=40, deadline=None)
@given(grouped_tensor())
def test_nm_mask_along_dim0_equals_transposed_mask(case):
    w, n, m = case
    assert torch.equal(nm_mask(w.t().contiguous(), n, m, dim=0), nm_mask(w, n, m).t())


def test_nm_mask_tie_rule_on_explicit_values():
    w = torch.tensor([[1.0, -2.0, 2.0, 0.5, 3.0, 3.0, -3.0, 0.0]])
    assert nm_mask(w, 2, 4).tolist() == [[False, True, True, False, True, True, False, False]]
    assert nm_mask(torch.zeros(1, 8), 2, 8).tolist() == [[True, True] + [False] * 6]


def test_nm_mask_conv_weight_grouped_along_c_in():
    w = torch.randn(3, 8, 2, 2)
    mask = nm_mask(w, 2, 4, dim=1)
    assert (mask.reshape(3, 2, 4, 2, 2).sum(2) == 2).all()
    for o in range(3):
        for i in range(2):
            for j in range(2):
                assert torch.equal(mask[o, :, i, j], nm_mask(w[o, :, i, j][None], 2, 4)[0])


@settings(max_examples=60, deadline=None)
@given(grouped_tensor())
def test_compress_round_trip_is_exact(case):
    w, n, m = case
    sparse = w * nm_mask(w, n, m)
    values, indices = compress(sparse, n, m)
    assert values.shape == (w.shape[0], w.shape[1] // m * n)
    assert indices.dtype == torch.uint8
    idx = indices.long().reshape(w.shape[0], -1, n)
    assert (idx >= 0).all() and (idx < m).all()
    assert (idx[..., 1:] > idx[..., :-1]).all()  # index order
    assert torch.equal(decompress(values, indices, m, n=n), sparse)
    # compressing the dense tensor is the same as compressing its pruned copy
    v2, i2 = compress(w, n, m)
    assert torch.equal(v2, values) and torch.equal(i2, indices)


def test_compress_explicit_format_and_other_dim():
    w = torch.tensor([[0.0, 5.0, 0.0, -7.0, 1.0, 0.0, 0.0, 2.0]])
    values, indices = compress(w, 2, 4)
    assert values.tolist() == [[5.0, -7.0, 1.0, 2.0]]
    assert indices.tolist() == [[1, 3, 0, 3]]
    v0, i0 = compress(w.t(), 2, 4, dim=0)
    assert torch.equal(v0, values.t()) and torch.equal(i0, indices.t())
    assert torch.equal(decompress(v0, i0, 4, dim=0, n=2), w.t())


@st.composite
def block_matrix(draw):
    n, m = draw(st.sampled_from([(1, 4), (2, 4), (3, 4), (2, 8), (4, 8), (1, 8)]))
    r, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-2, 3, (r * m, c * m), generator=g).double()
    if draw(st.booleans()):
        w = torch.randn(r * m, c * m, generator=g, dtype=torch.float64)
    return w, n, m


@settings(max_examples=60, deadline=None)
@given(block_matrix())
def test_transposable_mask_is_nm_along_rows_and_columns(case):
    w, n, m = case
    mask = transposable_mask(w, n, m)
    assert (mask.reshape(w.shape[0], -1, m).sum(-1) == n).all()
    assert (mask.t().reshape(w.shape[1], -1, m).sum(-1) == n).all()
    # the mask serves W and its transpose alike
    assert torch.equal(transposable_mask(w.t().contiguous(), n, m).sum(), mask.sum())


def test_transposable_mask_greedy_keeps_largest_diagonal():
    w = torch.eye(4) * 10 + torch.arange(16.0).reshape(4, 4) * 0.01
    mask = transposable_mask(w, 1, 4)
    assert torch.equal(mask, torch.eye(4, dtype=torch.bool))


def test_transposable_mask_batched_conv_slices():
    w = torch.randn(2, 3, 8, 8)
    mask = transposable_mask(w, 2, 4)
    for a in range(2):
        for b in range(3):
            assert torch.equal(mask[a, b], transposable_mask(w[a, b], 2, 4))


def test_parse_pattern_accepts_n_colon_m():
    assert parse_pattern("2:8") == (2, 8)
    assert parse_pattern(" 1:4 ") == (1, 4)
    assert parse_pattern((4, 8)) == (4, 8)


@pytest.mark.parametrize("bad", ["2-8", "8:2", "0:4", "a:b", "2:8:1", "", "2.0:8", (2,), 28])
def test_parse_pattern_rejects_bad_input(bad):
    message = "pattern must be 'N:M' with integers 1 <= N <= M, such as '2:8', not " + repr(bad)
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_pattern(bad)


@pytest.mark.parametrize("call, message", [
    (lambda: nm_mask(torch.randn(3, 10), 2, 4),
     "nm_mask: size 10 of dim 1 in shape (3, 10) is not divisible by m=4 (pattern 2:4)"),
    (lambda: nm_mask(torch.randn(3, 8), 5, 4), "nm_mask: pattern 5:4 needs integers 1 <= n <= m"),
    (lambda: nm_mask(torch.randn(3, 8), 0, 4), "nm_mask: pattern 0:4 needs integers 1 <= n <= m"),
    (lambda: nm_mask(torch.ones(3, 8, dtype=torch.long), 2, 4),
     "nm_mask: w must be a floating-point tensor, not torch.int64"),
    (lambda: transposable_mask(torch.randn(6, 8), 2, 4),
     "transposable_mask: size 6 of dim 0 in shape (6, 8) is not divisible by m=4"),
    (lambda: transposable_mask(torch.randn(8), 2, 4),
     "transposable_mask: w of shape (8,) needs at least 2 dims"),
    (lambda: decompress(torch.ones(1, 2), torch.tensor([[0, 4]]), 4, n=2),
     "decompress: indices must lie in [0, 4)"),
    (lambda: decompress(torch.ones(1, 2), torch.tensor([[0]]), 4, n=2),
     "decompress: values shape (1, 2) differs"),
])
def test_mask_and_compress_errors_name_shape_and_pattern(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_masks_follow_input_device_and_do_not_track_grad():
    w = torch.randn(4, 8, requires_grad=True)
    mask = nm_mask(w, 2, 4)
    assert mask.device == w.device and not mask.requires_grad
