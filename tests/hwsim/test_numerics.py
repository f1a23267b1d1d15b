"""hwsim.numerics: the bit-exact arithmetic, against numpy/torch and exact integer arithmetic.

numpy's float32 addition and float16 casts are IEEE round-to-nearest-even with gradual
underflow, so they are the reference for every non-NaN result; for NaN results the reference is
the canonical pattern (numpy propagates payloads, the hardware does not).
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from hwsim.numerics import (
    CANONICAL_NAN_F16,
    CANONICAL_NAN_F32,
    bits_f16,
    bits_f32,
    cast_fp16_to_fp32,
    cast_fp32_to_fp16,
    error_bound,
    f16_bits,
    f32_bits,
    fp16_mac,
    fp16_mac_bitlevel,
    fp16_mac_sequence,
    fp16_matmul,
    fp16_mul_exact,
    fp16_mul_exact_array,
    fp16_to_fp32,
    fp32_add,
    fp32_add_array,
    fp32_div_array,
    fp32_sqrt_array,
    fp32_to_fp16,
    gamma,
    int8_matmul,
    matmul_error_bound,
)

MAX32 = 0x7F7FFFFF
MIN_NORMAL32 = 0x00800000
MAX_SUB32 = 0x007FFFFF
ONE32 = 0x3F800000
NEG = 0x80000000

# fmt: off
SPECIAL_F32 = [
    0x00000000, 0x00000001, 0x00000002, 0x00000003, 0x003FFFFF, 0x00400000, MAX_SUB32,
    MIN_NORMAL32, 0x00800001, 0x00FFFFFF, 0x01000000, 0x0C000000, 0x33800000, 0x33800001,
    0x34000000, 0x3F7FFFFF, ONE32, 0x3F800001, 0x3F800002, 0x3FC00000, 0x4B7FFFFF, 0x4B800000,
    0x4B800001, 0x7E800000, 0x7EFFFFFF, 0x7F000000, 0x7F7FFFFE, MAX32, 0x7F800000,
    0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x7FA00000,
]
SPECIAL_F32 = SPECIAL_F32 + [u | NEG for u in SPECIAL_F32]

SPECIAL_F16 = [
    0x0000, 0x0001, 0x0002, 0x0003, 0x01FF, 0x0200, 0x03FF, 0x0400, 0x0401, 0x07FF, 0x3BFF,
    0x3C00, 0x3C01, 0x3E00, 0x3FFF, 0x7BFE, 0x7BFF, 0x7C00, 0x7C01, 0x7E00, 0x7FFF,
]
SPECIAL_F16 = SPECIAL_F16 + [u | 0x8000 for u in SPECIAL_F16]
# fmt: on

u32s = st.integers(0, 2**32 - 1)
u16s = st.integers(0, 2**16 - 1)


def ref_add(a, b):
    """numpy float32 addition on bit patterns, NaN canonicalised."""
    with np.errstate(all="ignore"):
        s = np.asarray(a, np.uint32).view(np.float32) + np.asarray(b, np.uint32).view(np.float32)
    out = np.asarray(s, np.float32).view(np.uint32).copy()
    out[np.isnan(s)] = CANONICAL_NAN_F32
    return out


def ref_mul(a, b):
    """fp16 values widened to float32 (exact) and multiplied by numpy, NaN canonicalised."""
    fa = np.asarray(a, np.uint16).view(np.float16).astype(np.float32)
    fb = np.asarray(b, np.uint16).view(np.float16).astype(np.float32)
    with np.errstate(all="ignore"):
        p = fa * fb
    out = p.view(np.uint32).copy()
    out[np.isnan(p)] = CANONICAL_NAN_F32
    return out


def ref_to16(x):
    with np.errstate(all="ignore"):
        h = np.asarray(x, np.uint32).view(np.float32).astype(np.float16)
    out = h.view(np.uint16).copy()
    out[np.isnan(h)] = CANONICAL_NAN_F16
    return out


def ref_matmul(a16, b16, acc=None):
    """Sequential fp32 accumulation in numpy: one rounded addition per k, over the whole C."""
    a32 = a16.astype(np.float32)
    b32 = b16.astype(np.float32)
    c = np.zeros((a16.shape[0], b16.shape[1]), np.float32) if acc is None else acc.copy()
    with np.errstate(all="ignore"):
        for k in range(a16.shape[1]):
            c = c + np.outer(a32[:, k], b32[k, :])  # products of fp16 values: exact in fp32
    out = c.view(np.uint32).copy()
    out[np.isnan(c)] = CANONICAL_NAN_F32
    return out


def exact_check(a16, b16, c, acc=None):
    """Check ``|c - exact| <= gamma_K (|acc| + |a| @ |b|)`` in exact integer arithmetic.

    Every fp16 value is a multiple of 2^-24 and every float32 value a multiple of 2^-149, so
    in units of 2^-149 all quantities are Python integers. Returns the largest ratio
    error / bound (0 where the bound is 0).
    """
    k = a16.shape[1]
    ai = (a16.astype(np.float64) * 2.0**24).astype(np.int64).astype(object)
    bi = (b16.astype(np.float64) * 2.0**24).astype(np.int64).astype(object)
    scale = 2 ** (149 - 48)
    exact = (ai @ bi) * scale
    mag = (abs(ai) @ abs(bi)) * scale
    units = np.vectorize(_units, otypes=[object])
    if acc is not None:
        exact = exact + units(acc)
        mag = mag + abs(units(acc))
    err = abs(units(c) - exact)
    # gamma_K = K u / (1 - K u) = K / (2^24 - K)
    assert np.all(err * (2**24 - k) <= k * mag), "error exceeds gamma_K * sum |a||b|"
    bound = matmul_error_bound(a16, b16, acc)
    limit = np.vectorize(lambda b: _units(b, exact_float=True), otypes=[object])(bound)
    assert np.all(limit * (2**24 - k) >= k * mag), "matmul_error_bound below gamma_K * sum"
    pairs = zip(err.flat, mag.flat, strict=True)
    ratio = [float(e * (2**24 - k)) / float(k * m) for e, m in pairs if m]
    return max(ratio, default=0.0)


def _units(x, exact_float=False):
    """A float32 (or, with exact_float, float64 rounded up) value in units of 2^-149."""
    p, q = float(x).as_integer_ratio()
    if exact_float:
        return -((-p * 2**149) // q)
    assert (2**149) % q == 0
    return p * (2**149 // q)


def wide_range_fp16(rng, shape, sub=True):
    """fp16 values whose exponents are spread over the whole range, random signs."""
    e_lo = -24 if sub else -14
    mags = rng.uniform(1, 2, shape) * 2.0 ** rng.integers(e_lo, 12, shape)
    return (mags * rng.choice([-1, 1], shape)).astype(np.float16)


# ---------------------------------------------------------------- bit views


def test_bit_views_known_patterns_and_round_trips():
    assert f32_bits(1.0) == ONE32 and isinstance(f32_bits(1.0), np.uint32)
    assert f32_bits(-0.0) == NEG
    assert bits_f32(0x40490FDB) == np.float32(np.pi)
    assert f16_bits(1.0) == 0x3C00 and f16_bits(-2.0) == 0xC000
    assert np.isinf(bits_f16(0x7C00)) and bits_f16(0x0001) == np.float16(2.0**-24)
    u = np.arange(0, 2**16, dtype=np.uint16)
    assert np.array_equal(f16_bits(bits_f16(u)), u)
    v = np.array([0, 1, MAX32, 0xFF800000, 0x7FC00001], np.uint32)
    assert np.array_equal(f32_bits(bits_f32(v)), v)


# ---------------------------------------------------------------- fp32 addition


def test_fp32_add_all_special_value_pairs_match_numpy():
    a, b = np.meshgrid(np.array(SPECIAL_F32, np.uint32), np.array(SPECIAL_F32, np.uint32))
    assert np.array_equal(fp32_add_array(a, b), ref_add(a, b))


@pytest.mark.parametrize(
    ("a", "b", "expected", "why"),
    [
        (ONE32, 0x33800000, ONE32, "1 + 2^-24: tie, 1.0 is even"),
        (0x3F800001, 0x33800000, 0x3F800002, "(1+2^-23) + 2^-24: tie, rounds up to even"),
        (ONE32, 0x33800001, 0x3F800001, "just above the tie rounds up"),
        (ONE32, 0x337FFFFF, ONE32, "just below the tie rounds down"),
        (0x4B800000, ONE32, 0x4B800000, "2^24 + 1: tie, stays even"),
        (0x4B800000, 0x40400000, 0x4B800002, "2^24 + 3: tie, up to 2^24 + 4"),
        (ONE32, 0xB3800000, 0x3F7FFFFF, "1 - 2^-24 is representable: exact"),
        (ONE32, 0xB3000000, ONE32, "1 - 2^-25: tie below 1.0, 1.0 is even"),
        (ONE32, 0xB3000001, 0x3F7FFFFF, "1 - (2^-25 + tiny): rounds down, sticky decides"),
        (0x3F7FFFFF, 0x33800000, ONE32, "(1 - 2^-24) + 2^-24 = 1 exactly: carry renormalises"),
        (0x3FFFFFFF, 0x34000000, 0x40000000, "rounding carry bumps the exponent"),
    ],
)
def test_fp32_add_hand_constructed_ties_round_to_nearest_even(a, b, expected, why):
    assert fp32_add(a, b) == expected, why
    assert fp32_add(b, a) == expected, why
    assert ref_add([a], [b])[0] == expected, why


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (0x00000000, NEG, 0x00000000),
        (NEG, 0x00000000, 0x00000000),
        (NEG, NEG, NEG),
        (0x00000000, 0x00000000, 0x00000000),
        (ONE32, ONE32 | NEG, 0x00000000),
        (ONE32 | NEG, ONE32, 0x00000000),
        (0x00000001 | NEG, 0x00000001, 0x00000000),
        (NEG, ONE32 | NEG, ONE32 | NEG),
        (0x00000001 | NEG, NEG, 0x00000001 | NEG),
    ],
)
def test_fp32_add_signed_zeros(a, b, expected):
    assert fp32_add(a, b) == expected


def test_fp32_add_inf_minus_inf_and_every_nan_input_give_canonical_nan():
    assert fp32_add(0x7F800000, 0xFF800000) == CANONICAL_NAN_F32
    assert fp32_add(0xFF800000, 0x7F800000) == CANONICAL_NAN_F32
    for nan in (0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF, 0x7FA5A5A5):
        for other in (0, ONE32, 0x7F800000, 0xFF800000, nan):
            assert fp32_add(nan, other) == CANONICAL_NAN_F32
            assert fp32_add(other, nan) == CANONICAL_NAN_F32
    assert fp32_add(0x7F800000, 0x7F800000) == 0x7F800000
    assert fp32_add(0xFF800000, MAX32) == 0xFF800000


def test_fp32_add_overflow_rounds_to_inf():
    assert fp32_add(MAX32, MAX32) == 0x7F800000
    assert fp32_add(MAX32 | NEG, MAX32 | NEG) == 0xFF800000
    # half an ulp of MAX (2^103) is a tie; MAX's significand is odd, so it rounds up: inf
    assert fp32_add(MAX32, 0x73000000) == 0x7F800000
    assert fp32_add(MAX32, 0x72FFFFFF) == MAX32
    assert fp32_add(0x7F000000, 0x7F000000) == 0x7F800000  # 2^127 + 2^127 = 2^128


def test_fp32_add_subnormal_operands_and_results_are_exact():
    assert fp32_add(0x00000001, 0x00000001) == 0x00000002
    assert fp32_add(MAX_SUB32, 0x00000001) == MIN_NORMAL32  # carry into the exponent
    assert fp32_add(MIN_NORMAL32, 0x00000001 | NEG) == MAX_SUB32  # back into subnormals
    assert fp32_add(0x00C00000, MIN_NORMAL32 | NEG) == 0x00400000  # 1.5*2^-126 - 2^-126
    assert fp32_add(0x00800003, 0x00800001 | NEG) == 0x00000002  # cancellation to 2 ulps
    assert fp32_add(ONE32, 0x00000001) == ONE32  # far below the sticky bit


@settings(max_examples=500, deadline=None)
@given(u32s, u32s)
def test_fp32_add_random_bit_patterns_match_numpy(a, b):
    assert fp32_add(a, b) == ref_add([a], [b])[0]


@settings(max_examples=500, deadline=None)
@given(u32s, st.integers(-30, 30), st.integers(0, 2**23 - 1), st.booleans())
def test_fp32_add_near_exponents_and_cancellation_match_numpy(a, de, mant, flip):
    # the alignment, sticky and normalisation logic only matters for nearby exponents
    e = min(max(((a >> 23) & 0xFF) + de, 0), 254)
    b = ((a & NEG) ^ (NEG if flip else 0)) | (e << 23) | mant
    assert fp32_add(a, b) == ref_add([a], [b])[0]


def test_fp32_add_four_million_structured_pairs_match_numpy():
    rng = np.random.default_rng(4)
    n = 1_000_000
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    sign = rng.integers(0, 2, n, dtype=np.uint32) << np.uint32(31)
    near = (a & np.uint32(0x7F800000)) + (rng.integers(-4, 5, n) << 23).astype(np.uint32)
    near = (near & np.uint32(0x7F800000)) | sign | rng.integers(0, 2**23, n, dtype=np.uint32)
    low = rng.integers(0, 2**25, n, dtype=np.uint32) | sign  # subnormals and smallest normals
    for b in (rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32), near, low):
        assert np.array_equal(fp32_add_array(a, b), ref_add(a, b))
    a_low = rng.integers(0, 2**25, n, dtype=np.uint32)
    assert np.array_equal(fp32_add_array(a_low, low), ref_add(a_low, low))


# ---------------------------------------------------------------- fp16 products


def test_fp16_mul_exact_every_fp16_times_special_values_matches_numpy_and_float64():
    a = np.arange(2**16, dtype=np.uint16)[:, None]
    b = np.array(SPECIAL_F16, np.uint16)[None, :]
    got = fp16_mul_exact_array(a, b)
    assert np.array_equal(got, ref_mul(a, b))
    # exact: the float32 result equals the float64 product of the same inputs
    with np.errstate(all="ignore"):
        p64 = bits_f16(a).astype(np.float64) * bits_f16(b).astype(np.float64)
    finite = np.isfinite(p64)
    assert np.array_equal(got.view(np.float32)[finite].astype(np.float64), p64[finite])


def test_fp16_mul_exact_subnormal_products_are_exact_fp32_normals():
    assert fp16_mul_exact(0x0001, 0x0001) == 0x27800000  # 2^-24 * 2^-24 = 2^-48, field 79
    assert fp16_mul_exact(0x03FF, 0x03FF) == f32_bits((1023 * 2.0**-24) ** 2)
    assert fp16_mul_exact(0x7BFF, 0x7BFF) == f32_bits(65504.0**2)  # exact: 22-bit product
    assert fp16_mul_exact(0x0001, 0x7BFF) == f32_bits(65504.0 * 2.0**-24)
    b = np.array(SPECIAL_F16, np.uint16)
    every = fp16_mul_exact_array(np.arange(2**16, dtype=np.uint16)[:, None], b)
    exp_field = (every >> 23) & 0xFF
    finite_nonzero = (exp_field != 0xFF) & ((every & 0x7FFFFFFF) != 0)
    assert exp_field[finite_nonzero].min() == 79 and exp_field[finite_nonzero].max() <= 158


def test_fp16_mul_exact_zero_sign_inf_and_nan():
    assert fp16_mul_exact(0x0000, 0xBC00) == NEG  # +0 * -1 = -0
    assert fp16_mul_exact(0x8000, 0x8000) == 0x00000000
    assert fp16_mul_exact(0x7C00, 0x0000) == CANONICAL_NAN_F32  # inf * 0
    assert fp16_mul_exact(0x8000, 0xFC00) == CANONICAL_NAN_F32
    assert fp16_mul_exact(0x7C00, 0x8001) == 0xFF800000  # inf * -subnormal
    assert fp16_mul_exact(0xFE01, 0x3C00) == CANONICAL_NAN_F32  # payload dropped


@settings(max_examples=500, deadline=None)
@given(u16s, u16s)
def test_fp16_mul_exact_random_pairs_match_numpy(a, b):
    assert fp16_mul_exact(a, b) == ref_mul([a], [b])[0]


@njit(cache=True)
def _count_inexact_products(lo, hi):
    """Over a in [lo, hi), all b: count bit-level products that differ from the FPU's float32
    product or whose float32 product differs from the float64 product (i.e. was rounded)."""
    bad = 0
    for a in range(lo, hi):
        fa = np.uint32(fp16_to_fp32(a)).view(np.float32)
        for b in range(65536):
            fb = np.uint32(fp16_to_fp32(b)).view(np.float32)
            p32 = np.float32(fa * fb)
            if p32 != p32:
                if fp16_mul_exact(a, b) != CANONICAL_NAN_F32:
                    bad += 1
            elif fp16_mul_exact(a, b) != p32.view(np.uint32):
                bad += 1  # the bit-level multiplier disagrees with the FPU
            elif np.float64(p32) != np.float64(fa) * np.float64(fb):
                bad += 1  # the FPU had to round: the product was not exact in fp32
    return bad


@pytest.mark.slow
def test_fp16_mul_exact_all_2_32_pairs():
    assert _count_inexact_products(0, 2**16) == 0


# ---------------------------------------------------------------- conversions


def test_fp16_to_fp32_all_65536_patterns_match_numpy():
    u = np.arange(2**16, dtype=np.uint16)
    ref = u.view(np.float16).astype(np.float32)
    want = ref.view(np.uint32).copy()
    want[np.isnan(ref)] = CANONICAL_NAN_F32
    assert np.array_equal(cast_fp16_to_fp32(u).view(np.uint32), want)
    assert fp16_to_fp32(0x0001) == f32_bits(2.0**-24)


def test_fp32_to_fp16_every_exponent_and_rounding_case_matches_numpy():
    # mantissas around the 13 dropped bits: ties with even and odd kept LSB, sticky variants
    mants = [0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x3000, 0x3001, 0x2FFF,
             0x400000, 0x3FF000, 0x7FE000, 0x7FF000, 0x7FF001, 0x7FFFFF]  # fmt: skip
    mants += list(np.random.default_rng(16).integers(0, 2**23, 48))
    e = np.arange(256, dtype=np.uint32)[:, None, None]
    m = np.array(mants, np.uint32)[None, :, None]
    s = np.array([0, NEG], np.uint32)[None, None, :]
    x = (s | (e << np.uint32(23)) | m).ravel()
    assert np.array_equal(cast_fp32_to_fp16(x).view(np.uint16), ref_to16(x))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (65504.0, 0x7BFF),
        (65519.99609375, 0x7BFF),  # below the tie with 65536: down to MAX
        (65520.0, 0x7C00),  # the tie: the even neighbour is "65536", i.e. overflow to inf
        (-1e6, 0xFC00),
        (2.0**-25, 0x0000),  # half the smallest subnormal: tie to even zero
        (np.nextafter(np.float32(2.0**-25), np.float32(1)), 0x0001),
        (3 * 2.0**-25, 0x0002),  # 1.5 ulp: tie, even is 2
        (2.0**-14 - 2.0**-25, 0x0400),  # MAX subnormal + half ulp: tie up to MIN normal
        (-(2.0**-30), 0x8000),  # underflow keeps the sign
        (1.0 + 2.0**-11, 0x3C00),  # tie at 1.0
        (1.0 + 3 * 2.0**-11, 0x3C02),  # tie, odd LSB: up
    ],
)
def test_fp32_to_fp16_hand_cases(value, expected):
    assert fp32_to_fp16(f32_bits(value)) == expected
    with np.errstate(over="ignore"):
        assert f16_bits(np.float32(value).astype(np.float16)) == expected


def test_fp32_to_fp16_nan_is_canonical():
    for nan in (0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FFFFFFF):
        assert fp32_to_fp16(nan) == CANONICAL_NAN_F16


@settings(max_examples=500, deadline=None)
@given(u32s)
def test_fp32_to_fp16_random_bit_patterns_match_numpy(x):
    assert fp32_to_fp16(x) == ref_to16([x])[0]


@pytest.mark.slow
def test_fp32_to_fp16_all_inputs_that_can_round_match_numpy():
    # exponent fields 102..142 are the inputs whose result is not already fixed by the exponent
    # (<= 101: below 2^-25, always +-0; >= 143: at least 2^16, always +-inf): all 2^23
    # mantissas of each, both signs, plus one exponent of margin each side (about a minute)
    for sign in (0, 1):
        for e in range(101, 144):
            lo = (sign << 31) | (e << 23)
            x = np.arange(lo, lo + 2**23, dtype=np.uint32)
            assert np.array_equal(cast_fp32_to_fp16(x).view(np.uint16), ref_to16(x)), hex(lo)


# ---------------------------------------------------------------- PE accumulation


@settings(max_examples=100, deadline=None)
@given(
    u32s,
    st.lists(st.tuples(st.sampled_from(SPECIAL_F16) | u16s, u16s), min_size=0, max_size=40),
)
def test_fp16_mac_sequence_matches_numpy_step_by_step(acc0, pairs):
    a = np.array([p[0] for p in pairs], np.uint16)
    b = np.array([p[1] for p in pairs], np.uint16)
    acc = np.array([acc0], np.uint32)
    for k in range(len(pairs)):
        step = ref_add(acc, ref_mul(a[k : k + 1], b[k : k + 1]))
        assert fp16_mac(acc[0], a[k], b[k]) == step[0]
        acc = step
    assert fp16_mac_sequence(acc0, a, b) == acc[0]
    assert fp16_mac_sequence(acc0, a.view(np.float16), b.view(np.float16)) == acc[0]


@njit(cache=True)
def _mac_mismatches(n, seed, specials32, specials16):
    """Over ``n`` structured random (acc, a, b), count where :func:`fp16_mac` (host float32
    adder) and :func:`fp16_mac_bitlevel` (integer datapath) differ; also return how many
    cases hit each accumulator kind, so a test can check the mix really reached them."""
    np.random.seed(seed)
    bad = 0
    kinds = np.zeros(6, np.int64)
    for _ in range(n):
        ops = np.zeros(2, np.int64)
        for t in range(2):
            r = np.random.randint(0, 4)
            if r == 0:
                ops[t] = specials16[np.random.randint(0, specials16.size)]
            elif r == 1:  # subnormal or tiny normal: exponent field 0..2
                ops[t] = np.random.randint(0, 3 << 10) | np.random.randint(0, 2) << 15
            else:
                ops[t] = np.random.randint(0, 1 << 16)
        a, b = ops[0], ops[1]
        p = np.int64(fp16_mul_exact(a, b))
        kind = np.random.randint(0, 6)
        if kind == 0:
            acc = np.random.randint(0, 1 << 32)
        elif kind == 1:
            acc = specials32[np.random.randint(0, specials32.size)]
        elif kind == 2:  # near cancellation: -p give or take a few ulps
            acc = ((p ^ 0x80000000) + np.random.randint(-8, 9)) & 0xFFFFFFFF
        elif kind == 3:  # p shifted 0..30 binades up or down, random low bits: ties, sticky
            d = np.random.randint(-30, 31)
            acc = (p + (d << 23)) ^ np.random.randint(0, 1 << np.random.randint(0, 24))
            acc = (acc ^ (np.random.randint(0, 2) << 31)) & 0xFFFFFFFF
        elif kind == 4:  # subnormal accumulator, or +-0
            acc = np.random.randint(0, 1 << np.random.randint(0, 24))
            acc |= np.random.randint(0, 2) << 31
        else:  # around the overflow threshold
            acc = (0x7F7FFFFF - np.random.randint(0, 1 << 20)) | np.random.randint(0, 2) << 31
        kinds[kind] += 1
        if fp16_mac(acc, a, b) != fp16_mac_bitlevel(acc, a, b):
            bad += 1
    return bad, kinds


def test_fp16_mac_equals_bit_level_datapath_on_four_million_structured_cases():
    s32 = np.array(SPECIAL_F32, np.int64)
    s16 = np.array(SPECIAL_F16, np.int64)
    bad, kinds = _mac_mismatches(4_000_000, 1, s32, s16)
    assert bad == 0 and kinds.min() > 600_000


def test_fp16_mac_equals_bit_level_datapath_on_every_special_triple():
    s32 = np.array(SPECIAL_F32, np.uint32)
    s16 = np.array(SPECIAL_F16, np.uint16)
    for acc in s32:
        for a in s16:
            for b in s16:
                assert fp16_mac(acc, a, b) == fp16_mac_bitlevel(acc, a, b), (acc, a, b)


def test_fp16_mac_is_unchanged_by_flush_to_zero_and_denormals_are_zero():
    """torch.set_flush_denormal switches the FPU's FTZ/DAZ modes on for this thread, which
    flushes fp32 subnormals in numpy and Numba code; fp16_mac's bits must not move."""
    s32 = np.array(SPECIAL_F32, np.int64)
    s16 = np.array(SPECIAL_F16, np.int64)
    tiny = np.array([2.0**-140], np.float32)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-to-zero mode")
    try:
        assert tiny[0] * np.float32(1.0) == 0.0  # the mode is really on
        bad, _ = _mac_mismatches(300_000, 2, s32, s16)
        subnormal_acc = [fp16_mac(0x00000001, 0x0000, 0x3C00), fp16_mac(0x807FFFFF, 0x8000, 0)]
    finally:
        torch.set_flush_denormal(False)
    assert tiny[0] * np.float32(1.0) != 0.0
    assert bad == 0
    assert subnormal_acc == [0x00000001, 0x807FFFFF]


@settings(max_examples=500, deadline=None)
@given(u32s | st.sampled_from(SPECIAL_F32), st.sampled_from(SPECIAL_F16) | u16s, u16s)
def test_fp16_mac_random_triples_equal_bit_level_datapath(acc, a, b):
    assert fp16_mac(acc, a, b) == fp16_mac_bitlevel(acc, a, b)


@pytest.mark.slow
def test_fp16_mac_equals_bit_level_datapath_on_200_million_structured_cases():
    s32 = np.array(SPECIAL_F32, np.int64)
    s16 = np.array(SPECIAL_F16, np.int64)
    assert _mac_mismatches(200_000_000, 3, s32, s16)[0] == 0


def test_fp16_mac_sequence_order_matters_and_is_increasing_k():
    # 1 + 2^-24 + 2^-24: each addition ties back to 1.0; adding the small ones first gives more
    a = np.array([1.0, 2.0**-12, 2.0**-12], np.float16)
    assert fp16_mac_sequence(0, a, a) == ONE32
    assert fp16_mac_sequence(0, a[::-1], a[::-1]) == 0x3F800001


def test_fp16_mac_sequence_rejects_bad_input():
    with pytest.raises(ValueError, match=r"1-D of equal length, not shapes \(2,\) and \(3,\)"):
        fp16_mac_sequence(0, np.zeros(2, np.float16), np.zeros(3, np.float16))
    with pytest.raises(TypeError, match="a_fp16 must be float16 values or uint16 bit patterns"):
        fp16_mac_sequence(0, np.zeros(2, np.float32), np.zeros(2, np.float16))
    with pytest.raises(ValueError, match=r"acc0_bits must be a 32-bit pattern"):
        fp16_mac_sequence(2**32, np.zeros(2, np.float16), np.zeros(2, np.float16))


@pytest.mark.parametrize(
    "kind", ["normal", "wide_range", "specials", "accumulate", "subnormal_accumulator"]
)
def test_fp16_matmul_equals_sequential_fp32_reference_bit_for_bit(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    m, k, n = 37, 150, 29
    if kind == "normal":
        a = rng.standard_normal((m, k)).astype(np.float16)
        b = rng.standard_normal((k, n)).astype(np.float16)
    else:
        a, b = wide_range_fp16(rng, (m, k)), wide_range_fp16(rng, (k, n))
    acc = None
    if kind == "specials":
        a.flat[rng.integers(0, a.size, 6)] = np.array([np.inf, -np.inf, np.nan, 0, -0.0, 65504])
        b.flat[rng.integers(0, b.size, 4)] = np.array([np.inf, -0.0, 2.0**-24, -65504])
    if kind == "accumulate":
        acc = (rng.standard_normal((m, n)) * 1e3).astype(np.float32)
    if kind == "subnormal_accumulator":
        # fp32 subnormals reach a PE only through its initial value: rows of zero products
        # (+0 and -0) must leave it untouched, other rows absorb it
        acc = bits_f32(rng.integers(1, 2**23, (m, n)) | rng.integers(0, 2, (m, n)) << 31)
        a[::2] = np.where(rng.uniform(size=a[::2].shape) < 0.5, 0.0, -0.0)
    got = fp16_matmul(a, b, acc=acc)
    assert got.dtype == np.float32 and got.shape == (m, n)
    assert np.array_equal(got.view(np.uint32), ref_matmul(a, b, acc))
    if kind == "specials":
        assert np.isnan(got).any() and np.isinf(got).any()
    if kind == "subnormal_accumulator":
        assert np.array_equal(got[::2].view(np.uint32), acc[::2].view(np.uint32))


def test_fp16_matmul_accepts_bit_patterns_and_equals_mac_sequence():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2**16, (5, 9), dtype=np.uint16)
    b = rng.integers(0, 2**16, (9, 4), dtype=np.uint16)
    acc = rng.integers(0, 2**32, (5, 4), dtype=np.uint64).astype(np.uint32)
    got = fp16_matmul(a, b, acc=acc).view(np.uint32)
    for i in range(5):
        for j in range(4):
            assert got[i, j] == fp16_mac_sequence(acc[i, j], a[i], b[:, j])


def test_fp16_matmul_empty_reduction_returns_accumulator():
    acc = np.array([[-0.0, 1.5]], np.float32)
    out = fp16_matmul(np.zeros((1, 0), np.float16), np.zeros((0, 2), np.float16), acc=acc)
    assert np.array_equal(out.view(np.uint32), acc.view(np.uint32))
    assert f32_bits(fp16_matmul(np.zeros((1, 0), np.float16), np.zeros((0, 1), np.float16))) == 0


def test_fp16_matmul_rejects_bad_input():
    a = np.zeros((2, 3), np.float16)
    with pytest.raises(ValueError, match=r"order must be 'sequential', not 'pairwise'"):
        fp16_matmul(a, a.T, order="pairwise")
    with pytest.raises(ValueError, match=r"not shapes \(2, 3\) and \(2, 3\)"):
        fp16_matmul(a, a)
    with pytest.raises(TypeError, match="b must be float16 values or uint16 bit patterns"):
        fp16_matmul(a, a.T.astype(np.float32))
    with pytest.raises(ValueError, match=r"acc must have shape \(2, 2\), not \(2, 3\)"):
        fp16_matmul(a, a.T, acc=np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="acc must be float32 values or uint32 bit patterns"):
        fp16_matmul(a, a.T, acc=np.zeros((2, 2), np.float64))


# ---------------------------------------------------------------- int8


def test_int8_matmul_matches_int64_reference_and_wraps():
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, (31, 77), dtype=np.int8)
    b = rng.integers(-128, 128, (77, 13), dtype=np.int8)
    want = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(int8_matmul(a, b), want)
    # 2^17 products of (-128)(-128) = 2^31: one past INT32_MAX wraps to INT32_MIN
    col = np.full((1, 2**17), -128, np.int8)
    assert int8_matmul(col, col.T)[0, 0] == -(2**31)
    one = np.ones((1, 1), np.int8)
    acc = np.array([[2**31 - 1]], np.int32)
    assert int8_matmul(one, one, acc=acc)[0, 0] == -(2**31)
    assert int8_matmul(one, -one, acc=np.array([[-(2**31)]], np.int32))[0, 0] == 2**31 - 1
    assert int8_matmul(a, b).dtype == np.int32


def test_int8_matmul_rejects_bad_input():
    a = np.zeros((2, 3), np.int8)
    with pytest.raises(TypeError, match="b must be int8, not dtype int16"):
        int8_matmul(a, a.T.astype(np.int16))
    with pytest.raises(ValueError, match=r"not shapes \(2, 3\) and \(2, 3\)"):
        int8_matmul(a, a)
    with pytest.raises(TypeError, match="acc must be int32, not dtype int64"):
        int8_matmul(a, a.T, acc=np.zeros((2, 2), np.int64))


# ---------------------------------------------------------------- error bound


def test_gamma_and_error_bound_values_and_domain():
    assert gamma(0) == 0.0
    assert gamma(256) == 256 * 2.0**-24 / (1 - 256 * 2.0**-24)
    assert error_bound(256, 2.0) >= 2 * gamma(256)
    assert error_bound(256, 2.0) <= 2 * gamma(256) * (1 + 2.0**-40)
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 2\*\*24\), not 16777216"):
        gamma(2**24)
    with pytest.raises(ValueError, match=r"not -1"):
        error_bound(-1, 1.0)


@pytest.mark.parametrize(
    ("dist", "shape"),
    [("normal", (24, 256, 20)), ("wide_range", (24, 256, 20)), ("uniform", (4, 4096, 4))],
)
def test_fp16_matmul_and_torch_stay_within_gamma_k_bound(dist, shape):
    m, k, n = shape
    rng = np.random.default_rng(k + m)
    if dist == "normal":
        a = rng.standard_normal((m, k)).astype(np.float16)
        b = rng.standard_normal((k, n)).astype(np.float16)
    elif dist == "wide_range":
        a, b = wide_range_fp16(rng, (m, k)), wide_range_fp16(rng, (k, n))
    else:  # all positive: errors cannot cancel, they grow with k
        a = rng.uniform(0, 1, (m, k)).astype(np.float16)
        b = rng.uniform(0, 1, (k, n)).astype(np.float16)
    ours = fp16_matmul(a, b)
    theirs = (torch.from_numpy(a).float() @ torch.from_numpy(b).float()).numpy()
    assert exact_check(a, b, ours) <= 1.0
    assert exact_check(a, b, theirs) <= 1.0
    # both within the bound of the exact result, so within twice the bound of each other
    bound = matmul_error_bound(a, b)
    assert np.all(np.abs(ours.astype(np.float64) - theirs) <= 2 * bound)


def test_error_bound_is_nearly_attained_by_ties_that_stagnate():
    # products 1, then 2^-24 (k-1) times: every addition is a tie that rounds back to 1.0
    k = 256
    a = np.full((1, k), 2.0**-12, np.float16)
    a[0, 0] = 1.0
    ours = fp16_matmul(a, a.T)
    assert f32_bits(ours[0, 0]) == ONE32
    ratio = exact_check(a, a.T, ours)
    assert 0.99 < ratio <= 1.0


@pytest.mark.parametrize("case", ["cancellation", "accumulate_large", "alternating"])
def test_error_bound_holds_on_adversarial_inputs(case):
    rng = np.random.default_rng(len(case))
    k = 512
    acc = None
    a = np.ones((3, k), np.float16)
    if case == "cancellation":
        # huge terms that cancel exactly, with small ones absorbed in between
        b = (rng.uniform(-1, 1, (k, 2)) * 2.0**-8).astype(np.float16)
        b[0], b[-1] = 30000.0, -30000.0
        b[k // 2] = 60000.0
        b[k // 2 + 1] = -60000.0
    elif case == "accumulate_large":
        b = (rng.uniform(0, 1, (k, 2)) * 2.0**-10).astype(np.float16)
        acc = np.array([[2.0**20, -(2.0**20)]] * 3, np.float32)
    else:
        b = np.where(np.arange(k) % 2, 1, -1)[:, None] * (1 + rng.uniform(0, 1e-2, (k, 2)))
        b = b.astype(np.float16)
        a[:, ::3] = np.float16(2.0**-20)
    ours = fp16_matmul(a, b, acc=acc)
    assert exact_check(a, b, ours, acc) <= 1.0
    assert np.array_equal(ours.view(np.uint32), ref_matmul(a, b, acc))


# ---------------------------------------------------------------- division and square root
# numpy's float32 division and sqrt are IEEE correctly rounded (SSE divss / sqrtss, default
# rounding, no flush to zero): the reference for every non-NaN result.


def _canonical(ref):
    bits = ref.view(np.uint32).copy()
    bits[np.isnan(ref)] = CANONICAL_NAN_F32
    return bits


def _patterns(rng, n):
    """Random fp32 patterns: a quarter subnormal, a quarter near 1, the rest any pattern."""
    x = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    q = n // 4
    x[:q] = rng.integers(0, 2**23, q, dtype=np.uint32)
    x[q:2 * q] = rng.integers(0x3E000000, 0x41000000, q, dtype=np.uint32)
    x[:2 * q] |= rng.integers(0, 2, 2 * q, dtype=np.uint32) << 31
    return rng.permutation(x)


def test_fp32_div_matches_numpy_on_special_and_random_operands():
    sp = np.array(SPECIAL_F32, np.uint32)
    a, b = (x.ravel() for x in np.meshgrid(sp, sp))
    rng = np.random.default_rng(21)
    a = np.concatenate([a, _patterns(rng, 1_000_000)])
    b = np.concatenate([b, _patterns(rng, 1_000_000)])
    # quotients in the subnormal range (rounded on the 2**-149 grid) and near overflow
    c = rng.integers(1, 2**26, 200_000, dtype=np.uint32)
    d = rng.integers(0x3F000000, 0x4D000000, 200_000, dtype=np.uint32)
    e = rng.integers(0x7E000000, 0x7F800000, 200_000, dtype=np.uint32)
    a = np.concatenate([a, c, e])
    b = np.concatenate([b, d, rng.integers(0x3E800000, 0x3F800000, 200_000, dtype=np.uint32)])
    with np.errstate(all="ignore"):
        ref = a.view(np.float32) / b.view(np.float32)
    got = fp32_div_array(a, b)
    assert np.array_equal(got, _canonical(ref))
    assert np.count_nonzero((got & 0x7F800000) == 0) > 100_000  # subnormal results were tried


def test_fp32_sqrt_matches_numpy_on_special_and_random_operands():
    rng = np.random.default_rng(22)
    a = np.concatenate([np.array(SPECIAL_F32, np.uint32), _patterns(rng, 2_000_000)])
    with np.errstate(invalid="ignore"):
        ref = np.sqrt(a.view(np.float32))
    got = fp32_sqrt_array(a)
    assert np.array_equal(got, _canonical(ref))
    assert fp32_sqrt_array(np.array([0x80000000], np.uint32))[0] == 0x80000000  # sqrt(-0) = -0


@pytest.mark.slow
def test_fp32_sqrt_all_positive_patterns_match_numpy():
    for lo in range(0, 2**31, 2**26):  # every non-negative pattern, NaNs included (minutes)
        a = np.arange(lo, lo + 2**26, dtype=np.uint32)
        with np.errstate(invalid="ignore"):  # signalling NaNs
            ref = np.sqrt(a.view(np.float32))
        assert np.array_equal(fp32_sqrt_array(a), _canonical(ref)), lo
