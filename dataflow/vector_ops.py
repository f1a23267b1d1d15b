"""Vector-engine kernels: what norms, activations, softmax, col2im, pooling and the loss cost.

The vector engine (:mod:`hwsim.units.vector`) has ``L = config.vector.lanes`` fp32 lanes and a
VEC scratch memory with one read port and one write port, each moving one ``L``-word entry per
cycle. Each lane is a pipeline of fp32 operators: the UPDATE datapath has three multipliers and
three adders, so a lane does up to :data:`LANE_OPS` = 6 operations per element per entry slot.

Model of a kernel
-----------------
A kernel is a sequence of **passes** over its ``count`` elements. A pass that reads ``r``
operand streams, writes ``w`` and does ``f`` fp32 operations per element starts a new entry every
``P = max(r, w, ceil(f / LANE_OPS), 1)`` cycles (the single read and write ports, or the lane's
operators, whichever binds) and costs, start to done, ::

    P * ceil(count / L) + 10 - P

which is :func:`hwsim.units.vector.update_cycles`'s pipeline (issue one entry every ``P`` cycles,
eight stages, one read-latency and one done cycle) with ``P`` the pass's period. The optimizer
step *is* that formula (``P = 3`` for SGD with momentum: reads ``w, g, v``, writes ``v, w`` and
the fp16 copy) and is costed by :func:`hwsim.units.vector.update_cycles` itself. Passes of one
kernel run back to back (a reduction must finish before the pass that uses it).

Operands and results live in DRAM (activations fp16, 2 bytes) and stream through VEC;
``dram_bytes`` per element counts every DRAM read and write of the kernel (a pass whose working
set is a row that fits VEC, as softmax's, does not re-read it); a kernel that directly consumes
a GEMM's output reads it as the STORE wrote it, fp32: the compiler adds 2 bytes. A pass takes
no less than streaming its share of those bytes at the DRAM's peak bandwidth
(:func:`hwsim.units.vector.pass_cycles`). That traffic is not placed on the DMA queues (the
ISA's eight semaphores are all used by the GEMM pipeline and the cross-unit edges), so the GEMMs
do not see it as contention; the SAT report states how much bandwidth it takes.

Fusion (the compiler's vector kernels, as an XLA-style loop fusion would produce them):

- **unary pointwise** ops (``relu``, ``gelu``, ``neg``, a scale ``div``, ``masked_fill`` with a
  constant mask, ``dropout`` ...) next to another vector op of the same pass and size are an
  extra pipeline stage of that op's adjacent pass: their operations are added to that pass, no
  pass of their own (a BN-apply + ReLU is one pass); a forward **binary** elementwise op (the
  residual ``add``) after a kernel adds one read stream and 2 DRAM bytes to its last pass
  (BN-apply + add + ReLU: ``P = 2``), and one right after a GEMM adds one read stream, the
  sum's write and 4 DRAM bytes to the next kernel's first pass (add + layer-norm statistics:
  ``P = 2``, drain-fused); a ReLU's backward before a norm's backward adds only
  operations (its mask is recomputed from the norm's input, read anyway); a residual add's
  backward (the gradient sum at the fork) after a ReLU's backward adds a read stream to it;
- the **first pass** of a kernel that directly consumes a GEMM's output (an activation, a norm's
  statistics, softmax's online max and sum, col2im's scatter-add) is elementwise or an
  order-free reduction, so with ``offline_schedule`` it consumes the GEMM's output tiles as the
  DMA stores them: a drain-fused epilogue, one vector command per group of stored tiles, each
  waiting on the token of its last tile's STORE.

Per-element operation counts are ours (exp and tanh as a table look-up plus a short polynomial,
about four operations); they set ``P`` only where they exceed ``LANE_OPS`` per read.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BINARY",
    "LANE_OPS",
    "OPTIMIZER_BYTES",
    "POINTWISE",
    "Kernel",
    "Pass",
    "kernel",
    "pass_period",
]

LANE_OPS = 6
"""fp32 operations per lane per entry slot: the UPDATE datapath's three multipliers and three
adders (:mod:`hwsim.units.vector`)."""

OPTIMIZER_BYTES = 22
"""DRAM bytes per word of an SGD-with-momentum update: fp32 ``w``, ``g``, ``v`` in, ``w``,
``v`` and the fp16 copy out."""


@dataclass(frozen=True)
class Pass:
    """One pass over the elements: read streams, write streams, fp32 operations per element."""

    reads: int
    writes: int
    flops: int


@dataclass(frozen=True)
class Kernel:
    """A vector-engine kernel: its passes and DRAM bytes per element."""

    passes: tuple[Pass, ...]
    dram_bytes: int

    @property
    def flops(self) -> int:
        return sum(p.flops for p in self.passes)


def pass_period(p: Pass) -> int:
    """Cycles between entries of a pass: ``max(reads, writes, ceil(flops / LANE_OPS), 1)``."""
    return max(p.reads, p.writes, -(-p.flops // LANE_OPS), 1)


def _k(dram_bytes: int, *passes: tuple[int, int, int]) -> Kernel:
    return Kernel(tuple(Pass(*p) for p in passes), dram_bytes)


_NORM = {
    # statistics (sum, sum of squares), then apply (x * scale + shift, per channel / row)
    "fwd": _k(6, (1, 0, 3), (1, 1, 2)),
    # dgamma, dbeta: sum(dy), sum(dy * xhat) with xhat recomputed from x
    "wgrad": _k(4, (2, 0, 4)),
    # dx = scale * (dy - dbeta / n - xhat * dgamma / n)
    "bgrad": _k(6, (2, 1, 5)),
}
_UNARY_BWD = _k(6, (2, 1, 2))  # dx = dy * f'(x): reads dy and x (or y)

_KERNELS: dict[tuple[str, str], Kernel] = {
    **{(n, p): k for n in ("batch_norm", "layer_norm", "group_norm", "rms_norm", "norm")
       for p, k in _NORM.items()},
    ("relu", "fwd"): _k(4, (1, 1, 1)), ("relu", "bgrad"): _k(6, (2, 1, 1)),
    ("gelu", "fwd"): _k(4, (1, 1, 8)), ("gelu", "bgrad"): _k(6, (2, 1, 12)),
    ("silu", "fwd"): _k(4, (1, 1, 6)), ("silu", "bgrad"): _k(6, (2, 1, 8)),
    ("tanh", "fwd"): _k(4, (1, 1, 5)), ("tanh", "bgrad"): _UNARY_BWD,
    ("sigmoid", "fwd"): _k(4, (1, 1, 6)), ("sigmoid", "bgrad"): _UNARY_BWD,
    ("neg", "fwd"): _k(4, (1, 1, 1)), ("neg", "bgrad"): _k(4, (1, 1, 1)),
    ("div", "fwd"): _k(4, (1, 1, 1)), ("div", "bgrad"): _k(4, (1, 1, 1)),
    ("masked_fill", "fwd"): _k(4, (1, 1, 1)), ("masked_fill", "bgrad"): _k(4, (1, 1, 1)),
    ("dropout", "fwd"): _k(4, (1, 1, 3)), ("dropout", "bgrad"): _k(6, (2, 1, 1)),
    ("add", "fwd"): _k(6, (2, 1, 1)), ("add", "bgrad"): _k(6, (2, 1, 1)),
    ("sub", "fwd"): _k(6, (2, 1, 1)), ("sub", "bgrad"): _k(6, (2, 1, 1)),
    ("mul", "fwd"): _k(6, (2, 1, 1)), ("mul", "bgrad"): _k(10, (3, 2, 2)),
    # online max and sum of exp over a row (rows fit VEC), then exp and normalise
    ("softmax", "fwd"): _k(4, (1, 0, 6), (1, 1, 6)),
    # dot = sum(dP * P) per row, then dS = P * (dP - dot)
    ("softmax", "bgrad"): _k(6, (2, 0, 2), (2, 1, 2)),
    ("loss", "fwd"): _k(2, (1, 0, 6), (1, 0, 6)),  # softmax cross-entropy
    ("loss", "bgrad"): _k(4, (1, 1, 2)),
    # scatter-add of the column gradient into dX (read-modify-write)
    ("col2im", "bgrad"): _k(6, (2, 1, 1)),
    ("bias_grad", "wgrad"): _k(2, (1, 0, 1)),
    ("max_pool2d", "fwd"): _k(3, (1, 1, 1)), ("max_pool2d", "bgrad"): _k(3, (1, 1, 1)),
    ("avg_pool2d", "fwd"): _k(3, (1, 1, 1)), ("avg_pool2d", "bgrad"): _k(3, (1, 1, 1)),
    ("adaptive_avg_pool2d", "fwd"): _k(3, (1, 1, 1)),
    ("adaptive_avg_pool2d", "bgrad"): _k(3, (1, 1, 1)),
    ("embedding", "fwd"): _k(4, (1, 1, 0)), ("embedding", "wgrad"): _k(6, (2, 1, 1)),
    # AttMEMO's search (dataflow.memo): sum of squares, then scale; a running top-k compare
    ("l2_normalize", "fwd"): _k(4, (1, 0, 2), (1, 1, 1)),
    ("topk", "fwd"): _k(2, (1, 0, 2)),
}
_DEFAULT = _k(6, (2, 1, 2))

BINARY = frozenset(("add", "sub", "mul"))
"""Binary elementwise op types (two live inputs)."""

POINTWISE = frozenset(("relu", "gelu", "silu", "tanh", "sigmoid", "neg", "div", "masked_fill",
                       "dropout"))
"""Unary pointwise op types (one live input; a scalar or constant second operand at most)."""


def kernel(op_type: str, pass_: str) -> Kernel:
    """The kernel of a vector op of type ``op_type`` in pass ``pass_`` (a binary elementwise
    default, ``(2, 1, 2)`` with 6 bytes, for types not listed)."""
    return _KERNELS.get((op_type, pass_), _DEFAULT)
