"""Mapping search: how one GEMM op is cut into array tiles, in which dataflow and loop order.

The search space
----------------
For a GEMM ``C[M, N] = A[M, K] · B[K, N]`` (B the weight; N:M sparse along K when the op is
sparse) on an ``R x C`` array, a :class:`Mapping` is one of:

=========  ========  =========================================================================
dataflow   order     loop nest (outer to inner) and what stays in the buffers
=========  ========  =========================================================================
``os``     ``a``     m-block (R rows), n-block (C cols), k-chunk (``kt``): A chunk resident
                     across the n loop when ``kt >= K`` (``gemm_tiling``'s OS mapping)
``os``     ``b``     all of B (every n-block, whole K) loaded once and resident; m-block: load
                     A, then n-block: one tile per n-block with no further weight traffic
``ws``     ``s``     n-block, m-chunk (``mt`` rows), k-chunk: weight tile and A chunk loaded
                     per tile (``gemm_tiling``'s WS mapping)
``ws``     ``a``     m-chunk, n-block, k-chunk: the A chunk (all of K) resident across the
                     n loop; only weight tiles stream
=========  ========  =========================================================================

Candidates are every dataflow of ``config.array.dataflows`` (optionally restricted), every
order whose resident data fit, and for WS ``mt`` in ``{M}`` and the powers of two from ``R``
up to the ACC half. Buffers are double-buffered: each load group must fit *half* of ACT, WGT
(compressed values) and IDX (as many index entries), and a tile's outputs half of
ACC. ``kt`` is the largest reduction chunk that fits (a multiple of the pattern's M when
sparse). ISA field widths are limits too (LOAD ``rows`` 16 bits, ``stride`` 24 bits).

Sparse tiles
------------
A sparse tile holds ``kc·N/M`` compressed weight rows plus as many IDX rows, and costs the
dense closed form with ``k`` compressed (:func:`hwsim.units.array.gemm_cycles`, exact:
:mod:`hwsim.sparse_tile`). Its activations are the full ``kc`` reduction operands: OS loads
``kc`` A entries (whole groups); WS (N dividing M and R) preloads R compressed rows and
streams one activation row per cycle, each ``M/N`` ACT entries read at once, from A stored
blocked by chunk (``dataflow.lower.gemm``'s layout: row ``c*M_rows + t`` holds
``A[t, c*E*R : (c+1)*E*R]``, ``E = M/N``).

Cost
----
:func:`estimate` sums the unit cycles of every command the compiler would emit (GEMM tiles by
the array's closed forms, :mod:`hwsim.units.array`; LOAD and STORE by
:func:`hwsim.dram.dma_cycles` with the command's row size and stride, as :func:`hwsim.run`
times them: the fixed closed forms, or the banked model from closed row buffers; counted per
tile class rather than per tile) and overlaps the three units of the double-buffered pipeline::

    cycles ≈ max(DMA-in + last GEMM + last store,
                 first loads + array + last store,
                 first loads + first GEMM + DMA-out)

about what the schedule gives (it ignores stalls from handshakes and the row buffers one
command leaves open for the next); ``tests/dataflow/test_mapping.py`` checks it against
:func:`hwsim.run` on small ops, with the fixed and the banked DRAM model.
Objective ``"cycles"``, ``"energy"`` (pJ: MACs, SRAM and DRAM bytes, static power) or
``"edp"`` (their product). Results are cached by (shape, pattern, config key, objective,
allowed dataflows) in memory and, with ``cache_dir``, in one JSON file per config.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig, load_config
from hwsim.dram import dma_cycles
from hwsim.units.array import gemm_cycles
from hwsim.units.dma import load_beats

__all__ = [
    "OBJECTIVES",
    "Mapping",
    "MappingCache",
    "MappingError",
    "NEAR_TIE",
    "OpShape",
    "estimate",
    "search",
]

OBJECTIVES = ("cycles", "energy", "edp")
_ROWS_MAX = (1 << 16) - 1
_STRIDE_MAX = (1 << 24) - 1
_ELEMS_MAX = (1 << 12) - 1
NEAR_TIE = 0.01
"""Objective ``"cycles"``, sparse ops: candidates within this fraction of the fastest estimate
are near ties, decided by energy (:func:`search`)."""


class MappingError(ValueError):
    """An op that no mapping of the search space fits; the message names the op and why."""


@dataclass(frozen=True)
class OpShape:
    """The part of an op a mapping depends on.

    Parameters
    ----------
    m, n, k : int
        GEMM shape.
    sparsity : tuple of int or None
        ``(n, m)`` N:M pattern of B along K.
    name : str
        The op's name, for error messages only (not part of the cache key).
    """

    m: int
    n: int
    k: int
    sparsity: tuple[int, int] | None = None
    name: str = ""

    def key(self) -> str:
        sp = "dense" if self.sparsity is None else "{}:{}".format(*self.sparsity)
        return f"{self.m}x{self.n}x{self.k}/{sp}"

    def compressed(self, kc: int) -> int:
        """Compressed reduction steps of a chunk of ``kc`` (``ceil(kc·N/M)``; ``kc`` dense)."""
        if self.sparsity is None:
            return kc
        nn_, mm = self.sparsity
        return -(-kc * nn_ // mm)


@dataclass(frozen=True)
class Mapping:
    """A point of the search space (see the module docstring).

    Parameters
    ----------
    dataflow : {"os", "ws"}
    order : {"a", "b", "s"}
    kt : int
        Reduction operands (uncompressed) per tile.
    mt : int
        Rows per tile: ``R`` for OS, the streamed chunk for WS.
    cycles, energy_pj : float
        The estimate of the whole op (one repetition).
    """

    dataflow: str
    order: str
    kt: int
    mt: int
    cycles: float = 0.0
    energy_pj: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _halves(config: AcceleratorConfig, sparse: bool = False) -> tuple[int, int, int]:
    """Half of ACT, of WGT (and, for a sparse op, of IDX, which holds as many entries) and
    of ACC."""
    d = 2 if config.buffers.double_buffered else 1
    wgt = min(config.wgt_depth, config.idx_depth) if sparse else config.wgt_depth
    return config.act_depth // d, wgt // d, config.acc_depth // d


_DMA_MEMO: dict[tuple, int] = {}
_KEY_MEMO: dict[int, tuple[AcceleratorConfig, str]] = {}


def _config_key(config: AcceleratorConfig) -> str:
    """``config.key()``, remembered per config object (it hashes the whole config)."""
    hit = _KEY_MEMO.get(id(config))
    if hit is None or hit[0] is not config:
        hit = _KEY_MEMO[id(config)] = (config, config.key())
    return hit[1]


def _dma_cycles(config: AcceleratorConfig, cfg_key: str, store: bool, rows: int, nbytes: int,
                stride: int, beat: int = 1) -> int:
    """LOAD/STORE ``unit_cycles`` as :func:`hwsim.run` and the fast path time them
    (:func:`hwsim.dram.dma_cycles`: the fixed closed forms, or the banked model with the row
    buffers closed, at a 4 KiB-aligned address; ``beat`` entries a request); memoised per
    config."""
    key = (cfg_key, store, rows, nbytes, stride, beat)
    v = _DMA_MEMO.get(key)
    if v is None:
        v = _DMA_MEMO[key] = int(dma_cycles(store, 0, rows, nbytes, stride, config,
                                            beat=beat).cycles[0])
    return v


def _blocks(total: int, size: int) -> list[tuple[int, int]]:
    """``(count, length)`` classes of ``range(0, total, size)`` chunks."""
    full, rest = divmod(total, size)
    out = [(full, size)] if full else []
    if rest:
        out.append((1, rest))
    return out


class _Tally:
    """Sums of unit cycles and traffic over tile classes."""

    def __init__(self, config: AcceleratorConfig, cfg_key: str):
        self.c, self.key = config, cfg_key
        self.dma_in = self.array = self.dma_out = 0
        self.first_load = self.first_gemm = self.last_gemm = self.last_store = 0
        self.dram = self.sram = self.padded_macs = 0
        # the tiles in program order, run-length coded for _pipeline: [(m-blocks, [(n-blocks,
        # [(k-chunks, load cycles, GEMM cycles), ...]), ...]), ...]
        self.blocks: list = []

    def load(self, count: int, buf: int, rows: int, elems: int, stride: int) -> int:
        eb = 1 if buf == isa.Buffer.IDX else self.c.array.elem_bytes
        stride = stride or elems  # 0: contiguous rows (a tile-blocked layout)
        # the lowering's buffer addresses are multiples of every wide_entries (tile halves)
        beat = int(load_beats(True, buf, 0, elems, stride * eb, self.c))
        cyc = _dma_cycles(self.c, self.key, False, rows, elems * eb, stride * eb, beat)
        self.dma_in += count * cyc
        self.dram += count * rows * elems * eb
        self.sram += count * rows * elems * eb
        return cyc

    def gemm(self, count: int, k: int, m: int, dataflow: str, a_rows: int) -> int:
        R, C = self.c.array.rows, self.c.array.cols
        df = int(isa.Dataflow.OS if dataflow == "os" else isa.Dataflow.WS)
        cyc = int(gemm_cycles(k, m, df, self.c))
        self.array += count * cyc
        eb = self.c.array.elem_bytes
        out_rows = R if dataflow == "os" else m
        self.sram += count * (a_rows * R * eb + k * C * eb + 2 * out_rows * C * 4)
        self.padded_macs += count * (k * R * C if dataflow == "os" else m * k * C)
        return cyc

    def store(self, count: int, rows: int, elems: int, stride: int) -> int:
        stride = stride or elems
        cyc = _dma_cycles(self.c, self.key, True, rows, elems * 4, stride * 4)
        self.dma_out += count * cyc
        self.dram += count * rows * elems * 4
        self.sram += count * rows * elems * 4
        return cyc


def _pipeline(blocks) -> int:
    """Cycles of the double-buffered pipeline over the tiles of ``blocks`` (``_Tally.blocks``,
    in program order): a tile's GEMM waits for its loads, the next tile's loads run during it,
    so each tile after the first adds ``max(previous GEMM, its loads)``; the first adds its
    loads and the last its GEMM. This is what ``max(DMA-in, array)`` misses when tiles of
    different sizes alternate (a K remainder, A loaded in the first n-block only): a long load
    then waits beside a short GEMM."""
    total = g_prev = 0

    def once(runs, gp):
        s = 0
        for c, load, gemm in runs:
            if c:
                s += max(gp, load) + (c - 1) * max(gemm, load)
                gp = gemm
        return s, gp

    def repeat(rep, body, gp):
        """``body(gp) -> (sum, last GEMM)`` run ``rep`` times."""
        if rep <= 0:
            return 0, gp
        s1, g1 = body(gp)
        if rep == 1:
            return s1, g1
        s2, g2 = body(g1)
        return s1 + (rep - 1) * s2, g2

    def mblock(nblocks, gp):
        s = 0
        for rep, runs in nblocks:
            ds, gp = repeat(rep, lambda g, runs=runs: once(runs, g), gp)
            s += ds
        return s, gp

    for rep, nblocks in blocks:
        ds, g_prev = repeat(rep, lambda g, nb=nblocks: mblock(nb, g), g_prev)
        total += ds
    return int(total + g_prev)


def _entries_per_row(op: OpShape, kc: int, rows: int) -> int:
    """ACT entries one streamed WS row spans: ``ceil(kc / R)`` dense (one), ``M / N`` sparse
    (the hardware reads an activation row of M/N entries per step, ``hwsim.sparse_tile``)."""
    if op.sparsity is None:
        return -(-kc // rows)
    return op.sparsity[1] // op.sparsity[0]


def _fits(op: OpShape, mp: Mapping, config: AcceleratorConfig) -> str | None:
    """Why ``mp`` cannot hold ``op`` (None when it fits)."""
    R, C = config.array.rows, config.array.cols
    act, wgt, acc = _halves(config, op.sparsity is not None)
    eb = config.array.elem_bytes
    kc = op.compressed(min(mp.kt, op.k))
    if mp.dataflow == "os":
        if mp.kt > act or kc > wgt or mp.kt > _ROWS_MAX:
            return f"reduction chunk {mp.kt} does not fit half of ACT ({act}) / WGT ({wgt})"
        if acc < R:
            return f"an output tile of {R} rows does not fit half of ACC ({acc})"
        if op.m * eb > _STRIDE_MAX:
            return f"A column stride {op.m * eb} B exceeds the 24-bit LOAD stride"
        if mp.order == "b":
            total = -(-op.n // C) * op.compressed(op.k)
            if mp.kt < op.k or total > wgt or op.k > act:
                return f"resident B of {total} entries does not fit half of WGT ({wgt})"
        return None
    epr = _entries_per_row(op, mp.kt, R)  # ACT entries per streamed row
    if kc > R:
        return f"{kc} compressed weight rows exceed the {R} array rows"
    a_entries = mp.mt * epr * (-(-op.k // mp.kt) if mp.order == "a" else 1)
    if a_entries > act or mp.mt * epr > _ROWS_MAX:
        return f"activation chunk of {a_entries} entries does not fit half of ACT ({act})"
    if mp.mt > acc:
        return f"{mp.mt} output rows do not fit half of ACC ({acc})"
    if op.k * eb > _STRIDE_MAX or op.n * 4 > _STRIDE_MAX:
        return "row stride exceeds the 24-bit LOAD/STORE stride"
    return None


def estimate(op: OpShape, mp: Mapping, config: AcceleratorConfig | str, *,
             cfg_key: str | None = None, blocked: bool = False) -> tuple[float, float]:
    """``(cycles, energy_pj)`` of one repetition of ``op`` under ``mp`` (module docstring).
    ``cfg_key``: ``config.key()`` when the caller has it. ``blocked``: the operands are in
    the tile-blocked layouts of :mod:`dataflow.lower.gemm` (each tile's rows contiguous)."""
    config = load_config(config)
    R, C = config.array.rows, config.array.cols
    t = _Tally(config, cfg_key or _config_key(config))
    M, N, K = (0, 0, 0) if blocked else (op.m, op.n, op.k)  # row pitches; 0: the tile's own
    sparse = op.sparsity is not None
    A, W, X = isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.IDX
    first = True
    if mp.dataflow == "os":
        mbs = _blocks(op.m, R)
        nbs = _blocks(op.n, C)
        kbs = _blocks(op.k, mp.kt)
        resident = mp.kt >= op.k
        for mc_n, mr in mbs:
            if mp.order == "b":
                if first:
                    kc_all = op.compressed(op.k)
                    fl = sum(t.load(c, W, kc_all, nc, N) * c for c, nc in nbs)
                    if sparse:
                        fl += sum(t.load(c, X, kc_all, nc, N) * c for c, nc in nbs)
                    t.first_load = fl
                t.load(mc_n, A, op.k, mr, M)
                for nc_n, nc in nbs:
                    g = t.gemm(mc_n * nc_n, op.compressed(op.k), 0, "os", op.k)
                    s = t.store(mc_n * nc_n, mr, nc, N)
                    t.first_gemm = t.first_gemm or g
                    t.last_gemm, t.last_store = g, s
                first = False
                continue
            mblock = []  # one m-block: (n-blocks, the k-chunk runs of one of them)
            for nc_n, nc in nbs:
                with_a, without_a = [], []  # the k-chunks of one n-block, A loaded or not
                for kc_n, kc in kbs:
                    cnt = mc_n * nc_n * kc_n
                    a_cnt = (mc_n * kc_n if (nc_n, nc) == nbs[0] else 0) if resident else cnt
                    la = t.load(a_cnt, A, kc, mr, M)
                    lb = t.load(cnt, W, op.compressed(kc), nc, N)
                    if sparse:
                        lb += t.load(cnt, X, op.compressed(kc), nc, N)
                    g = t.gemm(cnt, op.compressed(kc), 0, "os", kc)
                    if first:
                        t.first_load, t.first_gemm, first = la + lb, g, False
                    t.last_gemm = g
                    with_a.append((kc_n, la + lb, g))
                    without_a.append((kc_n, (0 if resident else la) + lb, g))
                # resident A: loaded in the first n-block of each m-block only
                first_n = resident and (nc_n, nc) == nbs[0]
                mblock += [(1, with_a), (nc_n - 1, without_a)] if first_n else \
                    [(nc_n, without_a if resident else with_a)]
                t.last_store = t.store(mc_n * nc_n, mr, nc, N)
            t.blocks.append((mc_n, mblock))
    else:
        mbs = _blocks(op.m, mp.mt)
        nbs = _blocks(op.n, C)
        kbs = _blocks(op.k, mp.kt)
        for mc_n, mc in mbs:
            mblock = []
            for nc_n, nc in nbs:
                with_a, without_a = [], []
                for kc_n, kc in kbs:
                    cnt = mc_n * nc_n * kc_n
                    epr = _entries_per_row(op, kc, R)
                    a_cnt = cnt if mp.order == "s" else mc_n * kc_n if (nc_n, nc) == nbs[0] else 0
                    # sparse: the tile-blocked layout (contiguous rows); dense: rows of K
                    la = t.load(a_cnt, A, mc * epr, R if sparse else min(kc, R),
                                R if sparse else K)
                    lw = t.load(cnt, W, op.compressed(kc), nc, N)
                    if sparse:
                        lw += t.load(cnt, X, op.compressed(kc), nc, N)
                    g = t.gemm(cnt, op.compressed(kc), mc, "ws", mc * epr)
                    if first:
                        t.first_load, t.first_gemm, first = la + lw, g, False
                    t.last_gemm = g
                    with_a.append((kc_n, la + lw, g))
                    without_a.append((kc_n, (la if mp.order == "s" else 0) + lw, g))
                first_n = mp.order != "s" and (nc_n, nc) == nbs[0]
                mblock += [(1, with_a), (nc_n - 1, without_a)] if first_n else \
                    [(nc_n, with_a if mp.order == "s" else without_a)]
                t.last_store = t.store(mc_n * nc_n, mc, nc, N)
            t.blocks.append((mc_n, mblock))
    cycles = max(t.dma_in + t.last_gemm + t.last_store,
                 t.first_load + t.array + t.last_store,
                 t.first_load + t.first_gemm + t.dma_out,
                 _pipeline(t.blocks) + t.last_store)
    e = config.energy
    mac_pj = e.mac_int8 if config.array.dtype == "int8" else e.mac_fp16
    energy = (t.padded_macs * mac_pj + t.sram * (e.sram_read_byte + e.sram_write_byte) / 2
              + t.dram * e.dram_byte + e.static_mw * 1e-3 * cycles / (config.clock_mhz * 1e6)
              * 1e12)
    return float(cycles), float(energy)


def _candidates(op: OpShape, config: AcceleratorConfig, dataflows) -> list[Mapping]:
    R = config.array.rows
    act, wgt, acc = _halves(config, op.sparsity is not None)
    mult = op.sparsity[1] if op.sparsity else 1
    out = []
    if "os" in dataflows:
        kt = min(op.k, act, _ROWS_MAX)
        # the compressed chunk must also fit WGT: kt·n/m <= wgt
        kt = min(kt, wgt * op.sparsity[1] // op.sparsity[0] if op.sparsity else wgt)
        if kt < op.k:
            kt = max(mult, kt // mult * mult)
        out.append(Mapping("os", "a", kt, R))
        if kt >= op.k:
            out.append(Mapping("os", "b", op.k, R))
    ws_ok = op.sparsity is None or (op.sparsity[1] % op.sparsity[0] == 0
                                     and R % op.sparsity[0] == 0)
    if "ws" in dataflows and ws_ok:
        kt = R if op.sparsity is None else R * op.sparsity[1] // op.sparsity[0]
        kt = min(kt, op.k) if op.k > kt else op.k
        mts = {min(op.m, acc)}
        v = R
        while v <= acc:
            if v < op.m:
                mts.add(v)
            v *= 2
        for mt in sorted(mts):
            out.append(Mapping("ws", "s", kt, mt))
            out.append(Mapping("ws", "a", kt, mt))
    return out


def _score(objective: str, cycles: float, energy: float) -> float:
    return {"cycles": cycles, "energy": energy, "edp": cycles * energy}[objective]


class MappingCache:
    """Mappings by (shape, config key, objective, dataflows): a dict, optionally a JSON file.

    Parameters
    ----------
    cache_dir : str or Path or None
        Directory of ``mappings-<config key>.json`` files; None keeps results in memory only.
    """

    _memory: dict[str, dict[str, Mapping]] = {}
    _lock = threading.Lock()

    def __init__(self, cache_dir: str | Path | None = None):
        self.dir = None if cache_dir is None else Path(cache_dir)
        self.hits = self.misses = 0
        self._dirty: set[str] = set()

    def _file(self, cfg_key: str) -> Path | None:
        return None if self.dir is None else self.dir / f"mappings-{cfg_key}.json"

    def table(self, cfg_key: str) -> dict[str, Mapping]:
        with self._lock:
            tab = self._memory.setdefault(cfg_key, {})
            f = self._file(cfg_key)
            if f is not None and f.exists() and not tab.get("__loaded__"):
                for k, v in json.loads(f.read_text()).items():
                    tab.setdefault(k, Mapping(**v))
                tab["__loaded__"] = True  # type: ignore[assignment]
            return tab

    def get(self, key: str, cfg_key: str) -> Mapping | None:
        mp = self.table(cfg_key).get(key)
        if mp is None:
            self.misses += 1
        else:
            self.hits += 1
        return mp

    def put(self, key: str, cfg_key: str, mp: Mapping) -> None:
        self.table(cfg_key)[key] = mp
        self._dirty.add(cfg_key)

    def save(self) -> None:
        """Write the JSON files of configs with new entries (no-op without ``cache_dir``)."""
        for cfg_key in self._dirty:
            f = self._file(cfg_key)
            if f is None:
                continue
            f.parent.mkdir(parents=True, exist_ok=True)
            data = {k: v.to_dict() for k, v in self.table(cfg_key).items()
                    if isinstance(v, Mapping)}
            tmp = f.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, sort_keys=True))
            tmp.replace(f)
        self._dirty.clear()

    @classmethod
    def clear_memory(cls) -> None:
        """Forget every in-memory result (the next search is cold unless a file has it)."""
        with cls._lock:
            cls._memory.clear()


def search(op: OpShape, config: AcceleratorConfig | str, objective: str = "cycles", *,
           dataflows: tuple[str, ...] | None = None,
           cache: MappingCache | None = None, blocked: bool = False) -> Mapping:
    """The best mapping of ``op`` for ``objective`` (ties: the first candidate; for ``"cycles"``
    and a sparse op, estimates within :data:`NEAR_TIE` of the fastest go to the least energy).

    Parameters
    ----------
    op : OpShape
    config : AcceleratorConfig
    objective : {"cycles", "energy", "edp"}
    dataflows : tuple of str, optional
        Restrict the dataflows searched (default ``config.array.dataflows``).
    cache : MappingCache, optional
    blocked : bool
        Cost the loads and stores of the tile-blocked layouts (:func:`estimate`).

    Raises
    ------
    ValueError
        Unknown objective or a dataflow the config does not support.
    MappingError
        No candidate fits; names the op and each candidate's reason.
    """
    config = load_config(config)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    allowed = tuple(config.array.dataflows if dataflows is None else dataflows)
    bad = [d for d in allowed if d not in config.array.dataflows]
    if bad or not allowed:
        raise ValueError(f"dataflows {allowed} are not a non-empty subset of config "
                         f"{config.name!r}'s {config.array.dataflows}")
    key = f"{op.key()}/{objective}/{','.join(allowed)}" + ("/blocked" if blocked else "")
    cfg_key = _config_key(config)
    if cache is not None:
        hit = cache.get(key, cfg_key)
        if hit is not None:
            return hit
    best, best_score, why = None, np.inf, []
    fits = []
    for cand in _candidates(op, config, allowed):
        reason = _fits(op, cand, config)
        if reason is not None:
            why.append(f"{cand.dataflow}/{cand.order} kt={cand.kt} mt={cand.mt}: {reason}")
            continue
        cyc, en = estimate(op, cand, config, cfg_key=cfg_key, blocked=blocked)
        s = _score(objective, cyc, en)
        fits.append(Mapping(cand.dataflow, cand.order, cand.kt, cand.mt, cyc, en))
        if s < best_score:
            best, best_score = fits[-1], s
    if best is not None and objective == "cycles" and op.sparsity is not None:
        # near ties (NEAR_TIE) of a sparse op go to the mapping with less energy, i.e. less
        # DRAM traffic: the estimate times each op alone, but a sparse op's short tiles with
        # DMA-heavy loads leave little bandwidth to the dense GEMM it is interleaved with
        # (dataflow.compiler: backward data beside weight gradient), where loads get exposed
        near = [mp for mp in fits if mp.cycles <= best.cycles * (1 + NEAR_TIE)]
        best = min(near, key=lambda mp: (mp.energy_pj, mp.cycles))
    if best is None:
        raise MappingError(f"op {op.name or op.key()!r} (M={op.m} N={op.n} K={op.k}, "
                           f"{'dense' if op.sparsity is None else '{}:{}'.format(*op.sparsity)})"
                           f" fits no mapping on config {config.name!r}: " + "; ".join(why))
    if cache is not None:
        cache.put(key, cfg_key, best)
    return best
