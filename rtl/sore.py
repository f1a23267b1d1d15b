"""The SORE unit, the sparse online reduction engine: PRUNE (dense -> N:M compressed across
entries). The model is :mod:`hwsim.units.sore`."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib.wiring import Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from .buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from .decode import command_view
from .units import UnitComponent, check_config

__all__ = ["Sore"]


def _bits(n: int) -> int:
    """Bits of a counter over ``range(n)``, at least one."""
    return max(1, (n - 1).bit_length())


class Sore(UnitComponent):
    """``lanes`` streaming top-N-of-M selectors executing PRUNE with ``axis=1``
    (``isa.Unit.SORE``).

    The specification is :mod:`hwsim.units.sore` (semantics, the fp16 magnitude rule, the schedule);
    this component is that schedule in gates. In short: each group of ``M = 2**log2m`` source
    entries is read ``P = ceil(C / lanes)`` times, one entry per cycle, lane ``l`` of pass
    ``p`` inserting column ``p*lanes + l`` into an insertion list of ``N`` slots (largest
    magnitude first, ties to the earlier element); on the cycle after a pass the survivors,
    reordered by index, go to an N x C staging register, and after a group's last pass its
    ``N`` value and index entries are written on the next ``N`` cycles while the next group
    streams in.

    Parameters
    ----------
    config : AcceleratorConfig
        ``array.cols`` (C) elements per entry of ``array.dtype`` (int8 or fp16);
        ``sore.lanes`` lanes; the lanes are sized for the largest N and M of
        ``array.patterns``.
    lanes : int, optional
        Override ``config.sore.lanes`` (single-lane synthesis, lane sweeps).

    Members
    -------
    start : In(1)
        Begin the command on the field inputs (ignored while ``busy``).
    src_addr, dst_addr, idx_addr : In
        First source entry, first value entry (WGT), first index entry (IDX).
    rows : In
        Source entries, a multiple of ``2**log2m``; a remainder is ignored.
    n, log2m : In
        The pattern; it must be one of ``array.patterns`` (:meth:`accepts`; the unit's
        behaviour on others is undefined).
        (Each field as wide as in ``isa.Prune``.)
    done : Out(1)
        High for one cycle: the cycle of the last write (or the cycle after ``start`` when
        ``rows < 2**log2m``).
    busy : Out(1)
        From the cycle after ``start`` to ``done``, inclusive.
    src : Out(ReadPortSignature(ADDR_BITS, C * e))
        Source buffer read port, synchronous, latency 1; ``e`` = 8 (int8) or 16 (fp16).
    dst : Out(WritePortSignature(ADDR_BITS, C * e))
        Value entries (WGT write port).
    idx : Out(WritePortSignature(ADDR_BITS, C * 8))
        Index entries, one byte per column (IDX write port).

    Commands it rejects (:meth:`accepts`, as ``hwsim.units.sore.check_prune``): a pattern the
    config lacks, ``axis`` 0, ``rows`` not a multiple of M, a source other than WGT.

    Latency
    -------
    :meth:`cycles`: start to done inclusive, ``rows * ceil(C / lanes) + n + 3`` (2 when
    ``rows == 0``), the same as ``hwsim.units.sore.prune_cycles``.

    Raises
    ------
    TypeError
        If ``config`` is not an ``AcceleratorConfig`` or ``lanes`` not a positive integer.
    ValueError
        If the config has no N:M pattern.
    """

    UNIT = isa.Unit.SORE

    def __init__(self, config: AcceleratorConfig, *, lanes: int | None = None):
        lanes = check_config(config).sore.lanes if lanes is None else lanes
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise TypeError(f"lanes must be a positive integer, not {lanes!r}")
        if not config.array.patterns:
            raise ValueError(f"config {config.name!r} has no N:M pattern (array.patterns is "
                             f"empty), so the SORE has nothing to prune")
        self.cols = config.array.cols
        self.lanes = lanes
        self.passes = -(-self.cols // lanes)
        self.elem_bits = 8 * config.array.elem_bytes
        self.is_fp = config.array.dtype == "fp16"
        self.max_n = max(n for n, _ in config.array.nm_patterns)
        self.max_m = max(m for _, m in config.array.nm_patterns)
        super().__init__(config, {
            "src": Out(ReadPortSignature(ADDR_BITS, self.cols * self.elem_bits)),
            "dst": Out(WritePortSignature(ADDR_BITS, self.cols * self.elem_bits)),
            "idx": Out(WritePortSignature(ADDR_BITS, self.cols * 8)),
        }, fields=("src_addr", "dst_addr", "idx_addr", "rows", "n", "log2m"))

    @staticmethod
    def present(config: AcceleratorConfig) -> bool:
        """Whether ``config``'s machine has a SORE: it has N:M patterns."""
        return bool(config.array.patterns)

    def accepts(self, word):
        """PRUNEs of the config's patterns along axis 1, of whole groups, from WGT."""
        p = command_view(isa.Prune, word)
        pattern_ok = sum((p.n == pn) & (p.log2m == pm.bit_length() - 1)
                         for pn, pm in self.config.array.nm_patterns) != 0
        return (pattern_ok & p.axis & (p.src_buf == isa.Buffer.WGT)
                & ((p.rows & ((1 << p.log2m) - 1)) == 0))

    @staticmethod
    def cycles(rows: int, width: int, n: int, m: int, lanes: int) -> int:
        """Start-to-done cycles, inclusive (see Latency)."""
        return 2 if rows == 0 else rows * -(-width // lanes) + n + 3

    def elaborate(self, platform):
        m = Module()
        C, L, P, EB = self.cols, self.lanes, self.passes, self.elem_bits
        NS = self.max_n
        IB = _bits(self.max_m)
        KB = 15 if self.is_fp else 8

        # command registers
        nlast = Signal.like(self.n, name="nlast")
        mlast = Signal(IB)
        g_left = Signal.like(self.rows, name="g_left")
        # read stage: entry gbase + i of pass p
        rd_on = Signal()
        i = Signal(IB)
        p = Signal(_bits(P))
        gbase = Signal(ADDR_BITS)
        # tags of the data on the read port this cycle
        d_ok, d_first, d_last, d_final = Signal(), Signal(), Signal(), Signal()
        d_pass = Signal(_bits(P))
        d_i = Signal(IB)
        # capture stage and writer
        cap, cap_final = Signal(), Signal()
        cap_pass = Signal(_bits(P))
        w_on, w_final = Signal(), Signal()
        w_j = Signal(_bits(NS))
        w_dst, w_idx = Signal(ADDR_BITS, name="w_dst"), Signal(ADDR_BITS, name="w_idx")

        m.d.comb += [self.src.addr.eq(gbase + i), self.src.en.eq(rd_on)]
        m.d.sync += [d_ok.eq(rd_on), cap.eq(d_ok & d_last), cap_pass.eq(d_pass),
                     cap_final.eq(d_final)]
        with m.If(rd_on):
            group_end = (i == mlast) & (p == P - 1)
            m.d.sync += [d_first.eq(i == 0), d_last.eq(i == mlast), d_pass.eq(p), d_i.eq(i),
                         d_final.eq(group_end & (g_left == 1))]
            with m.If(i != mlast):
                m.d.sync += i.eq(i + 1)
            with m.Else():
                m.d.sync += i.eq(0)
                with m.If(p != P - 1):
                    m.d.sync += p.eq(p + 1)
                with m.Else():
                    m.d.sync += [p.eq(0), gbase.eq(gbase + mlast + 1), g_left.eq(g_left - 1)]
                    with m.If(g_left == 1):
                        m.d.sync += rd_on.eq(0)

        # lanes
        stage_v = [[Signal(EB, name=f"stage_v_{j}_{c}") for c in range(C)] for j in range(NS)]
        stage_i = [[Signal(IB, name=f"stage_i_{j}_{c}") for c in range(C)] for j in range(NS)]
        for lane in range(L):
            sel_v, sel_i = self._lane(m, lane, d_ok, d_first, d_pass, d_i, nlast, KB, IB)
            for c in range(lane, C, L):
                with m.If(cap & (cap_pass == c // L)):
                    for j in range(NS):
                        m.d.sync += [stage_v[j][c].eq(sel_v[j]), stage_i[j][c].eq(sel_i[j])]

        # writer: entry w_j of the staging register
        row_v = Signal(C * EB)
        row_i = Signal(C * 8)
        with m.Switch(w_j):
            for j in range(NS):
                with m.Case(j):
                    m.d.comb += [row_v.eq(Cat(*stage_v[j])),
                                 row_i.eq(Cat(*(Cat(s, Const(0, 8 - IB)) if IB < 8 else s[:8]
                                                for s in stage_i[j])))]
        m.d.comb += [
            self.dst.addr.eq(w_dst), self.dst.data.eq(row_v), self.dst.en.eq(w_on),
            self.idx.addr.eq(w_idx), self.idx.data.eq(row_i), self.idx.en.eq(w_on),
        ]
        with m.If(w_on):
            m.d.sync += [w_dst.eq(w_dst + 1), w_idx.eq(w_idx + 1)]
            with m.If(w_j == nlast):
                m.d.sync += w_on.eq(0)
            with m.Else():
                m.d.sync += w_j.eq(w_j + 1)
        with m.If(cap & (cap_pass == P - 1)):
            m.d.sync += [w_on.eq(1), w_j.eq(0), w_final.eq(cap_final)]
        finished = w_on & w_final & (w_j == nlast)

        groups = self.rows >> self.log2m
        self.run_fsm(m, [
            nlast.eq(self.n - 1), mlast.eq((Const(1, 8) << self.log2m) - 1),
            g_left.eq(groups), rd_on.eq(groups != 0), i.eq(0), p.eq(0),
            gbase.eq(self.src_addr), w_dst.eq(self.dst_addr), w_idx.eq(self.idx_addr),
        ], empty=groups == 0, finished=finished)
        return m

    def _lane(self, m, lane, d_ok, d_first, d_pass, d_i, nlast, KB, IB):
        """One top-N selector; returns its survivors in increasing index order."""
        EB, NS, L = self.elem_bits, self.max_n, self.lanes
        x = Signal(EB, name=f"lane{lane}_x")
        with m.Switch(d_pass):
            for p in range(self.passes):
                c = p * L + lane
                if c < self.cols:
                    with m.Case(p):
                        m.d.comb += x.eq(self.src.data[c * EB:(c + 1) * EB])
        key = Signal(KB, name=f"lane{lane}_key")
        if self.is_fp:
            m.d.comb += key.eq(x[:15])
        else:
            xs = x.as_signed()
            m.d.comb += key.eq(Mux(xs < 0, -xs, xs)[:8])  # |-128| = 128 fits unsigned 8 bits
        s_key = [Signal(KB, name=f"lane{lane}_key{s}") for s in range(NS)]
        s_val = [Signal(EB, name=f"lane{lane}_val{s}") for s in range(NS)]
        s_idx = [Signal(IB, name=f"lane{lane}_idx{s}") for s in range(NS)]
        s_ok = [Signal(name=f"lane{lane}_ok{s}") for s in range(NS)]
        # slot s holds its element if it is at least as large as the new one (earlier wins)
        ge = [Signal(name=f"lane{lane}_ge{s}") for s in range(NS)]
        for s in range(NS):
            m.d.comb += ge[s].eq(s_ok[s] & ~d_first & (s_key[s] >= key))
        with m.If(d_ok):
            for s in range(NS):
                live = s <= nlast
                above = ge[s - 1] if s else 1  # the slots above keep their elements
                with m.If(~ge[s] & above):
                    m.d.sync += [s_key[s].eq(key), s_val[s].eq(x), s_idx[s].eq(d_i),
                                 s_ok[s].eq(live)]
                if s:
                    with m.Elif(~ge[s]):  # shift down behind the new element
                        m.d.sync += [s_key[s].eq(s_key[s - 1]), s_val[s].eq(s_val[s - 1]),
                                     s_idx[s].eq(s_idx[s - 1]),
                                     s_ok[s].eq(s_ok[s - 1] & ~d_first & live)]
        # reorder by index: a slot's output position is the number of valid smaller indices
        sel_v = [Signal(EB, name=f"lane{lane}_out_v{j}") for j in range(NS)]
        sel_i = [Signal(IB, name=f"lane{lane}_out_i{j}") for j in range(NS)]
        ranks = [sum(s_ok[t] & (s_idx[t] < s_idx[s]) for t in range(NS) if t != s)
                 for s in range(NS)]
        for j in range(NS):
            hits = [s_ok[s] & (ranks[s] == j) for s in range(NS)]
            m.d.comb += [
                sel_v[j].eq(_or(s_val[s] & hits[s].replicate(EB) for s in range(NS))),
                sel_i[j].eq(_or(s_idx[s] & hits[s].replicate(IB) for s in range(NS))),
            ]
        return sel_v, sel_i


def _or(values):
    out = Const(0)
    for v in values:
        out = out | v
    return out
