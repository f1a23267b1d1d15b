# amaranth: UnusedElaboratable=no
"""Fast tier: the Adam row update's fp32 divider and square rooter in Amaranth's simulator
against :func:`hwsim.numerics.fp32_div` and :func:`hwsim.numerics.fp32_sqrt`, and against the
host's IEEE float32 ``/`` and ``sqrt`` (numpy), bit for bit."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hwsim.numerics import CANONICAL_NAN_F32, fp32_div_array, fp32_sqrt_array
from rtl.fp32 import DIV_STEPS, SQRT_STEPS, fp32_div, fp32_sqrt
from tests.rtl.comb_bench import run_clocked, run_comb
from tests.rtl.fp_corners import F32_CORNERS

# F32_CORNERS plus 2, 3, 4, 0.5, -0.75, 1.5, the two smallest subnormals above 2**-149, a mid
# subnormal, 2**-127 (subnormal whose reciprocal overflows), the largest subnormal's neighbours,
# 2**126, 2**-126 + 1 ulp, a large odd significand and its negation
CORNERS = F32_CORNERS + [0x40000000, 0x40400000, 0x40800000, 0x3F000000, 0xBF400000,
                         0x3FC00000, 0x00000002, 0x00000003, 0x00400000, 0x00200000,
                         0x007FFFFE, 0x7E800000, 0x00800001, 0x4B7FFFFF, 0xCB7FFFFF]


def _u32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64).astype(np.uint32)


def _simulate_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    pairs = list(zip(x.tolist(), y.tolist(), strict=True))
    return _u32(run_comb(lambda m, a, b: fp32_div(m, a, b), pairs))


def _simulate_sqrt(x: np.ndarray) -> np.ndarray:
    pairs = [(v, 0) for v in x.tolist()]
    return _u32(run_comb(lambda m, a, b: fp32_sqrt(m, a), pairs))


def _ieee(ref: np.ndarray) -> np.ndarray:
    """The host's float32 results as bit patterns, every NaN replaced by the canonical one."""
    bits = ref.astype(np.float32).view(np.uint32).copy()
    bits[np.isnan(ref)] = CANONICAL_NAN_F32
    return bits


def _numpy_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _ieee(x.view(np.float32) / y.view(np.float32))


def _numpy_sqrt(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _ieee(np.sqrt(x.view(np.float32)))


def _assert_bits_equal(got: np.ndarray, expect: np.ndarray, *operands: np.ndarray) -> None:
    bad = np.flatnonzero(got != expect)
    if bad.size:
        rows = [" ".join(f"{int(o[i]):08x}" for o in operands)
                + f" -> {int(got[i]):08x}, expected {int(expect[i]):08x}" for i in bad[:8]]
        raise AssertionError(f"{bad.size} of {got.size} differ:\n" + "\n".join(rows))


def _patterns(rng, n: int, exp_lo: int, exp_hi: int) -> np.ndarray:
    """``n`` binary32 patterns, random sign, exponent field in ``[exp_lo, exp_hi)``, and
    significands that are random odd numbers shifted left by 0..22 (so that quotients and
    roots with a remainder in any bit position and exact ones both occur)."""
    frac = ((rng.integers(0, 2**23, n) | 1) << rng.integers(0, 23, n)) & 0x7FFFFF
    frac = np.where(rng.random(n) < 0.5, rng.integers(0, 2**23, n), frac)
    sign = rng.integers(0, 2, n) << 31
    return _u32(sign | (rng.integers(exp_lo, exp_hi, n) << 23) | frac)


def _subnormals(rng, n: int) -> np.ndarray:
    """``n`` random subnormal patterns with 0..22 leading zeros, random sign."""
    frac = rng.integers(1, 2**23, n) >> rng.integers(0, 23, n)
    return _u32((rng.integers(0, 2, n) << 31) | np.maximum(frac, 1))


def _div_vectors(rng) -> tuple[np.ndarray, np.ndarray]:
    """Operand pairs for the divider: random bits; subnormal dividends, divisors or both;
    quotients around the subnormal range, the overflow threshold and 1 (``mx < my`` or not);
    exact quotients; exact ties of subnormal quotients and their neighbours."""
    xs, ys = [rng.integers(0, 2**32, 700)], [rng.integers(0, 2**32, 700)]
    for sub_x, sub_y in ((True, False), (False, True), (True, True)):
        xs.append(_subnormals(rng, 150) if sub_x else _patterns(rng, 150, 1, 255))
        ys.append(_subnormals(rng, 150) if sub_y else _patterns(rng, 150, 1, 255))
    # quotient exponent field ex - ey + 127 around [-26, 3] (underflow), [250, 256] (overflow)
    for lo, hi in ((-26, 4), (250, 257)):
        ex = rng.integers(1, 255, 300)
        ey = np.clip(ex + 127 - rng.integers(lo, hi, 300), 1, 254)
        xs.append(_patterns(rng, 300, 0, 1) | (ex << 23).astype(np.uint32))
        ys.append(_patterns(rng, 300, 0, 1) | (ey << 23).astype(np.uint32))
    # significands equal, or the dividend's a few ulp either side of the divisor's
    y = _patterns(rng, 200, 1, 255)
    xs.append(_u32((rng.integers(1, 255, 200) << 23) | ((y & 0x7FFFFF) + rng.integers(-3, 4, 200))
                   .clip(0, 0x7FFFFF)))
    ys.append(y)
    # exact quotients: a 12-bit by 12-bit product divided by one of its factors
    f = rng.integers(2**11, 2**12, (200, 2)).astype(np.float64)
    scale = np.ldexp(1.0, rng.integers(-60, 60, (200, 2)))
    xs.append(_u32(np.float32(f[:, 0] * f[:, 1] * scale[:, 0]).view(np.uint32)))
    ys.append(_u32(np.float32(f[:, 1] * scale[:, 1]).view(np.uint32)))
    # (2j + 1) * 2**(k - 150) / 2**k is (j + 1/2) * 2**-149, a tie; and divided by 2**k's
    # neighbours, just above and just below it
    j = rng.integers(0, 2**22, 300)
    k = rng.integers(1, 100, 300)
    x = _u32(np.float32(np.ldexp(2.0 * j + 1, k - 150)).view(np.uint32))
    y = _u32((k + 127) << 23)
    for dy in (0, 1, -1):
        xs.append(x)
        ys.append(_u32(y.astype(np.int64) + dy))
    return _u32(np.concatenate(xs)), _u32(np.concatenate(ys))


def _sqrt_vectors(rng) -> np.ndarray:
    """Radicands: every exponent field (both parities) with random significands, random
    subnormals, perfect squares and their neighbours, random bits (half of them negative)."""
    parts = [_u32((np.arange(256 * 5) // 5) << 23) | _u32(rng.integers(0, 2**23, 256 * 5)),
             _u32(_subnormals(rng, 400) & 0x7FFFFFFF), _u32(rng.integers(0, 2**32, 400))]
    # c * c for a 12-bit c is exact: an exact root; one ulp either side is not
    c = rng.integers(1, 2**12, 300).astype(np.float64) * np.ldexp(1.0, rng.integers(-70, 50, 300))
    squares = np.float32(c * c).view(np.uint32).astype(np.int64)
    parts += [_u32(squares + d) for d in (0, 1, -1)]
    return np.concatenate(parts)


# ---------------------------------------------------------------- division


def test_div_all_special_and_corner_pairs_match_hwsim_and_ieee():
    x, y = (_u32(v).ravel() for v in np.meshgrid(CORNERS, CORNERS, indexing="ij"))
    got = _simulate_div(x, y)
    _assert_bits_equal(got, fp32_div_array(x, y), x, y)
    _assert_bits_equal(got, _numpy_div(x, y), x, y)


def test_div_special_operands_give_documented_results():
    pos, neg, inf, ninf = 0x00000000, 0x80000000, 0x7F800000, 0xFF800000
    nan, one, mone = CANONICAL_NAN_F32, 0x3F800000, 0xBF800000
    cases = [(pos, pos, nan), (neg, pos, nan), (inf, ninf, nan), (0xFFC00001, one, nan),
             (one, 0x7F800001, nan), (one, pos, inf), (one, neg, ninf), (mone, pos, ninf),
             (inf, mone, ninf), (pos, mone, neg), (mone, inf, neg), (one, ninf, neg),
             (0x7F7FFFFF, 0x3F000000, inf),         # max / 0.5 overflows
             (0x00000001, 0x40000000, pos),         # 2**-149 / 2: a tie, to even (0)
             (0x00000003, 0x40000000, 0x00000002),  # 3 * 2**-150: a tie, to even (2)
             (0x00000001, 0x40000001, pos),         # just below the tie: 0
             (0x00000001, 0x3FFFFFFF, 0x00000001),  # just above it: 2**-149
             (0x00800000, 0x3F800001, 0x007FFFFF),  # 2**-126 (1 - ulp): subnormal, rounded
             (0x007FFFFF, 0x3F7FFFFF, 0x007FFFFF),  # just below the next midpoint
             (0x00FFFFFF, 0x40000000, 0x00800000)]  # a tie, to even: the smallest normal
    x, y, expect = (_u32(c) for c in zip(*cases, strict=True))
    got = _simulate_div(x, y)
    _assert_bits_equal(fp32_div_array(x, y), expect, x, y)
    _assert_bits_equal(got, expect, x, y)


def test_div_random_normal_subnormal_underflow_overflow_and_tie_operands_match_hwsim_and_ieee():
    x, y = _div_vectors(np.random.default_rng(20))
    got = _simulate_div(x, y)
    _assert_bits_equal(got, fp32_div_array(x, y), x, y)
    _assert_bits_equal(got, _numpy_div(x, y), x, y)


@pytest.mark.slow
def test_div_large_random_sweep_matches_hwsim():
    rng = np.random.default_rng(21)
    x, y = (np.concatenate(v) for v in zip(*(_div_vectors(rng) for _ in range(12)),
                                           strict=True))
    got = _simulate_div(x, y)
    _assert_bits_equal(got, fp32_div_array(x, y), x, y)
    _assert_bits_equal(got, _numpy_div(x, y), x, y)


# ---------------------------------------------------------------- square root


def test_sqrt_corners_and_their_negations_match_hwsim_and_ieee():
    x = _u32(sorted({c for v in CORNERS for c in (v, v ^ 0x80000000)}))
    got = _simulate_sqrt(x)
    _assert_bits_equal(got, fp32_sqrt_array(x), x)
    _assert_bits_equal(got, _numpy_sqrt(x), x)


def test_sqrt_special_operands_give_documented_results():
    cases = [(0x00000000, 0x00000000), (0x80000000, 0x80000000), (0x7F800000, 0x7F800000),
             (0xFF800000, CANONICAL_NAN_F32), (0xBF800000, CANONICAL_NAN_F32),
             (0x80000001, CANONICAL_NAN_F32), (0x7F800001, CANONICAL_NAN_F32),
             (0xFFC00001, CANONICAL_NAN_F32), (0x40800000, 0x40000000),  # sqrt(4) = 2
             (0x00000001, 0x1A3504F3), (0x7F7FFFFF, 0x5F7FFFFF)]         # 2**-74.5, ~2**64
    x, expect = (_u32(c) for c in zip(*cases, strict=True))
    _assert_bits_equal(fp32_sqrt_array(x), expect, x)
    _assert_bits_equal(_simulate_sqrt(x), expect, x)


def test_sqrt_every_exponent_subnormals_squares_and_random_bits_match_hwsim_and_ieee():
    x = _sqrt_vectors(np.random.default_rng(30))
    got = _simulate_sqrt(x)
    _assert_bits_equal(got, fp32_sqrt_array(x), x)
    _assert_bits_equal(got, _numpy_sqrt(x), x)


@pytest.mark.slow
def test_sqrt_large_sweep_of_consecutive_patterns_matches_hwsim():
    # consecutive patterns over the subnormal/normal boundary and around 1, 2 and 4, and a
    # random set of radicands
    rng = np.random.default_rng(31)
    x = np.concatenate([_u32(np.arange(lo - 4000, lo + 4000)) for lo in
                        (0x00800000, 0x3F800000, 0x40000000, 0x40800000)]
                       + [_sqrt_vectors(rng) for _ in range(6)])
    got = _simulate_sqrt(x)
    _assert_bits_equal(got, fp32_sqrt_array(x), x)
    _assert_bits_equal(got, _numpy_sqrt(x), x)


# ---------------------------------------------------------------- pipelined variants


def _run_pipelined(build, operands, stages: int) -> np.ndarray:
    """Stream one operand tuple per cycle into ``build(m, *signals, stages)``; read each result
    ``stages`` cycles later."""
    m = Module()
    ins = [Signal(32, name=f"in{k}") for k in range(len(operands))]
    out = build(m, *ins, stages)
    got = []

    async def bench(ctx):
        n = len(operands[0])
        for t in range(n + stages):
            for sig, values in zip(ins, operands, strict=True):
                ctx.set(sig, int(values[min(t, n - 1)]))
            if t >= stages:
                got.append(ctx.get(out))
            await ctx.tick()

    run_clocked(m, bench)
    return _u32(got)


@pytest.mark.parametrize("stages", [1, 4, DIV_STEPS - 1])
def test_pipelined_div_streams_one_quotient_per_cycle_after_stages_cycles(stages):
    rng = np.random.default_rng(40 + stages)
    x, y = _u32(rng.integers(0, 2**32, 150)), _u32(rng.integers(0, 2**32, 150))
    x[:30], y[:30] = _subnormals(rng, 30), _patterns(rng, 30, 100, 140)
    got = _run_pipelined(lambda m, a, b, s: fp32_div(m, a, b, stages=s), (x, y), stages)
    _assert_bits_equal(got, fp32_div_array(x, y), x, y)


@pytest.mark.parametrize("stages", [2, SQRT_STEPS - 1])
def test_pipelined_sqrt_streams_one_root_per_cycle_after_stages_cycles(stages):
    rng = np.random.default_rng(50 + stages)
    x = _u32(rng.integers(0, 2**32, 150) & 0x7FFFFFFF)
    x[:30] = _subnormals(rng, 30) & 0x7FFFFFFF
    got = _run_pipelined(lambda m, a, s: fp32_sqrt(m, a, stages=s), (x,), stages)
    _assert_bits_equal(got, fp32_sqrt_array(x), x)


@pytest.mark.parametrize("stages", [-1, DIV_STEPS, True, 1.0, "2"])
def test_div_and_sqrt_reject_bad_stage_counts(stages):
    m = Module()
    a = Signal(32)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"fp32_div stages must be an integer in [0, 24], not {stages!r}") + "$"):
        fp32_div(m, a, a, stages=stages)
    with pytest.raises(ValueError, match="^" + re.escape(
            f"fp32_sqrt stages must be an integer in [0, 24], not {stages!r}") + "$"):
        fp32_sqrt(m, a, stages=stages)


def test_two_default_named_dividers_and_rooters_share_one_module():
    # the logic sits in anonymous submodules, so default names never collide
    m = Module()
    a, b = Signal(32), Signal(32)
    outs = [fp32_div(m, a, b), fp32_div(m, b, a), fp32_sqrt(m, a), fp32_sqrt(m, b)]
    got = []

    async def bench(ctx):
        ctx.set(a, 0x40800000)  # 4
        ctx.set(b, 0x40000000)  # 2
        got.extend(ctx.get(o) for o in outs)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0x40000000, 0x3F000000, 0x40000000, 0x3FB504F3]  # 2, 0.5, 2, sqrt(2)
