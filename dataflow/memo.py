"""AttMEMO on the machine: memoized attention lowered onto the array, the vector engine and the
lookup engine, with the map store in a big-memory tier.

:func:`memoize` rewrites an inference workload (:func:`dataflow.workload.extract`, ``training=
False``) of a transformer. For each self-attention layer (:func:`attention_sites`: a ``QKᵀ``
GEMM, the score ops up to the softmax, then the ``PV`` GEMM), with ``B`` sequences of which
``h`` hit the store:

============================  =======================================================  ========
op                            what runs                                                unit
============================  =======================================================  ========
``memo.pool`` .. ``norm``     the embedding MLP (AttnCache's feature projector: a 2x2  array,
                              max pool of the ``(S, d)`` input, ``-> hidden`` GEMM,    vector
                              ReLU, ``-> d_embed`` GEMM, L2 normalisation)
``memo.centroids``, ``probe`` IVF-Flat, first level: inner products with the ``nlist``  array,
                              centroids, top-``nprobe``                                vector
``memo.scan``                 the probed lists' keys streamed from the store's tier,   lookup
                              one inner product each (GATHER mode 1: ``q · key``)
``memo.best``                 the best key of each query                               vector
``QKᵀ``, scale, softmax       only for the ``B - h`` misses                            array,
                                                                                       vector
``memo.fetch``                each hit's map, ``H·S_q`` rows of ``S_k`` fp16 values,   lookup
                              from the tier (GATHER mode 0, one chunk of weight 1:
                              the row itself, exactly)
``memo.insert``               with ``MemoStore.insert``: each miss's map and key       lookup
                              written to the store (SCATTER mode 0 into a zeroed slot)
``PV``, output projection     unchanged: every sequence                                array
============================  =======================================================  ========

Store: per memoized layer one key table (``entries x d_embed`` fp16) and one map table
(``entries·H·S_q`` rows of ``S_k`` fp16 values), all in one tier (:func:`memo_config` makes that
tier the lookup engine's only one and refuses a store that does not fit, naming the tier). The
search's cost comes from the index's parameters (:class:`MemoStore`, or
:meth:`MemoStore.from_index` for a real :class:`algorithms.memo_db.MemoIndex`): an exact index
(below ``exact_below`` entries) scans every key; IVF-Flat scans ``nprobe`` lists of the mean list
length.

Simplifications, stated: the insert is a read-modify-write of fp32 rows (the machine has no
plain row-store command), so it moves 4x the bytes of an fp16 write; timing mode draws the
scanned keys' rows uniformly from the key table (real lists are contiguous runs, which a tier
serves at least as fast); the embedding MLP's weights and the centroids load from DRAM like any
GEMM operand. Hits are whole sequences per layer (a sequence's map is reused or not).

:func:`memo_model` is the selective-memoization performance model (closed forms, no
simulation); :func:`simulate_memo` runs the rewritten workload through the compiler and hwsim.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from hwsim import buffers, isa
from hwsim.config import AcceleratorConfig
from hwsim.dram import dma_bytes_per_cycle
from hwsim.tiers import TIER_PRESETS, tier_preset

from .workload import Op, Workload

__all__ = ["MEMO_OPS", "AttentionSite", "MemoCosts", "MemoResult", "MemoStore",
           "MemoStoreError", "attention_sites", "compile_map_fetch", "hit_attention",
           "hits_per_layer", "memo_config", "memo_model", "memoize", "read_trace",
           "simulate_memo", "store_bytes"]

MEMO_OPS = ("key_scan", "map_fetch", "memo_insert")
"""The lookup ops of memoized attention (:data:`dataflow.workload.LOOKUP_OPS` lists them)."""
MAP_BYTES = 2
"""Bytes per stored attention probability (fp16, what GATHER reads)."""
_QK = ("matmul", "attn_qk")
_PV = ("matmul", "attn_pv")
_MAX_CHUNKS = (1 << 12) - 1  # the ISA's 12-bit chunks field


class MemoStoreError(ValueError):
    """A map store that does not fit its tier, or a bad store parameter."""


@dataclass(frozen=True)
class MemoStore:
    """The memo store and its index, as AttMEMO builds them.

    Parameters
    ----------
    tier : str, default "cxl"
        A :func:`hwsim.tiers.tier_preset` name holding the keys and maps.
    entries : int, default 1024
        Maps stored per memoized layer.
    d_embed, hidden, pool : int
        The embedding MLP: a ``pool x pool`` max pool of the ``(S, d)`` attention input, then
        ``(S·d/pool²) -> hidden -> d_embed``. The defaults (2, 128, 128) are the feature
        projector of AttMEMO's public follow-up code (AttnCache); ``pool=1, hidden=256`` is
        :class:`algorithms.attmemo.AttentionEmbedder`'s shape.
    nlist, nprobe, exact_below : int
        The index (:class:`algorithms.memo_db.MemoIndex`'s defaults): exact below
        ``exact_below`` entries, else IVF-Flat with ``min(nlist, entries // 39)`` lists of which
        ``nprobe`` are scanned.
    insert : bool, default False
        Write each miss's map and key to the store (AttMEMO's online population); False: the
        store was built beforehand.
    list_len : float, optional
        The mean probed list length, when known from a real index (:meth:`from_index`);
        default ``entries / lists``.
    """

    tier: str = "cxl"
    entries: int = 1024
    d_embed: int = 128
    hidden: int = 128
    pool: int = 2
    nlist: int = 128
    nprobe: int = 8
    exact_below: int = 2048
    insert: bool = False
    list_len: float | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIER_PRESETS:
            raise MemoStoreError(f"memo tier must be one of {', '.join(TIER_PRESETS)}, not "
                                 f"{self.tier!r}")
        for name in ("entries", "d_embed", "hidden", "pool", "nlist", "nprobe", "exact_below"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MemoStoreError(f"memo store {name} must be a positive integer, not {v!r}")
        if self.list_len is not None and not self.list_len > 0:
            raise MemoStoreError(f"memo store list_len must be positive, not {self.list_len!r}")

    @property
    def lists(self) -> int:
        """Inverted lists of the index (0: exact search)."""
        if self.entries < self.exact_below:
            return 0
        return max(1, min(self.nlist, self.entries // 39))

    @property
    def keys_scanned(self) -> int:
        """Keys one query's search reads and scores: every key (exact), or ``nprobe`` lists."""
        if not self.lists:
            return self.entries
        length = self.list_len if self.list_len is not None else self.entries / self.lists
        return min(self.entries, math.ceil(min(self.nprobe, self.lists) * length))

    @classmethod
    def from_index(cls, index, *, tier: str = "cxl", entries: int | None = None,
                   **kw) -> MemoStore:
        """The store of a real :class:`algorithms.memo_db.MemoIndex`: its key width, entries,
        list count, ``nprobe`` and mean list length (Faiss's inverted lists)."""
        import faiss

        n = len(index) if entries is None else entries
        fields = dict(tier=tier, entries=n, d_embed=index.dim, nlist=index.nlist,
                      nprobe=index.nprobe, exact_below=index.exact_below)
        if index.approximate:
            ivf = faiss.extract_index_ivf(index.index)
            sizes = [ivf.invlists.list_size(i) for i in range(ivf.nlist)]
            fields.update(nlist=ivf.nlist, nprobe=ivf.nprobe, exact_below=1,
                          list_len=sum(sizes) / len(sizes))
        else:
            fields.update(exact_below=n + 1)
        fields.update(kw)
        return cls(**fields)


@dataclass(frozen=True)
class AttentionSite:
    """One self-attention of a workload: op indices and shapes.

    Attributes
    ----------
    layer : str
        The attention's module path (the ``QKᵀ`` op's layer).
    qk, pv : int
        Indices of the ``QKᵀ`` and ``PV`` GEMMs in the workload's ops.
    scores : tuple of int
        The vector ops between them (scale, mask, softmax).
    batch, heads, s_q, s_k, d_head : int
    """

    layer: str
    qk: int
    pv: int
    scores: tuple[int, ...]
    batch: int
    heads: int
    s_q: int
    s_k: int
    d_head: int

    @property
    def d_model(self) -> int:
        return self.heads * self.d_head

    @property
    def map_rows(self) -> int:
        """Rows of one sequence's map: ``H·S_q`` (each ``S_k`` values)."""
        return self.heads * self.s_q

    @property
    def map_bytes(self) -> int:
        """Bytes of one sequence's map (``H·S_q·S_k`` fp16)."""
        return self.map_rows * self.s_k * MAP_BYTES

    @property
    def skipped_macs(self) -> int:
        """``QKᵀ`` MACs one hit skips: ``H·S_q·S_k·d_head``."""
        return self.heads * self.s_q * self.s_k * self.d_head


def attention_sites(workload: Workload, batch: int) -> list[AttentionSite]:
    """The self-attentions of an inference workload of ``batch`` sequences, in order.

    Raises
    ------
    ValueError
        For a training workload or a ``repeat`` that ``batch`` does not divide.
    """
    if workload.training:
        raise ValueError("memoization is for inference: extract the workload with "
                         "training=False")
    ops = workload.ops
    sites = []
    for i, op in enumerate(ops):
        if not (op.kind == "gemm" and op.pass_ == "fwd" and op.op in _QK):
            continue
        j, scores = i + 1, []
        while j < len(ops) and ops[j].kind == "vector" and ops[j].layer == op.layer:
            scores.append(j)
            j += 1
        if not (scores and ops[scores[-1]].op == "softmax" and j < len(ops)
                and ops[j].kind == "gemm" and ops[j].op in _PV and ops[j].layer == op.layer):
            continue
        if op.repeat % batch:
            raise ValueError(f"attention {op.layer!r}: repeat {op.repeat} is not a multiple of "
                             f"the batch {batch}")
        sites.append(AttentionSite(op.layer, i, j, tuple(scores), batch, op.repeat // batch,
                                   op.m, op.n, op.k))
    return sites


def store_bytes(site: AttentionSite, store: MemoStore) -> tuple[int, int]:
    """``(key table, map table)`` bytes of one memoized layer."""
    return (store.entries * store.d_embed * MAP_BYTES, store.entries * site.map_bytes)


def memo_config(config: AcceleratorConfig, store: MemoStore,
                sites: list[AttentionSite]) -> AcceleratorConfig:
    """``config`` with the store's tier as the lookup engine's only tier.

    Raises
    ------
    MemoStoreError
        When the memoized layers' keys and maps exceed the tier's capacity (names the tier,
        the store's size and how it is made up).
    """
    tier = tier_preset(store.tier)
    need = sum(sum(store_bytes(s, store)) for s in sites)
    if need > tier.capacity_bytes:
        per = store_bytes(sites[0], store)[1] / store.entries if sites else 0
        raise MemoStoreError(
            f"the map store needs {need / 2**30:,.1f} GiB ({len(sites)} layers x "
            f"{store.entries:,} entries x {per / 2**20:,.2f} MiB a map, plus keys) but tier "
            f"{store.tier!r} holds {tier.capacity_bytes / 2**30:,.0f} GiB: use fewer entries or "
            f"a bigger tier")
    return dataclasses.replace(config, lookup=dataclasses.replace(
        config.lookup, tiers=(tier,), placement=(), hot_rows=0))


def hits_per_layer(sites: list[AttentionSite], hits) -> dict[str, int]:
    """Sequences that hit, per layer: ``hits`` is a hit rate in [0, 1] for every layer
    (rounded to whole sequences of the batch), or a mapping from layer path or index (into
    ``sites``) to a rate; layers it does not name are not memoized (no search)."""
    def count(rate, where):
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"hit rate of {where} must be in [0, 1], not {rate!r}")
        return round(rate * sites[0].batch) if sites else 0

    if not isinstance(hits, Mapping):
        return {s.layer: count(hits, s.layer) for s in sites}
    out = {}
    names = [s.layer for s in sites]
    for key, rate in hits.items():
        if isinstance(key, int) and not isinstance(key, bool):
            if not 0 <= key < len(sites):
                raise ValueError(f"layer index {key} is outside the model's {len(sites)} "
                                 "attention layers")
            key = names[key]
        elif key not in names:
            raise ValueError(f"{key!r} is not an attention layer; they are {names}")
        out[key] = count(rate, key)
    return out


def read_trace(path) -> dict[int | str, float]:
    """Hit rates per layer from a trace CSV with columns ``layer`` (an attention layer's
    index or path) and ``hit`` (0/1, one row per sequence and layer), as
    :func:`algorithms.attmemo.write_trace` writes it."""
    import csv

    from hwsim.textfile import read_text

    text = read_text(path)
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"layer", "hit"} <= set(rows[0]):
        raise ValueError(f"{path}: a memo trace needs a header with columns 'layer' and 'hit' "
                         "and at least one row")
    total: dict[int | str, list[int]] = {}
    for n, row in enumerate(rows, 2):
        layer = row["layer"].strip()
        key: int | str = int(layer) if layer.isdigit() else layer
        if row["hit"].strip() not in ("0", "1"):
            raise ValueError(f"{path}:{n}: hit must be 0 or 1, not {row['hit']!r}")
        total.setdefault(key, []).append(int(row["hit"]))
    return {k: sum(v) / len(v) for k, v in total.items()}


def _lookup(name, layer, op, tokens, chunks, width, table, table_rows, desc) -> Op:
    return Op(name=name, layer=layer, kind="lookup", pass_="fwd", op=op, tokens=tokens,
              chunks=chunks, tau=1, width=width, table_rows=table_rows, rows=tokens * chunks,
              elements=tokens * chunks * width, table=table, weight="paper", description=desc)


def _search_ops(site: AttentionSite, store: MemoStore) -> list[Op]:
    b, base, L = site.batch, site.layer + ".memo", site.layer

    def gemm(part, m, n, k, desc):
        return Op(name=f"{base}.{part}", layer=L, kind="gemm", pass_="fwd", op="linear",
                  m=m, n=n, k=k, description=desc)

    def vec(part, op, elements, desc):
        return Op(name=f"{base}.{part}", layer=L, kind="vector", pass_="fwd", op=op,
                  elements=elements, description=desc)

    pooled = -(-site.s_q // store.pool) * -(-site.d_model // store.pool)
    ops = [vec("pool", "max_pool2d", b * site.s_q * site.d_model,
               f"embedder: {store.pool}x{store.pool} max pool")] if store.pool > 1 else []
    ops += [gemm("embed1", b, store.hidden, pooled, "embedder: (S·d/pool²) -> hidden"),
            vec("relu", "relu", b * store.hidden, "embedder ReLU"),
            gemm("embed2", b, store.d_embed, store.hidden, "embedder: hidden -> d_embed"),
            vec("norm", "l2_normalize", b * store.d_embed, "unit-norm key")]
    if store.lists:
        ops += [gemm("centroids", b, store.lists, store.d_embed, "IVF: key · centroids"),
                vec("probe", "topk", b * store.lists, f"IVF: top-{store.nprobe} lists")]
    scanned = store.keys_scanned
    parts = -(-scanned // _MAX_CHUNKS)
    chunks = -(-scanned // parts)
    ops += [_lookup(f"{base}.scan", L, "key_scan", b * parts, chunks, store.d_embed,
                    f"{base}.keys", store.entries, f"key · {scanned} stored keys"),
            vec("best", "topk", b * parts * chunks, "best stored key")]
    return ops


def memoize(workload: Workload, store: MemoStore, hits, batch: int) -> Workload:
    """The inference ``workload`` of ``batch`` sequences with memoized attention.

    Parameters
    ----------
    workload : Workload
        ``training=False``.
    store : MemoStore
    hits : float or mapping
        :func:`hits_per_layer`: a hit rate for every attention layer, or rates per layer
        (index or path); layers not named run as before, with no search.
    batch : int

    Returns
    -------
    Workload
        Named ``<model>+memo``; the ops of each memoized layer as the module docstring lists.
    """
    sites = attention_sites(workload, batch)
    if not sites:
        raise ValueError(f"workload {workload.model!r} has no self-attention to memoize")
    per = hits_per_layer(sites, hits)
    by_qk = {s.qk: s for s in sites if s.layer in per}
    by_pv = {s.pv: s for s in sites if s.layer in per}
    skipped = {j: s for s in by_qk.values() for j in (s.qk, *s.scores)}
    out: list[Op] = []
    for i, op in enumerate(workload.ops):
        if i in by_qk:
            out += _search_ops(by_qk[i], store)
        if i in by_pv:
            s = by_pv[i]
            h, base = per[s.layer], s.layer + ".memo"
            if h:
                out.append(_lookup(f"{base}.fetch", s.layer, "map_fetch", h * s.map_rows, 1,
                                   s.s_k, f"{base}.maps", store.entries * s.map_rows,
                                   f"{h} stored maps"))
            if store.insert and h < batch:
                miss = batch - h
                out += [_lookup(f"{base}.insert", s.layer, "memo_insert", miss * s.map_rows, 1,
                                s.s_k, f"{base}.maps", store.entries * s.map_rows,
                                f"{miss} new maps"),
                        _lookup(f"{base}.insert_key", s.layer, "memo_insert", miss, 1,
                                store.d_embed, f"{base}.keys", store.entries,
                                f"{miss} new keys")]
        if i in skipped:
            s = skipped[i]
            miss = batch - per[s.layer]
            if miss == 0:
                continue
            if op.kind == "gemm":
                op = dataclasses.replace(op, repeat=miss * s.heads)
            else:
                op = dataclasses.replace(op, elements=op.elements // batch * miss)
        out.append(op)
    return dataclasses.replace(workload, ops=tuple(out), model=f"{workload.model}+memo")


# --- selective memoization: the performance model --------------------------------------------


@dataclass(frozen=True)
class MemoCosts:
    """Closed-form cycles of one memoized layer for a batch (:func:`memo_model`).

    Attributes
    ----------
    search : float
        Embedding MLP, centroid search, key scan and best-key pick of the whole batch: paid
        whether or not anything hits.
    skipped : float
        What one hit saves: its ``QKᵀ`` GEMM share and its score ops (scale, softmax).
    fetch : float
        What one hit costs: its map read from the tier and moved to DRAM for ``PV``.
    insert : float
        What one miss costs when the store is populated online (0 otherwise).
    batch : int
    """

    search: float
    skipped: float
    fetch: float
    insert: float
    batch: int

    def saving(self, hit_rate: float) -> float:
        """Expected cycles memoization saves on the batch (negative: it costs)."""
        b = self.batch
        return (hit_rate * b * (self.skipped - self.fetch) - self.search
                - (1 - hit_rate) * b * self.insert)

    def pays(self, hit_rate: float) -> bool:
        """Whether memoizing is expected to be faster at ``hit_rate``."""
        return self.saving(hit_rate) > 0

    @property
    def break_even(self) -> float:
        """The hit rate at which memoizing starts to pay (``inf`` when no hit rate pays)."""
        gain = self.batch * (self.skipped - self.fetch + self.insert)
        cost = self.search + self.batch * self.insert
        if gain <= 0:
            return math.inf
        return cost / gain


def _gemm_cycles(op: Op, config: AcceleratorConfig) -> float:
    from .mapping import OpShape, search

    # tile-blocked, as the compiler lays operands out (CompileOptions.tile_blocked): its
    # contiguous loads are the ones a wide DMA moves a bus word a request
    return search(OpShape(op.m, op.n, op.k), config, blocked=True).cycles * op.repeat


def _vector_cycles(op: Op, config: AcceleratorConfig, first: int = 0) -> float:
    """The kernel's passes from ``first`` on, back to back (:mod:`dataflow.vector_ops`)."""
    from hwsim.units.vector import pass_cycles

    from .vector_ops import kernel, pass_period

    k = kernel(op.op, op.pass_)
    per = k.dram_bytes / len(k.passes)
    return float(sum(pass_cycles(op.elements, pass_period(p), per, 0, config)[0]
                     for p in k.passes[first:]))


def _score_cycles(ops, site: AttentionSite, config: AcceleratorConfig) -> float:
    """The score ops after ``QKᵀ`` as the offline schedule runs them: pointwise ops (scale,
    mask) are stages of the softmax's passes, and its first pass consumes the GEMM's output
    tiles as they drain (:mod:`dataflow.vector_ops`), so only the later passes add time."""
    from .vector_ops import POINTWISE

    return sum(_vector_cycles(ops[j], config, first=1) for j in site.scores
               if ops[j].op not in POINTWISE)


def _lookup_cycles(op: Op, config: AcceleratorConfig, write: bool = False) -> float:
    """A row stream from (or, ``write``, a read-modify-write of fp32 rows to) the store's
    tier, by :func:`hwsim.tiers.gather_time` (writes at the tier's write bandwidth and
    latency), plus moving its VEC operands to and from DRAM."""
    from hwsim.tiers import gather_time

    tier = config.lookup.tiers[0]
    row = op.width * (4 if write else MAP_BYTES)
    rows = op.tokens * op.chunks
    q = max(1, min(tier.outstanding, config.lookup.rows_in_flight(row)))
    kw = dict(outstanding=q, ports=config.lookup.request_ports, clock_mhz=config.clock_mhz)
    ns = gather_time(tier, rows, row, **kw).ns
    if write:
        wtier = dataclasses.replace(tier, bandwidth_gbps=tier.write_bandwidth_gbps,
                                    read_latency_ns=tier.write_latency_ns)
        ns += gather_time(wtier, rows, row, **kw).ns
    cyc = ns * config.clock_mhz / 1e3
    words = {"key_scan": 2 * op.chunks + op.width, "map_fetch": 2 + op.width,
             "memo_insert": 2 + op.width}[op.op]
    return cyc + op.tokens * words * 4 / dma_bytes_per_cycle(config, _vec_entry_bytes(config))


def _vec_entry_bytes(config: AcceleratorConfig) -> int:
    return buffers.width(isa.Buffer.VEC, config) * buffers.elem_bytes(isa.Buffer.VEC, config)


def _op_cycles(op: Op, config: AcceleratorConfig) -> float:
    if op.kind == "gemm":
        return _gemm_cycles(op, config)
    if op.kind == "vector":
        return _vector_cycles(op, config)
    return _lookup_cycles(op, config, write=op.op == "memo_insert")


def memo_model(workload: Workload, site: AttentionSite, store: MemoStore,
               config: AcceleratorConfig) -> MemoCosts:
    """The selective-memoization model of one attention layer: closed forms only (the
    compiler's GEMM cost model :func:`dataflow.mapping.estimate`, the vector kernels' pass
    formula, :func:`hwsim.tiers.gather_time` for the store's tier), no simulation.

    ``config`` must be :func:`memo_config`'s (the store's tier first). The expected saving at
    hit rate ``r`` is ``r·B·(skipped - fetch) - search - (1 - r)·B·insert``
    (:meth:`MemoCosts.saving`).
    """
    b = site.batch
    search = sum(_op_cycles(op, config) for op in _search_ops(site, store))
    ops = workload.ops
    skipped = (_gemm_cycles(ops[site.qk], config) + _score_cycles(ops, site, config)) / b
    base = site.layer + ".memo"
    fetch = _lookup_cycles(_lookup(f"{base}.fetch", site.layer, "map_fetch", site.map_rows, 1,
                                   site.s_k, f"{base}.maps", store.entries * site.map_rows, ""),
                           config)
    insert = 0.0
    if store.insert:
        insert = (_lookup_cycles(_lookup(f"{base}.insert", site.layer, "memo_insert",
                                         site.map_rows, 1, site.s_k, f"{base}.maps",
                                         store.entries * site.map_rows, ""), config, True)
                  + _lookup_cycles(_lookup(f"{base}.insert_key", site.layer, "memo_insert", 1,
                                           1, store.d_embed, f"{base}.keys", store.entries, ""),
                                   config, True))
    return MemoCosts(search, skipped, fetch, insert, b)


# --- functional: a hit's attention through hwsim ----------------------------------------------


def compile_map_fetch(store_rows: int, s_k: int, rows: int, config: AcceleratorConfig, *,
                      tier: int = 0):
    """A program fetching ``rows`` map rows of ``s_k`` fp16 values from a map table of
    ``store_rows`` rows in ``config``'s lookup tier ``tier``: per block of rows,
    LOAD the row indices and weights (1.0), GATHER mode 0 with one chunk (``1.0 · T[row]``, the
    row exactly), STORE the fp32 rows.

    Tensors: ``T`` (``store_rows x s_k`` fp16, the map table), ``R`` (row indices, int32),
    ``P`` (weights, fp32), ``Y`` (``rows x s_k`` fp32, out).
    """
    from hwsim import isa
    from hwsim.program import Program, TensorRef

    from .lower.emitter import Alloc, Emitter
    from .lower.lookup import REG_T, LayerShape, Step, Stream, _setreg, emit_blocks

    alloc, t = Alloc(), {}
    for name, shape, dtype in (("R", (rows, 1), "int32"), ("P", (rows, 1), "fp32"),
                               ("Y", (rows, s_k), "fp32"), ("T", (store_rows, s_k), "fp16")):
        t[name] = TensorRef(alloc(TensorRef(0, shape, dtype).nbytes), shape, dtype)
    em = Emitter()
    _setreg(em, REG_T, t["T"].addr)
    s = LayerShape(tokens=rows, d=1, h=s_k, tau=1)
    emit_blocks(em, config, s, [Stream("rows", 1, t["R"].addr), Stream("p", 1, t["P"].addr)],
                [Step(isa.Opcode.GATHER, dict(in_addr="rows", p_addr="p", out_addr="y",
                                              table=REG_T, width=s_k, tier=tier,
                                              trows=store_rows))],
                [Stream("y", s_k, t["Y"].addr)], what="a map fetch")
    return Program(table=em.table(), dram_bytes=alloc.top, tensors=t, inputs=("R", "P", "T"),
                   outputs=("Y",))


def _gemm16(a, b, config: AcceleratorConfig):
    """``a @ b`` on the array, functionally: fp16 operands, fp32 sums (hwsim.numerics)."""
    import numpy as np

    from hwsim import run

    from .lower.gemm import compile_gemm

    m, k = a.shape
    n = b.shape[1]
    prog = compile_gemm(m, n, k, config, dataflow=config.array.dataflows[0])
    out = run(prog, config, "functional", inputs={"A": a.astype(np.float16),
                                                  "B": b.astype(np.float16)})
    return out.outputs["C"].astype(np.float32)


def hit_attention(qkv_weight, qkv_bias, out_weight, out_bias, x, maps, store_ids, heads: int,
                  config: AcceleratorConfig) -> tuple:
    """One memoized self-attention whose every sequence hits, run on hwsim functionally.

    Per sequence ``b``: the V projection on the array (``x·W_vᵀ``, fp16 operands, fp32 sums,
    bias added in fp32); the stored map ``maps[store_ids[b]]`` (``H x S x S`` fp16 in the map
    table) fetched by the lookup engine (:func:`compile_map_fetch`); ``P·V`` per head and the
    output projection on the array. ``QKᵀ`` and the softmax never run.

    Parameters
    ----------
    qkv_weight, qkv_bias, out_weight, out_bias : numpy.ndarray
        :class:`algorithms.transformer.CausalSelfAttention`'s ``qkv`` and ``out`` Linear
        parameters (``(3d, d)``, ``(3d,)``, ``(d, d)``, ``(d,)``).
    x : numpy.ndarray
        ``(B, S, d)`` attention inputs.
    maps : numpy.ndarray
        ``(entries, H, S, S)`` the store's maps (cast to fp16: the table's format).
    store_ids : sequence of int
        The stored entry each sequence hit.

    Returns
    -------
    out : numpy.ndarray
        ``(B, S, d)`` float32.
    fetched : numpy.ndarray
        ``(B, H, S, S)`` the maps as the lookup engine returned them (fp32).
    """
    import numpy as np

    from hwsim import run

    b, s, d = x.shape
    dh = d // heads
    entries = maps.shape[0]
    table = maps.astype(np.float16).reshape(entries * heads * s, s)
    ids = np.asarray(store_ids, np.int64)
    rows = (ids[:, None] * heads * s + np.arange(heads * s)[None, :]).reshape(-1)
    prog = compile_map_fetch(entries * heads * s, s, len(rows), config)
    res = run(prog, config, "functional",
              inputs={"R": rows.astype(np.int32).reshape(-1, 1),
                      "P": np.ones((len(rows), 1), np.float32), "T": table})
    fetched = res.outputs["Y"].reshape(b, heads, s, s)
    w_v, b_v = qkv_weight[2 * d:], qkv_bias[2 * d:]
    out = np.empty((b, s, d), np.float32)
    for i in range(b):
        v = _gemm16(x[i], w_v.T, config) + b_v.astype(np.float32)
        o = np.concatenate([_gemm16(fetched[i, h], v[:, h * dh:(h + 1) * dh], config)
                            for h in range(heads)], axis=1)
        out[i] = _gemm16(o, out_weight.T, config) + out_bias.astype(np.float32)
    return out, fetched


# --- whole models -------------------------------------------------------------------------------


@dataclass
class MemoResult:
    """A model's inference with and without memoized attention (:func:`simulate_memo`).

    Attributes
    ----------
    model, config : str
    store : MemoStore
    batch, seq_len : int
    rates : dict
        Hit rate of each attention layer (0 for layers not named by a per-layer ``hits``).
    layers : pandas.DataFrame
        One row per attention layer: ``layer, hit_rate, hits`` (sequences of the batch),
        ``memoized`` (run with memoization), ``plain_cycles, memo_cycles`` (the layer's
        cycles in each run: its search, fetch, ``QKᵀ``, softmax and ``PV``),
        ``saving`` (simulated), and the model's ``search, skipped, fetch, insert`` (cycles,
        per batch or per sequence as :class:`MemoCosts`), ``model_saving`` (at the hits the
        batch realised, ``hits / batch``, comparable with ``saving``), ``pays`` (at the layer's
        hit rate: the selective decision) and ``break_even``.
    plain, memo : dict
        Whole-run totals (:func:`dataflow.simulate.simulate_workload`).
    ops : pandas.DataFrame
        The memoized run's per-item table.
    baseline : tuple
        The plain run's per-item table and totals (``simulate_memo(baseline=...)``).
    """

    model: str
    config: str
    store: MemoStore
    batch: int
    seq_len: int
    rates: dict
    layers: object
    plain: dict
    memo: dict
    ops: object
    baseline: tuple = ()

    @property
    def saving(self) -> float:
        """Fraction of the plain run's cycles that memoization saves (negative: costs)."""
        return 1 - self.memo["cycles"] / self.plain["cycles"]

    def summary(self) -> str:
        n = int(self.layers["memoized"].sum())
        return (f"{self.model} on {self.config} batch {self.batch}, sequence {self.seq_len}, "
                f"maps in {self.store.tier} ({self.store.entries:,} entries a layer): "
                f"{self.plain['cycles']:,} cycles plain, {self.memo['cycles']:,} memoized "
                f"({n} of {len(self.layers)} layers), saving {self.saving:+.1%}")


def simulate_memo(model_name: str = "bert_base", hits=0.5, store: MemoStore | None = None,
                  config: AcceleratorConfig | str = "vcu1525", batch: int = 1, *,
                  selective: bool = False, options=None, baseline: tuple | None = None,
                  **model_kw) -> MemoResult:
    """One inference pass of zoo model ``model_name`` with and without memoized attention.

    Parameters
    ----------
    hits : float, mapping or path
        A hit rate for every layer, rates per layer (:func:`hits_per_layer`), or a trace CSV
        (:func:`read_trace`).
    store : MemoStore, optional
        Default ``MemoStore()`` (CXL, 1,024 entries a layer).
    selective : bool
        Memoize only the layers where :func:`memo_model` expects a saving at their hit rate
        (AttMEMO's selective memoization); otherwise every layer ``hits`` names.
    baseline : tuple, optional
        ``MemoResult.baseline`` of an earlier call with the same model, batch, config (up to
        the store's tier) and options: the plain pass is not simulated again (it has no
        lookups, so the tier does not change it).
    **model_kw
        :func:`dataflow.zoo.get_model` options (``seq_len``, ``n_layers`` ...).

    Raises
    ------
    MemoStoreError
        The store does not fit its tier.
    ValueError
        A model without self-attention, a bad hit rate or trace.
    """
    import os

    import pandas as pd

    from hwsim.config import load_config

    from .simulate import _group, simulate_workload
    from .workload import extract
    from .zoo import get_model

    store = store or MemoStore()
    if isinstance(hits, str | os.PathLike):
        hits = read_trace(hits)
    model, x = get_model(model_name, batch=batch, device="meta", **model_kw)
    wl = extract(model, x, method="dense", training=False, name=model_name)
    sites = attention_sites(wl, batch)
    if not sites:
        raise ValueError(f"model {model_name!r} has no self-attention to memoize")
    cfg = memo_config(load_config(config), store, sites)
    counts = hits_per_layer(sites, hits)
    rates = {s.layer: (counts[s.layer] / batch if s.layer in counts else 0.0) for s in sites}
    if not isinstance(hits, Mapping):
        rates = {s.layer: float(hits) for s in sites}
    costs = {s.layer: memo_model(wl, s, store, cfg) for s in sites}
    chosen = {layer: n for layer, n in counts.items()
              if not selective or costs[layer].pays(rates[layer])}
    if baseline is None:
        baseline = simulate_workload(wl, cfg, options)[1:]
    plain_df, plain = baseline
    if chosen:
        _, memo_df, memo = simulate_workload(memoize(wl, store, {k: v / batch for k, v in
                                                                 chosen.items()}, batch),
                                             cfg, options)
    else:
        memo_df, memo = plain_df, plain
    pl = _group(plain_df, "layer").set_index("layer")["cycles"]
    me = _group(memo_df, "layer").set_index("layer")["cycles"]
    rows = []
    for s in sites:
        c = costs[s.layer]
        rows.append({"layer": s.layer, "hit_rate": rates[s.layer],
                     "hits": counts.get(s.layer, 0), "memoized": s.layer in chosen,
                     "plain_cycles": int(pl[s.layer]), "memo_cycles": int(me[s.layer]),
                     "saving": int(pl[s.layer] - me[s.layer]), "search": c.search,
                     "skipped": c.skipped, "fetch": c.fetch, "insert": c.insert,
                     "model_saving": c.saving(counts.get(s.layer, 0) / batch),
                     "pays": c.pays(rates[s.layer]), "break_even": c.break_even})
    seq = x.shape[1] if x.dim() == 2 else 0
    return MemoResult(model_name, cfg.name, store, batch, seq, rates, pd.DataFrame(rows), plain,
                      memo, memo_df, (plain_df, plain))
