"""SCATTER mode 0: the read-modify-write of ``p * dY`` into fp32 gradient rows, in gates.

The model is :mod:`hwsim.units.lookup` (values) and :mod:`hwsim.units.scatter_timing`
(cycles, and the rules this module follows): accesses held in slots until their row's write is
acknowledged, forwarding from a slot whose write has not issued, a wait for one whose write has
not been acknowledged.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from ..buffers import ADDR_BITS, ReadPortSignature
from ..fp32 import fp32_add, fp32_mul
from .gather import _tag_bits, lk_rd_req_layout, lk_rd_rsp_layout
from .stream import TokenBuffers, WordStream, ceil_div, floor_div, modulo, read_arbiter, row_window

__all__ = ["ScatterEngine", "lk_wr_req_layout", "lk_wr_rsp_layout"]

_FIELDS = dict(isa.Scatter.FIELDS)
_DY_BUFFERS = 3
"""Token buffers of dY: the load of token ``t + 2`` may start when token ``t`` starts."""


def lk_wr_req_layout(slots: int, row_bytes: int) -> data.StructLayout:
    """A row write, LSB first: ``addr`` (32, bytes), ``nbytes`` (16), ``tier``, ``tag`` (the
    slot, echoed by the acknowledgement) and ``data`` (the row, little-endian, in the low
    ``nbytes`` bytes)."""
    return data.StructLayout({"addr": 32, "nbytes": 16, "tier": _FIELDS["tier"],
                              "tag": _tag_bits(slots), "data": 8 * row_bytes})


def lk_wr_rsp_layout(slots: int) -> data.StructLayout:
    """A row write's acknowledgement (the row is in memory): its ``tag``."""
    return data.StructLayout({"tag": _tag_bits(slots)})


class ScatterEngine(wiring.Component):
    """SCATTER mode 0 (``G[row[t,k]] += p[t,k] (x) dY[t]``, fp32 rows) over the table memory.

    Admission (:mod:`hwsim.units.scatter_timing`): the next access takes slot ``a mod W`` once
    that slot's previous write is acknowledged; its row index is compared with the rows of the
    held slots (a content-addressed match over the slots that hold the *latest* access to their
    row): a slot whose write has not issued forwards its result (no read), a slot whose write has
    issued stalls admission until its acknowledgement, no match issues a read (tag: the slot).
    The ``G`` lanes take the accesses in order, ``h / G`` cycles each from the cycle after the
    answer, ``row (+) p (x) dY[t]`` into the slot's result; the writes follow in order from the
    cycle after an access's computation (the data: the slot's result). dY streams from VEC into
    three token buffers (:data:`_DY_BUFFERS`). Done the cycle after the last acknowledgement.
    Commands are taken as :meth:`takes` says.

    Parameters
    ----------
    config : AcceleratorConfig
        ``lookup.gather_lanes`` (G) must divide ``vector.lanes`` (L, at least 2), and
        ``lookup.request_ports`` be 1.
    row_bytes : int
        Widest row (``4 * h`` bytes) the engine takes.
    slots : int
        Slots (accesses in flight).

    Members
    -------
    start, base, in_addr, p_addr, out_addr, tokens, chunks, width, tier : In
        As :class:`~rtl.lookup.gather.GatherEngine`'s (``out_addr``: dY).
    busy, done : Out(1)
    rd : Out(ReadPortSignature)
        VEC (row indices, weights, dY).
    lk_rd_req, lk_rd_rsp
        Row reads (:mod:`rtl.lookup.gather`'s layouts).
    lk_wr_req : Out(stream.Signature(lk_wr_req_layout(slots, row_bytes)))
    lk_wr_rsp : In(stream.Signature(lk_wr_rsp_layout(slots)))
        Row writes and their acknowledgements (``ready`` is always high on the latter).
    """

    def __init__(self, config: AcceleratorConfig, *, row_bytes: int, slots: int):
        lk = config.lookup
        L, G = config.vector.lanes, lk.gather_lanes
        if L < 2 or L % G:
            raise ValueError(f"the RTL scatter needs lookup.gather_lanes ({G}) to divide "
                             f"vector.lanes ({L}, at least 2)")
        if lk.request_ports != 1:
            raise ValueError(f"the RTL scatter has one request port, not {lk.request_ports}")
        if row_bytes % (4 * L) or slots < 4:
            raise ValueError("row_bytes must hold whole VEC entries of fp32 and slots be >= 4")
        self.config, self.row_bytes, self.slots = config, row_bytes, slots
        self.lanes, self.G = L, G
        super().__init__({
            "start": In(1), "base": In(32),
            **{f: In(_FIELDS[f]) for f in ("in_addr", "p_addr", "out_addr", "tokens", "chunks",
                                           "width", "tier")},
            "busy": Out(1), "done": Out(1),
            "rd": Out(ReadPortSignature(ADDR_BITS, 32 * L)),
            "lk_rd_req": Out(stream.Signature(lk_rd_req_layout(slots))),
            "lk_rd_rsp": In(stream.Signature(lk_rd_rsp_layout(slots, row_bytes))),
            "lk_wr_req": Out(stream.Signature(lk_wr_req_layout(slots, row_bytes))),
            "lk_wr_rsp": In(stream.Signature(lk_wr_rsp_layout(slots))),
        })

    def window(self, width):
        """Slots a command of rows of ``width`` fp32 elements uses (a Value)."""
        return row_window(self.config.lookup.inflight_kib * 1024, width * 4, self.slots)

    def takes(self, width, chunks):
        """Whether the engine runs a command as :mod:`hwsim.units.scatter_timing` times it:
        rows within ``row_bytes`` of at least two whole VEC entries (``width >= 2 L``;
        ``lookup.min_dy_entries``), at least two chunks a token (``lookup.min_dy_chunks``), the
        window within :attr:`slots`. The last two keep dY's loads (an
        entry a cycle through the VEC port the row indices and weights share, which hwsim does
        not model) ahead of the lanes: a token takes at least ``2 h / G`` lane cycles and needs
        ``h / L`` dY entries."""
        lk = self.config.lookup
        return ((width * 4 <= self.row_bytes) & (modulo(width, self.lanes) == 0)
                & (width >= lk.min_dy_entries * self.lanes) & (chunks >= lk.min_dy_chunks)
                & (self.window(width) <= self.slots))

    def elaborate(self, platform):
        m = Module()
        L, G, S = self.lanes, self.G, self.slots
        hmax = self.row_bytes // 4
        max_beats = hmax // G
        tb = _tag_bits(S)

        # --- the command --------------------------------------------------------------
        run = Signal()
        base, tier = Signal(32), Signal.like(self.tier)
        width, chunks, tokens = (Signal.like(self.width), Signal.like(self.chunks),
                                 Signal.like(self.tokens))
        n = Signal(len(self.tokens) + len(self.chunks))
        W = Signal(range(S + 1))
        beats_last = Signal(range(max_beats))
        n_in = self.tokens * self.chunks
        entries = ceil_div(n_in, L)
        rbytes = Signal(16)

        rows = WordStream(m, "rows", L, self.rd.data, len(n))
        wts = WordStream(m, "p", L, self.rd.data, len(n))
        dy_in = TokenBuffers(m, "dy", L, hmax, self.rd.data, tokens, run, _DY_BUFFERS)
        read_arbiter(m, self.rd, [rows, wts, dy_in], run)

        with m.If(self.start & ~run):
            m.d.sync += [run.eq(n_in != 0), base.eq(self.base), tier.eq(self.tier),
                         width.eq(self.width), chunks.eq(self.chunks), tokens.eq(self.tokens),
                         n.eq(n_in), W.eq(self.window(self.width)), rbytes.eq(self.width * 4),
                         beats_last.eq(floor_div(self.width, G) - 1)]
            m.d.sync += dy_in.begin(self.out_addr, floor_div(self.width, L))
            m.d.sync += rows.begin(self.in_addr, entries, 1)
            m.d.sync += wts.begin(self.p_addr, entries, 0)
            m.d.comb += [self.rd.addr.eq(self.in_addr), self.rd.en.eq(1)]

        def ring_next(v):
            return Mux(v == W - 1, 0, v + 1)

        # --- slots: held, the latest access to its row, write issued, forwarded -----------
        occ, live, written, isfwd = Signal(S), Signal(S), Signal(S), Signal(S)
        row_of = [Signal(32, name=f"row{s}") for s in range(S)]
        src_of = [Signal(range(S), name=f"src{s}") for s in range(S)]
        occ_set, occ_clr = Signal(S), Signal(S)
        live_set, live_clr = Signal(S), Signal(S)
        wr_set = Signal(S)

        # --- admission ------------------------------------------------------------------
        na = Signal.like(n)
        aslot = Signal(range(S))
        match = Signal(S)
        m.d.comb += match.eq(Cat(*[occ[s] & live[s] & (row_of[s] == rows.word)
                                   for s in range(S)]))
        msrc = Signal(range(S))
        for s in reversed(range(S)):
            with m.If(match[s]):
                m.d.comb += msrc.eq(s)
        # the first admission waits until token 0's dY has landed, so the lanes never wait for
        # dY (hwsim's timing starts admission that much later)
        go = Signal()
        go_now = go | dy_in.ready
        m.d.sync += go.eq(run & go_now)
        can = run & (na != n) & rows.valid & ~occ.bit_select(aslot, 1) & go_now
        forward = can & (match != 0) & ((match & written) == 0)
        want_read = can & (match == 0)
        req = self.lk_rd_req
        m.d.comb += [req.valid.eq(want_read),
                     req.p.addr.eq((base + rows.word * rbytes)[:32]), req.p.nbytes.eq(rbytes),
                     req.p.tier.eq(tier), req.p.tag.eq(aslot)]
        admit = forward | (want_read & req.ready)
        m.d.comb += rows.pop.eq(admit)
        one = Const(1, S)
        with m.If(admit):
            m.d.sync += [na.eq(na + 1), aslot.eq(ring_next(aslot))]
            for s in range(S):
                with m.If(aslot == s):
                    m.d.sync += [row_of[s].eq(rows.word), src_of[s].eq(msrc)]
            m.d.comb += [occ_set.eq(one << aslot), live_set.eq(one << aslot)]
        m.d.sync += isfwd.eq(Mux(admit, (isfwd & ~(one << aslot)) | Mux(forward, one << aslot, 0),
                                 isfwd))

        # --- answers into the row buffer -----------------------------------------------
        m.submodules.rowbuf = rowbuf = Memory(shape=8 * self.row_bytes, depth=S, init=[])
        wp = rowbuf.write_port()
        rsp = self.lk_rd_rsp
        filled = Signal(S)
        m.d.comb += [rsp.ready.eq(1), wp.addr.eq(rsp.p.tag), wp.data.eq(rsp.p.data),
                     wp.en.eq(rsp.valid)]
        answered = Mux(rsp.valid, one << rsp.p.tag, 0)

        # --- the accumulate lanes --------------------------------------------------------
        nc = Signal.like(n)
        cslot = Signal(range(S))
        active, beat = Signal(), Signal(range(max_beats))
        k = Signal.like(chunks)
        p_hold = Signal(32)
        ready_row = isfwd.bit_select(cslot, 1) | filled.bit_select(cslot, 1)
        begin = (run & ~active & (nc != na) & ready_row & wts.valid & dy_in.ready)
        on = begin | active
        b = Mux(active, beat, 0)
        p = Mux(active, p_hold, wts.word)
        m.d.comb += wts.pop.eq(begin)
        m.submodules.result = result = Memory(shape=32 * hmax, depth=S, init=[])
        res_wr = result.write_port(granularity=32 * G)
        res_fwd = result.read_port(domain="comb")
        res_out = result.read_port(domain="comb")
        rp = rowbuf.read_port(domain="comb")
        src_slot = Signal(range(S))
        for s in range(S):
            with m.If(cslot == s):
                m.d.comb += src_slot.eq(src_of[s])
        m.d.comb += [rp.addr.eq(cslot), res_fwd.addr.eq(src_slot)]
        old = Mux(isfwd.bit_select(cslot, 1), res_fwd.data, rp.data[:32 * hmax])
        seg = old.word_select(b, 32 * G)
        dy = dy_in.row.word_select(b, 32 * G)
        sums = [fp32_add(m, seg[32 * i:32 * i + 32], fp32_mul(m, p, dy[32 * i:32 * i + 32],
                                                              f"mul{i}"), f"add{i}")
                for i in range(G)]
        m.d.comb += [res_wr.addr.eq(cslot), res_wr.data.eq(Cat(*sums).replicate(max_beats)),
                     res_wr.en.eq(Mux(on, Const(1, max_beats) << b, 0))]
        ends = on & (b == beats_last)
        with m.If(begin):
            m.d.sync += p_hold.eq(wts.word)
        with m.If(on):
            m.d.sync += [active.eq(~ends), beat.eq(b + 1)]
        with m.If(ends):
            last_chunk = k == chunks - 1
            m.d.sync += [nc.eq(nc + 1), cslot.eq(ring_next(cslot)),
                         k.eq(Mux(last_chunk, 0, k + 1))]
            m.d.comb += dy_in.advance.eq(last_chunk)
        freed_row = Mux(ends, one << cslot, 0)
        m.d.sync += filled.eq((filled | answered) & ~freed_row)

        # --- writes, in order ------------------------------------------------------------
        nw = Signal.like(n)
        wslot = Signal(range(S))
        wreq = self.lk_wr_req
        wrow = Signal(32)
        for s in range(S):
            with m.If(wslot == s):
                m.d.comb += wrow.eq(row_of[s])
        m.d.comb += [res_out.addr.eq(wslot), wreq.valid.eq(run & (nw != nc)),
                     wreq.p.addr.eq((base + wrow * rbytes)[:32]), wreq.p.nbytes.eq(rbytes),
                     wreq.p.tier.eq(tier), wreq.p.tag.eq(wslot), wreq.p.data.eq(res_out.data)]
        wtake = wreq.valid & wreq.ready
        with m.If(wtake):
            m.d.sync += [nw.eq(nw + 1), wslot.eq(ring_next(wslot))]
            m.d.comb += wr_set.eq(one << wslot)

        # --- acknowledgements free their slots -------------------------------------------
        ack = self.lk_wr_rsp
        acked = Signal.like(n)
        m.d.comb += ack.ready.eq(1)
        freed = Mux(ack.valid, one << ack.p.tag[:tb], 0)
        m.d.comb += [occ_clr.eq(freed), live_clr.eq(Mux(forward, one << msrc, 0) | freed)]
        with m.If(ack.valid):
            m.d.sync += acked.eq(acked + 1)
        m.d.sync += [occ.eq((occ | occ_set) & ~occ_clr),
                     live.eq((live & ~live_clr) | live_set),
                     written.eq((written | wr_set) & ~occ_set)]

        # --- done: the cycle after the last acknowledgement ------------------------------
        over = Signal()
        fin = run & ack.valid & (acked == n - 1)
        m.d.sync += over.eq(fin)
        empty_done = Signal()
        m.d.sync += empty_done.eq(self.start & ~run & (n_in == 0))
        with m.If(over):
            m.d.sync += [v.eq(0) for v in (
                run, na, nc, nw, acked, aslot, cslot, wslot, k, active, occ, live, written,
                filled)]
            m.d.sync += dy_in.clear()
        m.d.comb += [self.done.eq(over | empty_done), self.busy.eq(run | over | empty_done)]
        return m
