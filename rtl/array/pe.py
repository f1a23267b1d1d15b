"""The processing element: int8 or fp16 multiply-accumulate, output- or weight-stationary.

Its fp16 arithmetic is :func:`rtl.fp32.fp16_mul_exact` and :func:`rtl.fp32.fp32_add`, which
follow :mod:`hwsim.numerics` step by step and agree with it bit for bit
(tests/rtl/test_array_pe.py).
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

from ..fp32 import fp16_mul_exact, fp32_add

__all__ = ["DTYPES", "PE", "PEInstance", "check_dtype", "check_group", "operand_width"]

DTYPES = ("int8", "fp16")


def check_dtype(dtype: object) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")


def check_group(group: object) -> None:
    if not isinstance(group, int) or isinstance(group, bool) or group < 1 or group & (group - 1):
        raise ValueError(f"group must be a power of two >= 1, not {group!r}")


def operand_width(dtype: str) -> int:
    """Bits of one operand: 8 (int8) or 16 (fp16 bit pattern)."""
    check_dtype(dtype)
    return 8 if dtype == "int8" else 16


class PE(wiring.Component):
    """One multiply-accumulate cell of the systolic array, for both dataflows.

    Every cycle the cell registers its operands for its neighbours (``a_out`` to the right;
    ``b_out`` down) and updates its accumulator:

    - output-stationary (``ws`` low): ``acc <- acc + a_in * b_in``; ``b_out`` is ``b_in``
      registered.
    - weight-stationary (``ws`` high): the ``b`` register holds the stationary weight and only
      takes ``b_in`` while ``load`` is high (the column's weights shift down one cell per load
      cycle); ``acc <- psum_in + a_in * b`` is the partial sum passed to the cell below.

    ``clear`` zeroes the accumulator and the ``b`` register (priority over everything).

    int8: ``int8 x int8 -> int32``, wrapping modulo 2**32. fp16: the exact product of
    :func:`~rtl.fp32.fp16_mul_exact` added by :func:`~rtl.fp32.fp32_add` (round to nearest
    even, subnormals kept, canonical NaN), i.e. one :func:`hwsim.numerics.fp16_mac` per cycle.

    N:M sparse mode (``group`` = G > 1): ``a_in`` carries a group of G activations and a
    select picks the one the compressed weight multiplies: the index-driven activation select.
    Output-stationary, ``sel_in`` moves down with ``b_in`` (registered to ``sel_out``) and the
    operand is ``a_in[sel_in]``; weight-stationary, ``sel_out`` is loaded with the weight
    (while ``load``) and stays, and the operand is ``a_in[sel_out]``. Dense tiles feed the
    activation in lane 0 with select 0. ``clear`` also zeroes ``sel_out``.

    Parameters
    ----------
    dtype : {"int8", "fp16"}
    group : int, default 1
        G, the activations per group (the largest M of the supported patterns; power of two).

    Members
    -------
    a_in, b_in : In(W)
        Operands, ``W`` = 8 (``signed(8)``) or 16 (fp16 bit pattern); with G > 1 ``a_in`` is
        ``unsigned(G * W)``, lane ``g`` in bits ``g*W .. g*W + W - 1``.
    sel_in : In(log2 G), sel_out : Out(log2 G)
        Only with G > 1.
    psum_in : In(32)
        Weight-stationary partial sum from the cell above.
    ws, load, clear : In(1)
    a_out, b_out : Out(W)
        The registered operands (``b_out``: the stationary weight in WS).
    acc : Out(32)
        The accumulator register (``signed(32)`` for int8, an fp32 bit pattern for fp16); in WS
        the partial sum for the cell below.

    Latency
    -------
    :attr:`latency` = 1: operands on the inputs in cycle ``t`` are on ``a_out``/``b_out`` and
    in ``acc`` in cycle ``t + 1``. The accumulate loop is single-cycle; for fp16 its logic depth
    is an 11x11 multiplier, the adder's 27-bit alignment shifter, 28-bit add, leading-zero count,
    normalising shifter and 24-bit rounding increment in series (no timing closure claimed).

    Raises
    ------
    ValueError
        If ``dtype`` is not one of :data:`DTYPES`.
    """

    latency = 1

    def __init__(self, dtype: str = "int8", group: int = 1):
        check_dtype(dtype)
        check_group(group)
        self.dtype, self.group = dtype, group
        w = operand_width(dtype)
        op = signed(8) if dtype == "int8" else unsigned(16)
        acc = signed(32) if dtype == "int8" else unsigned(32)
        a = op if group == 1 else unsigned(group * w)
        ports = {
            "a_in": In(a), "b_in": In(op), "psum_in": In(acc),
            "ws": In(1), "load": In(1), "clear": In(1),
            "a_out": Out(a), "b_out": Out(op), "acc": Out(acc),
        }
        if group > 1:
            sbits = group.bit_length() - 1
            ports.update(sel_in=In(sbits), sel_out=Out(sbits))
        super().__init__(ports)
        self.width = w

    def elaborate(self, platform):
        m = Module()
        b_op = Mux(self.ws, self.b_out, self.b_in)
        addend = Mux(self.ws, self.psum_in, self.acc)
        if self.group == 1:
            a_op = self.a_in
        else:
            a_op = Signal(self.b_in.shape())
            # OS: the select arrives with b; WS: it is stationary with the weight
            sel = Mux(self.ws, self.sel_out, self.sel_in)
            m.d.comb += a_op.eq(self.a_in.word_select(sel, self.width))
        if self.dtype == "int8":
            nxt = (addend + a_op * b_op)[:32]
        else:
            b_sel = Signal(16)
            m.d.comb += b_sel.eq(b_op)
            nxt = fp32_add(m, addend, fp16_mul_exact(m, a_op, b_sel))
        m.d.sync += self.a_out.eq(self.a_in)
        with m.If(self.clear):
            m.d.sync += [self.acc.eq(0), self.b_out.eq(0)]
            if self.group > 1:
                m.d.sync += self.sel_out.eq(0)
        with m.Else():
            m.d.sync += self.acc.eq(nxt)
            with m.If(~self.ws | self.load):
                m.d.sync += self.b_out.eq(self.b_in)
                if self.group > 1:
                    m.d.sync += self.sel_out.eq(self.sel_in)
        return m


class PEInstance(PE):
    """A :class:`PE`'s ports, elaborated as an instance of a PE module written on its own.

    ``Instance(module, i_clk=..., i_rst=..., i_a_in=..., o_acc=..., ...)``: the port names are
    those Amaranth gives a :class:`PE` converted as a top (``amaranth.back.verilog.convert(PE(
    dtype, group), name=module)``), which :func:`rtl.verilog.write_verilog` writes beside the
    design. Every cell of an array then shares one module definition, where Amaranth alone
    emits one uniquely named copy per cell: Verilator compiles the PE once instead of R x C
    times. A black box to Amaranth's own simulator: use :class:`PE` there.

    Parameters
    ----------
    dtype, group
        As :class:`PE`.
    module : str
        The Verilog module name of the separately written PE.
    """

    def __init__(self, dtype: str, group: int, module: str):
        super().__init__(dtype, group)
        self.module = module

    def elaborate(self, platform):
        m = Module()
        ports = {("i_" if member.flow == Flow.In else "o_") + name: getattr(self, name)
                 for name, member in self.signature.members.items()}
        m.submodules.cell = Instance(self.module, i_clk=ClockSignal(), i_rst=ResetSignal(),
                                     **ports)
        return m
