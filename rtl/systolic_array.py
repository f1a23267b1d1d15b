"""The PE array: R x C int8 multiply-accumulate cells in an output-stationary systolic mesh."""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SystolicArray"]


def _check_dim(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


class SystolicArray(wiring.Component):
    """Output-stationary systolic array of int8 x int8 -> int32 PEs.

    Operands enter at the edges already skewed (row ``i`` of ``a_in`` is delayed ``i`` cycles
    by the feeder, column ``j`` of ``b_in`` ``j`` cycles): each cycle PE ``(i, j)`` adds the
    product of the ``a`` arriving from its left and the ``b`` arriving from above to its
    accumulator, and registers both operands for its right and lower neighbours. Zero operands
    are how idle edges are fed, so there is no valid bit.

    Parameters
    ----------
    rows, cols : int
        Array size R x C.

    Members
    -------
    a_in : In(ArrayLayout(signed(8), rows))
        Left-edge operands, one per row.
    b_in : In(ArrayLayout(signed(8), cols))
        Top-edge operands, one per column.
    clear : In(1)
        Zero every accumulator this cycle (takes priority over accumulation).
    acc : Out(ArrayLayout(ArrayLayout(signed(32), cols), rows))
        The accumulators, ``acc[i][j]`` for PE ``(i, j)``; wraps modulo 2**32 like the hardware.

    Latency
    -------
    :attr:`latency` = ``rows + cols - 2``: the operands entering on cycle ``t`` reach the last
    PE on cycle ``t + latency``; its accumulator holds the sum one cycle later.

    Raises
    ------
    TypeError
        If ``rows`` or ``cols`` is not a positive integer.
    """

    def __init__(self, rows: int, cols: int):
        _check_dim("rows", rows)
        _check_dim("cols", cols)
        self.rows, self.cols = rows, cols
        super().__init__({
            "a_in": In(data.ArrayLayout(signed(8), rows)),
            "b_in": In(data.ArrayLayout(signed(8), cols)),
            "clear": In(1),
            "acc": Out(data.ArrayLayout(data.ArrayLayout(signed(32), cols), rows)),
        })

    @property
    def latency(self) -> int:
        return self.rows + self.cols - 2

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        a_reg = [[Signal(signed(8), name=f"a_{i}_{j}") for j in range(C)] for i in range(R)]
        b_reg = [[Signal(signed(8), name=f"b_{i}_{j}") for j in range(C)] for i in range(R)]
        for i in range(R):
            for j in range(C):
                a = self.a_in[i] if j == 0 else a_reg[i][j - 1]
                b = self.b_in[j] if i == 0 else b_reg[i - 1][j]
                m.d.sync += [a_reg[i][j].eq(a), b_reg[i][j].eq(b)]
                acc = self.acc[i][j]
                with m.If(self.clear):
                    m.d.sync += acc.eq(0)
                with m.Else():
                    m.d.sync += acc.eq(acc + a * b)
        return m
