"""The PE array: R x C :class:`~rtl.array.pe.PE` cells, output- or weight-stationary per
command."""

from __future__ import annotations

from amaranth import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .pe import PE, PEInstance, check_dtype, check_group, operand_width

__all__ = ["SystolicArray"]


def _check_dim(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


class SystolicArray(wiring.Component):
    """Systolic mesh of int8 x int8 -> int32 or fp16 x fp16 -> fp32 PEs, both dataflows.

    Operands enter at the edges already skewed by the feeder: ``a`` moves right along a row,
    ``b`` moves down a column, one PE per cycle. Zero operands are how idle edges are fed, so
    there is no valid bit.

    - Output-stationary (``ws`` low): each cycle PE ``(i, j)`` adds the product of the ``a``
      from its left and the ``b`` from above to its accumulator.
    - Weight-stationary (``ws`` high): while ``load`` is high each column's weight registers
      shift down one PE per cycle from ``b_in`` (after ``k`` load cycles the weight fed first
      sits in row ``k-1``, so the feeder sends weight row ``k-1`` first); otherwise PE
      ``(i, j)`` computes ``acc[i-1][j] + a * w[i][j]`` (``psum_in[j]`` above row 0), so partial
      sums move down a column and leave the bottom row in ``acc[rows-1]``.

    ``clear`` zeroes every accumulator and weight register.

    N:M sparse tiles (``group`` = G > 1): each row's ``a`` operand is a group of G
    activations, and ``sel_in[j]`` enters the top of column ``j`` with ``b_in[j]`` and moves
    down with it, so that PE ``(i, j)`` multiplies ``b`` by lane ``sel`` of the group in its
    row (:class:`~rtl.array.pe.PE`). Dense tiles use lane 0 and ``sel`` 0.

    Parameters
    ----------
    rows, cols : int
        Array size R x C.
    group : int, default 1
        G: activations per ``a`` operand (1: dense only).
    dtype : {"int8", "fp16"}
        Operands ``signed(8)`` and accumulators ``signed(32)`` (wrapping), or fp16 operand and
        fp32 accumulator bit patterns (``unsigned(16)``/``unsigned(32)``; arithmetic of
        :func:`hwsim.numerics.fp16_mac`, bit for bit).
    pe_module : str, optional
        Build the cells as :class:`~rtl.array.pe.PEInstance` of this Verilog module (written
        once, beside the design, by :func:`rtl.verilog.write_verilog`) instead of inline
        :class:`~rtl.array.pe.PE` logic. None (the default) for Amaranth's simulator and
        synthesis.

    Members
    -------
    a_in : In(ArrayLayout(op, rows))
        Left-edge operands, one per row (``unsigned(G * W)`` groups when G > 1).
    sel_in : In(ArrayLayout(log2 G, cols))
        Top-edge group selects, only when G > 1.
    b_in : In(ArrayLayout(op, cols))
        Top-edge operands (OS) or weights being loaded (WS), one per column.
    psum_in : In(ArrayLayout(accumulator, cols))
        WS: the partial sums entering row 0 (skewed like ``a_in``: +0, or the old ACC value
        in accumulate mode).
    ws, load, clear : In(1)
    acc : Out(ArrayLayout(ArrayLayout(accumulator, cols), rows))
        The accumulators, ``acc[i][j]`` for PE ``(i, j)``.

    Latency
    -------
    :attr:`latency` = ``rows + cols - 2``: the operands entering on cycle ``t`` reach the last
    PE on cycle ``t + latency``; its accumulator holds the sum one cycle later. In WS a partial
    sum entering row 0 on cycle ``t`` in column ``j`` leaves the bottom row (``acc[rows-1][j]``)
    on cycle ``t + rows``.

    Raises
    ------
    TypeError
        If ``rows`` or ``cols`` is not a positive integer.
    ValueError
        If ``dtype`` is not ``"int8"`` or ``"fp16"``.
    """

    def __init__(self, rows: int, cols: int, dtype: str = "int8", group: int = 1, *,
                 pe_module: str | None = None):
        _check_dim("rows", rows)
        _check_dim("cols", cols)
        check_dtype(dtype)
        check_group(group)
        self.rows, self.cols, self.dtype, self.group = rows, cols, dtype, group
        self.pe_module = pe_module
        op = signed(8) if dtype == "int8" else unsigned(16)
        acc = signed(32) if dtype == "int8" else unsigned(32)
        a = op if group == 1 else unsigned(group * operand_width(dtype))
        ports = {
            "a_in": In(data.ArrayLayout(a, rows)),
            "b_in": In(data.ArrayLayout(op, cols)),
            "psum_in": In(data.ArrayLayout(acc, cols)),
            "ws": In(1), "load": In(1), "clear": In(1),
            "acc": Out(data.ArrayLayout(data.ArrayLayout(acc, cols), rows)),
        }
        if group > 1:
            ports["sel_in"] = In(data.ArrayLayout(unsigned(group.bit_length() - 1), cols))
        super().__init__(ports)

    @property
    def latency(self) -> int:
        return self.rows + self.cols - 2

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        def cell():
            if self.pe_module is None:
                return PE(self.dtype, self.group)
            return PEInstance(self.dtype, self.group, self.pe_module)

        pes = [[cell() for _ in range(C)] for _ in range(R)]
        for i in range(R):
            for j in range(C):
                pe = pes[i][j]
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += [
                    pe.a_in.eq(self.a_in[i] if j == 0 else pes[i][j - 1].a_out),
                    pe.b_in.eq(self.b_in[j] if i == 0 else pes[i - 1][j].b_out),
                    pe.psum_in.eq(self.psum_in[j] if i == 0 else pes[i - 1][j].acc),
                    pe.ws.eq(self.ws), pe.load.eq(self.load), pe.clear.eq(self.clear),
                    self.acc[i][j].eq(pe.acc),
                ]
                if self.group > 1:
                    m.d.comb += pe.sel_in.eq(self.sel_in[j] if i == 0 else pes[i - 1][j].sel_out)
        return m
