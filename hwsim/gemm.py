"""Lowering one GEMM onto the array: tiling, DRAM layout and the LOAD/GEMM/STORE sequence.

This is the reference lowering behind :func:`hwsim.simulate_gemm`; the dataflow compiler
(``dataflow``) chooses tilings per op and emits the same command patterns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import isa
from .config import AcceleratorConfig
from .program import Program, TensorRef

__all__ = ["GemmTiling", "compile_gemm", "gemm_tiling", "sparse_operands"]


@dataclass(frozen=True)
class GemmTiling:
    """How C[M,N] = A[M,K]·B[K,N] is cut into array tiles.

    Output-stationary: output tiles of ``rows x cols``, the reduction cut into chunks of ``kt``
    steps that fit one half of the double-buffered ACT and WGT buffers; when the whole reduction
    fits (``kt == K``) the A tile stays resident while B tiles stream past it.
    Weight-stationary: weight tiles of ``rows`` (reduction) x ``cols``, activations streamed in
    chunks of ``mt`` rows that fit half of the ACT and ACC buffers.
    """

    m: int
    n: int
    k: int
    rows: int
    cols: int
    kt: int
    mt: int
    dataflow: str
    nm: tuple[int, int] | None = None

    @property
    def a_resident(self) -> bool:
        return self.dataflow == "os" and self.kt >= self.k


def _check_dims(m: int, n: int, k: int) -> None:
    for name, v in (("M", m), ("N", n), ("K", k)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"GEMM dimension {name} must be a positive integer, not {v!r}")


def gemm_tiling(m: int, n: int, k: int, config: AcceleratorConfig,
                dataflow: str = "os", nm: tuple[int, int] | None = None) -> GemmTiling:
    """The largest chunks that fit half of each buffer (all of it without double buffering).

    With an N:M pattern ``nm`` the reduction chunk is a whole number of groups, and its
    compressed weights (``kt * N / M`` entries, and as many index entries) fit half of WGT and
    of IDX.
    """
    _check_dims(m, n, k)
    half = 2 if config.buffers.double_buffered else 1
    lim = (1 << 16) - 1
    if nm is None:
        kt = min(k, config.act_depth // half, config.wgt_depth // half, lim)
    else:
        gn, gm = nm
        groups = min(config.act_depth // half // gm, config.wgt_depth // half // gn,
                     config.idx_depth // half // gn, lim // gm)
        kt = min(-(-k // gm) * gm, groups * gm)
    # a sparse WS activation row spans M/N ACT entries
    e = 1 if nm is None or dataflow == "os" else nm[1] // nm[0]
    mt = min(m, config.act_depth // half // e, config.acc_depth // half, lim)
    return GemmTiling(m, n, k, config.array.rows, config.array.cols, kt, mt, dataflow, nm)


def _dtypes(config: AcceleratorConfig) -> tuple[str, str]:
    return ("int8", "int32") if config.array.dtype == "int8" else ("fp16", "fp32")


def compile_gemm(m: int, n: int, k: int, config: AcceleratorConfig, *,
                 dataflow: str = "os", sparsity: tuple[int, int] | None = None) -> Program:
    """A program computing C = A·B (int8 -> int32 or fp16 -> fp32, by ``config.array.dtype``).

    DRAM layout: A (column-major for OS, so a column of an A tile is contiguous; row-major for
    WS), then B row-major, then C row-major, each 64-byte aligned. Partial tiles at the matrix
    edges use LOAD's zero fill, so DRAM holds no padding.

    With ``sparsity=(N, M)`` B is N:M along K and held compressed in DRAM (values ``Bv`` and
    in-group indices ``Bi``, ``ceil(K/M)*N`` rows each, the format of
    ``algorithms.nm.compress``); tiles are output-stationary sparse GEMMs
    (:mod:`hwsim.sparse_tile`). Output-stationary, A is stored with K padded by zero columns to
    a whole number of groups (shape ``(M_rows, ceil(K/M)*M)``), because a sparse tile reads
    each group of activations whole. Weight-stationary (N must divide M and the array rows R),
    each tile holds R compressed rows, ``E = M/N`` ACT entries per activation row, and A is
    stored blocked by reduction chunk: shape ``(chunks * M_rows, E * R)``, row
    ``c * M_rows + t`` holding ``A[t, c*E*R : (c+1)*E*R]`` (zero padded), so that a tile's
    activations are one contiguous LOAD. :func:`sparse_operands` builds both layouts.

    Raises
    ------
    ValueError
        Non-positive dimensions, or a dataflow or pattern the config does not support.
    """
    if sparsity is not None:
        if tuple(sparsity) not in config.array.nm_patterns:
            raise ValueError(f"pattern {sparsity[0]}:{sparsity[1]} is not supported by config "
                             f"{config.name!r} {config.array.patterns}")
        if dataflow == "ws" and (sparsity[1] % sparsity[0] or config.array.rows % sparsity[0]):
            raise ValueError(f"weight-stationary {sparsity[0]}:{sparsity[1]} tiles need N to "
                             f"divide M and the {config.array.rows} array rows")
    if dataflow not in config.array.dataflows:
        raise ValueError(f"dataflow {dataflow!r} is not supported by config {config.name!r} "
                         f"(supported: {config.array.dataflows})")
    t = gemm_tiling(m, n, k, config, dataflow, None if sparsity is None else tuple(sparsity))
    op, acc = _dtypes(config)

    def align(x: int) -> int:
        return (x + 63) // 64 * 64

    if sparsity is None:
        a = TensorRef(0, (m, k), op, order="col" if dataflow == "os" else "row")
    elif dataflow == "os":
        a = TensorRef(0, (m, -(-k // sparsity[1]) * sparsity[1]), op, order="col")
    else:
        e = sparsity[1] // sparsity[0]
        a = TensorRef(0, (ws_sparse_chunks(k, sparsity, config.array.rows) * m,
                          e * config.array.rows), op)
    if sparsity is None:
        b = TensorRef(align(a.addr + a.nbytes), (k, n), op)
        c = TensorRef(align(b.addr + b.nbytes), (m, n), acc)
        lower = _lower_os if dataflow == "os" else _lower_ws
        cmds = lower(t, config, a, b, c)
        return Program(cmds, align(c.addr + c.nbytes), {"A": a, "B": b, "C": c},
                       inputs=("A", "B"), outputs=("C",))
    rows = -(-k // sparsity[1]) * sparsity[0]
    bv = TensorRef(align(a.addr + a.nbytes), (rows, n), op)
    bi = TensorRef(align(bv.addr + bv.nbytes), (rows, n), "int8")
    c = TensorRef(align(bi.addr + bi.nbytes), (m, n), acc)
    cmds = (_lower_os if dataflow == "os" else _lower_ws)(t, config, a, bv, c, bi)
    return Program(cmds, align(c.addr + c.nbytes), {"A": a, "Bv": bv, "Bi": bi, "C": c},
                   inputs=("A", "Bv", "Bi"), outputs=("C",))


def _halves(config: AcceleratorConfig) -> tuple[int, int, int]:
    if not config.buffers.double_buffered:
        return 0, 0, 0
    return config.act_depth // 2, config.wgt_depth // 2, config.acc_depth // 2


# Semaphores of the lowering: point-to-point token queues between the three units.
SEM_LOADED = 0     # DMA-in -> array: the operands of the next GEMM are in place
SEM_IN_FREE = 1    # array -> DMA-in: a GEMM finished reading its ACT/WGT half
SEM_ACC_FREE = 2   # DMA-out -> array: an ACC half has been stored and may be overwritten
SEM_ACC_READY = 3  # array -> DMA-out: an output tile is complete in its ACC half


class _Emitter:
    """Adds the double-buffering handshakes to a stream of load groups, GEMMs and stores.

    GEMM ``g`` reads the ACT/WGT halves ``g % 2`` (or a resident A), so the first load of its
    group waits until GEMM ``g - 2`` has finished; the last load tells the array its operands
    are ready. Output tile ``t`` accumulates in ACC half ``t % 2``: its first GEMM waits until
    the store of tile ``t - 2`` has read that half, its last GEMM tells DMA-out to store it.
    Every token produced is consumed once, except the last two of each kind.
    """

    def __init__(self, double_buffered: bool):
        self.depth = 2 if double_buffered else 1
        self.cmds: list[isa.Command] = []
        self.loads: list[isa.Load] = []
        self.gemms = 0
        self.tiles = 0
        self.tile_started = False

    def load(self, *args) -> None:
        self.loads.append(isa.Load(*args))

    def gemm(self, last_of_tile: bool, **fields) -> None:
        loads = self.loads
        if loads:
            if self.gemms >= self.depth:
                loads[0] = _with(loads[0], wait=1 << SEM_IN_FREE)
            loads[-1] = _with(loads[-1], signal=loads[-1].signal | 1 << SEM_LOADED)
            self.cmds.extend(loads)
        wait = 1 << SEM_LOADED if loads else 0
        if not self.tile_started and self.tiles >= self.depth:
            wait |= 1 << SEM_ACC_FREE
        signal = 1 << SEM_IN_FREE | (1 << SEM_ACC_READY if last_of_tile else 0)
        self.cmds.append(isa.Gemm(wait=wait, signal=signal, **fields))
        self.loads = []
        self.gemms += 1
        self.tile_started = not last_of_tile

    def store(self, *args) -> None:
        self.cmds.append(isa.Store(*args, wait=1 << SEM_ACC_READY, signal=1 << SEM_ACC_FREE))
        self.tiles += 1


def _with(cmd: isa.Command, **changes) -> isa.Command:
    return replace(cmd, **changes)


def _lower_os(t: GemmTiling, config: AcceleratorConfig, a: TensorRef, b: TensorRef,
              c: TensorRef, bi: TensorRef | None = None) -> list[isa.Command]:
    """Output-stationary tiles; with ``t.nm`` B is compressed (values ``b``, indices ``bi``)."""
    R, C = t.rows, t.cols
    eb = a.np_dtype.itemsize
    cb = c.np_dtype.itemsize
    half_act, half_wgt, half_acc = _halves(config)
    half_idx = config.idx_depth // 2 if config.buffers.double_buffered else 0
    gn, gm = t.nm if t.nm else (1, 1)
    em = _Emitter(config.buffers.double_buffered)
    nk = -(-t.k // t.kt)
    for row, m0 in enumerate(range(0, t.m, R)):
        mr = min(R, t.m - m0)
        for n0 in range(0, t.n, C):
            nc = min(C, t.n - n0)
            c_addr = (em.tiles % 2) * half_acc
            for chunk, k0 in enumerate(range(0, t.k, t.kt)):
                kc = min(t.kt, t.k - k0)
                g = em.gemms
                b_addr = (g % 2) * half_wgt
                # A stays resident across the N loop when the whole reduction fits
                a_addr = (row % 2) * half_act if t.a_resident else (g % 2) * half_act
                if not t.a_resident or n0 == 0:
                    # sparse tiles read whole groups: the zero padding of A up to one
                    em.load(isa.Buffer.ACT, a_addr, a.addr + (k0 * t.m + m0) * eb,
                            -(-kc // gm) * gm, mr, t.m * eb)
                # compressed rows of this chunk (all of it when dense)
                c0, cc = k0 // gm * gn, -(-kc // gm) * gn
                em.load(isa.Buffer.WGT, b_addr, b.addr + (c0 * t.n + n0) * eb, cc, nc, t.n * eb)
                sparse = {}
                if t.nm:
                    idx_addr = (g % 2) * half_idx
                    em.load(isa.Buffer.IDX, idx_addr, bi.addr + c0 * t.n + n0, cc, nc, t.n)
                    sparse = {"idx_addr": idx_addr, "sparse": 1, "n": gn,
                              "log2m": gm.bit_length() - 1}
                em.gemm(chunk == nk - 1, a_addr=a_addr, b_addr=b_addr, c_addr=c_addr,
                        k=cc, m=0, dataflow=isa.Dataflow.OS, accumulate=int(k0 > 0),
                        **{"idx_addr": 0, **sparse})
            em.store(isa.Buffer.ACC, c_addr, c.addr + (m0 * t.n + n0) * cb, mr, nc, t.n * cb)
    return em.cmds


def _lower_ws(t: GemmTiling, config: AcceleratorConfig, a: TensorRef, b: TensorRef,
              c: TensorRef, bi: TensorRef | None = None) -> list[isa.Command]:
    """Weight-stationary tiles; with ``t.nm`` B is compressed (values ``b``, indices ``bi``)
    and A blocked by chunk (:func:`compile_gemm`)."""
    R, C = t.rows, t.cols
    eb = a.np_dtype.itemsize
    cb = c.np_dtype.itemsize
    half_act, half_wgt, half_acc = _halves(config)
    em = _Emitter(config.buffers.double_buffered)
    if t.nm:
        return _lower_ws_sparse(t, config, a, b, c, bi, em)
    nk = -(-t.k // R)
    for n0 in range(0, t.n, C):
        nc = min(C, t.n - n0)
        for m0 in range(0, t.m, t.mt):
            mc = min(t.mt, t.m - m0)
            c_addr = (em.tiles % 2) * half_acc
            for chunk, k0 in enumerate(range(0, t.k, R)):
                kc = min(R, t.k - k0)
                g = em.gemms
                w_addr = (g % 2) * half_wgt
                a_addr = (g % 2) * half_act
                em.load(isa.Buffer.WGT, w_addr, b.addr + (k0 * t.n + n0) * eb, kc, nc, t.n * eb)
                em.load(isa.Buffer.ACT, a_addr, a.addr + (m0 * t.k + k0) * eb, mc, kc, t.k * eb)
                em.gemm(chunk == nk - 1, a_addr=a_addr, b_addr=w_addr, c_addr=c_addr,
                        idx_addr=0, k=kc, m=mc, dataflow=isa.Dataflow.WS, accumulate=int(k0 > 0))
            em.store(isa.Buffer.ACC, c_addr, c.addr + (m0 * t.n + n0) * cb, mc, nc, t.n * cb)
    return em.cmds



def ws_sparse_chunks(k: int, nm: tuple[int, int], rows: int) -> int:
    """Reduction chunks of a weight-stationary N:M GEMM: ``rows`` compressed rows each."""
    return -(-(-(-k // nm[1]) * nm[0]) // rows)


def _lower_ws_sparse(t: GemmTiling, config: AcceleratorConfig, a: TensorRef, b: TensorRef,
                     c: TensorRef, bi: TensorRef, em: _Emitter) -> list[isa.Command]:
    R, C = t.rows, t.cols
    gn, gm = t.nm
    e = gm // gn
    eb = a.np_dtype.itemsize
    cb = c.np_dtype.itemsize
    half_act, half_wgt, half_acc = _halves(config)
    half_idx = config.idx_depth // 2 if config.buffers.double_buffered else 0
    kc_all = -(-t.k // gm) * gn
    nk = ws_sparse_chunks(t.k, t.nm, R)
    for n0 in range(0, t.n, C):
        nc = min(C, t.n - n0)
        for m0 in range(0, t.m, t.mt):
            mc = min(t.mt, t.m - m0)
            c_addr = (em.tiles % 2) * half_acc
            for chunk in range(nk):
                c0 = chunk * R
                kc = min(R, kc_all - c0)
                g = em.gemms
                w_addr, a_addr = (g % 2) * half_wgt, (g % 2) * half_act
                idx_addr = (g % 2) * half_idx
                em.load(isa.Buffer.WGT, w_addr, b.addr + (c0 * t.n + n0) * eb, kc, nc, t.n * eb)
                em.load(isa.Buffer.IDX, idx_addr, bi.addr + c0 * t.n + n0, kc, nc, t.n)
                em.load(isa.Buffer.ACT, a_addr, a.addr + (chunk * t.m + m0) * e * R * eb,
                        mc * e, R, R * eb)
                em.gemm(chunk == nk - 1, a_addr=a_addr, b_addr=w_addr, c_addr=c_addr,
                        idx_addr=idx_addr, k=kc, m=mc, dataflow=isa.Dataflow.WS,
                        accumulate=int(chunk > 0), sparse=1, n=gn, log2m=gm.bit_length() - 1)
            em.store(isa.Buffer.ACC, c_addr, c.addr + (m0 * t.n + n0) * cb, mc, nc, t.n * cb)
    return em.cmds


def sparse_operands(a: np.ndarray, b: np.ndarray, n: int, m: int, *,
                    ws_rows: int | None = None) -> dict[str, np.ndarray]:
    """Inputs of a sparse :func:`compile_gemm` program from dense A[M,K] and B[K,N].

    B is pruned to N:M along K (the ``n`` largest ``|b|`` of each group, lower index first on
    ties) and compressed to values ``Bv`` and in-group indices ``Bi`` (increasing within a
    group, the format of ``algorithms.nm.compress``); A and B are zero-padded along K to whole
    groups. ``B`` in the result is the pruned dense B (padded), the reference operand, and
    ``A_dense`` the padded dense A. With ``ws_rows`` (the array rows R), ``A`` is in the
    chunk-blocked layout of a weight-stationary program (:func:`compile_gemm`); otherwise it
    is ``A_dense``.
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
        e, span = m // n, m // n * ws_rows
        chunks = ws_sparse_chunks(k, (n, m), ws_rows)
        wide = np.zeros((a.shape[0], chunks * span), a.dtype)
        wide[:, :kp] = ap
        out["A"] = wide.reshape(a.shape[0], chunks, span).transpose(1, 0, 2).reshape(-1, span)
        assert e * ws_rows == span
    return out
