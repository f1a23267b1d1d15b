"""SCATTER modes 1 and 2: the lazy SGD-with-momentum or Adam step of a memory table's listed
rows, in gates.

The model is :mod:`hwsim.units.lookup` (values: ``_update_rows``, bit for bit
:func:`hwsim.units.vector.sgd_update` and :func:`~hwsim.units.vector.adam_update`) and
:mod:`hwsim.units.update_timing` (cycles, and the rules this module follows: slots held until a
row retires, a repeat of a held row skipped).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from ..buffers import ADDR_BITS, ReadPortSignature
from ..fp32 import fp32_add, fp32_div, fp32_mul, fp32_sqrt, fp32_to_fp16
from .gather import lk_rd_req_layout, lk_rd_rsp_layout
from .scatter import lk_wr_req_layout, lk_wr_rsp_layout
from .stream import WordStream, ceil_div, floor_div, modulo, read_arbiter, row_window

__all__ = ["RowUpdateEngine"]

_FIELDS = dict(isa.Scatter.FIELDS)
_KINDS = 4  # the rows an access reads: G, W and the state (SGD: V; Adam: M, V)
_WRITES = 5  # at most: W, the state, the fp16 row, the zeroed G
_SIGN32 = 0x80000000


class RowUpdateEngine(wiring.Component):
    """SCATTER modes 1 and 2: for each listed row, in order, when its fp32 gradient row ``G`` is
    not all zero, an optimizer step on the fp32 master ``W`` and the state rows, each operation
    rounded to fp32 as hwsim's (no fused operations): mode 1 SGD with momentum ``V``
    (``g' = g + wd w``, ``v' = mu v + g'``, ``w' = w - lr v'``), mode 2 Adam with moments
    ``M``, ``V`` (:func:`hwsim.units.vector.adam_update`'s order, a correctly rounded square
    root and division a lane); the fp16 row ``T = fp16(w')`` written to the table and ``G``
    zeroed.

    Admission (:mod:`hwsim.units.update_timing`), in list order, one a cycle at most: access
    ``a`` takes slot ``a mod W`` once the slot's previous access has retired. Its row is
    compared with the rows of the held slots: a match is **skipped** (no reads: the held
    access leaves ``G`` zero, so the row is clean); otherwise the ``G``, ``W`` and state reads
    (SGD ``V``; Adam ``M``, ``V``) issue on the next cycles the table memory takes them (tag:
    the slot and which row).
    The ``G`` lanes take the accesses in order: a skipped one, or one whose ``G`` is all zero,
    for one cycle (it retires then); a dirty one for ``h / G`` cycles from the cycle after its
    last answer, its ``W``, state and ``T`` rows into the slot's result buffers, then into the
    write queue. Writes follow in queue order (``W``, the state, ``T``, zero ``G``), and the
    last acknowledgement of a slot (the fourth; Adam the fifth) retires its access. Done the
    cycle after the last access retires.

    The window ``W = max(4, inflight_bytes // (r * 4h))`` (``r`` = 3 reads a row, Adam 4)
    (:func:`~hwsim.units.update_timing.update_run`) must be at most :attr:`slots`
    (:meth:`takes`): a read's tag holds the slot and the row kind, so the engine has a quarter
    of the unit's tags as slots.

    Parameters
    ----------
    config : AcceleratorConfig
        ``lookup.gather_lanes`` (G) must divide ``vector.lanes`` (L, at least 2), and
        ``lookup.request_ports`` be 1.
    row_bytes : int
        Widest fp32 row (``4 * h`` bytes) the engine takes.
    tags : int
        The unit's read tags (``rtl.lookup.unit.SLOTS``); the engine has ``tags // 4`` slots.

    Members
    -------
    start, in_addr, tokens, chunks, width, tier : In
        The command's fields (``in_addr``: the row list), sampled on ``start``.
    mode : In(2)
        1 (SGD with momentum) or 2 (Adam), sampled on ``start``.
    bases : In(32) x 5
        The tables' byte addresses, controller registers ``table ..``: ``T``, ``W``, ``G``,
        then ``V`` (mode 1) or ``M``, ``V`` (mode 2).
    hps : In(32) x 5
        fp32 bit patterns, registers ``p_addr ..``: ``lr``, ``momentum``, ``weight_decay``
        (mode 1) or ``lr_t``, ``1 - beta1``, ``1 - beta2``, ``eps``, ``weight_decay`` (mode 2).
    busy, done : Out(1)
    rd : Out(ReadPortSignature)
        VEC (the row list).
    lk_rd_req, lk_rd_rsp, lk_wr_req, lk_wr_rsp
        The table memory (:mod:`rtl.lookup.gather`'s and :mod:`rtl.lookup.scatter`'s layouts).
    """

    def __init__(self, config: AcceleratorConfig, *, row_bytes: int, tags: int):
        lk = config.lookup
        L, G = config.vector.lanes, lk.gather_lanes
        if L < 2 or L % G:
            raise ValueError(f"the RTL row update needs lookup.gather_lanes ({G}) to divide "
                             f"vector.lanes ({L}, at least 2)")
        if lk.request_ports != 1:
            raise ValueError(f"the RTL row update has one request port, not "
                             f"{lk.request_ports}")
        if row_bytes % (4 * L) or tags < 16 or tags & (tags - 1):
            raise ValueError("row_bytes must hold whole VEC entries of fp32 and tags be a "
                             "power of two >= 16")
        self.config, self.row_bytes, self.tags = config, row_bytes, tags
        self.slots = tags // 4
        self.lanes, self.G = L, G
        super().__init__({
            "start": In(1),
            **{f: In(_FIELDS[f]) for f in ("in_addr", "tokens", "chunks", "width", "tier",
                                           "mode")},
            **{f"base{i}": In(32) for i in range(5)}, **{f"hp{i}": In(32) for i in range(5)},
            "busy": Out(1), "done": Out(1),
            "rd": Out(ReadPortSignature(ADDR_BITS, 32 * L)),
            "lk_rd_req": Out(stream.Signature(lk_rd_req_layout(tags))),
            "lk_rd_rsp": In(stream.Signature(lk_rd_rsp_layout(tags, row_bytes))),
            "lk_wr_req": Out(stream.Signature(lk_wr_req_layout(tags, row_bytes))),
            "lk_wr_rsp": In(stream.Signature(lk_wr_rsp_layout(tags))),
        })

    def window(self, width, mode):
        """Slots a command of rows of ``width`` fp32 elements uses (a Value): its reads a row
        are 3 (mode 1) or 4 (mode 2)."""
        inflight = self.config.lookup.inflight_kib * 1024
        return Mux(mode == 2, row_window(inflight, width * 16, self.slots),
                   row_window(inflight, width * 12, self.slots))

    def takes(self, width, mode):
        """Whether the engine runs a row update (``mode`` 1 or 2) of rows of ``width``
        elements: rows within ``row_bytes``, whole VEC entries, the window within
        :attr:`slots`."""
        return (((mode == 1) | (mode == 2)) & (width * 4 <= self.row_bytes)
                & (modulo(width, self.lanes) == 0) & (width != 0)
                & (self.window(width, mode) <= self.slots))

    def elaborate(self, platform):
        m = Module()
        L, G, S = self.lanes, self.G, self.slots
        hmax = self.row_bytes // 4
        max_beats = hmax // G
        sb = (S - 1).bit_length()  # slot bits of a tag
        one = Const(1, S)

        # --- the command --------------------------------------------------------------
        run = Signal()
        tier = Signal.like(self.tier)
        n = Signal(len(self.tokens) + len(self.chunks))
        W = Signal(range(S + 1))
        beats_last = Signal(range(max_beats))
        width = Signal.like(self.width)
        rbytes, hbytes = Signal(16), Signal(16)
        adam = Signal()
        reads_last = Signal(range(_KINDS))  # the last read of an access: 2, Adam 3
        writes_last = Signal(range(_WRITES))  # the last write: 3, Adam 4
        bases = [Signal(32, name=f"base{i}") for i in range(5)]
        hps = [Signal(32, name=f"hp{i}") for i in range(5)]
        t16, wb, gb = bases[:3]
        sa = bases[3]  # the first state table: V (SGD) or M (Adam); Adam's V: bases[4]
        n_in = self.tokens * self.chunks
        rows = WordStream(m, "rows", L, self.rd.data, len(n))
        read_arbiter(m, self.rd, [rows], run)
        with m.If(self.start & ~run):
            is_adam = self.mode == 2
            m.d.sync += [run.eq(n_in != 0), tier.eq(self.tier), n.eq(n_in), width.eq(self.width),
                         W.eq(self.window(self.width, self.mode)), rbytes.eq(self.width * 4),
                         hbytes.eq(self.width * 2), adam.eq(is_adam),
                         reads_last.eq(Mux(is_adam, 3, 2)), writes_last.eq(Mux(is_adam, 4, 3)),
                         beats_last.eq(floor_div(self.width, G) - 1),
                         *(r.eq(getattr(self, f"base{i}")) for i, r in enumerate(bases)),
                         *(r.eq(getattr(self, f"hp{i}")) for i, r in enumerate(hps))]
            m.d.sync += rows.begin(self.in_addr, ceil_div(n_in, L), 1)
            m.d.comb += [self.rd.addr.eq(self.in_addr), self.rd.en.eq(1)]

        def ring_next(v):
            return Mux(v == W - 1, 0, v + 1)

        # --- slots ------------------------------------------------------------------------
        occ, skip = Signal(S), Signal(S)
        filled = [Signal(S, name=f"filled_{k}") for k in ("g", "w", "s1", "s2")]
        row_of = [Signal(32, name=f"row{s}") for s in range(S)]
        occ_set, occ_clr = Signal(S), Signal(S)

        # --- admission and reads ------------------------------------------------------------
        na = Signal.like(n)
        aslot, rslot = Signal(range(S)), Signal(range(S))
        rk = Signal(range(_KINDS))  # 0: admit next; 1..: the W and state reads of slot rslot
        cur_row = Signal(32)
        match = Signal(S)
        m.d.comb += match.eq(Cat(*[occ[s] & (row_of[s] == rows.word) for s in range(S)]))
        can = run & (rk == 0) & (na != n) & rows.valid & ~occ.bit_select(aslot, 1)
        skip_now = can & (match != 0)
        first = can & (match == 0)
        more = run & (rk != 0)
        req = self.lk_rd_req
        addr_row = Mux(more, cur_row, rows.word)
        table = Mux(more, Mux(rk == 1, wb, Mux(rk == 2, sa, bases[4])), gb)
        m.d.comb += [req.valid.eq(first | more),
                     req.p.addr.eq((table + addr_row * rbytes)[:32]), req.p.nbytes.eq(rbytes),
                     req.p.tier.eq(tier),
                     req.p.tag.eq(Cat(Mux(more, rslot, aslot)[:sb], Mux(more, rk, 0)))]
        admit = skip_now | (first & req.ready)
        m.d.comb += rows.pop.eq(admit)
        with m.If(admit):
            m.d.sync += [na.eq(na + 1), aslot.eq(ring_next(aslot))]
            for s in range(S):
                with m.If(aslot == s):
                    m.d.sync += row_of[s].eq(rows.word)
            m.d.comb += occ_set.eq(one << aslot)
        with m.If(first & req.ready):
            m.d.sync += [rk.eq(1), rslot.eq(aslot), cur_row.eq(rows.word)]
        with m.If(more & req.ready):
            m.d.sync += rk.eq(Mux(rk == reads_last, 0, rk + 1))
        m.d.sync += skip.eq(Mux(admit, (skip & ~(one << aslot)) | Mux(skip_now, one << aslot, 0),
                                skip))

        # --- answers into the row buffers ---------------------------------------------------
        rsp = self.lk_rd_rsp
        m.d.comb += rsp.ready.eq(1)
        rslot_in, kind_in = rsp.p.tag[:sb], rsp.p.tag[sb:sb + 2]
        bufs = []
        for k, name in enumerate(("g", "w", "s1", "s2")):
            mem = Memory(shape=32 * hmax, depth=S, init=[])
            m.submodules[f"rowbuf_{name}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(rslot_in), wp.data.eq(rsp.p.data[:32 * hmax]),
                         wp.en.eq(rsp.valid & (kind_in == k))]
            bufs.append(mem)
            new = Mux(rsp.valid & (kind_in == k), one << rslot_in, 0)
            m.d.sync += filled[k].eq((filled[k] | new) & ~occ_set)

        # --- the lanes ------------------------------------------------------------------------
        nc = Signal.like(n)
        cslot = Signal(range(S))
        active, beat = Signal(), Signal(range(max_beats))
        answered = filled[0] & filled[1] & filled[2] & (filled[3] | Mux(adam, 0, ~0))
        ready = skip.bit_select(cslot, 1) | answered.bit_select(cslot, 1)
        begin = run & ~active & (nc != na) & ready
        reads = []
        for mem in bufs:
            rp = mem.read_port(domain="comb")
            m.d.comb += rp.addr.eq(cslot)
            reads.append(rp.data)
        g_row = reads[0]
        nonzero = Cat(*[(g_row[32 * j:32 * j + 31] != 0) & (j < width) for j in range(hmax)])
        dirty = ~skip.bit_select(cslot, 1) & (nonzero != 0)
        b = Mux(active, beat, 0)
        on = (begin & dirty) | active
        ends = on & (b == beats_last)
        gseg, wseg, s1seg, s2seg = (r.word_select(b, 32 * G) for r in reads)
        w_new, s1_new, s2_new, h_new = [], [], [], []
        for j in range(G):
            word = slice(32 * j, 32 * j + 32)
            g, w, s1, s2 = gseg[word], wseg[word], s1seg[word], s2seg[word]
            wd = Mux(adam, hps[4], hps[2])
            gp = fp32_add(m, g, fp32_mul(m, wd, w, f"wd{j}"), f"gp{j}")
            # SGD with momentum: v' = mu v + g', w' = w - lr v'
            vn = fp32_add(m, fp32_mul(m, hps[1], s1, f"mu{j}"), gp, f"vn{j}")
            wn = fp32_add(m, w, fp32_mul(m, hps[0], vn, f"lr{j}") ^ _SIGN32, f"wn{j}")
            # Adam: m' = m + (g' - m) c1, v' = v + (g'^2 - v) c2, w' = w - lr_t m'/(sqrt(v')+eps)
            mn = fp32_add(m, s1, fp32_mul(m, fp32_add(m, gp, s1 ^ _SIGN32, f"dm{j}"), hps[1],
                                          f"c1{j}"), f"mn{j}")
            va = fp32_add(m, s2, fp32_mul(m, fp32_add(m, fp32_mul(m, gp, gp, f"gg{j}"),
                                                      s2 ^ _SIGN32, f"dv{j}"), hps[2],
                                          f"c2{j}"), f"va{j}")
            q = fp32_div(m, mn, fp32_add(m, fp32_sqrt(m, va, f"sqrt{j}"), hps[3], f"eps{j}"),
                         f"div{j}")
            wa = fp32_add(m, w, fp32_mul(m, hps[0], q, f"lrt{j}") ^ _SIGN32, f"wa{j}")
            w_out = Signal(32, name=f"w_out{j}")
            m.d.comb += w_out.eq(Mux(adam, wa, wn))
            w_new.append(w_out)
            s1_new.append(Mux(adam, mn, vn))
            s2_new.append(va)
            h_new.append(fp32_to_fp16(m, w_out, f"h{j}"))
        results = []
        for name, vals, bits in (("w", w_new, 32), ("s1", s1_new, 32), ("s2", s2_new, 32),
                                 ("h", h_new, 16)):
            mem = Memory(shape=bits * hmax, depth=S, init=[])
            m.submodules[f"result_{name}"] = mem
            wp = mem.write_port(granularity=bits * G)
            m.d.comb += [wp.addr.eq(cslot), wp.data.eq(Cat(*vals).replicate(max_beats)),
                         wp.en.eq(Mux(on, Const(1, max_beats) << b, 0))]
            results.append(mem)
        with m.If(on):
            m.d.sync += [active.eq(~ends), beat.eq(b + 1)]
        passed = begin & ~dirty  # a skipped or clean access: one lane cycle, then it retires
        with m.If(passed | ends):
            m.d.sync += [nc.eq(nc + 1), cslot.eq(ring_next(cslot))]

        # --- the write queue: the dirty accesses' slots, in order -----------------------------
        m.submodules.wq = wq = SyncFIFO(width=sb, depth=S)
        m.d.comb += [wq.w_data.eq(cslot[:sb]), wq.w_en.eq(ends)]
        wk = Signal(range(_WRITES))
        wslot = wq.r_data
        wrow = Signal(32)
        for s in range(S):
            with m.If(wslot == s):
                m.d.comb += wrow.eq(row_of[s])
        outs = []
        for mem in results:
            rp = mem.read_port(domain="comb")
            m.d.comb += rp.addr.eq(wslot)
            outs.append(rp.data)
        wreq = self.lk_wr_req
        # the writes: W, the state (SGD V; Adam M, V), T, zero G
        kind = Mux(adam | (wk < 2), wk, wk + 1)  # 0 W, 1 s1, 2 s2, 3 T, 4 G
        wbase = Mux(kind == 0, wb, Mux(kind == 1, sa, Mux(kind == 2, bases[4],
                                                           Mux(kind == 3, t16, gb))))
        wbytes = Mux(kind == 3, hbytes, rbytes)
        m.d.comb += [wreq.valid.eq(run & wq.r_rdy),
                     wreq.p.addr.eq((wbase + wrow * wbytes)[:32]), wreq.p.nbytes.eq(wbytes),
                     wreq.p.tier.eq(tier), wreq.p.tag.eq(wslot),
                     wreq.p.data.eq(Mux(kind == 0, outs[0], Mux(kind == 1, outs[1], Mux(
                         kind == 2, outs[2], Mux(kind == 3, outs[3], 0)))))]
        wtake = wreq.valid & wreq.ready
        with m.If(wtake):
            m.d.sync += wk.eq(Mux(wk == writes_last, 0, wk + 1))
        m.d.comb += wq.r_en.eq(wtake & (wk == writes_last))

        # --- acknowledgements: the fourth retires its slot ------------------------------------
        ack = self.lk_wr_rsp
        m.d.comb += ack.ready.eq(1)
        acks = [Signal(range(_WRITES), name=f"acks{s}") for s in range(S)]
        aslot_in = ack.p.tag[:sb]
        ack_count = Signal(range(_WRITES))
        for s in range(S):
            with m.If(aslot_in == s):
                m.d.comb += ack_count.eq(acks[s])
        last_ack = ack.valid & (ack_count == writes_last)
        with m.If(ack.valid):
            for s in range(S):
                with m.If(aslot_in == s):
                    m.d.sync += acks[s].eq(Mux(last_ack, 0, acks[s] + 1))
        m.d.comb += occ_clr.eq(Mux(passed, one << cslot, 0)
                               | Mux(last_ack, one << aslot_in, 0))
        m.d.sync += occ.eq((occ | occ_set) & ~occ_clr)
        retired = Signal.like(n)
        m.d.sync += retired.eq(retired + passed + last_ack)

        # --- done: the cycle after the last access retires ---------------------------------
        over = Signal()
        m.d.sync += over.eq(run & (passed | last_ack) & (retired + passed + last_ack == n))
        empty_done = Signal()
        m.d.sync += empty_done.eq(self.start & ~run & (n_in == 0))
        with m.If(over):
            m.d.sync += [v.eq(0) for v in (run, na, nc, retired, aslot, cslot, rk, active, occ,
                                           skip, wk, *filled)]
        m.d.comb += [self.done.eq(over | empty_done), self.busy.eq(run | over | empty_done)]
        return m
