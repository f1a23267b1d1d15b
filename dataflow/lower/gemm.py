"""Lowering GEMMs onto the array: DRAM layout, tile blocks and the LOAD/GEMM/STORE protocol.

One code path serves every GEMM the machine runs: the ops of a whole model
(:func:`dataflow.compile`, with the mapping :func:`dataflow.search` chooses per op), and one
GEMM alone (:func:`compile_gemm`, behind ``satmem simulate-gemm``, SCALE-Sim topologies, the
fidelity table and the RTL tests, with the reference mapping :func:`gemm_tiling`).

A :class:`dataflow.mapping.Mapping` names the loop nest (its module docstring): ``os/a``
(output tiles, reduction chunks of ``kt``; A resident across the n loop when ``kt >= K``),
``os/b`` (all of B resident), ``ws/s`` (weight tile and A chunk per tile), ``ws/a`` (the A
chunk resident across the n loop).

DRAM layout (:func:`gemm_tensors`): A, then B (dense; or N:M along K held compressed, values
then in-group indices, ``ceil(K/M)*N`` rows each, the format of ``algorithms.nm.compress``),
then C (int32, or fp32 for an fp16 array), each 64-byte aligned. A is

- output-stationary: column-major, so a column of an A tile is contiguous; with N:M sparsity
  K is padded with zero columns to whole groups (shape ``(M_rows, ceil(K/M)*M)``), because a
  sparse tile reads each group of activations whole;
- weight-stationary, dense: row-major;
- weight-stationary, N:M (N divides M and the array rows R): blocked by reduction chunk, shape
  ``(chunks * M_rows, E * R)`` with ``E = M/N`` ACT entries per activation row, row
  ``c * M_rows + t`` holding ``A[t, c*E*R : (c+1)*E*R]`` (zero padded), so that a tile's
  activations are one contiguous LOAD.

Tile-blocked layouts (``blocked=True``; what :func:`dataflow.compile` uses by default,
``CompileOptions.tile_blocked``): every operand is stored in panels (:class:`BlockedRef`) so
that each tile's LOAD or STORE is one contiguous range of DRAM instead of 64-byte (fp16 x 32) or
128-byte (fp32 x 32) rows at the tensor's row pitch, where a power-of-two pitch puts every row
in the same one or two DRAM channels. With the RTL's DMA (``dram.dma`` ``"entry"``, a request
a cycle) a contiguous range spreads its rows over every channel's port, and the wide DMA
(``"wide"``, vcu1525's) asks for a bus word of its whole entries a request; a burst DMA (model
only) streams it in bursts of up to 4 KiB (:func:`hwsim.dram.dma_cycles`). The panels: A of output-
stationary tiles, column-major within panels of R rows (an m-block: its ``kc`` x ``mr`` tile is
contiguous); dense A of weight-stationary tiles, row-major within panels of R reduction operands
(a k-chunk); B, its indices and C, row-major within panels of C columns (an n-block). The values
and the tiles' SRAM contents are those of the row- and column-major layouts; only addresses and
strides differ.

Partial tiles at the matrix edges use LOAD's zero fill, so DRAM holds no other padding.
:func:`sparse_operands` builds the sparse layouts from dense operands.

Protocol (:class:`GemmProtocol`, semaphores 0-3, point-to-point token queues):

- a *load group* is the loads that precede one GEMM; each loaded buffer (ACT, WGT, IDX) goes
  to the half the most recent GEMM does *not* read (or beside the operands it reads, for an A
  chunk appended to a resident one); group ``p`` waits ``IN_FREE`` for the token that the last
  GEMM before group ``p - 1`` signals (every GEMM that reads the half it overwrites is then
  done); its last load signals ``LOADED``, which the GEMM waits for;
- output tile ``t`` accumulates in ACC half ``t % 2``: its first GEMM waits ``ACC_FREE`` (the
  store of tile ``t - 2`` has read that half), its last GEMM signals ``ACC_READY`` to its STORE.

Without double buffering a half is the whole buffer and one GEMM or tile is in flight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig, ConfigError, load_config, parse_nm
from hwsim.engine import Stats, run
from hwsim.program import COL, Program, TensorRef
from hwsim.trace import write_trace

from ..mapping import Mapping, OpShape, search
from .emitter import ADDR_MOD, Alloc, Emitter

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "MAX_COMMANDS",
    "MAX_FUNCTIONAL_MACS",
    "SEM_ACC_FREE",
    "SEM_ACC_READY",
    "SEM_IN_FREE",
    "SEM_LOADED",
    "GemmProtocol",
    "BlockedRef",
    "BudgetError",
    "GemmTensors",
    "check_budget",
    "compile_gemm",
    "compressed_rows",
    "emit_block",
    "estimate_commands",
    "gemm_blocks",
    "gemm_loops",
    "gemm_steps",
    "gemm_tensors",
    "gemm_tiling",
    "simulate_gemm",
    "sparse_operands",
    "ws_sparse_chunks",
]

SEM_LOADED = 0     # DMA-in -> array: the operands of the next GEMM are in place
SEM_IN_FREE = 1    # array -> DMA-in: the GEMMs reading a half of ACT/WGT/IDX are done
SEM_ACC_FREE = 2   # DMA-out -> array: an ACC half has been stored and may be overwritten
SEM_ACC_READY = 3  # array -> DMA-out: an output tile is complete in its ACC half

_ROWS_MAX = (1 << 16) - 1  # LOAD rows field
_LOAD, _GEMM, _STORE = int(isa.Opcode.LOAD), int(isa.Opcode.GEMM), int(isa.Opcode.STORE)
_BUF, _SRAM, _DRAM, _ROWS, _ELEMS, _STRIDE = (COL[k] for k in (
    "buf", "sram_addr", "dram_addr", "rows", "elems", "stride"))
_A, _B, _CA, _IDX, _K, _M, _DF, _SP, _ACCU, _N, _LOG2M = (COL[k] for k in (
    "a_addr", "b_addr", "c_addr", "idx_addr", "k", "m", "dataflow", "sparse", "accumulate", "n",
    "log2m"))
_ACT, _WGT, _IDXB, _ACC = isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.IDX, isa.Buffer.ACC
_OS, _WS = int(isa.Dataflow.OS), int(isa.Dataflow.WS)


def _check_dims(m: int, n: int, k: int) -> None:
    for name, v in (("M", m), ("N", n), ("K", k)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"GEMM dimension {name} must be a positive integer, not {v!r}")


def compressed_rows(kc: int, nm: tuple[int, int] | None) -> int:
    """Weight rows of a reduction chunk of ``kc`` operands: ``kc`` dense, ``ceil(kc/M)*N``
    N:M (a sparse tile steps through whole groups)."""
    return kc if nm is None else -(-kc // nm[1]) * nm[0]


def ws_sparse_chunks(k: int, nm: tuple[int, int], rows: int) -> int:
    """Reduction chunks of a weight-stationary N:M GEMM: ``rows`` compressed rows each."""
    return -(-compressed_rows(k, nm) // rows)


def gemm_tiling(m: int, n: int, k: int, config: AcceleratorConfig | str,
                dataflow: str = "os", nm: tuple[int, int] | None = None) -> Mapping:
    """The reference mapping of one GEMM: the largest chunks that fit half of each buffer.

    Output-stationary: ``os/a``, output tiles of R x C, the reduction cut into chunks of
    ``kt`` that fit half of ACT and WGT (with N:M, a whole number of groups whose compressed
    weights and indices fit half of WGT and IDX); A stays resident when ``kt >= K``.
    Weight-stationary: ``ws/s``, weight tiles of R (compressed) rows, activations streamed in
    chunks of ``mt`` rows that fit half of ACT (``M/N`` entries a row when sparse) and of ACC.
    Without double buffering "half" is the whole buffer.

    Raises
    ------
    ValueError
        Non-positive dimensions.
    """
    config = load_config(config)
    _check_dims(m, n, k)
    half = 2 if config.buffers.double_buffered else 1
    if dataflow == "os":
        if nm is None:
            kt = min(k, config.act_depth // half, config.wgt_depth // half, _ROWS_MAX)
        else:
            gn, gm = nm
            groups = min(config.act_depth // half // gm, config.wgt_depth // half // gn,
                         config.idx_depth // half // gn, _ROWS_MAX // gm)
            kt = min(-(-k // gm) * gm, groups * gm)
        return Mapping("os", "a", kt, config.array.rows)
    # a sparse WS activation row spans M/N ACT entries; R compressed rows cover R*M/N operands
    e = 1 if nm is None else nm[1] // nm[0]
    mt = min(m, config.act_depth // half // e, config.acc_depth // half, _ROWS_MAX)
    return Mapping("ws", "s", min(k, config.array.rows * e), mt)


@dataclass(frozen=True)
class GemmTensors:
    """Where one GEMM's operands live in DRAM (module docstring): ``bi`` holds the in-group
    indices of a sparse B (``b`` its values), None when dense."""

    a: TensorRef
    b: TensorRef
    c: TensorRef
    bi: TensorRef | None = None


@dataclass(frozen=True)
class BlockedRef(TensorRef):
    """A 2-D tensor stored tile-blocked: the *stored* matrix (the tensor itself for
    ``order="row"``, its transpose for ``"col"``) is cut into panels of ``block`` columns
    (the last one narrower), each panel row-major and the panels one after the other, so that
    a tile's rows within one panel are one contiguous range of DRAM (module docstring). No
    padding: ``nbytes`` is the tensor's."""

    block: int = 32

    def _stored(self) -> tuple[int, int]:
        return tuple(self.shape) if self.order == "row" else tuple(self.shape[::-1])

    def write(self, dram: np.ndarray, value: np.ndarray) -> None:
        v = self.stored(value)
        flat = np.concatenate([np.ascontiguousarray(v[:, j:j + self.block]).ravel()
                               for j in range(0, v.shape[1], self.block)])
        dram[self.addr:self.addr + self.nbytes] = flat.view(np.uint8)

    def read(self, dram: np.ndarray) -> np.ndarray:
        rows, cols = self._stored()
        raw = dram[self.addr:self.addr + self.nbytes].copy().view(self.np_dtype)
        out = np.empty((rows, cols), self.np_dtype)
        off = 0
        for j in range(0, cols, self.block):
            w = min(self.block, cols - j)
            out[:, j:j + w] = raw[off:off + rows * w].reshape(rows, w)
            off += rows * w
        return out if self.order == "row" else out.T.copy()


def _at(t: TensorRef, i: int, j: int) -> int:
    """Byte address of element ``(i, j)`` of ``t``'s stored matrix (row-major, or the
    transpose of a column-major tensor; panels of a :class:`BlockedRef`)."""
    eb = t.np_dtype.itemsize
    rows, cols = (t.shape if t.order == "row" else t.shape[::-1])
    if isinstance(t, BlockedRef):
        p0 = j // t.block * t.block
        return t.addr + (p0 * rows + i * min(t.block, cols - p0) + j - p0) * eb
    return t.addr + (i * cols + j) * eb


def _pitch(t: TensorRef, j: int) -> int:
    """Bytes between consecutive rows of ``t``'s stored matrix at column ``j``."""
    eb = t.np_dtype.itemsize
    cols = t.shape[1] if t.order == "row" else t.shape[0]
    if isinstance(t, BlockedRef):
        p0 = j // t.block * t.block
        return min(t.block, cols - p0) * eb
    return cols * eb


def gemm_tensors(shape: OpShape, dataflow: str, config: AcceleratorConfig,
                 alloc: Alloc, blocked: bool = False) -> GemmTensors:
    """Allocate A, B (and its indices when sparse) and C of ``shape`` (module docstring);
    ``blocked``: the tile-blocked layouts (:class:`BlockedRef`)."""
    R = config.array.rows
    M, N, K = shape.m, shape.n, shape.k
    nm = shape.sparsity
    dt, at = ("int8", "int32") if config.array.dtype == "int8" else ("fp16", "fp32")
    eb = config.array.elem_bytes
    if nm is None:
        a_shape, order = (M, K), "col" if dataflow == "os" else "row"
    elif dataflow == "os":
        a_shape, order = (M, -(-K // nm[1]) * nm[1]), "col"
    else:
        span = nm[1] // nm[0] * R
        a_shape, order = (ws_sparse_chunks(K, nm, R) * M, span), "row"
    C = config.array.cols
    # the chunk-blocked A of sparse WS tiles is contiguous per tile already
    blk_a = blocked and not (nm is not None and dataflow == "ws")

    def ref(nbytes, shp, dtype, order="row", block=C, blk=blocked):
        if blk:
            return BlockedRef(alloc(nbytes), shp, dtype, order=order, block=block)
        return TensorRef(alloc(nbytes), shp, dtype, order=order)

    # A's panels: R rows (an output-stationary m-block) or R reduction operands (a dense
    # weight-stationary k-chunk, gemm_tiling's and dataflow.search's kt)
    a = ref(a_shape[0] * a_shape[1] * eb, a_shape, dt, order, R, blk_a)
    kc_all = compressed_rows(K, nm)
    b = ref(kc_all * N * eb, (kc_all, N), dt)
    bi = None if nm is None else ref(kc_all * N, (kc_all, N), "int8")
    c = ref(M * N * 4, (M, N), at)
    return GemmTensors(a, b, c, bi)


def gemm_loops(shape: OpShape, mp: Mapping, config: AcceleratorConfig) -> tuple[tuple[str, int],
                                                                                 ...]:
    """The loops of ``shape``'s nest under ``mp``, outermost first: ``(name, iterations)`` with
    ``name`` the dimension it walks, ``"m"``, ``"n"`` or ``"k"`` (reduction chunks).

    ``os/a``: m-blocks of R rows, n-blocks of C columns, k-chunks of ``kt``; ``os/b``: m-blocks,
    n-blocks (B loaded whole by the first); ``ws/s``: n-blocks, m-chunks of ``mt`` rows,
    k-chunks; ``ws/a``: m-chunks, n-blocks, k-chunks. What :func:`gemm_blocks`'s ``select``
    picks iterations of."""
    R, C = config.array.rows, config.array.cols
    mb, nb, kb = -(-shape.m // R), -(-shape.n // C), -(-shape.k // mp.kt)
    if mp.dataflow == "os":
        return (("m", mb), ("n", nb)) if mp.order == "b" else (("m", mb), ("n", nb), ("k", kb))
    mc = -(-shape.m // mp.mt)
    return (("n", nb), ("m", mc), ("k", kb)) if mp.order == "s" else \
        (("m", mc), ("n", nb), ("k", kb))


def _picked(rng: range, sel) -> list[tuple[int, int]]:
    """``(index, value)`` of the iterations of ``rng`` that ``sel`` keeps (None: all)."""
    return list(enumerate(rng)) if sel is None else [(i, rng[i]) for i in sel]


def gemm_blocks(shape: OpShape, mp: Mapping, config: AcceleratorConfig,
                t: GemmTensors, select: dict[str, list[int]] | None = None
                ) -> Iterator[list[tuple]]:
    """The tile blocks of one GEMM under mapping ``mp``, in program order.

    A block is a list of steps, one GEMM each: ``(loads, a_off, b_off, k, m, dataflow,
    first_of_tile, last_of_tile, macs, store, span)`` with ``loads`` the load group, each load
    ``(buf, offset in the half, dram, rows, elems, stride, same_half)``, ``a_off``/``b_off``
    the GEMM's offsets in the halves it reads, ``macs`` the useful MACs, ``store``
    ``(rows, elems, dram, stride)`` of the STORE after the last step of an output tile (else None)
    and ``span`` ``(m0, m1, k0, k1)``, the rows of A and the reduction range the step reads
    (what a producer's chunks must cover before its loads, :mod:`dataflow.compiler`).
    Blocks are what :mod:`dataflow.compiler` interleaves between ops.

    ``select`` maps loop names of :func:`gemm_loops` to the (increasing) indices of the
    iterations to emit, the others all: a GEMM with loop iterations left out, every kept step
    at its own addresses, chunk offsets and first/last flags (what :mod:`dataflow.extrapolate`
    simulates).
    """
    sel = select or {}
    R, C = config.array.rows, config.array.cols
    eb = config.array.elem_bytes
    M, N, K = shape.m, shape.n, shape.k
    nm = shape.sparsity
    sparse = nm is not None
    gn, gm = nm or (1, 1)
    a, b, c, bi = t.a, t.b, t.c, t.bi
    kc_all = compressed_rows(K, nm)

    def out(mr, nc, m0, n0):  # the STORE of an output tile
        return (mr, nc, _at(c, m0, n0), _pitch(c, n0))

    def macs(rows, cols, kc):
        return rows * cols * kc * gn // gm

    def whole(kc):  # ACT entries of kc operands: a sparse tile reads whole groups
        return -(-kc // gm) * gm

    if mp.dataflow == "os" and mp.order == "b":
        block = []
        nbs = _picked(range(0, N, C), sel.get("n"))
        for mi, m0 in _picked(range(0, M, R), sel.get("m")):
            mr = min(R, M - m0)
            for j, n0 in nbs:
                nc = min(C, N - n0)
                loads = []
                if mi == 0 and j == nbs[0][0]:
                    for jj, n1 in nbs:
                        w = min(C, N - n1)
                        loads.append((_WGT, jj * kc_all, _at(b, 0, n1), kc_all, w,
                                      _pitch(b, n1), 0))
                        if sparse:
                            loads.append((_IDXB, jj * kc_all, _at(bi, 0, n1), kc_all, w,
                                          _pitch(bi, n1), 0))
                if j == 0:
                    loads.append((_ACT, 0, _at(a, 0, m0), whole(K), mr, _pitch(a, m0), 0))
                block.append((loads, 0, j * kc_all, kc_all, 0, _OS, True, True,
                              macs(mr, nc, K), out(mr, nc, m0, n0), (m0, m0 + mr, 0, K)))
        yield block
        return
    nk = -(-K // mp.kt)
    kchunks = _picked(range(0, K, mp.kt), sel.get("k"))
    if mp.dataflow == "os":
        resident = mp.kt >= K
        for _, m0 in _picked(range(0, M, R), sel.get("m")):
            mr = min(R, M - m0)
            block = []
            for _, n0 in _picked(range(0, N, C), sel.get("n")):
                nc = min(C, N - n0)
                for ci, k0 in kchunks:
                    kc = min(mp.kt, K - k0)
                    kcc = compressed_rows(kc, nm)
                    kc0 = compressed_rows(k0, nm)
                    loads = []
                    if not resident or n0 == 0:
                        loads.append((_ACT, 0, _at(a, k0, m0), whole(kc), mr, _pitch(a, m0),
                                      0))
                    loads.append((_WGT, 0, _at(b, kc0, n0), kcc, nc, _pitch(b, n0), 0))
                    if sparse:
                        loads.append((_IDXB, 0, _at(bi, kc0, n0), kcc, nc, _pitch(bi, n0), 0))
                    last = ci == nk - 1
                    store = out(mr, nc, m0, n0) if last else None
                    block.append((loads, 0, 0, kcc, 0, _OS, ci == 0, last, macs(mr, nc, kc),
                                  store, (m0, m0 + mr, k0, k0 + kc)))
            yield block
        return
    # weight-stationary: kt is R (dense) or R*M/N operands (R compressed rows), or all of K
    e_row = gm // gn
    span = e_row * R

    def ws_step(m0, mc, n0, nc, ci, k0, load_a, a_off, same):
        kc = min(mp.kt, K - k0)
        kcc = compressed_rows(kc, nm)
        kc0 = compressed_rows(k0, nm)
        loads = [(_WGT, 0, _at(b, kc0, n0), kcc, nc, _pitch(b, n0), 0)]
        if sparse:
            loads.append((_IDXB, 0, _at(bi, kc0, n0), kcc, nc, _pitch(bi, n0), 0))
        if load_a:
            if sparse:  # chunk-blocked A: the chunk's rows m0.. are contiguous, E entries each
                loads.append((_ACT, a_off, a.addr + (ci * M + m0) * span * eb, mc * e_row, R,
                              R * eb, same))
            else:
                loads.append((_ACT, a_off, _at(a, m0, k0), mc, kc, _pitch(a, k0), same))
        last = ci == nk - 1
        store = out(mc, nc, m0, n0) if last else None
        return (loads, a_off, 0, kcc, mc, _WS, ci == 0, last, macs(mc, nc, kc), store,
                (m0, m0 + mc, k0, k0 + kc))

    if mp.order == "s":
        for _, n0 in _picked(range(0, N, C), sel.get("n")):
            nc = min(C, N - n0)
            for _, m0 in _picked(range(0, M, mp.mt), sel.get("m")):
                mc = min(mp.mt, M - m0)
                yield [ws_step(m0, mc, n0, nc, ci, k0, True, 0, 0) for ci, k0 in kchunks]
        return
    for _, m0 in _picked(range(0, M, mp.mt), sel.get("m")):
        mc = min(mp.mt, M - m0)
        block = []
        for _, n0 in _picked(range(0, N, C), sel.get("n")):
            nc = min(C, N - n0)
            for ci, k0 in kchunks:
                off = ci * mc * (e_row if sparse else -(-mp.kt // R))
                block.append(ws_step(m0, mc, n0, nc, ci, k0, n0 == 0, off, ci > 0))
        yield block


EXTRAPOLATE_COMMANDS = 100_000
"""Timing mode of :func:`simulate_gemm` extrapolates a GEMM of more commands than this (about
a second to emit and time in full), unless told not to: an answer in well under a second at
any size (issue 18), marked exact or approximate with its bound (``Stats.extrapolated``)."""

MAX_COMMANDS = 4_000_000
"""Default budget of commands one program may hold: about 1 KB of memory each while it is
emitted and 8 us to emit and time (700,000 commands: 0.7 GB, 5.6 s here), so the default is
about 4 GB and half a minute. :func:`check_budget` refuses more before building anything. The
zoo's largest default runs stay below it (Pythia-70M, sequence 2048, batch 8 on vcu1525: about
1.5 M)."""


class BudgetError(ValueError):
    """Work beyond a budget (commands or MACs); the message names the option that raises it."""


def gemm_steps(shape: OpShape, mp: Mapping, config: AcceleratorConfig) -> int:
    """GEMM commands of one repetition of ``shape`` under ``mp`` (what :func:`gemm_blocks`
    yields, counted in closed form)."""
    R, C = config.array.rows, config.array.cols
    tiles_mn = -(-shape.m // R) * -(-shape.n // C)
    if mp.dataflow == "os":
        return tiles_mn if mp.order == "b" else tiles_mn * -(-shape.k // mp.kt)
    return -(-shape.n // C) * -(-shape.m // mp.mt) * -(-shape.k // mp.kt)


def estimate_commands(shape: OpShape, mp: Mapping, config: AcceleratorConfig) -> int:
    """About how many commands one repetition of ``shape`` compiles to: per GEMM command its
    loads (A, B, and indices when sparse) and a share of the stores."""
    return gemm_steps(shape, mp, config) * (4 if shape.sparsity is not None else 3)


def check_budget(commands: int, limit: int | None, what: str) -> None:
    """Raise :class:`BudgetError` when ``commands`` exceeds ``limit`` (default
    :data:`MAX_COMMANDS`; 0 means no limit), before any of it is built."""
    limit = MAX_COMMANDS if limit is None else limit
    if limit and commands > limit:
        raise BudgetError(
            f"{what} needs about {commands / 1e6:,.1f} M commands (about "
            f"{commands * 1e3 / 2**30:,.1f} GiB and {commands * 8e-6 / 60:,.1f} min to build "
            f"and time); the budget is {limit / 1e6:,.1f} M: pass --max-commands "
            f"{-(-commands // 1_000_000) * 1_000_000} (or 0, no limit) to run it anyway")


class GemmProtocol:
    """Appends GEMM steps and STOREs to an :class:`Emitter`, keeping the buffer halves and the
    double-buffering semaphores (module docstring)."""

    def __init__(self, em: Emitter, config: AcceleratorConfig):
        self.em = em
        self.depth = d = 2 if config.buffers.double_buffered else 1
        self.half = {_ACT: config.act_depth // d, _WGT: config.wgt_depth // d,
                     _IDXB: config.idx_depth // d, _ACC: config.acc_depth // d}
        self.read_half = dict.fromkeys((_ACT, _WGT, _IDXB), d - 1)
        self.groups = 0
        self.last_gemm = -1
        self.tiles = 0

    def step(self, loads, a_off, b_off, k, m, df, sparse, acc, nm, first_of_tile, last_of_tile,
             macs) -> int:
        """One GEMM and its load group (:func:`gemm_blocks`); returns the row of its first
        LOAD (-1 if none)."""
        em = self.em
        rows = em.rows
        first_load = -1
        rh = self.read_half
        if loads:
            halves = {}
            for buf, _, _, _, _, _, same in loads:
                if buf not in halves:
                    halves[buf] = rh[buf] if same else (1 - rh[buf] if self.depth == 2 else 0)
            if self.groups >= 1 and self.last_gemm >= 0:
                rows[self.last_gemm][2] |= 1 << SEM_IN_FREE
            first_load = len(rows)
            w = 1 << SEM_IN_FREE if self.groups >= self.depth else 0
            r = None
            for buf, off, dram, nrows, elems, stride, _ in loads:
                r = em.new(_LOAD, w)
                w = 0
                r[_BUF], r[_SRAM], r[_DRAM] = buf, halves[buf] * self.half[buf] + off, \
                    dram % ADDR_MOD
                r[_ROWS], r[_ELEMS], r[_STRIDE] = nrows, elems, stride
            r[2] |= 1 << SEM_LOADED
            rh.update(halves)
            self.groups += 1
        wait = 1 << SEM_LOADED if loads else 0
        if first_of_tile and self.tiles >= self.depth:
            wait |= 1 << SEM_ACC_FREE
        half = self.half
        self.last_gemm = len(rows)
        r = em.new(_GEMM, wait, (1 << SEM_ACC_READY) if last_of_tile else 0, macs)
        r[_A] = rh[_ACT] * half[_ACT] + a_off
        r[_B] = rh[_WGT] * half[_WGT] + b_off
        r[_CA] = (self.tiles % 2) * half[_ACC] if self.depth == 2 else 0
        r[_K], r[_M], r[_DF], r[_ACCU] = k, m, df, int(acc)
        if sparse:
            r[_IDX] = rh[_IDXB] * half[_IDXB] + b_off
            r[_SP], r[_N], r[_LOG2M] = 1, nm[0], int(math.log2(nm[1]))
        return first_load

    def store(self, rows: int, elems: int, dram: int, stride: int) -> int:
        """The STORE of the current output tile; returns its row."""
        c_addr = (self.tiles % 2) * self.half[_ACC] if self.depth == 2 else 0
        self.tiles += 1
        r = self.em.new(_STORE, 1 << SEM_ACC_READY, 1 << SEM_ACC_FREE)
        r[_BUF], r[_SRAM], r[_DRAM] = _ACC, c_addr, dram % ADDR_MOD
        r[_ROWS], r[_ELEMS], r[_STRIDE] = rows, elems, stride
        return len(self.em.rows) - 1


def emit_block(proto: GemmProtocol, block: list[tuple], nm: tuple[int, int] | None,
               n: int) -> tuple[int, list[int]]:
    """Emit one tile block of a GEMM with pattern ``nm`` and ``n`` output columns:
    ``(first LOAD row or -1, its STORE rows)``."""
    sparse = nm is not None
    nm = nm or (0, 1)
    first_in = -1
    stores = []
    for loads, a_off, b_off, k, m, df, first, last, macs, store, *_ in block:
        fl = proto.step(loads, a_off, b_off, k, m, df, sparse, not first, nm, first, last, macs)
        if first_in < 0:
            first_in = fl
        if store is not None:
            rows, elems, dram, stride = store
            stores.append(proto.store(rows, elems, dram, stride))
    return first_in, stores


def compile_gemm(m: int, n: int, k: int, config: AcceleratorConfig | str, *,
                 dataflow: str = "os", sparsity: tuple[int, int] | None = None,
                 mapping: Mapping | None = None, max_commands: int | None = None,
                 blocked: bool = False, select: dict[str, list[int]] | None = None) -> Program:
    """A program computing C = A·B (int8 -> int32 or fp16 -> fp32, by ``config.array.dtype``).

    The tensors are ``A``, ``B`` and ``C``; with ``sparsity=(N, M)`` B is N:M along K and held
    compressed as ``Bv`` (values) and ``Bi`` (in-group indices). Their DRAM layouts are the
    module docstring's (:func:`sparse_operands` builds the sparse ones); sparse tiles are
    :mod:`hwsim.sparse_tile`'s.

    Parameters
    ----------
    m, n, k : int
        GEMM shape.
    config : AcceleratorConfig
    dataflow : {"os", "ws"}
    sparsity : tuple of int, optional
        ``(N, M)`` pattern of B along K.
    mapping : Mapping, optional
        The loop nest and chunks (default :func:`gemm_tiling`'s); any mapping
        :func:`dataflow.search` can return for this shape, with ``mapping.dataflow ==
        dataflow``.
    max_commands : int, optional
        Refuse a program of more commands (estimated first; default :data:`MAX_COMMANDS`,
        0: no limit).
    blocked : bool
        Tile-blocked DRAM layouts (module docstring); the tensors' ``write`` and ``read``
        take and give the logical matrices either way.
    select : dict, optional
        Only these iterations of the loops of :func:`gemm_loops` (:func:`gemm_blocks`): a
        program for timing, whose output leaves the skipped tiles unwritten.

    Raises
    ------
    ValueError
        Non-positive dimensions, a dataflow or pattern the config does not support, or a
        mapping of another dataflow.
    BudgetError
        More commands than ``max_commands``.
    """
    config = load_config(config)
    _check_dims(m, n, k)
    if sparsity is not None:
        sparsity = tuple(sparsity)
        if sparsity not in config.array.nm_patterns:
            raise ValueError(f"pattern {sparsity[0]}:{sparsity[1]} is not supported by config "
                             f"{config.name!r} {config.array.patterns}")
        if dataflow == "ws" and (sparsity[1] % sparsity[0] or config.array.rows % sparsity[0]):
            raise ValueError(f"weight-stationary {sparsity[0]}:{sparsity[1]} tiles need N to "
                             f"divide M and the {config.array.rows} array rows")
    if dataflow not in config.array.dataflows:
        raise ValueError(f"dataflow {dataflow!r} is not supported by config {config.name!r} "
                         f"(supported: {config.array.dataflows})")
    mp = mapping or gemm_tiling(m, n, k, config, dataflow, sparsity)
    if mp.dataflow != dataflow:
        raise ValueError(f"mapping {mp.dataflow}/{mp.order} is not of dataflow {dataflow!r}")
    shape = OpShape(m, n, k, sparsity)
    estimate = estimate_commands(shape, mp, config)
    for name, count in gemm_loops(shape, mp, config):
        if select and name in select:
            estimate = estimate * len(select[name]) // count
    check_budget(estimate, max_commands, f"GEMM {m}x{n}x{k} on {config.name} ({dataflow})")
    alloc = Alloc()
    t = gemm_tensors(shape, dataflow, config, alloc, blocked)
    em = Emitter()
    proto = GemmProtocol(em, config)
    for block in gemm_blocks(shape, mp, config, t, select):
        emit_block(proto, block, sparsity, n)
    if sparsity is None:
        tensors, inputs = {"A": t.a, "B": t.b, "C": t.c}, ("A", "B")
    else:
        tensors, inputs = {"A": t.a, "Bv": t.b, "Bi": t.bi, "C": t.c}, ("A", "Bv", "Bi")
    return Program(table=em.table(), dram_bytes=alloc.top, tensors=tensors, inputs=inputs,
                   outputs=("C",))


MAX_FUNCTIONAL_MACS = 2_000_000_000
"""Default budget of MACs a functional (per-cycle, with values) GEMM may do: a few minutes at the
per-cycle kernels' tens of millions of PE-cycles a second."""


def simulate_gemm(m: int, n: int, k: int, config: AcceleratorConfig | str, *,
                  sparsity: str | None = None, dataflow: str = "ws",
                  mode: str = "timing", trace: str | None = None,
                  max_commands: int | None = None, max_macs: int | None = None,
                  mapping: Mapping | str | None = None,
                  extrapolate: bool | None = None) -> Stats:
    """Cycles, traffic and energy of one GEMM C[M,N] = A[M,K]·B[K,N] on ``config``: the
    :func:`compile_gemm` program run by :func:`hwsim.run`, or in timing mode, for a program
    of more than :data:`EXTRAPOLATE_COMMANDS` commands, its statistics extrapolated from
    truncated programs
    (:mod:`dataflow.extrapolate`; ``Stats.extrapolated`` says how, and whether exactly).

    Parameters
    ----------
    m, n, k : int
        GEMM shape.
    config : AcceleratorConfig or str
        A config, preset name or YAML path.
    sparsity : str, optional
        ``"N:M"`` pattern of B along K; must be one the config supports. Sparse GEMMs run
        N:M tiles in either dataflow (:mod:`hwsim.sparse_tile`).
    dataflow : {"ws", "os"}
    mode : {"timing", "functional"}
        Functional mode runs random operands through the per-cycle model.
    trace : str, optional
        Write a per-command trace (CSV, :mod:`hwsim.trace`) to this path.
    max_commands : int, optional
        The program's command budget (:func:`compile_gemm`); in timing mode a GEMM over it is
        extrapolated instead, unless ``extrapolate`` is False.
    max_macs : int, optional
        Functional mode's budget of MACs (default :data:`MAX_FUNCTIONAL_MACS`, 0: none).
    mapping : Mapping or "search", optional
        The loop nest (default :func:`gemm_tiling`'s, what SCALE-Sim comparisons use);
        ``"search"``: the mapping :func:`dataflow.search` picks in ``dataflow``, in the
        tile-blocked layouts, as the compiler does for a model's GEMMs.
    extrapolate : bool, optional
        Timing mode: True, always extrapolate the long loops; False, never (a program over
        the budget is refused); None (default), when the program would exceed
        :data:`EXTRAPOLATE_COMMANDS` or ``max_commands``, whichever is smaller (with a
        ``trace``, only over ``max_commands``, which then refuses; ``max_commands=0``: never).

    Raises
    ------
    ConfigError, ValueError
        Unknown preset, unsupported pattern or dataflow, bad shape.
    BudgetError
        Work beyond a budget, before any is done; a trace of an extrapolated GEMM.
    """
    cfg = load_config(config)
    nm = None
    if sparsity is not None:
        nm = parse_nm(sparsity, "sparsity")
        if not cfg.supports_pattern(nm):
            raise ConfigError("sparsity", sparsity, f"a pattern of config {cfg.name!r}: "
                              f"{cfg.array.patterns}")
    if mode == "functional":
        limit = MAX_FUNCTIONAL_MACS if max_macs is None else max_macs
        if limit and m * n * k > limit:
            raise BudgetError(
                f"a functional GEMM {m}x{n}x{k} does {m * n * k / 1e9:,.1f} G MACs through the "
                f"per-cycle model (hours at tens of millions a second); the budget is "
                f"{limit / 1e9:,.1f} G: use --mode timing, or pass --max-macs 0 to run it")
    blocked = False
    if isinstance(mapping, str):
        if mapping != "search":
            raise ValueError(f"mapping must be a Mapping or 'search', not {mapping!r}")
        # the compiler's mapping and its tile-blocked layouts (CompileOptions.tile_blocked)
        blocked = True
        mapping = search(OpShape(m, n, k, nm), cfg, dataflows=(dataflow,), blocked=True)
    # MACs the array performs: a sparse GEMM multiplies only the kept weights
    macs = m * n * compressed_rows(k, nm)
    if mode == "timing" and extrapolate is not False:
        mp = mapping or gemm_tiling(m, n, k, cfg, dataflow, nm)
        limit = MAX_COMMANDS if max_commands is None else max_commands
        commands = estimate_commands(OpShape(m, n, k, nm), mp, cfg)
        # a trace needs every command: simulated in full up to the budget (0: no budget)
        auto = (limit != 0 and commands > limit) if trace is not None else \
            (limit != 0 and commands > min(limit, EXTRAPOLATE_COMMANDS))
        if extrapolate or auto:
            if trace is not None:
                raise BudgetError(
                    f"GEMM {m}x{n}x{k} is over the command budget and timed by extrapolation, "
                    "which has no per-command trace: pass --max-commands 0 to simulate and "
                    "trace every command")
            from ..extrapolate import gemm_stats  # imports this module

            return gemm_stats(m, n, k, cfg, dataflow=dataflow, sparsity=nm, mapping=mp,
                              macs=macs, blocked=blocked)
    prog = compile_gemm(m, n, k, cfg, dataflow=dataflow, sparsity=nm, max_commands=max_commands,
                        mapping=mapping, blocked=blocked)
    inputs = None
    if mode == "functional":
        rng = np.random.default_rng(0)
        a = rng.integers(-128, 128, (m, k))
        b = rng.integers(-128, 128, (k, n))
        inputs = {"A": a, "B": b} if nm is None else sparse_operands(
            a, b, *nm, ws_rows=cfg.array.rows if dataflow == "ws" else None)
    stats = run(prog, cfg, mode, inputs=inputs, macs=macs).stats
    if trace is not None:
        write_trace(prog, stats, trace)
    return stats


def sparse_operands(a: np.ndarray, b: np.ndarray, n: int, m: int, *,
                    ws_rows: int | None = None) -> dict[str, np.ndarray]:
    """Inputs of a sparse :func:`compile_gemm` program from dense A[M,K] and B[K,N].

    B is pruned to N:M along K (the ``n`` largest ``|b|`` of each group, lower index first on
    ties) and compressed to values ``Bv`` and in-group indices ``Bi`` (increasing within a
    group, the format of ``algorithms.nm.compress``); A and B are zero-padded along K to whole
    groups. ``B`` in the result is the pruned dense B (padded), the reference operand, and
    ``A_dense`` the padded dense A. With ``ws_rows`` (the array rows R), ``A`` is in the
    chunk-blocked layout of a weight-stationary program (module docstring); otherwise it is
    ``A_dense``.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"A{a.shape} and B{b.shape} are not the operands of one GEMM")
    k = a.shape[1]
    kp = -(-k // m) * m
    ap = np.zeros((a.shape[0], kp), a.dtype)
    ap[:, :k] = a
    bp = np.zeros((kp, b.shape[1]), b.dtype)
    bp[:k] = b
    groups = bp.reshape(kp // m, m, -1)
    order = np.argsort(-np.abs(groups.astype(np.float64)), axis=1, kind="stable")[:, :n]
    idx = np.sort(order, axis=1)
    vals = np.take_along_axis(groups, idx, axis=1)
    pruned = np.zeros_like(groups)
    np.put_along_axis(pruned, idx, vals, axis=1)
    out = {"A": ap, "A_dense": ap, "Bv": vals.reshape(-1, b.shape[1]),
           "Bi": idx.reshape(-1, b.shape[1]).astype(np.uint8), "B": pruned.reshape(kp, -1)}
    if ws_rows is not None:
        span = m // n * ws_rows
        chunks = ws_sparse_chunks(k, (n, m), ws_rows)
        wide = np.zeros((a.shape[0], chunks * span), a.dtype)
        wide[:, :kp] = ap
        out["A"] = wide.reshape(a.shape[0], chunks, span).transpose(1, 0, 2).reshape(-1, span)
    return out
