"""The PE and its fp16 datapath in Amaranth's simulator against hwsim.numerics, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.numerics import fp16_mac, fp16_mul_exact, fp32_add
from rtl.array import PE
from rtl.fp32 import fp16_mul_exact as rtl_mul
from rtl.fp32 import fp32_add as rtl_add
from tests.rtl.comb_bench import run_clocked, run_comb
from tests.rtl.fp_corners import F16_CORNERS, F32_CORNERS


def _pairs(corners, bits, n_random, seed):
    rng = np.random.default_rng(seed)
    pairs = [(x, y) for x in corners for y in corners]
    pairs += [tuple(p) for p in rng.integers(0, 2**bits, (n_random, 2))]
    return pairs


def test_fp16_multiplier_equals_numerics_on_corners_and_random_bits():
    pairs = _pairs(F16_CORNERS, 16, 1500, 1)
    got = run_comb(lambda m, a, b: rtl_mul(m, a[:16], b[:16]), pairs)
    expect = [int(fp16_mul_exact(np.uint16(x), np.uint16(y))) for x, y in pairs]
    assert got == expect


def test_fp32_adder_equals_numerics_on_corners_ties_and_random_bits():
    pairs = _pairs(F32_CORNERS, 32, 1500, 2)
    rng = np.random.default_rng(3)
    # near-cancellation and close exponents: same exponent field, random low bits
    base = rng.integers(0, 2**32, 400)
    pairs += [(int(x), int(x ^ 0x80000000 ^ int(r))) for x, r in
              zip(base, rng.integers(0, 2**12, 400), strict=True)]
    # every exponent difference 0..40 with random significands, both signs
    for dlt in range(41):
        e = int(rng.integers(50, 200))
        for _ in range(6):
            x = (int(rng.integers(0, 2)) << 31) | (e << 23) | int(rng.integers(0, 2**23))
            y = (int(rng.integers(0, 2)) << 31) | (max(e - dlt, 0) << 23) | \
                int(rng.integers(0, 2**23))
            pairs.append((x, y))
    got = run_comb(lambda m, a, b: rtl_add(m, a, b), pairs)
    expect = [int(fp32_add(np.uint32(x), np.uint32(y))) for x, y in pairs]
    assert got == expect


def test_fp32_adder_overflow_rounds_to_inf_and_nan_is_canonical():
    pairs = [(0x7F7FFFFF, 0x73800000), (0xFF7FFFFF, 0xF3800000), (0x7F800000, 0xFF800000),
             (0xFFC00123, 0x3F800000), (0x00000000, 0x80000000), (0x80000000, 0x80000000)]
    got = run_comb(lambda m, a, b: rtl_add(m, a, b), pairs)
    assert got == [0x7F800000, 0xFF800000, 0x7FC00000, 0x7FC00000, 0x00000000, 0x80000000]


def _run_pe(dtype, steps, *, ws=False, weight=0):
    """Clock a PE through ``steps`` of (a, b, psum); return acc after each."""
    dut = PE(dtype)
    got = []

    async def bench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        if ws:
            ctx.set(dut.ws, 1)
            ctx.set(dut.load, 1)
            ctx.set(dut.b_in, weight)
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.b_in, 0)
        for a, b, p in steps:
            ctx.set(dut.a_in, a)
            ctx.set(dut.b_in, b)
            ctx.set(dut.psum_in, p)
            await ctx.tick()
            got.append((ctx.get(dut.acc), ctx.get(dut.a_out), ctx.get(dut.b_out)))

    run_clocked(dut, bench)
    return got


def test_fp16_pe_output_stationary_accumulates_like_fp16_mac():
    rng = np.random.default_rng(4)
    a = list(rng.integers(0, 2**16, 60)) + F16_CORNERS
    b = list(rng.integers(0, 2**16, 60)) + F16_CORNERS[::-1]
    got = _run_pe("fp16", [(int(x), int(y), 0) for x, y in zip(a, b, strict=True)])
    acc = np.uint32(0)
    for (g, a_out, b_out), x, y in zip(got, a, b, strict=True):
        acc = fp16_mac(acc, np.uint16(x), np.uint16(y))
        assert (g, a_out, b_out) == (int(acc), int(x), int(y))


def test_fp16_pe_weight_stationary_adds_psum_to_product_with_held_weight():
    rng = np.random.default_rng(5)
    w = 0x3E00  # 1.5
    steps = [(int(a), 0x1234, int(p)) for a, p in
             zip(rng.integers(0, 2**16, 40), rng.integers(0, 2**32, 40), strict=True)]
    got = _run_pe("fp16", steps, ws=True, weight=w)
    for (g, _, b_out), (a, _, p) in zip(got, steps, strict=True):
        assert b_out == w
        assert g == int(fp32_add(np.uint32(p), fp16_mul_exact(np.uint16(a), np.uint16(w))))


def test_int8_pe_both_dataflows_wrap_in_int32():
    got = _run_pe("int8", [(-128, -128, 0)] * 3)
    assert [g[0] for g in got] == [16384, 32768, 49152]
    got = _run_pe("int8", [(-128, 5, 2**31 - 1)], ws=True, weight=-128)
    assert got[0][0] == (2**31 - 1 + 16384) - 2**32


@pytest.mark.filterwarnings("ignore:.*created but never used")
@pytest.mark.parametrize("bad", ["fp32", 8, None, "INT8"])
def test_pe_rejects_unknown_dtype(bad):
    with pytest.raises(ValueError, match=rf"^dtype must be one of \('int8', 'fp16'\), not "
                                         rf"{bad!r}$"):
        PE(bad)
