"""Vector engine model: fp32_mul equals IEEE (numpy), UPDATE equals PyTorch's SGD, the
per-cycle kernel equals the closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim import isa
from hwsim.config import preset
from hwsim.numerics import U, cast_fp32_to_fp16, gamma
from hwsim.units.vector import (
    check_update,
    fp32_mul,
    fp32_mul_array,
    sgd_update,
    update,
    update_cost,
    update_cycles,
    update_entries,
    update_flops,
)

F32_CORNERS = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00400000,
               0x00800000, 0x80800000, 0x3F800000, 0xBF800000, 0x3F800001, 0x3FFFFFFF,
               0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
               0xFFC00001, 0x1A000000, 0x1A800001, 0x25000000, 0x3F000000, 0x5F800000,
               0x34000000, 0x33FFFFFF, 0x4B800001]


def _numpy_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IEEE products from the host FPU, NaNs replaced by the canonical pattern."""
    with np.errstate(all="ignore"):
        ref = (a.view(np.float32) * b.view(np.float32)).view(np.uint32)
    return np.where(np.isnan(ref.view(np.float32)), np.uint32(0x7FC00000), ref)


def test_fp32_mul_equals_numpy_on_all_corner_pairs():
    a, b = (x.ravel() for x in np.meshgrid(np.array(F32_CORNERS, np.uint32),
                                           np.array(F32_CORNERS, np.uint32)))
    np.testing.assert_array_equal(fp32_mul_array(a, b), _numpy_mul(a, b))


@pytest.mark.parametrize("exponents", [(0, 256), (0, 110), (60, 100), (150, 256)],
                         ids=["any", "subnormal_results", "underflow_edge", "overflow"])
def test_fp32_mul_equals_numpy_on_random_bits(exponents):
    rng = np.random.default_rng(exponents[0] + 7)
    n = 400_000
    a, b = (rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32) for _ in range(2))
    if exponents != (0, 256):
        lo, hi = exponents
        a = (a & 0x807FFFFF) | (rng.integers(lo, hi, n).astype(np.uint32) << 23)
        b = (b & 0x807FFFFF) | (rng.integers(lo, hi, n).astype(np.uint32) << 23)
    np.testing.assert_array_equal(fp32_mul_array(a, b), _numpy_mul(a, b))


@pytest.mark.parametrize("exponents", [(20, 110), (100, 150)], ids=["subnormal", "normal"])
def test_fp32_mul_equals_numpy_on_exact_ties_and_lone_sticky_bits(exponents):
    # odd significands shifted by 0..22: the product's lowest set bit sweeps every position
    rng = np.random.default_rng(exponents[0])
    n = 200_000
    odd = rng.integers(0, 2**23, (2, n)) | 1
    mant = (odd << rng.integers(0, 23, (2, n))) & 0x7FFFFF
    ops = (rng.integers(0, 2, (2, n)) << 31) | (rng.integers(*exponents, (2, n)) << 23) | mant
    a, b = ops.astype(np.uint32)
    np.testing.assert_array_equal(fp32_mul_array(a, b), _numpy_mul(a, b))


def test_fp32_mul_ties_round_to_even_and_specials_are_canonical():
    # (1 + 2^-23) * (1 + 2^-23) = 1 + 2^-22 + 2^-46: above the tie, exact-ish cases
    one_ulp = 0x3F800001
    assert fp32_mul(np.uint32(one_ulp), np.uint32(one_ulp)) == 0x3F800002
    # 3 * (1 + 2^-23) * 2^-150 lands halfway between subnormals 1 and 2 -> ties to even (2)
    assert fp32_mul(np.uint32(0x40400000), np.uint32(0x00000001)) == 0x00000003
    assert fp32_mul(np.uint32(0x3F000000), np.uint32(0x00000001)) == 0x00000000  # 2^-150: tie
    assert fp32_mul(np.uint32(0x3F400000), np.uint32(0x00000001)) == 0x00000001  # 0.75: up
    assert fp32_mul(np.uint32(0x3FC00000), np.uint32(0x00000001)) == 0x00000002  # 1.5: even
    assert fp32_mul(np.uint32(0x00000000), np.uint32(0x7F800000)) == 0x7FC00000  # 0 * inf
    assert fp32_mul(np.uint32(0xFFC00123), np.uint32(0x3F800000)) == 0x7FC00000
    assert fp32_mul(np.uint32(0x80000000), np.uint32(0x3F800000)) == 0x80000000  # -0
    assert fp32_mul(np.uint32(0x7F7FFFFF), np.uint32(0x40000000)) == 0x7F800000  # overflow
    with pytest.raises(TypeError, match="^a must be float32 values or uint32 bit patterns, "
                                        "not dtype float64$"):
        fp32_mul_array(np.zeros(2), np.zeros(2, np.float32))


# ---------------------------------------------------------------- against PyTorch


def _state(n: int, seed: int):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    v = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    return w, g, v


def _bits(x) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


@pytest.mark.parametrize("optimizer", [0, 1, 3])
def test_update_equals_torch_separately_rounded_ops_bit_for_bit(optimizer):
    w, g, v = _state(20_000, optimizer)
    lr, mu, wd = 0.05, 0.9, 1e-3
    tw, tg, tv = (torch.from_numpy(x) for x in (w, g, v))
    # one kernel per operation, each rounded to fp32: the engine's order
    gp = torch.add(tg, torch.mul(tw, wd))
    tv_new = torch.add(torch.mul(tv, mu), gp) if optimizer == 1 else gp
    tw_new = torch.sub(tw, torch.mul(tv_new, lr))
    w_new, v_new, w16 = sgd_update(w, g, v, lr, mu, wd, optimizer)
    np.testing.assert_array_equal(_bits(w_new), _bits(tw_new.numpy()))
    np.testing.assert_array_equal(_bits(v_new), _bits(tv_new.numpy()))
    np.testing.assert_array_equal(w16.view(np.uint16),
                                  tw_new.half().numpy().view(np.uint16))


def _torch_sgd(w, g, v, lr, mu, wd, optimizer):
    p = torch.nn.Parameter(torch.from_numpy(w.copy()))
    p.grad = torch.from_numpy(g.copy())
    opt = torch.optim.SGD([p], lr=lr, momentum=0.0 if optimizer == 0 else mu, weight_decay=wd)
    if optimizer == 1:
        opt.state[p]["momentum_buffer"] = torch.from_numpy(v.copy())
    opt.step()
    buf = opt.state[p].get("momentum_buffer")
    return p.detach().numpy(), None if buf is None else buf.numpy()


@pytest.mark.parametrize("optimizer", [0, 1, 3])
def test_update_is_within_the_documented_bound_of_torch_optim_sgd(optimizer):
    # torch rounds g + wd*w and w - lr*v' once (fused multiply-add), the engine twice
    w, g, v = _state(50_000, 10 + optimizer)
    lr, mu, wd = 0.1, 0.9, 1e-2
    w_hw, v_hw, _ = sgd_update(w, g, v, lr, mu, wd, optimizer)
    w_t, v_t = _torch_sgd(w, g, v, lr, mu, wd, optimizer)
    f64 = [np.float64(np.float32(x)) for x in (lr, mu, wd)]
    wd_w = np.abs(f64[2] * w)
    mu_v = np.abs(f64[1] * v) if optimizer == 1 else 0.0
    terms = mu_v + np.abs(g) + wd_w
    err_w = np.abs(w_hw.astype(np.float64) - w_t)
    assert np.all(err_w <= (gamma(5) + gamma(3)) * (np.abs(w) + f64[0] * terms))
    if optimizer != 0:
        err_v = np.abs(v_hw.astype(np.float64) - v_t)
        assert np.all(err_v <= (gamma(3) + gamma(2)) * terms)
    # observed: the two differ in some words, by about one ulp of w (u = 2**-24)
    ratio = err_w / (U * (np.abs(w) + f64[0] * terms))
    assert 0 < np.count_nonzero(err_w) < w.size // 4 and ratio.max() <= 3


def test_first_step_keeps_torch_signed_zero_where_zero_momentum_state_does_not():
    w = np.array([-0.0], np.float32)
    g = np.array([-0.0], np.float32)
    v0 = np.zeros(1, np.float32)
    _, v_first, _ = sgd_update(w, g, v0, 0.1, 0.9, 0.0, optimizer=3)
    _, v_zero, _ = sgd_update(w, g, v0, 0.1, 0.9, 0.0, optimizer=1)
    _, v_torch = _torch_sgd(w, g, v0, 0.1, 0.9, 0.0, optimizer=3)
    assert _bits(v_first)[0] == _bits(v_torch)[0] == 0x80000000  # -0, as torch's clone
    assert _bits(v_zero)[0] == 0x00000000  # mu*(+0) + (-0) = +0


def test_zero_weight_decay_is_still_applied_unlike_torch():
    # torch skips `g + 0*w`; the engine computes it: -0 becomes +0 and an infinite weight NaN
    w = np.array([1.0, np.inf], np.float32)
    g = np.array([-0.0, 1.0], np.float32)
    _, v_hw, _ = sgd_update(w, g, np.zeros(2, np.float32), 0.1, 0.9, 0.0, optimizer=3)
    _, v_torch = _torch_sgd(w, g, np.zeros(2, np.float32), 0.1, 0.9, 0.0, optimizer=3)
    assert _bits(v_hw).tolist() == [0x00000000, 0x7FC00000]
    assert _bits(v_torch).tolist() == [0x80000000, 0x3F800000]


# ---------------------------------------------------------------- the machine


def _cmd(count, optimizer, lanes, hp_base=0):
    e = -(-count // lanes)
    return isa.Update(w_addr=0, g_addr=e, v_addr=2 * e, out_addr=3 * e, count=count,
                      optimizer=optimizer, hp_base=hp_base)


@settings(max_examples=60, deadline=None)
@given(lanes=st.integers(1, 9), count=st.integers(0, 60), optimizer=st.sampled_from([0, 1, 3]),
       hp_base=st.integers(0, 12), seed=st.integers(0, 2**32 - 1))
def test_per_cycle_update_equals_closed_forms(lanes, count, optimizer, hp_base, seed):
    rng = np.random.default_rng(seed)
    cmd = _cmd(count, optimizer, lanes, hp_base)
    e = update_entries(count, lanes)
    depth = 4 * e + 3
    vec = rng.standard_normal((depth, lanes)).astype(np.float32)
    before = vec.copy()
    regs = rng.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32)
    regs[hp_base:hp_base + 3] = np.array([0.01, 0.9, 1e-4], np.float32).view(np.uint32)
    res = update(vec, cmd, regs)
    words = slice(0, count)

    def flat(a, base, n):
        return a[base:base + n].ravel()

    w, g, v = (flat(before, b, e) for b in (0, e, 2 * e))
    w_new, v_new, w16 = sgd_update(w[words], g[words], v[words], 0.01, 0.9, 1e-4, optimizer)
    np.testing.assert_array_equal(_bits(flat(vec, 0, e)[words]), _bits(w_new))
    np.testing.assert_array_equal(flat(vec, 0, e)[count:], w[count:])  # partial: unchanged
    np.testing.assert_array_equal(flat(vec, e, e), g)
    if optimizer:
        np.testing.assert_array_equal(_bits(flat(vec, 2 * e, e)[words]), _bits(v_new))
        np.testing.assert_array_equal(flat(vec, 2 * e, e)[count:], v[count:])
    else:
        np.testing.assert_array_equal(flat(vec, 2 * e, e), v)
    n_out = -(-count // (2 * lanes))
    halves = vec[3 * e:3 * e + n_out].view(np.uint16).ravel()
    np.testing.assert_array_equal(halves[:count], w16.view(np.uint16))
    assert not halves[count:].any()  # +0 beyond count
    np.testing.assert_array_equal(vec[3 * e + n_out:], before[3 * e + n_out:])
    assert res.cycles == update_cycles(count, lanes, optimizer)
    # a VEC entry (4 bytes per lane) must fit one DMA beat
    bus = max(16, 1 << (4 * lanes - 1).bit_length())
    cost = update_cost(cmd, preset("tiny").replace(vector__lanes=lanes, dram__bus_bytes=bus))
    assert res.reads * lanes * 4 == cost.sram_read_bytes
    assert res.writes * lanes * 4 == cost.sram_write_bytes
    assert cost.cycles == res.cycles


def test_update_writes_fp16_copy_as_numerics_casts_it():
    w = np.array([65504.0, 65520.0, 1e-8, -3.0e-5, np.nan, -65519.0, 0.1, 2.0**-25],
                 np.float32)
    _, _, w16 = sgd_update(w, np.zeros_like(w), None, 0.0, 0.0, 0.0, optimizer=0)
    np.testing.assert_array_equal(w16.view(np.uint16),
                                  cast_fp32_to_fp16(w).view(np.uint16))


def test_cycle_formula_and_costs_on_vcu1525():
    cfg = preset("vcu1525").replace(vector__lanes=32, dram__bus_bytes=128)  # 32 lanes
    assert update_cycles(0, 32, 1) == 2
    assert update_cycles(1, 32, 1) == 10 and update_cycles(1, 32, 0) == 10
    assert update_cycles(32 * 1000, 32, 1) == 3 * 1000 + 7
    assert update_cycles(32 * 1000 + 1, 32, 0) == 2 * 1001 + 8
    cmd = isa.Update(w_addr=0, g_addr=1000, v_addr=2000, out_addr=3000, count=32_000)
    cost = update_cost(cmd, cfg)
    assert cost == (3007, 192_000, 192_000 * cfg.energy.vector_flop, 3 * 1000 * 128,
                    (2 * 1000 + 500) * 128)
    assert update_flops(10, 0) == 40 and update_flops(10, 3) == 40


@pytest.mark.parametrize("cmd, field, message", [
    (isa.Update(0, 4, 8, 12, 16, optimizer=2), "optimizer",
     "Adam (optimizer 2) is not implemented by the vector engine; use 0 (SGD), 1 (SGD with "
     "momentum) or 3 (its first step)"),
    (isa.Update(0, 4, 8, 12, 16, hp_base=13), "hp_base",
     "registers 13..16 (lr, momentum, weight decay, beta2) exceed the 16 controller "
     "registers; use 0..12"),
    (isa.Update(0, 4, 8, 62, 16), "out_addr", "entries 62..63 overflow the VEC buffer of 63 "
     "entries"),
    (isa.Update(0, 4, 6, 12, 16), "v_addr", "entries 6..9 overlap g_addr entries 4..7; the "
     "operand ranges must be disjoint"),
    (isa.Update(0, 4, 8, 3, 16), "out_addr", "entries 3..4 overlap w_addr entries 0..3; the "
     "operand ranges must be disjoint"),
])
def test_check_update_names_field_and_reason(cmd, field, message):
    assert check_update(cmd, preset("tiny"), vec_depth=63) == (field, message)


def test_check_update_accepts_sgd_with_v_range_anywhere():
    ok = isa.Update(0, 4, 0, 8, 16, optimizer=0)  # SGD neither reads nor writes v
    assert check_update(ok, preset("tiny"), vec_depth=10) is None


def test_update_rejects_bad_arguments():
    vec = np.zeros((16, 4), np.float32)
    with pytest.raises(ValueError, match=r"^optimizer must be 0 \(SGD\), 1 \(SGD with "
                                         r"momentum\) or 3 \(its first step\), not 2$"):
        update(vec, isa.Update(0, 4, 8, 12, 16, optimizer=2), np.zeros(16))
    with pytest.raises(ValueError, match=r"^UPDATE field 'out_addr': entries 16..17 overflow "
                                         r"the VEC buffer of 16 entries$"):
        update(vec, isa.Update(0, 4, 8, 16, 16), np.zeros(16))
    with pytest.raises(ValueError, match=r"^regs must be a 1-D array of at least 15 register "
                                         r"values for hp_base=12, not shape \(4,\)$"):
        update(vec, isa.Update(0, 4, 8, 12, 16, hp_base=12), np.zeros(4))
    with pytest.raises(TypeError, match=r"^vec must be a 2-D float32 or uint32 array "
                                        r"\(entries x lanes\)$"):
        update(vec.astype(np.float64), isa.Update(0, 4, 8, 12, 16), np.zeros(16))
    with pytest.raises(ValueError, match=r"^count must be a non-negative integer, not -1$"):
        update_cycles(-1, 4, 1)
