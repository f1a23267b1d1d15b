"""Memory tiers: sourced presets, the tier timing model against hand-derived cycle counts and
the gather closed form, access granularity, per-channel outstanding requests, placement."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hwsim.config import ConfigError, LookupConfig, preset
from hwsim.tiers import (
    TIER_PRESETS,
    PlacementError,
    TierModel,
    gather_time,
    place_tables,
    tier_preset,
)

GHZ = 1000.0  # MHz: one cycle is one nanosecond
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def _unloaded_read_ns(name: str, nbytes: int = 64, write: bool = False) -> int:
    """Issue to completion of one random request on an idle tier, at 1 GHz."""
    r = TierModel(tier_preset(name), GHZ).access([977 * 1 << 20], nbytes, [write])
    return int(r.finish[0] - r.start[0])


# --- presets against REFERENCES.md ---------------------------------------------------------------

def test_presets_carry_the_referenced_numbers():
    hbm, ddr4, cxl, pmem, sram = (tier_preset(n) for n in ("hbm2e", "ddr4", "cxl", "pmem", "sram"))
    assert 400 <= hbm.peak_gbps <= 460  # HBM2e per stack
    assert ddr4.bandwidth_gbps == 25.6  # DDR4-3200 per channel
    assert 0.82 <= cxl.bandwidth_gbps / ddr4.bandwidth_gbps <= 0.83  # CXL-DMSim
    assert (pmem.bandwidth_gbps, pmem.write_bandwidth_gbps, pmem.access_bytes) == (6.6, 2.3, 256)
    # energy per byte = 8 x per bit
    assert hbm.read_pj_per_byte == pytest.approx(8 * 3.97)
    assert 8 * 20 <= ddr4.read_pj_per_byte <= 8 * 40
    assert 8 * 0.16 <= sram.read_pj_per_byte <= 8 * 1.6
    assert {tier_preset(n).kind for n in TIER_PRESETS} == {"sram", "hbm", "ddr", "cxl", "pmem"}


def test_preset_latencies_match_the_references():
    ddr4 = _unloaded_read_ns("ddr4")
    assert 80 <= ddr4 <= 100  # DDR4 loaded latency
    cxl = _unloaded_read_ns("cxl")
    assert cxl / ddr4 == pytest.approx(2.18, abs=0.02)  # CXL-DMSim
    assert 70 <= cxl - ddr4 <= 250  # Pond's +70-90 ns .. +150-250 ns
    assert _unloaded_read_ns("pmem") == 305  # Optane random read
    # a 64-byte read from persistent memory moves a whole 256-byte line
    assert TierModel(tier_preset("pmem"), GHZ).access([64], 64).bytes_read == 256
    assert _unloaded_read_ns("sram") == 2


def test_tier_preset_errors_and_changes():
    with pytest.raises(ConfigError, match="'tier' = 'dram' is not allowed: expected one of"):
        tier_preset("dram")
    with pytest.raises(ConfigError, match="'tier.lanes'"):
        tier_preset("ddr4", lanes=3)
    with pytest.raises(ConfigError, match=r"tier\['ddr4'\].channels"):
        tier_preset("ddr4", channels=0)
    assert tier_preset("ddr4", channels=2, name="near").peak_gbps == 51.2


# --- timing model against hand-derived cycles ----------------------------------------------------

def _one_channel(q: int, **changes):
    """One DDR4-3200 channel at 100 MHz: 256 bytes per cycle, misses of 3 cycles, latency 7."""
    return tier_preset("ddr4", channels=1, outstanding=q, **changes)


@pytest.mark.parametrize("q", [1, 2, 4, 8])
def test_latency_bound_gather_takes_rows_over_q_periods(q):
    tier = _one_channel(q)
    m = TierModel(tier, 100.0)
    assert (m.miss_cycles, m.read_latency_cycles, m.read_bytes_per_cycle) == (3, 7, 256.0)
    n = 96
    # every request opens a new row; consecutive rows rotate over the 16 banks
    r = m.access(np.arange(n) * tier.row_bytes, 256)
    period = 3 + 1 + 7  # activate, one cycle of data, latency
    assert r.cycles == n // q * period + q - 1
    assert (r.row_hits, r.row_misses) == (0, n)
    # the closed form in ns: the same periods without cycle rounding
    est = gather_time(tier, n, 256, outstanding=q)
    assert est.bound == "latency"
    assert est.latency_ns == pytest.approx(n / q * (27.5 + 256 / 25.6 + 65.0))


def test_sequential_stream_runs_at_peak_after_one_miss():
    tier = _one_channel(64)
    m = TierModel(tier, 100.0)
    n = 640
    r = m.access(np.arange(n) * 256, 256)
    assert r.cycles == 3 + n + 7  # one exposed miss, one request per cycle, one latency
    assert r.row_misses == n * 256 // tier.row_bytes and r.row_hits == n - r.row_misses
    assert r.bandwidth_gbps == pytest.approx(n * 256 / (n + 10) * 100.0 / 1000.0)


def test_reads_and_writes_take_their_own_latency_and_bandwidth():
    tier = tier_preset("pmem")
    m = TierModel(tier, GHZ)
    miss = math.ceil(tier.row_miss_ns)
    r = m.access([0], 256, [False])
    assert r.finish[0] == math.ceil(miss + 256 / 6.6) - 1 + 130
    w = m.access([0], 256, [True])
    assert w.finish[0] == math.ceil(miss + 256 / 2.3) - 1 + 90
    assert (w.bytes_written, w.bytes_read) == (256, 0)
    assert w.energy_pj == 256 * tier.write_pj_per_byte
    # a long write stream runs at the write peak, not the read peak
    s = m.access(np.arange(20000) * 256, 256, np.ones(20000, bool))
    assert 0.95 * tier.peak_write_gbps <= s.bandwidth_gbps <= tier.peak_write_gbps


def test_access_granularity_rounds_requests_to_whole_blocks():
    m = TierModel(tier_preset("pmem"), GHZ)
    r = m.access([200, 4096, 5000], [300, 1, 256])  # [0, 512), [4096, 4352), [4864, 5376)
    assert (r.bytes_read, r.requested_bytes) == (512 + 256 + 512, 557)
    assert r.useful_gbps == pytest.approx(r.bandwidth_gbps * 557 / 1280)
    assert r.energy_pj == pytest.approx(1280 * 240.0)
    d = TierModel(tier_preset("ddr4"), GHZ).access([200], 300)  # 64-byte blocks: [192, 512)
    assert d.bytes_read == 320


def _max_in_flight_per_channel(tier, start, finish, channels):
    worst = np.zeros(tier.channels, np.int64)
    for c in range(tier.channels):
        s, f = start[channels == c], finish[channels == c]
        for t in np.unique(s):
            worst[c] = max(worst[c], int(((s <= t) & (f >= t)).sum()))
    return worst


def test_outstanding_is_a_per_channel_limit():
    tier = tier_preset("ddr4", channels=2, outstanding=3, interleave_bytes=8192)
    m = TierModel(tier, 100.0)
    n = 600
    one = np.arange(n) * 2 * 8192  # every request on channel 0
    both = np.arange(n) * 8192  # alternating channels
    r1, r2 = m.access(one, 256), m.access(both, 256)
    assert r1.cycles / r2.cycles == pytest.approx(2.0, rel=0.02)
    for addrs, r in ((one, r1), (both, r2)):
        ch = m.map(addrs)[0]
        assert _max_in_flight_per_channel(tier, r.start, r.finish, ch).max() == 3
    # a full channel does not hold up the other: requests to channel 1 behind channel 0's
    mixed = np.concatenate([one[:50], [8192]])
    r = m.access(mixed, 256)
    assert r.start[-1] == 50 // 2  # arrives on cycle 25 (two per cycle), issues at once


def test_max_in_flight_bounds_requests_over_all_channels():
    tier = tier_preset("ddr4", outstanding=64)
    r = TierModel(tier, GHZ, max_in_flight=1).access(np.arange(50) * 4096, 64)
    assert (r.start[1:] == r.finish[:-1] + 1).all()


def test_bad_requests_and_model_arguments():
    m = TierModel(tier_preset("ddr4"), GHZ)
    with pytest.raises(ValueError, match="addresses must be non-negative"):
        m.access([-64], 64)
    with pytest.raises(ValueError, match="request sizes must be positive"):
        m.access([0], 0)
    with pytest.raises(ValueError, match="sizes has shape"):
        m.access([0, 64], [64, 64, 64])
    with pytest.raises(ValueError, match="clock_mhz must be a positive number"):
        TierModel(tier_preset("ddr4"), 0)
    with pytest.raises(ValueError, match="ports must be a positive integer"):
        TierModel(tier_preset("ddr4"), GHZ, ports=0)
    assert m.access([], 64).cycles == 0


# --- the closed form -----------------------------------------------------------------------------

def test_gather_closed_form_values():
    ddr4 = tier_preset("ddr4")  # 8 channels of 25.6 GB/s, 16 banks, miss 27.5, latency 65
    est = gather_time(ddr4, 1000, 1000, outstanding=4)
    assert est.moved_bytes == 1024
    assert est.peak_ns == pytest.approx(1000 * 1024 / (8 * 25.6))
    assert est.latency_ns == pytest.approx(1000 * (27.5 + 1024 / 25.6 + 65) / (4 * 8))
    assert est.bank_ns == pytest.approx(1000 * (27.5 + 40) / (8 * 16))
    assert est.bound == "peak" and est.gbps == pytest.approx(204.8)
    assert gather_time(ddr4, 1000, 1000, outstanding=2).bound == "latency"
    # a 4 KiB row over 1 KiB-interleaved HBM spans 4 channels: 4 slots, a quarter of the transfer
    hbm = tier_preset("hbm2e")
    est = gather_time(hbm, 160, 4096, outstanding=1)
    assert est.latency_ns == pytest.approx(160 * 4 * (28 + 1024 / 25.6 + 90) / 16)
    assert gather_time(hbm, 10, 64, clock_mhz=100.0, ports=1).issue_ns == pytest.approx(100.0)
    with pytest.raises(ValueError, match="row_bytes must be a positive integer"):
        gather_time(hbm, 10, 0)


@pytest.mark.parametrize("name", TIER_PRESETS)
@pytest.mark.parametrize("q", [1, 256])
def test_random_gather_simulation_approaches_the_closed_form(name, q):
    tier = tier_preset(name, outstanding=q)
    rng = np.random.default_rng(7)
    n, row = 40_000, 1024
    addrs = rng.integers(0, min(tier.capacity_bytes, 1 << 36) // row, n) * row
    r = TierModel(tier, GHZ).access(addrs, row)
    est = gather_time(tier, n, row, clock_mhz=GHZ)
    # the closed form bounds the simulation; bank conflicts and uneven channels cost a little
    assert 0.85 * est.gbps <= r.bandwidth_gbps <= 1.001 * est.gbps
    if q == 256:
        assert r.bandwidth_gbps >= 0.9 * tier.peak_gbps


# --- placement -----------------------------------------------------------------------------------

def test_tables_fill_tiers_in_placement_order():
    lookup = preset("vcu1525").lookup  # uram 16 MiB, then ddr 64 GiB
    p = place_tables([10 * MIB, 10 * MIB, 5 * MIB + 1, GIB], lookup)
    assert p.tiers == ("uram", "ddr", "uram", "ddr")
    assert p.offsets == (0, 0, 10 * MIB, 10 * MIB)  # ddr rows of 2 KiB: 10 MiB is aligned
    assert dict(p.used) == {"uram": 15 * MIB + 1, "ddr": 10 * MIB + GIB}
    assert p.tables_in("uram") == (0, 2)
    odd = place_tables([1000, 1000], lookup)
    assert odd.offsets == (0, 1024)  # next 64-byte uram row
    ddr_first = dataclasses.replace(lookup, placement=("ddr",))
    assert place_tables([MIB], ddr_first).tiers == ("ddr",)


def test_a_table_that_fits_no_tier_names_the_tiers_and_sizes():
    lookup = preset("vcu1525").lookup
    with pytest.raises(PlacementError, match=r"table 1 \(100.00 GiB, 107374182400 bytes\) fits "
                                             r"in no tier: free space uram 15.00 MiB of 16.00 "
                                             r"MiB, ddr 64.00 GiB of 64.00 GiB"):
        place_tables([MIB, 100 * GIB], lookup)
    with pytest.raises(ValueError, match="table 0: size must be a non-negative integer"):
        place_tables([-1], lookup)
    assert issubclass(PlacementError, ValueError)


def test_placement_default_is_every_tier_in_order():
    lookup = LookupConfig(tiers=(tier_preset("sram"), tier_preset("hbm2e"), tier_preset("cxl")))
    assert lookup.placement_order == ("sram", "hbm2e", "cxl")
    p = place_tables([20 * MIB, 20 * MIB, 20 * GIB], lookup)
    assert p.tiers == ("sram", "hbm2e", "cxl")
