"""The lookup engine's hot-row cache (``lookup.hot_rows``): hits against an independent LRU,
tier bytes from the formula, both row-pipeline kernels agreeing, no change without a cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hwsim import Program, isa, preset, run
from hwsim.config import ConfigError, LookupConfig
from hwsim.energy import price
from hwsim.tiers import TIER_PRESETS, tier_preset
from hwsim.units.lookup import LookupModel, _synthetic_rows, hot_row_latency
from hwsim.units.lookup_timing import TierParams, events, events_hot, per_cycle

REGS = np.array([0, 1 << 20, 1 << 24, 1 << 26, 1 << 28] + [0] * 11, np.int64)


def _config(tier="ddr4", **lookup):
    base = preset("tiny")
    return dataclasses.replace(base, lookup=LookupConfig(tiers=(tier_preset(tier),), **lookup))


def _lru_reference(rows, capacity):
    """Hits of a cold LRU cache of ``capacity`` rows: a plain list, most recent last."""
    cache, hits = [], []
    for r in rows:
        r = int(r)
        if r in cache:
            cache.remove(r)
            hits.append(True)
        else:
            if capacity and len(cache) == capacity:
                cache.pop(0)
            hits.append(False)
        if capacity:
            cache.append(r)
    return np.array(hits, bool)


def _stream(rng, T, K, trows):
    return np.tile(np.arange(K), T) * trows + rng.integers(0, trows, T * K)


def test_hits_are_an_lru_cache_of_the_listed_rows():
    from hwsim.units.lookup import hot_row_hits
    rng = np.random.default_rng(3)
    for _ in range(60):
        rows = _stream(rng, int(rng.integers(1, 60)), int(rng.integers(1, 6)),
                       int(rng.choice([2, 8, 64])))
        cap = int(rng.choice([0, 1, 3, 16, 100, 5000]))
        hit, src = hot_row_hits(rows, cap)
        assert np.array_equal(hit, _lru_reference(rows, cap)), cap
        # a hit's source is an earlier miss of the same row
        assert (src[~hit] == -1).all()
        s = src[hit]
        assert (s < np.flatnonzero(hit)).all() and not hit[s].any()
        assert np.array_equal(rows[s], rows[hit])


def test_without_a_cache_the_kernels_are_the_ones_the_rtl_is_checked_against():
    rng = np.random.default_rng(5)
    m = LookupModel()
    for _ in range(20):
        cfg = _config(str(rng.choice(TIER_PRESETS)), request_ports=int(rng.integers(1, 3)))
        op = rng.choice([isa.Opcode.GATHER, isa.Opcode.SCATTER])
        T, K = int(rng.integers(1, 20)), int(rng.integers(1, 4))
        cmd = isa.command_class(op)(0, 0, 0, 1, T, K, 64, 0, 0)
        rows = _stream(rng, T, K, 4)
        assert m._run_pipeline(cmd, cfg, rows, REGS, events) == (
            m._pipeline(cmd, cfg, rows, REGS, events), 0, 0)
        # the cache kernel with no hit is the kernel without a cache, result for result
        lk = cfg.lookup
        rb = 64 * lk.element_bytes
        n = T * K
        args = (1 << 20) + rows * rb, np.full(n, rb, np.int64), np.arange(n + 1), \
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(n + 1, np.int64), \
            np.full(n, 16.0), np.full(n, -1, np.int64), np.zeros(n, np.bool_), \
            lk.request_ports, 8, TierParams(lk.tiers[0], cfg.clock_mhz).args()
        got = events_hot(*args, np.zeros(n, np.bool_), np.full(n, -1, np.int64), 1)
        assert tuple(got[:5]) == tuple(events(*args)) and got[5] == 0


def test_event_schedule_equals_per_cycle_schedule_with_a_cache():
    rng = np.random.default_rng(11)
    m = LookupModel()
    for _ in range(80):
        tier = tier_preset(str(rng.choice(TIER_PRESETS)),
                           outstanding=int(rng.choice([1, 2, 8, 64])))
        cfg = _config(gather_lanes=int(rng.choice([1, 4, 64])),
                      request_ports=int(rng.integers(1, 4)),
                      inflight_kib=int(rng.choice([1, 4, 16])),
                      hot_rows=int(rng.choice([1, 4, 32, 4096])))
        cfg = dataclasses.replace(cfg, lookup=dataclasses.replace(cfg.lookup, tiers=(tier,)))
        op = rng.choice([isa.Opcode.GATHER, isa.Opcode.SCATTER])
        mode = int(rng.integers(0, 2)) if op == isa.Opcode.GATHER else int(rng.integers(0, 3))
        T, K, h = int(rng.integers(1, 24)), int(rng.integers(1, 5)), int(rng.choice([8, 256]))
        cmd = isa.command_class(op)(0, 0, 0, 1, T, K, h, 0, mode)
        rows = _stream(rng, T, K, int(rng.choice([2, 16, 256])))
        dirty = rng.random(len(rows)) < 0.7
        ev = m._run_pipeline(cmd, cfg, rows, REGS, events, dirty)
        assert ev == m._run_pipeline(cmd, cfg, rows, REGS, per_cycle, dirty), (tier.name, cmd)
        hits = int(_lru_reference(rows, cfg.lookup.hot_rows).sum())
        cached = op == isa.Opcode.GATHER or mode == 0
        assert ev[1] == (hits if cached else 0)
        if op == isa.Opcode.GATHER:
            assert ev[2] == ev[1]  # every listed row is a read


@pytest.mark.parametrize("tier", ["cxl", "ddr4"])
def test_a_cache_never_slows_a_repeated_row_stream_and_saves_on_a_slow_tier(tier):
    m = LookupModel()
    rows = np.tile(np.arange(8), 64) * 16 + np.tile(np.arange(4), 128) % 16  # 12 rows, repeated
    cmd = isa.Gather(0, 0, 0, 1, 64, 8, 512, 0, 0)
    none = m._pipeline(cmd, _config(tier, gather_lanes=256), rows, REGS, events)
    for hot in (1, 8, 64):
        c = m._pipeline(cmd, _config(tier, gather_lanes=256, hot_rows=hot), rows, REGS, events)
        assert c <= none, hot
    big = m._pipeline(cmd, _config(tier, gather_lanes=256, hot_rows=64), rows, REGS, events)
    if tier == "cxl":  # bandwidth-bound without the cache; with it, 12 misses of 512 rows
        assert big < none / 2
    assert hot_row_latency(preset("tiny").clock_mhz) >= 1


def test_hits_move_no_tier_bytes_and_are_priced_as_cache_bytes():
    T, K, h = 64, 2, 40  # 80-byte fp16 rows; timing mode draws 2 x 64 rows from 256 a chunk
    cmd = isa.Gather(0, 0, 0, 1, T, K, h)
    key = [int(isa.Opcode.GATHER), T, K, h, 0, 0, 0]
    rows = _synthetic_rows(key, cmd, 0)
    for tier in ("pmem", "ddr4"):
        base = run(Program([cmd], 64), _config(tier), check=False).stats
        moved = -(-2 * h // tier_preset(tier).access_bytes) * tier_preset(tier).access_bytes
        assert base.bytes[f"tier_{tier}_read"] == T * K * moved
        for hot in (4, 64, 1000):
            s = run(Program([cmd], 64), _config(tier, hot_rows=hot), check=False).stats
            hits = int(_lru_reference(rows, hot).sum())
            assert hits > 0 or hot == 4
            assert s.bytes[f"tier_{tier}_read"] == (T * K - hits) * moved
            assert s.bytes["sram_read"] - base.bytes["sram_read"] == hits * 2 * h
            assert s.bytes["sram_write"] - base.bytes["sram_write"] == (T * K - hits) * 2 * h
            cache_pj = T * K * 2 * h * price("hot_row_byte", preset("tiny"))
            assert s.energy_pj["sram"] - base.energy_pj["sram"] == pytest.approx(cache_pj)
            assert s.energy_pj[f"tier_{tier}"] == pytest.approx(
                (T * K - hits) * moved * tier_preset(tier).read_pj_per_byte)


def test_scatter_writes_through_and_reads_only_misses():
    T, K, h = 64, 2, 16
    cmd = isa.Scatter(0, 0, 0, 1, T, K, h, 0, 0)
    rows = _synthetic_rows([int(isa.Opcode.SCATTER), T, K, h, 0, 0, 0], cmd, 0)
    s = run(Program([cmd], 64), _config("ddr4", hot_rows=32), check=False).stats
    hits = int(_lru_reference(rows, 32).sum())
    assert hits > 0 and s.bytes["tier_ddr4_read"] == (T * K - hits) * 64
    assert s.bytes["tier_ddr4_write"] == T * K * 64  # every update reaches the tier


def test_functional_mode_with_a_cache_keeps_values_and_is_no_slower():
    from tests.hwsim.test_lookup import Layer  # the memory-layer program of the lookup tests
    lay = Layer(T=8, d=8, h=4, tau=2, seed=4)  # 4 rows a chunk: repeats
    cmds = lay.forward_program()
    plain = lay.run(cmds, ("Y",))
    hot = lay.run(cmds, ("Y",), config=_config("cxl", hot_rows=64))
    assert np.array_equal(plain.outputs["Y"], hot.outputs["Y"])
    gi = [i for i, c in enumerate(cmds) if isinstance(c, isa.Gather)][0]
    slow = lay.run(cmds, ("Y",), config=_config("cxl"))
    assert hot.stats.schedule.duration[gi] <= slow.stats.schedule.duration[gi]


@pytest.mark.parametrize("bad", [(1 << 20) + 1, 1 << 30])
def test_too_many_hot_rows_is_one_config_error(bad):
    with pytest.raises(ConfigError, match="lookup.hot_rows"):
        LookupConfig(hot_rows=bad).validate()
    LookupConfig(hot_rows=1 << 20).validate()
