"""The array unit: runs GEMM tiles, feeding the systolic array from the buffers and draining
results to ACC (the model is :mod:`hwsim.units.array`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from ..buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from ..decode import command_view
from ..fp32 import fp32_add
from ..units import UnitComponent, check_config
from .pe import operand_width
from .systolic_array import SystolicArray

__all__ = ["ArrayUnit", "array_group"]


def array_group(config: AcceleratorConfig) -> int:
    """G, the activations per ACT group read (the largest M the config supports; 1: dense)."""
    return max([pm for _, pm in config.array.nm_patterns], default=1)


class ArrayUnit(UnitComponent):
    """Executes GEMM tile commands (``hwsim.isa.Gemm``, ``isa.Unit.ARRAY``) on a
    :class:`SystolicArray`.

    Cycle 0 is the start cycle: the unit latches the command fields and clears the array.

    Output-stationary (``dataflow`` 0): for ``k + R + C - 1`` cycles it streams ACT entry
    ``a_addr + t`` (column ``t`` of A) and WGT entry ``b_addr + t`` (row ``t`` of B) into the
    array, skewing row ``i`` and column ``j`` by ``i`` and ``j`` cycles, then drains row ``i``
    of the accumulators into ACC entry ``c_addr + i``, one row per cycle.

    Weight-stationary (``dataflow`` 1): on cycles ``1 .. k`` it reads WGT entries
    ``b_addr + k - 1`` down to ``b_addr`` and shifts them into the array (``k <= R``; rows
    ``k..R-1`` keep the zero weights of the clear); on cycles ``k + 1 .. k + m`` it reads ACT
    entries ``a_addr + t`` (row ``t`` of A; lanes ``i >= k`` are fed +0) into the row-skewed
    left edge. The partial sum entering the top of column ``j`` is +0, or with ``accumulate``
    the old ACC entry ``c_addr + t`` (read alongside ACT entry ``a_addr + t``, skewed by ``j``
    like the activations), so the sum continues from the old value in the order of
    :func:`hwsim.numerics.fp16_matmul` with ``acc``. The bottom row's column ``j`` is delayed by
    ``C - 1 - j`` registers so that output row ``t`` is whole on cycle ``k + t + R + C + 1``,
    when it is written to ACC entry ``c_addr + t``.

    N:M sparse, output-stationary (``sparse``): ``k`` counts compressed steps, ``n`` per
    group of ``M = 2**log2m``. Step ``s`` reads WGT entry ``b_addr + s`` (the compressed values),
    IDX entry ``idx_addr + s`` (their in-group indices) and the ACT row holding entries
    ``a_addr + g*M .. a_addr + g*M + M - 1`` of its group ``g = s // n`` (``act_row``: the ACT
    buffer is banked ``G`` ways, ``G`` the largest M of the config, and ``a_addr`` is a multiple
    of M). Row ``i`` of the array receives lane ``i`` of the G entries as its group; column
    ``j`` receives the value and the select ``(a_addr + g*M) % G + idx[j]``, skewed like a dense
    operand, so PE ``(i, j)`` multiplies by ``A[i, g*M + idx[s, j]]``
    (:mod:`hwsim.sparse_tile`). Timing is that of a dense OS tile of ``k`` steps.

    N:M sparse, weight-stationary: the ``k`` compressed weight rows are preloaded with their
    IDX entries (read in the same order, ``idx_addr + k - 1`` first), each PE keeping its
    index beside its weight; activation row ``t`` is the ``E = M/N`` ACT entries from
    ``a_addr + t*E`` (``a_addr`` a multiple of E), one banked read, and array row ``i`` receives
    the M flat operands ``(i // N) * M ..`` of that row as its group. Timing is that of a dense
    WS tile.

    OS ``accumulate``: the drain writes ``old + new`` (read-modify-write; int8: wrapping int32
    add; fp16: one fp32 round-to-nearest-even addition :func:`rtl.fp32.fp32_add` per lane, so the
    tile's sum is rounded first and then added to the old value); otherwise ``new``.

    Parameters
    ----------
    config : AcceleratorConfig
        ``array.rows``, ``array.cols`` and ``array.dtype`` size the unit.
    pe_module : str, optional
        Passed to :class:`SystolicArray` (cells as instances of one PE module).

    Members
    -------
    start, busy : :class:`~rtl.units.UnitComponent`'s
    a_addr, b_addr, c_addr, idx_addr, k, m, dataflow, sparse, accumulate, n, log2m : In
        The ``isa.Gemm`` fields, as wide as there. ``k``: reduction steps (OS), preloaded
        weight rows (WS); ``m``: streamed activation rows (WS); ``n``, ``log2m``: the N:M
        pattern of a sparse tile.
    done : Out(1)
        High for one cycle, the cycle of the last ACC write.
    act : Out(ReadPortSignature(ADDR_BITS, R * W)), wgt : Out(ReadPortSignature(ADDR_BITS, C * W))
        ``W`` = 8 (int8) or 16 (fp16).
    idx : Out(ReadPortSignature(ADDR_BITS, C * 8))
    act_row : In(G * R * W)
        The ACT row of the read on ``act`` (only when the config has N:M patterns).
    acc_rd : Out(ReadPortSignature(ADDR_BITS, C * 32))
    acc_wr : Out(WritePortSignature(ADDR_BITS, C * 32))

    Commands it rejects (:meth:`accepts`, as ``hwsim.units.array`` checks): N:M tiles of a
    pattern the config lacks, of a partial group (``k`` not a multiple of N), or with
    ``a_addr`` not a multiple of M (OS) or of M/N (WS; N must divide M).

    Latency
    -------
    :meth:`cycles` gives start-to-done cycles, inclusive: OS ``k + 2R + C + 1``, WS
    ``k + m + R + C + 1``. ``hwsim.units.array`` uses the same expressions and the
    per-cycle kernels of :mod:`hwsim.systolic_array` reproduce them register by register.
    """

    UNIT = isa.Unit.ARRAY

    def __init__(self, config: AcceleratorConfig, *, pe_module: str | None = None):
        self.pe_module = pe_module
        R, C = check_config(config).array.rows, config.array.cols
        self.rows, self.cols, self.dtype = R, C, config.array.dtype
        W = operand_width(self.dtype)
        self.group = array_group(config)
        ports = {"act_row": In(self.group * R * W)} if self.group > 1 else {}
        super().__init__(config, {
            **ports,
            "act": Out(ReadPortSignature(ADDR_BITS, R * W)),
            "wgt": Out(ReadPortSignature(ADDR_BITS, C * W)),
            "idx": Out(ReadPortSignature(ADDR_BITS, C * 8)),
            "acc_rd": Out(ReadPortSignature(ADDR_BITS, C * 32)),
            "acc_wr": Out(WritePortSignature(ADDR_BITS, C * 32)),
        })

    def accepts(self, word):
        """Dense tiles in either dataflow; N:M tiles of the config's patterns, whole groups,
        ``a_addr`` aligned for the banked ACT read (class docstring)."""
        g = command_view(isa.Gemm, word)
        os_ = g.dataflow == isa.Dataflow.OS
        patterns = []
        for pn, pm in self.config.array.nm_patterns:
            lm = pm.bit_length() - 1
            ok = (g.n == pn) & (g.log2m == lm)
            if pn > 1:
                ok = ok & (g.k % pn == 0)
            le = (pm // pn).bit_length() - 1
            ws_ok = Const(0) if pm % pn else g.a_addr[:le] == 0 if le else Const(1)
            os_ok = g.a_addr[:lm] == 0 if lm else Const(1)
            patterns.append(ok & Mux(os_, os_ok, ws_ok))
        sparse_ok = sum(patterns) != 0 if patterns else Const(0)
        return ~g.sparse | sparse_ok

    @staticmethod
    def cycles(k: int, rows: int, cols: int, *, dataflow: int = 0, m: int = 0) -> int:
        """Start-to-done cycles, inclusive, of one tile (``dataflow`` 0: OS, 1: WS)."""
        if dataflow:
            return k + m + rows + cols + 1
        return k + 2 * rows + cols + 1

    def elaborate(self, platform):
        mod = Module()
        R, C = self.rows, self.cols
        W = operand_width(self.dtype)
        G = self.group
        lb = G.bit_length() - 1
        mod.submodules.array = array = SystolicArray(R, C, self.dtype, G,
                                                     pe_module=self.pe_module)

        a_addr, b_addr, c_addr = (Signal.like(f, name=f.name) for f in
                                  (self.a_addr, self.b_addr, self.c_addr))
        k, mm = Signal.like(self.k, name="k"), Signal.like(self.m, name="mm")
        acc_mode, ws = Signal(), Signal()
        t = Signal(18)  # OS feed step; WS cycles since start
        d = Signal(range(R + 2))  # OS drain step
        valid = Signal()  # the ACT/WGT data on the read ports this cycle are a tile's operands
        load = Signal()  # WS: the WGT data on the read port this cycle are a weight row
        lane_on = Signal(R)  # WS: activation lanes i < k; OS: all lanes
        # N:M sparse OS: slot within the group, the group's first ACT entry, the pattern
        sparse, n_q = Signal(), Signal.like(self.n, name="n_q")
        log2m_q = Signal.like(self.log2m, name="log2m_q")
        idx_addr, grp = Signal.like(self.idx_addr, name="idx_addr"), Signal(ADDR_BITS)
        slot = Signal.like(self.n, name="slot")
        base_q = Signal(max(lb, 1))  # the read's offset in its ACT row, aligned with data
        esh = Signal(3)  # WS sparse: log2(M / N), ACT entries per activation row

        # WS schedule (t counts cycles since start): weight reads 1..k, activation (and, when
        # accumulating, old ACC) reads k+1..k+m, ACC writes k+R+C+1..k+R+C+m.
        act_step = Signal(18)
        wr_row = Signal(18)
        mod.d.comb += [
            act_step.eq(t - k - 1),
            wr_row.eq(t - (k + R + C + 1)),
            self.act.addr.eq(Mux(sparse & ~ws, grp,
                                 a_addr + Mux(ws, (act_step << esh)[:ADDR_BITS], t[:ADDR_BITS]))),
            self.wgt.addr.eq(b_addr + Mux(ws, (k - t)[:ADDR_BITS], t[:ADDR_BITS])),
            self.idx.addr.eq(idx_addr + Mux(ws, (k - t)[:ADDR_BITS], t[:ADDR_BITS])),
            self.act.en.eq(1),
            self.wgt.en.eq(1),
            self.idx.en.eq(sparse),
        ]
        if G > 1:
            mod.d.sync += base_q.eq(self.act.addr[:lb])

        # Skew: row i (column j) passes through i (j) registers before entering the array.
        a_edge = Mux(valid, self.act.data & _lanes(lane_on, W), 0)
        b_edge = Mux(valid & ~ws, self.wgt.data, 0)
        for i in range(R):
            sig = a_edge[i * W:(i + 1) * W]
            if G > 1:
                # a group: the dense operand in lane 0; OS sparse: lane i of each entry of the
                # ACT row; WS sparse: the M flat operands of row i's group (below)
                group = Cat(*(self.act_row[(g * R + i) * W:(g * R + i + 1) * W]
                              for g in range(G)))
                group = Mux(ws, self._ws_group(mod, i, base_q, n_q, log2m_q) & Mux(
                    lane_on[i], (1 << G * W) - 1, 0), group)
                sig = Mux(valid & sparse, group, Cat(sig, Const(0, (G - 1) * W)))
            for s in range(i):
                reg = Signal(len(sig), name=f"a_skew_{i}_{s}")
                mod.d.sync += reg.eq(sig)
                sig = reg
            mod.d.comb += array.a_in[i].eq(sig)
        for j in range(C):
            sig = b_edge[j * W:(j + 1) * W]
            for s in range(j):
                reg = Signal(W, name=f"b_skew_{j}_{s}")
                mod.d.sync += reg.eq(sig)
                sig = reg
            # WS weight rows bypass the skew: all columns shift together
            mod.d.comb += array.b_in[j].eq(Mux(load, self.wgt.data[j * W:(j + 1) * W], sig))
            if G > 1:
                sel = Mux(valid & sparse & ~ws, base_q + self.idx.data[j * 8:j * 8 + lb], 0)
                for s in range(j):
                    reg = Signal(lb, name=f"sel_skew_{j}_{s}")
                    mod.d.sync += reg.eq(sel)
                    sel = reg
                # WS: each weight's index is loaded with it (0 for dense weights)
                ws_sel = Mux(sparse, self.idx.data[j * 8:j * 8 + lb], 0)
                mod.d.comb += array.sel_in[j].eq(Mux(load, ws_sel, sel))
        # WS top-edge partial sums: +0, or the old ACC row (accumulate), skewed like b.
        for j in range(C):
            sig = Mux(valid & ws & acc_mode, self.acc_rd.data[j * 32:(j + 1) * 32], 0)
            for s in range(j):
                reg = Signal(32, name=f"psum_skew_{j}_{s}")
                mod.d.sync += reg.eq(sig)
                sig = reg
            mod.d.comb += array.psum_in[j].eq(sig)
        mod.d.comb += [array.ws.eq(ws), array.load.eq(load)]

        # WS output de-skew: column j of the bottom row waits C - 1 - j cycles.
        ws_row = []
        for j in range(C):
            sig = Value.cast(array.acc[R - 1][j])
            for s in range(C - 1 - j):
                reg = Signal(32, name=f"out_skew_{j}_{s}")
                mod.d.sync += reg.eq(sig)
                sig = reg
            ws_row.append(sig)

        # OS drain row: accumulators of row d - 1.
        row_sel = Signal(range(R))
        os_row = Signal(unsigned(C * 32))
        with mod.Switch(row_sel):
            for i in range(R):
                with mod.Case(i):
                    mod.d.comb += os_row.eq(array.acc[i].as_value())
        new = Signal(C * 32)
        mod.d.comb += new.eq(Mux(ws, Cat(*ws_row), os_row))
        lanes = []
        for j in range(C):
            old_j = self.acc_rd.data[j * 32:(j + 1) * 32]
            new_j = new[j * 32:(j + 1) * 32]
            rmw = acc_mode & ~ws
            if self.dtype == "int8":
                lanes.append((Mux(rmw, old_j, 0) + new_j)[:32])
            else:
                lanes.append(Mux(rmw, fp32_add(mod, old_j, new_j, name=f"rmw_{j}"), new_j))
        mod.d.comb += [self.acc_wr.data.eq(Cat(*lanes)), row_sel.eq(d - 1)]

        with mod.FSM():
            with mod.State("IDLE"):
                mod.d.sync += [valid.eq(0), load.eq(0)]
                with mod.If(self.start):
                    mod.d.sync += [a_addr.eq(self.a_addr), b_addr.eq(self.b_addr),
                                   c_addr.eq(self.c_addr), k.eq(self.k), mm.eq(self.m),
                                   acc_mode.eq(self.accumulate), ws.eq(self.dataflow),
                                   t.eq(Mux(self.dataflow, 1, 0)),
                                   sparse.eq(self.sparse), n_q.eq(self.n),
                                   log2m_q.eq(self.log2m), idx_addr.eq(self.idx_addr),
                                   slot.eq(0), grp.eq(self.a_addr)]
                    mod.d.sync += esh.eq(0)
                    with mod.If(self.sparse), mod.Switch(self.n):
                        for pn in (1, 2, 4, 8):
                            with mod.Case(pn):
                                mod.d.sync += esh.eq(self.log2m - (pn.bit_length() - 1))
                    mod.d.sync += [lane_on[i].eq(~self.dataflow | (self.k > i))
                                   for i in range(R)]
                    mod.d.comb += array.clear.eq(1)
                    with mod.If(self.dataflow):
                        mod.next = "WS"
                    with mod.Else():
                        mod.next = "FEED"
            with mod.State("FEED"):
                mod.d.comb += self.busy.eq(1)
                mod.d.sync += [valid.eq(t < k), t.eq(t + 1)]
                with mod.If(slot == n_q - 1):
                    mod.d.sync += [slot.eq(0), grp.eq(grp + (Const(1, 9) << log2m_q))]
                with mod.Else():
                    mod.d.sync += slot.eq(slot + 1)
                with mod.If(t == k + R + C - 2):
                    mod.d.sync += d.eq(0)
                    mod.next = "DRAIN"
            with mod.State("DRAIN"):
                mod.d.comb += [self.busy.eq(1), self.acc_rd.en.eq(1),
                               self.acc_rd.addr.eq(c_addr + d),
                               self.acc_wr.addr.eq(c_addr + d - 1)]
                mod.d.sync += [valid.eq(0), d.eq(d + 1)]
                with mod.If(d != 0):
                    mod.d.comb += self.acc_wr.en.eq(1)
                with mod.If(d == R):
                    mod.d.comb += self.done.eq(1)
                    mod.next = "IDLE"
            with mod.State("WS"):
                reading = (t > k) & (act_step < mm)
                mod.d.comb += [self.busy.eq(1),
                               self.acc_rd.addr.eq(c_addr + act_step[:ADDR_BITS]),
                               self.acc_wr.addr.eq(c_addr + wr_row[:ADDR_BITS])]
                mod.d.sync += [t.eq(t + 1), load.eq(t <= k), valid.eq(reading)]
                with mod.If(reading & acc_mode):
                    mod.d.comb += self.acc_rd.en.eq(1)
                with mod.If((t >= k + R + C + 1) & (wr_row < mm)):
                    mod.d.comb += self.acc_wr.en.eq(1)
                with mod.If(t == k + mm + R + C):
                    mod.d.comb += self.done.eq(1)
                    mod.next = "IDLE"
        return mod


    def _ws_group(self, mod, i, base, n_q, log2m_q):
        """WS sparse: the M flat operands of array row ``i``'s group in the ACT row, as a
        G-lane group. The row holds G entries of R lanes (flat operand ``e*R + lane``); the
        activation row starts at entry ``base`` (a multiple of E = M/N), and row ``i`` takes
        flat operands ``base*R + (i // N) * M ..`` (one mux input per pattern and base)."""
        G, R, W = self.group, self.rows, operand_width(self.dtype)
        out = Signal(G * W, name=f"ws_group_{i}")
        sel = Const(0, G * W)
        for pn, pm in self.config.array.nm_patterns:
            if pm % pn:
                continue  # not a weight-stationary pattern (the controller refuses it)
            e = pm // pn
            for b in range(0, G, e):
                off = b * R + i // pn * pm
                if off + pm > G * R:
                    continue  # a row no whole group reaches
                hit = (n_q == pn) & (log2m_q == pm.bit_length() - 1) & (base == b)
                sel = Mux(hit, self.act_row[off * W:(off + pm) * W], sel)
        mod.d.comb += out.eq(sel)
        return out


def _lanes(mask, width):
    """Expand a per-lane enable into a bit mask of ``width``-bit lanes."""
    return Cat(*(mask[i].replicate(width) for i in range(len(mask))))
