"""HASH, all four modes: MemoryFormer's row indices and chunk weights (modes 0 and 1) and their
backward (modes 2 and 3), ``hash_lanes`` chunks at a time. The model is
:mod:`hwsim.units.lookup` (``_hash``, :func:`~hwsim.units.lookup.hash_cycles`).
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from ..buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from .hash import HASH_LANE_DEPTH, HashGradLane, HashLane
from .stream import ceil_div, modulo

__all__ = ["HashEngine"]

_FIELDS = dict(isa.Hash.FIELDS)


class HashEngine(wiring.Component):
    """HASH on ``H = lookup.hash_lanes`` :class:`~rtl.lookup.hash.HashLane` (modes 0 and 1) and
    ``H`` :class:`~rtl.lookup.hash.HashGradLane` (modes 2 and 3).

    Chunks go to the lanes in groups of ``H`` (chunk ``c`` to lane ``c % H``); a group's lanes
    take one element each a cycle, ``tau`` cycles a group. The ``z`` operand streams from VEC,
    one entry of ``L`` words a cycle from the start cycle (the first read on cycle 0), into a
    ring of three groups of ``H x max_tau`` words; a read waits while its words belong to the
    group two ahead of the one in the lanes. A group starts the cycle after its last word is
    written, and not before the previous group's last element went in. An element goes from
    the ring through a fetch register to its lane.

    Modes 0 and 1: group 0 starts the cycle after its last word is written, each next group
    ``tau`` cycles after the previous one (``H <= L``: the stream keeps ahead). Each lane
    builds its chunk's code from the sign bits (element 0 the most significant; ``z >= 0``,
    so ``-0``, sets a bit, NaN does not); :data:`HASH_LANE_DEPTH` cycles after a group's last
    element reached the lanes, its row indices ``c * 2**tau + code`` and weights are packed
    into the entries at ``out_addr`` and ``p_addr``; an entry complete (or the last, the rest
    of it zero) is written on the next two cycles, rows then weights. Done on the cycle of the
    last write:

        cycles = (min(H, n) tau - 1) // L + ceil(n / H) tau + HASH_LANE_DEPTH + 5

    Modes 2 and 3 (``dz = g (x) dw/dz``): the ``L`` chunks of a *block* have their ``z`` in
    exactly ``tau`` entries and their ``g`` in one entry at ``p_addr``; the read port takes a
    block's ``g`` entry (cycle 0: block 0's), then its ``z`` entries, in that order. The ``g``
    entries go to two entry registers (block parity); one waits while its register holds
    the ``g`` of a block whose last group has not left the ring for the lanes. The fetch
    register takes each lane's ``g`` with its ``z``. A group whose last element reaches the
    lanes on cycle ``T`` has ``dz_j`` on cycle ``T + HASH_GRAD_DEPTH + j``
    (:data:`~rtl.lookup.hash.HASH_GRAD_DEPTH` = 6), each lane's word put at its place in an
    output ring of ``2 H max_tau + L`` words at least (a whole number of entries). From the
    cycle after a group's last ``dz``, the entries all of whose words are in are written, one a
    cycle, to ``out_addr`` onwards (the last one's words past ``n tau`` zero); a group's entries
    take at most ``tau`` cycles, so they are out before the next group's are in. With ``G =
    ceil(n / H)`` groups, the last group starts on cycle

        B = max(ceil(min(H, n) tau / L) + 2 + (G - 1) tau,      the lanes, from group 0
                ceil(n / L) + ceil(n tau / L) + 1,              every read back to back
                G (tau + 1) if H = L and G >= 2)                read-bound, tau + 1 a group

    (when ``H = L`` a group is a block: ``tau + 1`` reads for ``tau`` cycles of lanes, so
    groups but the last start ``tau + 1`` apart; for ``H < L`` the reads keep ahead), and done
    on the last write:

        cycles = B + 2 tau + HASH_GRAD_DEPTH + ceil(n tau / L) - (G - 1) H tau // L

    Both: :func:`hwsim.units.lookup.hash_cycles`; 2 when ``n = tokens x chunks`` is 0. The
    engine reads every ``z`` word of an entry before it writes that entry's ``dz``, so
    ``out_addr = in_addr`` (in place) is safe; other overlaps of the operands are not.

    Parameters
    ----------
    config : AcceleratorConfig
        ``lookup.hash_lanes`` must divide ``vector.lanes``.
    max_tau : int, optional
        Widest chunk (``tau``) the engine takes; default ``lookup.max_tau``.

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

    def __init__(self, config: AcceleratorConfig, *, max_tau: int | None = None):
        L, H = config.vector.lanes, config.lookup.hash_lanes
        max_tau = config.lookup.max_tau if max_tau is None else max_tau
        if L % H:
            raise ValueError(f"the RTL hash needs lookup.hash_lanes ({H}) to divide "
                             f"vector.lanes ({L})")
        self.lanes, self.H, self.max_tau = L, H, max_tau
        # the dz ring: a group being written, the one before it and the rest of an entry
        self.out_words = L * -(-(2 * H * max_tau + L - 1) // L)
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
        max_tau`` (modes 0 and 1: two cycles a group carry its two entry writes; modes 2
        and 3 take the same)."""
        return (tau >= 2) & (tau <= self.max_tau)

    def elaborate(self, platform):
        m = Module()
        L, H, TM = self.lanes, self.H, self.max_tau
        R = L // H  # groups a block (a g entry)
        D = HASH_LANE_DEPTH
        nbits = len(self.tokens) + len(self.chunks)
        wbits = nbits + 5

        # --- the command --------------------------------------------------------------
        run = Signal()
        tau = Signal.like(self.width)
        scale, official, bwd = Signal(32), Signal(), Signal()
        n = Signal(nbits)
        N = Signal(wbits)  # words of z
        Wg = Signal(range(H * 31 + 1))  # words a group
        groups = Signal(nbits)
        p_ptr, r_ptr = Signal(ADDR_BITS), Signal(ADDR_BITS)
        n_in = self.tokens * self.chunks
        N_in = n_in * self.width
        gc = Signal(nbits)  # group in (or next to) the lanes

        # --- the reads: z entries into the ring of three groups; g entries (modes 2, 3) -----
        e_next, e_left = Signal(ADDR_BITS), Signal(wbits)
        lim = Signal(wbits + 2)  # words the ring may hold: to the end of group gc + 2
        issued_words = Signal(wbits + 2)
        arriving, g_arriving = Signal(), Signal()
        written = Signal(wbits + 2)  # words in the ring so far
        want_g = Signal()  # the next read is a block's g entry
        zk = Signal(range(TM))  # z entries read of the block
        g_next, g_left = Signal(ADDR_BITS), Signal(nbits)
        g_gate = Signal(nbits + 1)  # gc the next g entry waits for: its register is free
        upto = issued_words + L
        read_z = run & ~want_g & (e_left != 0) & (Mux(upto > N, N, upto) <= lim)
        read_g = run & want_g & (gc >= g_gate)
        m.d.comb += [self.rd.addr.eq(Mux(want_g, g_next, e_next)),
                     self.rd.en.eq(read_z | read_g)]
        m.d.sync += [arriving.eq(read_z), g_arriving.eq(read_g)]
        with m.If(read_z):
            m.d.sync += [e_next.eq(e_next + 1), e_left.eq(e_left - 1),
                         issued_words.eq(issued_words + L)]
            with m.If(zk == tau - 1):
                m.d.sync += [zk.eq(0), want_g.eq(g_left != 0)]
            with m.Else():
                m.d.sync += zk.eq(zk + 1)
        with m.If(read_g):
            m.d.sync += [g_next.eq(g_next + 1), g_left.eq(g_left - 1), want_g.eq(0),
                         g_gate.eq(g_gate + R)]
        g_regs = [Signal(32 * L, name=f"g_entry{i}") for i in range(2)]
        g_wslot = Signal()
        with m.If(g_arriving):
            m.d.sync += g_wslot.eq(~g_wslot)
            for i, reg in enumerate(g_regs):
                with m.If(g_wslot == i):
                    m.d.sync += reg.eq(self.rd.data)

        # the place of the next z word to arrive: its group's ring slot, its position in the
        # group (lane x tau + element)
        w_slot, w_pos = Signal(range(3)), Signal(range(H * TM))
        cells = [Signal(32, name=f"z{i}") for i in range(3 * H * TM)]
        ring = Array(cells)
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
        gslot = Signal(range(3))
        g_rslot, g_oi = Signal(), Signal(range(R))  # group gc's g: register, entry offset / H
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
                         need.eq(Mux(nxt > N, N, nxt)), lim.eq(lim + Wg),
                         g_oi.eq(Mux(g_oi == R - 1, 0, g_oi + 1)),
                         g_rslot.eq(g_rslot ^ (g_oi == R - 1))]

        chunks = Signal.like(self.chunks)
        k_base = Signal.like(self.chunks)  # lane 0's chunk within its token
        ks = [k_base]
        for i in range(H):
            k = Signal.like(k_base, name=f"k{i + 1}")
            m.d.comb += k.eq(Mux(ks[-1] + 1 == chunks, 0, ks[-1] + 1))
            ks.append(k)
        with m.If(on & last):
            m.d.sync += k_base.eq(ks[H])
        weights, valid_out, grads = [], [], []
        code_pipe = [[Signal(32, name=f"row{ln}_{s}") for s in range(D)] for ln in range(H)]
        live_pipe = [[Signal(name=f"live{ln}_{s}") for s in range(D)] for ln in range(H)]
        # the fetch stage: each lane's element (and g) read from the ring into a register
        f_on, f_first, f_last = Signal(), Signal(), Signal()
        m.d.sync += [f_on.eq(on), f_first.eq(e == 0), f_last.eq(last)]
        for ln in range(H):
            m.submodules[f"lane{ln}"] = hl = HashLane()
            m.submodules[f"grad{ln}"] = gl = HashGradLane(max_tau=TM)
            grads.append(gl)
            at = Signal(range(3 * H * TM), name=f"at{ln}")
            z, live, k_ln = (Signal(32, name=f"z_lane{ln}"), Signal(name=f"live_lane{ln}"),
                             Signal.like(k_base, name=f"k_lane{ln}"))
            g_words = Array(reg[32 * (o * H + ln):32 * (o * H + ln + 1)]
                            for reg in g_regs for o in range(R))
            g_ln = Signal(32, name=f"g_lane{ln}")
            m.d.comb += at.eq(gslot * (H * TM) + ln * tau + e)
            m.d.sync += [z.eq(ring[at]), live.eq(gc * H + ln < n), k_ln.eq(ks[ln]),
                         g_ln.eq(g_words[g_rslot * R + g_oi])]
            bit = (z[31] == 0) | (z[:31] == 0)
            bit = bit & ~((z[23:31] == 0xFF) & (z[:23] != 0))
            code = Signal(32, name=f"code{ln}")
            code_now = Mux(f_first, bit, Cat(bit, code[:31]))  # code << 1 | bit
            with m.If(f_on):
                m.d.sync += code.eq(code_now)
            for lane in (hl, gl):
                m.d.comb += [lane.c.eq(scale), lane.official.eq(official),
                             lane.first.eq(f_first), lane.last.eq(f_last), lane.z.eq(z)]
            m.d.comb += [hl.in_valid.eq(f_on & live & ~bwd), gl.in_valid.eq(f_on & live & bwd),
                         gl.g.eq(g_ln)]
            m.d.sync += [code_pipe[ln][0].eq((k_ln << tau[:5])[:32] | code_now),
                         live_pipe[ln][0].eq(f_on & f_last & live & ~bwd)]
            for s in range(1, D):
                m.d.sync += [code_pipe[ln][s].eq(code_pipe[ln][s - 1]),
                             live_pipe[ln][s].eq(live_pipe[ln][s - 1])]
            weights.append(Mux(live_pipe[ln][D - 1], hl.weight, 0))
            valid_out.append(live_pipe[ln][D - 1])

        # --- modes 0, 1: pack H words into entries; write rows, then weights ---------------
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

        # --- modes 2, 3: each dz to its place in the ring; write the entries that are full --
        C = self.out_words
        dz_cells = [Signal(32, name=f"dz{i}") for i in range(C)]
        oj = Signal(range(TM))  # element on the lanes' outputs
        ob = Signal(range(C))  # the ring place of the outputs' group
        done_words = Signal(wbits + 2)  # dz words in the ring or written: whole groups
        for ln, gl in enumerate(grads):
            place = Signal(range(2 * C), name=f"dz_place{ln}")
            m.d.comb += place.eq(ob + ln * tau + oj)
            wrapped = Mux(place >= C, place - C, place)
            for k, cell in enumerate(dz_cells):
                with m.If(gl.out_valid & (wrapped == k)):
                    m.d.sync += cell.eq(gl.dz)
        with m.If(grads[0].out_valid):  # lane 0 is live in every group
            m.d.sync += oj.eq(oj + 1)
            with m.If(oj == tau - 1):
                nb, nd = ob + Wg, done_words + Wg
                m.d.sync += [oj.eq(0), ob.eq(Mux(nb >= C, nb - C, nb)),
                             done_words.eq(Mux(nd > N, N, nd))]
        ew = Signal(wbits + 2)  # dz words written
        e_row = Signal(range(C // L))  # the ring entry written next
        o_ptr = Signal(ADDR_BITS)
        emit_dz = run & bwd & (ew < N) & ((ew + L <= done_words) | (done_words == N))
        row = Array(Cat(*dz_cells[r * L:(r + 1) * L]) for r in range(C // L))[e_row]
        dz_entry = Cat(*(Mux(ew + i < N, row[32 * i:32 * i + 32], 0) for i in range(L)))
        with m.If(emit_dz):
            m.d.sync += [ew.eq(ew + L), e_row.eq(Mux(e_row == C // L - 1, 0, e_row + 1)),
                         o_ptr.eq(o_ptr + 1)]

        m.d.comb += [self.wr.en.eq(wr1 | wr2 | emit_dz),
                     self.wr.addr.eq(Mux(emit_dz, o_ptr, Mux(wr1, a1, a2))),
                     self.wr.data.eq(Mux(emit_dz, dz_entry, Mux(wr1, d1, d2)))]

        # --- start, done ------------------------------------------------------------
        over = (wr2 & (g_out == groups)) | (emit_dz & (ew + L >= N))
        empty_done = Signal()
        m.d.sync += empty_done.eq(self.start & ~run & (n_in == 0))
        with m.If(self.start & ~run):
            back = self.mode[1]  # modes 2, 3: the first read is block 0's g entry
            m.d.sync += [run.eq(n_in != 0), tau.eq(self.width), scale.eq(self.scale),
                         official.eq(self.mode[0]), bwd.eq(back), n.eq(n_in), N.eq(N_in),
                         Wg.eq(H * self.width), groups.eq(ceil_div(n_in, H)),
                         r_ptr.eq(self.out_addr), p_ptr.eq(self.p_addr),
                         e_next.eq(Mux(back, self.in_addr, self.in_addr + 1)),
                         e_left.eq(Mux(back, ceil_div(N_in, L), ceil_div(N_in, L) - 1)),
                         arriving.eq(~back), g_arriving.eq(back),
                         issued_words.eq(Mux(back, 0, L)), written.eq(0),
                         lim.eq(3 * H * self.width), w_slot.eq(0), w_pos.eq(0),
                         gc.eq(0), gslot.eq(0), active.eq(0), g_out.eq(0), k_base.eq(0),
                         chunks.eq(self.chunks),
                         need.eq(Mux(n_in < H, N_in, H * self.width)),
                         want_g.eq(0), zk.eq(0), g_next.eq(self.p_addr + 1),
                         g_left.eq(Mux(back, ceil_div(n_in, L) - 1, 0)), g_gate.eq(0),
                         g_wslot.eq(0), g_rslot.eq(0), g_oi.eq(0),
                         oj.eq(0), ob.eq(0), done_words.eq(0), ew.eq(0), e_row.eq(0),
                         o_ptr.eq(self.out_addr)]
            m.d.comb += [self.rd.addr.eq(Mux(back, self.p_addr, self.in_addr)),
                         self.rd.en.eq(1)]
        with m.If(over):
            m.d.sync += run.eq(0)
        m.d.comb += [self.done.eq(over | empty_done), self.busy.eq(run | empty_done)]
        return m
