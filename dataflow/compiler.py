"""``compile(workload, config, options) -> Program``: a whole training step as machine commands.

Each item of the plan (:func:`dataflow.plan.plan`) is lowered by :mod:`dataflow.lower`: every
GEMM op becomes LOAD/GEMM/STORE commands with the double-buffering semaphore protocol
(semaphores 0-3) of :mod:`dataflow.lower.gemm`, under the mapping :func:`dataflow.search`
chooses for it (the same lowering that :func:`dataflow.compile_gemm` runs for one GEMM).
Vector kernels (norms, activations, softmax, col2im, loss; :mod:`dataflow.vector_ops`) and
optimizer updates are UPDATE commands on the vector engine (:mod:`dataflow.lower.vector`), one
per pass (an update is split into chunks whose operands fit half of VEC), and weight pruning is
PRUNE on SORE (:mod:`dataflow.lower.sore`). Programs that contain vector passes are timed by
:func:`hwsim.run` with ``check=False`` (the passes are compiler annotations of UPDATE rows,
:mod:`hwsim.program`); with ``CompileOptions(vector_ops=False)`` a workload compiles to commands
``hwsim.run`` checks and accepts, with the same cycles. The DRAM traffic of vector kernels,
updates and SORE is carried by the rows (``vbytes``, ``xbytes``) and counted as ``dram_other``;
it does not occupy the DMA queues (a known simplification, :mod:`dataflow.vector_ops`).

Scheduling. Without ``offline_schedule`` the items of :func:`dataflow.plan.plan` are emitted in
plan order with a SYNC between consecutive items (layer by layer; updates at the end). With it,
semaphores 4-7 carry exactly the dependencies of the plan (4 DMA-out -> DMA-in, 5 DMA-out ->
vector, 6 vector -> DMA-in, 7 SORE -> DMA-in for online pruning or vector -> SORE for
pre-generation), and the program order of the units' commands is decided offline: the array's
(one GEMM step, its loads and store, at a time), the vector engine's and SORE's command streams
are merged by their estimated start times (the mapping's cost per step, the vector and SORE
closed forms; nothing after a GEMM step in program order is assumed to start before it), so
that the in-order controller accepts each command about when its unit can use it and no queue
fills up ahead of its unit (a full queue stops the controller for every unit). Side vector work
(updates, bias gradients) only fills the vector engine's gaps on the chain. A vector kernel that
directly consumes a GEMM runs its first pass on that GEMM's output tiles as they are stored (one
command per group of tiles, each waiting on its last tile's STORE); symmetrically, with
``chunk_vector``, the last pass of a chain kernel that GEMMs read along their batch axis is cut
into chunks of whole images (whole attention repetitions for softmax), and each GEMM load
waits only for the chunks its step reads (:meth:`_Program._chunk_plan`), so the array starts
on the first images while the vector engine does the rest. With ``interleave``, the
blocks of a layer's backward-data GEMM (the chain) and weight-gradient GEMM alternate so that
the chain's are done by half of the group's estimated time, or earlier when the vector
engine's chain work after the group needs more of the weight-gradient GEMM to overlap it. An
edge is only emitted where the in-order units do not already imply it, so the token queues
stay first-in first-out.

DRAM layout: per GEMM op and repetition, A, B (dense, or compressed values then indices) and C,
64-byte aligned, one after the other (:mod:`dataflow.lower.gemm`'s layouts; tile-blocked with
``CompileOptions.tile_blocked``, the default, so that every tile's LOAD and STORE is one
contiguous range). Addresses wrap at
4 GiB (the LOAD field width) for workloads larger than that; the banked DRAM model's timing
depends on them (row buffers), functional runs need programs below 4 GiB.
"""

from __future__ import annotations

import dataclasses
import gc
import math

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig, load_config
from hwsim.engine import Stats, run
from hwsim.program import Program, TensorRef
from hwsim.units.sore import prune_cycles
from hwsim.units.vector import pass_cycles

from .lower.emitter import Alloc, Emitter
from .lower.gemm import (
    GemmProtocol,
    check_budget,
    emit_block,
    estimate_commands,
    gemm_blocks,
    gemm_tensors,
)
from .lower.lookup import ModelLookups, Tokens
from .lower.sore import emit_prune, prune_steps
from .lower.vector import emit_vector, vector_steps
from .mapping import Mapping, MappingCache, OpShape, search
from .memo import MEMO_OPS
from .optimizations import CompileOptions
from .plan import Item, plan
from .vector_ops import kernel
from .workload import Op, Workload

__all__ = ["CompileError", "CompiledProgram", "Item", "compile", "simulate_program"]

_EDGE_SEM = {
    (isa.Unit.DMA_OUT, isa.Unit.DMA_IN): 4,
    (isa.Unit.DMA_OUT, isa.Unit.VECTOR): 5,
    (isa.Unit.VECTOR, isa.Unit.DMA_IN): 6,
    (isa.Unit.SORE, isa.Unit.DMA_IN): 7,
    (isa.Unit.VECTOR, isa.Unit.SORE): 7,
}
_UNIT = {int(op): int(isa.command_class(op).UNIT) for op in isa.Opcode}


class CompileError(ValueError):
    """A workload that cannot be compiled for a config (names the op, pattern and config)."""


class CompiledProgram(Program):
    """A :class:`hwsim.Program` built from a command table, with what the compiler knows.

    Extra attributes: ``item_of`` (the :class:`Item` index of each command), ``useful_macs``
    (per command), ``items``, ``mappings`` (op name -> :class:`Mapping`), ``last_store`` (GEMM
    op name -> row of its last STORE), ``workload``, ``config``, ``options``.
    """

    def __init__(self, table, item_of, useful_macs, items, *, dram_bytes, tensors, mappings,
                 workload, config, options):
        self.last_store: dict[str, int] = {}
        super().__init__(dram_bytes=dram_bytes, tensors=tensors, table=table)
        self.item_of, self.useful_macs, self.items = item_of, useful_macs, items
        self.mappings, self.workload, self.config, self.options = (mappings, workload, config,
                                                                   options)


def _op_tensors(op: Op, mp: Mapping, config: AcceleratorConfig, alloc: Alloc, tensors: dict,
                rep: int, blocked: bool = False):
    """Allocate repetition ``rep`` of GEMM ``op`` and name its tensors ``<op>[<rep>].A`` ...
    (``.B`` the weight, compressed values when sparse, ``.Bi`` their indices, ``.C``)."""
    t = gemm_tensors(OpShape(op.m, op.n, op.k, op.sparsity), mp.dataflow, config, alloc,
                     blocked)
    name = op.name if op.repeat == 1 else f"{op.name}[{rep}]"
    tensors[f"{name}.A"] = t.a
    tensors[f"{name}.B"] = t.b
    tensors[f"{name}.C"] = t.c
    if t.bi is not None:
        tensors[f"{name}.Bi"] = t.bi
    return t


def _gemm_steps(it: Item, mappings, config, alloc, tensors, blocked: bool = False,
                hide: float = 0.0) -> list[tuple[Op, list, float, int]]:
    """The tile blocks of a GEMM item in emission order, each with its estimated cost and its
    repetition.

    A group's first op is the chain's: its blocks alternate with the other op's in proportion
    to estimated cost so that the chain op is done by half of the group's total (all of it
    first when it is the larger), then the rest of the other op follows (module docstring).
    ``hide``: the estimated vector-engine time of the chain after the group (before the next
    GEMM); the chain op finishes early enough that the rest of the other op covers it, when
    that comes before the half.
    """
    streams = []
    for op in it.ops:
        mp = mappings[op.name]
        shape = OpShape(op.m, op.n, op.k, op.sparsity)
        blocks = [(b, r) for r in range(op.repeat)
                  for b in gemm_blocks(shape, mp, config,
                                       _op_tensors(op, mp, config, alloc, tensors, r,
                                                   blocked))]
        steps = sum(len(b) for b, _ in blocks)
        cost = mp.cycles * op.repeat / max(1, steps)
        # blocks are the units of the interleaved merge; the program is emitted step by step
        streams.append([(op, b, cost * len(b), r) for b, r in blocks])
    if len(streams) == 1:
        return streams[0]
    chain, rest = streams[0], [s for ss in streams[1:] for s in ss]
    b_total = sum(s[2] for s in chain)
    w_total = sum(s[2] for s in rest)
    during = max(0.0, min(w_total - hide, (b_total + w_total) / 2 - b_total))
    out = []
    done_b = done_w = 0.0
    j = 0
    for step in chain:
        while j < len(rest) and during > 0 and done_w / during < done_b / max(b_total, 1e-9):
            out.append(rest[j])
            done_w += rest[j][2]
            j += 1
        out.append(step)
        done_b += step[2]
    out.extend(rest[j:])
    return out


def _split_steps(blocks: list[tuple]) -> list[tuple]:
    """One entry per GEMM step (a tile and its loads, store), the block's cost shared."""
    return [(op, [st], cost / len(block), r) for op, block, cost, r in blocks for st in block]


_AXIS_OPS = frozenset(("linear", "conv2d", "functional_conv2d", "mha_in_proj"))
"""GEMM ops whose activation operand has the batch as its outer axis: rows of A (``fwd``,
``bgrad``: ``T`` or ``P = batch·H·W``) or the reduction axis (``wgrad``)."""
DEFER_ITEMS = 2
"""GEMM items a deferred weight-gradient tail may fall behind the chain before the chain
waits for it (``CompileOptions.defer_wgrad``)."""
MAX_CHUNKS = 16
"""Most chunks a vector kernel's last pass is cut into for its consumer GEMMs."""
MIN_CHUNK = 1 << 14
"""Fewest elements of such a chunk."""


def batch_units(workload: Workload) -> int:
    """The batch as the compiler sees it: the gcd of the rows of the forward linear and conv
    GEMMs (``T`` or ``batch·H·W``; the classifier's ``T`` is the batch). Chunks of a vector
    kernel's output at multiples of it are whole images (token rows for a language model,
    whose every GEMM has ``batch·S`` rows), which a consumer reads independently."""
    g = 0
    for op in workload.gemms():
        if op.pass_ == "fwd" and op.op in _AXIS_OPS:
            g = math.gcd(g, op.m)
    return max(1, g)


def _axis(op: Op) -> int:
    """The length of the batch-major axis of ``op``'s activation operand."""
    return op.k if op.pass_ == "wgrad" else op.m


_REP_PRODUCERS = frozenset(("softmax",))
"""Vector kernels whose output is the attention scores' layout, one ``(rows, keys)`` block per
repetition (batch x heads) of the attention GEMMs that read it."""
_REP_OPS = frozenset(("attn_pv", "attn_dq", "attn_dk"))
"""Attention GEMMs whose repetition ``r`` reads only block ``r`` of such an output."""


def _step_chunk(op: Op, span: tuple, rep: int, q: int) -> int:
    """The last of ``q`` batch-ordered chunks of a producer a step of ``op`` (repetition
    ``rep``) reads."""
    if op.op in _REP_OPS:
        return rep * q // op.repeat
    m0, m1, k0, k1 = span
    hi, n = (k1, op.k) if op.pass_ == "wgrad" else (m1, op.m)
    return min(q - 1, max(0, -(-hi * q // n) - 1))


def chunk_plan(items, workload: Workload, options: CompileOptions) -> dict[int, int]:
    """Vector items whose last pass is cut into chunks: ``{item id: chunks}``.

    A chain vector kernel whose every dependent GEMM reads it along a batch-major axis
    (:data:`_AXIS_OPS`) is cut into ``q`` chunks of whole images (``q`` divides the batch
    units of :func:`batch_units`, at most :data:`MAX_CHUNKS`, at least :data:`MIN_CHUNK`
    elements each); each load of such a GEMM then waits only for the chunks its step
    reads, so the array runs on the first images while the vector engine does the rest.
    """
    if not (options.chunk_vector and options.offline_schedule):
        return {}
    u = batch_units(workload)
    users: dict[int, list] = {}
    for it in items:
        for d in it.deps:
            if d[0].kind == "vector":
                users.setdefault(id(d[0]), []).append(it)
    out = {}
    for it in items:
        if it.kind != "vector" or not it.chain or it.pass_ == "update":
            continue
        us = users.get(id(it), [])
        gemms = [g for g in us if g.kind == "gemm"]
        if not gemms or any(g.kind not in ("gemm", "vector", "prune") for g in us):
            continue
        ops = [o for g in gemms for o in g.ops]
        if it.ops[0].op in _REP_PRODUCERS and all(o.op in _REP_OPS for o in ops):
            unit = math.gcd(*(o.repeat for o in ops))  # chunks of whole repetitions
        elif all(o.op in _AXIS_OPS and _axis(o) % u == 0 for o in ops):
            unit = u
        else:
            continue
        if it.stream_from is not None and len(kernel(it.ops[0].op, it.ops[0].pass_)
                                              .passes) == 1:
            continue  # its one pass is drain-fused (chunked by the producer's stores)
        n = it.ops[0].elements
        q = max((q for q in range(1, min(unit, MAX_CHUNKS) + 1)
                 if unit % q == 0 and n % q == 0 and n // q >= MIN_CHUNK), default=1)
        if q > 1:
            out[id(it)] = q
    return out


class _Linker:
    """Adds cross-unit semaphore edges, keeping each token queue first-in first-out."""

    def __init__(self, em: Emitter):
        self.em = em
        self.last_consumed = dict.fromkeys(range(4, 8), -1)

    def link(self, producers, consumer: int) -> None:
        rows = self.em.rows
        cu = _UNIT[rows[consumer][0]]
        best: dict[int, int] = {}
        for p in producers:
            pu = _UNIT[rows[p][0]]
            if pu == cu:
                continue  # the unit runs its commands in order
            sem = _EDGE_SEM.get((pu, cu))
            if sem is None:
                raise CompileError(f"internal: no semaphore for a {isa.Unit(pu).name} -> "
                                   f"{isa.Unit(cu).name} dependency (command {consumer})")
            best[sem] = max(best.get(sem, -1), p)
        for sem, p in best.items():
            if p <= self.last_consumed[sem]:
                continue  # implied by an earlier wait of the in-order consumer unit
            rows[p][2] |= 1 << sem
            rows[consumer][1] |= 1 << sem
            self.last_consumed[sem] = p


class _Program:
    """The items' steps and the bookkeeping of emitting them (rows, edges, estimated times)."""

    def __init__(self, items, config, options, mappings, workload):
        self.items, self.c, self.options = items, config, options
        self.em = Emitter()
        self.gemm = GemmProtocol(self.em, config)
        self.link = _Linker(self.em)
        self.alloc = Alloc()
        self.tensors: dict[str, TensorRef] = {}
        offline = options.offline_schedule
        self.steps: list[list] = []
        self.dur: list[np.ndarray | None] = [None] * len(items)
        self.deps: list[list] = []
        stores: dict[str, list[int]] = {}
        self.blocks_left: dict[str, int] = {}
        order = {id(op): i for i, op in enumerate(workload.ops)}
        hide = self._chain_vector_after(items, order) if offline else [0.0] * len(items)
        for k, it in enumerate(items):
            if it.kind == "gemm":
                it.mapping = "; ".join(f"{mappings[o.name].dataflow}/{mappings[o.name].order}"
                                       for o in it.ops)
                steps = _split_steps(_gemm_steps(it, mappings, config, self.alloc,
                                                  self.tensors, options.tile_blocked, hide[k]))
                for op, block, *_ in steps:
                    sizes = stores.setdefault(op.name, [])
                    sizes.extend(s[9][0] * s[9][1] for s in block if s[9] is not None)
                    self.blocks_left[op.name] = self.blocks_left.get(op.name, 0) + 1
            self.steps.append(steps if it.kind == "gemm" else [])
        self.chunks = chunk_plan(items, workload, options)
        # per GEMM item: the chunked vector items it waits for, and per step the chunks to
        # link to its loads ({item id: chunk})
        self.chunk_waits: list = [None] * len(items)
        self.chunk_row: dict[int, dict[int, int]] = {}
        self.chunk_vt: dict[int, dict[int, float]] = {}
        for k, it in enumerate(items):
            deps = list(it.deps)
            if it.kind == "gemm" and self.chunks:
                cd = [d[0] for d in deps if id(d[0]) in self.chunks]
                if cd:
                    deps = [d for d in deps if id(d[0]) not in self.chunks]
                    self.chunk_waits[k] = self._step_waits(self.steps[k], cd)
            if it.kind == "vector":
                stream = offline and it.stream_from is not None
                rows = vector_steps(it, config, stream, stores, order,
                                    self.chunks.get(id(it), 1))
                if stream:
                    deps = [d for d in deps if d is not it.stream_from]
                self.steps[k] = rows
                t = np.array([r[:5] for r in rows], np.int64).reshape(-1, 5)
                self.dur[k] = pass_cycles(t[:, 0], t[:, 1], t[:, 2], t[:, 4], config)
            elif it.kind == "prune":
                rows = prune_steps(it, config)
                _, _, nn_, mm = it.prune
                self.steps[k] = rows
                self.dur[k] = np.array([prune_cycles(r, config.array.cols, nn_, mm,
                                                     config.sore.lanes) for r, _, _, _ in rows])
            self.deps.append(deps)
        self.op_last: dict[str, int] = {}
        self.op_vt: dict[str, float] = {}
        self.store_rows: dict[str, list[int]] = {}
        self.store_vt: dict[str, list[float]] = {}
        self.item_last: dict[int, int] = {}
        self.item_vt: dict[int, float] = {}
        lookup_ops = [it.ops[0] for it in items if it.kind == "lookup"]
        self.lookups = None
        if lookup_ops:
            training = any(op.pass_ != "fwd" for op in workload.ops)
            self.lookups = ModelLookups(lookup_ops, config, self.alloc, training,
                                        options.table_optimizer)
            self.lookup_tokens = Tokens()
            for k, it in enumerate(items):
                if it.kind == "lookup":
                    self.steps[k] = [it.ops[0]]
                    self.dur[k] = np.array([self.lookups.estimate(it.ops[0])])

    def _chain_vector_after(self, items, order) -> list[float]:
        """Per GEMM item, the estimated vector-engine time of the chain items after it up to
        the next GEMM item."""
        out = [0.0] * len(items)
        acc = 0.0
        for k in range(len(items) - 1, -1, -1):
            it = items[k]
            if it.kind == "gemm":
                out[k] = acc
                acc = 0.0
            elif it.kind == "vector" and it.chain and it.pass_ != "update":
                rows = vector_steps(it, self.c, False, {}, order)
                t = np.array([r[:5] for r in rows], np.int64).reshape(-1, 5)
                acc += float(pass_cycles(t[:, 0], t[:, 1], t[:, 2], t[:, 4], self.c).sum())
        return out

    def _step_waits(self, steps, producers) -> list:
        """Per step of a GEMM item, ``{item id: chunk}`` to link to its first LOAD: a step
        reads chunks up to :func:`_step_chunk` of its span; a requirement of a step without
        loads (its operands were loaded by an earlier step) goes to the next step with
        loads."""
        have = {id(p): -1 for p in producers}
        pend: dict[int, int] = {}
        out = []
        for op, block, _, rep in steps:
            st = block[0]
            for p in producers:
                c = _step_chunk(op, st[10], rep, self.chunks[id(p)])
                if c > have[id(p)]:
                    pend[id(p)] = max(pend.get(id(p), -1), c)
            if st[0] and pend:
                out.append(pend)
                for key, c in pend.items():
                    have[key] = c
                pend = {}
            else:
                out.append(None)
        return out

    # ---- emission of one step --------------------------------------------------------------
    def emit(self, k: int, j: int, vt_end: float = 0.0) -> None:
        """Emit step ``j`` of item ``k`` (edges only with the offline schedule)."""
        it = self.items[k]
        em = self.em
        em.cur = k
        step = self.steps[k][j]
        link = self.options.offline_schedule
        if it.kind == "gemm":
            op, block, *_ = step
            first, stores = emit_block(self.gemm, block, op.sparsity, op.n)
            waits = self.chunk_waits[k][j] if self.chunk_waits[k] is not None else None
            if link and ((j == 0 and self.deps[k]) or waits):
                if first < 0:
                    raise CompileError(f"internal: GEMM item {it.name!r} starts without a LOAD")
                prods = [p for d in self.deps[k] if (p := self._producer(d)) is not None] \
                    if j == 0 else []
                if waits:
                    prods.extend(self.chunk_row[key][c] for key, c in waits.items())
                self.link.link(prods, first)
            self.store_rows.setdefault(op.name, []).extend(stores)
            self.store_vt.setdefault(op.name, []).extend([vt_end] * len(stores))
            self.blocks_left[op.name] -= 1
            if self.blocks_left[op.name] == 0:
                self.op_last[op.name] = self.store_rows[op.name][-1]
                self.op_vt[op.name] = vt_end
            return
        if it.kind == "lookup":
            if link:  # fenced (SYNCs, no semaphores): AttMEMO's store ops (compile())
                em.sync()
            self.lookups.emit(em, step, self.lookup_tokens, fence=link)
            self.item_last[id(it)] = len(em.rows) - 1
            self.item_vt[id(it)] = vt_end
            return
        if it.kind == "vector":
            count, period, vb, vf, opt, wait, chunk = step
            row = emit_vector(em, count, period, vb, vf, opt)
            if chunk is not None:
                self.chunk_row.setdefault(id(it), {})[chunk] = row
                self.chunk_vt.setdefault(id(it), {})[chunk] = vt_end
        else:
            rows, nn_, log2m, xbytes = step
            row = emit_prune(em, rows, nn_, log2m, xbytes)
            wait = None
        if link:
            prods = [p for d in self.deps[k] if (p := self._producer(d)) is not None] \
                if j == 0 else []
            if wait is not None:
                prods.append(self.store_rows[wait[0]][wait[1]])
            if prods:
                self.link.link(prods, row)
        if j == len(self.steps[k]) - 1:
            self.item_last[id(it)] = row
            self.item_vt[id(it)] = vt_end

    def _producer(self, dep) -> int | None:
        """The command a dependent waits for (None: a fenced lookup item, which ends with a
        SYNC, so nothing after it needs a token)."""
        item, op = dep
        if item.kind == "lookup":
            return None
        return self.op_last[op.name] if item.kind == "gemm" else self.item_last[id(item)]

    def _dep_vt(self, dep) -> float | None:
        item, op = dep
        if item.kind == "gemm":
            return self.op_vt.get(op.name)
        return self.item_vt.get(id(item))

    def ready(self, k: int, j: int) -> float | None:
        """Estimated time step ``j`` of item ``k`` may start (None: a producer not emitted)."""
        t = 0.0
        if j == 0:
            for d in self.deps[k]:
                v = self._dep_vt(d)
                if v is None:
                    return None
                t = max(t, v)
        waits = self.chunk_waits[k][j] if self.chunk_waits[k] is not None else None
        if waits:
            for key, c in waits.items():
                v = self.chunk_vt.get(key, {}).get(c)
                if v is None:
                    return None
                t = max(t, v)
        if self.items[k].kind == "vector":
            wait = self.steps[k][j][5]
            if wait is not None:
                vts = self.store_vt.get(wait[0], ())
                if len(vts) <= wait[1]:
                    return None
                t = max(t, vts[wait[1]])
        return t

    def duration(self, k: int, j: int) -> float:
        if self.items[k].kind == "gemm":
            return self.steps[k][j][2]
        return float(self.dur[k][j])

    # ---- the two schedules -----------------------------------------------------------------
    def in_order(self) -> None:
        """Plan order with a SYNC between consecutive items."""
        for k in range(len(self.items)):
            if k:
                self.em.cur = k
                self.em.sync()
            for j in range(len(self.steps[k])):
                self.emit(k, j)

    def _tail(self, k: int) -> int:
        """Where the weight-gradient tail of GEMM item ``k`` starts: the steps after its last
        step of a non-``wgrad`` op, when they are all ``wgrad`` (whole tiles; else none)."""
        steps = self.steps[k]
        it = self.items[k]
        if not self.options.defer_wgrad or len(it.ops) < 2 or not it.chain:
            return len(steps)
        cut = 1 + max((j for j, st in enumerate(steps) if st[0].pass_ != "wgrad"), default=-1)
        if cut == 0 or cut == len(steps) or not steps[cut - 1][1][-1][7]:
            return len(steps)
        return cut

    def _tile_time(self, k: int, j: int) -> float:
        """Estimated time of GEMM item ``k``'s steps from ``j`` to the end of that tile."""
        t = 0.0
        for st in self.steps[k][j:]:
            t += st[2]
            if st[1][-1][7]:
                break
        return t

    def merged(self) -> None:
        """Merge the units' streams by estimated start time (module docstring)."""
        items = self.items
        gemms = [k for k, it in enumerate(items) if it.kind == "gemm"]
        cut = {k: self._tail(k) for k in gemms}
        gpos = {k: i for i, k in enumerate(gemms)}

        def whole(kind, chain=None):
            return [(k, 0, len(self.steps[k])) for k, it in enumerate(items)
                    if it.kind == kind and (chain is None or it.chain == chain)]

        streams = {
            "g": [(k, 0, cut[k]) for k in gemms],
            "v": whole("vector", True),
            "s": whole("prune"),
            "w": whole("vector", False),
            "l": whole("lookup"),
            "t": [(k, cut[k], len(self.steps[k])) for k in gemms],
        }
        clock_of = {"g": "array", "t": "array", "v": "vector", "w": "vector", "s": "sore",
                    "l": "lookup"}
        for s in streams:
            streams[s] = [seg for seg in streams[s] if seg[2] > seg[1]]
        pos = dict.fromkeys(streams, 0)  # segment position in the stream
        step = {s: streams[s][0][1] if streams[s] else 0 for s in streams}
        clock = {"array": 0.0, "vector": 0.0, "sore": 0.0, "lookup": 0.0}
        # the controller reaches a command only after accepting the array work before it in
        # program order: no other unit's command can start before the last emitted tile block
        anchor = 0.0
        emitted = set()  # GEMM items whose first step is out (their tails may follow)
        locked = None  # an array stream inside a tile: its next step comes first

        def head(s):
            i = pos[s]
            return (streams[s][i][0], step[s]) if i < len(streams[s]) else None

        while True:
            cands = {}
            for s in ("v", "s", "g", "w", "l", "t"):
                h = head(s)
                if h is None or (locked is not None and clock_of[s] == "array" and s != locked):
                    continue
                if s == "t" and h[0] not in emitted:
                    continue
                t = self.ready(*h)
                if t is not None:
                    # a fenced lookup item starts when every unit is idle (its SYNC)
                    floor = max(clock.values()) if s == "l" else clock[clock_of[s]]
                    cands[s] = max(floor, t, 0.0 if s in ("g", "t") else anchor)
            if not cands:
                if any(head(s) is not None for s in streams):
                    raise CompileError("internal: the plan's dependencies form a cycle")
                break
            if "w" in cands and len(cands) > 1 and head("v") is not None:
                # side vector work only where the chain leaves the vector engine idle: before
                # the chain's next pass starts, or while that pass still waits for the array
                end = cands["w"] + self.duration(*head("w"))
                if end > cands["v"] if "v" in cands else cands["w"] >= clock["array"]:
                    del cands["w"]
            if "t" in cands and "g" in cands and locked is None:
                if gpos[head("t")[0]] <= gpos[head("g")[0]] - DEFER_ITEMS \
                        and step["g"] == streams["g"][pos["g"]][1]:
                    del cands["g"]  # the backlog first: the chain waits
                elif cands["t"] + self._tile_time(*head("t")) > cands["g"]:
                    # a deferred weight-gradient tile only where the chain waits for longer
                    # than the whole tile takes
                    del cands["t"]
            # (side work is paced by the anchor: one chunk per chunk-time of array progress)
            s = min(cands, key=cands.get)
            k, j = head(s)
            start = cands[s]
            end = start + self.duration(k, j)
            clock[clock_of[s]] = end
            if clock_of[s] == "array":
                anchor = start
                locked = None if self.steps[k][j][1][-1][7] else s
                emitted.add(k)
            if s == "l":  # it ends with a SYNC: nothing after it starts earlier
                clock = dict.fromkeys(clock, end)
                anchor = end
            self.emit(k, j, end)
            step[s] += 1
            if step[s] == streams[s][pos[s]][2]:
                pos[s] += 1
                if pos[s] < len(streams[s]):
                    step[s] = streams[s][pos[s]][1]


def compile(workload: Workload, config: AcceleratorConfig | str,
            options: CompileOptions | None = None) -> CompiledProgram:
    """Lower a workload to a program for ``config``.

    Parameters
    ----------
    workload : Workload
        From :func:`dataflow.extract`.
    config : AcceleratorConfig
    options : CompileOptions, optional

    Returns
    -------
    CompiledProgram
        A :class:`hwsim.Program` (commands built on first access) with the command table.

    Raises
    ------
    CompileError
        A sparsity pattern the config does not support (before any work).
    MappingError
        An op that fits no mapping (names the module and op).
    """
    config = load_config(config)
    options = options or CompileOptions()
    if options.offline_schedule and any(op.op not in MEMO_OPS for op in workload.lookups()):
        # MemoryFormer's lookup items run in plan order between SYNCs: their blocks overlap
        # through semaphores 4-7, which the offline schedule's cross-unit edges use. AttMEMO's
        # store ops (dataflow.memo) keep the offline schedule: they are fenced by SYNCs and
        # use no semaphore.
        options = dataclasses.replace(options, offline_schedule=False)
    pats = {op.pattern for op in workload.ops if op.sparsity is not None}
    if workload.pattern:
        pats.add(workload.pattern)
    for p in sorted(pats):
        if not config.supports_pattern(p):
            raise CompileError(f"pattern {p} of workload {workload.model!r} is not supported by "
                               f"config {config.name!r} (supported: {config.array.patterns})")
    cache = MappingCache(options.cache_dir)
    mappings: dict[str, Mapping] = {}
    for op in workload.gemms():
        shape = OpShape(op.m, op.n, op.k, op.sparsity,
                        name=f"{op.name} in module {op.layer or '<root>'}")
        mappings[op.name] = search(shape, config, options.objective,
                                   dataflows=options.dataflows, cache=cache,
                                   blocked=options.tile_blocked)
    cache.save()
    commands = sum(estimate_commands(OpShape(op.m, op.n, op.k, op.sparsity), mappings[op.name],
                                     config) * op.repeat for op in workload.gemms())
    check_budget(commands, options.max_commands,
                 f"workload {workload.model!r} on config {config.name!r}")
    # the emitter allocates one small list per command and frees nothing: the cyclic garbage
    # collector's passes over them (and over earlier programs still alive) are pure overhead
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        items = plan(workload, options)
        prog = _Program(items, config, options, mappings, workload)
        if options.offline_schedule:
            prog.merged()
        else:
            prog.in_order()
        em = prog.em
        table = em.table()
    finally:
        if gc_was_enabled:
            gc.enable()
    out = CompiledProgram(
        table, np.asarray(em.item, np.int64), np.asarray(em.macs, np.int64), items,
        dram_bytes=prog.alloc.top, tensors=prog.tensors, mappings=mappings, workload=workload,
        config=config, options=options)
    out.last_store = prog.op_last
    return out


def simulate_program(program: CompiledProgram, config: AcceleratorConfig | str | None = None
                     ) -> Stats:
    """Time a compiled program with :func:`hwsim.run` on its command table (``check=False``:
    its vector passes are compiler annotations; :mod:`hwsim.engine`)."""
    return run(program, program.config if config is None else load_config(config),
               check=False).stats
