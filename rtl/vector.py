"""The vector unit, the weight-update engine: UPDATE (fp32 SGD / SGD with momentum, fp16
copy). The model is :mod:`hwsim.units.vector`."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.units.vector import ADAM

from .buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from .decode import REGISTERS, command_view
from .fp32 import fp32_add, fp32_mul, fp32_to_fp16
from .units import UnitComponent, check_config

__all__ = ["HYPER_PARAMETERS", "VectorUnit"]

_SIGN32 = 0x80000000
_REG_BITS = dict(isa.SetReg.FIELDS)["value"]

HYPER_PARAMETERS = ("lr", "momentum", "weight_decay")
"""The members fed from controller registers ``hp_base``, ``hp_base + 1``, ``hp_base + 2``."""


class VectorUnit(UnitComponent):
    """``lanes`` fp32 lanes executing UPDATE (``isa.Unit.VECTOR``) with optimizer 0 (SGD),
    1 (SGD with momentum) or 3 (its first step, ``v = g'``).

    The specification is :mod:`hwsim.units.vector` (the operations and their order, the VEC
    layout, the schedule); this component is that schedule in gates. In short: a new entry
    starts every ``P`` cycles (3 with momentum, 2 without) by reading its ``w``, ``g`` and
    ``v`` entries on consecutive cycles through the one read port; each lane is an 8-stage
    pipeline with one fp32 operation per stage (``wd*w``, ``+g``, ``mu*v``, ``+``, ``lr*v'``,
    ``w-``, fp16 cast) and the entry's ``v``, ``w`` and fp16 writes leave on stages 6, 7 and 8
    through the one write port (an fp16 out entry, ``2 * lanes`` halves, every second entry).
    Words at and beyond ``count`` in the last entry are written back unchanged; their fp16
    slots are ``+0``.

    Parameters
    ----------
    config : AcceleratorConfig
        ``vector.lanes`` (L) fp32 words per VEC entry and lanes.

    Members
    -------
    start : In(1)
        Begin the command on the field inputs (ignored while ``busy``); all inputs, the
        hyper-parameters included, are latched on this cycle.
    w_addr, g_addr, v_addr, out_addr : In
        First VEC entry of the weights, gradients, momentum state and fp16 copy.
    count : In
        fp32 words to update.
    optimizer : In
        0, 1 or 3 (:meth:`accepts` rejects 2, Adam, like ``hwsim.units.vector.check_update``;
        the unit's behaviour on it is undefined).
        (Each field as wide as in ``isa.Update``.)
    lr, momentum, weight_decay : In(32)
        fp32 bit patterns (:data:`HYPER_PARAMETERS`: controller registers ``hp_base``,
        ``hp_base + 1``, ``hp_base + 2``, :meth:`register_inputs`; UPDATEs whose three
        registers do not all exist are rejected).
    done : Out(1)
        High for one cycle: the cycle of the last write (the cycle after ``start`` when
        ``count == 0``).
    busy : Out(1)
        From the cycle after ``start`` to ``done``, inclusive.
    rd : Out(ReadPortSignature(ADDR_BITS, 32 * L))
        VEC read port, synchronous, latency 1 (``rtl.buffers.BufferMemory``'s ``rd``).
    wr : Out(WritePortSignature(ADDR_BITS, 32 * L))
        VEC write port (whole entries; word ``k`` in bits ``[32k, 32k + 32)``).

    Latency
    -------
    :attr:`stages` = 8: an entry issued (its ``w`` read) on cycle ``s`` has its out write on
    cycle ``s + 8``. :meth:`cycles`: start to done inclusive, ``P * ceil(count / L) + 10 - P``
    (2 when ``count == 0``), the same as ``hwsim.units.vector.update_cycles``. The logic
    between registers is one fp32 multiplier or adder (no timing closure claimed).

    Raises
    ------
    TypeError
        If ``config`` is not an ``AcceleratorConfig``.
    ValueError
        If ``vector.lanes`` makes an entry wider than 2048 bits (64 lanes).
    """

    UNIT = isa.Unit.VECTOR
    stages = 8

    def __init__(self, config: AcceleratorConfig):
        lanes = check_config(config).vector.lanes
        if lanes > 64:
            raise ValueError(f"vector.lanes must be at most 64 (2048-bit VEC entries), not "
                             f"{lanes}")
        self.lanes = lanes
        super().__init__(config, {
            **{name: In(_REG_BITS) for name in HYPER_PARAMETERS},
            "rd": Out(ReadPortSignature(ADDR_BITS, 32 * lanes)),
            "wr": Out(WritePortSignature(ADDR_BITS, 32 * lanes)),
        }, fields=("w_addr", "g_addr", "v_addr", "out_addr", "count", "optimizer"))

    def accepts(self, word):
        """UPDATEs other than Adam whose hyper-parameter registers all exist."""
        u = command_view(isa.Update, word)
        return (u.optimizer != ADAM) & (u.hp_base <= REGISTERS - len(HYPER_PARAMETERS))

    def register_inputs(self, word, regs):
        """The hyper-parameters of the UPDATE ``word``: registers ``hp_base`` on."""
        u = command_view(isa.Update, word)
        return {name: regs[u.hp_base + i] for i, name in enumerate(HYPER_PARAMETERS)}

    @staticmethod
    def cycles(count: int, lanes: int, optimizer: int) -> int:
        """Start-to-done cycles, inclusive (see Latency)."""
        period = 2 if optimizer == 0 else 3
        entries = -(-count // lanes)
        return 2 if entries == 0 else period * entries + 10 - period

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        S = self.stages

        # command registers
        w_addr, g_addr, v_addr, out_addr = (Signal(ADDR_BITS, name=n) for n in
                                             ("c_w_addr", "c_g_addr", "c_v_addr", "c_out_addr"))
        opt = Signal.like(self.optimizer, name="opt")
        lr, mu, wd = Signal(32), Signal(32), Signal(32)
        momentum = opt != 0  # reads v and writes it
        # issue stage: next entry, words left, cycles since the last issue
        iss_on = Signal()
        e_next = Signal(ADDR_BITS)
        rem = Signal.like(self.count, name="rem")
        phase = Signal(2)
        period_last = Mux(opt == 0, 1, 2)

        # pipeline tags, index k = the stage that reads them (1..S)
        ok = [Signal(name=f"ok{k}") for k in range(S + 1)]
        ent = [Signal(ADDR_BITS, name=f"ent{k}") for k in range(S + 1)]
        last = [Signal(name=f"last{k}") for k in range(S + 1)]
        nv = [Signal(range(L + 1), name=f"nv{k}") for k in range(S + 1)]
        for k in range(2, S + 1):
            m.d.sync += [ok[k].eq(ok[k - 1]), ent[k].eq(ent[k - 1]), last[k].eq(last[k - 1]),
                         nv[k].eq(nv[k - 1])]

        issuing = iss_on & (phase == 0)
        m.d.sync += [ok[1].eq(issuing), phase.eq(Mux(phase == period_last, 0, phase + 1))]
        with m.If(issuing):
            m.d.sync += [ent[1].eq(e_next), last[1].eq(rem <= L),
                         nv[1].eq(Mux(rem <= L, rem, L)), e_next.eq(e_next + 1),
                         rem.eq(rem - L)]
            with m.If(rem <= L):
                m.d.sync += iss_on.eq(0)

        # read port: g of the entry in stage 1, v of stage 2, w of a new entry
        with m.If(ok[1]):
            m.d.comb += [self.rd.addr.eq(g_addr + ent[1]), self.rd.en.eq(1)]
        with m.Elif(ok[2] & momentum):
            m.d.comb += [self.rd.addr.eq(v_addr + ent[2]), self.rd.en.eq(1)]
        with m.Elif(issuing):
            m.d.comb += [self.rd.addr.eq(w_addr + e_next), self.rd.en.eq(1)]

        # lanes; data registers load every cycle, the tags say which are meaningful
        h8, w_row, v_row = [], [], []
        low = [Signal(16, name=f"low{j}") for j in range(L)]
        for j in range(L):
            port = self.rd.data[32 * j:32 * (j + 1)]

            def reg(name, j=j, width=32):
                return Signal(width, name=f"l{j}_{name}")

            W2, T2, W3, GP3, W4, GP4, V4, T4 = (reg(n) for n in
                                                 ("w2", "t2", "w3", "gp3", "w4", "gp4", "v4", "t4"))
            W5, V5, VN5, W6, V6, VN6, T6, W7, WN7 = (reg(n) for n in (
                "w5", "v5", "vn5", "w6", "v6", "vn6", "t6", "w7", "wn7"))
            H8 = reg("h8", width=16)
            m.d.sync += [
                # stage 1: w on the port; t = wd * w
                W2.eq(port), T2.eq(fp32_mul(m, wd, port, f"l{j}_mul_wd")),
                # stage 2: g on the port; g' = g + t
                GP3.eq(fp32_add(m, port, T2, f"l{j}_add_g")), W3.eq(W2),
                # stage 3: v on the port; t = mu * v
                V4.eq(port), T4.eq(fp32_mul(m, mu, port, f"l{j}_mul_mu")), W4.eq(W3),
                GP4.eq(GP3),
                # stage 4: v' = t + g' (optimizer 1) or g'
                VN5.eq(Mux(opt == 1, fp32_add(m, T4, GP4, f"l{j}_add_v"), GP4)), W5.eq(W4),
                V5.eq(V4),
                # stage 5: t = lr * v'
                T6.eq(fp32_mul(m, lr, VN5, f"l{j}_mul_lr")), W6.eq(W5), V6.eq(V5), VN6.eq(VN5),
                # stage 6: w' = w + -t
                WN7.eq(fp32_add(m, W6, T6 ^ _SIGN32, f"l{j}_add_w")), W7.eq(W6),
                # stage 7: fp16 copy of w', +0 beyond count
                H8.eq(Mux(j < nv[7], fp32_to_fp16(m, WN7, f"l{j}_to16"), 0)),
            ]
            v_row.append(Mux(j < nv[6], VN6, V6))
            w_row.append(Mux(j < nv[7], WN7, W7))
            h8.append(H8)
        # stage 8: the even entry's halves wait in `low` for the odd one
        with m.If(ok[S] & ~ent[S][0] & ~last[S]):
            m.d.sync += [lo.eq(h) for lo, h in zip(low, h8, strict=True)]
        halves_odd = low + h8
        halves_last = h8 + [Const(0, 16)] * L
        out_row = Mux(ent[S][0], Cat(*halves_odd), Cat(*halves_last))

        # write port: out (stage 8), w (stage 7), v (stage 6); never two in one cycle
        with m.If(ok[S] & (ent[S][0] | last[S])):
            m.d.comb += [self.wr.addr.eq(out_addr + (ent[S] >> 1)), self.wr.data.eq(out_row),
                         self.wr.en.eq(1)]
        with m.Elif(ok[7]):
            m.d.comb += [self.wr.addr.eq(w_addr + ent[7]), self.wr.data.eq(Cat(*w_row)),
                         self.wr.en.eq(1)]
        with m.Elif(ok[6] & momentum):
            m.d.comb += [self.wr.addr.eq(v_addr + ent[6]), self.wr.data.eq(Cat(*v_row)),
                         self.wr.en.eq(1)]
        finished = ok[S] & last[S]

        self.run_fsm(m, [
            w_addr.eq(self.w_addr), g_addr.eq(self.g_addr), v_addr.eq(self.v_addr),
            out_addr.eq(self.out_addr), opt.eq(self.optimizer), lr.eq(self.lr),
            mu.eq(self.momentum), wd.eq(self.weight_decay),
            iss_on.eq(self.count != 0), e_next.eq(0), rem.eq(self.count), phase.eq(0),
        ], empty=self.count == 0, finished=finished)
        return m
