"""The lookup engine's hash lane: MemoryFormer's chunk weight (HASH modes 0 and 1) and its
backward (modes 2 and 3), one chunk element a cycle. The model is :mod:`hwsim.units.lookup`
(``_hash``) on :func:`hwsim.numerics.chunk_weight_bits` and
:func:`hwsim.numerics.chunk_weight_grad`; every operation here is one of theirs, in their
order, on :mod:`rtl.fp32`'s adder and multiplier.

The sigmoid (:func:`hw_sigmoid`) reads one word of a 512 x 64 coefficient ROM
(:data:`hwsim.numerics.SIGMOID_C0` in bits 0-31, :data:`hwsim.numerics.SIGMOID_C1` in bits
32-63), an :class:`amaranth.lib.memory.Memory` with ``init`` and no write port: one ROM per
lane. The lanes read it through a synchronous port whose address register is their stage-1
register, so it is a block RAM (Yosys ``synth_xilinx``: one RAMB36E2 a lane, the table having
a BRAM36's 512 x 72 shape); the stand-alone combinational :func:`hw_sigmoid` reads it
asynchronously (a LUT ROM).
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwsim.numerics import CANONICAL_NAN_F32, SIGMOID_C0, SIGMOID_C1, SIGMOID_SEGMENTS

from ..fp32 import fp32_add, fp32_mul

__all__ = ["HASH_GRAD_DEPTH", "HASH_LANE_DEPTH", "HashGradLane", "HashLane", "hw_sigmoid"]

HASH_LANE_DEPTH = 4
"""Cycles from a chunk's last element (``in_valid & last``) to :class:`HashLane`'s
``out_valid`` with its weight: stage 1 the scale multiply, stage 2 the sigmoid's line, stage 3
the running product, stage 4 the official form's multiply into the output register."""

HASH_GRAD_DEPTH = 6
"""Cycles from a chunk's last element to :class:`HashGradLane`'s ``dz_0``; ``dz_j`` follows
``j`` cycles later: stages 1-3 as :class:`HashLane`, then three stages per element of the
second pass into the output register."""

_ONE32 = 0x3F800000
_SIGN32 = 0x80000000
_INF32 = 0x7F800000
_X_MAX32 = 0x41800000  # 16.0: the table's end, hwsim.numerics.SIGMOID_X_MAX


def _sigmoid_rom(m: Module, name: str) -> Memory:
    """The coefficient ROM: word ``i`` is ``C1[i] << 32 | C0[i]``."""
    init = [int(c0) | int(c1) << 32 for c0, c1 in zip(SIGMOID_C0, SIGMOID_C1, strict=True)]
    rom = Memory(shape=unsigned(64), depth=SIGMOID_SEGMENTS, init=init)
    m.submodules[f"{name}_rom"] = rom
    return rom


def _segment(m: Module, x, name: str) -> Signal:
    """``floor(|x| * 32)`` for ``|x| < 16`` (the significand shifted right by ``145 - e``, a
    subnormal's by 144): the table index. Above 16 the index is unused (the line is
    overridden), so the shift stops at 15."""
    e = x[23:31]
    d = Signal(range(10), name=f"{name}_d")  # 145 - e - 15, 9 and more all give 0
    m.d.comb += d.eq(Mux(e >= 130, 0, Mux(e <= 121, 9, 130 - e)))
    seg = Signal(9, name=f"{name}_seg")
    m.d.comb += seg.eq(Cat(x[15:23], e != 0) >> d)
    return seg


def _line(m: Module, mag, coeffs, name: str) -> Signal:
    """The sigmoid of ``mag = |x|``: ``C0 (+) (C1 (x) |x|)`` on its segment, 1.0 from 16 on
    (infinities and NaN included; NaN is replaced later)."""
    fit = fp32_add(m, coeffs[:32], fp32_mul(m, coeffs[32:], mag, f"{name}_mul"), f"{name}_add")
    s = Signal(32, name=f"{name}_line")
    m.d.comb += s.eq(Mux(mag >= _X_MAX32, _ONE32, fit))
    return s


def _sign_and_nan(m: Module, s, negative, nan, name: str) -> Signal:
    """``1 (+) -s`` when ``x`` was negative (nonzero), the canonical NaN when it was NaN."""
    flipped = fp32_add(m, Const(_ONE32, 32), s ^ _SIGN32, f"{name}_neg")
    out = Signal(32, name=f"{name}_s")
    m.d.comb += out.eq(Mux(nan, CANONICAL_NAN_F32, Mux(negative, flipped, s)))
    return out


def _magnitude(m: Module, x, name: str) -> Signal:
    mag = Signal(32, name=name)
    m.d.comb += mag.eq(x[:31])
    return mag


def hw_sigmoid(m: Module, x, name: str = "sigmoid") -> Signal:
    """Combinational hash-unit sigmoid, :func:`hwsim.numerics.hw_sigmoid` bit for bit.

    ``|x| < 16``: segment ``i = floor(|x| * 32)`` (subnormals take segment 0), ``s = C0[i] (+)
    (C1[i] (x) |x|)``; ``|x| >= 16``, infinities included: ``s = 1.0``; ``x < 0`` (``-0``
    excepted): ``1 (+) -s``; NaN: the canonical NaN. Logic: the segment shifter, one
    asynchronous read of a 512 x 64 ROM of its own (a LUT ROM), one multiplier, two adders.

    Parameters
    ----------
    m : Module
        The module that receives the logic (and the ROM, as submodule ``{name}_rom``).
    x : Value, 32 bits
        binary32 bit pattern.
    name : str
        Prefix of the internal signal names.

    Returns
    -------
    Signal(32)
        binary32 bit pattern of ``sigmoid(x)``.
    """
    mag = _magnitude(m, x, f"{name}_mag")
    port = _sigmoid_rom(m, name).read_port(domain="comb")
    m.d.comb += port.addr.eq(_segment(m, mag, name))
    return _sign_and_nan(m, _line(m, mag, port.data, name), x[31] & (mag != 0), mag > _INF32,
                         name)


class _FirstPass(NamedTuple):
    """Stage 3 of the chunk pipeline: the element there (its tags), its sigmoid, the running
    product before (``p``, a register) and after it, and the chunk's ``||z||_1`` so far."""

    valid: Signal
    first: Signal
    last: Signal
    s: Signal
    p: Signal
    p_next: Signal
    l1: Signal


def _first_pass(m: Module, c, in_valid, first, last, z) -> _FirstPass:
    """Stages 1-3 of both lanes: ``x = |z_j| (x) c`` and ``L = L (+) |z_j|``; the sigmoid's
    line; ``1 - s`` for negative ``x`` and the product ``p = s_0`` or ``p (x) s_j``."""
    # stage 1: the scale multiply, the ROM address (registered in the ROM), the L1 sum
    absz = _magnitude(m, z, "absz")
    x = fp32_mul(m, absz, c, "x_mul")
    port = _sigmoid_rom(m, "sigmoid").read_port()
    m.d.comb += port.addr.eq(_segment(m, x, "sigmoid"))
    l1 = Signal(32, name="l1")  # the sum up to the element in stage 2
    with m.If(in_valid):
        m.d.sync += l1.eq(fp32_add(m, Mux(first, 0, l1), absz, "l1_add"))
    v2, f2, t2 = Signal(name="valid2"), Signal(name="first2"), Signal(name="last2")
    x2 = Signal(32, name="x2")
    m.d.sync += [v2.eq(in_valid), f2.eq(first), t2.eq(last), x2.eq(x)]

    # stage 2: the line C0 + C1 |x|
    mag2 = _magnitude(m, x2, "mag2")
    v3, f3, t3 = Signal(name="valid3"), Signal(name="first3"), Signal(name="last3")
    line3, l1_3 = Signal(32, name="line3"), Signal(32, name="l1_3")
    neg3, nan3 = Signal(name="neg3"), Signal(name="nan3")
    m.d.sync += [v3.eq(v2), f3.eq(f2), t3.eq(t2), line3.eq(_line(m, mag2, port.data, "sigmoid")),
                 neg3.eq(x2[31] & (mag2 != 0)), nan3.eq(mag2 > _INF32), l1_3.eq(l1)]

    # stage 3: the sign and NaN of the sigmoid, the loop-carried product
    s = _sign_and_nan(m, line3, neg3, nan3, "sigmoid")
    p, p_next = Signal(32, name="p"), Signal(32, name="p_next")
    m.d.comb += p_next.eq(Mux(f3, s, fp32_mul(m, p, s, "p_mul")))
    with m.If(v3):
        m.d.sync += p.eq(p_next)
    return _FirstPass(v3, f3, t3, s, p, p_next, l1_3)


class HashLane(wiring.Component):
    """One chunk weight at a time, one element a cycle:
    :func:`hwsim.numerics.chunk_weight_bits` bit for bit.

    For the chunk ``z_0 .. z_{tau-1}``: ``s_j = hw_sigmoid(|z_j| (x) c)``, ``p = s_0``, then
    ``p = p (x) s_j``; ``L = +0 (+) |z_0| (+) ... (+) |z_{tau-1}|``; the weight is ``p``, or
    ``L (x) p`` when ``official``. Four stages, the logic between registers at most two fp32
    operations (no timing closure claimed): (1) ``|z_j| (x) c``, its segment (the ROM's
    address) and the ``L`` accumulation; (2) the ROM word and ``C0 (+) C1 (x) |x|``; (3)
    ``1 (+) -s`` for negative ``x`` and the loop-carried ``p (x) s``; (4) ``L (x) p`` or ``p``
    into the output register.

    Members
    -------
    c : In(32)
        fp32 ``2/t`` (controller register ``table``); held while a chunk is in the lane.
    official : In(1)
        The official form ``||z||_1 p(z)`` (HASH mode 1); held while a chunk is in the lane.
    in_valid : In(1)
        ``z`` carries an element. A chunk's elements come on consecutive cycles; the next
        chunk may start on the cycle after its predecessor's last element, or later.
    first, last : In(1)
        The element is the chunk's first, its last (both for ``tau = 1``).
    z : In(32)
        binary32 bit pattern of the element.
    out_valid : Out(1)
        ``weight`` holds a chunk's weight: high for one cycle per chunk, :data:`HASH_LANE_DEPTH`
        cycles after the cycle of its last element, low otherwise.
    weight : Out(32)
        binary32 bit pattern of the weight (meaningful while ``out_valid`` is high).

    Latency
    -------
    :attr:`latency` = :data:`HASH_LANE_DEPTH` = 4 cycles from ``in_valid & last`` to
    ``out_valid``; a chunk of ``tau`` elements occupies the input for ``tau`` cycles.
    """

    latency = HASH_LANE_DEPTH

    def __init__(self):
        super().__init__({
            "c": In(32), "official": In(1), "in_valid": In(1), "first": In(1), "last": In(1),
            "z": In(32), "out_valid": Out(1), "weight": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        st = _first_pass(m, self.c, self.in_valid, self.first, self.last, self.z)
        # stage 4: p and L of the chunk whose last element left stage 3
        v4, l1_4 = Signal(name="valid4"), Signal(32, name="l1_4")
        m.d.sync += [v4.eq(st.valid & st.last), l1_4.eq(st.l1)]
        weight = Mux(self.official, fp32_mul(m, l1_4, st.p, "official_mul"), st.p)
        m.d.sync += [self.out_valid.eq(v4), self.weight.eq(weight)]
        return m


class HashGradLane(wiring.Component):
    """The backward of one chunk weight at a time (HASH modes 2 and 3):
    ``dz_j = g (x) dw/dz_j``, :func:`hwsim.numerics.chunk_weight_grad` times ``g`` as
    ``hwsim.units.lookup`` computes it, bit for bit.

    First pass (the chunk's elements in, one a cycle): stages 1-3 of :class:`HashLane`, each
    ``s_j`` written with the sign, zero and NaN flags of ``z_j`` into one bank of a
    ``2 x max_tau`` x 35-bit buffer (a LUT RAM, one synchronous write and one asynchronous read
    port). After the last element the chunk's ``p``, ``L`` and ``g`` are latched and the
    second pass reads the bank back, one element a cycle, through three stages:

    * A: ``q = 1 (+) -s_j`` (exact), ``u = p (x) q``;
    * B: ``g_j = u (x) c``, ``t = L (x) g_j``;
    * C: ``v = p (+) t`` (official) or ``g_j``; ``r = sign(z_j) v`` (``+0`` for ``z_j = +-0``,
      the canonical NaN when ``v`` or ``z_j`` is NaN); ``dz_j = g (x) r`` into the output
      register.

    The banks alternate, so the next chunk's first pass overlaps this chunk's second pass:
    chunks of one ``tau`` back to back give one ``dz`` a cycle with no gap.

    Parameters
    ----------
    max_tau : int
        The longest chunk (the buffer's bank depth); ``hwsim.units.lookup`` rejects HASH widths
        above 31.

    Members
    -------
    c, official, in_valid, first, last, z : In
        As :class:`HashLane` (``c`` and ``official`` are also used by the second pass: hold
        them until the chunk's last ``dz`` is out).
    g : In(32)
        fp32 ``dL/dw`` of the chunk, sampled with its last element.
    out_valid : Out(1)
        ``dz`` holds an element's gradient.
    dz : Out(32)
        binary32 bit pattern of ``dz_j``.

    Timing
    ------
    A chunk of ``tau`` elements whose last element is presented on cycle ``T`` (its first on
    ``T - tau + 1``) has ``dz_j`` with ``out_valid`` high on cycle ``T + HASH_GRAD_DEPTH + j``
    (:data:`HASH_GRAD_DEPTH` = :attr:`latency` = 6), ``out_valid`` low on every other cycle:
    ``2 tau + 5`` cycles from its first element to its last ``dz`` inclusive, and one chunk
    every ``tau`` cycles in a stream. The next chunk's last element must come at least
    ``tau`` (this chunk's length) cycles after this one's, which chunks of one length meet
    back to back; chunks longer than ``max_tau``, or closer, give undefined results.

    Raises
    ------
    ValueError
        If ``max_tau`` is not a positive integer.
    """

    latency = HASH_GRAD_DEPTH

    def __init__(self, max_tau: int = 31):
        if isinstance(max_tau, bool) or not isinstance(max_tau, int) or max_tau < 1:
            raise ValueError(f"max_tau must be a positive integer, not {max_tau!r}")
        self.max_tau = max_tau
        super().__init__({
            "c": In(32), "official": In(1), "in_valid": In(1), "first": In(1), "last": In(1),
            "z": In(32), "g": In(32), "out_valid": Out(1), "dz": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        st = _first_pass(m, self.c, self.in_valid, self.first, self.last, self.z)
        # z_j's flags and the chunk's g travel with the element to stage 3
        zflags = Cat(self.z[31], self.z[:31] == 0, self.z[:31] > _INF32)
        zflags2, zflags3 = Signal(3, name="zflags2"), Signal(3, name="zflags3")
        g2, g3 = Signal(32, name="g2"), Signal(32, name="g3")
        m.d.sync += [zflags2.eq(zflags), zflags3.eq(zflags2), g2.eq(self.g), g3.eq(g2)]

        # the s buffer: address = (bank, index)
        idx_bits = max(1, (self.max_tau - 1).bit_length())
        buf = Memory(shape=unsigned(35), depth=2 << idx_bits, init=[])
        m.submodules.s_buffer = buf
        wr = buf.write_port()
        rd = buf.read_port(domain="comb")
        count, bank = Signal(idx_bits, name="count"), Signal(name="bank")
        idx = Signal(idx_bits, name="idx")
        m.d.comb += [idx.eq(Mux(st.first, 0, count)), wr.addr.eq(Cat(idx, bank)),
                     wr.data.eq(Cat(st.s, zflags3)), wr.en.eq(st.valid)]

        # second pass: the chunk's constants, the bank and the element read next
        p_c, l1_c, g_c = (Signal(32, name=n) for n in ("p_chunk", "l1_chunk", "g_chunk"))
        active, rbank = Signal(name="active"), Signal(name="rbank")
        ridx, rend = Signal(idx_bits, name="ridx"), Signal(idx_bits, name="rend")
        m.d.comb += rd.addr.eq(Cat(ridx, rbank))
        with m.If(active):
            m.d.sync += ridx.eq(ridx + 1)
            with m.If(ridx == rend):
                m.d.sync += active.eq(0)
        with m.If(st.valid):
            m.d.sync += count.eq(idx + 1)
            with m.If(st.last):  # after the above: a new second pass wins over the end
                m.d.sync += [bank.eq(~bank), p_c.eq(st.p_next), l1_c.eq(st.l1), g_c.eq(g3),
                             active.eq(1), rbank.eq(bank), ridx.eq(0), rend.eq(idx)]

        # stage A: q = 1 - s_j, u = p q
        s_j, zf = rd.data[:32], rd.data[32:]
        u = fp32_mul(m, p_c, fp32_add(m, Const(_ONE32, 32), s_j ^ _SIGN32, "q_add"), "u_mul")
        vB, uB, pB, l1B, gB = (Signal(w, name=f"{n}_b") for n, w in
                               (("valid", 1), ("u", 32), ("p", 32), ("l1", 32), ("g", 32)))
        zfB = Signal(3, name="zflags_b")
        m.d.sync += [vB.eq(active), uB.eq(u), pB.eq(p_c), l1B.eq(l1_c), gB.eq(g_c), zfB.eq(zf)]

        # stage B: g_j = u c, t = L g_j
        gj = fp32_mul(m, uB, self.c, "gj_mul")
        vC, gjC, tC, pC, gC = (Signal(w, name=f"{n}_c") for n, w in
                               (("valid", 1), ("gj", 32), ("t", 32), ("p", 32), ("g", 32)))
        zfC = Signal(3, name="zflags_c")
        m.d.sync += [vC.eq(vB), gjC.eq(gj), tC.eq(fp32_mul(m, l1B, gj, "t_mul")), pC.eq(pB),
                     gC.eq(gB), zfC.eq(zfB)]

        # stage C: v, its sign, dz = g r
        v = Signal(32, name="v")
        m.d.comb += v.eq(Mux(self.official, fp32_add(m, pC, tC, "v_add"), gjC))
        r = Signal(32, name="r")
        m.d.comb += r.eq(Mux((v[:31] > _INF32) | zfC[2], CANONICAL_NAN_F32,
                             Mux(zfC[1], 0, v ^ (zfC[0] << 31))))
        m.d.sync += [self.out_valid.eq(vC), self.dz.eq(fp32_mul(m, gC, r, "dz_mul"))]
        return m
