# amaranth: UnusedElaboratable=no
"""The lookup engine's hash lanes (rtl.lookup.hash) against hwsim.numerics, bit for bit and
cycle for cycle: the fast tier in Amaranth's simulator, and HashLane's generated Verilog under
cocotb on Icarus and Verilator (marked ``cocotb``, last)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hwsim.numerics import (
    _chunk_grad_kernel,
    chunk_weight,
    chunk_weight_bits,
    chunk_weight_grad,
    fp32_mul_array,
    hw_sigmoid_array,
)
from rtl.cosim import available_simulators
from rtl.cosim.runner import run_block
from rtl.lookup.hash import HASH_GRAD_DEPTH, HASH_LANE_DEPTH, HashGradLane, HashLane, hw_sigmoid
from tests.rtl.comb_bench import run_clocked, run_comb

BUILD = Path(__file__).resolve().parents[2] / "build"
NANS = [0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0xFFC00001, 0xFF800001, 0x7FC12345]
# +-0, subnormals, smallest normal, inf, max finite, NaNs (payloads), large finite
Z_CORNERS = np.array([0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x00800000, 0x7F800000,
                      0xFF800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x5F000000, 0xDE800000, *NANS],
                     np.uint64).astype(np.uint32)


def _f32_bits(values) -> np.ndarray:
    return np.asarray(values, np.float32).view(np.uint32)


def _f32_value(bits: int) -> np.float32:
    return np.array([bits], np.uint32).view(np.float32)[0]


def _c_bits(t: float) -> int:
    """fp32 ``2/t`` as ``hwsim.numerics.chunk_weight`` rounds it."""
    return int(_f32_bits(2.0 / t))


# ---------------------------------------------------------------------------------------------
# hw_sigmoid


def test_hw_sigmoid_equals_hwsim_on_corners_segment_boundaries_and_random_bits():
    """Every segment's first value i/32 (so every ROM word), the last value of 128 random
    segments, +-0, subnormals, 16 and its neighbours, +-inf, NaNs with payloads, negatives,
    random bit patterns (half with exponents around the table's range) and random values in
    [-20, 20]: the same bits as hwsim.numerics.hw_sigmoid."""
    rng = np.random.default_rng(41)
    edges = _f32_bits(np.arange(513) / 32.0)  # i/32: every segment's start, 16.0 last
    pos = np.concatenate([
        edges, edges[rng.integers(1, 513, 128)] - 1,  # a segment's last fp32
        _f32_bits([2.0**-6, 2.0**-5 * (1 - 2.0**-24), 15.999999, 16.000002, 1e30, 3.4e38]),
        np.array([0x00000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F800000], np.uint32),
    ])
    sign = np.uint32(0x80000000)
    near = (rng.integers(0, 2**23, 500) | rng.integers(110, 132, 500) << 23
            | rng.integers(0, 2, 500) << 31).astype(np.uint32)
    vals = np.concatenate([
        pos, pos[rng.integers(0, len(pos), 100)] | sign, pos[-11:] | sign,
        np.array(NANS, np.uint64).astype(np.uint32), near,
        rng.integers(0, 2**32, 500, dtype=np.uint64).astype(np.uint32),
        _f32_bits(rng.uniform(-20.0, 20.0, 1000)),
    ])
    got = run_comb(lambda m, a, b: hw_sigmoid(m, a), [(int(v), 0) for v in vals])
    expect = hw_sigmoid_array(vals).view(np.uint32)
    bad = [(hex(v), hex(g), hex(e)) for v, g, e in zip(vals, got, expect, strict=True) if g != e]
    assert not bad, f"{len(bad)} of {len(vals)} differ (x, rtl, hwsim), first: {bad[:5]}"
    # the corners the model states: -0 as +0, 1.0 from 16 on, 1 - 1 = +0 at -inf, NaN canonical
    rtl = dict(zip(vals.tolist(), got, strict=True))
    assert [rtl[v] for v in (0x80000000, 0x41800000, 0x7F800000, 0xFF800000, 0x7F800001)] == \
        [rtl[0], 0x3F800000, 0x3F800000, 0x00000000, 0x7FC00000]


# ---------------------------------------------------------------------------------------------
# Streams of chunks through a lane


def _chunks(rng, taus, c: int) -> list[np.ndarray]:
    """One chunk (uint32 bits) per ``tau``: random normal ones at several scales, ones with
    ``|z| c`` on segment boundaries, and ones sprinkled with :data:`Z_CORNERS`."""
    scale = float(np.abs(_f32_value(c)))
    out = []
    for k, tau in enumerate(taus):
        kind = k % 4
        if kind == 2 and np.isfinite(scale) and scale > 0:
            z = _f32_bits(rng.integers(-520, 521, tau) / 32.0 / scale)
        else:
            z = _f32_bits(rng.standard_normal(tau) * float(rng.choice([0.25, 1.0, 4.0])))
        if kind == 3:
            pick = rng.random(tau) < 0.4
            z[pick] = rng.choice(Z_CORNERS, pick.sum())
        out.append(z)
    return out


def _stream(chunks, gaps, rng, g=None) -> tuple[list[dict], list[int]]:
    """Per-cycle inputs: ``gaps[k]`` idle cycles (random ``z``, ``first``, ``last``, ``g``:
    the lane must ignore them) before chunk ``k``; and the cycle of each chunk's last
    element."""
    rows, lasts = [], []

    def noise():
        return {"in_valid": 0, "z": int(rng.integers(0, 2**32)), "first": int(rng.integers(2)),
                "last": int(rng.integers(2)), "g": int(rng.integers(0, 2**32))}

    for k, (z, gap) in enumerate(zip(chunks, gaps, strict=True)):
        rows += [noise() for _ in range(gap)]
        for j, v in enumerate(z):
            row = {"in_valid": 1, "z": int(v), "first": int(j == 0), "last": int(j == len(z) - 1),
                   "g": int(rng.integers(0, 2**32))}
            if g is not None and j == len(z) - 1:
                row["g"] = int(g[k])
            rows.append(row)
        lasts.append(len(rows) - 1)
    return rows, lasts


def _simulate(dut, held: dict, rows: list[dict], tail: int, out: str) -> list[tuple[int, int]]:
    """Drive ``rows`` (then ``tail`` idle cycles) with ``held`` constant; the ``(cycle, value of
    the output named out)`` of every cycle with ``out_valid`` high."""
    ports = [p for p in ("in_valid", "z", "first", "last", "g") if hasattr(dut, p)]
    idle = {"in_valid": 0, "z": 0, "first": 0, "last": 0, "g": 0}
    got = []

    async def bench(ctx):
        for name, value in held.items():
            ctx.set(getattr(dut, name), value)
        for t in range(len(rows) + tail):
            row = rows[t] if t < len(rows) else idle
            for p in ports:
                ctx.set(getattr(dut, p), row[p])
            if ctx.get(dut.out_valid):
                got.append((t, ctx.get(getattr(dut, out))))
            await ctx.tick()

    run_clocked(dut, bench)
    return got


def _gaps(rng, n: int) -> list[int]:
    """Mostly back to back, sometimes a few idle cycles."""
    return [int(rng.integers(1, 5)) if rng.random() < 0.3 else 0 for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# HashLane

FORWARD_CASES = [(t, official) for t in (1.0, 0.5, 3.7) for official in (0, 1)]


def _check_forward(c: int, official: int, seed: int, t: float | None = None) -> None:
    rng = np.random.default_rng(seed)
    taus = [8, 10, 8, 10, 1, 3, 3, 8, 10, 1, 10, 3, 8, 8, 1, 1]
    chunks = _chunks(rng, taus, c)
    chunks.append(np.zeros(8, np.uint32))  # L = +0, every s = 0.5
    chunks.append(_f32_bits([3e38, 3e38, 1.0, -2.0, 3e38, 0.5, 1.0, 2.0]))  # L overflows
    rows, lasts = _stream(chunks, _gaps(rng, len(chunks)), rng)
    got = _simulate(HashLane(), {"c": c, "official": official}, rows, HASH_LANE_DEPTH + 3,
                    "weight")
    expect = [(last + HASH_LANE_DEPTH, int(chunk_weight_bits(z, np.uint32(c), bool(official))))
              for z, last in zip(chunks, lasts, strict=True)]
    if t is not None:  # the c given is chunk_weight's fl(2/t)
        assert [w for _, w in expect] == [int(chunk_weight(z, t, bool(official)).view(np.uint32))
                                          for z in chunks]
    _assert_outputs(got, expect, f"HashLane c={c:#010x} official={official} (seed {seed})")


def _assert_outputs(got, expect, where: str) -> None:
    assert [t for t, _ in got] == [t for t, _ in expect], f"{where}: out_valid cycles"
    bad = [(t, hex(g), hex(e)) for (t, g), (_, e) in zip(got, expect, strict=True) if g != e]
    assert not bad, f"{where}: {len(bad)} of {len(expect)} differ (cycle, rtl, hwsim): {bad[:5]}"


@pytest.mark.parametrize(("t", "official"), FORWARD_CASES)
def test_hash_lane_weights_equal_chunk_weight_bits_back_to_back_and_with_gaps(t, official):
    """Chunks of tau 8, 10, 1 and 3 (random normal, on segment boundaries, with +-0, inf, NaN,
    huge and subnormal elements), back to back and with idle cycles of random inputs between
    them: each weight equals chunk_weight_bits and leaves exactly HASH_LANE_DEPTH cycles after
    the chunk's last element; out_valid is low on every other cycle."""
    _check_forward(_c_bits(t), official, seed=100 + FORWARD_CASES.index((t, official)), t=t)


def test_hash_lane_negative_and_infinite_scales_equal_chunk_weight_bits():
    """Scales no temperature gives but the register may hold: c < 0 makes every x negative
    (the 1 - s path), c = inf makes every nonzero x infinite and 0 * inf NaN."""
    _check_forward(_c_bits(-1.3), 1, seed=120)
    _check_forward(0x7F800000, 0, seed=121)


def test_reversed_product_order_would_change_weights():
    """The order of the product matters in fp32: on random chunks of the lane tests,
    multiplying the sigmoids from the last to the first changes some weights' bits, which the
    lane tests would catch."""
    rng = np.random.default_rng(130)
    c = np.uint32(_c_bits(1.0))
    z = np.stack(_chunks(rng, [8] * 40, int(c)))
    s = hw_sigmoid_array(fp32_mul_array(z & np.uint32(0x7FFFFFFF), c)).view(np.uint32)
    p = s[:, -1]
    for j in range(6, -1, -1):
        p = fp32_mul_array(p, s[:, j])
    assert (p != [chunk_weight_bits(row, c, False) for row in z]).any()


# ---------------------------------------------------------------------------------------------
# HashGradLane


def _grad_stream_taus(rng) -> tuple[list[int], list[int]]:
    """Runs of equal tau back to back, then changes of tau with the gap the lane needs
    (``tau_prev - tau`` when shorter), some random gaps on top."""
    taus, gaps, prev = [], [], 0
    for tau, n in ((8, 3), (10, 2), (3, 2), (1, 3), (10, 1), (8, 1), (1, 1), (3, 2)):
        for _ in range(n):
            extra = int(rng.integers(1, 4)) if rng.random() < 0.2 else 0
            taus.append(tau)
            gaps.append(max(0, prev - tau) + extra)
            prev = tau
    return taus, gaps


def _grad_expect(z: np.ndarray, c: int, official: int, g: int) -> list[int]:
    """hwsim.units.lookup's dz of one chunk: fp32_mul(g, dw/dz_j)."""
    grad = np.empty((1, len(z)), np.uint32)
    _chunk_grad_kernel(z[None, :], np.uint32(c), bool(official), grad)
    return fp32_mul_array(np.repeat(np.uint32(g), len(z)), grad.reshape(-1)).tolist()


def _check_grad(c: int, official: int, seed: int, max_tau: int = 31,
                t: float | None = None) -> None:
    rng = np.random.default_rng(seed)
    taus, gaps = _grad_stream_taus(rng)
    chunks = _chunks(rng, taus, c)
    g = _f32_bits(rng.standard_normal(len(chunks)) * 2.0 ** rng.integers(-8, 8, len(chunks)))
    g[[2, 5]] = [0x7F800000, 0x80000000]  # inf and -0 upstream gradients
    rows, lasts = _stream(chunks, gaps, rng, g)
    got = _simulate(HashGradLane(max_tau), {"c": c, "official": official}, rows,
                    HASH_GRAD_DEPTH + max(taus) + 2, "dz")
    expect = []
    for z, last, gk in zip(chunks, lasts, g, strict=True):
        dz = _grad_expect(z, c, official, int(gk))
        if t is not None:  # the c given is chunk_weight_grad's fl(2/t)
            ref = fp32_mul_array(np.repeat(gk, len(z)), chunk_weight_grad(z, t, bool(official)))
            assert dz == ref.tolist()
        expect += [(last + HASH_GRAD_DEPTH + j, d) for j, d in enumerate(dz)]
    _assert_outputs(got, expect, f"HashGradLane c={c:#010x} official={official} (seed {seed})")


@pytest.mark.parametrize(("t", "official"), FORWARD_CASES)
def test_hash_grad_lane_equals_hwsim_backward_with_overlapped_passes(t, official):
    """Runs of chunks of one tau back to back (the second pass of each overlapping the first
    pass of the next: one dz a cycle), changes of tau, idle cycles of random inputs, corner
    elements and upstream gradients (inf, -0): dz_j of each chunk equals hwsim.units.lookup's
    fp32_mul(g, chunk_weight_grad) and leaves on cycle last + HASH_GRAD_DEPTH + j, out_valid
    low on every other cycle."""
    _check_grad(_c_bits(t), official, seed=200 + FORWARD_CASES.index((t, official)), t=t)


def test_hash_grad_lane_small_buffer_and_negative_scale_equal_hwsim():
    """A buffer of 10-element banks (the longest chunk) and a negative c."""
    _check_grad(_c_bits(-0.7), 1, seed=220, max_tau=10)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "8"])
def test_hash_grad_lane_rejects_bad_max_tau(bad):
    with pytest.raises(ValueError, match=rf"^max_tau must be a positive integer, not "
                                         rf"{re.escape(repr(bad))}$"):
        HashGradLane(bad)


def test_lanes_expose_their_latency():
    assert HashLane.latency == HASH_LANE_DEPTH == 4
    assert HashGradLane.latency == HASH_GRAD_DEPTH == 6
    lane = HashGradLane(10)
    assert (lane.max_tau, len(lane.z), len(lane.g), len(lane.dz)) == (10, 32, 32, 32)


# ---------------------------------------------------------------------------------------------
# HashLane's Verilog alone under cocotb (the grad lane is left to the fast tier: a second
# Verilator build would double this section's ~45 s). Slow: the lanes run on both simulators
# inside the whole top in tests/rtl/test_lookup_cocotb.py.

LANE_INPUTS = ["c", "official", "in_valid", "first", "last", "z"]


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_hash_lane_verilog_matches_hwsim_under_cocotb(sim):
    """HashLane's generated Verilog, cycle by cycle (rtl.cosim.block_bench "steps"): chunks of
    tau 8, 10, 1 and 3 with corner elements, back to back and with gaps, the paper form then,
    after the lane drains, the official form; every weight equals chunk_weight_bits and
    leaves HASH_LANE_DEPTH cycles after its chunk's last element, out_valid low otherwise."""
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    seed = 140
    rng = np.random.default_rng(seed)
    c = _c_bits(3.7)
    chunks = _chunks(rng, [8, 10, 1, 3, 10, 8, 3, 1, 3, 1, 10, 8, 1, 3, 8, 10], c)
    half = len(chunks) // 2
    gaps = _gaps(rng, len(chunks))
    gaps[half] = HASH_LANE_DEPTH  # nothing in flight when official changes
    rows, lasts = _stream(chunks, gaps, rng)
    switch = lasts[half - 1] + HASH_LANE_DEPTH
    steps = [[c, int(t >= switch), *(row[p] for p in LANE_INPUTS[2:])]
             for t, row in enumerate(rows + [rows[0] | {"in_valid": 0}] * HASH_LANE_DEPTH)]
    spec = {"kind": "steps", "seed": seed, "inputs": LANE_INPUTS,
            "outputs": ["out_valid", "weight"], "steps": steps}
    out = run_block(sim, HashLane, "lookup-hash-lane", "block_bench", spec,
                    tag=f"hash-lane-seed{seed}", build_root=BUILD)["outputs"]
    got = [(t + 1, w) for t, (valid, w) in enumerate(out) if valid]  # row t: cycle t + 1
    expect = [(last + HASH_LANE_DEPTH, int(chunk_weight_bits(z, np.uint32(c), k >= half)))
              for k, (z, last) in enumerate(zip(chunks, lasts, strict=True))]
    _assert_outputs(got, expect, f"{sim}: HashLane c={c:#010x} (seed {seed})")
