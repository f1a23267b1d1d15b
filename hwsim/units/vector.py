"""The weight-update vector engine: UPDATE as a per-cycle Numba kernel and closed forms.

What an UPDATE computes
-----------------------
The operands live in the VEC scratch buffer, whose entries hold ``L = config.vector.lanes``
fp32 words (word ``k`` of an entry in bits ``[32k, 32k + 32)``). ``w_addr``, ``g_addr``,
``v_addr`` and ``out_addr`` are **entry** addresses; ``count`` counts **fp32 words**. Word
``i < count`` of the master weights is word ``i % L`` of entry ``w_addr + i // L`` (likewise
``g``, ``v``), so the command covers ``E = ceil(count / L)`` entries of each operand. In a
partial last entry the words at and beyond ``count`` are not updated: the engine writes their
``w`` and ``v`` back unchanged (it reads them anyway).

The fp16 copy of the updated weights is packed two fp16 words per fp32 word: fp16 word ``i``
is bits ``[16j, 16j + 16)`` of entry ``out_addr + i // (2L)`` with ``j = i % (2L)``, so one out
entry holds ``2L`` fp16 values and a DMA STORE of the ``ceil(count / (2L))`` out entries (VEC
elements are 4 bytes) writes a contiguous little-endian fp16 array. fp16 slots at and beyond
``count`` in the last out entry are written as ``+0``.

Hyper-parameters are the fp32 bit patterns in controller registers ``hp_base`` (lr),
``hp_base + 1`` (momentum), ``hp_base + 2`` (weight decay); ``hp_base + 3`` (beta2) is Adam's.
Per word, every operation a separately rounded :func:`hwsim.numerics.fp32_add` or
:func:`fp32_mul` (round to nearest even, subnormals, canonical NaN; **no fused multiply-add**),
in this order (``(+)``, ``(x)`` the rounded operations)::

    g' = g (+) (wd (x) w)                      weight decay, always computed (wd = 0 included)
    v' = (mu (x) v) (+) g'     optimizer 1     SGD with momentum, PyTorch semantics
    v' = g'                    optimizer 3     its first step (PyTorch: buf = clone(g'))
    v' = g'                    optimizer 0     plain SGD; v is neither read nor written
    w' = w (+) -(lr (x) v')                    negation flips the sign bit (exact)
    out = fp32_to_fp16(w')                     round to nearest even (hwsim.numerics)

This is ``torch.optim.SGD`` with ``dampening=0``, ``nesterov=False``. Optimizer 3 exists
because PyTorch's first momentum step sets ``v = g'`` rather than ``mu * 0 + g'``; the two
differ only in signed zeros (``+0 + -0 = +0``) and in NaN when ``mu`` is inf or NaN, and
optimizer 3 needs no zeroed ``v`` in VEC. ``wd (x) w`` is computed also when ``wd = 0``,
where PyTorch skips the term: then ``g = -0`` gives ``g' = +0`` and an infinite or NaN weight
gives a NaN ``g'`` (PyTorch keeps ``g``). Adam (optimizer 2) is rejected by
:func:`check_update`. PyTorch on CPU rounds ``g + wd * w`` and ``w - lr * v'`` **once**
(``Tensor.add(other, alpha=)`` is a fused multiply-add in its vectorised kernel), so the engine
equals torch bit for bit only against the separately rounded op sequence above; against
``torch.optim.SGD`` each updated word obeys (``u = 2**-24``; normal range, no overflow)
``|w'_hw - w'_torch| <= (gamma_5 + gamma_3) * (|w| + |lr| (|mu v| + |g| + |wd w|))`` and
``|v'_hw - v'_torch| <= (gamma_3 + gamma_2) * (|mu v| + |g| + |wd w|)``, with
``gamma_k = k u / (1 - k u)`` (the rounding counts along each term's path).
``tests/hwsim/test_vector.py`` checks both.

Microarchitecture and cycles
----------------------------
VEC is one simple dual-port memory (one synchronous read port, latency 1, and one write port,
like ``rtl.buffers.BufferMemory``), ``L`` words wide, shared with DMA. The engine reads the
operand entries sequentially and starts a new entry every ``P`` cycles: ``P = 3`` for
optimizers 1 and 3 (``w``, ``g``, ``v`` reads; ``v``, ``w``, out writes) and ``P = 2`` for
optimizer 0 (``w``, ``g`` reads; ``w``, out writes). Each of the ``L`` lanes is a fixed pipeline
with one fp32 operation per stage. Entry ``e`` enters at cycle ``s = 1 + P*e`` (cycle 0 latches
the command); with its stage ``k`` on cycle ``s + k``:

====  =====================================  =============================================
k     read port (issue / data on the port)   lane stage
====  =====================================  =============================================
0     issue read w                           -
1     w on the port; issue read g            t = wd (x) w
2     g on the port; issue read v (P = 3)    g' = g (+) t
3     v on the port (P = 3)                  t = mu (x) v
4     -                                      v' = t (+) g' (optimizer 1), else v' = g'
5     -                                      t = lr (x) v'
6     write v (P = 3)                        w' = w (+) -t
7     write w                                h = fp32_to_fp16(w') (0 beyond ``count``)
8     write out entry ``e // 2`` if ``e`` is odd or the last entry; else hold h as its low half
====  =====================================  =============================================

Reads and writes of one entry fall on distinct cycles modulo ``P``, so the single read port and
the single write port are never contended. ``done`` is high on the cycle of the last entry's
out write, so start to done, inclusive::

    update_cycles(count, lanes, optimizer) = P * ceil(count / lanes) + 10 - P   (count > 0)
                                           = 2                                  (count == 0)

The ranges of ``w``, ``g``, ``v`` (optimizers 1 and 3) and out must be pairwise disjoint
(:func:`check_update`); under that rule no read ever sees a write of the same command.
Operations counted for energy (``config.energy.vector_flop`` each): per word below ``count``,
4 (optimizers 0 and 3) or 6 (optimizer 1) multiplies and adds; the fp16 cast is not counted.
``rtl.vector.VectorUnit`` implements this schedule; ``tests/rtl/test_vector.py``
checks values and cycles against :func:`update_per_cycle`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import isa
from .._jit import njit
from ..config import AcceleratorConfig
from ..numerics import _fadd as _add
from ..numerics import _fmul as _mul
from ..numerics import (
    _fp32_operand,
    fp32_div,
    fp32_mul,
    fp32_mul_array,
    fp32_sqrt,
    fp32_to_fp16,
)
from ..program import COL
from . import Access, UnitModel, UnitTiming

__all__ = [
    "ADAM",
    "ADAM_FLOPS",
    "OPTIMIZERS",
    "LATENCY",
    "PIPELINE_STAGES",
    "VectorModel",
    "pass_cycles",
    "SGD",
    "SGD_MOMENTUM",
    "SGD_MOMENTUM_FIRST",
    "UpdateCost",
    "UpdateResult",
    "adam_registers",
    "adam_update",
    "check_update",
    "fp32_mul",
    "fp32_mul_array",
    "sgd_update",
    "update",
    "update_cost",
    "update_cycles",
    "update_entries",
    "update_flops",
    "update_per_cycle",
    "update_period",
]

SGD = 0
"""Optimizer field: plain SGD, ``w -= lr * (g + wd * w)``."""
SGD_MOMENTUM = 1
"""Optimizer field: SGD with momentum (PyTorch, dampening 0, not Nesterov)."""
ADAM = 2
"""Optimizer field: Adam. UPDATE does not implement it (:func:`check_update` rejects it); the
lookup engine's sparse row update does (SCATTER mode 2, :func:`adam_update`)."""
ADAM_FLOPS = 14
"""fp32 operations of one :func:`adam_update` word: 12 multiplies and adds, a square root and a
division (each counted as one operation)."""
SGD_MOMENTUM_FIRST = 3
"""Optimizer field: the first SGD-with-momentum step, ``v = g'`` (PyTorch's ``clone``)."""
OPTIMIZERS = {SGD: "SGD", SGD_MOMENTUM: "SGD with momentum", ADAM: "Adam",
              SGD_MOMENTUM_FIRST: "SGD with momentum, first step"}
PIPELINE_STAGES = 8
"""Stage of an entry at its out write (stage 0 issues its first read)."""
LATENCY = PIPELINE_STAGES + 2
"""Fill and drain of one pass through the pipeline, cycles: a pass issuing one entry every
``P`` cycles takes ``P * entries + LATENCY - P`` (the eight stages, the read latency and the
done cycle)."""

_SIGN32 = 0x80000000


# ---------------------------------------------------------------- closed forms


def _check_optimizer(optimizer) -> None:
    if optimizer not in (SGD, SGD_MOMENTUM, SGD_MOMENTUM_FIRST) or isinstance(optimizer, bool):
        raise ValueError(f"optimizer must be 0 (SGD), 1 (SGD with momentum) or 3 (its first "
                         f"step), not {optimizer!r}")


def _check_count_lanes(count, lanes) -> None:
    if not isinstance(lanes, int | np.integer) or isinstance(lanes, bool) or lanes < 1:
        raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
    if not isinstance(count, int | np.integer) or isinstance(count, bool) or count < 0:
        raise ValueError(f"count must be a non-negative integer, not {count!r}")


def update_period(optimizer: int) -> int:
    """Cycles between entries: 2 for SGD (optimizer 0), 3 with momentum (1 and 3)."""
    _check_optimizer(optimizer)
    return 2 if optimizer == SGD else 3


def update_entries(count: int, lanes: int) -> int:
    """Entries of each operand an UPDATE of ``count`` words covers: ``ceil(count / lanes)``."""
    _check_count_lanes(count, lanes)
    return -(-int(count) // int(lanes))


def update_cycles(count: int, lanes: int, optimizer: int) -> int:
    """Start-to-done cycles, inclusive: ``P * ceil(count / lanes) + 10 - P``; 2 if ``count == 0``.

    Raises
    ------
    ValueError
        Negative ``count``, bad ``lanes``, or an optimizer other than 0, 1 or 3.
    """
    period = update_period(optimizer)
    entries = update_entries(count, lanes)
    return 2 if entries == 0 else period * entries + LATENCY - period


def update_flops(count: int, optimizer: int) -> int:
    """fp32 multiplies and adds on the ``count`` words: 6 each with momentum, else 4."""
    _check_optimizer(optimizer)
    return int(count) * (6 if optimizer == SGD_MOMENTUM else 4)


@njit(cache=True)
def _sgd_loop(w, g, v, lr, mu, wd, optimizer, w_out, v_out, h_out):
    for i in range(w.size):
        gp = _add(g[i], _mul(wd, w[i]))
        vn = _add(_mul(mu, v[i]), gp) if optimizer == 1 else gp
        wn = _add(w[i], _mul(lr, vn) ^ np.uint32(_SIGN32))
        w_out[i] = wn
        v_out[i] = vn
        h_out[i] = fp32_to_fp16(wn)


def sgd_update(w, g, v, lr, momentum, weight_decay, optimizer: int = SGD_MOMENTUM):
    """The values of one UPDATE, elementwise, without the machine (the closed form).

    Parameters
    ----------
    w, g, v : array_like of float32 or uint32
        Master weights, gradients, momentum state (``v`` ignored by optimizers 0 and 3).
    lr, momentum, weight_decay : float or uint32 bit pattern
        Hyper-parameters; Python floats are rounded to float32 first.
    optimizer : {0, 1, 3}

    Returns
    -------
    w_new : float32 ndarray
    v_new : float32 ndarray
        The new state; for optimizer 0 the value ``g'`` the engine would have used (VEC's
        ``v`` is not written).
    w16 : float16 ndarray
        ``fp32_to_fp16(w_new)``.

    Raises
    ------
    ValueError
        Unknown optimizer or mismatched shapes.
    """
    _check_optimizer(optimizer)
    w, g = _fp32_operand(w, "w"), _fp32_operand(g, "g")
    v = np.zeros_like(w) if v is None else _fp32_operand(v, "v")
    if not w.shape == g.shape == v.shape:
        raise ValueError(f"w, g and v must have one shape, not {w.shape}, {g.shape}, {v.shape}")
    hp = [np.uint32(_hp_bits(x)) for x in (lr, momentum, weight_decay)]
    w_out = np.empty(w.shape, np.uint32)
    v_out = np.empty(w.shape, np.uint32)
    h_out = np.empty(w.shape, np.uint16)
    _sgd_loop(w.ravel(), g.ravel(), v.ravel(), hp[0], hp[1], hp[2], int(optimizer),
              w_out.ravel(), v_out.ravel(), h_out.ravel())
    return w_out.view(np.float32), v_out.view(np.float32), h_out.view(np.float16)


@njit(cache=True)
def _adam_loop(w, g, m, v, lr, c1, c2, eps, wd, w_out, m_out, v_out, h_out):
    neg = np.uint32(_SIGN32)
    for i in range(w.size):
        gp = _add(g[i], _mul(wd, w[i]))
        mn = _add(m[i], _mul(_add(gp, m[i] ^ neg), c1))
        vn = _add(v[i], _mul(_add(_mul(gp, gp), v[i] ^ neg), c2))
        q = fp32_div(mn, _add(fp32_sqrt(vn), eps))
        wn = _add(w[i], _mul(lr, q) ^ neg)
        w_out[i] = wn
        m_out[i] = mn
        v_out[i] = vn
        h_out[i] = fp32_to_fp16(wn)


def adam_update(w, g, m, v, lr_t, one_minus_beta1, one_minus_beta2, eps, weight_decay=0.0):
    """One Adam step, elementwise: the lookup engine's row update (SCATTER mode 2) bit for bit.

    Every operation is a separately rounded IEEE binary32 operation of :mod:`hwsim.numerics`
    (round to nearest even, gradual underflow, canonical NaN; no fused multiply-add):
    ``(+)`` :func:`~hwsim.numerics.fp32_add`, ``(x)`` :func:`~hwsim.numerics.fp32_mul`,
    ``(/)`` :func:`~hwsim.numerics.fp32_div`, ``sqrt`` :func:`~hwsim.numerics.fp32_sqrt`;
    ``-x`` flips the sign bit (exact), so ``a (+) -b`` is IEEE's ``a - b``. In this order::

        g' = g (+) (wd (x) w)                L2 weight decay, always computed (wd = 0 included)
        m' = m (+) ((g' (+) -m) (x) c1)      c1 = 1 - beta1
        v' = v (+) (((g' (x) g') (+) -v) (x) c2)      c2 = 1 - beta2
        q  = m' (/) (sqrt(v') (+) eps)
        w' = w (+) -(lr_t (x) q)
        h  = fp32_to_fp16(w')                round to nearest even

    This is ``torch.optim.SparseAdam``'s order (``torch.optim._functional.sparse_adam``):
    ``old += (1 - b) * (new - old)`` for both moments, ``denom = sqrt(v') + eps`` and
    ``param += -step_size * (m' / denom)`` with the bias corrections folded into the step size
    ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` (Kingma and Ba's "epsilon hat" form:
    ``eps`` is added to ``sqrt(v')`` as given, not to a bias-corrected ``sqrt(v'/(1 -
    beta2**t))``). The host computes ``lr_t``, ``1 - beta1`` and ``1 - beta2`` in float64 and
    rounds them to fp32, as torch's CPU kernels round their Python-float scalars
    (:func:`adam_registers`). With ``wd = 0`` the weight-decay term changes nothing but
    ``g = -0`` (to ``+0``, which gives the same ``m'`` and ``v'``) and an infinite or NaN ``w``
    (a NaN ``g'``); SparseAdam has no weight decay, ``torch.optim.Adam`` adds ``wd * w`` to the
    gradient in one fused rounding.

    Parameters
    ----------
    w, g, m, v : array_like of float32 or uint32
        Master weights, gradients, first and second moments (one shape).
    lr_t, one_minus_beta1, one_minus_beta2, eps, weight_decay : float or uint32 bit pattern
        Hyper-parameters; Python floats are rounded to float32 first, integers are fp32 bit
        patterns (the controller registers).

    Returns
    -------
    w_new, m_new, v_new : float32 ndarray
    w16 : float16 ndarray
        ``fp32_to_fp16(w_new)``.

    Raises
    ------
    ValueError
        Mismatched shapes.
    TypeError
        Operands that are neither float32 nor uint32.
    """
    w, g = _fp32_operand(w, "w"), _fp32_operand(g, "g")
    m, v = _fp32_operand(m, "m"), _fp32_operand(v, "v")
    if not w.shape == g.shape == m.shape == v.shape:
        raise ValueError(f"w, g, m and v must have one shape, not {w.shape}, {g.shape}, "
                         f"{m.shape}, {v.shape}")
    hp = [np.uint32(_hp_bits(x)) for x in (lr_t, one_minus_beta1, one_minus_beta2, eps,
                                            weight_decay)]
    w_out = np.empty(w.shape, np.uint32)
    m_out = np.empty(w.shape, np.uint32)
    v_out = np.empty(w.shape, np.uint32)
    h_out = np.empty(w.shape, np.uint16)
    _adam_loop(w.ravel(), g.ravel(), m.ravel(), v.ravel(), *hp, w_out.ravel(), m_out.ravel(),
               v_out.ravel(), h_out.ravel())
    return (w_out.view(np.float32), m_out.view(np.float32), v_out.view(np.float32),
            h_out.view(np.float16))


def adam_registers(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                   weight_decay: float = 0.0, step: int = 1) -> tuple[int, ...]:
    """The five fp32 bit patterns of an Adam row update's hyper-parameter registers.

    ``(lr_t, 1 - beta1, 1 - beta2, eps, weight_decay)``, each computed in float64 and rounded
    to fp32 (round to nearest even), with ``lr_t = lr * sqrt(1 - beta2**step) / (1 -
    beta1**step)`` evaluated left to right as ``torch.optim.SparseAdam`` does, so the registers
    hold the fp32 scalars torch's CPU kernels use.

    Raises
    ------
    ValueError
        ``step < 1`` or a beta outside ``[0, 1)``.
    """
    b1, b2 = betas
    if not isinstance(step, int | np.integer) or isinstance(step, bool) or step < 1:
        raise ValueError(f"step must be a positive integer (the step being taken), not {step!r}")
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas must lie in [0, 1), not {betas!r}")
    lr_t = lr * math.sqrt(1 - b2**step) / (1 - b1**step)
    return tuple(int(np.float32(x).view(np.uint32)) for x in (lr_t, 1 - b1, 1 - b2, eps,
                                                              weight_decay))


def _hp_bits(x) -> int:
    """A hyper-parameter as an fp32 bit pattern: integers are patterns, floats are values."""
    if isinstance(x, float | np.floating):
        return int(np.float32(x).view(np.uint32))
    return int(x) & 0xFFFFFFFF


# ---------------------------------------------------------------- the machine, cycle by cycle


@njit(cache=True)
def update_per_cycle(mem, w_addr, g_addr, v_addr, out_addr, count, optimizer, lr, mu, wd):
    """The vector engine register by register on the VEC memory ``mem`` (updated in place).

    Each loop iteration is one clock. Register ``X[k]`` is the input of stage ``k``; stages
    are evaluated from the back of the pipeline to the front, so each reads the registers of
    the stage before it as they were at the start of the cycle, as the RTL's synchronous
    logic does. Reads see the memory as it was before the cycle's write (the port is not
    transparent).

    Parameters
    ----------
    mem : uint32[depth, lanes]
        The VEC buffer, one row per entry.
    w_addr, g_addr, v_addr, out_addr, count, optimizer : int
        The UPDATE fields (optimizer 0, 1 or 3; addresses already checked).
    lr, mu, wd : uint32
        Hyper-parameter bit patterns.

    Returns
    -------
    cycles : int
        Start cycle to the done cycle, inclusive.
    reads, writes : int
        Entries read and written.
    """
    lanes = mem.shape[1]
    entries = (count + lanes - 1) // lanes
    if entries == 0:
        return 2, 0, 0
    period = 2 if optimizer == 0 else 3
    last_valid = count - (entries - 1) * lanes  # words of the last entry
    ns = PIPELINE_STAGES + 1
    ok = np.zeros(ns, np.bool_)
    ent = np.zeros(ns, np.int64)
    W = np.zeros((ns, lanes), np.uint32)
    T = np.zeros((ns, lanes), np.uint32)
    GP = np.zeros((ns, lanes), np.uint32)
    V = np.zeros((ns, lanes), np.uint32)
    VN = np.zeros((ns, lanes), np.uint32)
    WN = np.zeros((ns, lanes), np.uint32)
    H = np.zeros(lanes, np.uint32)  # stage 8's fp16 register
    low = np.zeros(lanes, np.uint32)  # fp16 of an even entry, waiting for its odd partner
    port = np.zeros(lanes, np.uint32)  # read data on the port this cycle
    nxt = np.zeros(lanes, np.uint32)
    issue, phase = 0, 0  # next entry to issue; cycles since the last issue
    reads, writes = 0, 0
    cycle = 1  # cycle 0 latches the command
    while True:
        # read port: g for the entry in stage 1, v for stage 2, w for a new entry
        rd = -1
        if ok[1]:
            rd = g_addr + ent[1]
        elif ok[2] and optimizer != 0:
            rd = v_addr + ent[2]
        elif issue < entries and phase == 0:
            rd = w_addr + issue
        if rd >= 0:
            for j in range(lanes):
                nxt[j] = mem[rd, j]
            reads += 1
        done = False
        # stage 8: write out entry e // 2 (e odd, or the last entry), else hold the low half
        if ok[8]:
            e = ent[8]
            if e & 1 or e == entries - 1:
                for k in range(lanes):
                    s0, s1 = 2 * k, 2 * k + 1
                    if e & 1:
                        h0 = low[s0] if s0 < lanes else H[s0 - lanes]
                        h1 = low[s1] if s1 < lanes else H[s1 - lanes]
                    else:
                        h0 = H[s0] if s0 < lanes else 0
                        h1 = H[s1] if s1 < lanes else 0
                    mem[out_addr + (e >> 1), k] = np.uint32(h0) | (np.uint32(h1) << 16)
                writes += 1
            else:
                for j in range(lanes):
                    low[j] = H[j]
            done = e == entries - 1
        # stage 7: write w (unchanged beyond count); fp16 of the new weight (0 beyond count)
        ok[8], ent[8] = ok[7], ent[7]
        if ok[7]:
            act = lanes if ent[7] < entries - 1 else last_valid
            for j in range(lanes):
                mem[w_addr + ent[7], j] = WN[7, j] if j < act else W[7, j]
                H[j] = fp32_to_fp16(WN[7, j]) if j < act else 0
            writes += 1
        # stage 6: write v (unchanged beyond count); w' = w + -(lr * v')
        ok[7], ent[7] = ok[6], ent[6]
        if ok[6]:
            act = lanes if ent[6] < entries - 1 else last_valid
            if optimizer != 0:
                for j in range(lanes):
                    mem[v_addr + ent[6], j] = VN[6, j] if j < act else V[6, j]
                writes += 1
            for j in range(lanes):
                WN[7, j] = _add(W[6, j], T[6, j] ^ np.uint32(_SIGN32))
                W[7, j] = W[6, j]
        # stage 5: t = lr * v'
        ok[6], ent[6] = ok[5], ent[5]
        if ok[5]:
            for j in range(lanes):
                T[6, j] = _mul(lr, VN[5, j])
                W[6, j] = W[5, j]
                V[6, j] = V[5, j]
                VN[6, j] = VN[5, j]
        # stage 4: v' = mu * v + g' (optimizer 1), else g'
        ok[5], ent[5] = ok[4], ent[4]
        if ok[4]:
            for j in range(lanes):
                VN[5, j] = _add(T[4, j], GP[4, j]) if optimizer == 1 else GP[4, j]
                W[5, j] = W[4, j]
                V[5, j] = V[4, j]
        # stage 3: v on the port; t = mu * v
        ok[4], ent[4] = ok[3], ent[3]
        if ok[3]:
            for j in range(lanes):
                V[4, j] = port[j]
                T[4, j] = _mul(mu, port[j])
                W[4, j] = W[3, j]
                GP[4, j] = GP[3, j]
        # stage 2: g on the port; g' = g + t
        ok[3], ent[3] = ok[2], ent[2]
        if ok[2]:
            for j in range(lanes):
                GP[3, j] = _add(port[j], T[2, j])
                W[3, j] = W[2, j]
        # stage 1: w on the port; t = wd * w
        ok[2], ent[2] = ok[1], ent[1]
        if ok[1]:
            for j in range(lanes):
                W[2, j] = port[j]
                T[2, j] = _mul(wd, port[j])
        # stage 0: issue entry `issue` (its w read went out above)
        ok[1] = issue < entries and phase == 0
        if ok[1]:
            ent[1] = issue
            issue += 1
        phase = 0 if phase == period - 1 else phase + 1
        for j in range(lanes):
            port[j] = nxt[j]
        if done:
            return cycle + 1, reads, writes
        cycle += 1


# ---------------------------------------------------------------- commands


class UpdateResult(NamedTuple):
    """Counts of one :func:`update` run, from the per-cycle kernel.

    Attributes
    ----------
    cycles : int
        Start-to-done cycles.
    reads, writes : int
        VEC entries read and written.
    """

    cycles: int
    reads: int
    writes: int


class UpdateCost(NamedTuple):
    """Closed-form cost of one UPDATE command (timing mode)."""

    cycles: int
    flops: int
    energy_pj: float
    sram_read_bytes: int
    sram_write_bytes: int


def _hyper_parameters(cmd: isa.Update, regs) -> tuple[np.uint32, np.uint32, np.uint32]:
    regs = np.asarray(regs)
    if regs.ndim != 1 or regs.size < cmd.hp_base + 3:
        raise ValueError(f"regs must be a 1-D array of at least {cmd.hp_base + 3} register "
                         f"values for hp_base={cmd.hp_base}, not shape {regs.shape}")
    lr, mu, wd = (np.uint32(int(regs[cmd.hp_base + i]) & 0xFFFFFFFF) for i in range(3))
    return lr, mu, wd


def update(vec: np.ndarray, cmd: isa.Update, regs) -> UpdateResult:
    """Run one UPDATE through the per-cycle model, in place on the VEC buffer.

    Parameters
    ----------
    vec : ndarray[depth, lanes] of float32 or uint32
        The VEC buffer (a float32 buffer is updated through a uint32 view).
    cmd : isa.Update
        A command :func:`check_update` accepts.
    regs : array_like of int
        The controller registers (fp32 bit patterns); ``regs[cmd.hp_base : cmd.hp_base + 3]``
        are lr, momentum and weight decay.

    Returns
    -------
    UpdateResult

    Raises
    ------
    ValueError
        Adam, an unknown optimizer, ranges outside ``vec``, or too few registers.
    TypeError
        If ``vec`` is not a 2-D float32 or uint32 array.
    """
    if not isinstance(vec, np.ndarray) or vec.ndim != 2 or vec.dtype not in (np.float32,
                                                                              np.uint32):
        raise TypeError("vec must be a 2-D float32 or uint32 array (entries x lanes)")
    _check_optimizer(cmd.optimizer)
    lanes = vec.shape[1]
    bad = _check_ranges(cmd, lanes, vec.shape[0])
    if bad is not None:
        raise ValueError(f"UPDATE field {bad[0]!r}: {bad[1]}")
    lr, mu, wd = _hyper_parameters(cmd, regs)
    mem = vec.view(np.uint32)
    if not mem.flags.c_contiguous:
        raise TypeError("vec must be C-contiguous (the engine's VEC buffer is)")
    cycles, reads, writes = update_per_cycle(mem, cmd.w_addr, cmd.g_addr, cmd.v_addr,
                                             cmd.out_addr, cmd.count, cmd.optimizer, lr, mu, wd)
    return UpdateResult(int(cycles), int(reads), int(writes))


def _check_ranges(cmd: isa.Update, lanes: int, depth: int) -> tuple[str, str] | None:
    entries = update_entries(cmd.count, lanes)
    out = -(-cmd.count // (2 * lanes))
    ranges = [("w_addr", cmd.w_addr, entries), ("g_addr", cmd.g_addr, entries)]
    if cmd.optimizer != SGD:
        ranges.append(("v_addr", cmd.v_addr, entries))
    ranges.append(("out_addr", cmd.out_addr, out))
    for name, lo, n in ranges:
        if lo + n > depth:
            return name, (f"entries {lo}..{lo + n - 1} overflow the VEC buffer of {depth} "
                          f"entries")
    for i, (a, lo_a, n_a) in enumerate(ranges):
        for b, lo_b, n_b in ranges[i + 1:]:
            if n_a and n_b and lo_a < lo_b + n_b and lo_b < lo_a + n_a:
                return b, (f"entries {lo_b}..{lo_b + n_b - 1} overlap {a} entries "
                           f"{lo_a}..{lo_a + n_a - 1}; the operand ranges must be disjoint")
    return None


def check_update(cmd: isa.Update, config: AcceleratorConfig,
                 vec_depth: int) -> tuple[str, str] | None:
    """Why the machine cannot execute ``cmd``, as ``(field, reason)``; ``None`` if it can.

    Parameters
    ----------
    cmd : isa.Update
    config : AcceleratorConfig
        ``vector.lanes`` words per VEC entry.
    vec_depth : int
        VEC buffer entries.

    Rules: optimizer 0, 1 or 3 (Adam is not implemented); ``hp_base <= 12`` (the ISA reserves
    four registers from ``hp_base``); every range (``E = ceil(count / lanes)``
    entries of w, g and, for optimizers 1 and 3, v; ``ceil(count / (2 * lanes))`` out entries)
    inside VEC and pairwise disjoint. The RTL controller must reject the same commands (the
    unit's behaviour on them is undefined).
    """
    if cmd.optimizer == ADAM:
        return "optimizer", ("Adam (optimizer 2) is not implemented by the vector engine; use "
                             "0 (SGD), 1 (SGD with momentum) or 3 (its first step)")
    if cmd.optimizer not in OPTIMIZERS:
        return "optimizer", f"{cmd.optimizer} is not one of {sorted(OPTIMIZERS)}"
    if cmd.hp_base > 12:
        return "hp_base", (f"registers {cmd.hp_base}..{cmd.hp_base + 3} (lr, momentum, weight "
                           f"decay, beta2) exceed the 16 controller registers; use 0..12")
    return _check_ranges(cmd, config.vector.lanes, vec_depth)


def update_cost(cmd: isa.Update, config: AcceleratorConfig) -> UpdateCost:
    """Cycles, operations, energy and SRAM traffic of a valid UPDATE (see :func:`check_update`).

    Reads ``E`` entries of w and g (and v for optimizers 1 and 3); writes ``E`` entries of w
    (and v), and ``ceil(count / (2 * lanes))`` out entries; entries are ``4 * lanes`` bytes.
    """
    lanes = config.vector.lanes
    entries = update_entries(cmd.count, lanes)
    operands = 2 if cmd.optimizer == SGD else 3
    out = -(-cmd.count // (2 * lanes))
    flops = update_flops(cmd.count, cmd.optimizer)
    return UpdateCost(
        cycles=update_cycles(cmd.count, lanes, cmd.optimizer),
        flops=flops,
        energy_pj=flops * config.energy.vector_flop,
        sram_read_bytes=entries * operands * lanes * 4,
        sram_write_bytes=(entries * (operands - 1) + out) * lanes * 4,
    )


def pass_cycles(count, period, vbytes, optimizer, config: AcceleratorConfig) -> np.ndarray:
    """``unit_cycles`` of vector-engine rows (vectorised).

    ``period == 0``: an optimizer step, :func:`update_cycles` of ``count`` words (the RTL's
    formula). ``period = P > 0``: an elementwise pass (a compiler annotation, see
    :mod:`hwsim.program`) issuing one ``lanes``-word entry every ``P`` cycles through the same
    pipeline, ``P * ceil(count / lanes) + LATENCY - P`` (2 when ``count == 0``). Both take at
    least ``ceil(count * vbytes / dram_bytes_per_cycle) + dram latency + 1``: streaming their
    operands and results at the DRAM's peak bandwidth.
    """
    count = np.atleast_1d(np.asarray(count, np.int64))
    period = np.broadcast_to(np.asarray(period, np.int64), count.shape)
    opt = np.broadcast_to(np.asarray(optimizer, np.int64), count.shape)
    entries = -(-count // config.vector.lanes)
    step = np.where(period == 0, np.where(opt == SGD, 2, 3), period)
    comp = np.where(entries == 0, 2, step * entries + LATENCY - step)
    nbytes = count * np.broadcast_to(np.asarray(vbytes, np.int64), count.shape)
    mem = np.ceil(nbytes / config.dram_bytes_per_cycle - 1e-9).astype(np.int64)
    mem = np.where(nbytes > 0, mem + config.dram_latency_cycles + 1, 0)
    return np.maximum(comp, mem)


class VectorModel(UnitModel):
    """UPDATE: optimizer steps, and the compiler's elementwise passes (module docstring)."""

    name = "vector"
    opcodes = (isa.Opcode.UPDATE,)

    def check(self, cmd, config):
        return check_update(cmd, config, config.vec_depth)

    def execute(self, cmd, machine, config):
        update(machine.buffers[isa.Buffer.VEC], cmd, machine.regs)

    def cycles(self, rows, config):
        return UnitTiming(pass_cycles(rows[:, COL["count"]], rows[:, COL["vperiod"]],
                                      rows[:, COL["vbytes"]], rows[:, COL["optimizer"]], config))

    def footprint(self, cmd, config):
        lanes = config.vector.lanes
        e = update_entries(cmd.count, lanes)
        regions = [(cmd.w_addr, True), (cmd.g_addr, False)]
        if cmd.optimizer != SGD:
            regions.append((cmd.v_addr, True))
        out = [Access(isa.Buffer.VEC, "w" if w else "r", a, a + e, w) for a, w in regions]
        o = -(-cmd.count // (2 * lanes))
        out.append(Access(isa.Buffer.VEC, "w", cmd.out_addr, cmd.out_addr + o, True))
        return out

    def account(self, rows, timing, config, acc):
        lanes = config.vector.lanes
        count, period = rows[:, COL["count"]], rows[:, COL["vperiod"]]
        opt = rows[:, COL["optimizer"]]
        step = period == 0
        # optimizer steps: 6 operations a word with momentum, else 4 (update_flops)
        flops = np.where(step, count * np.where(opt == SGD_MOMENTUM, 6, 4),
                         count * rows[:, COL["vflops"]])
        acc.add("vector", "vector_flop", int(flops.sum()))
        entries = -(-count[step] // lanes)
        operands = np.where(opt[step] == SGD, 2, 3)
        out = -(-count[step] // (2 * lanes))
        acc.sram(int((entries * operands).sum()) * lanes * 4,
                 int((entries * (operands - 1) + out).sum()) * lanes * 4, isa.Buffer.VEC)
        other = int((count * rows[:, COL["vbytes"]]).sum())
        acc.bytes["dram_other"] += other
        acc.add("dram", "dram_byte", other)
