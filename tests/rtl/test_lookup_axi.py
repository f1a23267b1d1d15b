# amaranth: UnusedElaboratable=no
"""Fast tier: the lookup engine's AXI4 bridge (:class:`rtl.lookup.axi.LookupAxiBridge`) in
Amaranth's simulator against a Python AXI4 slave that stalls every channel at random, answers
after random latencies, completes bursts of different IDs out of order and interleaves their R
beats.

The bench drives the ``lk_*`` channels as the lookup engine does (one read and one write in
flight per tag, a row written again only after its acknowledgement) with rows of every size at
every offset, some across 4 KiB pages, and checks each answer against memory, each
acknowledgement against the written bytes, the final memory (so ``WSTRB`` touched exactly the
rows' bytes) and the AXI rules the bridge must keep.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

import pytest
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from hwsim.config import MemoryTier
from hwsim.units.lookup_timing import TierParams
from rtl.axi import AXI_BURST_INCR, AXI_CACHE, axi4_master_members
from rtl.lookup.axi import LK_PREFIX, LookupAxiBridge, fixed_latency_tier

MEM_BYTES = 24 * 4096
WRITE_BASE = 8 * 4096  # reads below, writes above: a row is read only as the memory began


@dataclass
class Knobs:
    stall: float = 0.0  # probability per cycle and slave channel of a stall
    latency: tuple[int, int] = (1, 1)  # AR -> first R beat, last W -> B, cycles
    interleave: bool = False  # R beats of different IDs in any order, bursts out of order
    rsp_ready: float = 0.0  # probability the engine side does not take an answer
    gap: float = 0.0  # probability the engine side offers no request
    slverr: int = -1  # the AR burst number answered with SLVERR


def _rows(rng, count, row_bytes, lo, hi, *, disjoint=False):
    """``count`` rows (addr, nbytes) in [lo, hi), some ending at or crossing a 4 KiB page."""
    rows, addr = [], lo
    for i in range(count):
        n = rng.choice([row_bytes, rng.randint(1, row_bytes)])
        if disjoint:
            addr += rng.randint(0, 40)
            if i % 5 == 0:  # across the next page boundary
                addr = max(addr, -(-addr // 4096) * 4096 - rng.randint(1, n))
            rows.append((addr, n))
            addr += n
        else:
            a = rng.randrange(lo, hi - n)
            if i % 5 == 0:
                a = max(lo, (a // 4096 + 1) * 4096 - rng.randint(1, n))
            rows.append((a, n))
    assert rows[-1][0] + rows[-1][1] <= hi
    return rows


def run_bridge(knobs: Knobs, *, seed: int = 0, count: int = 60, slots: int = 8,
               row_bytes: int = 64, bus_bytes: int | None = None, max_cycles: int = 20_000):
    """Read and write ``count`` rows each through a bridge served by the slave model; returns
    (cycles, the bridge's error flag, per cycle the (read, write) acceptances)."""
    rng = random.Random(seed)
    dut = LookupAxiBridge(slots=slots, row_bytes=row_bytes, bus_bytes=bus_bytes)
    B = dut.bus_bytes
    init = bytearray(rng.randbytes(MEM_BYTES))
    mem, want = bytearray(init), bytearray(init)
    reads = deque((a, n, rng.randrange(8)) for a, n in
                  _rows(rng, count, row_bytes, 0, WRITE_BASE))
    writes = deque((a, n, rng.randrange(8), rng.randbytes(n)) for a, n in
                   _rows(rng, count, row_bytes, WRITE_BASE, MEM_BYTES, disjoint=True))
    for a, n, _, d in writes:
        want[a:a + n] = d
    ax = dut.axi
    ins = [n for n, mb in axi4_master_members(B, dut.id_width, LK_PREFIX, dut.user_width).items()
           if mb.flow == In]
    out = {"accepts": [], "interleaved": 0}

    async def bench(ctx):
        rd_free, wr_free = set(range(slots)), set(range(slots))
        rd_open, wr_open = {}, {}  # tag -> the row read or written
        rd_offer = wr_offer = None
        ar_q = deque()  # AR bursts: [due, id, addr, beats left, resp, tier]
        aw_q, w_q, b_q = deque(), deque(), deque()
        r_shown = b_shown = last_r = None
        prev = {}
        n_ar = 0
        for name in ins:
            ctx.set(getattr(dut, name), 0)
        cycle = 0
        while True:
            # ---- the engine side: a request held until accepted, one per tag in flight
            if rd_offer is None and reads and rd_free and rng.random() >= knobs.gap:
                a, n, tier = reads.popleft()
                rd_offer = (rng.choice(sorted(rd_free)), a, n, tier)
            if wr_offer is None and writes and wr_free and rng.random() >= knobs.gap:
                a, n, tier, d = writes.popleft()
                wr_offer = (rng.choice(sorted(wr_free)), a, n, tier, d)
            ctx.set(dut.lk_rd_req.valid, rd_offer is not None)
            if rd_offer:
                tag, a, n, tier = rd_offer
                ctx.set(dut.lk_rd_req.payload, {"addr": a, "nbytes": n, "tier": tier,
                                                "tag": tag})
            ctx.set(dut.lk_wr_req.valid, wr_offer is not None)
            if wr_offer:
                tag, a, n, tier, d = wr_offer
                ctx.set(dut.lk_wr_req.payload, {"addr": a, "nbytes": n, "tier": tier, "tag": tag,
                                                "data": int.from_bytes(d, "little")})
            for port in (dut.lk_rd_rsp, dut.lk_wr_rsp):
                ctx.set(port.ready, rng.random() >= knobs.rsp_ready)

            # ---- the slave: readiness, an R beat, a B response
            for ch in ("arready", "awready", "wready"):
                ctx.set(ax(ch), rng.random() >= knobs.stall)
            if r_shown is None and rng.random() >= knobs.stall:
                heads, seen = [], set()
                for burst in ar_q:  # the oldest burst of each ID (AXI: one ID's in order)
                    if burst[1] not in seen:
                        seen.add(burst[1])
                        if burst[0] <= cycle:
                            heads.append(burst)
                if heads:
                    r_shown = rng.choice(heads) if knobs.interleave else heads[0]
                    if not knobs.interleave and r_shown is not ar_q[0]:
                        r_shown = None
            if r_shown is not None:
                due, rid, addr, left, resp, _ = r_shown
                ctx.set(ax("rvalid"), 1)
                ctx.set(ax("rid"), rid)
                ctx.set(ax("rdata"), int.from_bytes(mem[addr:addr + B], "little"))
                ctx.set(ax("rlast"), left == 1)
                ctx.set(ax("rresp"), resp)
            else:
                ctx.set(ax("rvalid"), 0)
            if b_shown is None and b_q and rng.random() >= knobs.stall:
                ready = [b for b in b_q if b[0] <= cycle]
                ids = [b[1] for b in b_q]
                ready = [b for b in ready if ids.index(b[1]) == b_q.index(b)]
                if ready:
                    b_shown = rng.choice(ready) if knobs.interleave else ready[0]
                    for addr, data, strb in b_shown[2]:  # the data lands when B is offered
                        for i in range(B):
                            if strb >> i & 1:
                                mem[addr + i] = data >> (8 * i) & 0xFF
            ctx.set(ax("bvalid"), b_shown is not None)
            if b_shown is not None:
                ctx.set(ax("bid"), b_shown[1])
                ctx.set(ax("bresp"), 0)

            # ---- outputs (settled) and the protocol rules
            now = {s: ctx.get(ax(s)) for s in (
                "arvalid", "araddr", "arlen", "arid", "aruser", "arready", "awvalid", "awaddr",
                "awlen", "awid", "awuser", "awready", "wvalid", "wdata", "wstrb", "wlast",
                "wready", "rready", "bready")}
            for v, payload, rdy in (("arvalid", ("araddr", "arlen", "arid", "aruser"), "arready"),
                                    ("awvalid", ("awaddr", "awlen", "awid", "awuser"), "awready"),
                                    ("wvalid", ("wdata", "wstrb", "wlast"), "wready")):
                if prev.get(v) and not prev.get(rdy):
                    assert now[v], f"cycle {cycle}: {v} dropped before its handshake"
                    for p in payload:
                        assert now[p] == prev[p], f"cycle {cycle}: {p} changed while valid"
            for ch in ("ar", "aw"):
                assert ctx.get(ax(f"{ch}size")) == B.bit_length() - 1
                assert ctx.get(ax(f"{ch}burst")) == AXI_BURST_INCR
                assert ctx.get(ax(f"{ch}cache")) == AXI_CACHE
            rd_ready, wr_ready = ctx.get(dut.lk_rd_req.ready), ctx.get(dut.lk_wr_req.ready)
            rd_take, wr_take = bool(rd_offer and rd_ready), bool(wr_offer and wr_ready)
            assert not (rd_take and wr_take), f"cycle {cycle}: two requests on one cycle"
            out["accepts"].append((rd_take, wr_take))
            rsp = (ctx.get(dut.lk_rd_rsp.valid) and ctx.get(dut.lk_rd_rsp.ready),
                   ctx.get(dut.lk_rd_rsp.payload))
            ack = (ctx.get(dut.lk_wr_rsp.valid) and ctx.get(dut.lk_wr_rsp.ready),
                   ctx.get(dut.lk_wr_rsp.payload))
            busy = reads or writes or rd_offer or wr_offer or rd_open or wr_open
            idle = ctx.get(dut.idle)
            if not busy:
                assert idle, f"cycle {cycle}: not idle after everything completed"
                break
            assert not (idle and (rd_open or wr_open)), f"cycle {cycle}: idle with rows open"

            # ---- handshakes at the coming edge
            if rd_take:
                tag, a, n, tier = rd_offer
                rd_open[tag] = (a, n, tier, bytes(init[a:a + n]))
                rd_free.discard(tag)
                rd_offer = None
            if wr_take:
                tag, a, n, tier, d = wr_offer
                wr_open[tag] = (a, n, tier, d, [])
                wr_free.discard(tag)
                wr_offer = None
            if now["arvalid"] and now["arready"]:
                a, blen, rid = now["araddr"], now["arlen"], now["arid"]
                _check_burst(a, blen, B)
                row = rd_open[rid]
                assert now["aruser"] == row[2], "ARUSER is not the tier"
                assert row[0] // B * B <= a < row[0] + row[1], "AR outside its row"
                due = cycle + rng.randint(*knobs.latency)
                ar_q.append([due, rid, a, blen + 1, 2 if n_ar == knobs.slverr else 0, None])
                n_ar += 1
            if r_shown is not None and now["rready"]:
                if last_r is not None and last_r is not r_shown and last_r[3] > 0:
                    out["interleaved"] += 1  # a beat of another ID inside a burst
                r_shown[2] += B
                r_shown[3] -= 1
                if r_shown[3] == 0:
                    ar_q.remove(r_shown)
                last_r, r_shown = r_shown, None
            if now["awvalid"] and now["awready"]:
                a, blen, wid = now["awaddr"], now["awlen"], now["awid"]
                _check_burst(a, blen, B)
                assert now["awuser"] == wr_open[wid][2], "AWUSER is not the tier"
                aw_q.append((a, blen, wid))
            if now["wvalid"] and now["wready"]:
                w_q.append((now["wdata"], now["wstrb"], now["wlast"]))
            while aw_q and len(w_q) > aw_q[0][1]:
                a, blen, wid = aw_q.popleft()
                row_a, row_n = wr_open[wid][:2]
                commits = []
                for j in range(blen + 1):
                    data, strb, last = w_q.popleft()
                    assert last == (j == blen), f"cycle {cycle}: WLAST wrong on beat {j}"
                    for i in range(B):
                        inside = row_a <= a + j * B + i < row_a + row_n
                        assert (strb >> i & 1) == inside, f"WSTRB byte {i} of {a + j * B:#x}"
                    commits.append((a + j * B, data, strb))
                b_q.append((cycle + rng.randint(*knobs.latency), wid, commits))
            if b_shown is not None and now["bready"]:
                b_q.remove(b_shown)
                b_shown = None
            if rsp[0]:
                tag = rsp[1].tag
                assert tag in rd_open, f"cycle {cycle}: an answer for tag {tag}, not in flight"
                a, n, _, row = rd_open.pop(tag)
                got = rsp[1].data.to_bytes(row_bytes, "little")
                assert got[:n] == row, f"row {a:#x}+{n}: {got[:n].hex()} != {row.hex()}"
                assert not any(got[n:]), f"row {a:#x}+{n}: bytes above nbytes not zero"
                rd_free.add(tag)
            if ack[0]:
                tag = ack[1].tag
                assert tag in wr_open, f"cycle {cycle}: an ack for tag {tag}, not in flight"
                a, n, _, d, _ = wr_open.pop(tag)
                assert mem[a:a + n] == d, f"row {a:#x}+{n} acknowledged before it landed"
                wr_free.add(tag)
            prev = now
            await ctx.tick()
            cycle += 1
            assert cycle < max_cycles, "the bridge hung"
        out["cycles"] = cycle
        out["error"] = ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert mem == want, "memory differs: a write missed or touched bytes outside its row"
    return out


def _check_burst(addr: int, blen: int, bus: int) -> None:
    assert addr % bus == 0, f"burst at {addr:#x} not bus aligned"
    assert addr // 4096 == (addr + (blen + 1) * bus - 1) // 4096, \
        f"burst at {addr:#x} of {blen + 1} beats crosses a 4 KiB boundary"


@pytest.mark.parametrize("bus_bytes", [64, 16])
def test_rows_of_every_size_and_offset_round_trip(bus_bytes):
    out = run_bridge(Knobs(), bus_bytes=bus_bytes, seed=1)
    assert out["error"] == 0


@pytest.mark.parametrize("seed", [2, 3])
def test_out_of_order_interleaved_bursts_and_stalls_on_every_channel(seed):
    out = run_bridge(Knobs(stall=0.3, latency=(1, 12), interleave=True, rsp_ready=0.2,
                           gap=0.2), seed=seed, bus_bytes=16 if seed == 3 else None)
    assert out["error"] == 0 and out["interleaved"] > 5


def test_one_request_a_cycle_writes_first():
    accepts = run_bridge(Knobs(), seed=4, count=30)["accepts"]
    # with both requests waiting the write goes first and the read follows on the next cycle
    assert sum(w for _, w in accepts) == 30 and sum(r for r, _ in accepts) == 30
    assert any(w and nxt[0] for (_, w), nxt in zip(accepts, accepts[1:], strict=False))


def test_error_responses_set_the_sticky_flag():
    assert run_bridge(Knobs(slverr=3), seed=5, count=10)["error"] == 1


def test_latencies_match_the_hwsim_tier():
    tier = fixed_latency_tier(100.0, 64, 7, 3)
    assert isinstance(tier, MemoryTier)
    p = TierParams(tier, 100.0)
    assert (p.rd_lat, p.wr_lat, p.rd_bpc, p.wr_bpc, p.channels, p.miss, p.access) == \
        (7 + 2, 3 + 2, pytest.approx(64.0), pytest.approx(64.0), 1, 0.0, 64)
    assert LookupAxiBridge.request_latency + LookupAxiBridge.response_latency == 2
    with pytest.raises(ValueError, match="read_latency must be a positive integer of cycles"):
        fixed_latency_tier(100.0, 64, 0, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"slots": 0}, "slots must be a positive integer, not 0"),
    ({"row_bytes": 8192}, "row_bytes must be at most 4096"),
    ({"bus_bytes": 48}, "bus_bytes must be a power of two from 4 to 128"),
    ({"row_bytes": 4096, "bus_bytes": 4}, "more than an AXI4 burst's 256"),
])
def test_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LookupAxiBridge(**kwargs)


def test_ports_are_an_axi4_master_with_the_tag_as_id():
    dut = LookupAxiBridge(slots=32, row_bytes=64)
    assert len(dut.m_axi_lk_rdata) == 512 and len(dut.m_axi_lk_wstrb) == 64
    assert len(dut.m_axi_lk_arid) == len(dut.m_axi_lk_bid) == 5
    assert len(dut.m_axi_lk_aruser) == len(dut.m_axi_lk_awuser) == 3
    assert len(dut.m_axi_lk_araddr) == 32


@pytest.mark.parametrize("nbytes", [0, 65])
def test_a_row_of_a_bad_size_is_flagged_and_still_a_legal_burst(nbytes):
    dut = LookupAxiBridge(slots=4, row_bytes=64)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.lk_rd_req.payload, {"addr": 4096 - 8, "nbytes": nbytes, "tag": 1})
        ctx.set(dut.lk_rd_req.valid, 1)
        ctx.set(dut.m_axi_lk_arready, 1)
        await ctx.tick()
        ctx.set(dut.lk_rd_req.valid, 0)
        seen["ar"] = (ctx.get(dut.m_axi_lk_arvalid), ctx.get(dut.m_axi_lk_araddr),
                      ctx.get(dut.m_axi_lk_arlen))
        await ctx.tick()
        seen["error"] = ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["ar"] == (1, 4096 - 64, 0) and seen["error"] == 1
