"""Lowering MemoryFormer memory layers onto the lookup engine (HASH, GATHER, SCATTER).

A memory layer ``y = sum_k p(z_k) T[k * 2**tau + h(z_k)]`` over ``tokens`` inputs of ``d``
elements becomes, per block of tokens whose operands fit VEC (:mod:`hwsim.units.lookup` says
what each command computes):

- forward: LOAD X -> HASH (rows, p) -> GATHER (y) -> STORE Y;
- backward: LOAD X, dY -> HASH (rows, p, recomputed rather than stored) -> GATHER mode 1
  (dL/dp = dY . T[row]) -> HASH mode 2/3 (dX = dL/dp * dp/dz) -> SCATTER (G[row] += p * dY)
  -> STORE dX and the rows R;
- update: per block of rows, LOAD R -> SCATTER mode 1 (the lazy SGD-with-momentum step of the
  rows whose gradient is non-zero: each touched row once, however often it was hit).

Tables live in the lookup config's tiers (:func:`hwsim.tiers.place_tables`): the fp16 table
``T`` that GATHER reads, and for training the fp32 master ``W``, gradient ``G`` and momentum
``V``, one contiguous ``[K * 2**tau, h]`` table each. Registers: 0 the hash scale ``fl(2/t)``,
1..4 the bases of T, W, G, V, 8..10 lr, momentum and weight decay.

Blocks overlap through four semaphores (:data:`SEMAPHORES`): the loads of block ``b + 1`` run
while block ``b``'s stores drain, never while the lookup engine uses VEC (VEC has one read
and one write port, shared). With ``fence=True`` (inside a whole-model program, whose
semaphores the GEMM protocol already uses) SYNC fences order the blocks instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.program import COL, Program, TensorRef
from hwsim.tiers import place_tables

from .emitter import Alloc, Emitter

__all__ = ["PHASES", "SEMAPHORES", "LayerShape", "compile_memory_layer", "emit_memory_layer",
           "token_block"]

PHASES = ("forward", "backward", "update", "train")
SEMAPHORES = {"loaded": 0, "stored": 1, "free": 2, "drained": 3}
"""DMA-in -> lookup (operands loaded), lookup -> DMA-out (results ready), lookup -> DMA-in
(VEC free for the next block's loads), DMA-out -> lookup (results drained)."""
REG_SCALE, REG_T, REG_HP = 0, 1, 8
_VEC = int(isa.Buffer.VEC)
_F = {name: COL[name] for name in ("buf", "sram_addr", "dram_addr", "rows", "elems", "stride",
                                   "in_addr", "p_addr", "out_addr", "table", "tokens",
                                   "chunks", "width", "tier", "mode", "reg", "value", "trows")}


@dataclass(frozen=True)
class LayerShape:
    """A memory layer: ``tokens`` inputs of ``d = chunks * tau`` elements, rows of ``h``."""

    tokens: int
    d: int
    h: int
    tau: int = 8
    weight: str = "paper"
    t: float = 1.0

    def __post_init__(self):
        for name in ("tokens", "d", "h", "tau"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.d % self.tau:
            raise ValueError(f"d = {self.d} is not a multiple of tau = {self.tau}: a HASH needs "
                             "whole chunks")
        if self.weight not in ("paper", "official"):
            raise ValueError(f"weight must be 'paper' or 'official', not {self.weight!r}")

    @property
    def chunks(self) -> int:
        return self.d // self.tau

    @property
    def table_rows(self) -> int:
        return self.chunks << self.tau


def _regions(words: dict[str, int], lanes: int) -> dict[str, int]:
    """Entry address of each VEC operand, packed in order."""
    out, a = {}, 0
    for name, n in words.items():
        out[name] = a
        a += -(-n // lanes)
    out["_end"] = a
    return out


def _block_words(s: LayerShape, tb: int, phase: str) -> dict[str, int]:
    K = s.chunks
    if phase == "forward":
        return {"z": tb * s.d, "rows": tb * K, "p": tb * K, "y": tb * s.h}
    if phase == "backward":
        # dX gets a region of its own: the next block's loads overwrite z and dy while this
        # block's stores may still read dX
        return {"z": tb * s.d, "dy": tb * s.h, "rows": tb * K, "p": tb * K, "g": tb * K,
                "dx": tb * s.d}
    return {"rows": tb * K}


def token_block(s: LayerShape, config: AcceleratorConfig, phase: str) -> int:
    """Tokens per block: the most whose operands fit VEC (and the ISA's 16-bit token field).

    Raises
    ------
    ValueError
        When one token's operands do not fit.
    """
    lanes, depth = config.vector.lanes, config.vec_depth
    per = sum(_block_words(s, 1, phase).values())
    tb = min(s.tokens, depth * lanes // per, (1 << 16) - 1)
    while tb > 0 and _regions(_block_words(s, tb, phase), lanes)["_end"] > depth:
        tb -= 1
    if tb < 1:
        raise ValueError(f"one token of a memory layer (d {s.d}, h {s.h}, tau {s.tau}) needs "
                         f"{per} VEC words; config {config.name!r} has {depth * lanes}")
    return tb


def _transfer(em: Emitter, opcode: int, entry: int, dram: int, words: int, lanes: int,
              wait: int = 0, signal: int = 0) -> None:
    """Move ``words`` consecutive 32-bit words between VEC (from ``entry``) and DRAM: whole
    entries, then a partial one, so nothing beyond the words is written."""
    full, rest = divmod(words, lanes)
    parts = [(entry, dram, full, lanes)] if full else []
    if rest:
        parts.append((entry + full, dram + full * lanes * 4, 1, rest))
    for i, (e, a, rows, elems) in enumerate(parts):
        r = em.new(opcode, wait if i == 0 else 0, signal if i == len(parts) - 1 else 0)
        r[_F["buf"]], r[_F["sram_addr"]], r[_F["dram_addr"]] = _VEC, e, a % (1 << 32)
        r[_F["rows"]], r[_F["elems"]], r[_F["stride"]] = rows, elems, lanes * 4


def _lookup(em: Emitter, opcode: isa.Opcode, s: LayerShape, tb: int, *, in_addr: int,
            p_addr: int, out_addr: int, table: int, width: int, mode: int, tier: int = 0,
            wait: int = 0, signal: int = 0) -> None:
    r = em.new(int(opcode), wait, signal)
    for name, v in (("in_addr", in_addr), ("p_addr", p_addr), ("out_addr", out_addr),
                    ("table", table), ("tokens", tb), ("chunks", s.chunks), ("width", width),
                    ("tier", tier), ("mode", mode), ("trows", 1 << s.tau)):
        r[_F[name]] = v


def _setreg(em: Emitter, reg: int, value: int) -> None:
    r = em.new(int(isa.Opcode.SETREG))
    r[_F["reg"]], r[_F["value"]] = reg, value & 0xFFFFFFFF


class Tokens:
    """Tokens a program's lookup blocks left on the ``free`` and ``drained`` semaphores: the
    next block waits for (and consumes) the ones its predecessor produced."""

    def __init__(self):
        self.free = self.drained = 0

    def take(self, name: str) -> int:
        if getattr(self, name) == 0:
            return 0
        setattr(self, name, getattr(self, name) - 1)
        return 1 << SEMAPHORES[name]


def emit_memory_layer(em: Emitter, s: LayerShape, config: AcceleratorConfig, phase: str,
                      dram: dict[str, int], *, tiers: dict[str, int] | None = None,
                      fence: bool = False, tokens: Tokens | None = None) -> int:
    """Append one phase of a memory layer to ``em``; returns the number of token blocks.

    Parameters
    ----------
    em : Emitter
    s : LayerShape
    config : AcceleratorConfig
    phase : {"forward", "backward", "update"}
        ``update`` loads the rows ``R`` a backward stored: the caller orders those stores
        before it (a SYNC), as :func:`compile_memory_layer` does.
    dram : dict
        Byte addresses: ``X`` and ``Y`` (forward), ``X``, ``dY``, ``dX``, ``R`` (backward),
        ``R`` (update); the table registers are set by the caller (:func:`table_registers`).
    tiers : dict, optional
        ``config.lookup.tiers`` index of the tier holding each table (``T``, ``G``, ``W``;
        default 0): GATHER reads T's, SCATTER updates G's, the row update W's.
    fence : bool
        Order blocks with SYNC instead of semaphores.
    tokens : Tokens, optional
        The semaphore tokens earlier blocks of the program left (one program, one object).
    """
    tiers = tiers or {}
    tokens = Tokens() if tokens is None else tokens
    lanes = config.vector.lanes
    K = s.chunks
    tb = token_block(s, config, phase)
    reg = _regions(_block_words(s, tb, phase), lanes)
    sem = {k: 1 << v for k, v in SEMAPHORES.items()}
    load, store = int(isa.Opcode.LOAD), int(isa.Opcode.STORE)
    mode = 1 if s.weight == "official" else 0
    t_gather, t_grad, t_update = (tiers.get(n, 0) for n in ("T", "G", "W"))
    blocks = 0
    for b0 in range(0, s.tokens, tb):
        n = min(tb, s.tokens - b0)
        # VEC is free once the previous block's lookups are done, and drained of its results
        # once its stores are (its operands are overwritten, its ports shared)
        w_free = 0 if fence else tokens.take("free")
        w_drained = 0 if fence else tokens.take("drained")
        loaded = 0 if fence else sem["loaded"]
        if phase == "forward":
            _transfer(em, load, reg["z"], dram["X"] + b0 * s.d * 4, n * s.d, lanes, w_free,
                      loaded)
        elif phase == "backward":
            _transfer(em, load, reg["z"], dram["X"] + b0 * s.d * 4, n * s.d, lanes, w_free)
            _transfer(em, load, reg["dy"], dram["dY"] + b0 * s.h * 4, n * s.h, lanes, 0, loaded)
        else:
            _transfer(em, load, reg["rows"], dram["R"] + b0 * K * 4, n * K, lanes, w_free,
                      loaded)
        if fence:
            em.sync()
        stores = phase != "update"
        done = 0 if fence else sem["free"] | (sem["stored"] if stores else 0)
        first = loaded | w_drained
        if phase in ("forward", "backward"):
            _lookup(em, isa.Opcode.HASH, s, n, in_addr=reg["z"], p_addr=reg["p"],
                    out_addr=reg["rows"], table=REG_SCALE, width=s.tau, mode=mode,
                    wait=first)
        if phase == "forward":
            _lookup(em, isa.Opcode.GATHER, s, n, in_addr=reg["rows"], p_addr=reg["p"],
                    out_addr=reg["y"], table=REG_T, width=s.h, mode=0, tier=t_gather,
                    signal=done)
        elif phase == "backward":
            _lookup(em, isa.Opcode.GATHER, s, n, in_addr=reg["rows"], p_addr=reg["dy"],
                    out_addr=reg["g"], table=REG_T, width=s.h, mode=1, tier=t_gather)
            _lookup(em, isa.Opcode.HASH, s, n, in_addr=reg["z"], p_addr=reg["g"],
                    out_addr=reg["dx"], table=REG_SCALE, width=s.tau, mode=2 + mode)
            _lookup(em, isa.Opcode.SCATTER, s, n, in_addr=reg["rows"], p_addr=reg["p"],
                    out_addr=reg["dy"], table=REG_T + 2, width=s.h, mode=0, tier=t_grad,
                    signal=done)
        else:
            _lookup(em, isa.Opcode.SCATTER, s, n, in_addr=reg["rows"], p_addr=REG_HP,
                    out_addr=0, table=REG_T, width=s.h, mode=1, tier=t_update, wait=first,
                    signal=done)
        if not fence:
            tokens.free += 1
        if fence:
            em.sync()
        w_out = 0 if fence else sem["stored"]
        drained = 0 if fence else sem["drained"]
        if phase == "forward":
            _transfer(em, store, reg["y"], dram["Y"] + b0 * s.h * 4, n * s.h, lanes, w_out,
                      drained)
        elif phase == "backward":
            _transfer(em, store, reg["dx"], dram["dX"] + b0 * s.d * 4, n * s.d, lanes, w_out)
            _transfer(em, store, reg["rows"], dram["R"] + b0 * K * 4, n * K, lanes, 0, drained)
        if stores and not fence:
            tokens.drained += 1
        blocks += 1
    if fence and phase != "update":
        em.sync()
    return blocks


def table_registers(em: Emitter, s: LayerShape, tables: dict[str, int], *, lr: float = 0.01,
                    momentum: float = 0.9, weight_decay: float = 0.0) -> None:
    """SETREG the hash scale, the table bases (``T``, ``W``, ``G``, ``V``) and the optimizer's
    hyper-parameters (fp32 bit patterns)."""
    _setreg(em, REG_SCALE, int(np.float32(2.0 / s.t).view(np.uint32)))
    for i, name in enumerate(("T", "W", "G", "V")):
        if name in tables:
            _setreg(em, REG_T + i, tables[name])
    for i, v in enumerate((lr, momentum, weight_decay)):
        _setreg(em, REG_HP + i, int(np.float32(v).view(np.uint32)))


def compile_memory_layer(s: LayerShape, config: AcceleratorConfig, *, phase: str = "forward",
                         lr: float = 0.01, momentum: float = 0.9,
                         weight_decay: float = 0.0) -> Program:
    """A program running one memory layer on ``config``'s lookup engine.

    Tensors (DRAM image; the tables' tier is where :func:`hwsim.tiers.place_tables` puts them):
    ``X`` (tokens x d fp32), ``T`` (rows x h fp16), and per phase ``Y`` (forward output);
    ``dY`` in, ``dX`` and ``R`` (the rows, int32) out, ``W``, ``G``, ``V`` (fp32 tables)
    (``backward``); ``train`` runs forward, backward and update, the tables updated in place.

    Raises
    ------
    ValueError
        A bad shape or phase, or operands that do not fit VEC.
    hwsim.tiers.PlacementError
        Tables that fit no tier.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    train = phase in ("backward", "update", "train")
    alloc, t = Alloc(), {}

    def tensor(name, shape, dtype):
        ref = TensorRef(0, shape, dtype)
        t[name] = TensorRef(alloc(ref.nbytes), shape, dtype)

    tensor("X", (s.tokens, s.d), "fp32")
    tensor("Y", (s.tokens, s.h), "fp32")
    if train:
        tensor("dY", (s.tokens, s.h), "fp32")
        tensor("dX", (s.tokens, s.d), "fp32")
        tensor("R", (s.tokens, s.chunks), "int32")
    names = ("T", "W", "G", "V") if train else ("T",)
    sizes = [s.table_rows * s.h * (2 if n == "T" else 4) for n in names]
    placement = place_tables(sizes, config.lookup)
    index = [tt.name for tt in config.lookup.tiers]
    tiers = {n: index.index(placement.tiers[i]) for i, n in enumerate(names)}
    for n in names:
        tensor(n, (s.table_rows, s.h), "fp16" if n == "T" else "fp32")
    em = Emitter()
    table_registers(em, s, {n: t[n].addr for n in names}, lr=lr, momentum=momentum,
                    weight_decay=weight_decay)
    addr = {n: r.addr for n, r in t.items()}
    phases = {"forward": ("forward",), "backward": ("backward",), "update": ("update",),
              "train": ("forward", "backward", "update")}[phase]
    tokens = Tokens()
    for ph in phases:
        if ph == "update" and len(phases) > 1:
            em.sync()  # the rows R the backward stored must be in DRAM before they are loaded
        emit_memory_layer(em, s, config, ph, addr, tiers=tiers, tokens=tokens)
    inputs = ("X", "T", *(("dY", "W", "G", "V") if train else ()))
    outputs = {"forward": ("Y",), "backward": ("dX", "R", "G"), "update": ("W", "V", "T", "G"),
               "train": ("Y", "dX", "W", "V", "T")}[phase]
    return Program(table=em.table(), dram_bytes=alloc.top, tensors=t, inputs=inputs,
                   outputs=outputs)

