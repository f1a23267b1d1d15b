"""GATHER: the lookup engine's row pipeline, from row requests to the accumulate lanes.

The model is :mod:`hwsim.units.lookup` (values) and :mod:`hwsim.units.lookup_timing`
(cycles): this module is that pipeline in gates, for one request port (``request_ports = 1``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from ..buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from ..fp32 import fp16_to_fp32, fp32_add, fp32_mul
from .stream import TokenBuffers, WordStream, ceil_div, floor_div, modulo, read_arbiter, row_window

__all__ = ["GatherEngine", "lk_rd_req_layout", "lk_rd_rsp_layout"]

_FIELDS = dict(isa.Gather.FIELDS)
_NBYTES_BITS = 16


def lk_rd_req_layout(slots: int) -> data.StructLayout:
    """A row read, LSB first: ``addr`` (32, bytes), ``nbytes`` (16), ``tier`` (the command's
    ``tier`` field: which memory serves it), ``tag`` (the row-buffer slot, echoed back)."""
    return data.StructLayout({"addr": 32, "nbytes": _NBYTES_BITS, "tier": _FIELDS["tier"],
                              "tag": _tag_bits(slots)})


def _tag_bits(slots: int) -> int:
    return max(1, (slots - 1).bit_length())


def lk_rd_rsp_layout(slots: int, row_bytes: int) -> data.StructLayout:
    """A row read's answer, LSB first: ``tag`` and ``data`` (the row, little-endian, in the low
    ``nbytes`` bytes)."""
    return data.StructLayout({"tag": _tag_bits(slots), "data": 8 * row_bytes})


class GatherEngine(wiring.Component):
    """GATHER mode 0 (``y[t] = sum_k p[t,k] (x) T[row[t,k]]``, fp32 from fp16 rows).

    The pipeline of :mod:`hwsim.units.lookup_timing` with one request port: the row indices and
    weights stream from VEC (:class:`~rtl.lookup.stream.WordStream`, the first row index read on
    the start cycle); a row request issues, from cycle 1, when its slot of the row buffer is
    free and the memory is ready (the memory's ``ready`` is its outstanding-request limit); the
    answer (any order, by ``tag``) fills the slot; the ``G`` lanes take the slots in order, one
    row in ``h / G`` cycles from the cycle after its answer, fp16 -> fp32, ``p (x) T`` and the
    running sum in an accumulator of ``h`` words (the first chunk's product stored as is); the
    last chunk's sums go to VEC, packed into entries; a slot is free again the cycle after its
    row's last lane cycle. Done the cycle after the last lane cycle, which also writes the last
    entry.

    Window: ``W = max(4, inflight_bytes // (h * 2))`` slots (``LookupConfig.rows_in_flight``),
    at most :attr:`slots` (:meth:`window_fits`).

    Parameters
    ----------
    config : AcceleratorConfig
        ``lookup.gather_lanes`` (G) must divide ``vector.lanes`` (L, at least 2), and
        ``lookup.request_ports`` be 1; rows fp16.
    row_bytes : int
        Widest row the engine takes (its response port and row-buffer slot width).
    slots : int
        Row-buffer slots.

    Members
    -------
    start : In(1)
    in_addr, p_addr, out_addr, tokens, chunks, width, tier : In
        The command's fields, sampled on ``start``.
    base : In(32)
        The table's byte address (controller register ``table``), sampled on ``start``.
    busy, done : Out(1)
        As a unit's (:class:`rtl.units.UnitComponent`).
    rd, wr : Out(Read/WritePortSignature)
        VEC ports.
    lk_rd_req : Out(stream.Signature(lk_rd_req_layout(slots)))
    lk_rd_rsp : In(stream.Signature(lk_rd_rsp_layout(slots, row_bytes)))
        The table memory (``ready`` is always high on the answers).
    """

    def __init__(self, config: AcceleratorConfig, *, row_bytes: int, slots: int):
        lk = config.lookup
        L, G = config.vector.lanes, lk.gather_lanes
        if L < 2 or L % G:
            raise ValueError(f"the RTL gather needs lookup.gather_lanes ({G}) to divide "
                             f"vector.lanes ({L}, at least 2)")
        if lk.request_ports != 1:
            raise ValueError(f"the RTL gather has one request port, not {lk.request_ports}")
        if lk.element != "fp16":
            raise ValueError(f"the RTL gather reads fp16 rows, not {lk.element}")
        if row_bytes % (2 * L) or slots < 4:
            raise ValueError("row_bytes must hold whole VEC entries of fp16 and slots be >= 4")
        self.config, self.row_bytes, self.slots = config, row_bytes, slots
        self.lanes, self.G = L, G
        super().__init__({
            "start": In(1), "base": In(32),
            **{f: In(_FIELDS[f]) for f in ("in_addr", "p_addr", "out_addr", "tokens", "chunks",
                                           "width", "tier", "mode")},
            "busy": Out(1), "done": Out(1),
            "rd": Out(ReadPortSignature(ADDR_BITS, 32 * L)),
            "wr": Out(WritePortSignature(ADDR_BITS, 32 * L)),
            "lk_rd_req": Out(stream.Signature(lk_rd_req_layout(slots))),
            "lk_rd_rsp": In(stream.Signature(lk_rd_rsp_layout(slots, row_bytes))),
        })

    def window(self, width):
        """The slots a command of rows of ``width`` fp16 elements may use (a Value):
        ``max(4, inflight_bytes // (2 * width))`` by comparisons with constant multiples."""
        return row_window(self.config.lookup.inflight_kib * 1024, width * 2, self.slots)

    def window_fits(self, width):
        """Whether rows of ``width`` elements fit the engine: the row within ``row_bytes``, a
        whole number of VEC entries, and the window within :attr:`slots`."""
        return ((width * 2 <= self.row_bytes) & (modulo(width, self.lanes) == 0) & (width != 0)
                & (self.window(width) <= self.slots))

    def takes(self, width, chunks, mode):
        """Whether the engine runs a GATHER of ``mode`` as hwsim times it: mode 0 with rows that
        fit (:meth:`window_fits`); mode 1 also with at least ``lookup.min_dy_entries`` (2) whole
        VEC entries a row (``width >= 2 L``) and ``lookup.min_dy_chunks`` (2) chunks a token,
        which keep dY's loads (an entry a cycle
        through the VEC port the row indices share, which hwsim does not model) ahead of the
        lanes, as :meth:`rtl.lookup.scatter.ScatterEngine.takes` argues."""
        lk = self.config.lookup
        fits = self.window_fits(width)
        return fits & ((mode == 0)
                       | ((mode == 1) & (width >= lk.min_dy_entries * self.lanes)
                          & (chunks >= lk.min_dy_chunks)))

    def elaborate(self, platform):
        m = Module()
        L, G, S = self.lanes, self.G, self.slots
        max_beats = self.row_bytes // (2 * G)
        hmax = self.row_bytes // 2

        # --- the command --------------------------------------------------------------
        run, dot = Signal(), Signal()  # dot: mode 1
        base, tier = Signal(32), Signal.like(self.tier)
        width, chunks = Signal.like(self.width), Signal.like(self.chunks)
        tokens = Signal.like(self.tokens)
        n = Signal(len(self.tokens) + len(self.chunks))
        W = Signal(range(S + 1))
        beats_last = Signal(range(max_beats))
        out_ptr = Signal(ADDR_BITS)
        n_in = self.tokens * self.chunks
        entries = ceil_div(n_in, L)

        rows = WordStream(m, "rows", L, self.rd.data, len(n))
        wts = WordStream(m, "p", L, self.rd.data, len(n))
        dy_in = TokenBuffers(m, "dy", L, hmax, self.rd.data, tokens, run & dot)
        read_arbiter(m, self.rd, [rows, wts, dy_in], run)

        with m.If(self.start & ~run):
            m.d.sync += [run.eq(n_in != 0), base.eq(self.base), tier.eq(self.tier),
                         width.eq(self.width), chunks.eq(self.chunks), n.eq(n_in),
                         tokens.eq(self.tokens), dot.eq(self.mode == 1),
                         W.eq(self.window(self.width)),
                         beats_last.eq(floor_div(self.width, G) - 1), out_ptr.eq(self.out_addr)]
            m.d.sync += rows.begin(self.in_addr, entries, 1)
            m.d.sync += dy_in.begin(self.p_addr, floor_div(self.width, L))
            m.d.sync += wts.begin(self.p_addr, Mux(self.mode == 1, 0, entries), 0)
            m.d.comb += [self.rd.addr.eq(self.in_addr), self.rd.en.eq(1)]

        # --- row requests -------------------------------------------------------------
        issued = Signal.like(n)
        islot = Signal(range(S))
        slot_busy = Signal(S)  # requested, its computation not yet over
        filled = Signal(S)  # answered, its computation not yet over
        req = self.lk_rd_req
        # mode 1: the first request waits until token 0's dY has landed, so the lanes never
        # wait for dY (hwsim's timing starts the row stream that much later)
        go = Signal()
        go_now = go | dy_in.ready
        m.d.sync += go.eq(run & go_now)
        offer = (run & (issued != n) & rows.valid & ~slot_busy.bit_select(islot, 1)
                 & (~dot | go_now))
        m.d.comb += [req.valid.eq(offer), req.p.addr.eq((base + rows.word * (width * 2))[:32]),
                     req.p.nbytes.eq(width * 2), req.p.tier.eq(tier), req.p.tag.eq(islot)]
        take = offer & req.ready
        m.d.comb += rows.pop.eq(take)
        with m.If(take):
            m.d.sync += [issued.eq(issued + 1), islot.eq(Mux(islot == W - 1, 0, islot + 1))]

        # --- answers into the row buffer ----------------------------------------------
        m.submodules.rowbuf = rowbuf = Memory(shape=8 * self.row_bytes, depth=S, init=[])
        wp = rowbuf.write_port()
        rsp = self.lk_rd_rsp
        m.d.comb += [rsp.ready.eq(1), wp.addr.eq(rsp.p.tag), wp.data.eq(rsp.p.data),
                     wp.en.eq(rsp.valid)]
        answered = Mux(rsp.valid, Const(1, S) << rsp.p.tag, 0)

        # --- the accumulate lanes ------------------------------------------------------
        computed = Signal.like(n)
        cslot = Signal(range(S))
        active, beat = Signal(), Signal(range(max_beats))
        k = Signal.like(chunks)
        p_hold = Signal(32)
        operand = Mux(dot, dy_in.ready, wts.valid)  # mode 1: dY[t] landed; mode 0: p[t,k]
        begin = run & ~active & (computed != n) & filled.bit_select(cslot, 1) & operand
        on = begin | active
        b = Mux(active, beat, 0)
        p = Mux(active, p_hold, wts.word)
        dy = dy_in.row.word_select(b, 32 * G)
        part = Signal(32 * G)  # mode 1: the lane sums of the row so far
        m.d.comb += wts.pop.eq(begin & ~dot)
        rp = rowbuf.read_port(domain="comb")
        m.d.comb += rp.addr.eq(cslot)
        seg = rp.data.word_select(b, 16 * G)

        m.submodules.acc = acc = Memory(shape=32 * G, depth=max_beats, init=[])
        acc_rd = acc.read_port(domain="comb")
        acc_wr = acc.write_port()
        m.d.comb += acc_rd.addr.eq(b)
        sums = []
        for lane in range(G):
            x = fp16_to_fp32(m, seg[16 * lane:16 * lane + 16], f"x{lane}")
            word = slice(32 * lane, 32 * lane + 32)
            prod = fp32_mul(m, Mux(dot, dy[word], p), x, f"mul{lane}")
            total = fp32_add(m, Mux(dot, part[word], acc_rd.data[word]), prod, f"add{lane}")
            sums.append(Mux(Mux(dot, b == 0, k == 0), prod, total))
        last_chunk = k == chunks - 1
        m.d.comb += [acc_wr.addr.eq(b), acc_wr.data.eq(Cat(*sums)),
                     acc_wr.en.eq(on & ~last_chunk & ~dot)]
        ends = on & (b == beats_last)
        with m.If(on & dot):
            m.d.sync += part.eq(Cat(*sums))
        m.d.comb += dy_in.advance.eq(ends & last_chunk & dot)
        with m.If(begin):
            m.d.sync += p_hold.eq(wts.word)
        with m.If(on):
            m.d.sync += [active.eq(~ends), beat.eq(b + 1)]
        with m.If(ends):
            m.d.sync += [computed.eq(computed + 1), cslot.eq(Mux(cslot == W - 1, 0, cslot + 1)),
                         k.eq(Mux(last_chunk, 0, k + 1))]
        freed = Mux(ends, Const(1, S) << cslot, 0)
        m.d.sync += [filled.eq((filled | answered) & ~freed),
                     slot_busy.eq((slot_busy | Mux(take, Const(1, S) << islot, 0)) & ~freed)]

        # --- the last chunk's sums to VEC, packed into entries -------------------------
        per = L // G  # lane cycles an entry
        pack = Signal(32 * L)
        wr_en, wr_addr, wr_data = Signal(), Signal(ADDR_BITS), Signal(32 * L)
        slot_of = modulo(b, per)
        entry = Cat(pack[:32 * (L - G)], *sums) if per > 1 else Cat(*sums)
        emit = on & last_chunk & (slot_of == per - 1) & ~dot
        with m.If(on & last_chunk & (slot_of != per - 1) & ~dot):
            for j in range(per - 1):
                with m.If(slot_of == j):
                    m.d.sync += pack.word_select(j, 32 * G).eq(Cat(*sums))
        with m.If(emit):
            m.d.sync += [wr_addr.eq(out_ptr), wr_data.eq(entry), out_ptr.eq(out_ptr + 1)]

        # --- mode 1: a row's lane sums added in lane order, an add a cycle ------------
        res_valid, res = ends & dot, sums[0]
        if G > 1:
            cur_v = Signal(name="red0_valid")
            cur = [Signal(32, name=f"red0_{i}") for i in range(G)]  # [sum so far, words left]
            m.d.sync += [cur_v.eq(ends & dot), *(r.eq(v) for r, v in zip(cur, sums, strict=True))]
            for j in range(1, G):
                total = fp32_add(m, cur[0], cur[1], f"red{j}")
                if j == G - 1:
                    res_valid, res = cur_v, total
                    break
                nxt_v = Signal(name=f"red{j}_valid")
                nxt = [Signal(32, name=f"red{j}_{i}") for i in range(len(cur) - 1)]
                m.d.sync += [nxt_v.eq(cur_v), nxt[0].eq(total),
                             *(r.eq(v) for r, v in zip(nxt[1:], cur[2:], strict=True))]
                cur_v, cur = nxt_v, nxt
        # ... one word a row, packed into entries (the last entry's words past the end zero)
        nres = Signal.like(n)
        rslot = modulo(nres, L)
        last_res = nres == n - 1
        emit_dot = res_valid & ((rslot == L - 1) | last_res)
        words = [Mux(rslot == j, res, Mux(rslot > j, pack.word_select(j, 32), 0))
                 for j in range(L)]
        with m.If(res_valid):
            m.d.sync += [nres.eq(nres + 1), pack.word_select(rslot, 32).eq(res)]
        with m.If(emit_dot):
            m.d.sync += [wr_addr.eq(out_ptr), wr_data.eq(Cat(*words)), out_ptr.eq(out_ptr + 1)]
        m.d.sync += wr_en.eq(emit | emit_dot)
        m.d.comb += [self.wr.en.eq(wr_en), self.wr.addr.eq(wr_addr), self.wr.data.eq(wr_data)]

        # --- done: the cycle after the last lane cycle (mode 1: after the last word) ----
        over = Signal()
        m.d.sync += over.eq(Mux(dot, res_valid & last_res, ends & (computed == n - 1)))
        empty_done = Signal()
        m.d.sync += empty_done.eq(self.start & ~run & (n_in == 0))
        with m.If(over):
            m.d.sync += [run.eq(0), issued.eq(0), computed.eq(0), islot.eq(0), cslot.eq(0),
                         k.eq(0), active.eq(0), nres.eq(0)]
            m.d.sync += dy_in.clear()
        m.d.comb += [self.done.eq(over | empty_done), self.busy.eq(run | over | empty_done)]
        return m
