"""DRAM timing models: the fixed model's closed forms, and the banked model's bandwidth and
row-buffer behaviour on hand-made and generated access patterns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwsim import isa
from hwsim.buffers import elem_bytes
from hwsim.config import preset
from hwsim.dram import (
    DMA_BURST_BYTES,
    DMA_IN_FLIGHT,
    MAX_OUTSTANDING,
    DramModel,
    dma_cycles,
    stream_cycles,
)
from hwsim.units import unit_cycles
from hwsim.units.dma import dram_request_cycles

MIB = 1 << 20


def _banked(**dram):
    """vcu1525 with some DRAM fields changed."""
    return preset("vcu1525").replace(**{f"dram__{k}": v for k, v in dram.items()})


# --- fixed model -------------------------------------------------------------------------------

FIXED = {
    "tiny": preset("tiny"),
    "small8": preset("small8"),
    # 1.6 GB/s at 150 MHz: 10.67 bytes per cycle, latency ceil(6) cycles
    "fractional": preset("tiny").replace(clock_mhz=150.0),
}


@pytest.mark.parametrize("name", list(FIXED))
@pytest.mark.parametrize("size", [1, 4, 10, 11, 16, 17, 40, 64])
def test_fixed_model_matches_closed_form(name, size):
    cfg = FIXED[name]
    r = DramModel(cfg).access(np.arange(7) * 100, size)
    slots = dram_request_cycles(size, cfg)
    lat = cfg.dram_latency_cycles
    assert r.start.tolist() == [i * slots for i in range(7)]
    assert r.finish.tolist() == [i * slots + slots - 1 + lat for i in range(7)]
    assert r.cycles == 7 * slots + lat
    assert (r.row_hits, r.row_misses) == (0, 0)


@pytest.mark.parametrize("rows,elems,buf", [(1, 4, isa.Buffer.ACT), (9, 3, isa.Buffer.WGT),
                                            (5, 4, isa.Buffer.ACC), (12, 2, isa.Buffer.ACC)])
def test_fixed_model_load_equals_timing_unit_cycles(rows, elems, buf):
    cfg = preset("tiny")
    cmd = isa.Load(buf=buf, sram_addr=0, dram_addr=64, rows=rows, elems=elems, stride=32)
    nbytes = elems * (4 if buf == isa.Buffer.ACC else cfg.array.elem_bytes)
    r = DramModel(cfg).access(64 + 32 * np.arange(rows), nbytes)
    # the DMA spends one start cycle before its first request
    assert r.cycles + 1 == unit_cycles(cmd, cfg)


def test_fixed_model_mixed_sizes_and_writes():
    cfg = preset("tiny")  # 16 bytes per cycle, latency 4
    r = DramModel(cfg).access([0, 0, 0], [16, 48, 1], [False, True, False])
    assert r.start.tolist() == [0, 1, 4]
    assert r.finish.tolist() == [4, 7, 8]
    assert (r.bytes_read, r.bytes_written, r.cycles) == (17, 48, 9)
    assert r.bandwidth_gbps == pytest.approx(65 * 100 / 9 / 1000)


def test_fixed_stream_cycles_closed_form():
    cfg = preset("tiny")
    # 1 MiB as 256 requests of 4 KiB, each 256 slots at 16 bytes per cycle
    assert stream_cycles(cfg, MIB) == 256 * 256 + cfg.dram_latency_cycles
    # 1000 bytes as three 256-byte requests (16 slots each) and one of 232 bytes
    assert stream_cycles(cfg, 1000, request_bytes=256) == 3 * 16 + math.ceil(232 / 16) + 4


# --- banked model ------------------------------------------------------------------------------

def test_address_map_rotates_channels_then_columns_then_banks():
    m = DramModel(preset("vcu1525"))  # 4 channels, 16 banks, 2 KiB rows, 256-byte chunks
    addrs = [0, 255, 256, 1024, 1024 + 8, 8 * 1024, 128 * 1024, 128 * 1024 + 768]
    ch, bank, row, col = m.map(addrs)
    assert ch.tolist() == [0, 0, 1, 0, 0, 0, 0, 3]
    assert bank.tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert row.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert col.tolist() == [0, 255, 0, 256, 264, 0, 0, 0]


def test_row_hits_and_misses_of_hand_made_pattern():
    m = DramModel(preset("vcu1525"))
    # 0: bank 0 row 0 opens (miss); 1024: same row (hit); 128 KiB: bank 0 row 1 (conflict);
    # 0: row 0 again (conflict); 64: hit; 256: channel 1 bank 0, closed (miss)
    r = m.access([0, 1024, 128 * 1024, 0, 64, 256], 64)
    assert (r.row_hits, r.row_misses) == (2, 4)
    # a request crossing a chunk boundary is two accesses: channel 0 (hit) and channel 1 (hit)
    r2 = m.access([0, 256, 128], [64, 64, 256])
    assert (r2.row_hits, r2.row_misses) == (2, 2)


def test_lone_row_hit_completes_after_latency_and_miss_costs_row_miss_time():
    cfg = preset("vcu1525")
    m = DramModel(cfg)
    lat, miss = cfg.dram_latency_cycles, m.miss_cycles
    assert (lat, miss) == (18, 6)
    r = m.access([0, 64], 64)
    # miss: activate 6 cycles, 64 bytes on a 96-byte/cycle bus; then a hit queued behind it
    assert r.finish.tolist() == [miss + lat, math.ceil(miss + 128 / 96) - 1 + lat]
    r = m.access([0, 128 * 1024], 64)
    # the conflict waits for the first access's data, then precharges and activates
    first_data_end = miss + 64 / 96
    assert r.finish.tolist() == [miss + lat, math.ceil(first_data_end + miss + 64 / 96) - 1 + lat]


def test_sequential_stream_reaches_near_peak_bandwidth():
    cfg = preset("vcu1525")
    m = DramModel(cfg)
    assert m.peak_gbps == pytest.approx(4 * 19.2)
    r = m.access(np.arange(256) * 4096, 4096)
    assert r.nbytes == MIB
    assert r.bandwidth_gbps >= 0.9 * m.peak_gbps
    # 1 MiB spans 512 rows of 2 KiB; each row is opened once and its other 7 chunks hit
    assert (r.row_misses, r.row_hits) == (512, 512 * 7)
    assert stream_cycles(cfg, MIB) == r.cycles


def test_random_small_reads_stay_well_under_half_of_peak():
    m = DramModel(preset("vcu1525"))
    rng = np.random.default_rng(1)
    addrs = rng.integers(0, 1 << 30, 16384) // 64 * 64
    r = m.access(addrs, 64)
    # every read opens a row: 64 B per 6-cycle activation per bank, 64 banks, 4 ports
    assert r.bandwidth_gbps < 0.45 * m.peak_gbps
    one = DramModel(preset("vcu1525").replace(dram__request_ports=1)).access(addrs, 64)
    assert one.bandwidth_gbps < 0.2 * m.peak_gbps  # one request per cycle: at most 1/6
    assert r.row_misses > 0.99 * len(addrs)
    # each random read pays the row miss on top of the latency
    assert np.median(r.finish - r.start) >= m.miss_cycles + m.latency_cycles


def test_row_misses_bound_bandwidth_when_banks_are_few():
    # one channel, one bank: issue rate is no longer the limit, the row buffer is
    cfg = _banked(channels=1, banks=1)
    m = DramModel(cfg)
    rng = np.random.default_rng(2)
    seq = m.access(np.arange(4096) * 256, 256)
    rnd = m.access(rng.integers(0, 1 << 30, 4096) // 256 * 256, 256)
    # sequential: every 2 KiB row costs one activate (6 cycles) plus 2048 / 96 cycles of data
    assert seq.bandwidth_gbps == pytest.approx(m.peak_gbps * (2048 / 96) / (6 + 2048 / 96),
                                               rel=0.01)
    # random: every 256-byte access pays its own activate
    assert rnd.bandwidth_gbps == pytest.approx(m.peak_gbps * (256 / 96) / (6 + 256 / 96), rel=0.02)
    # with 16 banks the activates of a sequential stream overlap with data transfers
    assert DramModel(_banked(channels=1)).access(np.arange(4096) * 256, 256).bandwidth_gbps \
        >= 0.95 * m.peak_gbps


def test_strided_stream_that_stays_in_one_channel_gets_one_channel_of_bandwidth():
    m = DramModel(preset("vcu1525"))
    # stride 2 KiB = 8 chunks: every request maps to channel 0
    r = m.access(np.arange(4096) * 2048, 256)
    assert r.bandwidth_gbps <= 0.26 * m.peak_gbps


@pytest.mark.parametrize("ports", [1, 4])
def test_outstanding_requests_are_bounded(ports):
    cfg = preset("vcu1525").replace(dram__request_ports=ports)
    m = DramModel(cfg)
    assert m.max_outstanding == ports * MAX_OUTSTANDING
    r = m.access(np.arange(4096) * 4096, 4096)
    i = np.arange(m.max_outstanding, 4096)
    assert np.all(r.start[i] > r.finish[i - m.max_outstanding])
    # in order, at most `ports` requests per cycle
    assert np.all(np.diff(r.start) >= 0)
    assert np.bincount(r.start).max() <= ports


def test_request_ports_issue_small_strided_requests_in_parallel():
    """64-byte rows 512 B apart (two of the four channels): one port issues a request per
    cycle (64 B/cycle); four ports issue 4 per cycle, so the two channels' buses
    (2 x 96 B/cycle at 200 MHz) bound the stream instead: exactly 3x faster, to rounding."""
    one = DramModel(preset("vcu1525").replace(dram__request_ports=1))
    four = DramModel(preset("vcu1525"))
    assert preset("vcu1525").dram.request_ports == 4
    addrs = np.arange(6000) * 512
    r1, r4 = one.access(addrs, 64), four.access(addrs, 64)
    assert r1.start[-1] == 5999  # one issue per cycle
    bus_bound = 6000 * 64 / (2 * four.channel_bytes_per_cycle)
    assert r4.start[-1] < bus_bound  # issue keeps ahead of the buses
    # plus the first row activation (6 cycles)
    assert r4.cycles - four.latency_cycles == pytest.approx(bus_bound + four.miss_cycles, abs=2)
    assert r1.cycles / r4.cycles == pytest.approx(3.0, rel=0.02)
    # a contiguous stream of big bursts is bus-bound either way
    seq = np.arange(1024) * 4096
    assert one.access(seq, 4096).cycles == four.access(seq, 4096).cycles


def test_banked_model_is_deterministic():
    m = DramModel(preset("vcu1525"))
    rng = np.random.default_rng(3)
    addrs = rng.integers(0, 1 << 28, 5000)
    sizes = rng.integers(1, 5000, 5000)
    writes = rng.random(5000) < 0.3
    a, b = m.access(addrs, sizes, writes), DramModel(preset("vcu1525")).access(addrs, sizes, writes)
    assert np.array_equal(a.start, b.start) and np.array_equal(a.finish, b.finish)
    assert (a.row_hits, a.row_misses, a.cycles) == (b.row_hits, b.row_misses, b.cycles)
    assert a.bytes_written == int(sizes[writes].sum())
    assert np.all(a.finish >= a.start + m.latency_cycles)


def test_empty_request_list():
    r = DramModel(preset("vcu1525")).access([], [])
    assert (r.cycles, r.nbytes, r.bandwidth_gbps) == (0, 0, 0.0)


@pytest.mark.parametrize("args,match", [
    (([0, 1], [4, 0]), "request sizes must be positive, got 0"),
    (([-8], [4]), "addresses must be non-negative, got -8"),
    (([[0]], [4]), r"addrs must be one-dimensional, not of shape \(1, 1\)"),
    (([0, 1], [4, 4, 4]), r"sizes has shape \(3,\), addrs \(2,\): they must match"),
    (([0, 1], [4, 4], [True]), r"writes has shape \(1,\), addrs \(2,\): they must match"),
])
def test_bad_requests_are_rejected(args, match):
    with pytest.raises(ValueError, match=match):
        DramModel(preset("vcu1525")).access(*args)


def test_stream_cycles_rejects_bad_sizes():
    with pytest.raises(ValueError, match="nbytes must be a positive integer, not 0"):
        stream_cycles(preset("tiny"), 0)
    with pytest.raises(ValueError, match="stride must be a positive integer, not -1"):
        stream_cycles(preset("tiny"), 64, -1)


# --- DMA commands (dma_cycles, what hwsim.run uses) -------------------------------------------

def _requests(addr, rows, nbytes, stride, merge=True, beat=1):
    """The DMA's request stream, written out: contiguous rows merged, AXI 4 KiB bursts
    (``dram.dma == "burst"``), or one request per row (``"entry"``, ``merge=False``), or per
    ``beat`` contiguous rows (``"wide"``)."""
    ranges = [(addr, rows * nbytes)] if merge and (stride == nbytes or rows == 1) else \
        [(addr + r * stride, min(beat, rows - r) * nbytes) for r in range(0, rows, beat)]
    out = []
    for a, n in ranges:
        end = a + n
        while a < end:
            b = min(end, (a // DMA_BURST_BYTES + 1) * DMA_BURST_BYTES)
            out.append((a, b - a))
            a = b
    return np.array(out, np.int64).reshape(-1, 2)


def _random_dma(rng, n, cfg):
    """Random LOAD/STORE commands (as isa objects) that fit ``cfg``'s buffers."""
    cmds = []
    for _ in range(n):
        cls = isa.Store if rng.random() < 0.4 else isa.Load
        buf = int(rng.choice([isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.ACC]))
        width = cfg.array.rows if buf == isa.Buffer.ACT else cfg.array.cols
        elems = int(rng.integers(0, width + 1))
        nbytes = elems * elem_bytes(buf, cfg)
        stride = int(rng.choice([nbytes, nbytes + int(rng.integers(1, 9000)), 4096, 0]))
        cmds.append(cls(buf, 0, int(rng.integers(0, 1 << 22)), int(rng.integers(0, 300)), elems,
                        stride))
    return cmds


def _dma_fields(cmds, cfg):
    return (np.array([isinstance(c, isa.Store) for c in cmds]),
            np.array([c.dram_addr for c in cmds]), np.array([c.rows for c in cmds]),
            np.array([c.elems * elem_bytes(c.buf, cfg) for c in cmds]),
            np.array([c.stride for c in cmds]))


@pytest.mark.parametrize("cfg", [preset("tiny"), preset("small8"),
                                 preset("vcu1525").replace(dram__model="fixed")],
                         ids=["tiny", "small8", "vcu1525-fixed-4ch"])
def test_dma_cycles_of_fixed_model_are_unit_cycles(cfg):
    from hwsim.units.dma import load_beats

    cmds = _random_dma(np.random.default_rng(7), 400, cfg)
    beat = [int(load_beats(isinstance(c, isa.Load), c.buf, c.sram_addr, c.elems, c.stride, cfg))
            for c in cmds]
    assert (max(beat) > 1) == (cfg.dram.dma == "wide")  # vcu1525's wide loads among them
    t = dma_cycles(*_dma_fields(cmds, cfg), cfg, beat=beat)
    assert t.cycles.tolist() == [unit_cycles(c, cfg) for c in cmds]
    assert not t.row_hits.any() and not t.row_misses.any()


@pytest.mark.parametrize("rows,nbytes,stride,addr", [
    (1, 64, 0, 0), (300, 64, 64, 4032), (5000, 64, 64, 0), (40, 64, 4096, 64),
    (40, 128, 4352, 100), (3, 6000, 6000, 8), (3, 6000, 7000, 8), (700, 64, 512, 1 << 20),
])
@pytest.mark.parametrize("store", [False, True])
@pytest.mark.parametrize("dma", ["entry", "wide", "burst"])
def test_dma_command_on_idle_dram_is_the_banked_model_of_its_request_stream(rows, nbytes,
                                                                            stride, addr, store,
                                                                            dma):
    cfg = preset("vcu1525").replace(dram__dma=dma)
    beat = 1
    if dma == "burst":
        req = _requests(addr, rows, nbytes, stride)
        m = DramModel(cfg)
    else:
        # the RTL's DMA: a request per entry (wide: per bus word of contiguous entries), one a
        # cycle (one request port), the splitter's window in flight, each channel at its AXI4
        # port's 64 bytes a cycle (DDR4: 96)
        if nbytes > cfg.dram.bus_bytes:
            pytest.skip("an entry is at most the bus")
        if dma == "wide" and not store and stride == nbytes:
            beat = cfg.dram.bus_bytes // nbytes
        req = _requests(addr, rows, nbytes, stride, merge=False, beat=beat)
        port = cfg.dram.bus_bytes / cfg.dram.channels
        m = DramModel(cfg.replace(dram__request_ports=1,
                                  dram__bandwidth_gbps=port * cfg.clock_mhz / 1000))
        assert port < DramModel(cfg).channel_bytes_per_cycle
        m.max_outstanding = DMA_IN_FLIGHT
    r = m.access(req[:, 0], req[:, 1], np.full(len(req), store))
    t = dma_cycles(store, addr, rows, nbytes, stride, cfg, beat=beat)
    lat = cfg.dram_latency_cycles
    # a LOAD: start cycle, requests, last data back; a STORE: start, requests, done
    assert t.cycles[0] == (2 + r.cycles - lat if store else 1 + r.cycles)
    assert (t.row_hits[0], t.row_misses[0]) == (r.row_hits, r.row_misses)
    assert t.ideal[0] == math.ceil(rows * nbytes / cfg.dram_bytes_per_cycle)
    assert t.transfer[0] >= t.ideal[0]


def test_rtl_dma_moves_an_entry_a_cycle_whatever_the_dram_peak():
    cfg = preset("vcu1525").replace(dram__dma="entry")
    lat = cfg.dram_latency_cycles
    # 65536 contiguous 64-byte ACT rows: a request a cycle, rotating over the four channels
    seq = dma_cycles(False, 0, 65536, 64, 64, cfg)
    assert seq.cycles[0] == 1 + 65536 + lat
    assert dma_cycles(True, 0, 65536, 64, 64, cfg).cycles[0] == 2 + 65536
    # 256-byte VEC rows: four beats each on one channel's 64-byte port, channels in turn, so
    # every port is busy all the time and the first row misses (6 cycles) are never made up
    vec = dma_cycles(False, 0, 4096, 256, 256, cfg).cycles[0]
    assert vec == 1 + 4096 + 3 + lat + DramModel(cfg).miss_cycles
    # 64-byte rows 4 KiB apart: still one a cycle (row misses hide behind the window)
    strided = dma_cycles(False, 0, 4096, 64, 4096, cfg)
    assert strided.cycles[0] >= 1 + 4096 + lat
    assert strided.row_misses[0] > 0
    # a burst DMA (model only) would take the same bytes near the DRAM's peak
    burst = dma_cycles(False, 0, 65536, 64, 64, cfg.replace(dram__dma="burst"))
    assert burst.cycles[0] < seq.cycles[0] / 5


def test_sequential_dma_load_reaches_near_peak_and_strided_small_rows_do_not():
    cfg = preset("vcu1525").replace(dram__dma="burst")
    m = DramModel(cfg)
    lat = cfg.dram_latency_cycles
    # 4 MiB as 65536 contiguous 64-byte ACT rows: merged into 4 KiB bursts
    seq = dma_cycles(False, 0, 65536, 64, 64, cfg)
    assert seq.cycles[0] == 1 + stream_cycles(cfg, 4 * MIB)
    seq_gbps = 4 * MIB * cfg.clock_mhz / 1000 / (seq.cycles[0] - 1 - lat)
    assert seq_gbps >= 0.9 * m.peak_gbps
    # the same bytes as 64-byte rows 4 KiB apart: one request per row, all in one channel
    strided = dma_cycles(False, 0, 65536, 64, 4096, cfg)
    ref = m.access(np.arange(65536) * 4096, 64)
    assert strided.cycles[0] == 1 + ref.cycles
    assert ref.bandwidth_gbps < 0.26 * m.peak_gbps
    assert strided.cycles[0] > 3.5 * seq.cycles[0]  # one channel of four
    assert strided.row_misses[0] == ref.row_misses > 0


def test_row_buffers_carry_over_from_command_to_command_in_order():
    cfg = preset("vcu1525").replace(dram__dma="burst")
    m = DramModel(cfg)
    # one 2 KiB row each: 8 chunks, two per channel in bank 0's row 0 of every channel
    a, b = 0, 512 * 1024  # b: the same channels and banks as a, row 4
    t = dma_cycles([0, 0, 0, 0], [a, a, b, a], 1, 2048, 2048, cfg)
    # A opens its rows, A again hits them all, B closes them, A opens them again
    assert t.row_misses.tolist() == [4, 0, 4, 4]
    assert t.row_hits.tolist() == [4, 8, 4, 4]
    # an open row saves the activate before the first data of each channel
    assert t.cycles[0] - t.cycles[1] == m.miss_cycles
    assert t.cycles[0] == t.cycles[2] == t.cycles[3]
    # a STORE opens rows too: program order decides, LOADs and STOREs alike
    t = dma_cycles([0, 1, 0], [a, b, a], 1, 2048, 2048, cfg)
    assert t.row_misses.tolist() == [4, 4, 4]
    t = dma_cycles([0, 1, 0], [a, a + 1024, a], 1, 1024, 1024, cfg)
    assert t.row_misses.tolist() == [4, 0, 0]


def test_degenerate_banked_dram_equals_the_fixed_closed_forms():
    # one channel, one bank, free row misses: only the request issue and the bus remain
    fixed = preset("tiny")
    banked = fixed.replace(dram__model="banked", dram__banks=1, dram__row_miss_ns=0.0)
    cmds = [cls(isa.Buffer.ACT, 0, int(a), rows, elems, stride)
            for cls in (isa.Load, isa.Store) for a in (0, 100, 4090)
            for rows, elems, stride in ((1, 4, 4), (7, 4, 64), (50, 3, 16), (12, 4, 4096))]
    t = dma_cycles(*_dma_fields(cmds, banked), banked)
    assert t.cycles.tolist() == [unit_cycles(c, fixed) for c in cmds]


def test_dma_cycles_of_empty_commands():
    cfg = preset("vcu1525")
    t = dma_cycles([0, 1, 0], 0, [0, 0, 5], [64, 64, 0], 64, cfg)
    # no rows: start and done cycle; empty rows: one issue slot each, nothing reaches DRAM
    assert t.cycles.tolist() == [2, 2, 1 + 5 + cfg.dram_latency_cycles]
    assert t.row_hits.sum() + t.row_misses.sum() == 0
    assert dma_cycles([], [], [], [], [], cfg).cycles.shape == (0,)


def test_dma_cycles_rejects_negative_fields():
    with pytest.raises(ValueError, match="stride must be non-negative, got -4"):
        dma_cycles(0, 0, 1, 4, -4, preset("vcu1525"))


@pytest.mark.parametrize("dma,beat", [("entry", 1), ("wide", 1), ("wide", 2), ("wide", 4),
                                      ("burst", 1)])
@pytest.mark.parametrize("entry", [64, 128, 256])
def test_dma_bytes_per_cycle_is_a_long_contiguous_streams_rate(dma, beat, entry):
    """The closed-form rate the planners use equals what dma_cycles times for a long stream."""
    from hwsim.dram import dma_bytes_per_cycle

    if beat * entry > 256:
        pytest.skip("a request is at most the 256-byte bus")
    cfg = preset("vcu1525").replace(dram__dma=dma)
    rows = 1 << 16
    t = dma_cycles(False, 0, rows, entry, entry, cfg, beat=beat)
    measured = rows * entry / int(t.transfer[0])
    assert measured == pytest.approx(dma_bytes_per_cycle(cfg, entry, beat), rel=0.02)
    assert dma_bytes_per_cycle(preset("tiny"), 4) == preset("tiny").dram_bytes_per_cycle


def test_wide_loads_ask_for_a_bus_word_of_whole_contiguous_aligned_entries():
    """``load_beats``: k = bus / entry (a power of two) for LOADs of whole ACT, WGT or IDX
    entries, contiguous, at a buffer address that is a multiple of k; 1 otherwise."""
    from hwsim import isa
    from hwsim.units.dma import load_beats, wide_entries

    v = preset("vcu1525").replace(dram__dma="wide")  # 32 fp16 operands: 64 B; 32 indices
    assert [wide_entries(b, v) for b in isa.Buffer] == [4, 4, 1, 8, 1]  # ACT WGT ACC IDX VEC
    assert wide_entries(isa.Buffer.ACT, v.replace(dram__dma="entry")) == 1
    t = preset("tiny").replace(dram__dma="wide", array__dtype="fp16")  # 8 B operands, 16 B bus
    assert wide_entries(isa.Buffer.ACT, t) == 2 and wide_entries(isa.Buffer.IDX, t) == 4
    A = isa.Buffer.ACT
    cases = [  # (load, buf, sram_addr, elems, stride) -> beat
        ((True, A, 8, 32, 64), 4), ((True, A, 6, 32, 64), 1), ((True, A, 8, 31, 62), 1),
        ((True, A, 8, 32, 128), 1), ((False, A, 8, 32, 64), 1),
        ((True, isa.Buffer.IDX, 16, 32, 32), 8), ((True, isa.Buffer.VEC, 0, 64, 256), 1)]
    got = load_beats(*np.array([c for c, _ in cases]).T, v)
    assert list(got) == [b for _, b in cases]


@pytest.mark.parametrize("rows", [1, 3, 4, 5, 9, 64])
def test_wide_load_in_the_fixed_model_is_its_requests_of_k_entries(rows):
    """The fixed closed forms (the RTL testbench's memory): a wide LOAD is ``ceil(rows / k)``
    requests of ``k`` entries' bytes (the last one the rest)."""
    tiny = preset("tiny")  # 16 B a cycle, entries of 4 B: a wide request is one cycle
    wide = dma_cycles(False, 0, rows, 4, 4, tiny, beat=4)
    assert int(wide.transfer[0]) == -(-rows // 4)
    assert int(wide.cycles[0]) == 1 + -(-rows // 4) + tiny.dram_latency_cycles
    slow = tiny.replace(dram__bandwidth_gbps=0.8)  # 8 B a cycle: 2 cycles a full request
    t = dma_cycles(False, 0, rows, 4, 4, slow, beat=4)
    assert int(t.transfer[0]) == 2 * (rows // 4) + -(-(rows % 4) * 4 // 8)


def test_wide_dma_moves_a_bus_word_a_cycle_on_vcu1525():
    """Four 64-byte entries a request, one request a cycle, rotating over the four channels:
    256 bytes a cycle, four times the entry DMA's rate."""
    cfg = preset("vcu1525").replace(dram__dma="wide")
    lat = cfg.dram_latency_cycles
    t = dma_cycles(False, 0, 65536, 64, 64, cfg, beat=4)
    assert 16384 <= int(t.transfer[0]) <= 16384 + 3 + DramModel(cfg).miss_cycles
    assert int(t.cycles[0]) == 1 + int(t.transfer[0]) + lat


def test_wide_requests_need_contiguous_entries():
    with pytest.raises(ValueError, match="contiguous"):
        dma_cycles(False, 0, 8, 64, 128, preset("vcu1525"), beat=4)
