"""The hash unit's sigmoid and MemoryFormer chunk weight: bit-level definition, error bounds
against float64 math, special values, and agreement with algorithms.memoryformer (torch)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from algorithms.memoryformer import MemoryLayer
from hwsim.numerics import (
    CANONICAL_NAN_F32,
    CHUNK_WEIGHT_MAX_ABS_ERROR,
    CHUNK_WEIGHT_MAX_REL_ERROR,
    SIGMOID_C0,
    SIGMOID_C1,
    SIGMOID_MAX_ABS_ERROR,
    SIGMOID_MAX_REL_ERROR,
    SIGMOID_SEGMENTS,
    SIGMOID_X_MAX,
    U,
    bits_f32,
    chunk_weight,
    chunk_weight_grad,
    f32_bits,
    fp32_mul,
    hw_sigmoid,
    hw_sigmoid_array,
)

F32 = np.float32


def _sigmoid64(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _sweep_points() -> np.ndarray:
    """Dense [0, 20], every segment end and its fp32 neighbours."""
    dense = np.linspace(0.0, 20.0, 2_000_001).astype(F32)
    ends = np.arange(SIGMOID_SEGMENTS + 1, dtype=F32) / F32(32)
    near = np.concatenate([np.nextafter(ends, F32(0)), np.nextafter(ends, F32(np.inf))])
    return np.unique(np.concatenate([dense, ends, near]))


# --- the sigmoid --------------------------------------------------------------------------------

def test_sigmoid_table_is_the_pinned_rom():
    # the ROM contents are the definition: a change of construction must show up here
    blob = SIGMOID_C0.tobytes() + SIGMOID_C1.tobytes()
    assert hashlib.sha256(blob).hexdigest()[:16] == "3b803efba08fa93f"
    assert SIGMOID_C0.shape == SIGMOID_C1.shape == (512,) and SIGMOID_X_MAX == 16.0
    c0, c1 = SIGMOID_C0.view(F32), SIGMOID_C1.view(F32)
    # first segment: sigmoid(0) = 1/2, slope 1/4; last: flat at 1
    assert abs(c0[0] - 0.5) < 1e-6 and abs(c1[0] - 0.25) < 1e-4
    assert 0 < c1[-1] < 2e-7 and 1 - 4e-6 < c0[-1] < 1


def test_sigmoid_within_stated_bounds_on_a_dense_sweep():
    x = _sweep_points()
    s = hw_sigmoid_array(x).astype(np.float64)
    exact = _sigmoid64(x)
    err = np.abs(s - exact)
    assert err.max() <= SIGMOID_MAX_ABS_ERROR
    assert err.max() > 0.95 * SIGMOID_MAX_ABS_ERROR  # the bound is tight, not decorative
    assert (err / exact).max() <= SIGMOID_MAX_REL_ERROR
    assert s.min() >= 0.5 and s.max() <= 1.0
    # negative arguments: the same absolute error, 1 - s exactly
    sn = hw_sigmoid_array(-x[x > 0]).astype(np.float64)
    assert np.abs(sn - _sigmoid64(-x[x > 0])).max() <= SIGMOID_MAX_ABS_ERROR
    assert (sn == 1.0 - s[x > 0]).all()


def test_sigmoid_is_the_stated_datapath():
    """segment floor(32 x), then fl(c0 + fl(c1 * x)): numpy's IEEE float32 ops as the oracle."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 16, 200_000), rng.uniform(0, 1e-3, 1000),
                        np.ldexp(rng.uniform(1, 2, 1000), rng.integers(-149, -120, 1000))])
    x = x.astype(F32)
    seg = np.floor(x.astype(np.float64) * 32).astype(np.int64)
    c0, c1 = SIGMOID_C0.view(F32)[seg], SIGMOID_C1.view(F32)[seg]
    with np.errstate(under="ignore"):
        expect = c0 + c1 * x  # float32: each operation rounded to nearest even
    assert (f32_bits(hw_sigmoid_array(x)) == f32_bits(expect)).all()


def test_sigmoid_special_values():
    def s(v):
        return int(hw_sigmoid(np.uint32(v)))

    half = s(0)
    assert s(0x80000000) == half  # -0.0 is +0.0
    assert s(0x00000001) == half and s(0x007FFFFF) == half  # subnormals: segment 0, c0
    assert s(0x80000001) == int(f32_bits(F32(1) - bits_f32(half)))
    assert s(f32_bits(F32(16.0))) == 0x3F800000  # saturates at X_MAX
    assert s(f32_bits(F32(3e38))) == 0x3F800000
    assert s(0x7F800000) == 0x3F800000  # +inf -> 1
    assert s(0xFF800000) == 0x00000000  # -inf -> +0
    assert s(f32_bits(F32(-20.0))) == 0
    below = np.nextafter(F32(16), F32(0))
    assert bits_f32(s(f32_bits(below))) == pytest.approx(_sigmoid64(below), abs=2e-7)
    for nan in (0x7FC00000, 0x7F800001, 0xFFC00000, 0xFFFFFFFF, 0x7FBFFFFF):
        assert s(nan) == CANONICAL_NAN_F32


@pytest.mark.slow
def test_sigmoid_bounds_over_every_fp32_in_0_16():
    from numba import njit

    @njit
    def worst(lo, hi):
        abs_e = rel_e = 0.0
        for u in range(lo, hi):
            s = np.float64(np.uint32(hw_sigmoid(np.uint32(u))).view(np.float32))
            exact = 1.0 / (1.0 + math.exp(-np.float64(np.uint32(u).view(np.float32))))
            abs_e = max(abs_e, abs(s - exact))
            rel_e = max(rel_e, abs(s - exact) / exact)
        return abs_e, rel_e

    abs_e, rel_e = worst(0, int(f32_bits(F32(16.0))) + 1)
    assert abs_e <= SIGMOID_MAX_ABS_ERROR and rel_e <= SIGMOID_MAX_REL_ERROR


def test_fp32_mul_is_ieee_binary32_on_random_and_special_patterns():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)
    special = np.array([0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x3F800000, 0x7F7FFFFF,
                        0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001], np.uint32)
    a = np.concatenate([a, np.repeat(special, special.size)])
    b = np.concatenate([b, np.tile(special, special.size)])

    from numba import njit

    @njit
    def loop(x, y, out):
        for i in range(x.size):
            out[i] = fp32_mul(x[i], y[i])

    out = np.empty_like(a)
    loop(a, b, out)
    with np.errstate(all="ignore"):
        product = a.view(F32) * b.view(F32)
    ref = f32_bits(product)
    finite = ~np.isnan(product)
    assert (out[finite] == ref[finite]).all()
    assert (out[~finite] == CANONICAL_NAN_F32).all()


# --- the chunk weight ---------------------------------------------------------------------------

def _exact_weight(z, t=1.0, official=False):
    z = np.asarray(z, np.float64)
    p = np.prod(_sigmoid64(2 * np.abs(z) / t), axis=-1)
    return np.abs(z).sum(-1) * p if official else p


def _exact_grad(z, t=1.0, official=False):
    z = np.asarray(z, np.float64)
    s = _sigmoid64(2 * np.abs(z) / t)
    p = np.prod(s, axis=-1, keepdims=True)
    g = p * (1 - s) * 2 / t
    if official:
        return np.sign(z) * (p + np.abs(z).sum(-1, keepdims=True) * g)
    return np.sign(z) * g


@pytest.mark.parametrize("t", [1.0, 0.7])
@pytest.mark.parametrize("official", [False, True])
def test_chunk_weight_is_the_stated_order_of_fp32_operations(t, official):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((5000, 8)) * 2).astype(F32)
    s = hw_sigmoid_array(np.abs(z) * F32(2.0 / t))  # float32 multiply, as the unit's
    p = s[:, 0]
    for j in range(1, 8):
        p = p * s[:, j]
    if official:
        norm = np.zeros(5000, F32)
        for j in range(8):
            norm = norm + np.abs(z[:, j])
        p = norm * p
    assert (f32_bits(chunk_weight(z, t, official)) == f32_bits(p)).all()
    # the backward, spelled out the same way
    g = (p if not official else chunk_weight(z, t))[:, None]
    g = g * (F32(1) - s) * F32(2.0 / t)
    if official:
        norm = np.abs(z).astype(F32)
        acc = np.zeros(5000, F32)
        for j in range(8):
            acc = acc + norm[:, j]
        g = chunk_weight(z, t)[:, None] + acc[:, None] * g
    g = np.where(z == 0, F32(0), np.where(z < 0, -g, g)).astype(F32)
    assert (f32_bits(chunk_weight_grad(z, t, official)) == f32_bits(g)).all()


def _worst_chunks(tau: int) -> np.ndarray:
    """Every 2|z_j| where the table errs most, of one sign (x = 1.078 and 1.125)."""
    return np.stack([np.full(tau, F32(1.078072) / 2), np.full(tau, F32(1.125004) / 2)])


@pytest.mark.parametrize("tau", [8, 10])
@pytest.mark.parametrize("official", [False, True])
def test_chunk_weight_error_bounds_against_float64(tau, official):
    rng = np.random.default_rng(tau)
    z = np.concatenate([
        rng.standard_normal((100_000, tau)),
        rng.standard_normal((50_000, tau)) * 5,
        rng.standard_normal((50_000, tau)) * 0.05,
        -np.abs(rng.standard_normal((1000, tau))),
        np.zeros((1, tau)),
        rng.uniform(0.0, 9.0, (1000, 1)) * np.ones(tau),  # equal elements: the abs worst
        _worst_chunks(tau),
    ]).astype(F32)
    w = chunk_weight(z, 1.0, official).astype(np.float64)
    exact = _exact_weight(z, 1.0, official)
    nz = exact > 0
    rel = np.abs(w - exact)[nz] / exact[nz]
    assert rel.max() <= CHUNK_WEIGHT_MAX_REL_ERROR[tau]
    worst = chunk_weight(_worst_chunks(tau), 1.0, official).astype(np.float64)
    worst_exact = _exact_weight(_worst_chunks(tau), 1.0, official)
    assert (np.abs(worst - worst_exact) / worst_exact).max() > 0.9 * CHUNK_WEIGHT_MAX_REL_ERROR[tau]
    if not official:
        assert np.abs(w - exact).max() <= CHUNK_WEIGHT_MAX_ABS_ERROR[tau]
    # backward: within the bound times (2/t) p (1 + ||z||_1)
    g = chunk_weight_grad(z, 1.0, official).astype(np.float64)
    scale = 2 * _exact_weight(z)[:, None]
    if official:
        scale = scale * (1 + np.abs(z.astype(np.float64)).sum(-1, keepdims=True))
    assert (np.abs(g - _exact_grad(z, 1.0, official)) <= CHUNK_WEIGHT_MAX_REL_ERROR[tau] * scale
            ).all()


@pytest.mark.parametrize("tau", [8, 10])
@pytest.mark.parametrize(("weight", "temperature"), [("paper", 1.0), ("paper", 2.5),
                                                     ("official", 1.0)])
def test_chunk_weight_matches_memoryformer_hash(tau, weight, temperature):
    torch.manual_seed(tau)
    layer = MemoryLayer(4 * tau, 16, tau=tau, temperature=temperature, weight=weight)
    x = torch.randn(3000, 4 * tau, requires_grad=True)
    _, w_ref = layer.hash(x)
    w_ref.sum().backward()
    z = x.detach().numpy().reshape(3000, 4, tau)
    official = weight == "official"
    w = chunk_weight(z, temperature, official).astype(np.float64)
    ref = w_ref.detach().numpy().astype(np.float64)
    # torch's float32 exp(sum(logsigmoid)) carries its own few-ulp error
    torch_slack = 4 * tau * U
    assert (np.abs(w - ref) / ref).max() <= CHUNK_WEIGHT_MAX_REL_ERROR[tau] + torch_slack
    g = chunk_weight_grad(z, temperature, official).astype(np.float64)
    g_ref = x.grad.numpy().reshape(3000, 4, tau).astype(np.float64)
    scale = 2 / temperature * _exact_weight(z, temperature)[..., None]
    if official:
        scale = scale * (1 + np.abs(z.astype(np.float64)).sum(-1, keepdims=True))
    assert (np.abs(g - g_ref) <= (CHUNK_WEIGHT_MAX_REL_ERROR[tau] + torch_slack) * scale).all()


def test_chunk_weight_special_values():
    zero = np.zeros((1, 8), F32)
    s0 = hw_sigmoid_array(F32(0))
    p = s0
    for _ in range(7):
        p = p * s0
    assert f32_bits(chunk_weight(zero)) == f32_bits(p)
    assert chunk_weight(zero, official=True)[0] == 0.0  # ||0||_1 = 0
    assert (f32_bits(chunk_weight_grad(zero)) == 0).all()  # sign(0) = 0, +0
    assert (f32_bits(chunk_weight_grad(-zero, official=True)) == 0).all()
    z = np.ones((1, 8), F32)
    z[0, 3] = np.nan
    assert f32_bits(chunk_weight(z))[0] == CANONICAL_NAN_F32
    assert (f32_bits(chunk_weight_grad(z)) == CANONICAL_NAN_F32).all()
    z = np.ones((1, 8), F32)
    z[0, 0] = -np.inf  # s = 1: the weight of the other elements; official: inf
    assert chunk_weight(z)[0] == chunk_weight(np.ones((1, 7), F32))[0]
    assert chunk_weight(z, official=True)[0] == np.inf
    # bit patterns in, the same bits out
    zb = f32_bits(np.linspace(-3, 3, 16, dtype=F32).reshape(2, 8))
    assert (chunk_weight(zb) == chunk_weight(zb.view(F32))).all()
    assert chunk_weight(np.ones((2, 3, 8), F32)).shape == (2, 3)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"z": np.ones(8, np.float64)}, TypeError, "z must be float32 values or uint32"),
    ({"z": np.float32(1.0)}, ValueError, "last axis of at least one element"),
    ({"t": 0.0}, ValueError, "t must be a positive finite number, not 0.0"),
    ({"t": -1.0}, ValueError, "t must be a positive finite number"),
    ({"t": float("inf")}, ValueError, "t must be a positive finite number"),
    ({"t": 1e-45}, ValueError, "2/t"),
])
def test_chunk_weight_bad_arguments(kwargs, error, message):
    args = {"z": np.ones((2, 8), F32), "t": 1.0, **kwargs}
    with pytest.raises(error, match=message):
        chunk_weight(args["z"], args["t"])
