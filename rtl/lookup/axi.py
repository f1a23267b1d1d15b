"""The lookup engine's table memory as an AXI4 master: the ``lk_*`` channels to ``m_axi_lk``.

:class:`~rtl.lookup.unit.LookupUnit` reads table rows on ``lk_rd_req``/``lk_rd_rsp`` (answers
in any order, by ``tag``: :mod:`rtl.lookup.gather`) and writes them on
``lk_wr_req``/``lk_wr_rsp`` (:mod:`rtl.lookup.scatter`). :class:`LookupAxiBridge` turns them
into a second AXI4 master beside the DMA's (:class:`rtl.axi.AxiBridge`), the one
:class:`rtl.axi.AxiAccelerator` exposes as ``m_axi_lk_*``.

AXI4 as issued (AMBA AXI4, IHI 0022):

- data ``bus_bytes * 8`` bits (default: the engine's ``row_bytes``, 512 bits, one beat an
  aligned row, the width of a DDR4 MIG's or the AXI interconnect's widest port); addresses 32
  bits (:data:`rtl.axi.AXI_ADDR_BITS`, the engine's address width);
- **IDs are the row-buffer tag** (``tag_bits(slots)`` bits): reads and writes complete in any
  order and each response finds its slot by ``RID``/``BID``. Every slot has at most one read
  and one write in flight (the engine's rule; a second is flagged in ``error``);
- a row is one INCR burst of full-width beats from the bus word that holds its first byte to
  the one that holds its last (``AxLEN = beats - 1``); a row whose words cross a 4 KiB page is
  two bursts with the same ID (the first up to the page end), never one that crosses;
- writes carry the row shifted to its byte lanes with ``WSTRB`` set on exactly its bytes;
- R beats are assembled per ID (a beat counter and a held partial row per slot), so read data
  **interleaved across IDs** is handled, as AXI4 allows (cocotbext-axi's ``AxiRam`` does not
  interleave; the bench's fixed-latency slave may). ``RLAST`` is not needed: a row is complete
  after the beats its request asked for;
- ``AxUSER`` (3 bits) carries the command's ``tier``. AXI has no tier: this one master serves
  every tier, and a board shell may steer by ``AxUSER`` or by address. On a board with several
  memories (DDR4, HBM, CXL) one master per tier is the follow-up: the engine runs one command,
  on one tier, at a time;
- ``AxCACHE = 0b0011``, ``AxPROT``, ``AxLOCK``, ``AxQOS`` 0; responses other than OKAY are
  not retried: they set the sticky ``error`` flag (the data is passed on).

Timing: **one request a cycle, a write before a read**, as hwsim's one request port
(``lookup.request_ports = 1``) and the simple port's bench take them. A request accepted on
cycle ``t`` is on AR (or AW and W) on cycle ``t + 1`` (:attr:`LookupAxiBridge.request_latency`);
a row's answer is on ``lk_rd_rsp`` the cycle after its last R beat, an acknowledgement on
``lk_wr_rsp`` the cycle after its B (:attr:`LookupAxiBridge.response_latency`). So a slave that
moves one beat a cycle on one data path shared by reads and writes, in address-handshake order,
with fixed latencies, times a GATHER or SCATTER exactly as hwsim's tier of
:func:`fixed_latency_tier`.

Ordering: none between reads and writes. The engine keeps its own: a SCATTER reads a row again
only after the B response of its write (:mod:`rtl.lookup.scatter`), and every command waits for
its last answer or acknowledgement. Against the DMA's master (one address space, two masters)
the accelerator's semaphores order commands; a STORE retires when the DMA bridge accepted its
writes (:class:`rtl.axi.AxiAccelerator`), so a GATHER of bytes a STORE just wrote needs a
memory that orders the two masters' accesses (a single-port controller does).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hwsim.config import MemoryTier

from ..axi import AXI_BURST_INCR, AXI_CACHE, AXI_RESP_OKAY, axi4_master_members
from .gather import lk_rd_req_layout, lk_rd_rsp_layout
from .scatter import lk_wr_req_layout, lk_wr_rsp_layout
from .unit import ROW_BYTES, SLOTS, tag_bits

__all__ = ["LK_PREFIX", "LookupAxiBridge", "fixed_latency_tier"]

LK_PREFIX = "m_axi_lk"
"""Port prefix of the lookup engine's AXI4 master."""

_PAGE_BYTES = 4096


def fixed_latency_tier(clock_mhz: float, bus_bytes: int, read_latency: int,
                       write_latency: int, *, name: str = "axi", outstanding: int = 64
                       ) -> MemoryTier:
    """The hwsim tier that times the lookup engine as :class:`LookupAxiBridge` in front of a
    fixed-latency AXI4 slave.

    The slave: it takes an AR, AW and W beat every cycle; it moves one ``bus_bytes`` beat a
    cycle on one data path that reads and writes share (a single-ported memory, as a DRAM
    channel's data bus), slots given in address-handshake order; a read's beat ``k`` is on R
    ``read_latency`` cycles after its slot, a write's B ``write_latency`` cycles after its last
    beat's slot. The tier: one channel and one bank, no row misses, ``access_bytes`` the bus
    word (a request moves the words its row touches: its beats), one word a cycle each way,
    latencies the slave's plus the bridge's two cycles (request to AR/AW, last R beat or B to
    the engine). ``outstanding`` must not bind: at least the engine's slots.

    Raises
    ------
    ValueError
        Latencies below 1 cycle (the slave answers on a later cycle than the handshake).
    """
    for what, v in (("read_latency", read_latency), ("write_latency", write_latency)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{what} must be a positive integer of cycles, not {v!r}")
    extra = LookupAxiBridge.request_latency + LookupAxiBridge.response_latency
    ns = 1000.0 / clock_mhz
    gbps = bus_bytes * clock_mhz / 1000.0
    return MemoryTier(
        name=name, kind="sram", capacity_gib=4.0, channels=1, banks=1, row_bytes=_PAGE_BYTES,
        interleave_bytes=_PAGE_BYTES, access_bytes=bus_bytes, bandwidth_gbps=gbps,
        write_bandwidth_gbps=gbps, read_latency_ns=(read_latency + extra) * ns,
        write_latency_ns=(write_latency + extra) * ns, row_miss_ns=0.0, outstanding=outstanding,
        read_pj_per_byte=0.0, write_pj_per_byte=0.0)


def _bits(n: int) -> int:
    return max(1, ceil_log2(n + 1))


class LookupAxiBridge(wiring.Component):
    """The lookup engine's table-memory channels (slave side) to an AXI4 master.

    Members
    -------
    lk_rd_req : In(stream.Signature(lk_rd_req_layout(slots)))
    lk_rd_rsp : Out(stream.Signature(lk_rd_rsp_layout(slots, row_bytes)))
    lk_wr_req : In(stream.Signature(lk_wr_req_layout(slots, row_bytes)))
    lk_wr_rsp : Out(stream.Signature(lk_wr_rsp_layout(slots)))
        As :class:`~rtl.lookup.unit.LookupUnit` drives them: rows of 1 to ``row_bytes`` bytes
        at any byte address; answers (the row in the low bytes, the others zero) and
        acknowledgements by tag, in the order the slave completes them. ``ready`` on the
        responses may be low (the R or B channel then waits).
    idle : Out(1)
        No row read or write in flight and no answer or acknowledgement held.
    error : Out(1)
        Sticky: an R or B response other than OKAY, a response for an ID with nothing in
        flight, a request whose tag already has one in flight, or a row of 0 or more than
        ``row_bytes`` bytes.
    m_axi_lk_* : :func:`rtl.axi.axi4_master_members`
        The AXI4 master (``prefix``): ``bus_bytes * 8`` data bits, ``tag_bits(slots)`` ID
        bits, 3 ``AxUSER`` bits (the tier). Features in :mod:`rtl.lookup.axi`.

    Parameters
    ----------
    slots : int
        The engine's row-buffer slots (IDs).
    row_bytes : int
        Widest row, at most 4096 bytes.
    bus_bytes : int, optional
        Data width in bytes, a power of two from 4 to 128; default ``row_bytes``.
    write_rows : int, default 2
        Rows of write data queued for the W channel: a write is accepted while the W channel
        still sends an earlier one's beats.
    prefix : str, default :data:`LK_PREFIX`

    Attributes
    ----------
    request_latency : int
        Cycles from a request's acceptance to its AR or AW and first W beat (1).
    response_latency : int
        Cycles from a row's last R beat, or a write's B, to ``lk_rd_rsp`` or ``lk_wr_rsp`` (1).

    Notes
    -----
    Throughput: a request a cycle (a write before a read on the same cycle); a row's AR or AW
    takes one cycle (two at a 4 KiB page), its W beats one a cycle. A row that spans several
    bus words takes as many R or W beats: timing then equals :func:`fixed_latency_tier`'s
    while the W queue does not fill and no row crosses a page. AXI outputs are registers
    except ``rready``, ``bready`` (from the held answer or acknowledgement and ``ready``) and
    the W channel (the head of the W queue); ``lk_rd_req.ready`` depends on ``arready`` and on
    the write request (one request a cycle): for timing closure on a board put an AXI register
    slice between this port and the interconnect.
    """

    request_latency = 1
    response_latency = 1

    def __init__(self, *, slots: int = SLOTS, row_bytes: int = ROW_BYTES,
                 bus_bytes: int | None = None, write_rows: int = 2, prefix: str = LK_PREFIX):
        for what, v in (("slots", slots), ("row_bytes", row_bytes), ("write_rows", write_rows)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{what} must be a positive integer, not {v!r}")
        if row_bytes > _PAGE_BYTES:
            raise ValueError(f"row_bytes must be at most {_PAGE_BYTES} (a row spans at most "
                             f"two 4 KiB pages), not {row_bytes!r}")
        bus_bytes = row_bytes if bus_bytes is None else bus_bytes
        if not isinstance(bus_bytes, int) or bus_bytes not in (4, 8, 16, 32, 64, 128):
            raise ValueError(f"bus_bytes must be a power of two from 4 to 128 (AXI4 data of 32 "
                             f"to 1024 bits), not {bus_bytes!r}")
        # beats of a row at the last byte of a word (at least 2: a held beat per slot)
        self.max_beats = max(2, -(-(row_bytes + bus_bytes - 1) // bus_bytes))
        if self.max_beats > 256:
            raise ValueError(f"a row of {row_bytes} bytes takes up to {self.max_beats} beats of "
                             f"{bus_bytes} bytes, more than an AXI4 burst's 256")
        self.slots, self.row_bytes, self.bus_bytes = slots, row_bytes, bus_bytes
        self.write_rows, self.prefix = write_rows, prefix
        self.id_width = tag_bits(slots)
        self.user_width = lk_rd_req_layout(slots)["tier"].width
        super().__init__({
            "lk_rd_req": In(stream.Signature(lk_rd_req_layout(slots))),
            "lk_rd_rsp": Out(stream.Signature(lk_rd_rsp_layout(slots, row_bytes))),
            "lk_wr_req": In(stream.Signature(lk_wr_req_layout(slots, row_bytes))),
            "lk_wr_rsp": Out(stream.Signature(lk_wr_rsp_layout(slots))),
            "idle": Out(1), "error": Out(1),
            **axi4_master_members(bus_bytes, self.id_width, prefix, self.user_width),
        })

    def axi(self, name: str):
        """The AXI signal ``name`` (``"araddr"``, ...)."""
        return getattr(self, f"{self.prefix}_{name}")

    def elaborate(self, platform):
        m = Module()
        B, R, S, MB = self.bus_bytes, self.row_bytes, self.slots, self.max_beats
        sh = exact_log2(B)
        page_bits = exact_log2(_PAGE_BYTES) - sh  # bus-word address bits within a 4 KiB page
        beat_bits = _bits(MB)
        ax = self.axi
        error = Signal()
        m.d.comb += self.error.eq(error)
        for ch in ("ar", "aw"):
            m.d.comb += [ax(f"{ch}size").eq(sh), ax(f"{ch}burst").eq(AXI_BURST_INCR),
                         ax(f"{ch}cache").eq(AXI_CACHE)]

        def decode(ch, addr, nbytes):
            """The row's byte offset in its first bus word, that word, its beats, the beats of
            its first burst (to the page end), whether there is a second, and whether its size
            is out of range."""
            off, word = addr[:sh], addr[sh:]
            bad = (nbytes == 0) | (nbytes > R)
            n = Mux(nbytes == 0, 1, Mux(nbytes > R, R, nbytes))  # a bad size: still a legal burst
            beats = Signal(beat_bits, name=f"{ch}_beats")
            m.d.comb += beats.eq((off + n + (B - 1)) >> sh)
            to_end = (1 << page_bits) - word[:page_bits]
            split = beats > to_end
            return off, word, beats, Mux(split, to_end, beats), split, bad

        def address_stage(ch: str):
            """The AR or AW register: a burst and, for a row across a page, the second one
            behind it. Returns (free, load): whether it takes a row this cycle, and a function
            that loads one."""
            valid, more = Signal(name=f"{ch}_valid"), Signal(name=f"{ch}_more")
            word = Signal(len(ax(f"{ch}addr")) - sh, name=f"{ch}_word")
            word2 = Signal.like(word, name=f"{ch}_word2")
            blen, blen2 = Signal(8, name=f"{ch}_len"), Signal(8, name=f"{ch}_len2")
            aid, user = Signal(self.id_width, name=f"{ch}_id"), Signal(self.user_width,
                                                                       name=f"{ch}_user")
            m.d.comb += [ax(f"{ch}valid").eq(valid), ax(f"{ch}addr").eq(Cat(Const(0, sh), word)),
                         ax(f"{ch}len").eq(blen), ax(f"{ch}id").eq(aid),
                         ax(f"{ch}user").eq(user)]
            done = valid & ax(f"{ch}ready")
            with m.If(done):
                with m.If(more):
                    m.d.sync += [word.eq(word2), blen.eq(blen2), more.eq(0)]
                with m.Else():
                    m.d.sync += valid.eq(0)

            def load(req_word, beats, first, split, tag, tier):
                m.d.sync += [valid.eq(1), word.eq(req_word), blen.eq(first - 1),
                             word2.eq(req_word + first), blen2.eq(beats - first - 1),
                             more.eq(split), aid.eq(tag), user.eq(tier)]
            return ~valid | (done & ~more), load

        one = Const(1, S)
        rd_busy, wr_busy, b_more = Signal(S), Signal(S), Signal(S)  # per slot (ID)
        rd_set, rd_clr, wr_set, wr_clr = Signal(S), Signal(S), Signal(S), Signal(S)
        more_set, more_clr = Signal(S), Signal(S)
        m.d.sync += [rd_busy.eq((rd_busy | rd_set) & ~rd_clr),
                     wr_busy.eq((wr_busy | wr_set) & ~wr_clr),
                     b_more.eq((b_more | more_set) & ~more_clr)]

        # ---- write requests -> AW, and the row on its lanes with strobes into the W queue
        wq = self.lk_wr_req.p
        w_off, w_word, w_beats, w_first, w_split, w_bad = decode("w", wq.addr, wq.nbytes)
        lanes = 8 * B * MB
        entry = data.StructLayout({"data": lanes, "strb": B * MB, "beats": beat_bits,
                                   "first": beat_bits})
        m.submodules.w_rows = wfifo = SyncFIFO(width=entry.size, depth=self.write_rows)
        w_in = data.View(entry, wfifo.w_data)
        w_keep = Signal(R, name="w_keep")  # the row's bytes
        m.d.comb += w_keep.eq(Cat(*(wq.nbytes > i for i in range(R))))
        # bytes past nbytes are zero on W (not merely unstrobed: never X in simulation)
        w_row = wq.data & Cat(*(k.replicate(8) for k in w_keep))
        m.d.comb += [w_in.data.eq((Cat(w_row, Const(0, lanes - 8 * R))
                                   << Cat(Const(0, 3), w_off))[:lanes]),
                     w_in.strb.eq((Cat(w_keep, Const(0, B * MB - R)) << w_off)[:B * MB]),
                     w_in.beats.eq(w_beats), w_in.first.eq(w_first)]
        aw_free, aw_load = address_stage("aw")
        wr_ok = aw_free & wfifo.w_rdy
        wr_take = self.lk_wr_req.valid & wr_ok
        m.d.comb += [self.lk_wr_req.ready.eq(wr_ok), wfifo.w_en.eq(wr_take)]
        with m.If(wr_take):
            aw_load(w_word, w_beats, w_first, w_split, wq.tag, wq.tier)
            m.d.comb += [wr_set.eq(one << wq.tag), more_set.eq(Mux(w_split, one << wq.tag, 0))]
            with m.If(w_bad | wr_busy.bit_select(wq.tag, 1)):
                m.d.sync += error.eq(1)

        # ---- the W channel: the queue's head, a beat a cycle (WLAST at each burst's end)
        head = data.View(entry, wfifo.r_data)
        wbeat = Signal(range(MB), name="w_beat")
        w_end = wbeat == head.beats - 1
        m.d.comb += [ax("wvalid").eq(wfifo.r_rdy),
                     ax("wdata").eq(head.data.word_select(wbeat, 8 * B)),
                     ax("wstrb").eq(head.strb.word_select(wbeat, B)),
                     ax("wlast").eq(w_end | (wbeat == head.first - 1))]
        with m.If(ax("wvalid") & ax("wready")):
            with m.If(w_end):
                m.d.comb += wfifo.r_en.eq(1)
                m.d.sync += wbeat.eq(0)
            with m.Else():
                m.d.sync += wbeat.eq(wbeat + 1)

        # ---- B responses -> acknowledgements by ID (the second B of a row split at a page)
        ack = self.lk_wr_rsp
        ack_valid, ack_tag = Signal(), Signal(self.id_width)
        m.d.comb += [ack.valid.eq(ack_valid), ack.p.tag.eq(ack_tag)]
        bready = ~ack_valid | ack.ready
        bid = ax("bid")
        m.d.comb += ax("bready").eq(bready)
        with m.If(ack.valid & ack.ready):
            m.d.sync += ack_valid.eq(0)
        with m.If(ax("bvalid") & bready):
            with m.If((ax("bresp") != AXI_RESP_OKAY) | ~wr_busy.bit_select(bid, 1)):
                m.d.sync += error.eq(1)
            with m.If(b_more.bit_select(bid, 1)):
                m.d.comb += more_clr.eq(one << bid)
            with m.Else():
                m.d.comb += wr_clr.eq(one << bid)
                m.d.sync += [ack_valid.eq(1), ack_tag.eq(bid)]

        # ---- read requests -> AR, and each slot's offset, size and beats
        rq = self.lk_rd_req.p
        r_off, r_word, r_beats, r_first, r_split, r_bad = decode("r", rq.addr, rq.nbytes)
        meta = data.StructLayout({"off": sh, "nbytes": _bits(R), "beats": beat_bits})
        m.submodules.rd_meta = meta_mem = Memory(shape=meta, depth=S, init=[])
        meta_wr, meta_rd = meta_mem.write_port(), meta_mem.read_port(domain="comb")
        ar_free, ar_load = address_stage("ar")
        rd_ok = ar_free & ~(self.lk_wr_req.valid & wr_ok)  # one request a cycle, writes first
        rd_take = self.lk_rd_req.valid & rd_ok
        m.d.comb += [self.lk_rd_req.ready.eq(rd_ok),
                     meta_wr.addr.eq(rq.tag), meta_wr.en.eq(rd_take),
                     meta_wr.data.off.eq(r_off), meta_wr.data.nbytes.eq(rq.nbytes),
                     meta_wr.data.beats.eq(r_beats)]
        with m.If(rd_take):
            ar_load(r_word, r_beats, r_first, r_split, rq.tag, rq.tier)
            m.d.comb += rd_set.eq(one << rq.tag)
            with m.If(r_bad | rd_busy.bit_select(rq.tag, 1)):
                m.d.sync += error.eq(1)

        # ---- R beats, assembled per ID: a beat count and the row's earlier beats per slot
        rsp = self.lk_rd_rsp
        out_valid, out_tag, out_data = Signal(), Signal(self.id_width), Signal(8 * R)
        m.d.comb += [rsp.valid.eq(out_valid), rsp.p.tag.eq(out_tag), rsp.p.data.eq(out_data)]
        rready = ~out_valid | rsp.ready
        r_hs = ax("rvalid") & rready
        rid, rdata = ax("rid"), ax("rdata")
        m.d.comb += [ax("rready").eq(rready), meta_rd.addr.eq(rid)]
        m.submodules.rd_count = count_mem = Memory(shape=beat_bits, depth=S, init=[])
        count_wr, count_rd = count_mem.write_port(), count_mem.read_port(domain="comb")
        m.submodules.rd_hold = hold_mem = Memory(shape=8 * B * (MB - 1), depth=S, init=[])
        hold_wr = hold_mem.write_port(granularity=8 * B)
        hold_rd = hold_mem.read_port(domain="comb")
        got = count_rd.data
        row_end = got == meta_rd.data.beats - 1
        m.d.comb += [count_rd.addr.eq(rid), hold_rd.addr.eq(rid),
                     count_wr.addr.eq(rid), count_wr.en.eq(r_hs),
                     count_wr.data.eq(Mux(row_end, 0, got + 1)),
                     hold_wr.addr.eq(rid), hold_wr.data.eq(rdata.replicate(MB - 1)),
                     hold_wr.en.eq(Mux(r_hs & ~row_end, Const(1, MB) << got, 0)[:MB - 1])]
        beats = [Mux(got == j, rdata, hold_rd.data.word_select(j, 8 * B)) for j in range(MB - 1)]
        wide = Cat(*beats, rdata)
        aligned = (wide >> Cat(Const(0, 3), meta_rd.data.off))[:8 * R]
        keep = Cat(*((meta_rd.data.nbytes > i).replicate(8) for i in range(R)))
        with m.If(rsp.valid & rsp.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(r_hs):
            with m.If((ax("rresp") != AXI_RESP_OKAY) | ~rd_busy.bit_select(rid, 1)):
                m.d.sync += error.eq(1)
            with m.If(row_end):
                m.d.comb += rd_clr.eq(one << rid)
                m.d.sync += [out_valid.eq(1), out_tag.eq(rid), out_data.eq(aligned & keep)]

        m.d.comb += self.idle.eq((rd_busy == 0) & (wr_busy == 0) & ~out_valid & ~ack_valid
                                 & ~wfifo.r_rdy)
        return m
