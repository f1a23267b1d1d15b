# amaranth: UnusedElaboratable=no
"""Fast tier: the fp32 units and the vector engine in Amaranth's simulator against hwsim."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsim import isa
from hwsim.config import preset
from hwsim.numerics import cast_fp32_to_fp16
from hwsim.units.vector import fp32_mul_array, update, update_cycles
from rtl.fp32 import Fp32Multiplier, fp32_to_fp16
from rtl.vector import VectorUnit
from tests.rtl.comb_bench import run_comb

# +-0, subnormals, smallest normal, 1, max finite, inf, NaNs, 2**-75 (products underflow)
F32_CORNERS = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00400000,
               0x00800000, 0x80800000, 0x3F800000, 0xBF800000, 0x3F800001, 0x3FFFFFFF,
               0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
               0xFFC00001, 0x1A000000, 0x1A800001, 0x25000000, 0x3F000000, 0x5F800000]


def test_fp32_multiplier_equals_hwsim_on_corners_and_random_bits():
    rng = np.random.default_rng(11)
    pairs = [(x, y) for x in F32_CORNERS for y in F32_CORNERS]
    pairs += [tuple(p) for p in rng.integers(0, 2**32, (600, 2))]
    # exponent sums near the subnormal boundary and near overflow; significands with random
    # trailing zeros, so that exact ties and a lone sticky bit at every position occur
    for lo, hi in ((20, 110), (100, 150), (180, 254)):
        pairs += [tuple(p) for p in _sparse_operands(rng, 300, lo, hi)]
    dut = Fp32Multiplier()
    got = run_comb(lambda m, a, b: _sub(m, dut, a, b), pairs)
    x, y = (np.array(c, np.uint64).astype(np.uint32) for c in zip(*pairs, strict=True))
    assert got == fp32_mul_array(x, y).tolist()


def _sparse_operands(rng, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` operand pairs: exponents in ``[lo, hi)``, odd significands shifted left by 0..22.

    The product's lowest set bit then sits at the sum of the shifts, which sweeps every
    position below the rounding point.
    """
    odd = rng.integers(0, 2**23, (n, 2)) | 1
    mant = (odd << rng.integers(0, 23, (n, 2))) & 0x7FFFFF
    return (rng.integers(0, 2, (n, 2)) << 31) | (rng.integers(lo, hi, (n, 2)) << 23) | mant


def _sub(m, dut, a, b):
    m.submodules.dut = dut
    m.d.comb += [dut.a.eq(a), dut.b.eq(b)]
    return dut.y


def test_fp32_to_fp16_equals_hwsim_on_fp16_range_ties_and_specials():
    rng = np.random.default_rng(12)
    vals = list(F32_CORNERS) + [0x477FE000, 0x477FEFFF, 0x477FF000, 0x33000000, 0x33000001,
                                0x387FC000, 0x387FE000, 0x38800000, 0xB3800000, 0x3F801000,
                                0x3F803000, 0x3F802FFF]
    sign_mant = rng.integers(0, 2**32, 1200) & 0x807FFFFF
    vals += list(sign_mant | (rng.integers(95, 150, 1200) << 23))  # fp16 normal..underflow
    vals += list(_sparse_operands(rng, 600, 95, 150)[:, 0])  # ties at every rounding point
    vals = np.array(vals, np.uint64).astype(np.uint32)
    got = run_comb(lambda m, a, b: fp32_to_fp16(m, a), [(v, 0) for v in vals])
    assert got == cast_fp32_to_fp16(vals).view(np.uint16).tolist()


def _config(lanes: int):
    bus = max(16, 1 << (4 * lanes - 1).bit_length())  # a VEC entry must fit one DMA beat
    return preset("tiny").replace(vector__lanes=lanes, dram__bus_bytes=bus)


def _run(dut: VectorUnit, mem: dict, jobs: list) -> list:
    """Run UPDATE commands back to back in one simulation on a behavioural VEC buffer.

    ``mem`` maps entry address to the entry's integer value and is updated in place; the
    read port answers one cycle late and does not see a same-cycle write, like
    ``BufferMemory``. Returns each command's start-to-done cycles and ``busy`` after done.
    """
    results = []

    async def bench(ctx):
        for cmd, hp in jobs:
            for name in ("w_addr", "g_addr", "v_addr", "out_addr", "count", "optimizer"):
                ctx.set(getattr(dut, name), getattr(cmd, name))
            for name, value in zip(("lr", "momentum", "weight_decay"), hp, strict=True):
                ctx.set(getattr(dut, name), int(value))
            ctx.set(dut.start, 1)
            cycles, pending = 1, None
            while cycles < 10_000:
                if pending is not None:
                    ctx.set(dut.rd.data, pending)
                    pending = None
                done = ctx.get(dut.done)
                if ctx.get(dut.rd.en):
                    pending = mem.get(ctx.get(dut.rd.addr), 0xDEAD)
                if ctx.get(dut.wr.en):
                    mem[ctx.get(dut.wr.addr)] = ctx.get(dut.wr.data)
                if done:
                    break
                await ctx.tick()
                ctx.set(dut.start, 0)
                cycles += 1
            await ctx.tick()
            results.append((cycles, ctx.get(dut.busy)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


def _pack(vec: np.ndarray) -> dict:
    return {r: sum(int(w) << (32 * j) for j, w in enumerate(row)) for r, row in enumerate(vec)}


def _unpack(mem: dict, depth: int, lanes: int) -> np.ndarray:
    return np.array([[(mem[r] >> (32 * j)) & 0xFFFFFFFF for j in range(lanes)]
                     for r in range(depth)], np.uint32)


def _check(lanes: int, jobs: list, seed: int) -> None:
    """Every command's RTL writes and cycles equal hwsim's per-cycle model's."""
    rng = np.random.default_rng(seed)
    depth = 48
    vec = rng.standard_normal((depth, lanes)).astype(np.float32).view(np.uint32)
    vec[3, 0], vec[4, 1 % lanes] = 0x80000000, 0x00000123  # -0 and a subnormal weight
    mem = _pack(vec)
    dut = VectorUnit(_config(lanes))
    results = _run(dut, mem, jobs)
    regs = np.zeros(16, np.uint32)
    for (cmd, hp), (cycles, busy) in zip(jobs, results, strict=True):
        regs[:3] = hp
        expect = update(vec, cmd, regs)
        assert cycles == expect.cycles == update_cycles(cmd.count, lanes, cmd.optimizer) \
            == VectorUnit.cycles(cmd.count, lanes, cmd.optimizer)
        assert not busy
    np.testing.assert_array_equal(_unpack(mem, depth, lanes), vec)


def _hp(lr, mu, wd):
    return np.array([lr, mu, wd], np.float32).view(np.uint32)


def _cmd(w, g, v, out, count, optimizer):
    return isa.Update(w_addr=w, g_addr=g, v_addr=v, out_addr=out, count=count,
                      optimizer=optimizer)


def test_four_lanes_momentum_first_step_and_sgd_match_hwsim_values_and_cycles():
    hp = _hp(0.1, 0.9, 1e-2)
    jobs = [
        (_cmd(0, 8, 16, 24, 4 * 3 + 2, 3), hp),    # first step, partial last entry (even)
        (_cmd(0, 8, 16, 28, 4 * 4, 1), hp),        # momentum, whole entries
        (_cmd(0, 8, 16, 32, 4 * 3 - 1, 1), hp),    # odd entry count, partial
        (_cmd(0, 8, 40, 24, 9, 0), _hp(0.5, 0.0, 0.0)),  # plain SGD, v untouched
        (_cmd(1, 9, 17, 25, 1, 1), _hp(1e-3, 0.99, 5e-4)),  # one word
        (_cmd(0, 8, 16, 24, 0, 1), hp),            # nothing to do
    ]
    _check(4, jobs, seed=1)


def test_three_lanes_special_hyper_parameters_match_hwsim():
    # odd lane count (halves straddle words), inf/NaN/subnormal hyper-parameters
    jobs = [
        (_cmd(0, 6, 12, 18, 10, 1), _hp(np.inf, 0.5, 0.0)),
        (_cmd(0, 6, 12, 22, 7, 3), np.array([0x7FC00000, 0x00000001, 0x80000000], np.uint32)),
        (_cmd(2, 6, 12, 26, 5, 0), _hp(2.0**-130, 1.0, -1.0)),
    ]
    _check(3, jobs, seed=2)


def test_cycles_staticmethod_equals_hwsim_closed_form():
    for count, lanes, opt in [(0, 4, 1), (1, 4, 0), (4, 4, 1), (5, 4, 3), (1000, 32, 1),
                              (999, 7, 0), (2**20 - 1, 64, 3)]:
        assert VectorUnit.cycles(count, lanes, opt) == update_cycles(count, lanes, opt)


def test_ports_have_documented_widths_and_latency():
    dut = VectorUnit(_config(8))
    assert (len(dut.rd.data), len(dut.wr.data), len(dut.rd.addr), len(dut.count)) == \
        (256, 256, 16, 20)
    assert VectorUnit.stages == 8 and Fp32Multiplier.latency == 0


def test_vector_unit_rejects_non_config_and_too_many_lanes():
    with pytest.raises(TypeError, match=r"^config must be an AcceleratorConfig, not 'tiny'$"):
        VectorUnit("tiny")
    with pytest.raises(ValueError, match=r"^vector.lanes must be at most 64 \(2048-bit VEC "
                                         r"entries\), not 65$"):
        VectorUnit(_config(65))
