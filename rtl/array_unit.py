"""The GEMM unit: feeds the systolic array from the buffers and drains results to ACC."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwsim.config import AcceleratorConfig

from .buffers import ReadPortSignature, WritePortSignature
from .systolic_array import SystolicArray

__all__ = ["ArrayUnit"]


class ArrayUnit(wiring.Component):
    """Executes output-stationary GEMM tile commands on a :class:`SystolicArray`.

    On ``start`` it latches the command fields and clears the array, then for ``k + R + C - 1``
    cycles streams ACT entry ``a_addr + t`` (column ``t`` of A) and WGT entry ``b_addr + t``
    (row ``t`` of B) into the array, skewing row ``i`` and column ``j`` by ``i`` and ``j``
    cycles, and finally drains row ``i`` of the accumulators into ACC entry ``c_addr + i``
    (read-modify-write when ``accumulate``), one row per cycle.

    Members
    -------
    start : In(1)
        Begin the command held on the field inputs.
    a_addr, b_addr, c_addr : In(16)
    k : In(16)
        Reduction steps.
    accumulate : In(1)
    done : Out(1)
        High for one cycle, the cycle of the last ACC write.
    act, wgt : Out(ReadPortSignature)
    acc_rd : Out(ReadPortSignature), acc_wr : Out(WritePortSignature)

    Latency
    -------
    :meth:`cycles` gives start-to-done cycles, inclusive: ``k + 2R + C + 1``. ``hwsim`` uses the
    same expression (``hwsim.timing.gemm_os_cycles``); cocotb checks both against each other.
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        R, C = config.array.rows, config.array.cols
        self.rows, self.cols = R, C
        super().__init__({
            "start": In(1),
            "a_addr": In(16), "b_addr": In(16), "c_addr": In(16), "k": In(16),
            "accumulate": In(1),
            "done": Out(1),
            "busy": Out(1),
            "act": Out(ReadPortSignature(16, R * 8)),
            "wgt": Out(ReadPortSignature(16, C * 8)),
            "acc_rd": Out(ReadPortSignature(16, C * 32)),
            "acc_wr": Out(WritePortSignature(16, C * 32)),
        })

    @staticmethod
    def cycles(k: int, rows: int, cols: int) -> int:
        return k + 2 * rows + cols + 1

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        m.submodules.array = array = SystolicArray(R, C)

        a_addr, b_addr, c_addr = Signal(16), Signal(16), Signal(16)
        k, acc_mode = Signal(16), Signal()
        t = Signal(17)  # feed step
        d = Signal(range(R + 2))  # drain step
        valid = Signal()  # the buffer data on the read ports this cycle belong to step t-1 < k

        m.d.comb += [
            self.act.addr.eq(a_addr + t[:16]),
            self.wgt.addr.eq(b_addr + t[:16]),
            self.act.en.eq(1),
            self.wgt.en.eq(1),
        ]

        # Skew: row i (column j) passes through i (j) registers before entering the array.
        a_edge = Mux(valid, self.act.data, 0)
        b_edge = Mux(valid, self.wgt.data, 0)
        for i in range(R):
            sig = a_edge[i * 8:(i + 1) * 8]
            for s in range(i):
                reg = Signal(8, name=f"a_skew_{i}_{s}")
                m.d.sync += reg.eq(sig)
                sig = reg
            m.d.comb += array.a_in[i].eq(sig)
        for j in range(C):
            sig = b_edge[j * 8:(j + 1) * 8]
            for s in range(j):
                reg = Signal(8, name=f"b_skew_{j}_{s}")
                m.d.sync += reg.eq(sig)
                sig = reg
            m.d.comb += array.b_in[j].eq(sig)

        # Drain: read ACC row d, write it back one cycle later with the array row added.
        row_sel = Signal(range(R))
        row_bits = Signal(unsigned(C * 32))
        with m.Switch(row_sel):
            for i in range(R):
                with m.Case(i):
                    m.d.comb += row_bits.eq(array.acc[i].as_value())
        old = Mux(acc_mode, self.acc_rd.data, 0)
        lanes = [(old[j * 32:(j + 1) * 32] + row_bits[j * 32:(j + 1) * 32])[:32] for j in range(C)]
        m.d.comb += [
            self.acc_rd.addr.eq(c_addr + d),
            self.acc_wr.addr.eq(c_addr + d - 1),
            self.acc_wr.data.eq(_cat(lanes)),
            row_sel.eq(d - 1),
        ]

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += valid.eq(0)
                with m.If(self.start):
                    m.d.sync += [a_addr.eq(self.a_addr), b_addr.eq(self.b_addr),
                                 c_addr.eq(self.c_addr), k.eq(self.k),
                                 acc_mode.eq(self.accumulate), t.eq(0)]
                    m.d.comb += array.clear.eq(1)
                    m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [valid.eq(t < k), t.eq(t + 1)]
                with m.If(t == k + R + C - 2):
                    m.d.sync += d.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [self.busy.eq(1), self.acc_rd.en.eq(1)]
                m.d.sync += [valid.eq(0), d.eq(d + 1)]
                with m.If(d != 0):
                    m.d.comb += self.acc_wr.en.eq(1)
                with m.If(d == R):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m


def _cat(parts):
    from amaranth import Cat

    return Cat(*parts)
