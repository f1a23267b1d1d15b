"""fp32 arithmetic of the vector engine as combinational Amaranth logic, bit-exact with hwsim.

:func:`fp32_mul` follows :func:`hwsim.vector_unit.fp32_mul` and :func:`fp32_to_fp16` follows
:func:`hwsim.numerics.fp32_to_fp16` step by step; the adder is :func:`rtl.pe.fp32_add`
(:func:`hwsim.numerics.fp32_add`). All round to nearest even, keep subnormals (no flush to
zero) and produce the canonical NaN (``0x7FC00000``, fp16 ``0x7E00``). The functions add
logic to a module and return the result signal, like ``rtl.pe``'s, so a pipeline can put a
register after each; :class:`Fp32Multiplier` wraps the multiplier as a component for
synthesis and unit tests.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Fp32Multiplier", "fp32_mul", "fp32_to_fp16"]

_CANONICAL_NAN_F32 = 0x7FC00000
_CANONICAL_NAN_F16 = 0x7E00
_INF32 = 0x7F800000
_INF16 = 0x7C00


def fp32_mul(m: Module, a, b, name: str = "fmul") -> Signal:
    """Combinational IEEE binary32 multiplier, :func:`hwsim.vector_unit.fp32_mul` step by step.

    Logic: 24 x 24 -> 48-bit significand product, 48-bit leading-one detector, a 97-bit
    right shifter (normalise or denormalise, with round and sticky) beside a 24-bit left
    shifter (subnormal inputs), 25-bit rounding increment, pack and special multiplexers.

    Parameters
    ----------
    m : Module
        The module that receives the logic.
    a, b : Value, 32 bits
        binary32 bit patterns.
    name : str
        Prefix of the internal signal names.

    Returns
    -------
    Signal(32)
        binary32 bit pattern of ``a * b``.
    """
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    # 1. unpack; a subnormal takes exponent field 1 and no hidden bit
    ex, ey = sig(8, "ex"), sig(8, "ey")
    m.d.comb += [ex.eq(a[23:31]), ey.eq(b[23:31])]
    x_special, y_special = ex == 0xFF, ey == 0xFF
    x_zero, y_zero = a[:31] == 0, b[:31] == 0
    nan = sig(1, "nan")
    m.d.comb += nan.eq((x_special & (a[:23] != 0)) | (y_special & (b[:23] != 0))
                       | (x_special & y_zero) | (y_special & x_zero))
    sign = sig(1, "sign")
    m.d.comb += sign.eq(a[31] ^ b[31])
    mx, my = sig(24, "mx"), sig(24, "my")
    exa, eya = sig(8, "exa"), sig(8, "eya")
    m.d.comb += [mx.eq(Cat(a[:23], ex != 0)), my.eq(Cat(b[:23], ey != 0)),
                 exa.eq(Mux(ex == 0, 1, ex)), eya.eq(Mux(ey == 0, 1, ey))]
    # 2. exact product, value p * 2**(ex + ey - 300)
    p = sig(48, "p")
    m.d.comb += p.eq(mx * my)
    # 3. leading one and normalised biased exponent E = n + ex + ey - 173, in [-171, 382]
    n = _msb(m, p, f"{name}_n")
    big_e = sig(signed(11), "big_e")
    m.d.comb += big_e.eq(n + exa + eya - 173)
    # 4. result exponent max(E, 1); shift right by rs (clamped to 1..49) or left by -rs
    e = sig(signed(11), "e")
    rs = sig(signed(11), "rs")
    m.d.comb += [e.eq(Mux(big_e < 1, 1, big_e)), rs.eq(n - 23 + (e - big_e))]
    rsc, lsc = sig(range(50), "rsc"), sig(range(24), "lsc")
    m.d.comb += [rsc.eq(Mux(rs < 1, 1, Mux(rs > 49, 49, rs))),
                 lsc.eq(Mux(rs >= 0, 0, Mux(rs < -23, 23, -rs)))]
    wide = sig(97, "wide")
    m.d.comb += wide.eq(Cat(Const(0, 49), p) >> rsc)
    right_shift = rs >= 1
    keep = sig(24, "keep")
    m.d.comb += keep.eq(Mux(right_shift, wide[49:73], (p << lsc)[:24]))
    # 5. round to nearest, ties to even
    up = right_shift & wide[48] & ((wide[:48] != 0) | keep[0])
    k1 = sig(25, "k1")
    m.d.comb += k1.eq(keep + up)
    k2, e2 = sig(24, "k2"), sig(signed(12), "e2")
    m.d.comb += [k2.eq(Mux(k1[24], k1[1:25], k1[:24])), e2.eq(e + k1[24])]
    # 6. pack (exponent field 0 when the hidden bit is clear) and select
    r = sig(32, "r")
    with m.If(nan):
        m.d.comb += r.eq(_CANONICAL_NAN_F32)
    with m.Elif(x_special | y_special):
        m.d.comb += r.eq(Cat(Const(_INF32, 31), sign))
    with m.Elif(x_zero | y_zero):
        m.d.comb += r.eq(Cat(Const(0, 31), sign))
    with m.Elif(e2 >= 0xFF):
        m.d.comb += r.eq(Cat(Const(_INF32, 31), sign))
    with m.Else():
        m.d.comb += r.eq(Cat(k2[:23], Mux(k2[23], e2[:8], 0), sign))
    return r


def fp32_to_fp16(m: Module, a, name: str = "to16") -> Signal:
    """Combinational binary32 -> binary16, :func:`hwsim.numerics.fp32_to_fp16` step by step.

    Round to nearest even; gradual underflow into fp16 subnormals; rounded magnitudes above
    65504 become infinity; NaN -> ``0x7E00``.

    Parameters
    ----------
    m : Module
    a : Value, 32 bits
        binary32 bit pattern.
    name : str
        Prefix of the internal signal names.

    Returns
    -------
    Signal(16)
        binary16 bit pattern.
    """
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    e = sig(8, "e")
    m.d.comb += e.eq(a[23:31])
    special = e == 0xFF
    m24 = sig(24, "m24")
    fe = sig(signed(10), "fe")  # fp16 exponent field if normal: [-111, 142]
    m.d.comb += [m24.eq(Cat(a[:23], e != 0)), fe.eq(Mux(e == 0, 1, e) - 112)]
    shift = sig(range(26), "shift")
    under = sig(signed(11), "under")
    m.d.comb += [under.eq(14 - fe),
                 shift.eq(Mux(fe >= 1, 13, Mux(under > 25, 25, under)))]
    wide = sig(49, "wide")
    m.d.comb += wide.eq(Cat(Const(0, 25), m24) >> shift)
    keep = wide[25:]
    up = wide[24] & ((wide[:24] != 0) | keep[0])
    k1 = sig(12, "k1")
    m.d.comb += k1.eq(keep[:11] + up)
    h = sig(20, "h")  # a rounding carry bumps the exponent by itself
    m.d.comb += h.eq(Mux(fe >= 1, ((fe - 1) << 10) + k1, k1))
    r = sig(16, "r")
    with m.If(special & (a[:23] != 0)):
        m.d.comb += r.eq(_CANONICAL_NAN_F16)
    with m.Elif(special | (h >= _INF16)):
        m.d.comb += r.eq(Cat(Const(_INF16, 15), a[31]))
    with m.Else():
        m.d.comb += r.eq(Cat(h[:15], a[31]))
    return r


def _msb(m: Module, value, name: str) -> Signal:
    """Index of the most significant set bit of ``value`` (0 when ``value`` is 0): a priority
    encoder, like ``rtl.pe``'s."""
    out = Signal(range(max(len(value), 2)), name=name)
    for i in range(1, len(value)):  # later assignments win: the highest set bit
        with m.If(value[i]):
            m.d.comb += out.eq(i)
    return out


class Fp32Multiplier(wiring.Component):
    """:func:`fp32_mul` as a component (synthesis of one multiplier, unit tests).

    Members
    -------
    a, b : In(32)
        binary32 operands.
    y : Out(32)
        ``a * b``, combinational (:attr:`latency` = 0).
    """

    latency = 0

    def __init__(self):
        super().__init__({"a": In(32), "b": In(32), "y": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(fp32_mul(m, self.a, self.b))
        return m
