"""AXI4 master port: a bridge from the accelerator's simple memory port, and the top built on it.

:class:`Accelerator` talks to memory through the simple port of :mod:`rtl.dma` (a read request
``{addr, nbytes}`` answered in order by one bus-wide beat; a write request ``{addr, nbytes,
wdata}`` with no response; any byte address, at most ``bus_bytes`` bytes). FPGA memory
controllers (Xilinx DDR4 MIG, HBM, the AXI interconnect) take AXI4 instead: :class:`AxiBridge`
converts one into the other and :class:`AxiAccelerator` is the accelerator with that bridge on
its memory port, the top a board design instantiates (``rtl.verilog.write_verilog(...,
port="axi4")`` writes it as ``satmem_top``). The lookup engine's table memory is a second
master, ``m_axi_lk`` (:class:`rtl.lookup.axi.LookupAxiBridge`, several IDs, rows of several
beats); what follows is the DMA's master. A config with several DRAM channels gets one master
per channel instead, each addressed with its channel's addresses (:mod:`rtl.channels`).

AXI4 as issued (AMBA AXI4, IHI 0022):

- data ``bus_bytes * 8`` bits (a power of two, 32..1024), addresses 32 bits, one fixed ID;
- INCR bursts of full-width beats (``AxSIZE = log2(bus_bytes)``) from the bus-aligned address
  below the request: ``AxLEN = 0`` when the request lies in one bus word, ``AxLEN = 1`` when it
  straddles two. A straddling request whose second word starts a 4 KiB page is issued as two
  single-beat bursts, since a burst must not cross a 4 KiB boundary;
- writes carry the request's bytes shifted to their lanes with ``WSTRB`` set on exactly those
  bytes (a strobe of zero on a beat a request does not touch);
- ``AxCACHE = 0b0011`` (normal non-cacheable bufferable), ``AxPROT``, ``AxLOCK``, ``AxQOS`` 0;
- not used: WRAP and FIXED bursts, narrow transfers, exclusive and locked accesses, several
  IDs (responses come back in order on one ID), user signals, ``AxREGION``. ``xRESP`` other
  than OKAY is not retried: it sets the sticky ``error`` flag and the data is passed on as is.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out, connect
from amaranth.utils import exact_log2

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.dram import channel_interleave

from .accelerator import Accelerator
from .channels import (
    CHANNEL_ADDR_BITS,
    ChannelBridge,
    ChannelSplitter,
    channel_bytes,
    channel_prefix,
    check_channels,
)
from .controller import RETIRE_BITS
from .dma import mem_rd_req_layout, mem_wr_req_layout
from .lookup.unit import ROW_BYTES, SLOTS

__all__ = ["AXI_ADDR_BITS", "AXI_BURST_INCR", "AXI_CACHE", "AXI_PREFIX", "AXI_RESP_OKAY",
           "AxiAccelerator", "AxiBridge", "axi4_master_members", "dma_prefixes"]

AXI_ADDR_BITS = 32
AXI_PREFIX = "m_axi"
AXI_BURST_INCR = 0b01
AXI_CACHE = 0b0011  # normal non-cacheable bufferable (what Xilinx IP recommends for masters)
AXI_RESP_OKAY = 0b00


def axi4_master_members(bus_bytes: int, id_width: int = 1, prefix: str = AXI_PREFIX,
                        user_width: int = 0, addr_bits: int = AXI_ADDR_BITS
                        ) -> dict[str, wiring.Member]:
    """The signature members of an AXI4 master, flat and named ``<prefix>_<signal>`` (AW, W, B,
    AR, R in that order), so that the Verilog ports take the conventional names that
    ``cocotbext.axi.AxiBus.from_prefix(dut, prefix)`` and Vivado's interface inference expect.

    Master outputs are ``Out``; ``awready``, ``wready``, ``bid``, ``bresp``, ``bvalid``,
    ``arready``, ``rid``, ``rdata``, ``rresp``, ``rlast``, ``rvalid`` are ``In``. With
    ``user_width > 0`` the address channels also carry ``awuser`` and ``aruser`` (``Out``).
    ``awaddr`` and ``araddr`` are ``addr_bits`` wide.
    """
    data = bus_bytes * 8
    sigs = []
    for ch in ("aw", "ar"):
        sigs.append([(f"{ch}id", Out, id_width), (f"{ch}addr", Out, addr_bits),
                     (f"{ch}len", Out, 8), (f"{ch}size", Out, 3), (f"{ch}burst", Out, 2),
                     (f"{ch}lock", Out, 1), (f"{ch}cache", Out, 4), (f"{ch}prot", Out, 3),
                     (f"{ch}qos", Out, 4),
                     *([(f"{ch}user", Out, user_width)] if user_width else []),
                     (f"{ch}valid", Out, 1), (f"{ch}ready", In, 1)])
    aw, ar = sigs
    w = [("wdata", Out, data), ("wstrb", Out, bus_bytes), ("wlast", Out, 1), ("wvalid", Out, 1),
         ("wready", In, 1)]
    b = [("bid", In, id_width), ("bresp", In, 2), ("bvalid", In, 1), ("bready", Out, 1)]
    r = [("rid", In, id_width), ("rdata", In, data), ("rresp", In, 2), ("rlast", In, 1),
         ("rvalid", In, 1), ("rready", Out, 1)]
    return {f"{prefix}_{name}": flow(width) for name, flow, width in aw + w + b + ar + r}


def dma_prefixes(config: AcceleratorConfig) -> tuple[str, ...]:
    """The prefixes of the DMA's AXI4 masters on :class:`AxiAccelerator` for ``config``:
    ``("m_axi",)`` with one DRAM channel, one per channel otherwise (``m_axi_ch0``, ...:
    :mod:`rtl.channels`)."""
    n = config.dram.channels
    return (AXI_PREFIX,) if n == 1 else tuple(channel_prefix(c) for c in range(n))


def _check_axi_params(bus_bytes, max_reads, max_writes, id_width, axi_id):
    if not isinstance(bus_bytes, int) or bus_bytes not in (4, 8, 16, 32, 64, 128):
        raise ValueError(f"bus_bytes must be a power of two from 4 to 128 (AXI4 data of 32 to "
                         f"1024 bits), not {bus_bytes!r}")
    for name, v in (("max_reads", max_reads), ("max_writes", max_writes),
                    ("id_width", id_width)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    if not isinstance(axi_id, int) or not 0 <= axi_id < 2**id_width:
        raise ValueError(f"axi_id must fit {id_width} bits, not {axi_id!r}")


def _incr(ptr, n: int):
    return Mux(ptr == n - 1, 0, ptr + 1)


class AxiBridge(wiring.Component):
    """The simple memory port of :mod:`rtl.dma` (slave side) to an AXI4 master.

    Members
    -------
    mem_rd_req : In(stream.Signature(mem_rd_req_layout()))
    mem_rd_rsp : Out(stream.Signature(bus_bytes * 8))
    mem_wr_req : In(stream.Signature(mem_wr_req_layout(bus_bytes)))
        The simple port, as the accelerator drives it: requests at any byte address of at most
        ``bus_bytes`` bytes (``nbytes`` larger than that is not supported); read responses in
        request order, low ``nbytes`` bytes the data, the others zero.
    idle : Out(1)
        No read or write in flight: every accepted read answered and every accepted write's B
        response received (its data is then in memory).
    error : Out(1)
        Sticky: an R or B response other than OKAY, or a B response with no write in flight.
    m_axi_* : :func:`axi4_master_members`
        The AXI4 master (features in :mod:`rtl.axi`).

    Parameters
    ----------
    bus_bytes : int
        Data width in bytes, a power of two from 4 to 128.
    max_reads : int, default 16
        Reads accepted and not yet answered (the depth of a small FIFO of their offsets and
        sizes); with more in flight ``mem_rd_req.ready`` is low. A memory answering ``L``
        cycles after AR needs ``L + 2`` for a read per cycle.
    max_writes : int, default 8
        Writes accepted whose B responses are outstanding.
    id_width : int, default 1
    axi_id : int, default 0
        The ID on AR and AW (R and B IDs are not checked).

    Latency and throughput
    ----------------------
    A request accepted on cycle ``t`` is on AR (or AW and W) from cycle ``t + 1``; the
    response beat is on ``mem_rd_rsp`` the cycle after the R channel delivered the request's
    last beat. A request per cycle while the slave accepts and answers one beat per cycle;
    a straddling request takes two data beats (two cycles of the R or W channel).
    All AXI outputs are registers, except ``rready`` (from the response register and
    ``mem_rd_rsp.ready``) and ``bready`` (constant 1). ``mem_rd_req.ready`` and
    ``mem_wr_req.ready`` depend combinationally on ``arready``, ``awready`` and ``wready``
    (so a request is taken on the cycle the previous one leaves): for timing closure on a
    board, put an AXI register slice between this port and the interconnect.

    Ordering
    --------
    Reads are answered in request order (one ID). A read that touches a bus word of a write
    still in flight (accepted, B response not yet received) waits until that B response, so
    a LOAD after a STORE of the same bytes reads the stored data, as on the simple port. A
    write is not held behind reads already accepted: a program must not store to bytes a load
    still in flight reads (the accelerator's semaphores order a STORE after a LOAD's done,
    which is after its last response). A read and a write accepted on the same cycle are not
    ordered.
    """

    def __init__(self, bus_bytes: int, *, max_reads: int = 16, max_writes: int = 8,
                 id_width: int = 1, axi_id: int = 0):
        _check_axi_params(bus_bytes, max_reads, max_writes, id_width, axi_id)
        self.bus_bytes = bus_bytes
        self.max_reads, self.max_writes = max_reads, max_writes
        self.id_width, self.axi_id = id_width, axi_id
        super().__init__({
            "mem_rd_req": In(stream.Signature(mem_rd_req_layout())),
            "mem_rd_rsp": Out(stream.Signature(bus_bytes * 8)),
            "mem_wr_req": In(stream.Signature(mem_wr_req_layout(bus_bytes))),
            "idle": Out(1), "error": Out(1),
            **axi4_master_members(bus_bytes, id_width),
        })

    def axi(self, name: str):
        """The AXI signal ``name`` (``"araddr"``, ...)."""
        return getattr(self, f"{AXI_PREFIX}_{name}")

    def elaborate(self, platform):
        m = Module()
        B = self.bus_bytes
        W = 8 * B
        sh = exact_log2(B)
        word_bits = AXI_ADDR_BITS - sh
        page_bits = 12 - sh  # bus-word address bits within a 4 KiB page
        ax = self.axi
        error = Signal()
        m.d.comb += self.error.eq(error)
        for ch in ("ar", "aw"):
            m.d.comb += [ax(f"{ch}id").eq(self.axi_id), ax(f"{ch}size").eq(sh),
                         ax(f"{ch}burst").eq(AXI_BURST_INCR), ax(f"{ch}cache").eq(AXI_CACHE)]

        def decode(addr, nbytes):
            """Byte offset in the first bus word, that word, whether the request spans two
            words and whether those are in different 4 KiB pages."""
            off, word = addr[:sh], addr[sh:]
            two = (off + nbytes) > B
            split = two & ((word + 1)[:page_bits] == 0)
            return off, word, two, split

        def address_stage(ch: str):
            """The AR or AW register: one burst (``len`` 0 or 1), or two single-beat bursts
            (``more``: the second, at the next word, follows). Returns (free, load): whether
            it takes a new request this cycle, and a function that loads one."""
            valid, blen, more = (Signal(name=f"{ch}_{n}") for n in ("valid", "len", "more"))
            word = Signal(word_bits, name=f"{ch}_word")
            m.d.comb += [ax(f"{ch}valid").eq(valid), ax(f"{ch}addr").eq(Cat(Const(0, sh), word)),
                         ax(f"{ch}len").eq(blen)]
            done = valid & ax(f"{ch}ready")
            with m.If(done):
                with m.If(more):
                    m.d.sync += [word.eq(word + 1), more.eq(0)]
                with m.Else():
                    m.d.sync += valid.eq(0)

            def load(req_word, two, split):
                m.d.sync += [valid.eq(1), word.eq(req_word), blen.eq(two & ~split),
                             more.eq(split)]
            return ~valid | (done & ~more), load

        # ---- writes in flight: (first word, two words, two B responses) per request, in
        # acceptance order, until their last B response; reads of their words wait
        N = self.max_writes
        wt_valid = [Signal(name=f"wt{i}_valid") for i in range(N)]
        wt_word = [Signal(word_bits, name=f"wt{i}_word") for i in range(N)]
        wt_two = [Signal(name=f"wt{i}_two") for i in range(N)]
        wt_split = [Signal(name=f"wt{i}_split") for i in range(N)]
        wt_head, wt_tail = Signal(range(N)), Signal(range(N))

        # ---- read requests -> AR, and their offsets/sizes into the response FIFO
        rq = self.mem_rd_req.p
        r_off, r_word, r_two, r_split = decode(rq.addr, rq.nbytes)
        raw = Cat(*(wt_valid[i] & ((r_word == wt_word[i]) |
                                   (r_two & (r_word + 1 == wt_word[i])) |
                                   (wt_two[i] & (r_word == wt_word[i] + 1)))
                    for i in range(N))).any()
        m.submodules.rd_meta = meta = SyncFIFO(width=sh + 9, depth=self.max_reads)
        ar_free, ar_load = address_stage("ar")
        rd_ok = ar_free & meta.w_rdy & ~raw
        rd_take = self.mem_rd_req.valid & rd_ok
        m.d.comb += [self.mem_rd_req.ready.eq(rd_ok), meta.w_en.eq(rd_take),
                     meta.w_data.eq(Cat(r_off, rq.nbytes, r_two))]
        with m.If(rd_take):
            ar_load(r_word, r_two, r_split)

        # ---- R beats -> one response per request (first of two beats held), registered
        h_off, h_nbytes, h_two = meta.r_data[:sh], meta.r_data[sh:sh + 8], meta.r_data[sh + 8]
        first, hold = Signal(), Signal(W)
        out_valid, out_data = Signal(), Signal(W)
        rsp = self.mem_rd_rsp
        m.d.comb += [rsp.valid.eq(out_valid), rsp.payload.eq(out_data)]
        take_first = h_two & ~first
        rready = meta.r_rdy & (take_first | ~out_valid | rsp.ready)
        r_hs = ax("rvalid") & rready
        rdata = ax("rdata")
        wide = Cat(Mux(h_two, hold, rdata), Mux(h_two, rdata, 0))
        aligned = (wide >> Cat(Const(0, 3), h_off))[:W]
        keep = Cat(*((h_nbytes > i).replicate(8) for i in range(B)))
        m.d.comb += ax("rready").eq(rready)
        with m.If(rsp.valid & rsp.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(r_hs):
            with m.If(ax("rresp") != AXI_RESP_OKAY):
                m.d.sync += error.eq(1)
            with m.If(take_first):
                m.d.sync += [hold.eq(rdata), first.eq(1)]
            with m.Else():
                m.d.comb += meta.r_en.eq(1)
                m.d.sync += [first.eq(0), out_valid.eq(1), out_data.eq(aligned & keep)]

        # ---- write requests -> AW, and W beats with the data on its lanes and strobes
        wq = self.mem_wr_req.p
        w_off, w_word, w_two, w_split = decode(wq.addr, wq.nbytes)
        w_lanes = (Cat(wq.wdata, Const(0, W)) << Cat(Const(0, 3), w_off))[:2 * W]
        w_strb = (Cat(*(wq.nbytes > i for i in range(B)), Const(0, B)) << w_off)[:2 * B]
        aw_free, aw_load = address_stage("aw")
        w_valid, w_beat, w_two_q, w_split_q = Signal(), Signal(), Signal(), Signal()
        w_data, w_mask = Signal(2 * W), Signal(2 * B)
        w_end = ~w_two_q | w_beat
        m.d.comb += [ax("wvalid").eq(w_valid),
                     ax("wdata").eq(Mux(w_beat, w_data[W:], w_data[:W])),
                     ax("wstrb").eq(Mux(w_beat, w_mask[B:], w_mask[:B])),
                     ax("wlast").eq(w_end | w_split_q)]
        w_hs = w_valid & ax("wready")
        with m.If(w_hs):
            with m.If(w_end):
                m.d.sync += w_valid.eq(0)
            with m.Else():
                m.d.sync += w_beat.eq(1)
        w_free = ~w_valid | (w_hs & w_end)
        wt_free = ~Array(wt_valid)[wt_tail]
        wr_ok = aw_free & w_free & wt_free
        wr_take = self.mem_wr_req.valid & wr_ok
        m.d.comb += self.mem_wr_req.ready.eq(wr_ok)
        with m.If(wr_take):
            aw_load(w_word, w_two, w_split)
            m.d.sync += [w_valid.eq(1), w_beat.eq(0), w_two_q.eq(w_two), w_split_q.eq(w_split),
                         w_data.eq(w_lanes), w_mask.eq(w_strb), wt_tail.eq(_incr(wt_tail, N))]
            for i in range(N):
                with m.If(wt_tail == i):
                    m.d.sync += [wt_valid[i].eq(1), wt_word[i].eq(w_word), wt_two[i].eq(w_two),
                                 wt_split[i].eq(w_split)]

        # ---- B responses retire the oldest write (the second of its two when split)
        m.d.comb += ax("bready").eq(1)
        b_first = Signal()
        head_valid = Array(wt_valid)[wt_head]
        with m.If(ax("bvalid")):
            with m.If((ax("bresp") != AXI_RESP_OKAY) | ~head_valid):
                m.d.sync += error.eq(1)
            with m.If(head_valid):
                with m.If(Array(wt_split)[wt_head] & ~b_first):
                    m.d.sync += b_first.eq(1)
                with m.Else():
                    m.d.sync += [b_first.eq(0), wt_head.eq(_incr(wt_head, N))]
                    for i in range(N):
                        with m.If(wt_head == i):
                            m.d.sync += wt_valid[i].eq(0)

        m.d.comb += self.idle.eq((meta.level == 0) & ~out_valid & ~Cat(*wt_valid).any())
        return m


class AxiAccelerator(wiring.Component):
    """:class:`~rtl.accelerator.Accelerator` with AXI4 master memory ports: the DMA's
    (:class:`AxiBridge`) and, with the lookup engine, its table memory's
    (:class:`rtl.lookup.axi.LookupAxiBridge`).

    Members
    -------
    cmd : In(stream.Signature(isa.WORD_BITS))
        Binary ``hwsim.isa`` commands.
    retire : Out(RETIRE_BITS)
        Per-unit completion pulses, as :class:`~rtl.accelerator.Accelerator`'s. A STORE retires
        when the bridge accepted its last write, possibly before the data is in memory; a
        SCATTER once every row write's B response came back.
    idle : Out(1)
        The accelerator is idle (nothing queued, running or offered) and so are the bridges:
        every write's B response came back, so all stored data is in memory.
    error : Out(1)
        Sticky: an unsupported command was seen (the accelerator's flag).
    axi_error : Out(1)
        Sticky: an AXI response other than OKAY, or a protocol error, on either master (the
        bridges' ``error``).
    lk_busy : Out(1)
        With the lookup engine: high while a GATHER or SCATTER runs (from the cycle after its
        start to its done cycle), for traces and the co-simulation's timing.
    m_axi_* : :func:`axi4_master_members`
        With one DRAM channel (``dram.channels == 1``): the DMA's AXI4 master, ``bus_bytes * 8``
        data bits, 32-bit addresses (features in :mod:`rtl.axi`).
    m_axi_ch<c>_* : :func:`axi4_master_members`
        With several DRAM channels: one AXI4 master per channel (:func:`dma_prefixes`),
        ``bus_bytes / channels * 8`` data bits, 64-bit channel addresses, the DMA's requests
        split over them by hwsim's channel interleave (:mod:`rtl.channels`).
    m_axi_lk_* : :func:`axi4_master_members`
        With the lookup engine: its table memory's AXI4 master, ``row_bytes * 8`` data bits,
        the row-buffer tag as ID, the tier on ``AxUSER`` (features in :mod:`rtl.lookup.axi`).
        The same address space as ``m_axi``.

    Parameters
    ----------
    config : AcceleratorConfig
    pe_module : str, optional
        As :class:`~rtl.accelerator.Accelerator`'s.
    lookup : bool, default True
        Build the lookup engine and its master. Without it lookup commands are refused
        (``error``): a SAT-only top.
    row_bytes, slots : int
        The lookup engine's (:class:`~rtl.accelerator.Accelerator`).
    max_reads, max_writes, id_width, axi_id
        The DMA bridge's (:class:`AxiBridge`), or each channel's
        (:class:`~rtl.channels.ChannelBridge`; the splitter remembers ``2 * max_reads``
        reads).

    Raises
    ------
    ValueError
        Several channels the RTL cannot split (:func:`rtl.channels.check_channels`).

    Notes
    -----
    Clock and reset are the ``sync`` domain's (``clk``, ``rst`` active high, synchronous); the
    AXI ports run on that clock (``ACLK``; ``ARESETn`` is ``~rst``). Cycle counts depend on
    the memory: ``config.dram`` describes the fixed-latency model hwsim's timing uses, not the
    AXI slave; a lookup command takes what hwsim's tier of
    :func:`rtl.lookup.axi.fixed_latency_tier` says behind a fixed-latency slave.
    """

    def __init__(self, config: AcceleratorConfig, *, pe_module: str | None = None,
                 lookup: bool = True, row_bytes: int = ROW_BYTES, slots: int = SLOTS,
                 max_reads: int = 16, max_writes: int = 8, id_width: int = 1, axi_id: int = 0):
        from .lookup.axi import LookupAxiBridge  # rtl.lookup.axi builds on this module

        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        channels = config.dram.channels
        bus = config.dram.bus_bytes
        if channels > 1:
            bus = channel_bytes(check_channels(config))
        _check_axi_params(bus, max_reads, max_writes, id_width, axi_id)
        self.config, self.pe_module, self.lookup = config, pe_module, lookup
        self.row_bytes, self.slots = row_bytes, slots
        self.bridge_params = {"max_reads": max_reads, "max_writes": max_writes,
                              "id_width": id_width, "axi_id": axi_id}
        self.lk_bridge = (LookupAxiBridge(slots=slots, row_bytes=row_bytes) if lookup
                          else None)
        lk = self.lk_bridge
        self.prefixes = dma_prefixes(config)
        self.addr_bits = AXI_ADDR_BITS if channels == 1 else CHANNEL_ADDR_BITS
        self.master_bytes = bus
        super().__init__({
            "cmd": In(stream.Signature(isa.WORD_BITS)),
            "retire": Out(RETIRE_BITS), "idle": Out(1), "error": Out(1), "axi_error": Out(1),
            **({"lk_busy": Out(1)} if lookup else {}),
            **{name: member for prefix in self.prefixes
               for name, member in axi4_master_members(bus, id_width, prefix,
                                                       addr_bits=self.addr_bits).items()},
            **(axi4_master_members(lk.bus_bytes, lk.id_width, lk.prefix, lk.user_width)
               if lookup else {}),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Accelerator(self.config, pe_module=self.pe_module,
                                               row_bytes=self.row_bytes, slots=self.slots,
                                               lookup=self.lookup)
        connect(m, wiring.flipped(self.cmd), core.cmd)
        cfg, bp = self.config, self.bridge_params
        if len(self.prefixes) == 1:
            m.submodules.axi = port = AxiBridge(cfg.dram.bus_bytes, **bp)
            masters, others = [port], []
        else:  # one master per channel behind the splitter (rtl.channels)
            g = channel_interleave(cfg)
            m.submodules.split = port = ChannelSplitter(
                cfg.dram.bus_bytes, len(self.prefixes), g, max_reads=2 * bp["max_reads"])
            masters, others = [], [port]
            for c, prefix in enumerate(self.prefixes):
                m.submodules[f"axi_ch{c}"] = bridge = ChannelBridge(
                    self.master_bytes, cfg.dram.bus_bytes, g, prefix=prefix,
                    addr_bits=self.addr_bits, **bp)
                for name in ("mem_rd_req", "mem_wr_req"):
                    connect(m, getattr(port.ch[c], name), getattr(bridge, name))
                connect(m, bridge.mem_rd_rsp, port.ch[c].mem_rd_rsp)
                masters.append(bridge)
        connect(m, core.mem_rd_req, port.mem_rd_req)
        connect(m, port.mem_rd_rsp, core.mem_rd_rsp)
        connect(m, core.mem_wr_req, port.mem_wr_req)
        bridges = [(bridge, axi4_master_members(self.master_bytes, bp["id_width"], prefix,
                                                addr_bits=self.addr_bits))
                   for bridge, prefix in zip(masters, self.prefixes, strict=True)]
        idle = core.idle & Cat(*(b.idle for b in masters + others)).all()
        error = Cat(*(b.error for b in masters)).any()
        if self.lookup:
            m.submodules.axi_lk = lk = self.lk_bridge
            for channel in ("lk_rd_req", "lk_wr_req"):
                connect(m, getattr(core, channel), getattr(lk, channel))
            for channel in ("lk_rd_rsp", "lk_wr_rsp"):
                connect(m, getattr(lk, channel), getattr(core, channel))
            m.d.comb += self.lk_busy.eq(core.lk_busy)
            bridges.append((lk, axi4_master_members(lk.bus_bytes, lk.id_width, lk.prefix,
                                                    lk.user_width)))
            idle, error = idle & lk.idle, error | lk.error
        m.d.comb += [self.retire.eq(core.retire), self.idle.eq(idle),
                     self.error.eq(core.error), self.axi_error.eq(error)]
        for source, members in bridges:
            for name, member in members.items():
                ours, theirs = getattr(self, name), getattr(source, name)
                m.d.comb += ours.eq(theirs) if member.flow == Out else theirs.eq(ours)
        return m
