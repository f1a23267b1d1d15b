"""The lookup unit: HASH, GATHER, SCATTER against MemoryFormer's reference, fp32 replicas and the
row pipeline's two schedules."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from algorithms.memoryformer import MemoryLayer
from hwsim import Program, ProgramError, TensorRef, isa, preset, run
from hwsim.config import LookupConfig
from hwsim.numerics import CANONICAL_NAN_F32, CHUNK_WEIGHT_MAX_REL_ERROR
from hwsim.tiers import TIER_PRESETS, tier_preset
from hwsim.units.lookup import LookupModel, hash_cycles, hash_rows
from hwsim.units.lookup_timing import events, per_cycle
from hwsim.units.vector import adam_update

F32 = np.float32


def _config(tier="ddr4", **lookup):
    base = preset("tiny")
    return dataclasses.replace(base, lookup=LookupConfig(tiers=(tier_preset(tier),), **lookup))


class Layer:
    """A memory layer program on ``tiny``: X in DRAM, the fp16 table and the fp32 gradient,
    master and momentum tables in the tier, operands in VEC."""

    def __init__(self, T=4, d=16, h=8, tau=4, weight="paper", seed=0, table=None):
        torch.manual_seed(seed)
        self.T, self.d, self.h, self.tau, self.K = T, d, h, tau, d // tau
        self.layer = MemoryLayer(d, h, tau=tau, weight=weight, bias=False)
        if table is not None:
            with torch.no_grad():
                self.layer.tables.copy_(torch.as_tensor(table).reshape(self.layer.tables.shape))
        self.mode = 1 if weight == "official" else 0
        self.x = torch.randn(T, d)
        self.table = self.layer.tables.detach().reshape(-1, h).numpy().astype(np.float16)
        rows = self.K << tau
        a = 0
        self.t = {}
        for name, shape, dt in (("X", (T, d), "fp32"), ("dY", (T, h), "fp32"),
                                ("T", (rows, h), "fp16"), ("W", (rows, h), "fp32"),
                                ("G", (rows, h), "fp32"), ("V", (rows, h), "fp32"),
                                ("Y", (T, h), "fp32"), ("dX", (T, d), "fp32"),
                                ("R", (T, self.K), "int32"), ("P", (T, self.K), "fp32")):
            self.t[name] = TensorRef(a, shape, dt)
            a += (self.t[name].nbytes + 63) // 64 * 64
        self.dram_bytes = a
        L = 4
        self.z, self.rows, self.p = 0, T * d // L, T * d // L + T * self.K // L
        self.y = self.p + T * self.K // L
        self.dy = self.y + T * h // L
        self.g = self.dy + T * h // L

    def regs(self):
        t = self.t
        return [isa.SetReg(0, int(F32(2.0).view(np.uint32))), isa.SetReg(1, t["T"].addr),
                isa.SetReg(2, t["W"].addr), isa.SetReg(3, t["G"].addr),
                isa.SetReg(4, t["V"].addr), isa.SetReg(8, int(F32(0.1).view(np.uint32))),
                isa.SetReg(9, int(F32(0.9).view(np.uint32))), isa.SetReg(10, 0)]

    def load(self, name, entry, signal=0):
        ref = self.t[name]
        return isa.Load(isa.Buffer.VEC, entry, ref.addr, ref.nbytes // 16, 4, 16, signal=signal)

    def store(self, name, entry, wait=0):
        ref = self.t[name]
        return isa.Store(isa.Buffer.VEC, entry, ref.addr, ref.nbytes // 16, 4, 16, wait=wait)

    def forward(self, done=2):
        T, K, h, tau = self.T, self.K, self.h, self.tau
        return [*self.regs(), self.load("X", self.z, 1),
                isa.Hash(self.z, self.p, self.rows, 0, T, K, tau, 0, self.mode, wait=1),
                isa.Gather(self.rows, self.p, self.y, 1, T, K, h, 0, 0, signal=done)]

    def forward_program(self):
        T, K = self.T, self.K
        return [*self.forward(),
                isa.Store(isa.Buffer.VEC, self.rows, self.t["R"].addr, T * K // 4, 4, 16,
                          wait=2),
                self.store("Y", self.y)]

    def backward(self, update=True):
        T, K, h, tau = self.T, self.K, self.h, self.tau
        cmds = [*self.regs(), self.load("X", self.z), self.load("dY", self.dy, 1),
                isa.Hash(self.z, self.p, self.rows, 0, T, K, tau, 0, self.mode, wait=1),
                isa.Gather(self.rows, self.p, self.y, 1, T, K, h, 0, 0),
                isa.Gather(self.rows, self.dy, self.g, 1, T, K, h, 0, 1),
                isa.Hash(self.z, self.g, self.z, 0, T, K, tau, 0, 2 + self.mode),
                isa.Scatter(self.rows, self.p, self.dy, 3, T, K, h, 0, 0, signal=0 if update
                            else 2)]
        if update:
            cmds.append(isa.Scatter(self.rows, 8, 0, 1, T, K, h, 0, 1, signal=2))
        return [*cmds, self.store("dX", self.z, wait=2)]

    def run(self, cmds, outputs, mode="functional", config=None, **values):
        prog = Program(cmds, self.dram_bytes, self.t, inputs=("X", "dY", "T", "W", "G", "V"),
                       outputs=outputs)
        w = self.table.astype(np.float32)
        ins = {"X": self.x.numpy(), "dY": values.get("dy", np.zeros((self.T, self.h))),
               "T": self.table, "W": w, "G": np.zeros_like(w), "V": np.zeros_like(w)}
        return run(prog, config or preset("tiny"), mode, inputs=ins)


# --- HASH ------------------------------------------------------------------------------------

@pytest.mark.parametrize("weight", ["paper", "official"])
def test_hash_rows_exact_and_weights_within_bound_of_memoryformer(weight):
    lay = Layer(T=4, d=16, tau=4, weight=weight)
    res = lay.run(lay.forward_program(), ("Y", "R"))
    idx, w = lay.layer.hash(lay.x)
    flat = idx.numpy() + np.arange(lay.K) * (1 << lay.tau)
    assert np.array_equal(res.outputs["R"], flat)  # sign bits MSB first, chunk offsets
    # p read back through GATHER is not directly visible: recompute from VEC via hash_rows
    assert np.array_equal(hash_rows(lay.x.numpy(), lay.tau), flat)


def test_hash_rows_bit_order_zero_and_negative_zero():
    z = np.array([[1.0, -1.0, 0.0, -0.0, -2.0, 3.0, -0.5, np.nan]], np.float32)
    # chunk 0: 1,-1,0,-0 -> bits 1,0,1,1 = 0b1011; chunk 1: -2,3,-.5,nan -> 0,1,0,0 = 0b0100
    assert hash_rows(z, 4).tolist() == [[0b1011, 16 + 0b0100]]


# --- GATHER forward ----------------------------------------------------------------------------

def _replica_gather(p, rows, table16):
    """Sequential fp32 of numpy (IEEE binary32 round-to-nearest-even), from the first product."""
    T, K = p.shape
    out = np.empty((T, table16.shape[1]), F32)
    for t in range(T):
        acc = None
        for k in range(K):
            prod = F32(p[t, k]) * table16[rows[t, k]].astype(F32)
            acc = prod if acc is None else (acc + prod).astype(F32)
        out[t] = acc
    return out


@pytest.mark.parametrize("weight", ["paper", "official"])
def test_gather_bit_exact_fp32_and_within_bound_of_memoryformer(weight):
    lay = Layer(T=4, d=16, h=8, tau=4, weight=weight, seed=3)
    res = lay.run(lay.forward_program(), ("Y", "R"))
    rows = res.outputs["R"]
    _, w_ref = lay.layer.hash(lay.x)
    # the hardware weights, recovered exactly: p = chunk_weight (tested in test_numerics_*)
    from hwsim.numerics import chunk_weight

    z = lay.x.numpy().reshape(lay.T, lay.K, lay.tau)
    p = chunk_weight(z, 1.0, weight == "official")
    assert np.allclose(p, w_ref.detach().numpy(), rtol=CHUNK_WEIGHT_MAX_REL_ERROR[8], atol=0)
    assert np.array_equal(res.outputs["Y"].view(np.uint32),
                          _replica_gather(p, rows, lay.table).view(np.uint32))
    ref = lay.layer(lay.x).detach().numpy()
    # against the float32 reference: fp16 table rounding plus the weights' bound
    bound = (np.abs(w_ref.detach().numpy())[..., None] *
             np.abs(lay.layer.tables.detach().reshape(-1, lay.h).numpy()[rows])).sum(1)
    assert np.all(np.abs(res.outputs["Y"] - ref) <= bound * (2.0 ** -11 + 1e-4) + 1e-7)


# --- backward: input gradient, scatter, sparse update -----------------------------------------

def test_backward_input_gradient_table_gradient_and_update_match_autograd():
    lay = Layer(T=4, d=16, h=8, tau=4, seed=5)
    dy = np.random.default_rng(5).standard_normal((lay.T, lay.h)).astype(F32)
    res = lay.run(lay.backward(), ("dX", "G", "W", "V", "T"), dy=dy)
    x = lay.x.clone().requires_grad_(True)
    layer = lay.layer
    with torch.no_grad():
        layer.tables.copy_(torch.from_numpy(lay.table.astype(F32)).reshape(layer.tables.shape))
    y = layer(x)
    y.backward(torch.from_numpy(dy))
    g_ref = layer.tables.grad.reshape(-1, lay.h).numpy()
    # the gradient table was zeroed by the update of its rows: rebuild it from the update
    w_new = res.outputs["W"]
    v_new = res.outputs["V"]
    touched = np.unique(res.outputs["G"].nonzero()[0])
    assert touched.size == 0  # every scattered row was updated and its gradient zeroed
    # SGD with momentum, first step from v = 0: v = g, w = w - lr * g (fp32)
    w0 = lay.table.astype(F32)
    # the hardware's chunk weights are within CHUNK_WEIGHT_MAX_REL_ERROR of torch's
    assert np.allclose(v_new, g_ref, rtol=2e-4, atol=1e-6)
    assert np.allclose(w_new, w0 - F32(0.1) * g_ref, rtol=2e-4, atol=1e-6)
    assert np.array_equal(res.outputs["T"], w_new.astype(np.float16))
    assert np.allclose(res.outputs["dX"], x.grad.numpy(), rtol=2e-3, atol=2e-4)


def test_row_update_is_lazy_and_applies_once_per_scattered_row():
    lay = Layer(T=4, d=16, h=8, tau=4, seed=5)
    dy = np.random.default_rng(5).standard_normal((lay.T, lay.h)).astype(F32)
    once = lay.run(lay.backward(), ("W", "V"), dy=dy)
    cmds = lay.backward()
    upd = next(c for c in cmds if isinstance(c, isa.Scatter) and c.mode == 1)
    again = dataclasses.replace(upd, signal=0)
    twice = lay.run([*cmds[:-2], again, *cmds[-2:]], ("W", "V"), dy=dy)
    # the second update finds every gradient row zeroed: nothing changes
    for name in ("W", "V"):
        assert np.array_equal(once.outputs[name], twice.outputs[name])
    assert twice.stats.cycles > once.stats.cycles  # it still reads each listed gradient row


def test_scatter_sums_repeated_rows_in_order():
    # every token hashes to the same rows: four contributions to each row must add up
    lay = Layer(T=4, d=8, h=8, tau=4, seed=1)
    lay.x = torch.ones(lay.T, lay.d)
    dy = np.arange(lay.T * lay.h, dtype=F32).reshape(lay.T, lay.h) / 7
    res = lay.run(lay.backward(update=False), ("G",), dy=dy)
    from hwsim.numerics import chunk_weight

    p = chunk_weight(np.ones((lay.K, lay.tau), F32), 1.0)
    g = res.outputs["G"]
    for k in range(lay.K):
        acc = np.zeros(lay.h, F32)
        for t in range(lay.T):
            acc = (acc + F32(p[k]) * dy[t]).astype(F32)
        assert np.array_equal(g[(k << lay.tau) + 15].view(np.uint32), acc.view(np.uint32))
    assert np.count_nonzero(np.abs(g).sum(1)) == lay.K


# --- the row pipeline ---------------------------------------------------------------------------

def test_row_pipeline_event_schedule_equals_per_cycle_schedule():
    rng = np.random.default_rng(7)
    m = LookupModel()
    for _ in range(150):
        tier = tier_preset(str(rng.choice(TIER_PRESETS)),
                           outstanding=int(rng.choice([1, 2, 8, 64])))
        cfg = _config(gather_lanes=int(rng.choice([1, 4, 64])),
                      request_ports=int(rng.integers(1, 4)),
                      inflight_kib=int(rng.choice([1, 4, 16])))
        cfg = dataclasses.replace(cfg, lookup=dataclasses.replace(cfg.lookup, tiers=(tier,)))
        op = rng.choice([isa.Opcode.GATHER, isa.Opcode.SCATTER])
        T, K, h = int(rng.integers(1, 16)), int(rng.integers(1, 5)), int(rng.choice([8, 256, 512]))
        cmd = isa.command_class(op)(0, 0, 0, 1, T, K, h, 0, int(rng.integers(0, 2)))
        trows = int(rng.choice([2, 16, 256]))
        rows = np.tile(np.arange(K), T) * trows + rng.integers(0, trows, T * K)
        regs = np.array([0, 1 << 20, 1 << 24, 1 << 26, 1 << 28] + [0] * 11, np.int64)
        dirty = rng.random(len(rows)) < 0.7  # a row update finds some rows clean
        assert m._pipeline(cmd, cfg, rows, regs, events, dirty) == \
            m._pipeline(cmd, cfg, rows, regs, per_cycle, dirty), (tier.name, cmd)


def test_functional_and_timing_cycles_agree_when_rows_are_the_synthetic_ones():
    lay = Layer(T=8, d=16, h=8, tau=4, seed=2)
    cmds = lay.forward_program()
    f = lay.run(cmds, ("Y",))
    t = lay.run(cmds, ("Y",), mode="timing")
    # HASH, loads, stores are closed forms: equal; GATHER differs only through its rows
    hash_i = [i for i, c in enumerate(cmds) if isinstance(c, isa.Hash)][0]
    s_f, s_t = f.stats.schedule, t.stats.schedule
    # the first group's z load (16 words, 4 an entry), 8 groups of 4 cycles, the fetch
    # register, the lane, the writes
    assert s_f.duration[hash_i] == s_t.duration[hash_i] == hash_cycles(8 * 4, 4, 4, 4) \
        == 3 + 32 + 1 + 4 + 4


def test_hash_backward_cycles_follow_the_rtl_read_order_and_tail():
    """HASH modes 2 and 3 (hash_cycles), cycle by cycle as rtl.lookup.hashing runs them."""
    # H = L = 4 (tiny), 8 chunks of 4 (two blocks): reads g0 on 0, z 1-4, g1 5, z 6-9; group 0
    # starts 6, group 1 after its last z arrives (10) on 11, not 10; its last element reaches
    # the lanes on 15, dz_3 leaves on 15 + 6 + 3 = 24, its four entries are written 25-28
    assert hash_cycles(8, 4, 4, 4, 2) == 29 == 11 + 2 * 4 + 6 + 4
    # one chunk: g on 0, z on 1, start 3, dz_3 on 3 + 4 + 6 + 3 = 16, the entry on 17
    assert hash_cycles(1, 4, 4, 4, 3) == 18
    # H = 4, L = 8: reads g0 on 0, z 1-2; group 0 starts 4, group 1 on 8 (the reads are ahead),
    # dz_3 on 8 + 4 + 6 + 3 = 21, the two entries of group 1 written 22-23
    assert hash_cycles(8, 4, 4, 8, 2) == 24
    assert hash_cycles(0, 4, 4, 4, 2) == hash_cycles(0, 4, 4, 4, 0) == 2


@pytest.mark.parametrize("name", TIER_PRESETS)
def test_gather_reaches_90_percent_of_each_tiers_peak_or_its_latency_bound(name):
    """1 KiB rows, random over a 64 MiB table: with enough requests in flight (256 per
    channel), request ports and accumulate lanes the stream runs at >= 90% of the tier's peak
    read bandwidth; with one request in flight per channel it is latency-bound (independent
    formulas each; the remaining gap is the random rows' channel and bank imbalance)."""
    m = LookupModel()
    n, h = 32768, 512  # 1 KiB fp16 rows
    rows = np.random.default_rng(0).integers(0, 1 << 16, n)
    regs = np.zeros(16, np.int64)
    tier = tier_preset(name, outstanding=256)
    clock = preset("tiny").clock_mhz
    per_cycle_peak = tier.peak_gbps * 1000 / clock  # bytes per cycle
    ports = int(np.ceil(per_cycle_peak / 1024)) + 1
    lanes = 1 << int(np.ceil(np.log2(per_cycle_peak)))  # > the peak's fp16 elements a cycle
    cmd = isa.Gather(0, 0, 0, 0, n, 1, h)
    deep = _config(name, gather_lanes=lanes, inflight_kib=1 << 16, request_ports=ports)
    deep = dataclasses.replace(deep, lookup=dataclasses.replace(deep.lookup, tiers=(tier,)))
    cycles = m._pipeline(cmd, deep, rows, regs, events)
    peak_cycles = n * 1024 / per_cycle_peak
    assert peak_cycles <= cycles <= peak_cycles / 0.9, (name, peak_cycles / cycles)
    one = dataclasses.replace(deep, lookup=dataclasses.replace(
        deep.lookup, tiers=(tier_preset(name, outstanding=1),)))
    cycles1 = m._pipeline(cmd, one, rows[:2048], regs, events)
    latency = tier.read_latency_ns * clock / 1000  # at least this per request per channel
    assert cycles1 >= 2048 / tier.channels * latency


# --- checks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd, field", [
    (isa.Gather(0, 0, 0, 1, 1, 1, 8, tier=5), "tier"),
    (isa.Gather(0, 0, 0, 1, 1, 1, 8, mode=2), "mode"),
    (isa.Hash(0, 0, 0, 0, 64, 4, 8), "in_addr"),
    (isa.Hash(0, 0, 0, 0, 1, 1, 32), "width"),
    (isa.Scatter(0, 14, 0, 1, 1, 1, 8, mode=1), "p_addr"),
])
def test_bad_lookup_commands_name_their_field(cmd, field):
    with pytest.raises(ProgramError, match=f"field '{field}'"):
        run(Program([cmd], 64), preset("tiny"))


def test_tier_traffic_and_energy_follow_the_access_granularity():
    cfg = _config("pmem")
    cmd = isa.Gather(0, 0, 0, 1, 2, 2, 40)  # four 80-byte fp16 rows
    s = run(Program([cmd], 64), cfg).stats
    tier = cfg.lookup.tiers[0]
    moved = 4 * 256  # each row one whole 256-byte access of persistent memory
    assert s.bytes["tier_pmem_read"] == moved and s.bytes["tier_pmem_write"] == 0
    assert s.energy_pj["tier_pmem"] == pytest.approx(moved * tier.read_pj_per_byte)


# --- SCATTER mode 2: the lazy sparse Adam row update --------------------------------------------

ADAM = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)


def _adam_replica(w, g, m, v, lr_t, c1, c2, eps, wd=None):
    """adam_update's documented order in numpy float32 (each operation IEEE round to nearest
    even; numpy's float32 sqrt and division are correctly rounded), written from the formula."""
    g = g + (F32(0) if wd is None else wd) * w
    m = m + (g - m) * c1
    v = v + (g * g - v) * c2
    step = lr_t * (m / (np.sqrt(v) + eps))
    return w - step, m, v, step


def _lr_t(t, lr=ADAM["lr"], betas=ADAM["betas"]):
    """The host's bias-corrected step size of step ``t``, as SparseAdam computes it (float64),
    rounded to the fp32 register."""
    b1, b2 = betas
    return F32(lr * math.sqrt(1 - b2**t) / (1 - b1**t))


class AdamTables:
    """The five tables of a mode-2 row update (T16, W, G, M, V at registers 1..5) and a row list
    of ``n`` indices in DRAM, loaded to VEC entry 0; hyper-parameters at registers 8..12."""

    def __init__(self, rows, h, n):
        self.rows, self.h, self.n = rows, h, n
        self.t, a = {}, 0
        for name, shape, dt in (("T", (rows, h), "fp16"), ("W", (rows, h), "fp32"),
                                ("G", (rows, h), "fp32"), ("M", (rows, h), "fp32"),
                                ("V", (rows, h), "fp32"), ("L", (n // 4, 4), "int32")):
            self.t[name] = TensorRef(a, shape, dt)
            a += (self.t[name].nbytes + 63) // 64 * 64
        self.dram_bytes = a

    def program(self, hp, tokens, chunks, table=1, p_addr=8):
        assert tokens * chunks == self.n and self.n % 4 == 0
        regs = [isa.SetReg(table + i, self.t[k].addr) for i, k in enumerate("TWGMV")]
        regs += [isa.SetReg(p_addr + i, int(F32(x).view(np.uint32))) for i, x in enumerate(hp)]
        cmds = [*regs, isa.Load(isa.Buffer.VEC, 0, self.t["L"].addr, self.n // 4, 4, 16,
                                signal=1),
                isa.Scatter(0, p_addr, 0, table, tokens, chunks, self.h, 0, 2, wait=1)]
        return Program(cmds, self.dram_bytes, self.t, inputs=tuple("TWGMVL"),
                       outputs=tuple("TWGMV"))


def test_adam_row_update_matches_sparse_adam_and_its_fp32_replica_over_three_steps():
    """Three steps of SCATTER mode 2 through hwsim.run against torch.optim.SparseAdam on the
    same rows. M and V are bit-exact (the same operations in the same order, each correctly
    rounded in both). W is not: torch's CPU float32 sqrt (MKL's vectorised one) is faithful but
    not correctly rounded (1 ulp off in about a sixth of the elements), and the difference
    reaches W through the division. Bound per step, from that ulp: the denominators differ by
    at most 4u, the quotients 6u, the steps ``lr_t (x) q`` 8u relative (9u with the second order
    terms), then each W rounds by half an ulp: ``|dW'| <= |dW| + 9u |step| + (ulp(W'_hw) +
    ulp(W'_torch)) / 2``. The replica with torch's sqrt substituted equals torch bit for bit,
    which shows that the sqrt is the only difference."""
    rng = np.random.default_rng(11)
    R, h, tokens, chunks = 24, 8, 4, 3
    tab = AdamTables(R, h, tokens * chunks)
    w0 = rng.standard_normal((R, h)).astype(F32)
    param = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = torch.optim.SparseAdam([param], lr=ADAM["lr"], betas=ADAM["betas"], eps=ADAM["eps"])
    b1, b2 = ADAM["betas"]
    c1, c2, eps = F32(1 - b1), F32(1 - b2), F32(ADAM["eps"])  # torch's fp32 scalars
    state = {"T": w0.astype(np.float16), "W": w0, "M": np.zeros_like(w0), "V": np.zeros_like(w0)}
    rep = {k: state[k].copy() for k in "WMV"}
    rep_torch_sqrt = {k: state[k].copy() for k in "WMV"}
    u = 2.0**-24
    bound = np.zeros_like(w0, np.float64)
    cfg = preset("tiny")
    for t in (1, 2, 3):
        # 7 distinct rows, listed 12 times (repeats), gradients over eight orders of magnitude
        touched = rng.choice(R, 7, replace=False)
        listed = np.concatenate([touched, rng.choice(touched, tokens * chunks - 7)])
        rng.shuffle(listed)
        g = np.zeros((R, h), F32)
        g[touched] = rng.standard_normal((7, h)) * 10.0 ** rng.integers(-6, 3, (7, 1))
        lr_t = _lr_t(t)
        res = run(tab.program((lr_t, c1, c2, eps, 0.0), tokens, chunks), cfg, "functional",
                  inputs={**state, "G": g, "L": listed.astype(np.int32).reshape(-1, 4)})
        out = res.outputs
        param.grad = torch.sparse_coo_tensor(torch.from_numpy(np.sort(touched)[None]),
                                             torch.from_numpy(g[np.sort(touched)]), (R, h),
                                             check_invariants=True)
        opt.step()
        st = opt.state[param]
        w_t, m_t, v_t = (x.detach().numpy() for x in (param, st["exp_avg"], st["exp_avg_sq"]))
        # the replica, row by row (only the touched rows move: the lazy update)
        r = touched
        w_r, m_r, v_r, step = _adam_replica(rep["W"][r], g[r], rep["M"][r], rep["V"][r], lr_t,
                                            c1, c2, eps)
        rep["W"][r], rep["M"][r], rep["V"][r] = w_r, m_r, v_r
        for k in "WMV":
            assert np.array_equal(out[k].view(np.uint32), rep[k].view(np.uint32)), (t, k)
        assert np.array_equal(out["T"].view(np.uint16), rep["W"].astype(np.float16).view(
            np.uint16))
        assert not out["G"].any()  # every listed row's gradient zeroed
        untouched = np.setdiff1d(np.arange(R), touched)
        assert np.array_equal(out["W"][untouched], state["W"][untouched])
        # against torch
        assert np.array_equal(out["M"].view(np.uint32), m_t.view(np.uint32)), t
        assert np.array_equal(out["V"].view(np.uint32), v_t.view(np.uint32)), t
        w_hw = out["W"].astype(np.float64)
        bound[r] += 9 * u * np.abs(step.astype(np.float64)) + (
            np.spacing(np.abs(out["W"][r])) + np.spacing(np.abs(w_t[r]))) / 2
        assert np.all(np.abs(w_hw - w_t) <= bound), (t, np.abs(w_hw - w_t).max())
        # the replica with torch's sqrt is torch
        m_q = rep_torch_sqrt["M"][r] + (g[r] - rep_torch_sqrt["M"][r]) * c1
        v_q = rep_torch_sqrt["V"][r] + (g[r] * g[r] - rep_torch_sqrt["V"][r]) * c2
        den = torch.from_numpy(v_q).sqrt().numpy() + eps
        rep_torch_sqrt["W"][r] = rep_torch_sqrt["W"][r] - lr_t * (m_q / den)
        rep_torch_sqrt["M"][r], rep_torch_sqrt["V"][r] = m_q, v_q
        assert np.array_equal(rep_torch_sqrt["W"].view(np.uint32), w_t.view(np.uint32)), t
        # the cycles: the row pipeline with the first listing of each row dirty, repeats clean
        first = np.zeros(len(listed), bool)
        first[np.unique(listed, return_index=True)[1]] = True
        cmd = next(c for c in tab.program((0,) * 5, tokens, chunks).commands
                   if isinstance(c, isa.Scatter))
        regs = np.zeros(16, np.int64)
        regs[1:6] = [tab.t[k].addr for k in "TWGMV"]
        scatter = len(res.stats.schedule.duration) - 1
        assert res.stats.schedule.duration[scatter] == LookupModel()._pipeline(
            cmd, cfg, listed.astype(np.int64), regs, per_cycle, first)
        state = {k: out[k] for k in "TWMV"}


def test_adam_update_with_weight_decay_and_extreme_values_is_its_replica():
    """adam_update (the row update's arithmetic) against the numpy replica: weight decay,
    gradients and moments from 1e-30 (subnormal products and squares) to 1e15, zero moments and
    eps 0 (0/0: the canonical NaN), signed zeros."""
    rng = np.random.default_rng(3)
    n = 200_000

    def mag():
        return 10.0 ** rng.uniform(-30, 15, n)

    w = (rng.standard_normal(n) * mag()).astype(F32)
    g = (rng.standard_normal(n) * mag()).astype(F32)
    m = (rng.standard_normal(n) * mag()).astype(F32)
    v = np.abs(rng.standard_normal(n) * mag()).astype(F32)
    g[:100], m[:50], v[:100], w[:10] = -0.0, 0.0, 0.0, -0.0
    for lr_t, c1, c2, eps, wd in ((_lr_t(2), F32(0.1), F32(0.001), F32(1e-8), F32(0.01)),
                                  (F32(1e-3), F32(0.5), F32(0.25), F32(0.0), F32(0.0))):
        w1, m1, v1, h = adam_update(w, g, m, v, lr_t, c1, c2, eps, wd)
        with np.errstate(all="ignore"):
            wr, mr, vr, _ = _adam_replica(w, g, m, v, lr_t, c1, c2, eps, wd)
        for got, ref in ((w1, wr), (m1, mr), (v1, vr)):
            nan = np.isnan(ref)
            assert np.array_equal(np.isnan(got), nan)
            assert np.all(got.view(np.uint32)[nan] == CANONICAL_NAN_F32)
            assert np.array_equal(got.view(np.uint32)[~nan], ref.view(np.uint32)[~nan])
        with np.errstate(over="ignore"):  # beyond fp16: infinities, as fp32_to_fp16 gives
            h_ref = wr[~np.isnan(wr)].astype(np.float16)
        assert np.array_equal(h[~np.isnan(wr)].view(np.uint16), h_ref.view(np.uint16))
    assert np.isnan(w1[:50]).all()  # eps 0, g = m = v = 0: 0 / 0


def test_adam_row_pipeline_event_schedule_equals_per_cycle_schedule():
    """Mode 2's row pipeline (4 reads and 5 writes a dirty row): timing mode's event schedule
    equals the per-cycle one that functional mode steps, over random configs and shapes."""
    rng = np.random.default_rng(17)
    m = LookupModel()
    for _ in range(80):
        tier = tier_preset(str(rng.choice(TIER_PRESETS)),
                           outstanding=int(rng.choice([1, 2, 8, 64])))
        cfg = _config(gather_lanes=int(rng.choice([1, 4, 64])),
                      request_ports=int(rng.integers(1, 4)),
                      inflight_kib=int(rng.choice([1, 4, 16])))
        cfg = dataclasses.replace(cfg, lookup=dataclasses.replace(cfg.lookup, tiers=(tier,)))
        T, K, h = int(rng.integers(1, 16)), int(rng.integers(1, 5)), int(rng.choice([8, 256, 512]))
        cmd = isa.Scatter(0, 8, 0, 1, T, K, h, 0, 2)
        trows = int(rng.choice([2, 16, 256]))
        rows = np.tile(np.arange(K), T) * trows + rng.integers(0, trows, T * K)
        regs = np.array([0, 1 << 20, 1 << 24, 1 << 26, 1 << 27, 1 << 28] + [0] * 10, np.int64)
        dirty = rng.random(len(rows)) < 0.7
        ev = m._pipeline(cmd, cfg, rows, regs, events, dirty)
        assert ev == m._pipeline(cmd, cfg, rows, regs, per_cycle, dirty), (tier.name, cmd)
        # an Adam row moves one fp32 row more each way than an SGD-with-momentum row
        sgd = m._pipeline(dataclasses.replace(cmd, mode=1), cfg, rows, regs, events, dirty)
        assert ev >= sgd


@pytest.mark.parametrize("cmd, field, words", [
    (isa.Scatter(0, 8, 0, 12, 1, 1, 8, mode=2), "table", "table and p_addr must be at most 11"),
    (isa.Scatter(0, 12, 0, 1, 1, 1, 8, mode=2), "p_addr", "table and p_addr must be at most 11"),
    (isa.Scatter(0, 8, 0, 1, 1, 1, 8, mode=3), "mode", r"3 is not a SCATTER mode \(0..2\)"),
])
def test_bad_adam_row_updates_name_their_field(cmd, field, words):
    with pytest.raises(ProgramError, match=f"field '{field}'.*{words}"):
        run(Program([cmd], 64), preset("tiny"))
    ok = dataclasses.replace(cmd, table=min(cmd.table, 11), p_addr=min(cmd.p_addr, 11), mode=2)
    assert LookupModel().check(ok, preset("tiny")) is None


def test_adam_row_update_traffic_and_energy_follow_the_access_granularity():
    cfg = _config("pmem")
    tokens, chunks, h = 3, 2, 40  # six listed 160-byte fp32 rows, 80-byte fp16 rows
    cmd = isa.Scatter(0, 8, 0, 1, tokens, chunks, h, 0, 2)
    s = run(Program([cmd], 64), cfg).stats
    tier = cfg.lookup.tiers[0]
    n = tokens * chunks
    read = n * 4 * 256  # G, W, M, V: each row one whole 256-byte access
    write = n * 4 * 256 + n * 256  # W, M, V, G and the fp16 row
    assert s.bytes["tier_pmem_read"] == read and s.bytes["tier_pmem_write"] == write
    assert s.energy_pj["tier_pmem"] == pytest.approx(
        read * tier.read_pj_per_byte + write * tier.write_pj_per_byte)
    assert s.energy_pj["lookup"] == pytest.approx(14 * n * h * cfg.energy.vector_flop)


def test_row_update_reads_three_rows_skips_held_repeats_and_writes_dirty_rows_only():
    """SCATTER mode 1's pipeline (hwsim.units.update_timing): an access not skipped reads G,
    W and V (64 B rows here); a repeat of a row still held in a slot reads nothing; only dirty
    rows write W, V, the fp16 row and G (the RTL's cycles: tests/rtl/test_lookup_cocotb.py)."""
    from hwsim.units.update_timing import first_access, update_run

    cfg = _config("ddr4", inflight_kib=1)
    h, rb = 16, 64
    bases = (0, 1 << 16, 2 << 16, 3 << 16)
    distinct = np.arange(12) * 3
    cycles, rd, wr, *_, skipped, updated = update_run(cfg, distinct, np.ones(12, bool), h, 0,
                                                      bases)
    # the fp16 row (32 B) moves as one 64 B DDR4 access block
    assert (rd, wr, skipped, updated) == (12 * 3 * rb, 12 * 4 * rb, 0, 12)
    assert cycles >= 12 * 3  # one request a cycle: three reads an access
    same = np.full(12, 5)
    c_same, rd1, wr1, *_, skipped1, updated1 = update_run(cfg, same, first_access(same), h, 0,
                                                          bases)
    assert updated1 == 1 and wr1 == 4 * rb and skipped1 >= 1
    # the repeats that found the row released read G, W and V and found G zero
    assert rd1 == (12 - skipped1) * 3 * rb
    # a clean row list (nothing to update): no writes
    *_, wr0, _, _, _, updated0 = update_run(cfg, distinct, np.zeros(12, bool), h, 0, bases)
    assert (wr0, updated0) == (0, 0)
