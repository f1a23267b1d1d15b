"""Block tier on the generated Verilog: the PE, the SORE and the vector unit, each built alone
and run by :mod:`rtl.cosim.block_bench` under cocotb on Icarus and Verilator.

Vectors are random plus corner cases (fp: +-0, subnormals, ties, overflow, inf - inf, NaN in);
results are compared bit for bit with ``hwsim`` (``numerics``, ``units.sore.prune``,
``units.vector.update``) and with the ``algorithms``/torch references (``nm.compress``,
``torch.optim.SGD``). The fast tier of the same blocks runs in Amaranth's simulator
(``test_array_pe.py``, ``test_sore.py``, ``test_vector.py``). Every failure message names the
seed and the simulator; the seed alone reproduces the vectors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms.nm import compress
from hwsim import isa
from hwsim.config import ArrayConfig, SoreConfig, preset
from hwsim.numerics import fp16_mac, fp16_mul_exact, fp32_add
from hwsim.units.sore import prune, prune_cycles
from hwsim.units.vector import update, update_cycles
from rtl.array import PE
from rtl.cosim import available_simulators
from rtl.cosim.runner import run_block
from rtl.sore import Sore
from rtl.vector import VectorUnit
from tests.rtl.fp_corners import F16_CORNERS, F32_CORNERS

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"
SIMS = ["icarus", "verilator"]

def _require(sim: str) -> None:
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")


# ---------------------------------------------------------------------------------------------
# PE: cycle by cycle against a register model whose arithmetic is hwsim.numerics

PE_INPUTS = ["a_in", "b_in", "psum_in", "sel_in", "ws", "load", "clear"]
PE_OUTPUTS = ["acc", "a_out", "b_out", "sel_out"]
GROUP = 8


def _lane(word: int, sel: int, width: int) -> int:
    return (word >> (sel * width)) & ((1 << width) - 1)


def _s(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) else x


def _pe_model(dtype: str, rows: list[list[int]]) -> list[list[int]]:
    """The PE's registers after each row of ``PE_INPUTS``, as its docstring states them.

    fp16: weight-stationary rows add ``fp32_add(psum, fp16_mul_exact(a, b))`` (the bit-level
    definition), output-stationary rows ``fp16_mac(acc, a, b)`` (the kernels' fast path; the
    same bits). int8: ``psum/acc + a * b`` modulo 2**32."""
    width = 16 if dtype == "fp16" else 8
    acc = b_reg = sel_reg = 0
    out = []
    for a_in, b_in, psum, sel_in, ws, load, clear in rows:
        b_op, sel = (b_reg, sel_reg) if ws else (b_in, sel_in)
        a_op = _lane(a_in, sel, width)
        if clear:
            acc = b_reg = sel_reg = 0
        else:
            if dtype == "fp16" and ws:
                acc = int(fp32_add(np.uint32(psum), fp16_mul_exact(np.uint16(a_op),
                                                                   np.uint16(b_op))))
            elif dtype == "fp16":
                acc = int(fp16_mac(np.uint32(acc), np.uint16(a_op), np.uint16(b_op)))
            else:
                acc = ((psum if ws else acc) + _s(a_op, 8) * _s(b_op, 8)) & 0xFFFFFFFF
            if not ws or load:
                b_reg, sel_reg = b_in, sel_in
        out.append([acc, a_in, b_reg, sel_reg])
    return out


class _Rows:
    """Builds PE input rows; every operand lands in the lane the select of its cycle picks
    (the other lanes hold random bits, so a wrong select shows)."""

    def __init__(self, rng, width: int):
        self.rng, self.width, self.rows = rng, width, []
        self.sel_reg = 0  # the PE's sel_out, for weight-stationary rows

    def _a_word(self, a: int, sel: int) -> int:
        lanes = [int(x) for x in self.rng.integers(0, 1 << self.width, GROUP)]
        lanes[sel] = a
        return sum(v << (i * self.width) for i, v in enumerate(lanes))

    def clear(self) -> None:
        self.rows.append([0, 0, 0, 0, 0, 0, 1])
        self.sel_reg = 0

    def ws_triples(self, triples) -> None:
        """Weight-stationary rows with ``load`` high: the weight (and select) driven on one
        row multiplies the next row's activation, so row k carries ``a_k`` and ``psum_k``
        with ``b_{k+1}``; a leading row loads ``b_0``. Row k then yields
        ``psum_k + a_k * b_k``."""
        sels = [int(s) for s in self.rng.integers(0, GROUP, len(triples) + 1)]
        for k in range(-1, len(triples)):
            psum, a = (0, 0) if k < 0 else triples[k][:2]
            b_next = triples[k + 1][2] if k + 1 < len(triples) else 0
            a_word = self._a_word(a, self.sel_reg)
            self.rows.append([a_word, b_next, psum, sels[k + 1], 1, 1, 0])
            self.sel_reg = sels[k + 1]

    def ws_hold(self, weight: int, psums, acts) -> None:
        """Load ``weight`` once, then rows with ``load`` low and random ``b_in``/``sel_in``:
        the held weight and select must be used."""
        sel = int(self.rng.integers(0, GROUP))
        self.rows.append([0, weight, 0, sel, 1, 1, 0])
        for p, a in zip(psums, acts, strict=True):
            self.rows.append([self._a_word(a, sel), int(self.rng.integers(0, 1 << self.width)),
                              p, int(self.rng.integers(0, GROUP)), 1, 0, 0])
        self.sel_reg = sel

    def os_chain(self, pairs) -> None:
        """A clear, then one output-stationary MAC per pair, the select moving with ``b``."""
        self.clear()
        for a, b in pairs:
            sel = int(self.rng.integers(0, GROUP))
            self.rows.append([self._a_word(a, sel), b, int(self.rng.integers(0, 2**32)), sel,
                              0, 0, 0])
        self.sel_reg = 0 if not pairs else self.rows[-1][3]

    def fuzz(self, n: int) -> None:
        """Random bits everywhere, control included (clear rarely)."""
        for _ in range(n):
            r = self.rng.integers(0, 2**31, 8)
            self.rows.append([self._a_word(int(r[0]) & ((1 << self.width) - 1), 0),
                              int(r[1]) & ((1 << self.width) - 1), int(r[2]) | (int(r[3]) & 1)
                              << 31, int(r[4]) % GROUP, int(r[5]) & 1, int(r[6]) & 1,
                              int(r[7] % 16 == 0)])
        self.sel_reg = 0  # unknown after fuzz: the next section starts with a clear


def _fp16_pow2(k: int, mant: float = 1.0) -> int | None:
    """Bits of the fp16 ``mant * 2**k`` when exactly representable, else None."""
    v = mant * 2.0**k
    if v > 65504.0:
        return None
    x = np.float16(v)
    return int(x.view(np.uint16)) if float(x) == v else None


def _fp16_pe_rows(seed: int) -> tuple[list[list[int]], list[tuple[int, int, int]]]:
    rng = np.random.default_rng(seed)
    r = _Rows(rng, 16)
    r.clear()
    triples = []
    # every pair of fp16 corners, against fp32 corner accumulators in turn
    for i, (a, b) in enumerate((a, b) for a in F16_CORNERS for b in F16_CORNERS):
        triples.append((F32_CORNERS[i % len(F32_CORNERS)], a, b))
    # every fp32 corner accumulator against every fp16 corner (times 1.0 or random)
    for p in F32_CORNERS:
        for a in F16_CORNERS:
            triples.append((p, a, int(rng.choice([0x3C00, int(rng.integers(0, 2**16))]))))
    # ties: the product is exactly half an ulp of the accumulator or one and a half (ties to
    # even, from either parity), or just above or below half an ulp; either sign
    for _ in range(500):
        e = int(rng.integers(103, 183))  # accumulator exponent field: 2^(e-127)
        mant = float(rng.choice([1.0, 3.0, 1.0 + 2.0**-10, 0.75]))
        k = e - 127 - 24  # half an ulp of the accumulator
        lo, hi = max(-24, k - 15), min(15, k + 24)  # 2^ka and 2^(k - ka) both fp16
        if lo > hi:
            continue
        ka = int(rng.integers(lo, hi + 1))
        a, b = _fp16_pow2(ka, mant), _fp16_pow2(k - ka)
        if a is None or b is None:
            continue
        p = int(rng.integers(0, 2)) << 31 | e << 23 | int(rng.integers(0, 2**23))
        triples.append((p, a | int(rng.integers(0, 2)) << 15, b))
    # the largest products on the largest accumulators (no overflow: 2^32 << half an ulp)
    for p in (0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FFFFE, 0x4F800000, 0xCF800000):
        for a, b in ((0x7BFF, 0x7BFF), (0xFBFF, 0x7BFF)):
            triples.append((p, a, b))
    # inf - inf, 0 * inf, NaN operands with finite and infinite accumulators
    for p, a, b in [(0x7F800000, 0xFC00, 0x3C00), (0xFF800000, 0x7C00, 0x7C00),
                    (0x7F800000, 0x7C00, 0xBC00), (0x3F800000, 0x7C00, 0x0000),
                    (0x7F800000, 0x8000, 0xFC00), (0x3F800000, 0x7E01, 0x3C00),
                    (0x7F800000, 0x3C00, 0xFE00), (0x7FC00000, 0x0000, 0x0000),
                    (0x7F800001, 0x3C00, 0x3C00), (0x80000000, 0x8000, 0x3C00),
                    (0x80000000, 0x0000, 0x8000), (0x00000000, 0x8000, 0x0000)]:
        triples.append((p, a, b))
    # near-cancellation: the accumulator within a few ulps of minus the product
    for _ in range(300):
        a, b = (int(x) for x in rng.integers(0, 0x7C00, 2) | rng.integers(0, 2, 2) << 15)
        prod = int(fp16_mul_exact(np.uint16(a), np.uint16(b)))
        delta = int(rng.integers(-8, 9)) if prod & 0x7FFFFFFF > 8 else 0
        triples.append(((prod ^ 0x80000000) + delta, a, b))
    # random bit patterns
    triples += [tuple(int(x) for x in t) for t in
                np.column_stack([rng.integers(0, 2**32, 1000),
                                 rng.integers(0, 2**16, (1000, 2))])]
    triples = [triples[i] for i in rng.permutation(len(triples))]
    r.ws_triples(triples)
    # the weight and select held while load is low
    r.ws_hold(0x3E00, [int(x) for x in rng.integers(0, 2**32, 30)],
              [int(x) for x in rng.integers(0, 2**16, 30)])
    # output-stationary chains: normal values, then chains through subnormals, inf and NaN
    for _ in range(16):
        vals = rng.standard_normal((40, 2)) * 2.0 ** rng.integers(-12, 8, (40, 2))
        r.os_chain([tuple(int(x) for x in v) for v in vals.astype(np.float16).view(np.uint16)])
    r.os_chain([(0x0001, 0x3C00), (0x03FF, 0x3C00), (0x8001, 0x0001), (0x3C00, 0x3C00),
                (0xBC00, 0x3C00), (0x7C00, 0x3C00), (0x3C00, 0x3C00), (0x7C00, 0xBC00),
                (0x3C00, 0x3C00)])
    r.os_chain([(0x8000, 0x3C00), (0x0000, 0x8000), (0x7E00, 0x0000), (0x3C00, 0x3C00)])
    r.fuzz(400)
    return r.rows, triples


def _int8_pe_rows(seed: int) -> tuple[list[list[int]], list[tuple[int, int, int]]]:
    rng = np.random.default_rng(seed)
    r = _Rows(rng, 8)
    r.clear()
    i8 = [0x80, 0x81, 0xFF, 0x00, 0x01, 0x7F, 0x40, 0xC0]  # -128, -127, -1, 0, 1, 127, +-64
    p32 = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x7FFFC000, 0x80003FFF]
    triples = [(p32[i % len(p32)], a, b) for i, (a, b) in
               enumerate((a, b) for a in i8 for b in i8)]
    triples += [(p, a, b) for p in p32 for a, b in ((0x80, 0x80), (0x7F, 0x80), (0x7F, 0x7F))]
    triples += [tuple(int(x) for x in t) for t in
                np.column_stack([rng.integers(0, 2**32, 400),
                                 rng.integers(0, 256, (400, 2))])]
    r.ws_triples(triples)
    r.ws_hold(0x80, [int(x) for x in rng.integers(0, 2**32, 20)],
              [int(x) for x in rng.integers(0, 256, 20)])
    for _ in range(8):
        r.os_chain([tuple(int(x) for x in v) for v in rng.integers(0, 256, (40, 2))])
    r.os_chain([(0x80, 0x80)] * 20)
    r.fuzz(200)
    return r.rows, triples


def _check_pe_rows(dtype, rows, got, where):
    expect = _pe_model(dtype, rows)
    assert len(got) == len(expect), where
    bad = [t for t, (g, e) in enumerate(zip(got, expect, strict=True)) if g != e]
    if bad:
        lines = [f"row {t}: in {dict(zip(PE_INPUTS, map(hex, rows[t]), strict=True))} got "
                 f"{dict(zip(PE_OUTPUTS, map(hex, got[t]), strict=True))} expected "
                 f"{dict(zip(PE_OUTPUTS, map(hex, expect[t]), strict=True))}" for t in bad[:5]]
        pytest.fail(f"{where}: {len(bad)} of {len(rows)} rows differ from hwsim\n" +
                    "\n".join(lines))


def _ws_yields_triples(dtype, rows, triples):
    """The generator's claim: weight-stationary row k computes ``psum_k + a_k * b_k``."""
    expect = _pe_model(dtype, rows)
    start = next(t for t, row in enumerate(rows) if row[4]) + 1
    for k in (0, 1, len(triples) // 2, len(triples) - 1):
        p, a, b = triples[k]
        if dtype == "fp16":
            want = int(fp32_add(np.uint32(p), fp16_mul_exact(np.uint16(a), np.uint16(b))))
        else:
            want = (p + _s(a, 8) * _s(b, 8)) & 0xFFFFFFFF
        assert expect[start + k][0] == want


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("dtype", ["fp16", "int8"])
def test_pe_sparse_select_both_dataflows_match_numerics_bit_for_bit(sim, dtype):
    """PE(dtype, group=8), cycle by cycle: weight-stationary rows put an arbitrary accumulator
    (psum) against each operand pair (corners x corners, ties, near-cancellation, inf - inf,
    NaN, random bits), the operand in the lane the loaded select picks; output-stationary
    chains accumulate with the select moving with b; a held weight; random control. Every
    cycle's acc, a_out, b_out and sel_out equal the hwsim.numerics model. (An fp16 product is
    below 2^32, so a PE sum cannot overflow to inf; the vector unit test covers overflow.)"""
    _require(sim)
    seed = 2024 if dtype == "fp16" else 2025
    rows, triples = (_fp16_pe_rows if dtype == "fp16" else _int8_pe_rows)(seed)
    _ws_yields_triples(dtype, rows, triples)
    spec = {"kind": "steps", "seed": seed, "inputs": PE_INPUTS, "outputs": PE_OUTPUTS,
            "steps": rows}
    got = run_block(sim, lambda: PE(dtype, group=GROUP), f"pe-{dtype}-g{GROUP}", "block_bench",
                    spec, tag=f"pe-seed{seed}", build_root=BUILD)["outputs"]
    _check_pe_rows(dtype, rows, got, f"{sim}: PE({dtype!r}, group={GROUP}) (seed {seed})")


# ---------------------------------------------------------------------------------------------
# SORE: PRUNE commands against hwsim.units.sore.prune and algorithms.nm.compress

# the presets' patterns (lanes sized for 2 of 8; 4:8 and 1:4 are in the fast tier) and lanes
# that take several passes per group: 2 (the last partly idle) for int8, 4 for fp16
SORE_CASES = {"int8": (("2:4", "2:8", "1:8"), 3), "fp16": (("2:4", "2:8", "1:8"), 1)}


def _sore_config(dtype: str):
    patterns, lanes = SORE_CASES[dtype]
    return dataclasses.replace(
        preset("tiny"), array=ArrayConfig(rows=4, cols=4, dtype=dtype, patterns=patterns),
        sore=SoreConfig(lanes=lanes))


def _sore_sources(dtype: str, rng) -> list[tuple[np.ndarray, int, int]]:
    supported = {tuple(map(int, p.split(":"))) for p in SORE_CASES[dtype][0]}
    jobs = []
    for n, m, groups in [(2, 4, 3), (1, 4, 2), (2, 8, 2), (1, 8, 2), (4, 8, 2), (1, 4, 6),
                         (2, 8, 4), (1, 8, 3), (2, 4, 5)]:
        if (n, m) not in supported:
            continue
        if dtype == "int8":
            src = rng.integers(-128, 128, (groups * m, 4)).astype(np.int8)
            src[0, 0], src[1, 0] = -128, 127
        else:
            src = (rng.standard_normal((groups * m, 4)) *
                   2.0 ** rng.integers(-20, 12, (groups * m, 4))).astype(np.float16)
        jobs.append((src, n, m))
    if dtype == "int8":  # ties of either sign and all-zero columns: the lower index wins
        ties = np.array([[1, -2, 0, 5], [-1, 2, 0, -5], [1, 2, 0, 5], [-1, -2, 0, 4]] * 4,
                        np.int8)
        jobs += [(ties, 2, 4), (ties, 1, 8), (rng.integers(-2, 3, (16, 4)).astype(np.int8), 2, 8)]
    else:  # +-0 tie, subnormals, +-inf, max, equal magnitudes of either sign, NaN (last job)
        corners = np.array([0.0, -0.0, 6e-8, -6e-8, 6.1e-5, 1.5, -1.5, np.inf, -np.inf,
                            65504.0, -65504.0, 1e-3], np.float16)
        jobs += [(rng.choice(corners, (16, 4)), n, m) for n, m in [(2, 8), (2, 4), (1, 8)]]
        nan = rng.choice(corners, (8, 4))
        nan.view(np.uint16)[[1, 5], [0, 2]] = [0x7E00, 0xFC01]
        jobs.append((nan, 2, 4))
    jobs.append((np.zeros((0, 4), np.int8 if dtype == "int8" else np.float16), 2, 4))
    return jobs


def _pack(rows: np.ndarray, bits: int) -> list[int]:
    return [sum(int(v) << (bits * c) for c, v in enumerate(row)) for row in rows]


def _unpack(entries: dict, base: int, count: int, cols: int, bits: int) -> np.ndarray:
    assert sorted(entries) == list(range(base, base + count))
    mask = (1 << bits) - 1
    return np.array([[(entries[base + r] >> (bits * c)) & mask for c in range(cols)]
                     for r in range(count)], np.int64).reshape(count, cols)


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("dtype", ["int8", "fp16"])
def test_sore_prune_matches_hwsim_and_nm_compress(sim, dtype):
    """Sore on a 4-column array with the presets' patterns, PRUNE commands back to back (one
    in place, idle cycles between them): int8 on 3 lanes (two passes per group, the second
    partly idle), fp16 on one lane (four passes). Values,
    indices, write addresses and cycles equal hwsim.units.sore.prune; values and indices equal
    algorithms.nm.compress(w, n, m, dim=0) (NaN sources aside: the hardware ranks NaNs by
    payload, algorithms.nm ties them)."""
    _require(sim)
    seed = 31 if dtype == "fp16" else 32
    config = _sore_config(dtype)
    lanes = config.sore.lanes
    jobs = _sore_sources(dtype, np.random.default_rng(seed))
    eb = 8 * config.array.elem_bytes
    raw_dtype = np.uint8 if dtype == "int8" else np.uint16
    spec_jobs, addrs = [], []
    for k, (src, n, m) in enumerate(jobs):
        s = 64 * k
        d = s if k == 2 else s + 32  # job 2 prunes in place
        i = 16 * k
        addrs.append((d, i))
        spec_jobs.append({
            "fields": {"src_addr": s, "dst_addr": d, "idx_addr": i, "rows": src.shape[0],
                       "n": n, "log2m": m.bit_length() - 1},
            "load": {"wgt": {str(s + r): v for r, v in enumerate(_pack(src.view(raw_dtype),
                                                                       eb))}},
            "idle": k % 3})
    spec = {"kind": "jobs", "seed": seed, "reads": {"src": "wgt"},
            "writes": {"dst": "wgt", "idx": "idx"}, "memories": {"wgt": {}, "idx": {}},
            "fill": 0xDEAD, "max_cycles": 10_000, "jobs": spec_jobs}
    got = run_block(sim, lambda: Sore(config), f"sore-{dtype}-l{lanes}-{config.key()}",
                    "block_bench", spec, tag=f"sore-seed{seed}", build_root=BUILD)["jobs"]
    for (src, n, m), (d, i), res in zip(jobs, addrs, got, strict=True):
        rows = src.shape[0]
        where = f"{sim}: Sore {dtype} lanes={lanes} {n}:{m} on {rows} rows (seed {seed})"
        expect = prune(src, n, m, lanes=lanes)
        count = rows * n // m
        vals = {a: v for _, p, a, v in res["writes"] if p == "dst"}
        idxs = {a: v for _, p, a, v in res["writes"] if p == "idx"}
        rtl_v = _unpack(vals, d, count, 4, eb).astype(raw_dtype)
        rtl_i = _unpack(idxs, i, count, 4, 8).astype(np.uint8)
        np.testing.assert_array_equal(rtl_v, expect.values.view(raw_dtype),
                                      err_msg=f"{where}: values vs hwsim")
        np.testing.assert_array_equal(rtl_i, expect.indices, err_msg=f"{where}: indices vs hwsim")
        cycles = prune_cycles(rows, 4, n, m, lanes)
        assert res["cycles"] == expect.cycles == cycles, f"{where}: cycles"
        assert (res["busy"], res["busy_after"]) == (cycles - 1, 0), f"{where}: busy"
        if count:
            assert max(c for c, *_ in res["writes"]) == cycles, f"{where}: done is the last write"
        if rows == 0 or (dtype == "fp16" and np.isnan(src).any()):
            continue
        w = torch.from_numpy(src.astype(np.float32) if dtype == "int8" else src)
        ref_v, ref_i = compress(w, n, m, dim=0)
        ref_v = ref_v.numpy().astype(src.dtype).view(raw_dtype)
        np.testing.assert_array_equal(rtl_v, ref_v, err_msg=f"{where}: values vs nm.compress")
        np.testing.assert_array_equal(rtl_i, ref_i.numpy(), err_msg=f"{where}: indices vs "
                                                                     f"nm.compress")


# ---------------------------------------------------------------------------------------------
# Vector unit: UPDATE commands against hwsim.units.vector.update and torch.optim.SGD

VU_LANES, VU_DEPTH = 3, 150
# regions (entries): w, g, v, fp16 out
W0, G0, V0, O0 = 0, 40, 80, 120
VU_F32 = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x3F800000,
          0xBF800000, 0x3F800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
          0x7F800001, 0xFFC00001, 0x1A000000, 0x33800000, 0x477FE000, 0x477FF000, 0x3F801000,
          0x3F803000, 0x33000000, 0x387FE000]  # the last six: fp16-cast ties and overflow


def _hp(lr, mu, wd) -> list[int]:
    return [int(x) for x in np.array([lr, mu, wd], np.float32).view(np.uint32)]


def _vu_jobs(rng) -> list[tuple[isa.Update, list[int], dict]]:
    """(command, hyper-parameter bits, entries loaded before it) per job."""
    L = VU_LANES
    E = G0 - W0  # entries per region

    def region(base, words):
        padded = np.zeros(E * L, np.uint32)
        padded[:len(words)] = words
        return {base + e: padded[e * L:(e + 1) * L] for e in range(E)}

    def normal(n, spread=4):
        return (rng.standard_normal(n) * 2.0 ** rng.integers(-spread, spread + 1, n)
                ).astype(np.float32).view(np.uint32)

    def corners(n):
        x = normal(n)
        pick = rng.random(n) < 0.4
        x[pick] = rng.choice(np.array(VU_F32, np.uint32), pick.sum())
        return x

    def fresh(w, g, v):
        return {**region(W0, w), **region(G0, g), **region(V0, v)}

    n = E * L
    jobs = [
        # random finite state: first step, momentum, plain SGD (checked against torch too)
        (isa.Update(W0, G0, V0, O0, n - 1, optimizer=3), _hp(0.1, 0.9, 1e-2),
         fresh(normal(n), normal(n), normal(n))),
        (isa.Update(W0, G0, V0, O0, n, optimizer=1), _hp(0.05, 0.9, 5e-4),
         fresh(normal(n), normal(n), normal(n))),
        (isa.Update(W0, G0, V0, O0, n - 2, optimizer=0), _hp(0.5, 0.0, 0.0),
         fresh(normal(n), normal(n), normal(n))),
        # corner state (+-0, subnormals, inf, NaN, max finite) under momentum
        (isa.Update(W0, G0, V0, O0, n, optimizer=1), _hp(0.25, 0.9, 1e-3),
         fresh(corners(n), corners(n), corners(n))),
        # overflow: w - lr*v, mu*v and g + wd*w past the largest finite value
        (isa.Update(W0, G0, V0, O0, n, optimizer=1), _hp(4.0, 2.0, 3.0),
         fresh(rng.choice(np.array([0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000, 0x7E800000],
                                   np.uint32), n), corners(n),
               rng.choice(np.array([0x7F7FFFFF, 0xFF000000, 0x7F000000], np.uint32), n))),
        # lr = 0: w' = w, so the fp16 copy sees the ties and the overflow to inf of the cast
        (isa.Update(W0, G0, V0, O0, n, optimizer=0), _hp(0.0, 0.0, 0.0),
         fresh(corners(n), normal(n), normal(n))),
        # special hyper-parameters: inf, NaN, subnormal
        (isa.Update(W0, G0, V0, O0, 11, optimizer=1), _hp(np.inf, 0.5, 0.0),
         fresh(normal(n), normal(n), normal(n))),
        (isa.Update(W0, G0, V0, O0, 7, optimizer=3), [0x7FC00000, 0x00000001, 0x80000000],
         fresh(normal(n), normal(n), normal(n))),
        (isa.Update(W0 + 1, G0 + 1, V0 + 1, O0 + 3, 5, optimizer=1),
         _hp(2.0**-130, 1.0, -1.0), {}),
        # one word, and nothing to do
        (isa.Update(W0, G0, V0, O0, 1, optimizer=1), _hp(1e-3, 0.99, 5e-4), {}),
        (isa.Update(W0, G0, V0, O0, 0, optimizer=1), _hp(0.1, 0.9, 0.0), {}),
    ]
    return jobs


def _torch_sgd(w, g, v, hp, optimizer):
    """torch.optim.SGD's step on float32 state; returns (w', v') (v' None for SGD)."""
    lr, mu, wd = (float(x) for x in np.array(hp, np.uint32).view(np.float32))
    p = torch.nn.Parameter(torch.from_numpy(w.view(np.float32).copy()))
    p.grad = torch.from_numpy(g.view(np.float32).copy())
    opt = torch.optim.SGD([p], lr=lr, momentum=0.0 if optimizer == 0 else mu, weight_decay=wd)
    if optimizer == 1:
        opt.state[p]["momentum_buffer"] = torch.from_numpy(v.view(np.float32).copy())
    opt.step()
    return p.detach().numpy(), opt.state[p]["momentum_buffer"].numpy() if optimizer else None


@pytest.mark.parametrize("sim", SIMS)
def test_vector_unit_sgd_momentum_step_matches_hwsim_and_torch(sim):
    """VectorUnit with 3 lanes (fp16 halves straddle words): UPDATE commands of every
    optimizer on random and corner state and hyper-parameters, back to back on one VEC
    buffer. Every VEC entry after every command and each command's cycles equal
    hwsim.units.vector.update bit for bit; on the random finite commands w' and v' equal
    torch.optim.SGD within its fused-multiply-add rounding and the fp16 copy is torch's
    rounding of the RTL's w'."""
    _require(sim)
    seed = 51
    rng = np.random.default_rng(seed)
    config = preset("tiny").replace(vector__lanes=VU_LANES, dram__bus_bytes=16)
    jobs = _vu_jobs(rng)
    vec = np.zeros((VU_DEPTH, VU_LANES), np.uint32)
    vec[:] = rng.integers(0, 2**32, vec.shape, dtype=np.uint64)

    def entry(row) -> int:
        return sum(int(x) << (32 * j) for j, x in enumerate(row))

    spec_jobs = []
    for k, (cmd, hp, load) in enumerate(jobs):
        spec_jobs.append({
            "fields": {"w_addr": cmd.w_addr, "g_addr": cmd.g_addr, "v_addr": cmd.v_addr,
                       "out_addr": cmd.out_addr, "count": cmd.count, "optimizer": cmd.optimizer,
                       "lr": hp[0], "momentum": hp[1], "weight_decay": hp[2]},
            "load": {"vec": {str(a): entry(row) for a, row in load.items()}},
            "idle": 2 * (k % 2)})
    spec = {"kind": "jobs", "seed": seed, "reads": {"rd": "vec"}, "writes": {"wr": "vec"},
            "memories": {"vec": {str(a): entry(row) for a, row in enumerate(vec)}},
            "fill": 0xDEAD, "max_cycles": 10_000, "jobs": spec_jobs}
    out = run_block(sim, lambda: VectorUnit(config), f"vector-l{VU_LANES}-{config.key()}",
                    "block_bench", spec, tag=f"vu-seed{seed}", build_root=BUILD)
    mask = (1 << 32) - 1
    rtl_vec = np.array([[(int(out["memories"]["vec"][str(a)]) >> (32 * j)) & mask
                         for j in range(VU_LANES)] for a in range(VU_DEPTH)], np.uint32)
    # replay each command's writes on the state before it: per-command values
    state = {a: entry(row) for a, row in enumerate(vec)}
    n = (G0 - W0) * VU_LANES
    for k, ((cmd, hp, load), res) in enumerate(zip(jobs, out["jobs"], strict=True)):
        where = f"{sim}: VectorUnit command {k} {cmd} (seed {seed})"
        for a, row in load.items():
            vec[a] = row
            state[a] = entry(row)
        before = vec.copy()
        regs = np.zeros(16, np.uint32)
        regs[:3] = hp
        expect = update(vec, cmd, regs)
        for _, _, a, data in res["writes"]:
            state[a] = data
        got = np.array([[(state[a] >> (32 * j)) & mask for j in range(VU_LANES)]
                        for a in range(VU_DEPTH)], np.uint32)
        bad = np.argwhere(got != vec)
        assert not bad.size, (f"{where}: {len(bad)} words differ from hwsim, first at entry "
                              f"{bad[0][0]} lane {bad[0][1]}: {got[tuple(bad[0])]:#010x} vs "
                              f"{vec[tuple(bad[0])]:#010x}")
        cycles = update_cycles(cmd.count, VU_LANES, cmd.optimizer)
        assert res["cycles"] == expect.cycles == cycles, f"{where}: cycles"
        assert (res["busy"], res["busy_after"]) == (cycles - 1, 0), f"{where}: busy"
        if k < 3:  # random finite state: torch's optimizer step
            _check_against_torch(before, got, cmd, hp, n, where)
    np.testing.assert_array_equal(rtl_vec, vec, err_msg=f"{sim}: final VEC (seed {seed})")


def _check_against_torch(before, after, cmd, hp, n, where):
    def words(mem, base, count):
        return np.ascontiguousarray(mem[base:]).ravel()[:count]

    count = cmd.count
    assert count <= n
    w, g, v = (words(before, a, count) for a in (cmd.w_addr, cmd.g_addr, cmd.v_addr))
    w_ref, v_ref = _torch_sgd(w, g, v, hp, cmd.optimizer)
    w_rtl = words(after, cmd.w_addr, count).view(np.float32)
    lr, mu, wd = np.array(hp, np.uint32).view(np.float32).astype(np.float64)
    f = [x.view(np.float32).astype(np.float64) for x in (w, g, v)]
    # torch fuses a multiply-add where the engine rounds twice: within a few ulps of the terms
    eps = 2.0**-23
    v_terms = np.abs(f[1]) + np.abs(wd * f[0]) + (np.abs(mu * f[2]) if cmd.optimizer == 1 else 0)
    w_terms = np.abs(f[0]) + np.abs(lr) * 2 * v_terms
    assert (np.abs(w_rtl - w_ref) <= 4 * eps * w_terms).all(), f"{where}: w' vs torch"
    if cmd.optimizer != 0:
        v_rtl = words(after, cmd.v_addr, count).view(np.float32)
        assert (np.abs(v_rtl - v_ref) <= 4 * eps * v_terms).all(), f"{where}: v' vs torch"
    halves = np.ascontiguousarray(after[cmd.out_addr:]).ravel().view(np.uint16)[:count]
    torch_half = torch.from_numpy(w_rtl.copy()).half().numpy().view(np.uint16)
    np.testing.assert_array_equal(halves, torch_half, err_msg=f"{where}: fp16 copy vs torch")
