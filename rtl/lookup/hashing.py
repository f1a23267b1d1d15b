"""HASH modes 0 and 1: MemoryFormer's row indices and chunk weights, ``hash_lanes`` chunks at a
time. The model is :mod:`hwsim.units.lookup` (``_hash``, :func:`~hwsim.units.lookup.hash_cycles`).
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from ..buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from .hash import HASH_LANE_DEPTH, HashLane
from .stream import ceil_div, modulo

__all__ = ["HashEngine"]

_FIELDS = dict(isa.Hash.FIELDS)


class HashEngine(wiring.Component):
    """HASH modes 0 and 1 on ``H = lookup.hash_lanes`` :class:`~rtl.lookup.hash.HashLane`.

    Chunks go to the lanes in groups of ``H`` (chunk ``c`` to lane ``c % H``); a group's lanes
    take one element each a cycle, ``tau`` cycles a group. The ``z`` operand streams from VEC,
    one entry of ``L`` words a cycle from the start cycle (the first read on cycle 0), into a
    ring of three groups of ``H x max_tau`` words; a read waits while its words belong to the
    group two ahead of the one in the lanes. Group 0 starts the cycle after its last word is
    written, each next group ``tau`` cycles after the previous one (``H <= L``: the stream
    keeps ahead). An element goes from the ring through a fetch register to its lane, which
    builds its chunk's code from the sign bits (element 0 the most significant; ``z >= 0``, so
    ``-0``, sets a bit, NaN does not); :data:`HASH_LANE_DEPTH` cycles after a group's last
    element reached the lanes, its row indices ``c * 2**tau + code`` and weights
    are packed into the entries at ``out_addr`` and ``p_addr``; an entry complete (or the
    last, the rest of it zero) is written on the next two cycles, rows then weights. Done on
    the cycle of the last write:

        cycles = (min(H, n) tau - 1) // L + ceil(n / H) tau + HASH_LANE_DEPTH + 5

    (:func:`hwsim.units.lookup.hash_cycles`; 2 when ``n = tokens x chunks`` is 0).

    Parameters
    ----------
    config : AcceleratorConfig
        ``lookup.hash_lanes`` must divide ``vector.lanes``.
    max_tau : int
        Widest chunk (``tau``) the engine takes.

    Members
    -------
    start : In(1)
    in_addr, p_addr, out_addr, tokens, chunks, width, mode : In
        The command's fields (``width`` is ``tau``), sampled on ``start``.
    scale : In(32)
        fp32 ``2/t`` (controller register ``table``), sampled on ``start``.
    busy, done : Out(1)
    rd, wr : Out(Read/WritePortSignature)
        VEC ports.
    """

    def __init__(self, config: AcceleratorConfig, *, max_tau: int = 16):
        L, H = config.vector.lanes, config.lookup.hash_lanes
        if L % H:
            raise ValueError(f"the RTL hash needs lookup.hash_lanes ({H}) to divide "
                             f"vector.lanes ({L})")
        self.lanes, self.H, self.max_tau = L, H, max_tau
        super().__init__({
            "start": In(1), "scale": In(32),
            **{f: In(_FIELDS[f]) for f in ("in_addr", "p_addr", "out_addr", "tokens", "chunks",
                                           "width", "mode")},
            "busy": Out(1), "done": Out(1),
            "rd": Out(ReadPortSignature(ADDR_BITS, 32 * L)),
            "wr": Out(WritePortSignature(ADDR_BITS, 32 * L)),
        })

    def takes(self, tau):
        """Whether the engine runs chunks of ``tau`` elements (a Value): ``2 <= tau <=
        max_tau`` (two cycles a group carry its two entry writes)."""
        return (tau >= 2) & (tau <= self.max_tau)

    def elaborate(self, platform):
        m = Module()
        L, H, TM = self.lanes, self.H, self.max_tau
        D = HASH_LANE_DEPTH
        nbits = len(self.tokens) + len(self.chunks)
        wbits = nbits + 5

        # --- the command --------------------------------------------------------------
        run = Signal()
        tau = Signal.like(self.width)
        scale, official = Signal(32), Signal()
        n = Signal(nbits)
        N = Signal(wbits)  # words of z
        Wg = Signal(range(H * 31 + 1))  # words a group
        groups = Signal(nbits)
        p_ptr, r_ptr = Signal(ADDR_BITS), Signal(ADDR_BITS)
        n_in = self.tokens * self.chunks
        N_in = n_in * self.width

        # --- the z stream: entry reads, the ring of three groups ----------------------
        e_next, e_left = Signal(ADDR_BITS), Signal(wbits)
        lim = Signal(wbits + 2)  # words the ring may hold: to the end of group gc + 2
        issued_words = Signal(wbits + 2)
        arriving = Signal()
        written = Signal(wbits + 2)  # words in the ring so far
        # the place of the next word to arrive: its group's ring slot, its position in the
        # group (lane x tau + element)
        w_slot, w_pos = Signal(range(3)), Signal(range(H * TM))
        cells = [Signal(32, name=f"z{i}") for i in range(3 * H * TM)]
        ring = Array(cells)
        upto = issued_words + L
        can_read = run & (e_left != 0) & (Mux(upto > N, N, upto) <= lim)
        m.d.comb += [self.rd.addr.eq(e_next), self.rd.en.eq(can_read)]
        m.d.sync += arriving.eq(can_read)
        with m.If(can_read):
            m.d.sync += [e_next.eq(e_next + 1), e_left.eq(e_left - 1),
                         issued_words.eq(issued_words + L)]
        slot, pos, places = w_slot, w_pos, []
        for i in range(L):
            ok = Signal(name=f"arrives{i}")
            m.d.comb += ok.eq(arriving & (written + i < N))
            places.append((slot, pos, ok))
            wrap = pos == Wg - 1
            ns, np_ = Signal(range(3), name=f"slot{i}"), Signal(range(H * TM), name=f"pos{i}")
            m.d.comb += [ns.eq(Mux(wrap, Mux(slot == 2, 0, slot + 1), slot)),
                         np_.eq(Mux(wrap, 0, pos + 1))]
            slot, pos = ns, np_
        for k, cell in enumerate(cells):  # each cell takes the arriving word placed on it
            for i, (ws, wp, ok) in enumerate(places):
                with m.If(ok & (ws == k // (H * TM)) & (wp == k % (H * TM))):
                    m.d.sync += cell.eq(self.rd.data[32 * i:32 * i + 32])
        with m.If(arriving):
            m.d.sync += [w_slot.eq(slot), w_pos.eq(pos), written.eq(written + L)]

        # --- the lanes ----------------------------------------------------------------
        gc = Signal(nbits)  # group in (or next to) the lanes
        gslot = Signal(range(3))
        active, el = Signal(), Signal(range(TM))
        need = Signal(wbits + 2)  # words group gc needs in the ring
        begin = run & ~active & (gc != groups) & (written >= need)
        on = begin | active
        e = Mux(active, el, 0)
        last = e == tau - 1
        with m.If(on):
            m.d.sync += [active.eq(~last), el.eq(e + 1)]
        with m.If(on & last):
            nxt = need + Wg
            m.d.sync += [gc.eq(gc + 1), gslot.eq(Mux(gslot == 2, 0, gslot + 1)),
                         need.eq(Mux(nxt > N, N, nxt)), lim.eq(lim + Wg)]

        chunks = Signal.like(self.chunks)
        k_base = Signal.like(self.chunks)  # lane 0's chunk within its token
        ks = [k_base]
        for i in range(H):
            k = Signal.like(k_base, name=f"k{i + 1}")
            m.d.comb += k.eq(Mux(ks[-1] + 1 == chunks, 0, ks[-1] + 1))
            ks.append(k)
        with m.If(on & last):
            m.d.sync += k_base.eq(ks[H])
        weights, valid_out = [], []
        code_pipe = [[Signal(32, name=f"row{ln}_{s}") for s in range(D)] for ln in range(H)]
        live_pipe = [[Signal(name=f"live{ln}_{s}") for s in range(D)] for ln in range(H)]
        # the fetch stage: each lane's element read from the ring into a register
        f_on, f_first, f_last = Signal(), Signal(), Signal()
        m.d.sync += [f_on.eq(on), f_first.eq(e == 0), f_last.eq(last)]
        for ln in range(H):
            m.submodules[f"lane{ln}"] = hl = HashLane()
            at = Signal(range(3 * H * TM), name=f"at{ln}")
            z, live, k_ln = (Signal(32, name=f"z_lane{ln}"), Signal(name=f"live_lane{ln}"),
                             Signal.like(k_base, name=f"k_lane{ln}"))
            m.d.comb += at.eq(gslot * (H * TM) + ln * tau + e)
            m.d.sync += [z.eq(ring[at]), live.eq(gc * H + ln < n), k_ln.eq(ks[ln])]
            bit = (z[31] == 0) | (z[:31] == 0)
            bit = bit & ~((z[23:31] == 0xFF) & (z[:23] != 0))
            code = Signal(32, name=f"code{ln}")
            code_now = Mux(f_first, bit, Cat(bit, code[:31]))  # code << 1 | bit
            with m.If(f_on):
                m.d.sync += code.eq(code_now)
            m.d.comb += [hl.c.eq(scale), hl.official.eq(official),
                         hl.in_valid.eq(f_on & live), hl.first.eq(f_first), hl.last.eq(f_last),
                         hl.z.eq(z)]
            m.d.sync += [code_pipe[ln][0].eq((k_ln << tau[:5])[:32] | code_now),
                         live_pipe[ln][0].eq(f_on & f_last & live)]
            for s in range(1, D):
                m.d.sync += [code_pipe[ln][s].eq(code_pipe[ln][s - 1]),
                             live_pipe[ln][s].eq(live_pipe[ln][s - 1])]
            weights.append(Mux(live_pipe[ln][D - 1], hl.weight, 0))
            valid_out.append(live_pipe[ln][D - 1])

        # --- outputs: pack H words into entries; write rows, then weights -------------
        out_on = Signal()  # a group's outputs are on the lanes' outputs
        m.d.comb += out_on.eq(valid_out[0])  # lane 0 is live in every group
        g_out = Signal(nbits)
        offset = modulo(g_out * H, L)
        rows_now = Cat(*(Mux(live_pipe[ln][D - 1], code_pipe[ln][D - 1], 0) for ln in range(H)))
        wts_now = Cat(*weights)
        pack_r, pack_p = Signal(32 * L), Signal(32 * L)
        full_r, full_p = Signal(32 * L), Signal(32 * L)
        keep = (1 << 32 * H) - 1
        for slot_i in range(L // H):
            with m.If(offset == slot_i * H):
                base_r = Mux(offset == 0, 0, pack_r)
                base_p = Mux(offset == 0, 0, pack_p)
                shift = 32 * slot_i * H
                m.d.comb += [
                    full_r.eq((base_r & ~(keep << shift)) | (rows_now << shift)),
                    full_p.eq((base_p & ~(keep << shift)) | (wts_now << shift))]
        last_group = g_out == groups - 1
        emit = out_on & ((offset + H == L) | last_group)
        wr1, wr2 = Signal(), Signal()
        a1, a2, d1, d2 = Signal(ADDR_BITS), Signal(ADDR_BITS), Signal(32 * L), Signal(32 * L)
        m.d.sync += [wr1.eq(emit), wr2.eq(wr1)]
        with m.If(out_on):
            m.d.sync += [pack_r.eq(full_r), pack_p.eq(full_p), g_out.eq(g_out + 1)]
        with m.If(emit):
            m.d.sync += [a1.eq(r_ptr), d1.eq(full_r), r_ptr.eq(r_ptr + 1),
                         p_ptr.eq(p_ptr + 1), a2.eq(p_ptr), d2.eq(full_p)]
        m.d.comb += [self.wr.en.eq(wr1 | wr2), self.wr.addr.eq(Mux(wr1, a1, a2)),
                     self.wr.data.eq(Mux(wr1, d1, d2))]

        # --- start, done ------------------------------------------------------------
        over = wr2 & (g_out == groups)
        empty_done = Signal()
        m.d.sync += empty_done.eq(self.start & ~run & (n_in == 0))
        with m.If(self.start & ~run):
            m.d.sync += [run.eq(n_in != 0), tau.eq(self.width), scale.eq(self.scale),
                         official.eq(self.mode[0]), n.eq(n_in), N.eq(N_in),
                         Wg.eq(H * self.width), groups.eq(ceil_div(n_in, H)),
                         r_ptr.eq(self.out_addr), p_ptr.eq(self.p_addr),
                         e_next.eq(self.in_addr + 1), e_left.eq(ceil_div(N_in, L) - 1),
                         arriving.eq(1), issued_words.eq(L), written.eq(0),
                         lim.eq(3 * H * self.width), w_slot.eq(0), w_pos.eq(0),
                         gc.eq(0), gslot.eq(0), active.eq(0), g_out.eq(0), k_base.eq(0),
                         chunks.eq(self.chunks),
                         need.eq(Mux(n_in < H, N_in, H * self.width))]
            m.d.comb += [self.rd.addr.eq(self.in_addr), self.rd.en.eq(1)]
        with m.If(over):
            m.d.sync += run.eq(0)
        m.d.comb += [self.done.eq(over | empty_done), self.busy.eq(run | empty_done)]
        return m
