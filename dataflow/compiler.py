"""``compile(workload, config, options) -> Program``: a whole training step as machine commands.

Every GEMM op becomes LOAD/GEMM/STORE commands with the double-buffering semaphore protocol of
:mod:`hwsim.gemm` (semaphores 0-3), generalised to tiles whose operands stay resident:

- a *load group* is the loads that precede one GEMM; each loaded buffer (ACT, WGT, IDX) goes
  to the half the most recent GEMM does *not* read; group ``p`` waits ``IN_FREE`` for the
  token that the last GEMM before group ``p - 1`` signals (all GEMMs that read the half it
  overwrites are then done); its last load signals ``LOADED``;
- output tile ``t`` accumulates in ACC half ``t % 2``: its first GEMM waits ``ACC_FREE`` (store
  of tile ``t - 2`` done), its last GEMM signals ``ACC_READY`` to its STORE.

Vector kernels (norms, activations, softmax, col2im, loss; :mod:`dataflow.vector_ops`) and
optimizer updates are UPDATE commands on the vector engine, one per pass (an update is split
into chunks whose operands fit half of VEC), and weight pruning is PRUNE on SORE. Programs that
contain vector passes are timed by :func:`hwsim.run` with ``check=False`` (the passes are
compiler annotations of UPDATE rows, :mod:`hwsim.program`); with
``CompileOptions(vector_ops=False)`` a workload compiles to commands ``hwsim.run`` checks and
accepts, with the same cycles. The DRAM traffic of vector kernels, updates and SORE is carried
by the rows (``vbytes``, ``xbytes``) and counted as ``dram_other``; it does not occupy the DMA
queues (a known simplification, :mod:`dataflow.vector_ops`).

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
command per group of tiles, each waiting on its last tile's STORE). With ``interleave``, the
blocks of a layer's backward-data GEMM (the chain) and weight-gradient GEMM alternate so that
the chain's are done by half of the group's estimated time and the vector engine's backward
work overlaps the rest. An edge is only emitted where the in-order units do not already imply
it, so the token queues stay first-in first-out.

DRAM layout: per GEMM op and repetition, A (column-major for OS, row-major for WS), B (dense,
or compressed values then indices), C (accumulator type), 64-byte aligned, one after the other.
Addresses wrap at 4 GiB (the LOAD field width) for workloads larger than that; the banked DRAM
model's timing depends on them (row buffers), functional runs need programs below 4 GiB.
"""

from __future__ import annotations

import gc
import math

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.engine import Stats, run
from hwsim.program import COL, COLUMNS, Program, TensorRef
from hwsim.units.sore import prune_cycles
from hwsim.units.vector import SGD_MOMENTUM, pass_cycles

from .mapping import Mapping, MappingCache, OpShape, search
from .optimizations import CompileOptions
from .plan import Item, plan
from .vector_ops import BINARY, LANE_OPS, OPTIMIZER_BYTES, kernel
from .workload import Op, Workload

__all__ = ["CompileError", "CompiledProgram", "Item", "compile", "simulate_program"]

SEM_LOADED, SEM_IN_FREE, SEM_ACC_FREE, SEM_ACC_READY = 0, 1, 2, 3
_EDGE_SEM = {
    (isa.Unit.DMA_OUT, isa.Unit.DMA_IN): 4,
    (isa.Unit.DMA_OUT, isa.Unit.VECTOR): 5,
    (isa.Unit.VECTOR, isa.Unit.DMA_IN): 6,
    (isa.Unit.SORE, isa.Unit.DMA_IN): 7,
    (isa.Unit.VECTOR, isa.Unit.SORE): 7,
}
_NCOL = len(COLUMNS)
_ADDR_MOD = 1 << 32
_COUNT_MAX = (1 << 20) - 1
_CHUNK_ELEMS = 1 << 14
"""Elements a drain-fused vector command covers at least (fewer commands, short tail)."""
_UNIT = {int(op): int(isa.command_class(op).UNIT) for op in isa.Opcode}
_LOAD, _GEMM, _STORE = int(isa.Opcode.LOAD), int(isa.Opcode.GEMM), int(isa.Opcode.STORE)
_UPDATE, _PRUNE, _SYNC = int(isa.Opcode.UPDATE), int(isa.Opcode.PRUNE), int(isa.Opcode.SYNC)
_C = {name: COL[name] for name in COLUMNS}


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


_BUF, _SRAM, _DRAM, _ROWS, _ELEMS, _STRIDE = (_C[k] for k in (
    "buf", "sram_addr", "dram_addr", "rows", "elems", "stride"))
_A, _B, _CA, _IDX, _K, _M, _DF, _SP, _ACCU, _N, _LOG2M = (_C[k] for k in (
    "a_addr", "b_addr", "c_addr", "idx_addr", "k", "m", "dataflow", "sparse", "accumulate", "n",
    "log2m"))
_SRC_BUF, _GROUPS, _AXIS, _OPT, _XBYTES = (_C[k] for k in (
    "src_buf", "groups", "axis", "optimizer", "xbytes"))
_COUNT, _VBYTES, _VFLOPS, _VPERIOD = (_C[k] for k in ("count", "vbytes", "vflops", "vperiod"))


class _Emitter:
    """Appends command rows and keeps the buffer halves and semaphore protocol (module doc)."""

    def __init__(self, config: AcceleratorConfig):
        self.c = config
        self.rows: list[list[int]] = []
        self.item: list[int] = []
        self.macs: list[int] = []
        self.cur = -1
        self.depth = 2 if config.buffers.double_buffered else 1
        d = self.depth
        self.half = {isa.Buffer.ACT: config.act_depth // d, isa.Buffer.WGT: config.wgt_depth // d,
                     isa.Buffer.IDX: config.idx_depth // d, isa.Buffer.ACC: config.acc_depth // d}
        self.read_half = dict.fromkeys((isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.IDX), d - 1)
        self.groups = 0
        self.last_gemm = -1
        self.tiles = 0

    def _new(self, opcode: int, wait: int = 0, signal: int = 0, macs: int = 0) -> list[int]:
        r = [0] * _NCOL
        r[0], r[1], r[2] = opcode, wait, signal
        self.rows.append(r)
        self.item.append(self.cur)
        self.macs.append(macs)
        return r

    def step(self, loads, a_off, b_off, k, m, df, sparse, acc, nm, first_of_tile, last_of_tile,
             macs) -> int:
        """One GEMM and its load group; returns the row of its first LOAD (-1 if none).
        ``loads``: (buf, offset, dram, rows, elems, stride, same_half)."""
        first_load = -1
        rh = self.read_half
        if loads:
            halves = {}
            for buf, _, _, _, _, _, same in loads:
                if buf not in halves:
                    halves[buf] = rh[buf] if same else (1 - rh[buf] if self.depth == 2 else 0)
            if self.groups >= 1 and self.last_gemm >= 0:
                self.rows[self.last_gemm][2] |= 1 << SEM_IN_FREE
            first_load = len(self.rows)
            w = 1 << SEM_IN_FREE if self.groups >= self.depth else 0
            r = None
            for buf, off, dram, rows, elems, stride, _ in loads:
                r = self._new(_LOAD, w)
                w = 0
                r[_BUF], r[_SRAM], r[_DRAM] = buf, halves[buf] * self.half[buf] + off, \
                    dram % _ADDR_MOD
                r[_ROWS], r[_ELEMS], r[_STRIDE] = rows, elems, stride
            r[2] |= 1 << SEM_LOADED
            rh.update(halves)
            self.groups += 1
        wait = 1 << SEM_LOADED if loads else 0
        if first_of_tile and self.tiles >= self.depth:
            wait |= 1 << SEM_ACC_FREE
        half = self.half
        self.last_gemm = len(self.rows)
        r = self._new(_GEMM, wait, (1 << SEM_ACC_READY) if last_of_tile else 0, macs)
        r[_A] = rh[isa.Buffer.ACT] * half[isa.Buffer.ACT] + a_off
        r[_B] = rh[isa.Buffer.WGT] * half[isa.Buffer.WGT] + b_off
        r[_CA] = (self.tiles % 2) * half[isa.Buffer.ACC] if self.depth == 2 else 0
        r[_K], r[_M], r[_DF], r[_ACCU] = k, m, df, int(acc)
        if sparse:
            r[_IDX] = rh[isa.Buffer.IDX] * half[isa.Buffer.IDX] + b_off
            r[_SP], r[_N], r[_LOG2M] = 1, nm[0], int(math.log2(nm[1]))
        return first_load

    def store(self, rows: int, elems: int, dram: int, stride: int) -> int:
        c_addr = (self.tiles % 2) * self.half[isa.Buffer.ACC] if self.depth == 2 else 0
        self.tiles += 1
        r = self._new(_STORE, 1 << SEM_ACC_READY, 1 << SEM_ACC_FREE)
        r[_BUF], r[_SRAM], r[_DRAM] = isa.Buffer.ACC, c_addr, dram % _ADDR_MOD
        r[_ROWS], r[_ELEMS], r[_STRIDE] = rows, elems, stride
        return len(self.rows) - 1

    def vector(self, count: int, period: int, vbytes: int, vflops: int, optimizer: int) -> int:
        """One vector-engine row (an UPDATE: ``period`` 0 an optimizer step, else a pass)."""
        r = self._new(_UPDATE)
        r[_COUNT], r[_VPERIOD], r[_VBYTES], r[_VFLOPS], r[_OPT] = (count, period, vbytes, vflops,
                                                                  optimizer)
        return len(self.rows) - 1

    def prune(self, rows: int, n: int, log2m: int, xbytes: int) -> int:
        """One PRUNE row; ``xbytes``: DRAM bytes it streams outside the DMA queues."""
        r = self._new(_PRUNE)
        r[_SRC_BUF], r[_ROWS], r[_GROUPS], r[_N], r[_LOG2M], r[_AXIS], r[_XBYTES] = (
            isa.Buffer.WGT, rows, 1, n, log2m, 1, xbytes)
        return len(self.rows) - 1

    def sync(self) -> None:
        self._new(_SYNC)


class _Alloc:
    def __init__(self):
        self.top = 0

    def __call__(self, nbytes: int) -> int:
        a = self.top
        self.top += (nbytes + 63) // 64 * 64
        return a


def _blocks(op: Op, mp: Mapping, config: AcceleratorConfig, alloc: _Alloc, tensors: dict,
            rep: int):
    """The tile blocks of one repetition of ``op`` (each a list of steps plus stores)."""
    R, C = config.array.rows, config.array.cols
    eb = config.array.elem_bytes
    M, N, K = op.m, op.n, op.k
    shape = OpShape(M, N, K, op.sparsity)
    sparse = op.sparsity is not None
    nm = op.sparsity or (1, 1)
    dt, at = ("int8", "int32") if config.array.dtype == "int8" else ("fp16", "fp32")
    Kc_all = shape.compressed(K)
    if sparse and mp.dataflow == "ws":
        # chunk-blocked A (hwsim.compile_gemm's WS sparse layout): row c*M + t holds
        # A[t, c*E*R : (c+1)*E*R], E = M/N ACT entries per streamed row
        e_row = nm[1] // nm[0]
        span = e_row * R
        nch = -(-K // span)
        a = TensorRef(alloc(nch * M * span * eb), (nch * M, span), dt)
    else:
        a = TensorRef(alloc(M * K * eb), (M, K), dt,
                      order="col" if mp.dataflow == "os" else "row")
    b = TensorRef(alloc(Kc_all * N * eb), (Kc_all, N), dt)
    bidx = alloc(Kc_all * N) if sparse else 0
    c = TensorRef(alloc(M * N * 4), (M, N), at)
    suffix = "" if op.repeat == 1 else f"[{rep}]"
    tensors[f"{op.name}{suffix}.A"] = a
    tensors[f"{op.name}{suffix}.B"] = b
    tensors[f"{op.name}{suffix}.C"] = c
    if sparse:  # B holds the compressed values, Bi their in-group indices
        tensors[f"{op.name}{suffix}.Bi"] = TensorRef(bidx, (Kc_all, N), "int8")
    ACT, WGT, IDX = isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.IDX
    OS, WS = int(isa.Dataflow.OS), int(isa.Dataflow.WS)

    def macs(rows, cols, kc):
        return rows * cols * kc * nm[0] // nm[1]

    if mp.dataflow == "os" and mp.order == "b":
        block = []
        nbs = list(range(0, N, C))
        for mi, m0 in enumerate(range(0, M, R)):
            mr = min(R, M - m0)
            for j, n0 in enumerate(nbs):
                nc = min(C, N - n0)
                loads = []
                if mi == 0 and j == 0:
                    for jj, n1 in enumerate(nbs):
                        w = min(C, N - n1)
                        loads.append((WGT, jj * Kc_all, b.addr + n1 * eb, Kc_all, w, N * eb, 0))
                        if sparse:
                            loads.append((IDX, jj * Kc_all, bidx + n1, Kc_all, w, N, 0))
                if j == 0:
                    loads.append((ACT, 0, a.addr + m0 * eb, K, mr, M * eb, 0))
                block.append((loads, 0, j * Kc_all, Kc_all, 0, OS, True, True,
                              macs(mr, nc, K), (mr, nc, c.addr + (m0 * N + n0) * 4)))
        yield block
        return
    if mp.dataflow == "os":
        resident = mp.kt >= K
        for m0 in range(0, M, R):
            mr = min(R, M - m0)
            block = []
            for n0 in range(0, N, C):
                nc = min(C, N - n0)
                kchunks = list(range(0, K, mp.kt))
                for ci, k0 in enumerate(kchunks):
                    kc = min(mp.kt, K - k0)
                    kcc = shape.compressed(kc)
                    kc0 = shape.compressed(k0)
                    loads = []
                    if not resident or n0 == 0:
                        loads.append((ACT, 0, a.addr + (k0 * M + m0) * eb, kc, mr, M * eb, 0))
                    loads.append((WGT, 0, b.addr + (kc0 * N + n0) * eb, kcc, nc, N * eb, 0))
                    if sparse:
                        loads.append((IDX, 0, bidx + kc0 * N + n0, kcc, nc, N, 0))
                    last = ci == len(kchunks) - 1
                    store = (mr, nc, c.addr + (m0 * N + n0) * 4) if last else None
                    block.append((loads, 0, 0, kcc, 0, OS, ci == 0, last, macs(mr, nc, kc),
                                  store))
            yield block
        return
    # weight-stationary
    kchunks = list(range(0, K, mp.kt))

    def ws_step(m0, mc, n0, nc, ci, k0, load_a, a_off, same):
        kc = min(mp.kt, K - k0)
        kcc = shape.compressed(kc)
        kc0 = shape.compressed(k0)
        loads = [(WGT, 0, b.addr + (kc0 * N + n0) * eb, kcc, nc, N * eb, 0)]
        if sparse:
            loads.append((IDX, 0, bidx + kc0 * N + n0, kcc, nc, N, 0))
        if load_a:
            if sparse:  # chunk-blocked A: the chunk's rows m0.. are contiguous, E entries each
                loads.append((ACT, a_off, a.addr + (ci * M + m0) * span * eb, mc * e_row, R,
                              R * eb, same))
            else:
                loads.append((ACT, a_off, a.addr + (m0 * K + k0) * eb, mc, kc, K * eb, same))
        last = ci == len(kchunks) - 1
        store = (mc, nc, c.addr + (m0 * N + n0) * 4) if last else None
        return (loads, a_off, 0, kcc, mc, WS, ci == 0, last, macs(mc, nc, kc), store)

    if mp.order == "s":
        for n0 in range(0, N, C):
            nc = min(C, N - n0)
            for m0 in range(0, M, mp.mt):
                mc = min(mp.mt, M - m0)
                yield [ws_step(m0, mc, n0, nc, ci, k0, True, 0, 0)
                       for ci, k0 in enumerate(kchunks)]
        return
    for m0 in range(0, M, mp.mt):
        mc = min(mp.mt, M - m0)
        block = []
        for n0 in range(0, N, C):
            nc = min(C, N - n0)
            for ci, k0 in enumerate(kchunks):
                off = ci * mc * (e_row if sparse else -(-mp.kt // R))
                block.append(ws_step(m0, mc, n0, nc, ci, k0, n0 == 0, off, ci > 0))
        yield block


def _emit_block(em: _Emitter, block, op: Op) -> tuple[int, list[int]]:
    """Emit one tile block of ``op``: ``(first LOAD row or -1, its STORE rows)``."""
    sparse = op.sparsity is not None
    nm = op.sparsity or (0, 1)
    first_in = -1
    stores = []
    n_stride = op.n * 4
    for loads, a_off, b_off, k, m, df, first, last, macs, store in block:
        fl = em.step(loads, a_off, b_off, k, m, df, sparse, not first, nm, first, last, macs)
        if first_in < 0:
            first_in = fl
        if store is not None:
            rows, elems, dram = store
            stores.append(em.store(rows, elems, dram, n_stride))
    return first_in, stores


def _gemm_steps(it: Item, mappings, config, alloc, tensors) -> list[tuple[Op, list, float]]:
    """The tile blocks of a GEMM item in emission order, each with its estimated cost.

    A group's first op is the chain's: its blocks alternate with the other op's in proportion
    to estimated cost so that the chain op is done by half of the group's total (all of it
    first when it is the larger), then the rest of the other op follows (module docstring).
    """
    streams = []
    for op in it.ops:
        mp = mappings[op.name]
        blocks = [b for r in range(op.repeat) for b in _blocks(op, mp, config, alloc, tensors, r)]
        steps = sum(len(b) for b in blocks)
        cost = mp.cycles * op.repeat / max(1, steps)
        # blocks are the units of the interleaved merge; the program is emitted step by step
        streams.append([(op, b, cost * len(b)) for b in blocks])
    if len(streams) == 1:
        return streams[0]
    chain, rest = streams[0], [s for ss in streams[1:] for s in ss]
    b_total = sum(c for _, _, c in chain)
    w_total = sum(c for _, _, c in rest)
    during = max(0.0, min(w_total, (b_total + w_total) / 2 - b_total))
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


def _split_steps(blocks: list[tuple[Op, list, float]]) -> list[tuple[Op, list, float]]:
    """One entry per GEMM step (a tile and its loads, store), the block's cost shared."""
    return [(op, [st], cost / len(block)) for op, block, cost in blocks for st in block]


def _chunks(n: int, sizes: list[int]) -> list[tuple[int, int]]:
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
        if target - done >= _CHUNK_ELEMS or j == last:
            if target > done:
                out.append((target - done, j))
                done = target
            elif j == last and out:
                out[-1] = (out[-1][0], j)
    if not out:
        out.append((n, last))
    return out


def _vector_steps(it: Item, config: AcceleratorConfig, stream: bool, stores: dict, order: dict):
    """Rows of a vector item, ``(count, period, vbytes, vflops, optimizer, wait)`` with ``wait``
    ``(op name, store index)`` for drain-fused chunks."""
    op = it.ops[0]
    lanes = config.vector.lanes
    if it.pass_ == "update":
        n = max(1, op.elements)
        # operands w, g, v and the fp16 copy (3.5 entries per lanes words) in half of VEC
        chunk = max(1, config.vec_depth // 7) * lanes
        rows = [(min(chunk, n - s), 0, OPTIMIZER_BYTES, 6, SGD_MOMENTUM, None)
                for s in range(0, n, chunk)]
        return rows
    k = kernel(op.op, op.pass_)
    passes = [[p.reads, p.writes, p.flops] for p in k.passes]
    dram = k.dram_bytes
    for f in it.fused:
        target = passes[0 if order[id(f)] < order[id(op)] else -1]
        target[2] += kernel(f.op, f.pass_).flops
        if f.op in BINARY:  # its second operand: one more read stream
            target[0] += 1
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
            for cnt, j in _chunks(n, stores[producer]):
                for s in range(0, cnt, _COUNT_MAX):
                    rows.append((min(_COUNT_MAX, cnt - s), period, vb, f, 1,
                                 (producer, j) if s == 0 else None))
            continue
        for s in range(0, n, _COUNT_MAX):
            rows.append((min(_COUNT_MAX, n - s), period, vb, f, 1, None))
    return rows


def _prune_steps(it: Item, config: AcceleratorConfig) -> list[tuple[int, int, int, int]]:
    """PRUNE rows ``(rows, n, log2m, xbytes)`` of a weight: ``xbytes`` is each row's share of
    the weight read from DRAM and its compressed copy written back (values and indices), the
    traffic SORE streams outside the DMA queues."""
    K, N, nn_, mm = it.prune
    C = config.array.cols
    eb = config.array.elem_bytes
    rows_total = K * -(-N // C)
    total = K * N * eb + K * N * nn_ // mm * (eb + 1)
    cap = ((1 << 16) - 1) // mm * mm
    log2m = int(math.log2(mm))
    out = []
    for s in range(0, rows_total, cap):
        r = min(cap, rows_total - s)
        out.append((r, nn_, log2m, total * (s + r) // rows_total - total * s // rows_total))
    return out


class _Linker:
    """Adds cross-unit semaphore edges, keeping each token queue first-in first-out."""

    def __init__(self, em: _Emitter):
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
        self.em = _Emitter(config)
        self.link = _Linker(self.em)
        self.alloc = _Alloc()
        self.tensors: dict[str, TensorRef] = {}
        offline = options.offline_schedule
        self.steps: list[list] = []
        self.dur: list[np.ndarray | None] = [None] * len(items)
        self.deps: list[list] = []
        stores: dict[str, list[int]] = {}
        self.blocks_left: dict[str, int] = {}
        for it in items:
            if it.kind == "gemm":
                it.mapping = "; ".join(f"{mappings[o.name].dataflow}/{mappings[o.name].order}"
                                       for o in it.ops)
                steps = _split_steps(_gemm_steps(it, mappings, config, self.alloc,
                                                  self.tensors))
                for op, block, _ in steps:
                    sizes = stores.setdefault(op.name, [])
                    sizes.extend(s[9][0] * s[9][1] for s in block if s[9] is not None)
                    self.blocks_left[op.name] = self.blocks_left.get(op.name, 0) + 1
            self.steps.append(steps if it.kind == "gemm" else [])
        order = {id(op): i for i, op in enumerate(workload.ops)}
        for k, it in enumerate(items):
            deps = list(it.deps)
            if it.kind == "vector":
                stream = offline and it.stream_from is not None
                rows = _vector_steps(it, config, stream, stores, order)
                if stream:
                    deps = [d for d in deps if d is not it.stream_from]
                self.steps[k] = rows
                t = np.array([r[:5] for r in rows], np.int64).reshape(-1, 5)
                self.dur[k] = pass_cycles(t[:, 0], t[:, 1], t[:, 2], t[:, 4], config)
            elif it.kind == "prune":
                rows = _prune_steps(it, config)
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

    # ---- emission of one step --------------------------------------------------------------
    def emit(self, k: int, j: int, vt_end: float = 0.0) -> None:
        """Emit step ``j`` of item ``k`` (edges only with the offline schedule)."""
        it = self.items[k]
        em = self.em
        em.cur = k
        step = self.steps[k][j]
        link = self.options.offline_schedule
        if it.kind == "gemm":
            op, block, _ = step
            first, stores = _emit_block(em, block, op)
            if link and j == 0 and self.deps[k]:
                if first < 0:
                    raise CompileError(f"internal: GEMM item {it.name!r} starts without a LOAD")
                self.link.link([self._producer(d) for d in self.deps[k]], first)
            self.store_rows.setdefault(op.name, []).extend(stores)
            self.store_vt.setdefault(op.name, []).extend([vt_end] * len(stores))
            self.blocks_left[op.name] -= 1
            if self.blocks_left[op.name] == 0:
                self.op_last[op.name] = self.store_rows[op.name][-1]
                self.op_vt[op.name] = vt_end
            return
        if it.kind == "vector":
            count, period, vb, vf, opt, wait = step
            row = em.vector(count, period, vb, vf, opt)
        else:
            rows, nn_, log2m, xbytes = step
            row = em.prune(rows, nn_, log2m, xbytes)
            wait = None
        if link:
            prods = [self._producer(d) for d in self.deps[k]] if j == 0 else []
            if wait is not None:
                prods.append(self.store_rows[wait[0]][wait[1]])
            if prods:
                self.link.link(prods, row)
        if j == len(self.steps[k]) - 1:
            self.item_last[id(it)] = row
            self.item_vt[id(it)] = vt_end

    def _producer(self, dep) -> int:
        item, op = dep
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

    def merged(self) -> None:
        """Merge the units' streams by estimated start time (module docstring)."""
        items = self.items
        streams = {
            "g": [k for k, it in enumerate(items) if it.kind == "gemm"],
            "v": [k for k, it in enumerate(items) if it.kind == "vector" and it.chain],
            "s": [k for k, it in enumerate(items) if it.kind == "prune"],
            "w": [k for k, it in enumerate(items) if it.kind == "vector" and not it.chain],
        }
        clock_of = {"g": "array", "v": "vector", "w": "vector", "s": "sore"}
        pos = {s: [0, 0] for s in streams}  # item position in the stream, step in the item
        for s, ks in streams.items():
            while pos[s][0] < len(ks) and not self.steps[ks[pos[s][0]]]:
                pos[s][0] += 1
        clock = {"array": 0.0, "vector": 0.0, "sore": 0.0}
        # the controller reaches a command only after accepting the array work before it in
        # program order: no other unit's command can start before the last emitted tile block
        anchor = 0.0

        def head(s):
            i, j = pos[s]
            return (streams[s][i], j) if i < len(streams[s]) else None

        while True:
            cands = {}
            for s in ("v", "s", "g", "w"):
                h = head(s)
                if h is None:
                    continue
                t = self.ready(*h)
                if t is not None:
                    cands[s] = max(clock[clock_of[s]], t, 0.0 if s == "g" else anchor)
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
            # (side work is paced by the anchor: one chunk per chunk-time of array progress)
            s = min(cands, key=cands.get)
            k, j = head(s)
            start = cands[s]
            end = start + self.duration(k, j)
            clock[clock_of[s]] = end
            if s == "g":
                anchor = start
            self.emit(k, j, end)
            pos[s][1] += 1
            if pos[s][1] == len(self.steps[k]):
                pos[s] = [pos[s][0] + 1, 0]
                while pos[s][0] < len(streams[s]) and not self.steps[streams[s][pos[s][0]]]:
                    pos[s][0] += 1


def compile(workload: Workload, config: AcceleratorConfig,
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
    options = options or CompileOptions()
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
                                   dataflows=options.dataflows, cache=cache)
    cache.save()
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
        table = np.asarray(em.rows, np.int64).reshape(-1, _NCOL)
    finally:
        if gc_was_enabled:
            gc.enable()
    out = CompiledProgram(
        table, np.asarray(em.item, np.int64), np.asarray(em.macs, np.int64), items,
        dram_bytes=prog.alloc.top, tensors=prog.tensors, mappings=mappings, workload=workload,
        config=config, options=options)
    out.last_store = prog.op_last
    return out


def simulate_program(program: CompiledProgram, config: AcceleratorConfig | None = None
                     ) -> Stats:
    """Time a compiled program with :func:`hwsim.run` on its command table (``check=False``:
    its vector passes are compiler annotations; :mod:`hwsim.engine`)."""
    return run(program, config or program.config, check=False).stats
