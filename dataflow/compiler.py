"""``compile(workload, config, options) -> Program``: a whole training step as machine commands.

Every GEMM op becomes LOAD/GEMM/STORE commands with the double-buffering semaphore protocol of
:mod:`hwsim.gemm` (semaphores 0-3), generalised to tiles whose operands stay resident:

- a *load group* is the loads that precede one GEMM; each loaded buffer (ACT, WGT, IDX) goes
  to the half the most recent GEMM does *not* read; group ``p`` waits ``IN_FREE`` for the
  token that the last GEMM before group ``p - 1`` signals (all GEMMs that read the half it
  overwrites are then done); its last load signals ``LOADED``;
- output tile ``t`` accumulates in ACC half ``t % 2``: its first GEMM waits ``ACC_FREE`` (store
  of tile ``t - 2`` done), its last GEMM signals ``ACC_READY`` to its STORE.

Across ops, semaphores 4-7 carry data dependencies (with ``offline_schedule``): 4 DMA-out ->
DMA-in (a GEMM's output read by the next GEMM), 5 DMA-out -> vector, 6 vector -> DMA-in,
7 SORE -> DMA-in (online pruning) or vector -> SORE (pre-generation after the update). An
edge is only emitted where the in-order units do not already imply it, so the token queues
stay first-in first-out. Without ``offline_schedule`` a SYNC separates consecutive items.

Vector ops (norms, activations, softmax, col2im, loss) and optimizer updates are UPDATE
commands on the vector engine, and weight pruning is PRUNE on SORE; :func:`hwsim.run` does not
execute those yet, so programs that contain them (and sparse GEMMs) are timed by
:func:`hwsim.fast_timing.simulate_table`, which uses the same scheduler. With
``CompileOptions(vector_ops=False)`` a dense workload compiles to commands ``hwsim.run``
accepts, and both give the same cycles. The DRAM traffic of vector ops and of SORE's weight
reads and compressed-copy writes is counted in :attr:`CompiledProgram.extra_bytes`; it does not
occupy the DMA queues (a known simplification).

DRAM layout: per GEMM op and repetition, A (column-major for OS, row-major for WS), B (dense,
or compressed values then indices), C (accumulator type), 64-byte aligned, one after the other.
Addresses wrap at 4 GiB (the LOAD field width) for workloads larger than that; timing does not
depend on addresses (the fixed DRAM model), functional runs need programs below 4 GiB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.fast_timing import COL, COLUMNS, FastStats, simulate_table
from hwsim.program import Program, TensorRef

from .mapping import Mapping, MappingCache, OpShape, search
from .optimizations import CompileOptions, vector_profile
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


class CompileError(ValueError):
    """A workload that cannot be compiled for a config (names the op, pattern and config)."""


@dataclass
class Item:
    """One schedulable unit of the program: a GEMM group, a vector op or a prune.

    Attributes
    ----------
    kind : {"gemm", "vector", "prune"}
    ops : list of Op
        The workload ops (a GEMM group holds several when interleaved).
    name, layer, pass_ : str
    mapping : str
        The mappings of its GEMM ops, for reports.
    """

    kind: str
    ops: list
    name: str
    layer: str
    pass_: str
    mapping: str = ""
    deps: list = field(default_factory=list)
    prune: tuple | None = None  # (K, N, n, m) of a weight to prune


class CompiledProgram(Program):
    """A :class:`hwsim.Program` whose commands are held as an integer table.

    ``commands`` (ISA objects) is built from :attr:`table` on first access. Extra attributes:
    ``table`` (one row per command, columns :data:`hwsim.fast_timing.COLUMNS`), ``item_of``
    (the :class:`Item` index of each command), ``useful_macs`` (per command), ``items``,
    ``extra_bytes`` (DRAM bytes moved outside DMA commands: ``vector``, ``sore``),
    ``sore_compares``, ``vector_flops``, ``mappings`` (op name -> :class:`Mapping`).
    """

    def __init__(self, table, item_of, useful_macs, items, *, dram_bytes, tensors, inputs,
                 outputs, extra_bytes, sore_compares, vector_flops, mappings, workload, config,
                 options):
        self._commands = None
        self.table, self.item_of, self.useful_macs, self.items = table, item_of, useful_macs, items
        self.extra_bytes, self.sore_compares, self.vector_flops = (extra_bytes, sore_compares,
                                                                   vector_flops)
        self.mappings, self.workload, self.config, self.options = (mappings, workload, config,
                                                                   options)
        super().__init__(None, dram_bytes, tensors, inputs, outputs)

    @property
    def commands(self) -> list[isa.Command]:
        if self._commands is None:
            self._commands = table_to_commands(self.table)
        return self._commands

    @commands.setter
    def commands(self, value) -> None:
        self._commands = value

    def __len__(self) -> int:
        return len(self.table)


def table_to_commands(table: np.ndarray) -> list[isa.Command]:
    """ISA command objects of a command table."""
    out = []
    names = {int(op): isa._REGISTRY[op] for op in isa.Opcode}
    for row in table.tolist():
        cls = names[row[0]]
        kw = {"wait": row[1], "signal": row[2]}
        for fname, _ in cls.FIELDS:
            kw[fname] = row[COL[fname]] if fname in COL else row[COL[_ALIAS[fname]]]
        out.append(cls(**kw))
    return out


_ALIAS = {"src_buf": "buf", "src_addr": "sram_addr", "dst_addr": "a_addr", "groups": "elems",
          "axis": "accumulate", "w_addr": "a_addr", "g_addr": "b_addr", "v_addr": "c_addr",
          "out_addr": "idx_addr", "optimizer": "dataflow", "hp_base": "sparse"}


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
                     isa.Buffer.IDX: config.wgt_depth // d, isa.Buffer.ACC: config.acc_depth // d}
        self.read_half = dict.fromkeys((isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.IDX), d - 1)
        self.groups = 0
        self.last_gemm = -1
        self.tiles = 0

    def _row(self, opcode: int, wait: int = 0, signal: int = 0, macs: int = 0, **f) -> int:
        r = [0] * _NCOL
        r[0], r[1], r[2] = opcode, wait, signal
        for k, v in f.items():
            r[COL[k]] = v
        self.rows.append(r)
        self.item.append(self.cur)
        self.macs.append(macs)
        return len(self.rows) - 1

    def step(self, loads, a_off, b_off, k, m, df, sparse, acc, nm, first_of_tile, last_of_tile,
             macs) -> None:
        """One GEMM and its load group. ``loads``: (buf, offset, dram, rows, elems, stride,
        same_half)."""
        if loads:
            halves = {}
            for buf, _, _, _, _, _, same in loads:
                if buf not in halves:
                    halves[buf] = self.read_half[buf] if same else \
                        (1 - self.read_half[buf] if self.depth == 2 else 0)
            if self.groups >= 1 and self.last_gemm >= 0:
                self.rows[self.last_gemm][2] |= 1 << SEM_IN_FREE
            first = True
            idx = []
            for buf, off, dram, rows, elems, stride, _ in loads:
                w = 1 << SEM_IN_FREE if first and self.groups >= self.depth else 0
                idx.append(self._row(isa.Opcode.LOAD, wait=w, buf=buf,
                                     sram_addr=halves[buf] * self.half[buf] + off,
                                     dram_addr=dram % _ADDR_MOD, rows=rows, elems=elems,
                                     stride=stride))
                first = False
            self.rows[idx[-1]][2] |= 1 << SEM_LOADED
            self.read_half.update(halves)
            self.groups += 1
        wait = 1 << SEM_LOADED if loads else 0
        if first_of_tile and self.tiles >= self.depth:
            wait |= 1 << SEM_ACC_FREE
        c_addr = (self.tiles % 2) * self.half[isa.Buffer.ACC] if self.depth == 2 else 0
        rh = self.read_half
        n_, log2m = (nm[0], int(math.log2(nm[1]))) if sparse else (0, 0)
        self.last_gemm = self._row(
            isa.Opcode.GEMM, wait=wait, signal=(1 << SEM_ACC_READY) if last_of_tile else 0,
            macs=macs, a_addr=rh[isa.Buffer.ACT] * self.half[isa.Buffer.ACT] + a_off,
            b_addr=rh[isa.Buffer.WGT] * self.half[isa.Buffer.WGT] + b_off, c_addr=c_addr,
            idx_addr=(rh[isa.Buffer.IDX] * self.half[isa.Buffer.IDX] + b_off) if sparse else 0,
            k=k, m=m, dataflow=df, sparse=int(sparse), accumulate=int(acc), n=n_, log2m=log2m)

    def store(self, rows: int, elems: int, dram: int, stride: int) -> int:
        c_addr = (self.tiles % 2) * self.half[isa.Buffer.ACC] if self.depth == 2 else 0
        self.tiles += 1
        return self._row(isa.Opcode.STORE, wait=1 << SEM_ACC_READY, signal=1 << SEM_ACC_FREE,
                         buf=isa.Buffer.ACC, sram_addr=c_addr, dram_addr=dram % _ADDR_MOD,
                         rows=rows, elems=elems, stride=stride)

    def vector(self, op_type: str, elements: int, flops_scale: int = 1) -> tuple[int, int]:
        vb, vf = vector_profile(op_type)
        for start in range(0, elements, _COUNT_MAX):
            cnt = min(_COUNT_MAX, elements - start)
            self._row(isa.Opcode.UPDATE, count=cnt, vbytes=vb, vflops=vf * flops_scale,
                      dataflow=1)
        return elements * vb, elements * vf

    def prune(self, K: int, N: int, nn_: int, mm: int) -> int:
        rows_total = K * -(-N // self.c.array.cols)
        cap = ((1 << 16) - 1) // mm * mm
        for start in range(0, rows_total, cap):
            self._row(isa.Opcode.PRUNE, buf=isa.Buffer.WGT, rows=min(cap, rows_total - start),
                      elems=1, n=nn_, log2m=int(math.log2(mm)), accumulate=1)
        return rows_total * self.c.array.cols * nn_

    def sync(self) -> None:
        self._row(isa.Opcode.SYNC)


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
    a = TensorRef(alloc(M * K * eb), (M, K), dt, order="col" if mp.dataflow == "os" else "row")
    b = TensorRef(alloc(Kc_all * N * eb), (Kc_all, N), dt)
    bidx = alloc(Kc_all * N) if sparse else 0
    c = TensorRef(alloc(M * N * 4), (M, N), at)
    suffix = "" if op.repeat == 1 else f"[{rep}]"
    tensors[f"{op.name}{suffix}.A"] = a
    tensors[f"{op.name}{suffix}.B"] = b
    tensors[f"{op.name}{suffix}.C"] = c
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
        epr = -(-kc // R)
        loads = [(WGT, 0, b.addr + (kc0 * N + n0) * eb, kcc, nc, N * eb, 0)]
        if sparse:
            loads.append((IDX, 0, bidx + kc0 * N + n0, kcc, nc, N, 0))
        if load_a:
            if sparse:  # tile-blocked activation layout (see the mapping docstring)
                loads.append((ACT, a_off, a.addr + (m0 * K + k0 * mc) * eb, mc * epr, R,
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
                off = ci * mc * -(-mp.kt // R)
                block.append(ws_step(m0, mc, n0, nc, ci, k0, n0 == 0, off, ci > 0))
        yield block


def _emit_block(em: _Emitter, block, op: Op) -> int:
    """Emit one tile block of ``op``; returns the index of its last STORE (or -1)."""
    sparse = op.sparsity is not None
    nm = op.sparsity or (0, 1)
    last_store = -1
    for loads, a_off, b_off, k, m, df, first, last, macs, store in block:
        em.step(loads, a_off, b_off, k, m, df, sparse, not first, nm, first, last, macs)
        if store is not None:
            rows, elems, dram = store
            last_store = em.store(rows, elems, dram, op.n * 4)
    return last_store


def _plan(workload: Workload, options: CompileOptions) -> list[Item]:
    """Order the ops into items and record their dependencies (see the module docstring)."""
    offline = options.offline_schedule
    main = [op for op in workload.ops if op.kind != "update"]
    updates = [op for op in workload.ops if op.kind == "update"]
    if not options.vector_ops or options.fuse_elementwise:
        main = [op for op in main if op.kind == "gemm"]
    if not options.vector_ops:
        updates = []
    bwd = ("bgrad", "wgrad")
    # 1. groups: interleave pairs of independent backward GEMMs of a layer
    groups: list[list[Op]] = []
    i = 0
    while i < len(main):
        op = main[i]
        if options.interleave and op.kind == "gemm" and op.pass_ in bwd:
            j = i + 1
            between = []
            while j < len(main) and main[j].kind == "vector" and main[j].op == "col2im" \
                    and main[j].layer == op.layer:
                between.append(main[j])
                j += 1
            if j < len(main) and main[j].kind == "gemm" and main[j].layer == op.layer \
                    and main[j].pass_ in bwd:
                groups.append([op, main[j]])
                groups.extend([v] for v in between)
                i = j + 1
                continue
        groups.append([op])
        i += 1
    # 2. items with chain / side dependencies
    items: list[Item] = []
    last_chain = None
    chain_dep: dict[int, int | None] = {}
    first_bwd_dep: dict[str, int | None] = {}
    for g in groups:
        kind = "gemm" if g[0].kind == "gemm" else "vector"
        name = g[0].name if len(g) == 1 else " + ".join(o.name for o in g)
        passes = {o.pass_ for o in g}
        it = Item(kind, g, name, g[0].layer, "/".join(sorted(passes)))
        idx = len(items)
        side = passes == {"wgrad"}
        if side:
            dep = first_bwd_dep.get(g[0].layer, chain_dep.get(last_chain) if last_chain
                                    is not None else None)
        else:
            dep = last_chain
            chain_dep[idx] = dep
            if passes & set(bwd):
                first_bwd_dep.setdefault(g[0].layer, dep)
            last_chain = idx
        if dep is not None:
            it.deps.append(dep)
        items.append(it)
    # 3. pruning and updates
    if not options.vector_ops:
        return _resolve(items)
    sparse_w = {}  # layer -> [(K, N, n, m) for the forward copy, for the backward copy]
    for op in workload.gemms():
        if op.sparsity is not None and op.pass_ in ("fwd", "bgrad"):
            sparse_w.setdefault(op.layer, {})[op.pass_] = (op.k, op.n) + tuple(op.sparsity)
    order: list[Item] = []
    if not options.pregenerate:
        # online: a PRUNE item right before (offline schedule: one GEMM item before) each
        # GEMM item that reads a sparse weight
        gemm_pos = [k for k, it in enumerate(items) if it.kind == "gemm"]
        prunes_before: dict[int, list[Item]] = {}
        for gi, k in enumerate(gemm_pos):
            for op in items[k].ops:
                if op.sparsity is not None:
                    p = Item("prune", [], f"{op.name}.prune", op.layer, op.pass_,
                             prune=(op.k, op.n) + tuple(op.sparsity))
                    items[k].deps.append(p)
                    at = gemm_pos[gi - 1] if offline and gi > 0 else k
                    prunes_before.setdefault(at, []).append(p)
        for k, it in enumerate(items):
            order.extend(prunes_before.get(k, []))
            order.append(it)
    else:
        order = list(items)

    def update_items(op: Op, deps: list) -> list[Item]:
        u = Item("vector", [op], op.name, op.layer, "update", deps=list(deps))
        out = [u]
        if options.pregenerate and op.name == f"{op.layer}.weight.update" \
                and op.layer in sparse_w:
            for pass_, shape in sorted(sparse_w[op.layer].items()):
                out.append(Item("prune", [], f"{op.layer}.{pass_}.pregen", op.layer, "update",
                                deps=[u], prune=shape))
        return out

    if not offline:
        for op in updates:
            order.extend(update_items(op, []))
        return _resolve(order)
    # offline: each update goes in before the first chain GEMM item after its layer's wgrad
    wgrad_items: dict[str, list[Item]] = {}
    for it in order:
        if it.kind != "prune" and any(o.pass_ == "wgrad" for o in it.ops):
            wgrad_items.setdefault(it.layer, []).append(it)
    pending: dict[int, list[Op]] = {}
    tail: list[Op] = []
    pos = {id(it): k for k, it in enumerate(order)}
    for op in updates:
        ws = wgrad_items.get(op.layer)
        if not ws:
            tail.append(op)
            continue
        k = pos[id(ws[-1])] + 1
        while k < len(order) and not (order[k].kind == "gemm" and order[k].pass_ != "wgrad"):
            k += 1
        pending.setdefault(k, []).append(op)
    final: list[Item] = []
    for k in range(len(order) + 1):
        for op in pending.get(k, []):
            final.extend(update_items(op, wgrad_items[op.layer]))
        if k < len(order):
            final.append(order[k])
    for op in tail:
        final.extend(update_items(op, []))
    return _resolve(final)


def _resolve(order: list[Item]) -> list[Item]:
    """Replace item-index dependencies by item objects (prunes and updates hold objects)."""
    base = [it for it in order if it.kind != "prune" and it.pass_ != "update"]
    for it in order:
        it.deps = [base_index_item(base, d) if isinstance(d, int) else d for d in it.deps]
    return order


def base_index_item(base: list[Item], d: int) -> Item:
    return base[d]


_OUT_UNIT = {"gemm": isa.Unit.DMA_OUT, "vector": isa.Unit.VECTOR, "prune": isa.Unit.SORE}
_IN_UNIT = {"gemm": isa.Unit.DMA_IN, "vector": isa.Unit.VECTOR, "prune": isa.Unit.SORE}


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
    items = _plan(workload, options)
    em = _Emitter(config)
    alloc = _Alloc()
    tensors: dict[str, TensorRef] = {}
    extra = {"vector": 0, "sore": 0}
    compares = flops = 0
    first_in: dict[int, int] = {}
    last_out: dict[int, int] = {}
    last_consumed = dict.fromkeys(range(4, 8), -1)
    eb = config.array.elem_bytes
    index = {id(x): j for j, x in enumerate(items)}
    for k, it in enumerate(items):
        em.cur = k
        if not options.offline_schedule and k:
            em.sync()
        start = len(em.rows)
        if it.kind == "gemm":
            it.mapping = "; ".join(f"{mappings[o.name].dataflow}/{mappings[o.name].order}"
                                   for o in it.ops)
            streams = []
            for op in it.ops:
                mp = mappings[op.name]
                blocks = [b for r in range(op.repeat)
                          for b in _blocks(op, mp, config, alloc, tensors, r)]
                cost = mp.cycles * op.repeat / max(1, len(blocks))
                streams.append((op, blocks, cost))
            last = -1
            if len(streams) == 1:
                op, blocks, _ = streams[0]
                for b in blocks:
                    last = max(last, _emit_block(em, b, op))
            else:
                # proportional merge: the stream that is least far along goes next
                pos = [0] * len(streams)
                done = [0.0] * len(streams)
                total = [max(1e-9, c * len(b)) for _, b, c in streams]
                while any(p < len(s[1]) for p, s in zip(pos, streams, strict=True)):
                    j = min((x for x in range(len(streams)) if pos[x] < len(streams[x][1])),
                            key=lambda x: done[x] / total[x])
                    op, blocks, cost = streams[j]
                    last = max(last, _emit_block(em, blocks[pos[j]], op))
                    pos[j] += 1
                    done[j] += cost
            last_out[k] = last
        elif it.kind == "vector":
            op = it.ops[0]
            b, f = em.vector(op.op, max(1, op.elements))
            extra["vector"] += b
            flops += f
            last_out[k] = len(em.rows) - 1
        else:
            K, N, nn_, mm = it.prune
            compares += em.prune(K, N, nn_, mm)
            extra["sore"] += K * N * eb + K * N * nn_ // mm * (eb + 1)
            last_out[k] = len(em.rows) - 1
        unit_in = _IN_UNIT[it.kind]
        for r in range(start, len(em.rows)):
            if _unit(em.rows[r][0]) == unit_in:
                first_in[k] = r
                break
        if options.offline_schedule and it.deps and k in first_in:
            best: dict[int, int] = {}
            for d in it.deps:
                j = index[id(d)]
                if j not in last_out or last_out[j] < 0:
                    continue
                pu, cu = _OUT_UNIT[items[j].kind], unit_in
                if pu == cu:
                    continue
                sem = _EDGE_SEM[(pu, cu)]
                best[sem] = max(best.get(sem, -1), last_out[j])
            for sem, prod in best.items():
                if prod <= last_consumed[sem]:
                    continue  # implied by an earlier wait of the in-order consumer unit
                em.rows[prod][2] |= 1 << sem
                em.rows[first_in[k]][1] |= 1 << sem
                last_consumed[sem] = prod
    table = np.asarray(em.rows, np.int64).reshape(-1, _NCOL)
    return CompiledProgram(
        table, np.asarray(em.item, np.int64), np.asarray(em.macs, np.int64), items,
        dram_bytes=alloc.top, tensors=tensors, inputs=(), outputs=(), extra_bytes=extra,
        sore_compares=compares, vector_flops=flops, mappings=mappings, workload=workload,
        config=config, options=options)


def _unit(opcode: int) -> int:
    return int(isa._REGISTRY[isa.Opcode(opcode)].UNIT)


def simulate_program(program: CompiledProgram, config: AcceleratorConfig | None = None
                     ) -> FastStats:
    """Time a compiled program with :func:`hwsim.fast_timing.simulate_table`."""
    return simulate_table(program.table, config or program.config)

