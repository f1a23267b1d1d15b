"""Lowering vector-engine work: kernels' passes and optimizer updates as UPDATE rows.

A vector item of the plan (:mod:`dataflow.plan`) becomes UPDATE rows on the vector engine
(:mod:`hwsim.units.vector`): an optimizer update is split into chunks whose operands fit half of
VEC (``vperiod`` 0); a kernel (:mod:`dataflow.vector_ops`, with the ops fused into it) is one
row per pass and per :data:`COUNT_MAX` elements, its ``vperiod``, ``vbytes`` and ``vflops``
annotations saying how the pass is timed. A pass that drains a GEMM's output as it is stored
(offline schedule) is cut into chunks over the GEMM's STOREs (:func:`drain_chunks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.program import COL
from hwsim.units.vector import SGD_MOMENTUM

from ..vector_ops import BINARY, LANE_OPS, OPTIMIZER_BYTES, kernel
from .emitter import Emitter

if TYPE_CHECKING:
    from ..plan import Item

__all__ = ["CHUNK_ELEMS", "COUNT_MAX", "drain_chunks", "emit_vector", "vector_steps"]

COUNT_MAX = (1 << 20) - 1
"""Elements of one UPDATE row (its ``count`` field)."""
CHUNK_ELEMS = 1 << 14
"""Elements a drain-fused vector command covers at least (fewer commands, short tail)."""
_NORMS = frozenset(("batch_norm", "layer_norm", "group_norm", "rms_norm", "norm"))
_UPDATE = int(isa.Opcode.UPDATE)
_COUNT, _VPERIOD, _VBYTES, _VFLOPS, _OPT = (COL[k] for k in (
    "count", "vperiod", "vbytes", "vflops", "optimizer"))


def drain_chunks(n: int, sizes: list[int]) -> list[tuple[int, int]]:
    """Split ``n`` elements of a drain-fused pass over a GEMM's stores of ``sizes`` outputs:
    ``(count, index of the last store it waits for)``; the last chunk waits for the last
    store."""
    total = sum(sizes) or 1
    out = []
    cum = 0.0
    done = 0
    last = len(sizes) - 1
    for j, sz in enumerate(sizes):
        cum += n * sz / total
        target = n if j == last else min(n, round(cum))
        if target - done >= CHUNK_ELEMS or j == last:
            if target > done:
                out.append((target - done, j))
                done = target
            elif j == last and out:
                out[-1] = (out[-1][0], j)
    if not out:
        out.append((n, last))
    return out


def vector_steps(it: Item, config: AcceleratorConfig, stream: bool, stores: dict,
                 order: dict, chunks: int = 1) -> list[tuple]:
    """Rows of a vector item, ``(count, period, vbytes, vflops, optimizer, wait, chunk)`` with
    ``wait`` ``(op name, store index)`` for drain-fused chunks (``stream``; ``stores``: the
    output sizes of each GEMM op's STOREs) and None otherwise. ``order``: op id -> position in
    the workload (a fused op before the kernel joins its first pass, after it its last).

    ``chunks`` > 1 (it divides the elements) cuts the kernel's last pass, when it is not
    drain-fused, into that many equal chunks in element order, so that a consumer GEMM's
    loads wait only for the chunks they read (:mod:`dataflow.compiler`); ``chunk`` is the
    chunk index on the row that ends it, else None. A chunk is one more command of the same
    pass: the same period, bytes and operations per element, its own pipeline fill
    (:func:`hwsim.units.vector.pass_cycles`)."""
    op = it.ops[0]
    lanes = config.vector.lanes
    if it.pass_ == "update":
        n = max(1, op.elements)
        # operands w, g, v and the fp16 copy (3.5 entries per lanes words) in half of VEC
        chunk = max(1, config.vec_depth // 7) * lanes
        rows = [(min(chunk, n - s), 0, OPTIMIZER_BYTES, 6, SGD_MOMENTUM, None, None)
                for s in range(0, n, chunk)]
        return rows
    k = kernel(op.op, op.pass_)
    passes = [[p.reads, p.writes, p.flops] for p in k.passes]
    dram = k.dram_bytes
    for f in it.fused:
        before = order[id(f)] < order[id(op)]
        target = passes[0 if before else -1]
        target[2] += kernel(f.op, f.pass_).flops
        if f.op in BINARY:  # its second operand: one more read stream
            target[0] += 1
            dram += 2
            if before:  # the sum, which the kernel reads and the residual path keeps
                target[1] = max(target[1], 1)
                dram += 2
        elif f.pass_ == "wgrad" and f.op in _NORMS and not before:
            target[0] += 1  # the norm's input (x-hat); the gradient is the pass's own output
            dram += 2
    n = max(1, op.elements)
    gemm_in = 2 if it.stream_from is not None else 0  # the GEMM's fp32 output read
    rw = sum(r + w for r, w, _ in passes) or 1
    rows = []
    for pi, (r, w, f) in enumerate(passes):
        period = max(r, w, -(-f // LANE_OPS), 1)
        vb = -(-dram * (r + w) // rw) + (gemm_in if pi == 0 else 0)
        if pi == 0 and stream:
            producer = it.stream_from[1].name
            for cnt, j in drain_chunks(n, stores[producer]):
                for s in range(0, cnt, COUNT_MAX):
                    rows.append((min(COUNT_MAX, cnt - s), period, vb, f, 1,
                                 (producer, j) if s == 0 else None, None))
            continue
        q = chunks if pi == len(passes) - 1 and chunks > 1 and n % chunks == 0 else 1
        size = n // q
        for c in range(q):
            for s in range(0, size, COUNT_MAX):
                cnt = min(COUNT_MAX, size - s)
                rows.append((cnt, period, vb, f, 1, None,
                             c if q > 1 and s + cnt == size else None))
    return rows


def emit_vector(em: Emitter, count: int, period: int, vbytes: int, vflops: int,
                optimizer: int) -> int:
    """One vector-engine row (an UPDATE: ``period`` 0 an optimizer step, else a pass);
    returns its row."""
    r = em.new(_UPDATE)
    r[_COUNT], r[_VPERIOD], r[_VBYTES], r[_VFLOPS], r[_OPT] = (count, period, vbytes, vflops,
                                                              optimizer)
    return len(em.rows) - 1
