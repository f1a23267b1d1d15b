"""Floating-point arithmetic as combinational Amaranth logic, bit-exact with hwsim.

The PE's :func:`fp16_mul_exact` and the adder :func:`fp32_add` (PE accumulation, vector
engine) follow :func:`hwsim.numerics.fp16_mul_exact` and :func:`hwsim.numerics.fp32_add`; the
vector engine's :func:`fp32_mul` follows :func:`hwsim.numerics.fp32_mul` and
:func:`fp32_to_fp16` :func:`hwsim.numerics.fp32_to_fp16`, step by step, so each can be read
beside its model (``tests/rtl/test_array_pe.py``, ``tests/rtl/test_vector.py``). All round to
nearest even, keep subnormals (no flush to zero) and produce the canonical NaN
(``0x7FC00000``, fp16 ``0x7E00``). The functions add logic to a module and return the result
signal, so a pipeline can put a register after each; :class:`Fp32Multiplier` wraps the
multiplier as a component for synthesis and unit tests. :func:`fp32_div` and :func:`fp32_sqrt`
(correctly rounded restoring recurrences, optionally pipelined) follow
:func:`hwsim.numerics.fp32_div` and :func:`hwsim.numerics.fp32_sqrt` for the lookup engine's
Adam row update (``tests/rtl/test_fp32_divsqrt.py``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DIV_STEPS", "SQRT_STEPS", "Fp32Multiplier", "fp16_mul_exact", "fp16_to_fp32",
           "fp32_add", "fp32_div", "fp32_mul", "fp32_sqrt", "fp32_to_fp16"]

_CANONICAL_NAN_F32 = 0x7FC00000
_CANONICAL_NAN_F16 = 0x7E00
_INF32 = 0x7F800000
_INF16 = 0x7C00


def _msb(m: Module, value, name: str) -> Signal:
    """Index of the most significant set bit of ``value`` (0 when ``value`` is 0): a priority
    encoder, :func:`hwsim.numerics._msb` of ``value | 1``."""
    out = Signal(range(max(len(value), 2)), name=name)
    for i in range(1, len(value)):  # later assignments win: the highest set bit
        with m.If(value[i]):
            m.d.comb += out.eq(i)
    return out


def _multiply_significands(m: Module, a, b, frac: int, exp: int, name: str):
    """The common front of the multipliers of IEEE binary floats with ``frac`` fraction and
    ``exp`` exponent bits. Returns the product's sign; whether it is NaN (a NaN operand, or
    infinity times zero); whether each operand is infinite or NaN; the exact product ``p`` of
    the significands (hidden bit included; a subnormal takes exponent field 1 and no hidden
    bit), the index ``n`` of its leading one, and the two exponents so adjusted."""
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    top = frac + exp
    special = (1 << exp) - 1
    sign, nan = sig(1, "sign"), sig(1, "nan")
    ex, ey = sig(exp, "ex"), sig(exp, "ey")
    m.d.comb += [sign.eq(a[top] ^ b[top]), ex.eq(a[frac:top]), ey.eq(b[frac:top])]
    x_special, y_special = ex == special, ey == special
    x_zero, y_zero = a[:top] == 0, b[:top] == 0
    m.d.comb += nan.eq((x_special & (a[:frac] != 0)) | (y_special & (b[:frac] != 0))
                       | (x_special & y_zero) | (y_special & x_zero))
    mx, my = sig(frac + 1, "mx"), sig(frac + 1, "my")
    exa, eya = sig(exp, "exa"), sig(exp, "eya")
    m.d.comb += [mx.eq(Cat(a[:frac], ex != 0)), my.eq(Cat(b[:frac], ey != 0)),
                 exa.eq(Mux(ex == 0, 1, ex)), eya.eq(Mux(ey == 0, 1, ey))]
    p = sig(2 * (frac + 1), "p")
    m.d.comb += p.eq(mx * my)
    n = _msb(m, p, f"{name}_n")
    return sign, nan, x_special, y_special, p, n, exa, eya


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

    # 11-bit significands, a 22-bit product
    sign, nan, x_special, y_special, p, n, exa, eya = _multiply_significands(m, a, b, 10, 5,
                                                                             name)
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


def fp16_to_fp32(m: Module, h, name: str = "cvt") -> Signal:
    """Combinational exact binary16 -> binary32 conversion, :func:`hwsim.numerics.fp16_to_fp32`
    (subnormals normalized, NaN -> canonical).

    Parameters
    ----------
    m : Module
    h : Value, 16 bits

    Returns
    -------
    Signal(32)
    """
    e, frac = h[10:15], h[:10]
    n = _msb(m, frac, f"{name}_n")  # subnormal: frac * 2^-24 = 1.f * 2^(n - 24)
    sub, amount = Signal(32, name=f"{name}_sub"), Signal(5, name=f"{name}_amount")
    m.d.comb += [amount.eq(23 - n), sub.eq(Cat((frac << amount)[:23], (n + 103)[:8], h[15]))]
    r = Signal(32, name=name)
    with m.If(e == 31):
        m.d.comb += r.eq(Mux(frac != 0, _CANONICAL_NAN_F32, Cat(Const(_INF32, 31), h[15])))
    with m.Elif(e == 0):
        m.d.comb += r.eq(Mux(frac == 0, Cat(Const(0, 31), h[15]), sub))
    with m.Else():
        m.d.comb += r.eq(Cat(Const(0, 13), frac, (e + 112)[:8], h[15]))
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


def fp32_mul(m: Module, a, b, name: str = "fmul") -> Signal:
    """Combinational IEEE binary32 multiplier, :func:`hwsim.numerics.fp32_mul` step by step.

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

    # 1. unpack; 2. exact product, value p * 2**(ex + ey - 300), and its leading one n
    sign, nan, x_special, y_special, p, n, exa, eya = _multiply_significands(m, a, b, 23, 8,
                                                                             name)
    # 3. normalised biased exponent E = n + ex + ey - 173, in [-171, 382]
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
    with m.Elif((a[:31] == 0) | (b[:31] == 0)):
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


# ---------------------------------------------------------------- fp32 division and square root
# The lookup engine's Adam row update (hwsim.units.vector.adam_update, SCATTER mode 2) divides and
# takes a square root per lane: hwsim.numerics.fp32_div and fp32_sqrt, both correctly rounded
# (round to nearest even, gradual underflow, canonical NaN). A correctly rounded result is
# unique, so these restoring recurrences need not keep hwsim's 39 quotient or 31 root bits: 24
# significand bits, the round bit and the remainder's sticky bit decide it.
# Each restoring step is an anonymous submodule (so are the front and the rounding tail): to
# Amaranth's simulator a module is one process, rerun whenever any signal it reads changes, and
# one module holding a 25-step chain would be rerun whole on each of the chain's delta cycles.


DIV_STEPS = 25
"""Restoring steps of :func:`fp32_div`, one quotient bit each: 24 significand bits and the
round bit. A pipelined divider has at most ``DIV_STEPS - 1`` register ranks."""
SQRT_STEPS = 25
"""Restoring steps of :func:`fp32_sqrt`, one root bit each: 24 significand bits and the round
bit. A pipelined square rooter has at most ``SQRT_STEPS - 1`` register ranks."""


def _normalise(m: Module, x, name: str):
    """Significand and exponent of finite nonzero binary32 ``x``: ``|x| = sig * 2**(e - 150)``
    with ``2**23 <= sig < 2**24``, a subnormal shifted up by its leading-zero count
    (:func:`hwsim.numerics._unpack_normalised`, whose exponent is ``e - 150``)."""
    ex = x[23:31]
    raw = Signal(24, name=f"{name}_raw")
    m.d.comb += raw.eq(Cat(x[:23], ex != 0))
    n = _msb(m, raw, f"{name}_n")
    shift = Signal(5, name=f"{name}_shift")
    sig, e = Signal(24, name=f"{name}_sig"), Signal(signed(10), name=f"{name}_e")  # [-22, 254]
    m.d.comb += [shift.eq(23 - n), sig.eq((raw << shift)[:24]),
                 e.eq(Mux(ex == 0, 1, ex) - shift)]
    return sig, e


def _round_pack(m: Module, sign, p, big_e, name: str, subnormal: bool = True) -> Signal:
    """binary32 pattern of ``sign * p * 2**(big_e - 152)`` rounded to nearest even
    (:func:`hwsim.numerics._round_pack`). ``p`` is 26 bits with its leading one at bit 25: 24
    significand bits over the round bit over the sticky bit; ``big_e`` is the biased exponent of
    that leading one. With ``subnormal`` a 26-bit right shifter, the bits shifted out OR-ed into
    the sticky bit, denormalises results below ``2**-126``. Overflow rounds to infinity."""
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    al, lost, e = sig(26, "al"), sig(1, "lost"), sig(signed(12), "e")
    if subnormal:
        # shift by 1 - big_e below exponent 1; from 26 places on every bit is shifted out
        d = sig(range(27), "d")
        m.d.comb += d.eq(Mux(big_e >= 1, 0, Mux(big_e < -25, 26, 1 - big_e)))
        wide = sig(52, "wide")
        m.d.comb += [wide.eq(Cat(Const(0, 26), p) >> d), al.eq(wide[26:]),
                     lost.eq(wide[:26] != 0), e.eq(Mux(big_e >= 1, big_e, 1))]
    else:
        m.d.comb += [al.eq(p), lost.eq(0), e.eq(big_e)]
    keep = al[2:]
    up = al[1] & (al[0] | lost | keep[0])
    k1 = sig(25, "k1")
    m.d.comb += k1.eq(keep + up)
    k2, e2 = sig(24, "k2"), sig(signed(12), "e2")  # a carry out leaves k1 = 2**24: k2 = 2**23
    m.d.comb += [k2.eq(Mux(k1[24], k1[1:], k1[:24])), e2.eq(e + k1[24])]
    r = sig(32, "r")
    with m.If(e2 >= 0xFF):
        m.d.comb += r.eq(Cat(Const(_INF32, 31), sign))
    with m.Else():  # exponent field 0 when the hidden bit is clear: subnormal or zero
        m.d.comb += r.eq(Cat(k2[:23], Mux(k2[23], e2[:8], 0), sign))
    return r


def _cuts(stages, steps: int, what: str) -> set[int]:
    """The steps before which a pipelined ``what`` has a register rank: ``stages`` ranks spread
    evenly over the ``steps - 1`` boundaries between its ``steps`` restoring steps."""
    if isinstance(stages, bool) or not isinstance(stages, int) or not 0 <= stages < steps:
        raise ValueError(f"{what} stages must be an integer in [0, {steps - 1}], not {stages!r}")
    return {j * steps // (stages + 1) for j in range(1, stages + 1)}


def _register(m: Module, domain: str, name: str, values: dict) -> dict:
    """One pipeline rank: a register in ``domain`` for each of ``values``, under the same keys."""
    rank = Module()
    m.submodules += rank
    regs = {}
    for key, value in values.items():
        regs[key] = Signal(Value.cast(value).shape(), name=f"{name}_{key}")
        rank.d[domain] += regs[key].eq(value)
    return regs


def fp32_div(m: Module, a, b, name: str = "div", *, stages: int = 0,
             domain: str = "sync") -> Signal:
    """IEEE binary32 divider, bit for bit :func:`hwsim.numerics.fp32_div`.

    Round to nearest even, gradual underflow (subnormals in and out), overflow to infinity,
    canonical NaN ``0x7FC00000`` for NaN in, ``0/0`` and ``inf/inf``; ``x/0`` (``x != 0``) and
    ``inf/x`` give a signed infinity, ``0/x`` and ``x/inf`` a signed zero (sign: exclusive or of
    the signs).

    Logic, in order: two 24-bit leading-one detectors and left shifters (subnormal operands
    normalised) and a 24-bit compare (``mx < my`` doubles the dividend, so that the quotient
    lies in ``[1, 2)``); :data:`DIV_STEPS` = 25 restoring steps in series, each a 26-bit
    subtractor whose sign selects the next 24-bit partial remainder (the critical path crosses
    all 25 carry chains); a 24-bit zero test (the sticky bit), a 26-bit denormalising right
    shifter with sticky, a 25-bit rounding increment, pack and special-value multiplexers. The
    logic goes into anonymous submodules of ``m``, one per restoring step.

    Parameters
    ----------
    m : Module
        The module that receives the logic.
    a, b : Value, 32 bits
        binary32 bit patterns of dividend and divisor.
    name : str
        Prefix of the internal signal names.
    stages : int
        Register ranks, ``0 <= stages <= DIV_STEPS - 1``, spread evenly between the restoring
        steps (the normalisers sit before the first rank, the rounding after the last). The
        quotient follows its operands by ``stages`` cycles of ``domain``; there is no enable,
        every rank loads on every cycle. 0 (default): combinational.
    domain : str
        Clock domain of the register ranks.

    Returns
    -------
    Signal(32)
        binary32 bit pattern of ``a / b``, ``stages`` cycles after ``a`` and ``b``.

    Raises
    ------
    ValueError
        If ``stages`` is not an integer in ``[0, DIV_STEPS - 1]``.
    """
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    cuts = _cuts(stages, DIV_STEPS, "fp32_div")
    front = Module()
    m.submodules += front
    # 1. special operands, and the result they select
    x, y = a[:31], b[:31]
    x_inf, y_inf = x == _INF32, y == _INF32
    x_zero, y_zero = x == 0, y == 0
    sign, nan, special = sig(1, "sign"), sig(1, "nan"), sig(1, "special")
    front.d.comb += [
        sign.eq(a[31] ^ b[31]),
        nan.eq((x > _INF32) | (y > _INF32) | (x_inf & y_inf) | (x_zero & y_zero)),
        special.eq(nan | x_inf | y_inf | x_zero | y_zero),
    ]
    special_r = sig(32, "special_r")
    with front.If(nan):
        front.d.comb += special_r.eq(_CANONICAL_NAN_F32)
    with front.Elif(x_inf | y_zero):
        front.d.comb += special_r.eq(Cat(Const(_INF32, 31), sign))
    with front.Else():  # 0/x, x/inf
        front.d.comb += special_r.eq(Cat(Const(0, 31), sign))
    # 2. normalised significands: a / b = (mx / my) * 2**(ex - ey)
    mx, ex = _normalise(front, a, f"{name}_x")
    my, ey = _normalise(front, b, f"{name}_y")
    # 3. quotient in [1, 2): double the dividend when mx < my; biased exponent of its leading one
    lt = sig(1, "lt")
    big_e = sig(signed(11), "big_e")  # in [-150, 403]
    rem0 = sig(25, "rem0")
    front.d.comb += [lt.eq(mx < my), big_e.eq(ex - ey + 127 - lt),
                     rem0.eq(Mux(lt, mx << 1, mx))]
    # 4. restoring division, one quotient bit a step; my <= rem < 2 * my before the first
    state = {"rem": rem0, "q": Const(0, 0), "my": my, "big_e": big_e, "sign": sign,
             "special": special, "special_r": special_r}
    for i in range(DIV_STEPS):
        if i in cuts:
            state = _register(m, domain, f"{name}_p{i}", state)
        step = Module()
        m.submodules += step
        rem = state["rem"]
        diff = rem - state["my"]  # signed(26)
        ge = ~diff[-1]
        nxt, q = sig(24, f"r{i}"), sig(i + 1, f"q{i}")  # nxt < my
        step.d.comb += [nxt.eq(Mux(ge, diff[:24], rem[:24])), q.eq(Cat(ge, state["q"]))]
        state["rem"] = Cat(Const(0, 1), nxt) if i < DIV_STEPS - 1 else nxt
        state["q"] = q
    # 5. 25 quotient bits over the sticky bit (a nonzero remainder); round and pack
    tail = Module()
    m.submodules += tail
    p = sig(26, "p")
    tail.d.comb += p.eq(Cat(state["rem"] != 0, state["q"]))
    r = _round_pack(tail, state["sign"], p, state["big_e"], f"{name}_rnd")
    out = sig(32, "r")
    tail.d.comb += out.eq(Mux(state["special"], state["special_r"], r))
    return out


def fp32_sqrt(m: Module, a, name: str = "sqrt", *, stages: int = 0,
              domain: str = "sync") -> Signal:
    """IEEE binary32 square root, bit for bit :func:`hwsim.numerics.fp32_sqrt`.

    Round to nearest even; ``sqrt(+-0) = +-0``, ``sqrt(+inf) = +inf``; a negative nonzero
    operand (``-inf`` included) or NaN gives the canonical NaN ``0x7FC00000``. Subnormal
    operands are normalised; roots are never subnormal and never overflow.

    Logic, in order: a 24-bit leading-one detector and left shifter; :data:`SQRT_STEPS` = 25
    restoring steps in series, step ``i`` an ``(i + 4)``-bit subtractor (up to 28 bits) whose
    sign selects the next partial remainder (the critical path crosses all 25 carry chains); a
    26-bit zero test (the sticky bit), a 25-bit rounding increment, pack and special-value
    multiplexers. The logic goes into anonymous submodules of ``m``, one per restoring step.

    Parameters
    ----------
    m : Module
        The module that receives the logic.
    a : Value, 32 bits
        binary32 bit pattern.
    name : str
        Prefix of the internal signal names.
    stages : int
        Register ranks, ``0 <= stages <= SQRT_STEPS - 1``, spread evenly between the restoring
        steps; the root follows its operand by ``stages`` cycles of ``domain`` (no enable).
        0 (default): combinational.
    domain : str
        Clock domain of the register ranks.

    Returns
    -------
    Signal(32)
        binary32 bit pattern of ``sqrt(a)``, ``stages`` cycles after ``a``.

    Raises
    ------
    ValueError
        If ``stages`` is not an integer in ``[0, SQRT_STEPS - 1]``.
    """
    def sig(shape, suffix):
        return Signal(shape, name=f"{name}_{suffix}")

    cuts = _cuts(stages, SQRT_STEPS, "fp32_sqrt")
    front = Module()
    m.submodules += front
    # 1. +-0 and +inf are their own roots; NaN and negative nonzero operands give NaN
    special, special_r = sig(1, "special"), sig(32, "special_r")
    own_root = (a[:31] == 0) | (a == _INF32)
    front.d.comb += [special.eq(own_root | (a > _INF32)),
                     special_r.eq(Mux(own_root, a, _CANONICAL_NAN_F32))]
    # 2. a = mx * 2**(e - 150); the radicand mx * 2**26 (e even) or mx * 2**25 (e odd) makes
    #    the exponent even and puts the 25-bit root in [2**24, 2**25)
    mx, e = _normalise(front, a, f"{name}_x")
    rad = sig(50, "rad")
    big_e = sig(signed(10), "big_e")  # the root's biased exponent 63 + ceil(e / 2): [52, 190]
    front.d.comb += [rad.eq(Mux(e[0], mx << 25, mx << 26)), big_e.eq(63 + ((e + 1) >> 1))]
    # 3. restoring square root, one root bit a step, the radicand's bits two a step from the
    #    top: root**2 + rem = the radicand's bits so far, so rem <= 2 * root
    state = {"rad": rad, "rem": Const(0, 1), "root": Const(0, 0), "big_e": big_e,
             "special": special, "special_r": special_r}
    for i in range(SQRT_STEPS):
        if i in cuts:
            state = _register(m, domain, f"{name}_p{i}", state)
        step = Module()
        m.submodules += step
        rest = state["rad"]
        cur = Cat(rest[-2:], state["rem"])  # 4 * rem + the next two bits: i + 3 bits
        diff = cur - Cat(Const(1, 2), state["root"])  # - (4 * root + 1), signed(i + 4)
        ge = ~diff[-1]
        rem, root = sig(i + 2, f"r{i}"), sig(i + 1, f"q{i}")
        step.d.comb += [rem.eq(Mux(ge, diff[:i + 2], cur[:i + 2])),
                        root.eq(Cat(ge, state["root"]))]
        state["rad"], state["rem"], state["root"] = rest[:-2], rem, root
    # 4. 25 root bits over the sticky bit (a nonzero remainder); round (no underflow) and pack
    tail = Module()
    m.submodules += tail
    p = sig(26, "p")
    tail.d.comb += p.eq(Cat(state["rem"] != 0, state["root"]))
    r = _round_pack(tail, Const(0, 1), p, state["big_e"], f"{name}_rnd", subnormal=False)
    out = sig(32, "r")
    tail.d.comb += out.eq(Mux(state["special"], state["special_r"], r))
    return out
