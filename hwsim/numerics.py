"""Bit-exact arithmetic of the SAT hardware: the numbers the RTL must reproduce bit for bit.

This module is the executable specification of the PE's and the vector engine's arithmetic.
The floating-point kernels work on raw IEEE-754 bit patterns (``uint16`` for binary16,
``uint32`` for binary32) and are written so that an RTL engineer can follow them step by step;
they are Numba ``@njit`` functions, so the cycle-level kernels can call them too. Results
depend only on integer operations, never on the host FPU's rounding or flush-to-zero mode. The
one exception is :func:`fp16_mac`, the PE step the per-cycle kernels run, which adds on the
host's float32 adder for speed: it returns the bits of the integer datapath
:func:`fp16_mac_bitlevel` whatever the flush-to-zero mode, given the default rounding mode.

Numeric policy
--------------
int8
    ``int8 x int8 -> int32``. Products are exact (|p| <= 2^14); accumulation wraps modulo
    2^32 (two's complement), exactly like a 32-bit adder that ignores its carry out. Wrapping
    each step and wrapping once at the end give the same bits.
fp16 x fp16 -> fp32 (one PE step)
    ``acc' = fp32_add(acc, fp16_mul_exact(a, b))``.

    * **The product is exact in fp32, never rounded.** Significands have at most 11 bits
      (normals 1.f with 10 fraction bits; subnormals 0.f, i.e. fewer significant bits), so
      the product has at most 22 significant bits <= fp32's 24. Magnitudes lie in
      [2^-48, 65504^2 ~ 2^32): the smallest nonzero product (2^-24 x 2^-24, both the
      smallest fp16 subnormal) is 2^-48, far above fp32's smallest normal 2^-126; the largest
      is far below fp32's largest finite ~2^128. So every product of finite fp16 values,
      subnormal inputs included, is a *normal* fp32 number (or a signed zero), exactly. The
      multiplier therefore needs no rounding logic; the slow test
      ``test_fp16_mul_exact_all_2_32_pairs`` checks this over all 2^32 input pairs.
    * **The addition rounds to nearest, ties to even** (IEEE ``roundTiesToEven``), with
      **full IEEE gradual underflow**: subnormal fp32 operands and results are produced
      and consumed exactly as IEEE specifies; there is no flush-to-zero anywhere. (By
      Hauser's theorem a sum that lands in the subnormal range is exact, so subnormals cost
      no rounding error.) Overflow rounds to +-inf. Since nonzero products are multiples of
      2^-48, a PE's accumulator can only be an fp32 subnormal if its initial value is one;
      the generic adder (vector engine) meets subnormals routinely.
    * The accumulation order is the array's order: ``k = 0, 1, ..., K-1``, each step rounded,
      starting from +0.0 or from a given accumulator (accumulate mode).
Signed zeros
    ``x * y`` of zeros has sign ``sign(x) xor sign(y)``. ``(+0) + (-0) = +0``,
    ``(-0) + (-0) = -0``, ``x + (-x) = +0`` for finite nonzero ``x``; ``x + (+-0) = x``.
Infinities and NaN
    ``inf - inf``, ``0 * inf`` -> NaN; ``inf + finite = inf``; ``inf * nonzero = +-inf``.
    **Every NaN result is the canonical quiet NaN, positive sign, zero payload:**
    ``0x7FC00000`` in fp32 and ``0x7E00`` in fp16, whatever the NaN inputs were (signalling
    or quiet, any sign or payload). This differs from x86/numpy, which propagate a payload;
    the RTL must produce the canonical pattern.
fp32 -> fp16 (vector engine writes the fp16 copy of the master weights)
    Round to nearest, ties to even; values at or above 65520 (half an ulp above 65504) round
    to +-inf; results in fp16's subnormal range are rounded there (gradual underflow), and
    tiny values round to signed zero. NaN -> ``0x7E00``.
fp16 -> fp32
    Exact (subnormal fp16 values become normal fp32 values). NaN -> ``0x7FC00000``.
Error bound against exact arithmetic
    Because products are exact and every addition obeys ``fl(x + y) = (x + y)(1 + d)`` with
    ``|d| <= u = 2^-24`` (also in the subnormal range, where ``d = 0``), the sequential
    fp32 accumulation of ``K`` products onto ``c0`` satisfies, when nothing overflows,
    ``|C - C_exact| <= gamma_K * (|c0| + sum_k |a_ik| |b_kj|)`` with
    ``gamma_K = K u / (1 - K u)``. :func:`matmul_error_bound` computes it. Any other
    fp32 summation order (torch, BLAS) obeys the same bound, so two such results differ by at
    most twice the bound.

Bit-pattern kernels (``@njit``, scalars, callable from other Numba kernels):
:func:`fp16_mul_exact`, :func:`fp32_add`, :func:`fp16_mac_bitlevel`, :func:`fp16_mac`,
:func:`fp16_to_fp32`, :func:`fp32_to_fp16`, :func:`fp32_mul`, :func:`fp32_div` and
:func:`fp32_sqrt` (correctly rounded, integer datapaths; the lookup engine's Adam row update).
Array functions (Python): :func:`fp32_add_array`,
:func:`fp16_mul_exact_array`, :func:`fp16_mac_sequence`, :func:`fp16_matmul`,
:func:`int8_matmul`, :func:`cast_fp32_to_fp16`, :func:`cast_fp16_to_fp32`,
:func:`fp32_div_array`, :func:`fp32_sqrt_array`.
"""

from __future__ import annotations

import numpy as np

from ._jit import lazy_global, njit

# LLVM's ctlz: a branch-free leading-zero count (the RTL's priority encoder). A data-dependent
# branch ladder instead costs a misprediction per product and halves fp16_matmul's speed.
# Bound when the first kernel of this module is built (hwsim._jit), so importing hwsim does not
# import Numba.
leading_zeros = lazy_global("numba.cpython.unsafe.numbers", "leading_zeros")

__all__ = [
    "CANONICAL_NAN_F16",
    "CANONICAL_NAN_F32",
    "U",
    "bits_f16",
    "bits_f32",
    "cast_fp16_to_fp32",
    "cast_fp32_to_fp16",
    "error_bound",
    "f16_bits",
    "f32_bits",
    "fp16_mac",
    "fp16_mac_bitlevel",
    "fp16_mac_sequence",
    "fp16_matmul",
    "fp16_mul_exact",
    "fp16_mul_exact_array",
    "fp16_to_fp32",
    "fp32_add",
    "fp32_add_array",
    "fp32_to_fp16",
    "gamma",
    "int8_matmul",
    "matmul_error_bound",
]

CANONICAL_NAN_F32 = 0x7FC00000
"""The only fp32 NaN the hardware produces: quiet, positive, zero payload."""
CANONICAL_NAN_F16 = 0x7E00
"""The only fp16 NaN the hardware produces: quiet, positive, zero payload."""
U = 2.0**-24
"""Unit roundoff of fp32 round-to-nearest: half an ulp of 1.0."""

# binary32 fields
_SIGN32 = 0x80000000
_MANT32 = 0x007FFFFF
_HIDDEN32 = 0x00800000
_INF32 = 0x7F800000
# binary16 fields
_MANT16 = 0x03FF
_HIDDEN16 = 0x0400
_INF16 = 0x7C00
# extra low bits kept by the adder datapath: guard, round, sticky
_GRS = 3


# ---------------------------------------------------------------- bit views (no arithmetic)


def f32_bits(x) -> np.ndarray | np.uint32:
    """Bit pattern of ``x`` as binary32 (``x`` is first converted to float32 if it is not).

    Returns a ``np.uint32`` scalar for scalar input, a ``uint32`` array otherwise.
    """
    arr = np.asarray(x, dtype=np.float32).view(np.uint32)
    return arr[()] if arr.ndim == 0 else arr


def bits_f32(u) -> np.ndarray | np.float32:
    """The float32 whose bit pattern is ``u`` (integers, taken modulo 2^32)."""
    arr = (np.asarray(u, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    return arr[()] if arr.ndim == 0 else arr


def f16_bits(x) -> np.ndarray | np.uint16:
    """Bit pattern of ``x`` as binary16 (``x`` is first converted to float16 if it is not)."""
    arr = np.asarray(x, dtype=np.float16).view(np.uint16)
    return arr[()] if arr.ndim == 0 else arr


def bits_f16(u) -> np.ndarray | np.float16:
    """The float16 whose bit pattern is ``u`` (integers, taken modulo 2^16)."""
    arr = (np.asarray(u, dtype=np.int64) & 0xFFFF).astype(np.uint16).view(np.float16)
    return arr[()] if arr.ndim == 0 else arr


# ---------------------------------------------------------------- bit-level kernels
# Integer arithmetic only (except fp16_mac, see there), so results never depend on the host
# FPU's flush-to-zero state.
# inline="always" makes Numba inline these into every calling kernel, also when either side
# comes from the on-disk cache (linked cached code is not inlined by LLVM); fp16_matmul's
# vectorised inner loop depends on it.


@njit(cache=True, inline="always")
def _msb(x):
    """Index of the most significant set bit of ``x > 0``: a leading-zero counter in the RTL."""
    return 63 - leading_zeros(np.int64(x))


@njit(cache=True, inline="always")
def fp16_mul_exact(a, b):
    """Exact product of two binary16 values as a binary32 bit pattern.

    Parameters
    ----------
    a, b : uint16
        binary16 bit patterns.

    Returns
    -------
    uint32
        binary32 bit pattern of ``a * b``; never rounded (see the module docstring), always
        normal or a signed zero. NaN in, or ``0 * inf``: :data:`CANONICAL_NAN_F32`.

    Notes
    -----
    Written as the datapath plus output multiplexers (no data-dependent branches, which is
    also what lets Numba vectorise :func:`fp16_matmul`): (1) unpack; (2) 11-bit significands,
    subnormals taking exponent field 1 and no hidden bit; (3) 11 x 11 -> 22-bit integer
    product; (4) normalise by a leading-zero count, no rounding; (5) select zero, infinity or
    NaN over the finite result.
    """
    # 1. unpack
    x = np.int64(a) & 0xFFFF
    y = np.int64(b) & 0xFFFF
    sign = ((x ^ y) & 0x8000) << 16
    ex = (x >> 10) & 0x1F
    ey = (y >> 10) & 0x1F
    fx = x & _MANT16
    fy = y & _MANT16
    x_special = ex == 31
    y_special = ey == 31
    x_zero = (x & 0x7FFF) == 0
    y_zero = (y & 0x7FFF) == 0
    nan = (x_special & (fx != 0)) | (y_special & (fy != 0)) | (x_special & y_zero)
    nan |= y_special & x_zero
    # 2. significands
    mx = fx | (_HIDDEN16 if ex != 0 else 0)
    my = fy | (_HIDDEN16 if ey != 0 else 0)
    ex = max(ex, 1)
    ey = max(ey, 1)
    # 3. value = p * 2^(ex + ey - 2*15 - 2*10), p < 2^22
    p = mx * my
    # 4. p = 1.f * 2^n: fp32 biased exponent n + ex + ey - 50 + 127, always in [79, 158]
    n = _msb(p | 1)
    e = n + ex + ey + 77
    r = sign | (e << 23) | ((p << (23 - n)) & _MANT32)
    # 5. output multiplexer
    r = sign if p == 0 else r
    r = (sign | _INF32) if (x_special | y_special) else r
    r = CANONICAL_NAN_F32 if nan else r
    return np.uint32(r)


@njit(cache=True, inline="always")
def fp32_add(a, b):
    """IEEE binary32 addition, round to nearest even, gradual underflow, canonical NaN.

    Parameters
    ----------
    a, b : uint32
        binary32 bit patterns.

    Returns
    -------
    uint32
        binary32 bit pattern of ``a + b``.

    Notes
    -----
    The datapath, with multiplexers in place of branches: (1) swap so that ``|x| >= |y|``
    (non-negative floats order like their bit patterns); (2) unpack, flag specials; (3)
    24-bit significands (hidden bit, or exponent 1 for subnormals) extended by three bits,
    guard/round/sticky; (4) shift ``y`` right by the exponent difference, OR-ing everything
    shifted out into the sticky bit; (5) add or subtract, one right shift on carry out;
    (6) after cancellation, a leading-zero count and left shift that stops at exponent 1
    (the result is then subnormal); (7) round to nearest even on the three extra bits,
    renormalising on carry; (8) pack, overflow to infinity, select the special results.
    """
    # 1. magnitude order
    x = np.int64(a) & 0xFFFFFFFF
    y = np.int64(b) & 0xFFFFFFFF
    swap = (x & 0x7FFFFFFF) < (y & 0x7FFFFFFF)
    x, y = (y, x) if swap else (x, y)
    # 2. unpack
    ex = (x >> 23) & 0xFF
    ey = (y >> 23) & 0xFF
    x_special = ex == 0xFF
    y_special = ey == 0xFF
    subtract = ((x ^ y) >> 31) != 0
    nan = (x_special & ((x & _MANT32) != 0)) | (y_special & ((y & _MANT32) != 0))
    nan |= x_special & y_special & subtract  # inf - inf
    sign = x & _SIGN32
    # 3. significands with guard, round and sticky bits below
    mx = ((x & _MANT32) | (_HIDDEN32 if ex != 0 else 0)) << _GRS
    my = ((y & _MANT32) | (_HIDDEN32 if ey != 0 else 0)) << _GRS
    ex = max(ex, 1)
    ey = max(ey, 1)
    # 4. align y; from 27 places on, every bit of y lands in the sticky bit
    d = min(ex - ey, 27)
    lost = my & ((1 << d) - 1)
    my = (my >> d) | (1 if lost != 0 else 0)
    # 5. add or subtract; the hidden bit of a normal result sits at bit 26
    m = mx - my if subtract else mx + my
    carry = m >> 27
    m = (m >> carry) | (m & carry)
    e = ex + carry
    # 6. normalise after cancellation, not below exponent 1 (gradual underflow)
    shift = min(26 - _msb(m | 1), e - 1)
    m <<= shift
    e -= shift
    sign = 0 if ((m == 0) & subtract) else sign  # exact cancellation is +0 under RNE
    # 7. round to nearest, ties to even
    grs = m & 7
    m >>= _GRS
    m += 1 if ((grs > 4) | ((grs == 4) & ((m & 1) != 0))) else 0
    carry = m >> 24
    m >>= carry
    e += carry
    # 8. pack (exponent field 0 when the hidden bit is clear: subnormal or zero) and select
    r = sign | ((e if m >= _HIDDEN32 else 0) << 23) | (m & _MANT32)
    r = (sign | _INF32) if e >= 0xFF else r
    r = x if x_special else r  # inf + finite, inf + inf of one sign: x is that infinity
    r = CANONICAL_NAN_F32 if nan else r
    return np.uint32(r)


@njit(cache=True, inline="always")
def fp16_mac_bitlevel(acc, a, b):
    """One PE step as the RTL's datapath: ``fp32_add(acc, fp16_mul_exact(a, b))`` on bits.

    The reference for :func:`fp16_mac`, which returns the same bits faster.
    """
    return fp32_add(acc, fp16_mul_exact(a, b))


@njit(cache=True, inline="always")
def fp16_mac(acc, a, b):
    """One PE step: ``fp32_add(acc, fp16_mul_exact(a, b))`` on bit patterns, bit for bit.

    Parameters
    ----------
    acc : uint32
        binary32 bit pattern of the accumulator.
    a, b : uint16
        binary16 bit patterns of the operands.

    Returns
    -------
    uint32
        binary32 bit pattern of ``acc + a * b``, the bits of :func:`fp16_mac_bitlevel`.

    Notes
    -----
    The per-cycle kernels call this once per PE per cycle, so the addition runs on the host
    FPU's float32 adder (one instruction) instead of the bit-level :func:`fp32_add`; the
    result bits are the same, which the tests check against :func:`fp16_mac_bitlevel`:

    * The host adder is IEEE binary32 with round to nearest, ties to even: Numba compiles
      without fastmath, x86-64 adds float32 in SSE registers (no x87 extended precision), and
      nothing in this program changes the FPU's rounding mode from its default.
    * The product is exact and NaN-canonical already (:func:`fp16_mul_exact`); every NaN sum
      is replaced by :data:`CANONICAL_NAN_F32`. Signed zeros, infinities, ``inf - inf`` and
      overflow to infinity are IEEE's, as in :func:`fp32_add`.
    * The FPU's flush-to-zero and denormals-are-zero modes (which some libraries switch on,
      e.g. ``torch.set_flush_denormal``) cannot change a result. Products are normal or zero.
      An accumulator that is normal or zero plus a product is never subnormal: a nonzero
      product is a multiple of 2^-48, an accumulator that nearly cancels it exceeds 2^-49 in
      magnitude and so is a multiple of 2^-72, and so is their nonzero sum. A subnormal
      accumulator plus a nonzero product rounds to the product (the accumulator is far below
      the product's rounding threshold), which a flushed accumulator also gives; plus a zero
      product it stays itself, which a multiplexer selects (``x + 0 = x`` for every nonzero
      ``x``).

    No branches, so loops over independent accumulators still vectorise.
    """
    x = np.int64(acc) & 0xFFFFFFFF
    p = np.int64(fp16_mul_exact(a, b))
    s = np.float32(np.uint32(x).view(np.float32) + np.uint32(p).view(np.float32))
    r = np.int64(np.float32(s).view(np.uint32))
    r = x if (((p & 0x7FFFFFFF) == 0) & ((x & 0x7FFFFFFF) != 0)) else r
    r = CANONICAL_NAN_F32 if (r & 0x7FFFFFFF) > _INF32 else r
    return np.uint32(r)


@njit(cache=True)
def fp16_to_fp32(h):
    """Exact binary16 -> binary32 conversion of a bit pattern; NaN -> canonical."""
    x = np.int64(h) & 0xFFFF
    sign = (x & 0x8000) << 16
    e = (x >> 10) & 0x1F
    m = x & _MANT16
    if e == 31:
        if m != 0:
            return np.uint32(CANONICAL_NAN_F32)
        return np.uint32(sign | _INF32)
    if e == 0:
        if m == 0:
            return np.uint32(sign)
        n = _msb(m)  # m * 2^-24 = 1.f * 2^(n - 24)
        return np.uint32(sign | ((n + 103) << 23) | ((m << (23 - n)) & _MANT32))
    return np.uint32(sign | ((e + 112) << 23) | (m << 13))


@njit(cache=True)
def fp32_to_fp16(u):
    """binary32 -> binary16 bit pattern, round to nearest even, gradual underflow.

    Values whose rounded magnitude exceeds 65504 become +-inf; NaN -> :data:`CANONICAL_NAN_F16`.
    """
    x = np.int64(u) & 0xFFFFFFFF
    sign = (x >> 16) & 0x8000
    e = (x >> 23) & 0xFF
    m = x & _MANT32
    if e == 0xFF:
        if m != 0:
            return np.uint16(CANONICAL_NAN_F16)
        return np.uint16(sign | _INF16)
    if e != 0:
        m |= _HIDDEN32
    else:
        e = 1
    # fp16 exponent field if the result is normal; otherwise shift further into a subnormal
    fe = e - 112
    if fe >= 1:
        shift = 13
    else:
        shift = 14 - fe
        if shift > 25:
            shift = 25  # m < 2^24 < half of 2^25: rounds to zero like any larger shift
    keep = m >> shift
    rem = m & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rem > half or (rem == half and (keep & 1) != 0):
        keep += 1
    # a rounding carry into bit 11 (normal) or bit 10 (subnormal) bumps the exponent by itself
    h = ((fe - 1) << 10) + keep if fe >= 1 else keep
    if h >= _INF16:
        return np.uint16(sign | _INF16)
    return np.uint16(sign | h)


# ---------------------------------------------------------------- array kernels


@njit(cache=True)
def _add_loop(a, b, out):
    for i in range(a.size):
        out[i] = fp32_add(a[i], b[i])


@njit(cache=True)
def _mul_loop(a, b, out):
    for i in range(a.size):
        out[i] = fp16_mul_exact(a[i], b[i])


@njit(cache=True)
def _to16_loop(a, out):
    for i in range(a.size):
        out[i] = fp32_to_fp16(a[i])


@njit(cache=True)
def _to32_loop(a, out):
    for i in range(a.size):
        out[i] = fp16_to_fp32(a[i])


@njit(cache=True)
def _mac_loop(acc, a, b):
    for k in range(a.size):
        acc = fp16_mac(acc, a[k], b[k])
    return acc


@njit(cache=True)
def _matmul_kernel(a, b, acc):
    """``acc[i, j] <- acc[i, j] (+) a[i, k] (x) b[k, j]`` for k = 0..K-1, in place, on bits.

    Loop order i, k, j: each k step updates a whole row of independent accumulators, which
    Numba vectorises; the order of the additions into any one accumulator is still k = 0, 1...
    """
    m, k_dim = a.shape
    for i in range(m):
        row = acc[i]
        for k in range(k_dim):
            av = a[i, k]
            b_row = b[k]
            for j in range(row.size):
                row[j] = fp16_mac(row[j], av, b_row[j])


def _fp16_operand(x, name: str) -> np.ndarray:
    """float16 values or uint16 bit patterns -> contiguous uint16 bit patterns."""
    arr = np.asarray(x)
    if arr.dtype == np.float16:
        arr = arr.view(np.uint16)
    elif arr.dtype != np.uint16:
        raise TypeError(
            f"{name} must be float16 values or uint16 bit patterns, not dtype {arr.dtype}"
        )
    return np.ascontiguousarray(arr)


def _fp32_operand(x, name: str) -> np.ndarray:
    """float32 values or uint32 bit patterns -> contiguous uint32 bit patterns."""
    arr = np.asarray(x)
    if arr.dtype == np.float32:
        arr = arr.view(np.uint32)
    elif arr.dtype != np.uint32:
        raise TypeError(
            f"{name} must be float32 values or uint32 bit patterns, not dtype {arr.dtype}"
        )
    return np.ascontiguousarray(arr)


def fp32_add_array(a, b) -> np.ndarray:
    """Elementwise :func:`fp32_add` of float32 values or uint32 bit patterns, broadcast; the
    sums' bit patterns (uint32)."""
    return fp32_elementwise(_add_loop, a, b)


def _fp32_map(loop, x, out_dtype) -> np.ndarray:
    """``loop(bits, out)`` over the fp32 bit patterns of ``x`` into a new ``out_dtype`` array."""
    bits = _fp32_operand(x, "x")
    out = np.empty(bits.shape, out_dtype)
    loop(bits.ravel(), out.ravel())
    return out


def fp32_elementwise(loop, a, b) -> np.ndarray:
    """Run a compiled ``loop(a, b, out)`` over fp32 operands (values or bit patterns),
    broadcast, into uint32 bit patterns."""
    a, b = np.broadcast_arrays(_fp32_operand(a, "a"), _fp32_operand(b, "b"))
    out = np.empty(a.shape, np.uint32)
    loop(np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), out.ravel())
    return out


def fp16_mul_exact_array(a, b) -> np.ndarray:
    """Elementwise :func:`fp16_mul_exact` with broadcasting; returns uint32 bit patterns.

    Parameters
    ----------
    a, b : array_like of float16 or uint16
        Values or bit patterns.
    """
    a, b = np.broadcast_arrays(_fp16_operand(a, "a"), _fp16_operand(b, "b"))
    out = np.empty(a.shape, np.uint32)
    _mul_loop(np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), out.ravel())
    return out


def cast_fp32_to_fp16(x) -> np.ndarray:
    """fp32 -> fp16 as the vector engine does it (:func:`fp32_to_fp16` elementwise).

    Parameters
    ----------
    x : array_like of float32 or uint32
        Values or bit patterns.

    Returns
    -------
    float16 ndarray
    """
    return _fp32_map(_to16_loop, x, np.uint16).view(np.float16)


def cast_fp16_to_fp32(x) -> np.ndarray:
    """Exact fp16 -> fp32 (:func:`fp16_to_fp32` elementwise; NaN canonical); float32 out."""
    x = _fp16_operand(x, "x")
    out = np.empty(x.shape, np.uint32)
    _to32_loop(x.ravel(), out.ravel())
    return out.view(np.float32)


def fp16_mac_sequence(acc0_bits, a_fp16, b_fp16) -> np.uint32:
    """One PE's accumulator after the products ``a[k] * b[k]``, ``k = 0, 1, ...`` in order.

    Parameters
    ----------
    acc0_bits : int
        Initial accumulator, a binary32 bit pattern (0 for +0.0).
    a_fp16, b_fp16 : 1-D array_like of float16 or uint16
        The operand streams, equal lengths.

    Returns
    -------
    np.uint32
        binary32 bit pattern of the final accumulator.

    Raises
    ------
    ValueError
        If the streams are not 1-D or differ in length.
    """
    a = _fp16_operand(a_fp16, "a_fp16")
    b = _fp16_operand(b_fp16, "b_fp16")
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"a_fp16 and b_fp16 must be 1-D of equal length, not shapes {a.shape} and {b.shape}"
        )
    acc0 = int(acc0_bits)
    if not 0 <= acc0 < 1 << 32:
        raise ValueError(f"acc0_bits must be a 32-bit pattern in [0, 2**32), not {acc0_bits!r}")
    return np.uint32(_mac_loop(np.uint32(acc0), a, b))


def fp16_matmul(a, b, order: str = "sequential", acc=None) -> np.ndarray:
    """``C = acc + A @ B`` as the PE array computes it, bit for bit.

    ``C[i, j]`` is accumulated by one PE: starting from ``acc[i, j]`` (default +0.0), it adds
    the exact fp32 products ``a[i, k] * b[k, j]`` for ``k = 0, 1, ..., K-1`` in that order,
    rounding each sum to fp32 (:func:`fp16_mac`).

    Parameters
    ----------
    a : (M, K) array_like of float16 or uint16
        Left operand, values or bit patterns.
    b : (K, N) array_like of float16 or uint16
        Right operand, values or bit patterns.
    order : {"sequential"}
        Reduction order; the array reduces in increasing ``k`` in every dataflow (a tile split
        along K continues from the previous accumulator, which is the same order).
    acc : (M, N) array_like of float32 or uint32, optional
        Initial accumulators (accumulate mode).

    Returns
    -------
    (M, N) float32 ndarray

    Raises
    ------
    ValueError
        On an unknown ``order`` or mismatched shapes.
    TypeError
        On operands of another dtype.
    """
    if order != "sequential":
        raise ValueError(f"order must be 'sequential', not {order!r}")
    a_bits = _fp16_operand(a, "a")
    b_bits = _fp16_operand(b, "b")
    if a_bits.ndim != 2 or b_bits.ndim != 2 or a_bits.shape[1] != b_bits.shape[0]:
        raise ValueError(
            f"a and b must be (M, K) and (K, N) matrices, not shapes {a_bits.shape} and "
            f"{b_bits.shape}"
        )
    shape = (a_bits.shape[0], b_bits.shape[1])
    if acc is None:
        acc_bits = np.zeros(shape, np.uint32)
    else:
        acc_bits = _fp32_operand(acc, "acc")
        if acc_bits.shape != shape:
            raise ValueError(f"acc must have shape {shape}, not {acc_bits.shape}")
        acc_bits = acc_bits.copy()
    _matmul_kernel(a_bits, b_bits, acc_bits)
    return acc_bits.view(np.float32)


def int8_matmul(a, b, acc=None) -> np.ndarray:
    """``C = acc + A @ B`` in int32 with two's complement wrap-around, as the PE array does.

    Parameters
    ----------
    a : (M, K) int8 array_like
    b : (K, N) int8 array_like
    acc : (M, N) int32 array_like, optional
        Initial accumulators (accumulate mode).

    Returns
    -------
    (M, N) int32 ndarray

    Raises
    ------
    TypeError
        If an operand is not int8 (or ``acc`` not int32).
    ValueError
        On mismatched shapes.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    for name, arr in (("a", a), ("b", b)):
        if arr.dtype != np.int8:
            raise TypeError(f"{name} must be int8, not dtype {arr.dtype}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(
            f"a and b must be (M, K) and (K, N) matrices, not shapes {a.shape} and {b.shape}"
        )
    # Every partial sum is an integer of magnitude <= K * 2^14, exact in float64 (BLAS, any
    # order) while K < 2^39; in Z/2^32 one final wrap equals wrapping after every step.
    if a.shape[1] < 1 << 39:
        total = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    else:  # pragma: no cover - beyond any buffer
        total = a.astype(np.int64) @ b.astype(np.int64)
    if acc is not None:
        acc = np.asarray(acc)
        if acc.dtype != np.int32:
            raise TypeError(f"acc must be int32, not dtype {acc.dtype}")
        if acc.shape != total.shape:
            raise ValueError(f"acc must have shape {total.shape}, not {acc.shape}")
        total += acc
    return (((total + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)


# ---------------------------------------------------------------- error bound


def gamma(k: int) -> float:
    """``gamma_k = k u / (1 - k u)`` with ``u = 2^-24``, the fp32 recursive-summation constant.

    Raises
    ------
    ValueError
        If ``k`` is negative or ``k u >= 1``.
    """
    if not isinstance(k, int | np.integer) or k < 0 or k * U >= 1:
        raise ValueError(f"k must be an integer in [0, 2**24), not {k!r}")
    return k * U / (1 - k * U)


def error_bound(k: int, magnitude) -> np.ndarray | float:
    """Bound on ``|computed - exact|`` of ``k`` sequential fp32 round-to-nearest additions.

    Parameters
    ----------
    k : int
        Number of additions (for a matmul, the reduction length K).
    magnitude : float or array_like
        The sum of the magnitudes of the summands, ``|c0| + sum_k |a_k b_k|``.

    Returns
    -------
    float or float64 ndarray
        ``gamma_k * magnitude``, enlarged by a relative ``(k + 4) 2^-52`` so that the float64
        rounding of ``magnitude`` and of this product cannot make it smaller than the exact
        value. Valid when no partial sum overflows.
    """
    g = gamma(k)
    out = np.asarray(magnitude, dtype=np.float64) * (g * (1.0 + (k + 4) * 2.0**-52))
    return out[()] if out.ndim == 0 else out


def matmul_error_bound(a, b, acc=None) -> np.ndarray:
    """Elementwise bound on ``|fp16_matmul(a, b, acc=acc) - exact|`` (module docstring).

    Parameters
    ----------
    a : (M, K) float16 array_like
    b : (K, N) float16 array_like
    acc : (M, N) float32 array_like, optional

    Returns
    -------
    (M, N) float64 ndarray
        ``gamma_K * (|acc| + |a| @ |b|)``; the fp16 products are exact in float64.
    """
    a64 = np.abs(np.asarray(a, dtype=np.float16).astype(np.float64))
    b64 = np.abs(np.asarray(b, dtype=np.float16).astype(np.float64))
    mag = a64 @ b64
    if acc is not None:
        mag = mag + np.abs(np.asarray(acc, dtype=np.float32).astype(np.float64))
    return error_bound(a64.shape[1], mag)


# ---------------------------------------------------------------- hash unit: sigmoid, chunk weight
# MemoryFormer's chunk weight p(z) = prod_j sigmoid(2|z_j|/t), or ||z||_1 * p(z) (the official
# code, t = 1), as the lookup engine's hash unit computes it: a table-driven sigmoid and fp32
# multiplies and adds, each rounded to nearest even (the datapath of rtl.fp32).

__all__ += [
    "CHUNK_WEIGHT_MAX_ABS_ERROR",
    "CHUNK_WEIGHT_MAX_REL_ERROR",
    "SIGMOID_C0",
    "SIGMOID_C1",
    "SIGMOID_MAX_ABS_ERROR",
    "SIGMOID_MAX_REL_ERROR",
    "SIGMOID_SEGMENTS",
    "SIGMOID_X_MAX",
    "chunk_weight",
    "chunk_weight_bits",
    "chunk_weight_grad",
    "fp32_mul",
    "fp32_mul_array",
    "hw_sigmoid",
    "hw_sigmoid_array",
]


@njit(cache=True, inline="always")
def fp32_mul(a, b):
    """IEEE binary32 multiplication, round to nearest even, gradual underflow, canonical NaN.

    Bit for bit the datapath of :func:`hwsim.units.vector.fp32_mul` (and ``rtl.fp32.fp32_mul``),
    which a test checks; defined here so that the hash unit's arithmetic below depends only on
    this module (``hwsim.units.vector`` imports ``hwsim.numerics``, not the other way round).

    Parameters
    ----------
    a, b : uint32
        binary32 bit patterns.

    Returns
    -------
    uint32
        binary32 bit pattern of ``a * b``.
    """
    # 1. unpack
    x = np.int64(a) & 0xFFFFFFFF
    y = np.int64(b) & 0xFFFFFFFF
    sign = (x ^ y) & _SIGN32
    ex = (x >> 23) & 0xFF
    ey = (y >> 23) & 0xFF
    x_special = ex == 0xFF
    y_special = ey == 0xFF
    x_zero = (x & 0x7FFFFFFF) == 0
    y_zero = (y & 0x7FFFFFFF) == 0
    nan = (x_special & ((x & _MANT32) != 0)) | (y_special & ((y & _MANT32) != 0))
    nan |= (x_special & y_zero) | (y_special & x_zero)
    mx = (x & _MANT32) | (_HIDDEN32 if ex != 0 else 0)
    my = (y & _MANT32) | (_HIDDEN32 if ey != 0 else 0)
    ex = max(ex, 1)
    ey = max(ey, 1)
    # 2. exact 48-bit product, value p * 2^(ex + ey - 300)
    p = mx * my
    # 3. normalised biased exponent
    n = _msb(p | 1)
    big_e = n + ex + ey - 173
    # 4. shift into 24 bits (hidden bit at 23), or into a subnormal
    e = max(big_e, 1)
    rs = n - 23 + (e - big_e)
    rsc = min(max(rs, 1), 49)
    right = p >> rsc
    rnd = (p >> (rsc - 1)) & 1
    sticky = (p & ((np.int64(1) << (rsc - 1)) - 1)) != 0
    left = (p << min(max(-rs, 0), 23)) & 0xFFFFFF
    keep = right if rs >= 1 else left
    rnd = rnd if rs >= 1 else 0
    sticky = sticky if rs >= 1 else False
    # 5. round to nearest, ties to even
    keep += 1 if (rnd != 0) & (sticky | ((keep & 1) != 0)) else 0
    carry = keep >> 24
    keep >>= carry
    e += carry
    # 6. pack and select
    r = sign | ((e if keep >= _HIDDEN32 else 0) << 23) | (keep & _MANT32)
    r = (sign | _INF32) if e >= 0xFF else r
    r = sign if (x_zero | y_zero) else r
    r = (sign | _INF32) if (x_special | y_special) else r
    r = CANONICAL_NAN_F32 if nan else r
    return np.uint32(r)


SIGMOID_SEGMENTS = 512
"""Segments of the hardware sigmoid's table: 512 x 64 bits (two fp32 coefficients), the shape
of one BRAM36 (512 x 72)."""
SIGMOID_X_MAX = 16.0
"""The table covers ``[0, 16)`` in segments of ``1/32``; from 16 on the sigmoid is 1.0
(``1 - sigmoid(16) = 1.1e-7``, below the error of the segments)."""
_SIG_LOG2_RATE = 5  # log2(SIGMOID_SEGMENTS / SIGMOID_X_MAX): segments per unit of x
_SIG_SHIFT = 150 - _SIG_LOG2_RATE  # x * 32 = significand * 2^(e - 145)
_SIG_X_MAX_BITS = 0x41800000  # 16.0
_ONE32 = 0x3F800000


def _sigmoid_table() -> tuple[np.ndarray, np.ndarray]:
    """The segments' fp32 intercepts and slopes, from 50-digit decimal arithmetic.

    On segment ``i``, ``[a, b) = [i/32, (i+1)/32)``, the sigmoid is concave (``x >= 0``), so its
    best uniform straight line is the chord moved up by half its largest gap ``d``, which lies
    where the sigmoid's slope equals the chord's ``m``: ``sigmoid(c) = (1 + sqrt(1 - 4m)) / 2``.
    The line is ``c0 + c1 x`` with ``c1 = m`` and ``c0 = sigmoid(a) - m a + d / 2``, each rounded
    to fp32 (through float64: ``decimal`` is the same on every platform, so are the bits).
    """
    import decimal

    ctx = decimal.Context(prec=50)
    one = decimal.Decimal(1)

    def sig(x):
        return ctx.divide(one, ctx.add(one, ctx.exp(ctx.minus(x))))

    width = ctx.divide(decimal.Decimal(SIGMOID_X_MAX), SIGMOID_SEGMENTS)
    c0 = np.empty(SIGMOID_SEGMENTS, np.float32)
    c1 = np.empty(SIGMOID_SEGMENTS, np.float32)
    for i in range(SIGMOID_SEGMENTS):
        a = ctx.multiply(width, i)
        fa, fb = sig(a), sig(ctx.add(a, width))
        m = ctx.divide(ctx.subtract(fb, fa), width)
        sc = ctx.divide(ctx.add(one, ctx.sqrt(ctx.subtract(one, ctx.multiply(4, m)))), 2)
        c = ctx.ln(ctx.divide(sc, ctx.subtract(one, sc)))
        d = ctx.subtract(sc, ctx.add(fa, ctx.multiply(m, ctx.subtract(c, a))))
        c1[i] = np.float32(float(m))
        c0[i] = np.float32(float(ctx.add(ctx.subtract(fa, ctx.multiply(m, a)), ctx.divide(d, 2))))
    return c0.view(np.uint32), c1.view(np.uint32)


# SIGMOID_C0, SIGMOID_C1: uint32 fp32 bit patterns, intercept and slope of each segment (the
# ROM's two words). Built on first use (module __getattr__; hwsim._jit binds them before this
# module's kernels are built): 512 segments of 50-digit decimal arithmetic cost more than
# importing the rest of hwsim, and a GEMM or topology in timing mode never reads them.
_JIT_GLOBALS = ("SIGMOID_C0", "SIGMOID_C1")
SIGMOID_C0: np.ndarray  # declared, not bound: the first read goes to __getattr__
SIGMOID_C1: np.ndarray


def __getattr__(name: str):
    if name in _JIT_GLOBALS:
        c0, c1 = _sigmoid_table()
        c0.flags.writeable = False
        c1.flags.writeable = False
        globals().update(SIGMOID_C0=c0, SIGMOID_C1=c1)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SIGMOID_MAX_ABS_ERROR = 6.0e-6
"""Bound on ``|hw_sigmoid(x) - sigmoid(x)|`` for every fp32 ``x`` against exact (float64) math.
Measured over every fp32 in ``[0, 16]`` (a slow test): 5.93e-6, at ``x = 1.3125`` (a segment
end, where the curvature is largest); ``1 - sigmoid(16) = 1.1e-7`` beyond; negative ``x`` have
the same absolute errors (``1 - s`` is exact)."""

SIGMOID_MAX_REL_ERROR = 7.8e-6
"""Bound on ``|hw_sigmoid(x) - sigmoid(x)| / sigmoid(x)`` for ``x >= 0`` (measured 7.71e-6,
near ``x = 1.1``); the hash unit's arguments ``2|z_j|/t`` are never negative."""

CHUNK_WEIGHT_MAX_REL_ERROR = {8: 6.5e-5, 10: 8.1e-5}
"""Bound on the relative error of :func:`chunk_weight` (either form, any ``t``, no overflow)
against exact math, chunks of ``tau = 8`` and ``10``: ``tau x SIGMOID_MAX_REL_ERROR`` for the
sigmoids plus ``4 tau u`` for the fp32 roundings (the products, the ``||z||_1`` sum and its
multiply, ``|z_j| x fl(2/t)``), rounded up. Chunks whose every ``2|z_j|`` sits where the table
errs most (``1.08`` or ``1.13``, all errors of one sign) reach 6.16e-5 and 7.70e-5; random
normal chunks about 5e-5 and 6e-5. The same bound holds for the backward
(:func:`chunk_weight_grad`): its error is at most this times ``(2/t) p(z)`` (paper form) or
``(2/t) p(z) (1 + ||z||_1)`` (official form)."""

CHUNK_WEIGHT_MAX_ABS_ERROR = {8: 5.0e-5, 10: 6.2e-5}
"""Bound on the absolute error of the paper-form :func:`chunk_weight` (``p <= 1``):
``tau x (SIGMOID_MAX_ABS_ERROR + 2u)`` (each factor's error times the others, all at most 1,
plus the roundings), rounded up. Measured worst: 1.7e-5 (tau 8) and 1.8e-5 (tau 10), chunks of
equal elements with ``2|z_j|`` about 2.3-2.5."""


# Out-of-line steps for the chunk kernels below: inlining the fp32 datapaths at each of their
# call sites multiplies Numba's compile time (a minute) for no measurable speed.
@njit(cache=True)
def _fmul(a, b):
    return fp32_mul(a, b)


@njit(cache=True)
def _fadd(a, b):
    return fp32_add(a, b)


@njit(cache=True)
def hw_sigmoid(x):
    """The hash unit's sigmoid of an fp32 bit pattern, bit for bit.

    Parameters
    ----------
    x : uint32
        binary32 bit pattern.

    Returns
    -------
    uint32
        binary32 bit pattern of ``s``:

        * ``0 <= |x| < 16``: segment ``i = floor(|x| * 32)`` (the significand shifted by the
          exponent; subnormals take segment 0), ``s = fp32_add(C0[i], fp32_mul(C1[i], |x|))``
          with :data:`SIGMOID_C0`, :data:`SIGMOID_C1`: one table read, one multiply, one add;
        * ``|x| >= 16``, infinities included: ``s = 1.0``;
        * ``x < 0`` (sign bit set, ``x != -0``): ``1 - s`` of ``|x|``, one more fp32 add, exact
          (Sterbenz: ``s`` lies in ``[0.5, 1]``), so ``hw_sigmoid(-inf) = +0``;
        * NaN: :data:`CANONICAL_NAN_F32`.

    ``-0.0`` gives the same bits as ``+0.0``. Within :data:`SIGMOID_MAX_ABS_ERROR` of the
    exact sigmoid; for ``x >= 0`` always in ``[0.5, 1]``. Not monotonic at every segment
    boundary (neighbouring lines are fitted separately; the steps are below the error bound).
    """
    u = np.int64(x) & 0xFFFFFFFF
    mag = u & 0x7FFFFFFF
    e = mag >> 23
    m = (mag & _MANT32) | (_HIDDEN32 if e != 0 else 0)
    # floor(|x| * 32) = m >> (145 - e); |x| < 16 means e <= 130, a shift of 15 or more
    seg = (m >> min(max(_SIG_SHIFT - max(e, 1), 0), 63)) & (SIGMOID_SEGMENTS - 1)
    s = np.int64(_fadd(SIGMOID_C0[seg], _fmul(SIGMOID_C1[seg], mag)))  # noqa: F821 (bound by hwsim._jit)
    s = _ONE32 if mag >= _SIG_X_MAX_BITS else s
    s = np.int64(_fadd(_ONE32, s ^ _SIGN32)) if ((u != mag) & (mag != 0)) else s
    s = CANONICAL_NAN_F32 if mag > _INF32 else s
    return np.uint32(s)


@njit(cache=True)
def _two_over_t_abs(zj, c):
    """``x_j = fp32_mul(|z_j|, c)`` with ``c = fl(2/t)`` (exact for ``t = 1``: ``c = 2``)."""
    return _fmul(np.int64(zj) & 0x7FFFFFFF, c)


@njit(cache=True)
def chunk_weight_bits(z, c, official):
    """Weight of one chunk as the hash unit computes it (see :func:`chunk_weight`).

    Parameters
    ----------
    z : 1-D uint32 array
        fp32 bit patterns of the chunk, element 0 first.
    c : uint32
        fp32 bit pattern of ``2 / t``.
    official : bool
        Multiply by ``||z||_1``.

    Returns
    -------
    uint32
    """
    p = np.int64(_ONE32)
    l1 = np.int64(0)
    for j in range(z.shape[0]):
        s = hw_sigmoid(_two_over_t_abs(z[j], c))
        p = np.int64(s) if j == 0 else np.int64(_fmul(p, s))
        l1 = np.int64(_fadd(l1, np.int64(z[j]) & 0x7FFFFFFF))
    return np.uint32(_fmul(l1, p)) if official else np.uint32(p)


@njit(cache=True)
def _chunk_weight_kernel(z, c, official, out):
    for i in range(z.shape[0]):
        out[i] = chunk_weight_bits(z[i], c, official)


@njit(cache=True)
def _chunk_grad_kernel(z, c, official, out):
    n, tau = z.shape
    s = np.empty(tau, np.int64)
    for i in range(n):
        p = np.int64(_ONE32)
        l1 = np.int64(0)
        for j in range(tau):
            s[j] = hw_sigmoid(_two_over_t_abs(z[i, j], c))
            p = s[j] if j == 0 else np.int64(_fmul(p, s[j]))
            l1 = np.int64(_fadd(l1, np.int64(z[i, j]) & 0x7FFFFFFF))
        for j in range(tau):
            # (p * (1 - s_j)) * (2/t); 1 - s_j is exact
            g = np.int64(_fmul(_fmul(p, _fadd(_ONE32, s[j] ^ _SIGN32)), c))
            v = np.int64(_fadd(p, _fmul(l1, g))) if official else g
            zj = np.int64(z[i, j]) & 0xFFFFFFFF
            nan = ((v & 0x7FFFFFFF) > _INF32) | ((zj & 0x7FFFFFFF) > _INF32)
            r = v ^ (zj & _SIGN32)  # sign(z_j) * v
            r = 0 if (zj & 0x7FFFFFFF) == 0 else r  # sign(0) = 0, as autograd's abs
            out[i, j] = np.uint32(CANONICAL_NAN_F32 if nan else r)


def hw_sigmoid_array(x) -> np.ndarray:
    """Elementwise :func:`hw_sigmoid` of float32 values or uint32 bit patterns (float32 out)."""
    return _fp32_map(_sigmoid_loop, x, np.uint32).view(np.float32)


@njit(cache=True)
def _sigmoid_loop(a, out):
    for i in range(a.size):
        out[i] = hw_sigmoid(a[i])


def _chunk_operands(z, t: float) -> tuple[np.ndarray, np.uint32]:
    bits = _fp32_operand(z, "z")
    if np.ndim(z) < 1 or bits.shape[-1] < 1:
        raise ValueError(f"z must have a last axis of at least one element (the chunk), not "
                         f"shape {bits.shape}")
    if isinstance(t, bool) or not isinstance(t, int | float | np.floating) or not 0 < t < np.inf:
        raise ValueError(f"t must be a positive finite number, not {t!r}")
    with np.errstate(over="ignore"):
        c = np.float32(2.0 / float(t))
    if not np.isfinite(c) or c == 0:
        raise ValueError(f"t = {t!r} makes 2/t {c} in fp32: expected a finite nonzero value")
    return np.ascontiguousarray(bits.reshape(-1, bits.shape[-1])), c.view(np.uint32)


def chunk_weight(z, t: float = 1.0, official: bool = False) -> np.ndarray:
    """MemoryFormer's chunk weight as the hash unit computes it, bit for bit.

    For a chunk ``z_0 .. z_{tau-1}`` (element 0 first), with ``(x)``, ``(+)`` the fp32
    round-to-nearest-even multiply and add and ``c = fl(2/t)`` (float64 ``2/t`` rounded to
    fp32; exactly 2 for ``t = 1``)::

        s_j = hw_sigmoid(|z_j| (x) c)
        p   = (((s_0 (x) s_1) (x) s_2) ... ) (x) s_{tau-1}
        L   = ((|z_0| (+) |z_1|) (+) ...) (+) |z_{tau-1}|        (from +0)
        weight = p                  (paper form)
        weight = L (x) p            (official form: ||z||_1 p(z); the official code has t = 1)

    Parameters
    ----------
    z : array_like of float32 or uint32, shape (..., tau)
        Chunks, values or bit patterns.
    t : float
        Temperature (positive).
    official : bool
        The official code's ``||z||_1 * p(z)``.

    Returns
    -------
    float32 ndarray, shape (...)
        NaN in a chunk gives :data:`CANONICAL_NAN_F32`; ``+-inf`` elements have ``s = 1`` (the
        official weight is then ``inf``). Within :data:`CHUNK_WEIGHT_MAX_REL_ERROR` of exact
        math (and :data:`CHUNK_WEIGHT_MAX_ABS_ERROR` for the paper form).

    Raises
    ------
    ValueError
        If ``z`` has no last axis or ``t`` is not a positive finite number.
    TypeError
        If ``z`` is neither float32 nor uint32.
    """
    bits, c = _chunk_operands(z, t)
    out = np.empty(bits.shape[0], np.uint32)
    _chunk_weight_kernel(bits, c, bool(official), out)
    return out.view(np.float32).reshape(np.shape(z)[:-1])


def chunk_weight_grad(z, t: float = 1.0, official: bool = False) -> np.ndarray:
    """``d weight / d z_j`` of :func:`chunk_weight`, as the hash unit's backward computes it.

    With ``s_j``, ``p``, ``L`` and ``c`` as in :func:`chunk_weight` and ``sign(0) = 0`` (as
    autograd's ``abs``)::

        g_j = (p (x) (1 (+) -s_j)) (x) c             1 - s_j is exact (s_j in [0.5, 1])
        paper:     dp/dz_j     = sign(z_j) g_j        p (1 - s_j) 2/t sign(z_j)
        official:  d(L p)/dz_j = sign(z_j) (p (+) (L (x) g_j))   product rule, d L/dz_j = sign

    The sign is applied by flipping the sign bit (exact); ``z_j = +-0`` gives ``+0``; NaN
    anywhere in the chunk gives :data:`CANONICAL_NAN_F32`.

    Parameters
    ----------
    z : array_like of float32 or uint32, shape (..., tau)
    t : float
    official : bool

    Returns
    -------
    float32 ndarray, shape of ``z``

    Raises
    ------
    ValueError, TypeError
        As :func:`chunk_weight`.
    """
    bits, c = _chunk_operands(z, t)
    out = np.empty(bits.shape, np.uint32)
    _chunk_grad_kernel(bits, c, bool(official), out)
    return out.view(np.float32).reshape(np.shape(z))


@njit(cache=True)
def _fp32_mul_loop(a, b, out):
    for i in range(a.size):
        out[i] = fp32_mul(a[i], b[i])


def fp32_mul_array(a, b) -> np.ndarray:
    """Elementwise :func:`fp32_mul` of float32 values or uint32 bit patterns, broadcast; the
    products' bit patterns (uint32)."""
    return fp32_elementwise(_fp32_mul_loop, a, b)


# ---------------------------------------------------------------- fp32 division and square root
# The lookup engine's Adam row update (hwsim.units.vector.adam_update) divides and takes square
# roots. Both are IEEE-754 correctly rounded (round to nearest even, gradual underflow,
# canonical NaN), computed like a digit-recurrence divider and square rooter: an exact integer
# quotient or root with a remainder (the sticky bit), then one rounding. No host floating point,
# so the FPU's flush-to-zero mode cannot change a result.

__all__ += ["fp32_div", "fp32_div_array", "fp32_sqrt", "fp32_sqrt_array"]


@njit(cache=True, inline="always")
def _unpack_normalised(x):
    """Significand and exponent of finite nonzero binary32 ``x`` (int64 bits, sign cleared):
    ``x = m * 2**e`` with ``2**23 <= m < 2**24`` (subnormals shifted up)."""
    ex = (x >> 23) & 0xFF
    m = (x & _MANT32) | (_HIDDEN32 if ex != 0 else 0)
    shift = 23 - _msb(m)
    return m << shift, max(ex, 1) - 150 - shift


@njit(cache=True, inline="always")
def _round_pack(sign, p, k):
    """The binary32 pattern of ``sign * p * 2**k`` (``0 < p < 2**62``) rounded to nearest even,
    gradual underflow, overflow to infinity. Exact for ``p`` with at most 24 significant bits in
    range; callers fold a sticky bit into ``p``'s least significant bit and keep at least two
    bits below the rounding position."""
    n = _msb(p)
    big_e = n + k + 127  # biased exponent of the leading bit
    rs = n - 23 if big_e >= 1 else -149 - k  # bits to drop: to 24 bits, or to the 2**-149 grid
    if rs > 62:
        return np.uint32(sign)  # below half the smallest subnormal
    if rs <= 0:
        keep = p << -rs
    else:
        keep = p >> rs
        rnd = (p >> (rs - 1)) & 1
        sticky = (p & ((np.int64(1) << (rs - 1)) - 1)) != 0
        keep += 1 if (rnd != 0) & (sticky | ((keep & 1) != 0)) else 0
    e = max(big_e, 1)
    carry = keep >> 24
    keep >>= carry
    e += carry
    if e >= 0xFF:
        return np.uint32(sign | _INF32)
    return np.uint32(sign | ((e if keep >= _HIDDEN32 else 0) << 23) | (keep & _MANT32))


@njit(cache=True)
def fp32_div(a, b):
    """IEEE binary32 division ``a / b``, round to nearest even, gradual underflow, canonical NaN.

    The quotient of the normalised significands to 39 bits by integer division, its remainder
    the sticky bit, then one rounding (:func:`fp32_mul`'s rounding). ``0/0``, ``inf/inf`` and NaN
    in give :data:`CANONICAL_NAN_F32`; ``x/0`` (``x != 0``) and ``inf/x`` give a signed infinity,
    ``0/x`` and ``x/inf`` a signed zero (sign: exclusive or of the signs).

    Parameters
    ----------
    a, b : uint32
        binary32 bit patterns.

    Returns
    -------
    uint32
        binary32 bit pattern of ``a / b``.
    """
    x = np.int64(a) & 0xFFFFFFFF
    y = np.int64(b) & 0xFFFFFFFF
    sign = (x ^ y) & _SIGN32
    x &= 0x7FFFFFFF
    y &= 0x7FFFFFFF
    if x > _INF32 or y > _INF32 or (x == _INF32 and y == _INF32) or (x == 0 and y == 0):
        return np.uint32(CANONICAL_NAN_F32)
    if x == _INF32 or y == 0:
        return np.uint32(sign | _INF32)
    if x == 0 or y == _INF32:
        return np.uint32(sign)
    mx, ex = _unpack_normalised(x)
    my, ey = _unpack_normalised(y)
    num = mx << 38
    q = num // my  # 2**37 < q < 2**39
    sticky = 1 if num - q * my != 0 else 0
    return _round_pack(sign, (q << 1) | sticky, ex - ey - 39)


@njit(cache=True)
def fp32_sqrt(a):
    """IEEE binary32 square root, round to nearest even, canonical NaN.

    The integer square root of the normalised significand (scaled to an even exponent) by the
    restoring digit recurrence, one bit a step, its remainder the sticky bit, then one rounding.
    ``sqrt(+-0) = +-0``, ``sqrt(+inf) = +inf``; a negative operand (``-inf`` included) or NaN
    gives :data:`CANONICAL_NAN_F32`. Results are never subnormal.

    Parameters
    ----------
    a : uint32
        binary32 bit pattern.

    Returns
    -------
    uint32
        binary32 bit pattern of ``sqrt(a)``.
    """
    x = np.int64(a) & 0xFFFFFFFF
    if (x & 0x7FFFFFFF) == 0 or x == _INF32:
        return np.uint32(x)
    if x > _INF32:  # NaN, or a negative nonzero operand
        return np.uint32(CANONICAL_NAN_F32)
    m, e = _unpack_normalised(x)
    if e & 1:
        m <<= 1
        e -= 1
    rad = m << 36  # < 2**61; sqrt(x) = sqrt(rad) * 2**((e - 36) / 2)
    root = np.int64(0)
    bit = np.int64(1) << 60
    while bit > rad:
        bit >>= 2
    while bit != 0:
        if rad >= root + bit:
            rad -= root + bit
            root = (root >> 1) + bit
        else:
            root >>= 1
        bit >>= 2
    sticky = 1 if rad != 0 else 0  # rad is now the remainder
    return _round_pack(0, (root << 1) | sticky, (e - 36) // 2 - 1)


@njit(cache=True)
def _fp32_div_loop(a, b, out):
    for i in range(a.size):
        out[i] = fp32_div(a[i], b[i])


@njit(cache=True)
def _fp32_sqrt_loop(a, out):
    for i in range(a.size):
        out[i] = fp32_sqrt(a[i])


def fp32_div_array(a, b) -> np.ndarray:
    """Elementwise :func:`fp32_div` of float32 values or uint32 bit patterns, broadcast; the
    quotients' bit patterns (uint32)."""
    return fp32_elementwise(_fp32_div_loop, a, b)


def fp32_sqrt_array(a) -> np.ndarray:
    """Elementwise :func:`fp32_sqrt` of float32 values or uint32 bit patterns; the roots' bit
    patterns (uint32), in ``a``'s shape."""
    return _fp32_map(_fp32_sqrt_loop, a, np.uint32)
