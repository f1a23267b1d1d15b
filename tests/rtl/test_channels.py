# amaranth: UnusedElaboratable=no
"""Fast tier: the channel split of the DMA's memory port (:mod:`rtl.channels`) in Amaranth's
simulator.

:class:`~rtl.channels.ChannelSplitter` is served by one Python memory per channel (a simple
port: pieces taken at random, reads answered in order after a random delay). Every piece must
land in the channel, at the channel address, that hwsim's DRAM model gives its bytes
(:func:`hwsim.dram.channel_map`), in request order; the reassembled reads must be the global
memory's bytes, including reads of bytes written just before (a write's piece reaches its
channel before a later read's).
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsim import isa
from hwsim.config import preset
from hwsim.dram import channel_interleave, channel_map
from rtl.axi import AxiAccelerator, dma_prefixes
from rtl.channels import ChannelBridge, ChannelSplitter, channel_bytes, check_channels

MEM_BYTES = 16 * 1024


def two_channel_tiny():
    """tiny with two DRAM channels: 8-byte (64-bit) masters, 256-byte interleave."""
    return preset("tiny").replace(name="tiny_2ch", dram__channels=2)


CONFIGS = {"vcu1525": lambda: preset("vcu1525"), "tiny_2ch": two_channel_tiny}


def _requests(rng: random.Random, n: int, bus: int, g: int, lo: int, hi: int) -> list:
    """``n`` (addr, nbytes) in ``[lo, hi)``, half of them across an interleave boundary."""
    out = []
    for _ in range(n):
        size = rng.randint(1, bus)
        if rng.random() < 0.5:
            edge = rng.randrange(lo // g + 1, hi // g) * g
            addr = edge - rng.randint(1, size) if size > 1 else edge
        else:
            addr = rng.randrange(lo, hi - size)
        out.append((addr, size))
    return out


def _overlap(a0: int, n0: int, a1: int, n1: int) -> bool:
    return a0 < a1 + n1 and a1 < a0 + n0


def _pieces(config, addr: int, nbytes: int) -> list:
    """hwsim's (channel, channel address, bytes) of a request, in address order."""
    ch, local = channel_map(np.arange(addr, addr + nbytes), config)
    out = []
    for c, a in zip(ch.tolist(), local.tolist(), strict=True):
        if out and out[-1][0] == c and out[-1][1] + out[-1][2] == a:
            out[-1][2] += 1
        else:
            out.append([c, a, 1])
    return [tuple(p) for p in out]


def run_splitter(config, reads: list, writes: list, *, seed: int = 0, stall: float = 0.3,
                 max_cycles: int = 50_000) -> dict:
    """Drive ``reads`` [(addr, nbytes)] and ``writes`` [(addr, nbytes)] (random data) through
    the splitter of ``config``; reads after a marker ``k`` (an int) wait until the first ``k``
    writes were accepted. The channel memories take a read before a write on the same cycle
    (the latest a memory may see the write). Returns the pieces each channel took and the
    read responses' bytes."""
    rng = random.Random(seed)
    d = config.dram
    B, N, g = d.bus_bytes, d.channels, channel_interleave(config)
    dut = ChannelSplitter(B, N, g, max_reads=8)
    glob = bytearray(rng.randbytes(MEM_BYTES))
    ch_of, local_of = channel_map(np.arange(MEM_BYTES), config)
    mems = [bytearray(MEM_BYTES // N) for _ in range(N)]
    for a in range(MEM_BYTES):
        mems[ch_of[a]][local_of[a]] = glob[a]
    out = {"rd_pieces": [[] for _ in range(N)], "wr_pieces": [[] for _ in range(N)],
           "reads": [], "expect": [], "cycles": 0}

    async def bench(ctx):
        rd_q = deque(reads)
        wr_q = deque((a, n, rng.getrandbits(8 * B)) for a, n in writes)
        rd_offer = wr_offer = None
        answers = [deque() for _ in range(N)]  # per channel: (due cycle, data)
        due_last = [0] * N
        inflight = deque()  # reads accepted and not answered
        cycle = accepted = 0
        while True:
            if rd_offer is None and rd_q and isinstance(rd_q[0], int) and accepted >= rd_q[0]:
                rd_q.popleft()
            # as the DMA's semaphores do: no read of bytes a write on offer stores, no write
            # of bytes a read in flight reads (either order is then the program's fault)
            if (rd_offer is None and rd_q and isinstance(rd_q[0], tuple)
                    and rng.random() > stall
                    and not (wr_offer and _overlap(*rd_q[0], *wr_offer[:2]))):
                rd_offer = rd_q.popleft()
            reading = [*inflight, *([rd_offer] if rd_offer else [])]
            if (wr_offer is None and wr_q and rng.random() > stall
                    and not any(_overlap(*wr_q[0][:2], *r) for r in reading)):
                wr_offer = wr_q.popleft()
            ctx.set(dut.mem_rd_req.valid, rd_offer is not None)
            if rd_offer:
                ctx.set(dut.mem_rd_req.payload, {"addr": rd_offer[0], "nbytes": rd_offer[1]})
            ctx.set(dut.mem_wr_req.valid, wr_offer is not None)
            if wr_offer:
                ctx.set(dut.mem_wr_req.payload, {"addr": wr_offer[0], "nbytes": wr_offer[1],
                                                 "wdata": wr_offer[2]})
            ctx.set(dut.mem_rd_rsp.ready, rng.random() > stall)
            for c in range(N):
                port = dut.ch[c]
                ctx.set(port.mem_rd_req.ready, rng.random() > stall)
                ctx.set(port.mem_wr_req.ready, rng.random() > stall)
                show = bool(answers[c]) and answers[c][0][0] <= cycle
                ctx.set(port.mem_rd_rsp.valid, show)
                ctx.set(port.mem_rd_rsp.payload, answers[c][0][1] if show else 0)

            # handshakes of this cycle (settled outputs)
            if rd_offer and ctx.get(dut.mem_rd_req.ready):
                a, n = rd_offer
                out["expect"].append(bytes(glob[a:a + n]) + bytes(B - n))
                inflight.append(rd_offer)
                rd_offer = None
            if wr_offer and ctx.get(dut.mem_wr_req.ready):
                a, n, data = wr_offer
                glob[a:a + n] = data.to_bytes(B, "little")[:n]
                wr_offer = None
                accepted += 1
            if ctx.get(dut.mem_rd_rsp.valid) and ctx.get(dut.mem_rd_rsp.ready):
                out["reads"].append(ctx.get(dut.mem_rd_rsp.payload).to_bytes(B, "little"))
                inflight.popleft()
            for c in range(N):
                port = dut.ch[c]
                if ctx.get(port.mem_rd_req.valid) and ctx.get(port.mem_rd_req.ready):
                    p = ctx.get(port.mem_rd_req.payload)
                    a, n = p["addr"], p["nbytes"]
                    out["rd_pieces"][c].append((a, n))
                    due_last[c] = max(due_last[c], cycle + rng.randint(1, 5))
                    answers[c].append((due_last[c],
                                       int.from_bytes(bytes(mems[c][a:a + n]), "little")))
                if ctx.get(port.mem_wr_req.valid) and ctx.get(port.mem_wr_req.ready):
                    p = ctx.get(port.mem_wr_req.payload)
                    a, n = p["addr"], p["nbytes"]
                    mems[c][a:a + n] = p["wdata"].to_bytes(B, "little")[:n]
                    out["wr_pieces"][c].append((a, n))
                if ctx.get(port.mem_rd_rsp.valid) and ctx.get(port.mem_rd_rsp.ready):
                    answers[c].popleft()
            done = (not rd_q and rd_offer is None and not wr_q and wr_offer is None
                    and len(out["reads"]) == len(out["expect"]) and ctx.get(dut.idle))
            if done:
                break
            await ctx.tick()
            cycle += 1
            assert cycle < max_cycles, "the splitter did not finish"
        out["cycles"] = cycle
        out["global"] = bytes(glob)
        out["mems"] = [bytes(mm) for mm in mems]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def _expected_pieces(config, requests: list) -> list:
    per = [[] for _ in range(config.dram.channels)]
    for a, n in requests:
        for c, local, k in _pieces(config, a, n):
            per[c].append((local, k))
    return per


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_splitter_pieces_land_in_hwsims_channel_at_its_channel_address(name):
    config = CONFIGS[name]()
    rng = random.Random(7)
    B, g = config.dram.bus_bytes, channel_interleave(config)
    reads = _requests(rng, 120, B, g, 0, MEM_BYTES // 2)
    writes = _requests(rng, 120, B, g, MEM_BYTES // 2, MEM_BYTES)
    got = run_splitter(config, reads, writes, seed=3)
    assert got["rd_pieces"] == _expected_pieces(config, reads)
    assert got["wr_pieces"] == _expected_pieces(config, writes)
    assert got["reads"] == got["expect"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_splitter_reads_see_the_writes_accepted_before_them(name):
    config = CONFIGS[name]()
    rng = random.Random(11)
    B, g = config.dram.bus_bytes, channel_interleave(config)
    writes = _requests(rng, 120, B, g, 0, MEM_BYTES // 4)
    reads = _requests(rng, 40, B, g, MEM_BYTES // 2, MEM_BYTES)
    for k in range(3, len(writes) + 1, 3):  # each write group's bytes, latest first
        reads += [k] + writes[k - 3:k][::-1]
    got = run_splitter(config, reads, writes, seed=5)
    assert got["reads"] == got["expect"]
    # the channels' memories are the global memory under hwsim's map
    ch, local = channel_map(np.arange(MEM_BYTES), config)
    mems = [np.frombuffer(m, np.uint8) for m in got["mems"]]
    rebuilt = np.array([mems[c][a] for c, a in zip(ch, local, strict=True)], np.uint8)
    np.testing.assert_array_equal(rebuilt, np.frombuffer(got["global"], np.uint8))


def test_channel_map_is_the_banked_models_channel():
    config = preset("vcu1525")
    from hwsim.dram import DramModel

    addrs = np.random.default_rng(0).integers(0, 1 << 32, 4096)
    ch, local = channel_map(addrs, config)
    np.testing.assert_array_equal(ch, DramModel(config).map(addrs)[0])
    g, n = 256, 4
    np.testing.assert_array_equal(local, (addrs >> 10 << 8) | (addrs & 255))
    assert channel_interleave(config) == g and config.dram.channels == n


def test_vcu1525_has_four_512_bit_masters_with_64_bit_addresses():
    config = preset("vcu1525")
    assert channel_bytes(check_channels(config)) == 64
    assert dma_prefixes(config) == ("m_axi_ch0", "m_axi_ch1", "m_axi_ch2", "m_axi_ch3")
    top = AxiAccelerator(config, lookup=False)
    members = top.signature.members
    for prefix in dma_prefixes(config):
        assert members[f"{prefix}_wdata"].shape == 512
        assert members[f"{prefix}_araddr"].shape == 64
    assert "m_axi_araddr" not in members
    assert dma_prefixes(preset("tiny")) == ("m_axi",)


def test_hwsims_dma_window_and_port_rate_are_the_rtls():
    """hwsim's ``dram.dma`` ``"entry"`` and ``"wide"`` timing takes its in-flight window and
    each channel's rate from what this top builds: the splitter holds two bridges' reads, a
    port moves ``channel_bytes`` a cycle, the DMA issues one request a cycle, and a wide
    request (a bus word) is one the splitter takes whole."""
    from hwsim.dram import DMA_IN_FLIGHT
    from hwsim.units.dma import wide_entries

    config = preset("vcu1525")
    assert config.dram.dma == "wide"
    top = AxiAccelerator(config, lookup=False)
    assert 2 * top.bridge_params["max_reads"] == DMA_IN_FLIGHT
    assert channel_bytes(config) == config.dram.bus_bytes // config.dram.channels
    entry = config.array.cols * config.array.elem_bytes
    assert wide_entries(isa.Buffer.WGT, config) * entry == config.dram.bus_bytes


@pytest.mark.parametrize(("dram", "needle"), [
    ({"channels": 3}, "dram.channels must be a power of two of at least 2 for one AXI4 master "
                      "per channel, not 3"),
    ({"channels": 2, "bus_bytes": 512}, "dram.bus_bytes (512) must be at most the channel "
                                        "interleave (256 bytes"),
    ({"channels": 8, "bus_bytes": 16}, "dram.bus_bytes / dram.channels (16 / 8) must be 4 to "
                                       "128"),
])
def test_channel_split_refuses_what_it_cannot_build(dram, needle):
    config = preset("tiny").replace(**{f"dram__{k}": v for k, v in dram.items()})
    with pytest.raises(ValueError) as e:
        check_channels(config)
    assert needle in str(e.value)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"bus_bytes": 64, "req_bytes": 32, "span": 256}, "req_bytes must be a power of two of at "
                                                      "least bus_bytes (64), not 32"),
    ({"bus_bytes": 8, "req_bytes": 16, "span": 8192}, "span must be a power of two from "
                                                      "req_bytes (16) to 4096"),
    ({"bus_bytes": 8, "req_bytes": 16, "span": 4096}, "at most 256 beats, not 4096"),
])
def test_channel_bridge_refuses_bad_parameters(kwargs, needle):
    with pytest.raises(ValueError) as e:
        ChannelBridge(**kwargs)
    assert needle in str(e.value)


def run_channel_bridge(bus: int, req: int, span: int, reads: list, writes: list, *,
                       seed: int = 0, stall: float = 0.3, max_cycles: int = 50_000) -> dict:
    """Writes ``writes`` [(addr, nbytes)] (random data), then reads ``reads`` [(addr, nbytes)]
    through a ``ChannelBridge`` served by a Python AXI4 slave (random stalls, reads answered in
    order, a write committed when its B response is offered, 5 to 30 cycles after its last
    beat: a read of its bytes issued before then would see the old data); returns the bursts,
    the read responses and what they should have been."""
    rng = random.Random(seed)
    dut = ChannelBridge(bus, req, span)
    mem = bytearray(rng.randbytes(MEM_BYTES))
    shadow = bytearray(mem)
    ax = dut.axi
    out = {"ar": [], "aw": [], "reads": [], "expect": []}

    async def bench(ctx):
        wr_q = deque((a, n, rng.getrandbits(8 * req)) for a, n in writes)
        rd_q = deque(reads)
        rd_offer = wr_offer = None
        r_beats, aw_q, w_beats, b_q = deque(), deque(), [], deque()
        cycle = 0
        for name in ("arready", "awready", "wready", "rvalid", "bvalid"):
            ctx.set(ax(name), 0)
        while True:
            if wr_offer is None and wr_q and rng.random() > stall:
                wr_offer = wr_q.popleft()
            if rd_offer is None and rd_q and not wr_q and wr_offer is None \
                    and rng.random() > stall:
                rd_offer = rd_q.popleft()
            ctx.set(dut.mem_wr_req.valid, wr_offer is not None)
            if wr_offer:
                ctx.set(dut.mem_wr_req.payload, {"addr": wr_offer[0], "nbytes": wr_offer[1],
                                                 "wdata": wr_offer[2]})
            ctx.set(dut.mem_rd_req.valid, rd_offer is not None)
            if rd_offer:
                ctx.set(dut.mem_rd_req.payload, {"addr": rd_offer[0], "nbytes": rd_offer[1]})
            ctx.set(dut.mem_rd_rsp.ready, rng.random() > stall)
            for name in ("arready", "awready", "wready"):
                ctx.set(ax(name), rng.random() > stall)
            show_r = bool(r_beats) and rng.random() > stall
            ctx.set(ax("rvalid"), show_r)
            if show_r:
                ctx.set(ax("rdata"), r_beats[0][0])
                ctx.set(ax("rlast"), r_beats[0][1])
            show_b = bool(b_q) and b_q[0][0] <= cycle and rng.random() > stall
            ctx.set(ax("bvalid"), show_b)

            if wr_offer and ctx.get(dut.mem_wr_req.ready):
                a, n, data = wr_offer
                shadow[a:a + n] = data.to_bytes(req, "little")[:n]
                wr_offer = None
            if rd_offer and ctx.get(dut.mem_rd_req.ready):
                a, n = rd_offer
                out["expect"].append(bytes(shadow[a:a + n]) + bytes(req - n))
                rd_offer = None
            if ctx.get(dut.mem_rd_rsp.valid) and ctx.get(dut.mem_rd_rsp.ready):
                out["reads"].append(ctx.get(dut.mem_rd_rsp.payload).to_bytes(req, "little"))
            if ctx.get(ax("arvalid")) and ctx.get(ax("arready")):
                a, blen = ctx.get(ax("araddr")), ctx.get(ax("arlen"))
                out["ar"].append((a, blen))
                for k in range(blen + 1):
                    beat = int.from_bytes(mem[a + k * bus:a + (k + 1) * bus], "little")
                    r_beats.append((beat, k == blen))
            if show_r and ctx.get(ax("rready")):
                r_beats.popleft()
            if ctx.get(ax("awvalid")) and ctx.get(ax("awready")):
                aw_q.append((ctx.get(ax("awaddr")), ctx.get(ax("awlen"))))
                out["aw"].append(aw_q[-1])
            if ctx.get(ax("wvalid")) and ctx.get(ax("wready")):
                w_beats.append((ctx.get(ax("wdata")), ctx.get(ax("wstrb")), ctx.get(ax("wlast"))))
            if aw_q and len(w_beats) >= aw_q[0][1] + 1:
                a, blen = aw_q.popleft()
                beats, w_beats = w_beats[:blen + 1], w_beats[blen + 1:]
                assert [last for *_, last in beats] == [0] * blen + [1]
                b_q.append((cycle + rng.randint(5, 30), a, beats))  # a slow B: reads wait
            if show_b and ctx.get(ax("bready")):
                _, a, beats = b_q.popleft()
                for k, (data, strb, _) in enumerate(beats):
                    for i in range(bus):
                        if strb >> i & 1:
                            mem[a + k * bus + i] = data >> 8 * i & 0xFF
            if (not wr_q and not rd_q and wr_offer is None and rd_offer is None
                    and len(out["reads"]) == len(out["expect"]) and ctx.get(dut.idle)):
                break
            await ctx.tick()
            cycle += 1
            assert cycle < max_cycles, "the bridge did not finish"
        out["mem"], out["shadow"], out["error"] = bytes(mem), bytes(shadow), ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize(("bus", "req", "span"), [(64, 256, 256), (8, 16, 256)])
def test_channel_bridge_bursts_stay_in_their_chunk_and_move_the_right_bytes(bus, req, span):
    rng = random.Random(bus)

    def pieces(n):
        out = []
        for _ in range(n):
            size = rng.randint(1, req)
            chunk = rng.randrange(MEM_BYTES // span)
            out.append((chunk * span + rng.randint(0, span - size), size))
        return out

    writes = pieces(60)
    reads = writes[::-1][:30] + pieces(30)  # the latest writes first: their B is not back
    got = run_channel_bridge(bus, req, span, reads, writes, seed=bus)
    assert got["error"] == 0
    assert got["reads"] == got["expect"]
    assert got["mem"] == got["shadow"]
    for (a, n), (addr, blen) in zip(writes, got["aw"], strict=True):
        assert addr == a // bus * bus and blen == (a + n - 1) // bus - a // bus
        assert addr // span == (addr + (blen + 1) * bus - 1) // span
    for (a, n), (addr, blen) in zip(reads, got["ar"], strict=True):
        assert addr == a // bus * bus and blen == (a + n - 1) // bus - a // bus
