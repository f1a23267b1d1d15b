"""The processing element: int8 or fp16 multiply-accumulate, output- or weight-stationary.

The fp16 arithmetic is built here as combinational logic that follows
:mod:`hwsim.numerics` step by step (:func:`fp16_mul_exact`, :func:`fp32_add`), so the two can
be read side by side and agree bit for bit (tests/rtl/test_pe.py).
"""

from __future__ import annotations

from amaranth import (
    Cat,
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    signed,
    unsigned,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

__all__ = ["DTYPES", "PE", "PEInstance", "fp16_mul_exact", "fp32_add", "operand_width"]

DTYPES = ("int8", "fp16")

_CANONICAL_NAN_F32 = 0x7FC00000
_INF32 = 0x7F800000


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


def _msb(m: Module, value, name: str) -> Signal:
    """Index of the most significant set bit of ``value`` (0 when ``value`` is 0): a priority
    encoder, :func:`hwsim.numerics._msb` of ``value | 1``."""
    width = len(value)
    out = Signal(range(max(width, 2)), name=name)
    for i in range(1, width):  # later assignments win: the highest set bit
        with m.If(value[i]):
            m.d.comb += out.eq(i)
    return out


def fp16_mul_exact(m: Module, a, b, name: str = "mul") -> Signal:
    """Combinational exact fp16 x fp16 -> fp32 product, :func:`hwsim.numerics.fp16_mul_exact`.

    Parameters
    ----------
    m : Module
        The module that receives the logic.
    a, b : Value, 16 bits
        binary16 bit patterns.

    Returns
    -------
    Signal(32)
        binary32 bit pattern of the exact product (normal or signed zero); canonical NaN.
    """
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    sign = sig(1, "sign")
    ex, ey = sig(5, "ex"), sig(5, "ey")
    m.d.comb += [sign.eq(a[15] ^ b[15]), ex.eq(a[10:15]), ey.eq(b[10:15])]
    x_special, y_special = ex == 31, ey == 31
    x_zero, y_zero = a[:15] == 0, b[:15] == 0
    nan = sig(1, "nan")
    m.d.comb += nan.eq((x_special & (a[:10] != 0)) | (y_special & (b[:10] != 0))
                       | (x_special & y_zero) | (y_special & x_zero))
    # 11-bit significands; a subnormal takes exponent field 1 and no hidden bit
    mx, my = sig(11, "mx"), sig(11, "my")
    exa, eya = sig(5, "exa"), sig(5, "eya")
    m.d.comb += [mx.eq(Cat(a[:10], ex != 0)), my.eq(Cat(b[:10], ey != 0)),
                 exa.eq(Mux(ex == 0, 1, ex)), eya.eq(Mux(ey == 0, 1, ey))]
    p = sig(22, "p")
    m.d.comb += p.eq(mx * my)
    n = _msb(m, p, f"{name}_n")
    e = sig(8, "e")  # n + ex + ey + 77 lies in [79, 158]
    m.d.comb += e.eq(n + exa + eya + 77)
    frac, amount = sig(23, "frac"), sig(5, "amount")
    m.d.comb += [amount.eq(23 - n), frac.eq((p << amount)[:23])]
    r = sig(32, "r")
    with m.If(nan):
        m.d.comb += r.eq(_CANONICAL_NAN_F32)
    with m.Elif(x_special | y_special):
        m.d.comb += r.eq(Cat(Const(_INF32, 31), sign))
    with m.Elif(p == 0):
        m.d.comb += r.eq(Cat(Const(0, 31), sign))
    with m.Else():
        m.d.comb += r.eq(Cat(frac, e, sign))
    return r


def fp32_add(m: Module, a, b, name: str = "add") -> Signal:
    """Combinational IEEE binary32 adder, :func:`hwsim.numerics.fp32_add` step by step.

    Round to nearest even, gradual underflow (subnormals in and out), overflow to infinity,
    canonical NaN ``0x7FC00000``. One cycle of logic: swap, align (27-bit barrel shift with
    sticky), 28-bit add/subtract, 27-bit leading-zero count and left shift, 24-bit rounding
    increment, pack and special-value multiplexers.

    Parameters
    ----------
    m : Module
    a, b : Value, 32 bits
        binary32 bit patterns.

    Returns
    -------
    Signal(32)
        binary32 bit pattern of ``a + b``.
    """
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    # 1. magnitude order: non-negative floats order like their bit patterns
    swap = sig(1, "swap")
    x, y = sig(32, "x"), sig(32, "y")
    m.d.comb += [swap.eq(a[:31] < b[:31]), x.eq(Mux(swap, b, a)), y.eq(Mux(swap, a, b))]
    # 2. unpack
    ex, ey = sig(8, "ex"), sig(8, "ey")
    m.d.comb += [ex.eq(x[23:31]), ey.eq(y[23:31])]
    x_special, y_special = ex == 0xFF, ey == 0xFF
    subtract = sig(1, "subtract")
    nan = sig(1, "nan")
    m.d.comb += [
        subtract.eq(x[31] ^ y[31]),
        nan.eq((x_special & (x[:23] != 0)) | (y_special & (y[:23] != 0))
               | (x_special & y_special & subtract)),
    ]
    # 3. 24-bit significands extended by guard, round and sticky bits
    mx, my = sig(27, "mx"), sig(27, "my")
    exa, eya = sig(8, "exa"), sig(8, "eya")
    m.d.comb += [mx.eq(Cat(Const(0, 3), x[:23], ex != 0)), my.eq(Cat(Const(0, 3), y[:23], ey != 0)),
                 exa.eq(Mux(ex == 0, 1, ex)), eya.eq(Mux(ey == 0, 1, ey))]
    # 4. align y by d = min(ex - ey, 27); the bits shifted out OR into the sticky bit
    diff = sig(8, "diff")
    d = sig(range(28), "d")
    m.d.comb += [diff.eq(exa - eya), d.eq(Mux(diff > 27, 27, diff))]
    wide = sig(54, "wide")
    m.d.comb += wide.eq(Cat(Const(0, 27), my) >> d)
    my_al = sig(27, "my_al")
    m.d.comb += my_al.eq(wide[27:] | (wide[:27] != 0))
    # 5. add or subtract; one right shift on carry out, keeping the sticky bit
    s = sig(28, "sum")
    m.d.comb += s.eq(Mux(subtract, mx - my_al, mx + my_al))
    carry = s[27]
    m1 = sig(27, "m1")
    e1 = sig(10, "e1")
    m.d.comb += [m1.eq(Mux(carry, s[1:28] | s[0], s[:27])), e1.eq(exa + carry)]
    # 6. normalise after cancellation, stopping at exponent 1 (gradual underflow)
    lead = _msb(m, m1, f"{name}_lead")
    lz, room = sig(5, "lz"), sig(10, "room")
    shift = sig(10, "shift")
    m.d.comb += [lz.eq(26 - lead), room.eq(e1 - 1), shift.eq(Mux(lz < room, lz, room))]
    m2, e2 = sig(27, "m2"), sig(10, "e2")
    # shift <= lz <= 26: a 5-bit shift amount keeps the shifter 27 bits wide
    m.d.comb += [m2.eq((m1 << shift[:5])[:27]), e2.eq(e1 - shift)]
    sign = sig(1, "sign")
    m.d.comb += sign.eq(Mux((m2 == 0) & subtract, 0, x[31]))  # exact cancellation is +0
    # 7. round to nearest, ties to even
    grs = m2[:3]
    kept = m2[3:]
    up = (grs > 4) | ((grs == 4) & kept[0])
    m3 = sig(25, "m3")
    m.d.comb += m3.eq(kept + up)
    m4, e3 = sig(24, "m4"), sig(10, "e3")
    m.d.comb += [m4.eq(Mux(m3[24], m3[1:], m3[:24])), e3.eq(e2 + m3[24])]
    # 8. pack (exponent field 0 when the hidden bit is clear) and select the specials
    r = sig(32, "r")
    with m.If(nan):
        m.d.comb += r.eq(_CANONICAL_NAN_F32)
    with m.Elif(x_special):
        m.d.comb += r.eq(x)  # inf + finite, or inf + inf of one sign
    with m.Elif(e3 >= 0xFF):
        m.d.comb += r.eq(Cat(Const(_INF32, 31), sign))
    with m.Else():
        m.d.comb += r.eq(Cat(m4[:23], Mux(m4[23], e3[:8], 0), sign))
    return r


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
    :func:`fp16_mul_exact` added by :func:`fp32_add` (round to nearest even, subnormals kept,
    canonical NaN), i.e. one :func:`hwsim.numerics.fp16_mac` per cycle.

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
