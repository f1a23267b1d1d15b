# amaranth: UnusedElaboratable=no
"""Fast tier: the SORE in Amaranth's simulator against hwsim's per-cycle model, cycle for cycle."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsim.config import ArrayConfig, SoreConfig, preset
from hwsim.units.sore import prune, prune_cycles
from rtl.sore import Sore

PATTERNS = ("1:4", "2:4", "2:8", "1:8", "4:8")


def _config(cols: int, lanes: int, dtype: str = "int8"):
    base = preset("tiny" if cols == 4 else "small8")
    return dataclasses.replace(
        base, array=ArrayConfig(rows=cols, cols=cols, dtype=dtype, patterns=PATTERNS),
        sore=SoreConfig(lanes=lanes))


def _run(dut: Sore, jobs: list) -> list:
    """Run PRUNE commands back to back in one simulation (one elaboration per design).

    ``jobs``: ``(src, n, m, src_addr, dst_addr, idx_addr)``. The testbench serves the read port
    one cycle late, like ``BufferMemory``, writes values into the same memory (the source and
    the values both live in WGT), and records every write and the start-to-done cycles.
    """
    eb = dut.elem_bits
    results = []

    async def bench(ctx):
        for src, n, m, src_addr, dst_addr, idx_addr in jobs:
            raw = src.view(np.uint8 if eb == 8 else np.uint16)
            mem = {src_addr + r: sum(int(v) << (eb * c) for c, v in enumerate(raw[r]))
                   for r in range(raw.shape[0])}
            vals, idxs = {}, {}
            for name, v in (("src_addr", src_addr), ("dst_addr", dst_addr),
                            ("idx_addr", idx_addr), ("rows", src.shape[0]), ("n", n),
                            ("log2m", m.bit_length() - 1)):
                ctx.set(getattr(dut, name), v)
            ctx.set(dut.start, 1)
            cycles, pending = 1, None
            while cycles < 10_000:
                if pending is not None:
                    ctx.set(dut.src.data, pending)
                if ctx.get(dut.dst.en):
                    vals[ctx.get(dut.dst.addr)] = ctx.get(dut.dst.data)
                if ctx.get(dut.idx.en):
                    idxs[ctx.get(dut.idx.addr)] = ctx.get(dut.idx.data)
                if ctx.get(dut.done):
                    break
                if ctx.get(dut.src.en):
                    pending = mem.get(ctx.get(dut.src.addr), 0xDEAD)
                if ctx.get(dut.dst.en):  # source and values share WGT; reads see old data
                    mem[ctx.get(dut.dst.addr)] = ctx.get(dut.dst.data)
                await ctx.tick()
                ctx.set(dut.start, 0)
                cycles += 1
            await ctx.tick()
            results.append((vals, idxs, cycles, ctx.get(dut.busy)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


def _unpack(entries: dict, base: int, count: int, cols: int, bits: int) -> np.ndarray:
    assert sorted(entries) == list(range(base, base + count))
    mask = (1 << bits) - 1
    return np.array([[(entries[base + r] >> (bits * c)) & mask for c in range(cols)]
                     for r in range(count)], np.int64).reshape(count, cols)


def _check(dut: Sore, jobs: list, *, in_place: bool = False) -> None:
    """RTL writes equal hwsim's values and indices; RTL cycles equal the model's count."""
    jobs = [(src, n, m, 3 + k, 3 + k if in_place else 1000 + k, 9 + 2 * k)
            for k, (src, n, m) in enumerate(jobs)]
    for (src, n, m, _, dst, idx), (vals, idxs, cycles, busy) in zip(jobs, _run(dut, jobs),
                                                                    strict=True):
        rows, cols = src.shape
        expect = prune(src, n, m, lanes=dut.lanes)
        count = rows * n // m
        raw = expect.values.view(np.uint8 if dut.elem_bits == 8 else np.uint16)
        np.testing.assert_array_equal(_unpack(vals, dst, count, cols, dut.elem_bits),
                                      raw.astype(np.int64))
        np.testing.assert_array_equal(_unpack(idxs, idx, count, cols, 8),
                                      expect.indices.astype(np.int64))
        assert cycles == expect.cycles == prune_cycles(rows, cols, n, m, dut.lanes) \
            == Sore.cycles(rows, cols, n, m, dut.lanes)
        assert not busy


def test_tiny_int8_prune_all_patterns_match_hwsim_values_and_cycles():
    rng = np.random.default_rng(1)
    jobs = []
    for n, m, groups in [(2, 4, 3), (1, 4, 2), (2, 8, 2), (1, 8, 1), (4, 8, 2), (4, 4, 1)]:
        src = rng.integers(-128, 128, (groups * m, 4)).astype(np.int8)
        src[0, 0], src[1, 0] = -128, 127  # |-128| is the largest int8 magnitude
        jobs.append((src, n, m))
    # ties (equal magnitudes of either sign, all-zero column): the lower index wins
    ties = np.array([[1, -2, 0, 5], [-1, 2, 0, -5], [1, 2, 0, 5], [-1, -2, 0, 4]] * 2, np.int8)
    jobs += [(ties, 2, 4), (ties, 1, 8), (np.zeros((0, 4), np.int8), 2, 4)]
    _check(Sore(_config(4, 4)), jobs)


@pytest.mark.parametrize("lanes", [4, 3])
def test_small8_int8_multi_pass_prune_matches_hwsim(lanes):
    # 8 columns on 4 lanes: two passes per group; on 3 lanes the last pass is partly idle
    rng = np.random.default_rng(lanes)
    jobs = [(rng.integers(-3, 4, (2 * m, 8)).astype(np.int8), n, m)  # narrow range: ties
            for n, m in [(2, 8), (4, 8), (1, 4)]]
    _check(Sore(_config(8, lanes)), jobs)


def test_tiny_int8_prune_in_place_reads_each_group_before_overwriting_it():
    rng = np.random.default_rng(3)
    jobs = [(rng.integers(-128, 128, (4 * m, 4)).astype(np.int8), n, m) for n, m in [(4, 4),
                                                                                    (2, 8)]]
    _check(Sore(_config(4, 4)), jobs, in_place=True)
    _check(Sore(_config(4, 1)), jobs[:1], in_place=True)  # four passes re-read each group


def test_tiny_fp16_prune_orders_sign_magnitude_bit_patterns():
    vals = [0.0, -0.0, 1.5, -1.5, np.inf, -np.inf, 6e-8, -6e-8, 65504.0, -2.0, 3.0, 1e-3]
    rng = np.random.default_rng(7)
    jobs = [(rng.choice(np.array(vals, np.float16), (16, 4)), n, m) for n, m in [(2, 8), (1, 4)]]
    _check(Sore(_config(4, 2, "fp16")), jobs)


def test_cycles_staticmethod_equals_hwsim_closed_form():
    for rows, width, n, m, lanes in [(8, 4, 2, 4, 4), (64, 32, 2, 8, 32), (16, 8, 1, 8, 3),
                                     (0, 4, 1, 4, 4), (128, 9, 4, 8, 2), (4, 1, 4, 4, 7)]:
        assert Sore.cycles(rows, width, n, m, lanes) == prune_cycles(rows, width, n, m, lanes)


def test_ports_have_documented_widths():
    dut = Sore(_config(8, 4, "fp16"))
    assert (len(dut.src.data), len(dut.dst.data), len(dut.idx.data)) == (128, 128, 64)
    assert (dut.passes, dut.max_n, dut.max_m) == (2, 4, 8)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "4"])
def test_sore_rejects_bad_lanes(bad):
    with pytest.raises(TypeError, match=f"^lanes must be a positive integer, not {bad!r}$"):
        Sore(preset("tiny"), lanes=bad)


def test_sore_rejects_non_config_and_dense_only_config():
    with pytest.raises(TypeError, match=r"^config must be an AcceleratorConfig, not 'tiny'$"):
        Sore("tiny")
    dense = dataclasses.replace(preset("tiny"), array=ArrayConfig(patterns=()))
    with pytest.raises(ValueError, match=r"^config 'tiny' has no N:M pattern \(array.patterns "
                                         r"is empty\), so the SORE has nothing to prune$"):
        Sore(dense)
