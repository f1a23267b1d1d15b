"""One AXI4 master per DRAM channel: the DMA's memory port split over ``dram.channels``
channels by hwsim's address map.

hwsim's DRAM model interleaves its channels every ``g`` bytes
(:func:`hwsim.dram.channel_interleave`: 256 bytes, capped at ``dram.row_bytes``): byte ``a``
is in channel ``a // g % N``, at address ``a // g // N * g + a % g`` of that channel
(:func:`hwsim.dram.channel_map`). A board gives each DDR4 controller its own AXI4 port (the
VCU1525's four DDR4 DIMMs: four 512-bit ports), so a top for a config with ``N > 1``
channels (:class:`rtl.axi.AxiAccelerator`) has ``N`` masters, each addressed with its own
channel's addresses:

- :class:`ChannelSplitter` cuts each request of the simple port (:mod:`rtl.dma`: at most
  ``dram.bus_bytes`` bytes at any address) at interleave boundaries into one or two pieces
  (``bus_bytes <= g``), hands each piece to its channel's port with its channel address, and
  puts the answers of a read's pieces back together, in request order;
- :class:`ChannelBridge` is one channel's AXI4 master, :func:`channel_bytes` wide: a piece (at
  most ``bus_bytes`` bytes inside one ``g``-byte chunk, hence never across a 4 KiB page) is
  one INCR burst of full-width beats.

AXI4 as issued on each channel master: 64-bit addresses (the channel's), one fixed ID, INCR
bursts of ``AxSIZE = log2(channel bytes)`` beats from the aligned word below the piece
(``AxLEN`` = beats - 1, at most ``bus_bytes / channel bytes``), ``WSTRB`` on exactly the
piece's bytes, ``AxCACHE = 0b0011``; other features as :mod:`rtl.axi`'s.

Ordering, as :class:`rtl.axi.AxiBridge`'s: reads answered in request order; a read of bytes a
write still in flight stores (accepted, B response not back) waits for that B response (each
channel checks its own pieces: a write's piece reaches its channel before any later read's);
writes do not wait for earlier reads.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwsim.config import AcceleratorConfig
from hwsim.dram import channel_interleave

from .dma import mem_rd_req_layout, mem_wr_req_layout, nbytes_bits

__all__ = ["CHANNEL_ADDR_BITS", "ChannelBridge", "ChannelSplitter", "channel_bytes",
           "channel_prefix", "check_channels", "memory_port_signature"]

CHANNEL_ADDR_BITS = 64
"""Address width of a channel master (Vitis gives every kernel master 64-bit addresses)."""

_AXI_BURST_INCR, _AXI_CACHE, _AXI_RESP_OKAY = 0b01, 0b0011, 0b00  # as rtl.axi's


def channel_prefix(channel: int) -> str:
    """The Verilog prefix of channel ``channel``'s master: ``m_axi_ch<channel>``."""
    return f"m_axi_ch{channel}"


def channel_bytes(config: AcceleratorConfig) -> int:
    """Data bytes of one channel's master: ``dram.bus_bytes / dram.channels`` (vcu1525: 256 /
    4 = 64, a DDR4 controller's 512-bit AXI4 port on the VU9P), so the channels together are as
    wide as the DMA's bus."""
    return config.dram.bus_bytes // config.dram.channels


def check_channels(config: AcceleratorConfig) -> AcceleratorConfig:
    """``config``, checked to have a DRAM the RTL splits into one master per channel.

    Raises
    ------
    ValueError
        ``dram.channels`` not a power of two of at least 2, ``dram.bus_bytes`` above the
        channel interleave, or a channel narrower than 4 bytes or wider than 128.
    """
    d = config.dram
    n, bus, g = d.channels, d.bus_bytes, channel_interleave(config)
    if n < 2 or n & (n - 1):
        raise ValueError(f"dram.channels must be a power of two of at least 2 for one AXI4 "
                         f"master per channel, not {n}")
    if bus > g:
        raise ValueError(f"dram.bus_bytes ({bus}) must be at most the channel interleave ({g} "
                         f"bytes: hwsim.dram.channel_interleave) for one AXI4 master per "
                         f"channel")
    if not 4 <= bus // n <= 128:
        raise ValueError(f"dram.bus_bytes / dram.channels ({bus} / {n}) must be 4 to 128: "
                         f"one channel's AXI4 data of 32 to 1024 bits")
    return config


def memory_port_signature(bus_bytes: int) -> wiring.Signature:
    """The simple memory port of :mod:`rtl.dma` as its master drives it: ``mem_rd_req``,
    ``mem_wr_req`` (Out) and ``mem_rd_rsp`` (In)."""
    return wiring.Signature({
        "mem_rd_req": Out(stream.Signature(mem_rd_req_layout(bus_bytes))),
        "mem_rd_rsp": In(stream.Signature(bus_bytes * 8)),
        "mem_wr_req": Out(stream.Signature(mem_wr_req_layout(bus_bytes))),
    })


def _incr(ptr, n: int):
    return Mux(ptr == n - 1, 0, ptr + 1)


class ChannelSplitter(wiring.Component):
    """The simple memory port of :mod:`rtl.dma` (slave side) split over ``channels`` ports.

    Members
    -------
    mem_rd_req : In(stream.Signature(mem_rd_req_layout(bus_bytes)))
    mem_rd_rsp : Out(stream.Signature(bus_bytes * 8))
    mem_wr_req : In(stream.Signature(mem_wr_req_layout(bus_bytes)))
        The DMA's port: requests of at most ``bus_bytes`` at any byte address, read responses
        in request order (the low ``nbytes`` bytes, the others zero).
    ch : Out(memory_port_signature(bus_bytes)).array(channels)
        One simple port per channel, addressed with channel addresses: a piece of at most
        ``bus_bytes`` bytes inside one ``interleave``-byte chunk; its port must answer reads in
        order, with the bytes beyond ``nbytes`` zero.
    idle : Out(1)
        No piece waiting to be handed over and every read answered.

    Parameters
    ----------
    bus_bytes, channels, interleave : int
        Powers of two, ``channels >= 2``, ``bus_bytes <= interleave``.
    max_reads : int, default 32
        Reads accepted and not yet answered (the depth of the FIFO that remembers where each
        one's pieces went): the channels' reads in flight together.

    Latency
    -------
    A request accepted on cycle ``t`` is offered to its channels on ``t + 1`` (a read piece one
    cycle later while a write piece for its channel waits); the response is on ``mem_rd_rsp``
    the cycle after the last of its pieces' answers. ``mem_rd_req.ready`` and
    ``mem_wr_req.ready`` follow the channels' ``ready`` combinationally.
    """

    def __init__(self, bus_bytes: int, channels: int, interleave: int, *, max_reads: int = 32):
        for name, v in (("bus_bytes", bus_bytes), ("channels", channels),
                        ("interleave", interleave)):
            if not isinstance(v, int) or v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, not {v!r}")
        if channels < 2:
            raise ValueError(f"channels must be at least 2, not {channels}")
        if bus_bytes > interleave:
            raise ValueError(f"bus_bytes ({bus_bytes}) must be at most interleave "
                             f"({interleave})")
        if not isinstance(max_reads, int) or max_reads < 1:
            raise ValueError(f"max_reads must be a positive integer, not {max_reads!r}")
        self.bus_bytes, self.channels, self.interleave = bus_bytes, channels, interleave
        self.max_reads = max_reads
        super().__init__({
            "mem_rd_req": In(stream.Signature(mem_rd_req_layout(bus_bytes))),
            "mem_rd_rsp": Out(stream.Signature(bus_bytes * 8)),
            "mem_wr_req": In(stream.Signature(mem_wr_req_layout(bus_bytes))),
            "ch": Out(memory_port_signature(bus_bytes)).array(channels),
            "idle": Out(1),
        })

    def _pieces(self, addr, nbytes):
        """Channel of the first piece, whether there is a second (in the next channel), the
        bytes and channel addresses of both."""
        lg, ln = exact_log2(self.interleave), exact_log2(self.channels)
        off, chunk = addr[:lg], addr[lg:]
        two = (off + nbytes) > self.interleave
        n0 = Mux(two, self.interleave - off, nbytes)
        n1 = off + nbytes - self.interleave
        a0 = Cat(off, chunk[ln:])
        a1 = Cat(Const(0, lg), (chunk + 1)[ln:])
        return chunk[:ln], two, n0, n1, a0, a1

    def elaborate(self, platform):
        m = Module()
        B, N = self.bus_bytes, self.channels
        ln, lb, nb = exact_log2(N), exact_log2(B), nbytes_bits(B)

        def pending(kind: str):
            """A request's two pieces while they wait for their channels."""
            return ([Signal(name=f"{kind}{k}_valid") for k in range(2)], Signal(ln,
                    name=f"{kind}_ch"), [Signal(nb, name=f"{kind}{k}_n") for k in range(2)],
                    [Signal(32, name=f"{kind}{k}_addr") for k in range(2)])

        def load(valid, ch, n, addr, req):
            c0, two, n0, n1, a0, a1 = self._pieces(req.addr, req.nbytes)
            m.d.sync += [valid[0].eq(1), valid[1].eq(two), ch.eq(c0), n[0].eq(n0), n[1].eq(n1),
                         addr[0].eq(a0), addr[1].eq(a1)]
            return c0, two, n0

        rv, rch, rn, raddr = pending("rd")
        wv, wch, wn, waddr = pending("wr")
        wdata = Signal(8 * B)
        wdata1 = (wdata >> Cat(Const(0, 3), wn[0][:lb]))[:8 * B]
        rsent, wsent = [[] for _ in range(2)], [[] for _ in range(2)]
        for c in range(N):
            port = self.ch[c]
            rsel = [rv[k] & ((rch + k)[:ln] == c) for k in range(2)]
            wsel = [wv[k] & ((wch + k)[:ln] == c) for k in range(2)]
            rq, wq = port.mem_rd_req, port.mem_wr_req
            # a read piece waits while a write piece for its channel does: the write reaches
            # the channel's bridge first, whose hazard check then holds the read
            m.d.comb += [rq.valid.eq((rsel[0] | rsel[1]) & ~(wsel[0] | wsel[1])),
                         rq.p.addr.eq(Mux(rsel[0], raddr[0], raddr[1])),
                         rq.p.nbytes.eq(Mux(rsel[0], rn[0], rn[1])),
                         wq.valid.eq(wsel[0] | wsel[1]),
                         wq.p.addr.eq(Mux(wsel[0], waddr[0], waddr[1])),
                         wq.p.nbytes.eq(Mux(wsel[0], wn[0], wn[1])),
                         wq.p.wdata.eq(Mux(wsel[0], wdata, wdata1))]
            for k in range(2):
                rsent[k].append(rsel[k] & rq.valid & rq.ready)
                wsent[k].append(wsel[k] & wq.ready)
        rsent = [Cat(*s).any() for s in rsent]
        wsent = [Cat(*s).any() for s in wsent]
        for k in range(2):
            with m.If(rsent[k]):
                m.d.sync += rv[k].eq(0)
            with m.If(wsent[k]):
                m.d.sync += wv[k].eq(0)

        # ---- reads: accepted once both pieces of the previous one are handed over
        m.submodules.order = order = SyncFIFO(width=ln + 1 + lb, depth=self.max_reads)
        rd_ok = Cat(*(~rv[k] | rsent[k] for k in range(2))).all() & order.w_rdy
        m.d.comb += self.mem_rd_req.ready.eq(rd_ok)
        with m.If(self.mem_rd_req.valid & rd_ok):
            c0, two, n0 = load(rv, rch, rn, raddr, self.mem_rd_req.p)
            m.d.comb += [order.w_en.eq(1), order.w_data.eq(Cat(c0, two, n0[:lb]))]

        # ---- answers: the oldest read's pieces, the second shifted above the first's bytes
        h_ch, h_two, h_n0 = order.r_data[:ln], order.r_data[ln], order.r_data[ln + 1:]
        h_ch1 = (h_ch + 1)[:ln]
        valids = Array(self.ch[c].mem_rd_rsp.valid for c in range(N))
        datas = Array(self.ch[c].mem_rd_rsp.payload for c in range(N))
        v0, v1, low, second = Signal(), Signal(), Signal(8 * B), Signal(8 * B)
        m.d.comb += [v0.eq(valids[h_ch]), v1.eq(valids[h_ch1]), low.eq(datas[h_ch]),
                     second.eq(datas[h_ch1])]
        high = (second << Cat(Const(0, 3), h_n0))[:8 * B]
        out_valid, out_data = Signal(), Signal(8 * B)
        rsp = self.mem_rd_rsp
        m.d.comb += [rsp.valid.eq(out_valid), rsp.payload.eq(out_data)]
        take = order.r_rdy & v0 & (~h_two | v1) & (~out_valid | rsp.ready)
        for c in range(N):
            m.d.comb += self.ch[c].mem_rd_rsp.ready.eq(
                take & ((h_ch == c) | (h_two & (h_ch1 == c))))
        with m.If(rsp.valid & rsp.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(take):
            m.d.comb += order.r_en.eq(1)
            m.d.sync += [out_valid.eq(1), out_data.eq(low | Mux(h_two, high, 0))]

        # ---- writes: accepted once both pieces of the previous one are handed over
        wr_ok = Cat(*(~wv[k] | wsent[k] for k in range(2))).all()
        m.d.comb += self.mem_wr_req.ready.eq(wr_ok)
        with m.If(self.mem_wr_req.valid & wr_ok):
            load(wv, wch, wn, waddr, self.mem_wr_req.p)
            m.d.sync += wdata.eq(self.mem_wr_req.p.wdata)

        m.d.comb += self.idle.eq(~Cat(*rv, *wv).any() & (order.level == 0) & ~out_valid)
        return m


class ChannelBridge(wiring.Component):
    """One channel's AXI4 master: the pieces :class:`ChannelSplitter` hands to a channel.

    Members
    -------
    mem_rd_req : In(stream.Signature(mem_rd_req_layout(req_bytes)))
    mem_rd_rsp : Out(stream.Signature(req_bytes * 8))
    mem_wr_req : In(stream.Signature(mem_wr_req_layout(req_bytes)))
        The simple port of :mod:`rtl.dma` (slave side), with ``req_bytes``-wide data: a request
        of at most ``req_bytes`` bytes that does not cross a ``span``-byte boundary. Read
        responses in request order, the low ``nbytes`` bytes the data, the others zero.
    idle : Out(1)
        Every accepted read answered and every accepted write's B response received.
    error : Out(1)
        Sticky: an R or B response other than OKAY, or a B response with no write in flight.
    <prefix>_* : :func:`rtl.axi.axi4_master_members`
        The AXI4 master, ``bus_bytes * 8`` data bits, ``addr_bits`` address bits.

    Parameters
    ----------
    bus_bytes : int
        AXI4 data bytes, a power of two from 4 to 128.
    req_bytes : int
        The widest request, a power of two of at least ``bus_bytes``.
    span : int
        Requests never cross a ``span``-byte boundary: a power of two from ``req_bytes`` to
        4096 (so no burst crosses a 4 KiB page) and at most 256 beats.
    max_reads : int, default 16
        Reads accepted and not yet answered.
    max_writes : int, default 8
        Writes accepted whose B responses are outstanding.
    id_width, axi_id : int
        The ID on AR and AW (R and B IDs are not checked).
    prefix : str, default ``"m_axi"``
    addr_bits : int, default :data:`CHANNEL_ADDR_BITS`

    Latency and throughput
    ----------------------
    A request accepted on cycle ``t`` is on AR (or AW and W) from ``t + 1``; a read's response
    is on ``mem_rd_rsp`` the cycle after its last R beat. A request of ``b`` beats occupies the
    R or W channel ``b`` cycles; requests are taken back to back.
    """

    def __init__(self, bus_bytes: int, req_bytes: int, span: int, *, max_reads: int = 16,
                 max_writes: int = 8, id_width: int = 1, axi_id: int = 0,
                 prefix: str = "m_axi", addr_bits: int = CHANNEL_ADDR_BITS):
        from .axi import _check_axi_params, axi4_master_members  # rtl.axi builds on this

        _check_axi_params(bus_bytes, max_reads, max_writes, id_width, axi_id)
        if not isinstance(req_bytes, int) or req_bytes < bus_bytes or req_bytes & (req_bytes - 1):
            raise ValueError(f"req_bytes must be a power of two of at least bus_bytes "
                             f"({bus_bytes}), not {req_bytes!r}")
        if (not isinstance(span, int) or span & (span - 1) or not req_bytes <= span <= 4096
                or span // bus_bytes > 256):
            raise ValueError(f"span must be a power of two from req_bytes ({req_bytes}) to "
                             f"4096 and at most 256 beats, not {span!r}")
        if not isinstance(addr_bits, int) or not 32 <= addr_bits <= 64:
            raise ValueError(f"addr_bits must be 32 to 64, not {addr_bits!r}")
        self.bus_bytes, self.req_bytes, self.span = bus_bytes, req_bytes, span
        self.max_reads, self.max_writes = max_reads, max_writes
        self.id_width, self.axi_id, self.prefix = id_width, axi_id, prefix
        self.addr_bits = addr_bits
        self.max_beats = min(req_bytes // bus_bytes + 1, span // bus_bytes)
        super().__init__({
            "mem_rd_req": In(stream.Signature(mem_rd_req_layout(req_bytes))),
            "mem_rd_rsp": Out(stream.Signature(req_bytes * 8)),
            "mem_wr_req": In(stream.Signature(mem_wr_req_layout(req_bytes))),
            "idle": Out(1), "error": Out(1),
            **axi4_master_members(bus_bytes, id_width, prefix, addr_bits=addr_bits),
        })

    def axi(self, name: str):
        """The AXI signal ``name`` (``"araddr"``, ...)."""
        return getattr(self, f"{self.prefix}_{name}")

    def elaborate(self, platform):
        m = Module()
        B, R, MB = self.bus_bytes, self.req_bytes, self.max_beats
        W, sh, ss = 8 * B, exact_log2(B), exact_log2(self.span)
        word_bits = 32 - sh
        nb, lb = nbytes_bits(R), max(1, (MB - 1).bit_length())
        ax = self.axi
        error = Signal()
        m.d.comb += self.error.eq(error)
        for ch in ("ar", "aw"):
            m.d.comb += [ax(f"{ch}id").eq(self.axi_id), ax(f"{ch}size").eq(sh),
                         ax(f"{ch}burst").eq(_AXI_BURST_INCR), ax(f"{ch}cache").eq(_AXI_CACHE)]

        def decode(addr, nbytes):
            """Byte offset in the first bus word, that word, the burst's beats - 1 and its last
            word (the request stays in one span)."""
            first = addr[sh:ss]
            last = (addr[:ss] + nbytes - 1)[sh:ss]
            blen = Mux(nbytes == 0, 0, last - first)[:lb]
            return addr[:sh], addr[sh:], blen, (addr[sh:] + blen)[:word_bits]

        def address_stage(ch: str):
            """The AR or AW register; returns whether it takes a request this cycle and a
            function that loads one."""
            valid, blen = Signal(name=f"{ch}_valid"), Signal(lb, name=f"{ch}_len")
            word = Signal(word_bits, name=f"{ch}_word")
            m.d.comb += [ax(f"{ch}valid").eq(valid), ax(f"{ch}addr").eq(Cat(Const(0, sh), word)),
                         ax(f"{ch}len").eq(blen)]
            done = valid & ax(f"{ch}ready")
            with m.If(done):
                m.d.sync += valid.eq(0)

            def load(req_word, req_len):
                m.d.sync += [valid.eq(1), word.eq(req_word), blen.eq(req_len)]
            return ~valid | done, load

        # ---- writes in flight (first and last word) until their B response
        N = self.max_writes
        wt_valid = [Signal(name=f"wt{i}_valid") for i in range(N)]
        wt_first = [Signal(word_bits, name=f"wt{i}_first") for i in range(N)]
        wt_last = [Signal(word_bits, name=f"wt{i}_last") for i in range(N)]
        wt_head, wt_tail = Signal(range(N)), Signal(range(N))

        # ---- reads -> AR, their offsets, sizes and beats into the response FIFO
        rq = self.mem_rd_req.p
        r_off, r_word, r_len, r_last = decode(rq.addr, rq.nbytes)
        raw = Cat(*(wt_valid[i] & (r_word <= wt_last[i]) & (wt_first[i] <= r_last)
                    for i in range(N))).any()
        m.submodules.rd_meta = meta = SyncFIFO(width=sh + nb + lb, depth=self.max_reads)
        ar_free, ar_load = address_stage("ar")
        rd_ok = ar_free & meta.w_rdy & ~raw
        rd_take = self.mem_rd_req.valid & rd_ok
        m.d.comb += [self.mem_rd_req.ready.eq(rd_ok), meta.w_en.eq(rd_take),
                     meta.w_data.eq(Cat(r_off, rq.nbytes, r_len))]
        with m.If(rd_take):
            ar_load(r_word, r_len)

        # ---- R beats gathered into one response per read, shifted down to its first byte
        h_off, h_nbytes, h_len = (meta.r_data[:sh], meta.r_data[sh:sh + nb],
                                  meta.r_data[sh + nb:])
        beat = Signal(lb)
        held = [Signal(W, name=f"r_beat{i}") for i in range(MB - 1)]
        out_valid, out_data = Signal(), Signal(8 * R)
        rsp = self.mem_rd_rsp
        m.d.comb += [rsp.valid.eq(out_valid), rsp.payload.eq(out_data)]
        last_beat = beat == h_len
        rready = meta.r_rdy & (~last_beat | ~out_valid | rsp.ready)
        rdata = ax("rdata")
        beats = Cat(*(Mux(beat == i, rdata, held[i]) for i in range(MB - 1)), rdata)
        aligned = (beats >> Cat(Const(0, 3), h_off))[:8 * R]
        keep = Cat(*((h_nbytes > i).replicate(8) for i in range(R)))
        m.d.comb += ax("rready").eq(rready)
        with m.If(rsp.valid & rsp.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(ax("rvalid") & rready):
            with m.If(ax("rresp") != _AXI_RESP_OKAY):
                m.d.sync += error.eq(1)
            with m.If(last_beat):
                m.d.comb += meta.r_en.eq(1)
                m.d.sync += [beat.eq(0), out_valid.eq(1), out_data.eq(aligned & keep)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
                for i in range(MB - 1):
                    with m.If(beat == i):
                        m.d.sync += held[i].eq(rdata)

        # ---- writes -> AW, and W beats with the data on its lanes and strobes
        wq = self.mem_wr_req.p
        w_off, w_word, w_len, w_last = decode(wq.addr, wq.nbytes)
        w_lanes = (Cat(wq.wdata, Const(0, MB * W - 8 * R)) << Cat(Const(0, 3), w_off))[:MB * W]
        w_strb = (Cat(*(wq.nbytes > i for i in range(R)), Const(0, MB * B - R))
                  << w_off)[:MB * B]
        aw_free, aw_load = address_stage("aw")
        w_valid, w_left = Signal(), Signal(lb)
        w_data, w_mask = Signal(MB * W), Signal(MB * B)
        m.d.comb += [ax("wvalid").eq(w_valid), ax("wdata").eq(w_data[:W]),
                     ax("wstrb").eq(w_mask[:B]), ax("wlast").eq(w_left == 0)]
        w_hs = w_valid & ax("wready")
        with m.If(w_hs):
            with m.If(w_left == 0):
                m.d.sync += w_valid.eq(0)
            with m.Else():
                m.d.sync += [w_left.eq(w_left - 1), w_data.eq(w_data >> W),
                             w_mask.eq(w_mask >> B)]
        w_free = ~w_valid | (w_hs & (w_left == 0))
        wr_ok = aw_free & w_free & ~Array(wt_valid)[wt_tail]
        wr_take = self.mem_wr_req.valid & wr_ok
        m.d.comb += self.mem_wr_req.ready.eq(wr_ok)
        with m.If(wr_take):
            aw_load(w_word, w_len)
            m.d.sync += [w_valid.eq(1), w_left.eq(w_len), w_data.eq(w_lanes), w_mask.eq(w_strb),
                         wt_tail.eq(_incr(wt_tail, N))]
            for i in range(N):
                with m.If(wt_tail == i):
                    m.d.sync += [wt_valid[i].eq(1), wt_first[i].eq(w_word),
                                 wt_last[i].eq(w_last)]

        # ---- B responses retire the oldest write
        m.d.comb += ax("bready").eq(1)
        head_valid = Array(wt_valid)[wt_head]
        with m.If(ax("bvalid")):
            with m.If((ax("bresp") != _AXI_RESP_OKAY) | ~head_valid):
                m.d.sync += error.eq(1)
            with m.If(head_valid):
                m.d.sync += wt_head.eq(_incr(wt_head, N))
                for i in range(N):
                    with m.If(wt_head == i):
                        m.d.sync += wt_valid[i].eq(0)

        m.d.comb += self.idle.eq((meta.level == 0) & ~out_valid & ~Cat(*wt_valid).any())
        return m
