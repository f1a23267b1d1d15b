# amaranth: UnusedElaboratable=no
"""Fast tier: the AXI4 bridge in Amaranth's simulator against a Python AXI4 slave model.

The bench drives the simple memory port as the DMA engines do (a read stream and a write stream,
each request held until accepted) and checks the responses against a shadow memory with the
simple port's semantics: a read sees every write accepted before it. The slave model checks
the AXI rules the bridge must keep (stable payloads while valid, aligned full-width INCR
bursts of one or two beats, no 4 KiB crossing, WLAST) and commits a write only when it offers
the B response, the latest a memory may, so a read issued before that would see stale data.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import pytest
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from hwsim.config import preset
from rtl.axi import AXI_BURST_INCR, AXI_CACHE, AxiBridge, axi4_master_members
from rtl.cosim import run_bench
from rtl.verilog import write_verilog

MEM_BYTES = 16 * 4096


@dataclass
class Knobs:
    """Probabilities of a stall per cycle and channel, and the slave's latencies."""

    arready: float = 0.0
    awready: float = 0.0
    wready: float = 0.0
    rvalid: float = 0.0
    bvalid: float = 0.0
    rsp_ready: float = 0.0  # the DMA side not taking a response
    rd_gap: float = 0.0  # the DMA side not offering a request
    wr_gap: float = 0.0
    rd_latency: tuple[int, int] = (1, 1)  # AR handshake -> first R beat offered, cycles
    wr_latency: tuple[int, int] = (1, 1)  # last W beat -> B offered (and data committed)
    rresp: dict = field(default_factory=dict)  # AR number -> RRESP of its beats
    bresp: dict = field(default_factory=dict)  # AW number -> BRESP


@dataclass
class Result:
    cycles: int
    ar: list  # (addr, len) per AR burst
    aw: list
    max_reads_in_flight: int  # AR bursts issued whose last beat was not yet taken
    max_writes_in_flight: int  # AW bursts whose B was not yet taken
    error: int
    rd_stalls: int  # cycles a read request was offered and not accepted
    rd_accept: list = field(default_factory=list)  # cycle each read was accepted


def _overlap(a0, n0, a1, n1):
    return a0 < a1 + n1 and a1 < a0 + n0


def run_bridge(bus: int, reads: list, writes: list, knobs: Knobs | None = None, *,
               seed: int = 0, max_reads: int = 16, max_writes: int = 8,
               max_cycles: int = 20_000) -> Result:
    """Drive ``reads`` [(addr, nbytes)] and ``writes`` [(addr, nbytes, wdata)] through an
    ``AxiBridge(bus)`` served by the slave model; assert every response and the final memory.
    """
    k = knobs or Knobs()
    rng = random.Random(seed)
    dut = AxiBridge(bus, max_reads=max_reads, max_writes=max_writes)
    init = rng.randbytes(MEM_BYTES)
    mem, shadow = bytearray(init), bytearray(init)
    ax = dut.axi
    ins = [n for n, mb in axi4_master_members(bus).items() if mb.flow == In]
    res = Result(0, [], [], 0, 0, 0, 0)

    async def bench(ctx):
        rd_q, wr_q = deque(reads), deque(writes)
        rd_offer = wr_offer = None  # the request offered (held until accepted)
        expect = deque()  # read responses due, in order: (addr, nbytes, bytes)
        r_beats = deque()  # (due cycle, data, last, resp, burst no.)
        aw_q, w_q, b_q = deque(), deque(), deque()  # bursts, beats, (due, commits, resp)
        r_shown = b_shown = False
        reads_in_flight = writes_in_flight = 0
        b_due = 0  # B responses the accepted writes will get
        prev = {}
        n_ar = n_aw = 0
        for name in ins:
            ctx.set(getattr(dut, name), 0)
        cycle = 0
        while True:
            # ---- this cycle's inputs
            if rd_offer is None and rd_q and rng.random() >= k.rd_gap:
                a, n = rd_q[0]
                if wr_offer is None or not _overlap(a, n, wr_offer[0], wr_offer[1]):
                    rd_offer = rd_q.popleft()
            if wr_offer is None and wr_q and rng.random() >= k.wr_gap:
                a, n, _ = wr_q[0]
                busy = [(e[0], e[1]) for e in expect] + ([rd_offer] if rd_offer else [])
                if not any(_overlap(a, n, b0, b1) for b0, b1 in busy):
                    wr_offer = wr_q.popleft()
            ctx.set(dut.mem_rd_req.valid, rd_offer is not None)
            if rd_offer:
                ctx.set(dut.mem_rd_req.payload, {"addr": rd_offer[0], "nbytes": rd_offer[1]})
            ctx.set(dut.mem_wr_req.valid, wr_offer is not None)
            if wr_offer:
                ctx.set(dut.mem_wr_req.payload, {"addr": wr_offer[0], "nbytes": wr_offer[1],
                                                 "wdata": wr_offer[2]})
            ctx.set(dut.mem_rd_rsp.ready, rng.random() >= k.rsp_ready)
            for ch in ("arready", "awready", "wready"):
                ctx.set(ax(ch), rng.random() >= getattr(k, ch))
            if r_beats and r_beats[0][0] <= cycle and (r_shown or rng.random() >= k.rvalid):
                r_shown = True
                _, data, last, resp, _ = r_beats[0]
                ctx.set(ax("rvalid"), 1)
                ctx.set(ax("rdata"), data)
                ctx.set(ax("rlast"), last)
                ctx.set(ax("rresp"), resp)
            else:
                ctx.set(ax("rvalid"), 0)
            if b_q and b_q[0][0] <= cycle and (b_shown or rng.random() >= k.bvalid):
                if not b_shown:  # the data lands when the B response is offered
                    for addr, data, strb in b_q[0][1]:
                        for i in range(bus):
                            if strb >> i & 1:
                                mem[addr + i] = data >> (8 * i) & 0xFF
                b_shown = True
                ctx.set(ax("bvalid"), 1)
                ctx.set(ax("bresp"), b_q[0][2])
            else:
                ctx.set(ax("bvalid"), 0)

            # ---- outputs (settled) and the protocol rules
            now = {s: ctx.get(ax(s)) for s in ("arvalid", "araddr", "arlen", "awvalid",
                                               "awaddr", "awlen", "wvalid", "wdata", "wstrb",
                                               "wlast", "rready", "bready")}
            now["rsp_valid"] = ctx.get(dut.mem_rd_rsp.valid)
            now["rsp"] = ctx.get(dut.mem_rd_rsp.payload)
            for v, payload, rdy in (("arvalid", ("araddr", "arlen"), "arready"),
                                    ("awvalid", ("awaddr", "awlen"), "awready"),
                                    ("wvalid", ("wdata", "wstrb", "wlast"), "wready"),
                                    ("rsp_valid", ("rsp",), "rsp_ready")):
                if prev.get(v) and not prev.get(rdy):
                    assert now[v], f"cycle {cycle}: {v} dropped before its handshake"
                    for p in payload:
                        assert now[p] == prev[p], f"cycle {cycle}: {p} changed while valid"
            for ch in ("ar", "aw"):
                assert ctx.get(ax(f"{ch}size")) == bus.bit_length() - 1
                assert ctx.get(ax(f"{ch}burst")) == AXI_BURST_INCR
                assert ctx.get(ax(f"{ch}cache")) == AXI_CACHE
                assert ctx.get(ax(f"{ch}id")) == 0
            assert now["bready"] == 1
            rd_ready = ctx.get(dut.mem_rd_req.ready)
            wr_ready = ctx.get(dut.mem_wr_req.ready)
            if rd_offer and not rd_ready:
                res.rd_stalls += 1
            now.update({c: ctx.get(ax(c)) for c in ("arready", "awready", "wready")})
            now["rsp_ready"] = ctx.get(dut.mem_rd_rsp.ready)
            outstanding = bool(rd_q or wr_q or expect or aw_q or w_q or b_q or rd_offer or wr_offer
                               or r_beats or writes_in_flight or b_due)
            idle = ctx.get(dut.idle)
            assert not (idle and (expect or b_due)), f"cycle {cycle}: idle with work in flight"
            if not outstanding:
                assert idle, f"cycle {cycle}: not idle after everything completed"
                break

            # ---- handshakes completed at the coming edge
            if rd_offer and rd_ready:  # reads before writes of the same cycle
                a, n = rd_offer
                expect.append((a, n, bytes(shadow[a:a + n])))
                res.rd_accept.append(cycle)
                rd_offer = None
            if wr_offer and wr_ready:
                a, n, d = wr_offer
                shadow[a:a + n] = d.to_bytes(bus, "little")[:n]
                split = a % bus + n > bus and (a // bus + 1) % (4096 // bus) == 0
                b_due += 1 + split
                wr_offer = None
            if now["arvalid"] and now["arready"]:
                addr, blen = now["araddr"], now["arlen"]
                _check_burst(addr, blen, bus)
                res.ar.append((addr, blen))
                due = cycle + rng.randint(*k.rd_latency)
                for j in range(blen + 1):
                    data = int.from_bytes(mem[addr + j * bus:addr + (j + 1) * bus], "little")
                    r_beats.append((due + j, data, int(j == blen), k.rresp.get(n_ar, 0), n_ar))
                n_ar += 1
                reads_in_flight += 1
                res.max_reads_in_flight = max(res.max_reads_in_flight, reads_in_flight)
            if r_shown and now["rready"]:
                if r_beats.popleft()[2]:
                    reads_in_flight -= 1
                r_shown = False
            if now["awvalid"] and now["awready"]:
                _check_burst(now["awaddr"], now["awlen"], bus)
                res.aw.append((now["awaddr"], now["awlen"]))
                aw_q.append((now["awaddr"], now["awlen"], k.bresp.get(n_aw, 0)))
                n_aw += 1
                writes_in_flight += 1
                res.max_writes_in_flight = max(res.max_writes_in_flight, writes_in_flight)
            if now["wvalid"] and now["wready"]:
                w_q.append((now["wdata"], now["wstrb"], now["wlast"]))
            while aw_q and len(w_q) > aw_q[0][1]:
                addr, blen, resp = aw_q.popleft()
                commits = []
                for j in range(blen + 1):
                    data, strb, last = w_q.popleft()
                    assert last == (j == blen), f"cycle {cycle}: WLAST wrong on beat {j}"
                    commits.append((addr + j * bus, data, strb))
                b_q.append((cycle + rng.randint(*k.wr_latency), commits, resp))
            if b_shown and now["bready"]:
                b_q.popleft()
                b_shown = False
                writes_in_flight -= 1
                b_due -= 1
            if now["rsp_valid"] and now["rsp_ready"]:
                assert expect, f"cycle {cycle}: a response nobody asked for"
                a, n, want = expect.popleft()
                got = now["rsp"].to_bytes(bus, "little")
                assert got[:n] == want, f"read {a:#x}+{n}: {got[:n].hex()} != {want.hex()}"
                assert not any(got[n:]), f"read {a:#x}+{n}: bytes above nbytes not zero"
            prev = now
            await ctx.tick()
            cycle += 1
            assert cycle < max_cycles, "the bridge hung"
        res.cycles = cycle
        res.error = ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert mem == shadow, "memory differs from the simple port's semantics"
    return res


def _check_burst(addr: int, blen: int, bus: int) -> None:
    assert addr % bus == 0, f"burst at {addr:#x} not bus aligned"
    assert blen in (0, 1), f"burst of {blen + 1} beats"
    assert addr // 4096 == (addr + (blen + 1) * bus - 1) // 4096, \
        f"burst at {addr:#x} of {blen + 1} beats crosses a 4 KiB boundary"


def _random_requests(rng: random.Random, bus: int, count: int, lo: int = 0,
                     hi: int = MEM_BYTES):
    reads, writes = [], []
    for _ in range(count):
        n = rng.choice([bus, rng.randint(1, bus)])
        reads.append((rng.randrange(lo, hi - n), n))
        n = rng.choice([bus, rng.randint(1, bus)])
        writes.append((rng.randrange(lo, hi - n), n, rng.getrandbits(8 * bus)))
    return reads, writes


@pytest.mark.parametrize("bus", [4, 16, 32])
def test_every_offset_and_size_reads_and_writes(bus):
    """Each (byte offset, size) pair once, read and written back to back: straddling requests
    are one two-beat burst from the aligned address, the rest one beat."""
    pairs = [(off, n) for off in range(bus) for n in range(1, bus + 1)]
    if bus == 32:
        pairs = pairs[::3]
    reads = [(64 + 2 * bus * i + off, n) for i, (off, n) in enumerate(pairs)]
    writes = [(32768 + 2 * bus * i + off, n, (i * 0x9E3779B97F4A7C15) % 2**(8 * bus))
              for i, (off, n) in enumerate(pairs)]
    res = run_bridge(bus, reads, writes)
    straddle = [off + n > bus for off, n in pairs]
    assert [blen for _, blen in res.ar] == [int(s) for s in straddle]
    assert [blen for _, blen in res.aw] == [int(s) for s in straddle]
    assert [a for a, _ in res.ar] == [a - a % bus for a, _ in reads]
    assert res.error == 0
    # back to back: one request per cycle, apart from a straddling read's second R beat
    assert res.rd_stalls <= sum(straddle)
    assert res.cycles <= 2 * len(pairs) + 10


@pytest.mark.parametrize("bus,seed", [(4, 1), (16, 2), (32, 3)])
def test_backpressure_on_every_channel(bus, seed):
    """Random stalls on AR, AW, W, R, B and the response port, gaps in both request streams,
    random latencies: every read equals the shadow memory's bytes, the memory ends equal."""
    rng = random.Random(seed)
    reads, writes = _random_requests(rng, bus, 150, 0, 512)  # small range: many overlaps
    knobs = Knobs(arready=0.4, awready=0.4, wready=0.4, rvalid=0.4, bvalid=0.4, rsp_ready=0.3,
                  rd_gap=0.3, wr_gap=0.3, rd_latency=(1, 9), wr_latency=(1, 12))
    res = run_bridge(bus, reads, writes, knobs, seed=seed)
    assert res.error == 0
    assert len(res.ar) >= len(reads) and len(res.aw) >= len(writes)


def test_read_after_write_waits_for_the_b_response():
    """Reads of words with a write in flight wait for its B response (the slave commits the data
    only then); reads of other words go on meanwhile."""
    bus = 16
    writes = [(100 + 3 * i, 9, 0xA5A5 * (i + 1)) for i in range(4)]
    reads = [(0x800, 16), (104, 4), (0x900, 8), (111, 16)]
    knobs = Knobs(wr_latency=(30, 30), rd_latency=(1, 1))
    res = run_bridge(bus, reads, writes, knobs)
    assert res.error == 0
    # the unrelated read is accepted at once, the dependent one after the writes' B (>30 cycles)
    assert res.rd_accept[0] < 3 and res.rd_accept[1] > 30


def test_page_crossing_requests_are_split_into_single_beats():
    """A straddling request whose second word starts a 4 KiB page is two one-beat bursts."""
    bus = 16
    reads = [(4096 - 3, 8), (8192 - 16, 16), (8192 - 15, 16), (4096 - 20, 16), (4096 - 1, 1)]
    writes = [(4096 - 7, 10, 0x0123456789ABCDEF0011), (8192 - 1, 16, 2**128 - 1),
              (8192 - 16, 16, 7), (4096 + 14, 4, 0xDEADBEEF)]
    knobs = Knobs(arready=0.3, awready=0.3, wready=0.3, rvalid=0.3, bvalid=0.3)
    res = run_bridge(bus, reads, writes, knobs, seed=5)
    assert res.ar == [(4080, 0), (4096, 0), (8176, 0), (8176, 0), (8192, 0), (4064, 1),
                      (4080, 0)]
    assert res.aw == [(4080, 0), (4096, 0), (8176, 0), (8192, 0), (8176, 0), (4096, 1)]
    assert res.error == 0


def test_outstanding_limits():
    """At most ``max_reads`` reads and ``max_writes`` writes in flight with a slow memory."""
    bus = 16
    rng = random.Random(9)
    reads, writes = _random_requests(rng, bus, 40, 0, 2048)
    knobs = Knobs(rd_latency=(20, 20), wr_latency=(20, 20))
    res = run_bridge(bus, reads, writes, knobs, max_reads=3, max_writes=2)
    assert res.max_reads_in_flight == 3 and res.max_writes_in_flight == 2
    fast = run_bridge(bus, reads, writes, knobs, max_reads=16, max_writes=8)
    assert fast.max_reads_in_flight > 3 and fast.cycles < res.cycles


def test_error_responses_set_the_sticky_flag():
    bus = 16
    reads = [(0, 16), (40, 8), (80, 4)]
    writes = [(1000, 16, 1), (2000, 3, 2)]
    assert run_bridge(bus, reads, writes, Knobs(rresp={1: 2})).error == 1
    assert run_bridge(bus, reads, writes, Knobs(bresp={1: 3})).error == 1
    assert run_bridge(bus, reads, writes).error == 0


@pytest.mark.parametrize("kwargs", [{"bus_bytes": 12}, {"bus_bytes": 2}, {"bus_bytes": 256},
                                    {"bus_bytes": 16, "max_reads": 0},
                                    {"bus_bytes": 16, "axi_id": 2}])
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        AxiBridge(kwargs.pop("bus_bytes"), **kwargs)


def test_port_names_are_the_conventional_axi4_ones():
    names = set(axi4_master_members(16))
    for ch in ("aw", "ar"):
        for s in ("id", "addr", "len", "size", "burst", "lock", "cache", "prot", "qos", "valid",
                  "ready"):
            assert f"m_axi_{ch}{s}" in names
    assert {"m_axi_wdata", "m_axi_wstrb", "m_axi_wlast", "m_axi_bresp", "m_axi_rlast",
            "m_axi_rresp", "m_axi_rid", "m_axi_bid"} <= names


def test_unknown_memory_port_kinds_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="port"):
        write_verilog(preset("tiny"), tmp_path, port="axi3")
    with pytest.raises(ValueError, match="port"):
        run_bench("verilator", preset("tiny"), {}, tag="x", build_root=tmp_path, port="axi")
    assert not list(tmp_path.iterdir())
