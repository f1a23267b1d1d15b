"""Lowering MemoryFormer memory layers onto the lookup engine (HASH, GATHER, SCATTER).

A memory layer ``y = sum_k p(z_k) T[k * 2**tau + h(z_k)]`` over ``tokens`` inputs of ``d``
elements becomes, per block of tokens whose operands fit VEC (:mod:`hwsim.units.lookup` says
what each command computes):

- forward: LOAD X -> HASH (rows, p) -> GATHER (y) -> STORE Y;
- backward: LOAD X, dY -> HASH (rows, p, recomputed rather than stored) -> GATHER mode 1
  (dL/dp = dY . T[row]) -> HASH mode 2/3 (dX = dL/dp * dp/dz) -> SCATTER (G[row] += p * dY)
  -> STORE dX and the rows R;
- update: per block of rows, LOAD R -> SCATTER mode 1 or 2 (the lazy optimizer step of the
  rows whose gradient is non-zero: each touched row once, however often it was hit), by the
  table optimizer (:data:`TABLE_OPTIMIZERS`): ``"sgd_momentum"`` (mode 1, the default) or
  ``"adam"`` (mode 2, SparseAdam's step).

Tables live in the lookup config's tiers (:func:`hwsim.tiers.place_tables`): the fp16 table
``T`` that GATHER reads, and for training the fp32 master ``W``, gradient ``G`` and the
optimizer's state, one contiguous ``[K * 2**tau, h]`` table each: the momentum ``V``
(``sgd_momentum``), or the first and second moments ``M`` and ``V`` (``adam``: one fp32 table
more per memory layer). Registers: 0 the hash scale ``fl(2/t)``; 1..4 the bases of T, W, G, V
and 8..10 lr, momentum and weight decay (``sgd_momentum``); 1..5 the bases of T, W, G, M, V
and 8..12 ``lr_t``, ``1 - beta1``, ``1 - beta2``, eps and weight decay (``adam``, as
:func:`hwsim.units.vector.adam_registers` computes them for the step).

Blocks overlap through four semaphores (:data:`SEMAPHORES`): the loads of block ``b + 1`` run
while block ``b``'s stores drain, never while the lookup engine uses VEC (VEC has one read
and one write port, shared). With ``fence=True`` (inside a whole-model program, whose
semaphores the GEMM protocol already uses) SYNC fences order the blocks instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim import buffers, isa
from hwsim.config import AcceleratorConfig
from hwsim.dram import dma_bytes_per_cycle
from hwsim.program import COL, Program, TensorRef
from hwsim.tiers import gather_time, place_tables
from hwsim.units.lookup import rtl_limit
from hwsim.units.vector import adam_registers

from .emitter import Alloc, Emitter

__all__ = ["ADAM_DEFAULTS", "MODEL_SEMAPHORES", "PHASES", "SEMAPHORES", "TABLE_OPTIMIZERS",
           "LayerShape", "ModelLookups", "Step", "Stream", "Tokens", "block_tokens",
           "check_rtl_limits", "check_table_optimizer", "compile_memory_layer", "emit_blocks",
           "emit_memory_layer", "table_kinds", "token_block"]

PHASES = ("forward", "backward", "update", "train")
SEMAPHORES = {"loaded": 0, "stored": 1, "free": 2, "drained": 3}
"""DMA-in -> lookup (operands loaded), lookup -> DMA-out (results ready), lookup -> DMA-in
(VEC free for the next block's loads), DMA-out -> lookup (results drained)."""
REG_SCALE, REG_T, REG_HP = 0, 1, 8
TABLE_OPTIMIZERS = ("sgd_momentum", "adam")
"""The memory tables' optimizers: SCATTER mode 1 (SGD with momentum) and mode 2 (Adam)."""
_UPDATE_MODE = {"sgd_momentum": 1, "adam": 2}
ADAM_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                 "step": 1}
"""The Adam hyper-parameters of a whole-model program (``torch.optim.SparseAdam``'s defaults, its
first step)."""
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


def check_table_optimizer(optimizer: str) -> None:
    """Raise ``ValueError`` unless ``optimizer`` is one of :data:`TABLE_OPTIMIZERS`."""
    if optimizer not in TABLE_OPTIMIZERS:
        raise ValueError(f"table optimizer must be one of {TABLE_OPTIMIZERS}, not {optimizer!r}")


def table_kinds(optimizer: str = "sgd_momentum", training: bool = True) -> tuple[str, ...]:
    """The tables of a memory layer, in register order from ``REG_T``: ``T`` alone for
    inference; ``T, W, G, V`` (``sgd_momentum``) or ``T, W, G, M, V`` (``adam``) for training."""
    check_table_optimizer(optimizer)
    if not training:
        return ("T",)
    return ("T", "W", "G", "M", "V") if optimizer == "adam" else ("T", "W", "G", "V")


def _regions(words: dict[str, int], lanes: int) -> dict[str, int]:
    """Entry address of each VEC operand, packed in order."""
    out, a = {}, 0
    for name, n in words.items():
        out[name] = a
        a += -(-n // lanes)
    out["_end"] = a
    return out


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
            p_addr: int, out_addr: int, table: int, width: int, mode: int = 0, tier: int = 0,
            wait: int = 0, signal: int = 0, trows: int | None = None) -> None:
    """One lookup command; ``trows`` (timing mode's rows a chunk) defaults to ``2**tau``."""
    r = em.new(int(opcode), wait, signal)
    for name, v in (("in_addr", in_addr), ("p_addr", p_addr), ("out_addr", out_addr),
                    ("table", table), ("tokens", tb), ("chunks", s.chunks), ("width", width),
                    ("tier", tier), ("mode", mode),
                    ("trows", 1 << s.tau if trows is None else trows)):
        r[_F[name]] = v


def _setreg(em: Emitter, reg: int, value: int) -> None:
    r = em.new(int(isa.Opcode.SETREG))
    r[_F["reg"]], r[_F["value"]] = reg, value & 0xFFFFFFFF


class Tokens:
    """Tokens a program's lookup blocks left on the ``free`` and ``drained`` semaphores: the
    next block waits for (and consumes) the ones its predecessor produced."""

    def __init__(self):
        self.free = self.drained = 0

    def take(self, name: str, sems: dict[str, int] = SEMAPHORES) -> int:
        """The wait bit for one of ``name``'s tokens, if one is pending (0 otherwise)."""
        if getattr(self, name) == 0:
            return 0
        setattr(self, name, getattr(self, name) - 1)
        return 1 << sems[name]


@dataclass(frozen=True)
class Stream:
    """An operand of a lookup block: ``words`` 32-bit words per token in VEC region ``name``,
    moved from or to DRAM byte address ``dram`` (token-major)."""

    name: str
    words: int
    dram: int = -1


@dataclass(frozen=True)
class Step:
    """One lookup command of a block: its opcode and fields (``in_addr``, ``p_addr`` and
    ``out_addr`` given as VEC region names, or a register number for ``p_addr`` when an
    int)."""

    opcode: isa.Opcode
    fields: dict


def _words_per_token(regions: list[Stream]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in regions:
        out[r.name] = max(out.get(r.name, 0), r.words)
    return out


def block_tokens(words: dict[str, int], tokens: int, config: AcceleratorConfig,
                 what: str = "a lookup op") -> int:
    """Tokens per block: the most whose VEC regions (``words`` per token each) fit VEC, and
    the ISA's 16-bit token field.

    Raises
    ------
    ValueError
        When one token's operands do not fit.
    """
    lanes, depth = config.vector.lanes, config.vec_depth
    per = sum(words.values())
    tb = min(tokens, depth * lanes // max(per, 1), (1 << 16) - 1)
    while tb > 0 and _regions({k: v * tb for k, v in words.items()}, lanes)["_end"] > depth:
        tb -= 1
    if tb < 1:
        raise ValueError(f"one token of {what} needs {per} VEC words; config "
                         f"{config.name!r} has {depth * lanes}")
    return tb


def check_rtl_limits(config: AcceleratorConfig, s: LayerShape, steps: list[Step],
                     what: str = "a lookup op") -> None:
    """With ``config.lookup.rtl_limits``, refuse in one line the lookup ``steps`` of layer
    ``s`` that the RTL engine cannot run (:func:`hwsim.units.lookup.rtl_limit`), naming the
    limit and the config field that sets it. Blocks of fewer tokens do not help (the limits
    are a row's bytes, its window, a chunk's width and the chunks a token), and a row cannot
    be split without another table layout, so the compiler does not tile around them.

    Raises
    ------
    ValueError
        A step beyond a limit.
    """
    if not config.lookup.rtl_limits:
        return
    for step in steps:
        f = step.fields
        cmd = isa.command_class(step.opcode)(
            in_addr=0, p_addr=0, out_addr=0, table=f.get("table", 0), tokens=1,
            chunks=s.chunks, width=f["width"], tier=f.get("tier", 0), mode=f.get("mode", 0))
        bad = rtl_limit(cmd, config)
        if bad is not None:
            raise ValueError(
                f"{what}: its {cmd.name} mode {cmd.mode} cannot run on the RTL lookup engine "
                f"of config {config.name!r}: {bad[1]}; raise that field, or set "
                "lookup.rtl_limits to "
                "false to model an engine sized for it")


def emit_blocks(em: Emitter, config: AcceleratorConfig, s: LayerShape, loads: list[Stream],
                steps: list[Step], stores: list[Stream], *, scratch: tuple[Stream, ...] = (),
                sems: dict[str, int] = SEMAPHORES, tokens: Tokens | None = None,
                fence: bool = False, what: str = "a lookup op") -> int:
    """Append the blocks of one lookup op: per block of tokens, the ``loads`` into VEC, the
    lookup ``steps``, the ``stores`` out of VEC; returns the number of blocks.

    Blocks overlap through ``sems`` (names of :data:`SEMAPHORES` to semaphore numbers): a
    block's loads wait until the previous block's lookups are done with VEC (``free``), its
    first lookup until its loads are in (``loaded``) and the previous block's stores have
    drained VEC (``drained``); its stores wait for its last lookup (``stored``). With
    ``fence`` SYNCs order everything instead.
    """
    check_rtl_limits(config, s, steps, what)
    tokens = Tokens() if tokens is None else tokens
    lanes = config.vector.lanes
    words = _words_per_token([*loads, *stores, *scratch])
    tb = block_tokens(words, s.tokens, config, what)
    bit = {k: 1 << v for k, v in sems.items()}
    load, store = int(isa.Opcode.LOAD), int(isa.Opcode.STORE)
    reg = _regions({k: v * tb for k, v in words.items()}, lanes)  # one layout for every block
    blocks = 0
    for b0 in range(0, s.tokens, tb):
        n = min(tb, s.tokens - b0)
        w_free = 0 if fence else tokens.take("free", sems)
        w_drained = 0 if fence else tokens.take("drained", sems)
        loaded = 0 if fence else bit["loaded"]
        for i, st in enumerate(loads):
            last = i == len(loads) - 1
            _transfer(em, load, reg[st.name], st.dram + b0 * st.words * 4, n * st.words, lanes,
                      w_free if i == 0 else 0, loaded if last else 0)
        if fence:
            em.sync()
        done = 0 if fence else bit["free"] | (bit["stored"] if stores else 0)
        for i, step in enumerate(steps):
            f = dict(step.fields)
            for k in ("in_addr", "p_addr", "out_addr"):
                if isinstance(f.get(k), str):
                    f[k] = reg[f[k]]
            first = (loaded | w_drained) if i == 0 else 0
            _lookup(em, step.opcode, s, n, wait=first,
                    signal=done if i == len(steps) - 1 else 0, **f)
        if not fence:
            tokens.free += 1
        if fence:
            em.sync()
        for i, st in enumerate(stores):
            last = i == len(stores) - 1
            _transfer(em, store, reg[st.name], st.dram + b0 * st.words * 4, n * st.words, lanes,
                      0 if fence or i else bit["stored"],
                      bit["drained"] if last and not fence else 0)
        if stores and not fence:
            tokens.drained += 1
        blocks += 1
    if fence:
        em.sync()
    return blocks


def _layer_phase(s: LayerShape, phase: str, dram: dict[str, int], tiers: dict[str, int],
                 optimizer: str = "sgd_momentum"):
    """The loads, steps and stores of one phase of a memory layer."""
    K, mode = s.chunks, 1 if s.weight == "official" else 0
    t_gather, t_grad, t_update = (tiers.get(n, 0) for n in ("T", "G", "W"))
    hash_ = Step(isa.Opcode.HASH, dict(in_addr="z", p_addr="p", out_addr="rows",
                                       table=REG_SCALE, width=s.tau, mode=mode))
    if phase == "forward":
        return ([Stream("z", s.d, dram["X"])],
                [hash_, Step(isa.Opcode.GATHER, dict(in_addr="rows", p_addr="p", out_addr="y",
                                                     table=REG_T, width=s.h, tier=t_gather))],
                [Stream("y", s.h, dram["Y"])], (Stream("rows", K), Stream("p", K)))
    if phase == "backward":
        # dX gets a region of its own: the next block's loads overwrite z and dy while this
        # block's stores may still read dX
        return ([Stream("z", s.d, dram["X"]), Stream("dy", s.h, dram["dY"])],
                [hash_,
                 Step(isa.Opcode.GATHER, dict(in_addr="rows", p_addr="dy", out_addr="g",
                                              table=REG_T, width=s.h, mode=1, tier=t_gather)),
                 Step(isa.Opcode.HASH, dict(in_addr="z", p_addr="g", out_addr="dx",
                                            table=REG_SCALE, width=s.tau, mode=2 + mode)),
                 Step(isa.Opcode.SCATTER, dict(in_addr="rows", p_addr="p", out_addr="dy",
                                               table=REG_T + 2, width=s.h, tier=t_grad))],
                [Stream("dx", s.d, dram["dX"]), Stream("rows", K, dram["R"])],
                (Stream("p", K), Stream("g", K)))
    return ([Stream("rows", K, dram["R"])],
            [Step(isa.Opcode.SCATTER, dict(in_addr="rows", p_addr=REG_HP, out_addr=0,
                                           table=REG_T, width=s.h, mode=_UPDATE_MODE[optimizer],
                                           tier=t_update))],
            [], ())


def token_block(s: LayerShape, config: AcceleratorConfig, phase: str) -> int:
    """Tokens per block of one phase of a memory layer (:func:`block_tokens`)."""
    dram = dict.fromkeys(("X", "Y", "dY", "dX", "R"), 0)
    loads, _, stores, scratch = _layer_phase(s, phase, dram, {})
    what = f"a memory layer (d {s.d}, h {s.h}, tau {s.tau})"
    return block_tokens(_words_per_token([*loads, *stores, *scratch]), s.tokens, config, what)


def emit_memory_layer(em: Emitter, s: LayerShape, config: AcceleratorConfig, phase: str,
                      dram: dict[str, int], *, tiers: dict[str, int] | None = None,
                      fence: bool = False, tokens: Tokens | None = None,
                      sems: dict[str, int] = SEMAPHORES, optimizer: str = "sgd_momentum") -> int:
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
    fence, tokens, sems
        As :func:`emit_blocks`.
    optimizer : {"sgd_momentum", "adam"}
        The row update's optimizer (SCATTER mode 1 or 2): its table and hyper-parameter
        registers must hold what :func:`table_registers` sets for it.
    """
    check_table_optimizer(optimizer)
    loads, steps, stores, scratch = _layer_phase(s, phase, dram, tiers or {}, optimizer)
    return emit_blocks(em, config, s, loads, steps, stores, scratch=scratch, sems=sems,
                       tokens=tokens, fence=fence,
                       what=f"a memory layer (d {s.d}, h {s.h}, tau {s.tau})")


def _hyper_parameters(optimizer: str, lr: float, momentum: float, weight_decay: float,
                      betas: tuple[float, float], eps: float, step: int) -> tuple[int, ...]:
    """The fp32 bit patterns of the row update's hyper-parameter registers from ``REG_HP``."""
    if optimizer == "adam":
        return adam_registers(lr, betas, eps, weight_decay, step)
    return tuple(int(np.float32(v).view(np.uint32)) for v in (lr, momentum, weight_decay))


def table_registers(em: Emitter, s: LayerShape, tables: dict[str, int], *, lr: float = 0.01,
                    momentum: float = 0.9, weight_decay: float = 0.0,
                    optimizer: str = "sgd_momentum", betas: tuple[float, float] = (0.9, 0.999),
                    eps: float = 1e-8, step: int = 1) -> None:
    """SETREG the hash scale, the table bases (:func:`table_kinds` order: ``T``, ``W``, ``G``,
    then ``V``, or ``M`` and ``V`` for Adam) and the optimizer's hyper-parameters (fp32 bit
    patterns: lr, momentum, weight decay; or Adam's ``lr_t`` of ``step``, ``1 - beta1``,
    ``1 - beta2``, eps, weight decay)."""
    _setreg(em, REG_SCALE, int(np.float32(2.0 / s.t).view(np.uint32)))
    for i, name in enumerate(table_kinds(optimizer)):
        if name in tables:
            _setreg(em, REG_T + i, tables[name])
    for i, v in enumerate(_hyper_parameters(optimizer, lr, momentum, weight_decay, betas, eps,
                                            step)):
        _setreg(em, REG_HP + i, v)


def compile_memory_layer(s: LayerShape, config: AcceleratorConfig, *, phase: str = "forward",
                         lr: float = 0.01, momentum: float = 0.9,
                         weight_decay: float = 0.0, optimizer: str = "sgd_momentum",
                         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                         step: int = 1) -> Program:
    """A program running one memory layer on ``config``'s lookup engine.

    Tensors (DRAM image; the tables' tier is where :func:`hwsim.tiers.place_tables` puts them):
    ``X`` (tokens x d fp32), ``T`` (rows x h fp16), and per phase ``Y`` (forward output);
    ``dY`` in, ``dX`` and ``R`` (the rows, int32) out, ``W``, ``G``, ``V`` (fp32 tables; Adam
    also ``M``) (``backward``); ``train`` runs forward, backward and update, the tables updated
    in place.

    Parameters
    ----------
    optimizer : {"sgd_momentum", "adam"}
        The table update's optimizer. ``sgd_momentum`` uses ``lr``, ``momentum`` and
        ``weight_decay``; ``adam`` uses ``lr``, ``betas``, ``eps``, ``weight_decay`` (L2, added
        to the gradient) and ``step`` (which step of the run this is, for the bias correction
        folded into the step size; :func:`hwsim.units.vector.adam_registers`).

    Raises
    ------
    ValueError
        A bad shape, phase or optimizer, or operands that do not fit VEC.
    hwsim.tiers.PlacementError
        Tables that fit no tier.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    check_table_optimizer(optimizer)
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
    names = table_kinds(optimizer, train)
    sizes = [s.table_rows * s.h * (2 if n == "T" else 4) for n in names]
    placement = place_tables(sizes, config.lookup)
    index = [tt.name for tt in config.lookup.tiers]
    tiers = {n: index.index(placement.tiers[i]) for i, n in enumerate(names)}
    for n in names:
        tensor(n, (s.table_rows, s.h), "fp16" if n == "T" else "fp32")
    em = Emitter()
    table_registers(em, s, {n: t[n].addr for n in names}, lr=lr, momentum=momentum,
                    weight_decay=weight_decay, optimizer=optimizer, betas=betas, eps=eps,
                    step=step)
    addr = {n: r.addr for n, r in t.items()}
    phases = {"forward": ("forward",), "backward": ("backward",), "update": ("update",),
              "train": ("forward", "backward", "update")}[phase]
    tokens = Tokens()
    for ph in phases:
        if ph == "update" and len(phases) > 1:
            em.sync()  # the rows R the backward stored must be in DRAM before they are loaded
        emit_memory_layer(em, s, config, ph, addr, tiers=tiers, tokens=tokens,
                          optimizer=optimizer)
    inputs = ("X", "T", *(("dY", *names[1:]) if train else ()))
    state = tuple(n for n in names if n in ("M", "V"))
    outputs = {"forward": ("Y",), "backward": ("dX", "R", "G"),
               "update": ("W", *state, "T", "G"), "train": ("Y", "dX", "W", *state, "T")}[phase]
    return Program(table=em.table(), dram_bytes=alloc.top, tensors=t, inputs=inputs,
                   outputs=outputs)



# --- whole models: one lookup op of a workload at a time ----------------------------------------

MODEL_SEMAPHORES = {"loaded": 4, "stored": 5, "free": 6, "drained": 7}
"""The lookup blocks' semaphores inside a whole-model program, whose GEMM protocol holds 0-3
(the compiler emits lookup items in plan order with SYNCs between items, so 4-7 are free)."""


class ModelLookups:
    """The tables and activations of a workload's lookup ops, and their emission.

    Tables (one per memory layer, ``table_rows x width``): the fp16 table ``T`` and, when the
    workload trains, the fp32 master ``W``, gradient ``G`` and the optimizer's state (momentum
    ``V``, or Adam's moments ``M`` and ``V``: :func:`table_kinds`), placed in the lookup
    config's tiers by :func:`hwsim.tiers.place_tables` (registers hold tier-local offsets,
    modulo 2**32). Activations get DRAM space from ``alloc`` per op: a hash op's rows ``R`` and
    weights ``P`` (read by its gathers, gradients and scatters), each op's own input and output.
    The hash scale is ``2/t`` with ``t = 1`` (the official code's). ``optimizer`` is the
    ``table_update`` ops' (:data:`TABLE_OPTIMIZERS`): SGD with momentum with lr 0.01, momentum
    0.9, or Adam with :data:`ADAM_DEFAULTS`; no weight decay.

    Raises
    ------
    hwsim.tiers.PlacementError
        A table that fits in no tier (names the tiers and their free space).
    """

    def __init__(self, ops, config: AcceleratorConfig, alloc: Alloc, training: bool,
                 optimizer: str = "sgd_momentum"):
        self.config = config
        self.optimizer = optimizer
        self.ops = {op.name: op for op in ops}
        tables: dict[str, tuple[int, int]] = {}
        self.hash_of_table: dict[str, str] = {}
        for op in ops:
            if op.table and op.op != "table_update":
                tables[op.table] = (op.table_rows, op.width)
                if op.hash_op:
                    self.hash_of_table.setdefault(op.table, op.hash_op)
        self.kinds = kinds = table_kinds(optimizer, training)
        entries = [(t, k) for t in tables for k in kinds]
        sizes = [tables[t][0] * tables[t][1] * (2 if k == "T" else 4) for t, k in entries]
        placement = place_tables(sizes, config.lookup)
        index = [tier.name for tier in config.lookup.tiers]
        self.tier = {e: index.index(placement.tiers[i]) for i, e in enumerate(entries)}
        self.base = {e: placement.offsets[i] for i, e in enumerate(entries)}
        self.placement = placement
        self.dram: dict[str, dict[str, int]] = {}
        for op in ops:
            s = self._shape(op)
            words = self._words_of(op, s)
            self.dram[op.name] = {k: alloc(4 * w * s.tokens) for k, w in words.items()}
        self.hp_set = False

    @staticmethod
    def _shape(op) -> LayerShape:
        return LayerShape(tokens=op.tokens, d=op.chunks * op.tau, h=max(op.width, 1),
                          tau=op.tau, weight=op.weight or "paper")

    def _registers(self, em: Emitter, op) -> None:
        if not self.hp_set:
            a = ADAM_DEFAULTS
            if self.optimizer == "adam":
                hp = adam_registers(a["lr"], a["betas"], a["eps"], a["weight_decay"], a["step"])
            else:  # lr, momentum, weight decay
                hp = tuple(int(np.float32(v).view(np.uint32)) for v in (0.01, 0.9, 0.0))
            for i, v in enumerate(hp):
                _setreg(em, REG_HP + i, v)
            _setreg(em, REG_SCALE, int(np.float32(2.0).view(np.uint32)))
            self.hp_set = True
        if op.table:
            for i, k in enumerate(self.kinds):
                if (op.table, k) in self.base:
                    _setreg(em, REG_T + i, self.base[(op.table, k)])

    def estimate(self, op) -> float:
        """Cycles the compiler's offline schedule expects lookup op ``op`` to take: its rows
        from the table's tier (:func:`hwsim.tiers.gather_time`, read-modify-write twice) and its
        VEC operands to and from DRAM, one after the other (a virtual time for ordering, not a
        result)."""
        s = self._shape(op)
        cfg = self.config
        words = sum(4 * self._words_of(op, s).get(k, 0) for k in self.dram[op.name])
        rows = 0 if op.op in ("hash", "hash_grad") else op.tokens * s.chunks
        t = 0.0
        if rows:
            tier = cfg.lookup.tiers[self.tier.get((op.table, "T"), 0)]
            row = s.h * (2 if op.op in ("gather", "lookup_grad", "key_scan", "map_fetch")
                         else 4)
            q = max(1, min(tier.outstanding, cfg.lookup.rows_in_flight(row)))
            ns = gather_time(tier, rows, row, outstanding=q, ports=cfg.lookup.request_ports,
                             clock_mhz=cfg.clock_mhz).ns
            t = ns * cfg.clock_mhz / 1e3 * (1 if row == s.h * 2 else 2)
        vec = buffers.width(isa.Buffer.VEC, cfg) * buffers.elem_bytes(isa.Buffer.VEC, cfg)
        return t + s.tokens * words / dma_bytes_per_cycle(cfg, vec)

    @staticmethod
    def _words_of(op, s: LayerShape) -> dict[str, int]:
        return {"hash": {"X": s.d, "R": s.chunks, "P": s.chunks},
                "gather": {"Y": s.h}, "lookup_grad": {"dY": s.h, "G": s.chunks},
                "hash_grad": {"X": s.d, "G": s.chunks, "dX": s.d},
                "scatter": {"dY": s.h}, "table_update": {},
                # AttMEMO (dataflow.memo): rows and weights come from the search
                "key_scan": {"Q": s.h, "R": s.chunks, "S": s.chunks},
                "map_fetch": {"R": 1, "P": 1, "Y": s.h},
                "memo_insert": {"R": 1, "P": 1, "dY": s.h}}[op.op]

    def emit(self, em: Emitter, op, tokens: Tokens, fence: bool = False) -> None:
        """Append the blocks of lookup op ``op`` (a :data:`dataflow.workload.LOOKUP_OPS`);
        ``fence``: ordered by SYNCs, no semaphores (:func:`emit_blocks`)."""
        s = self._shape(op)
        K, mode = s.chunks, 1 if s.weight == "official" else 0
        mine = self.dram[op.name]
        src = op.hash_op or self.hash_of_table.get(op.table, "")
        hashed = self.dram.get(src, {})
        tier = {k: self.tier.get((op.table, k), 0) for k in ("T", "G", "W")}
        R, P = Stream("rows", K, hashed.get("R", 0)), Stream("p", K, hashed.get("P", 0))
        if op.op == "hash":
            loads = [Stream("z", s.d, mine["X"])]
            steps = [Step(isa.Opcode.HASH, dict(in_addr="z", p_addr="p", out_addr="rows",
                                                table=REG_SCALE, width=s.tau, mode=mode))]
            stores = [Stream("rows", K, mine["R"]), Stream("p", K, mine["P"])]
        elif op.op == "gather":
            loads = [R, P]
            steps = [Step(isa.Opcode.GATHER, dict(in_addr="rows", p_addr="p", out_addr="y",
                                                  table=REG_T, width=s.h, tier=tier["T"]))]
            stores = [Stream("y", s.h, mine["Y"])]
        elif op.op == "lookup_grad":
            loads = [R, Stream("dy", s.h, mine["dY"])]
            steps = [Step(isa.Opcode.GATHER, dict(in_addr="rows", p_addr="dy", out_addr="g",
                                                  table=REG_T, width=s.h, mode=1,
                                                  tier=tier["T"]))]
            stores = [Stream("g", K, mine["G"])]
        elif op.op == "hash_grad":
            loads = [Stream("z", s.d, mine["X"]), Stream("g", K, mine["G"])]
            steps = [Step(isa.Opcode.HASH, dict(in_addr="z", p_addr="g", out_addr="dx",
                                                table=REG_SCALE, width=s.tau, mode=2 + mode))]
            stores = [Stream("dx", s.d, mine["dX"])]
        elif op.op == "scatter":
            loads = [R, P, Stream("dy", s.h, mine["dY"])]
            steps = [Step(isa.Opcode.SCATTER, dict(in_addr="rows", p_addr="p", out_addr="dy",
                                                   table=REG_T + 2, width=s.h, tier=tier["G"]))]
            stores = []
        elif op.op in ("key_scan", "map_fetch", "memo_insert"):
            loads, steps, stores = self._memo(op, s, mine, tier["T"])
        else:  # table_update: every token's rows, each dirty row once
            loads = [R]
            steps = [Step(isa.Opcode.SCATTER, dict(in_addr="rows", p_addr=REG_HP, out_addr=0,
                                                   table=REG_T, width=s.h,
                                                   mode=_UPDATE_MODE[self.optimizer],
                                                   tier=tier["W"]))]
            stores = []
        self._registers(em, op)
        emit_blocks(em, self.config, s, loads, steps, stores, sems=MODEL_SEMAPHORES,
                    tokens=tokens, fence=fence, what=f"lookup op {op.name!r}")

    @staticmethod
    def _memo(op, s: LayerShape, mine: dict, tier: int):
        """AttMEMO's store commands (:mod:`dataflow.memo`): a key scan is GATHER mode 1 (the
        query's inner product with each listed key), a map fetch GATHER mode 0 of one row with
        weight 1 (the row itself), an insert SCATTER mode 0 into a zeroed slot. Timing mode's
        rows are drawn from the whole store (``trows``)."""
        trows = max(1, op.table_rows // s.chunks)
        rows, p = Stream("rows", s.chunks, mine["R"]), Stream("p", 1, mine.get("P", 0))
        if op.op == "key_scan":
            return ([rows, Stream("q", s.h, mine["Q"])],
                    [Step(isa.Opcode.GATHER, dict(in_addr="rows", p_addr="q", out_addr="s",
                                                  table=REG_T, width=s.h, mode=1, tier=tier,
                                                  trows=trows))],
                    [Stream("s", s.chunks, mine["S"])])
        if op.op == "map_fetch":
            return ([rows, p],
                    [Step(isa.Opcode.GATHER, dict(in_addr="rows", p_addr="p", out_addr="y",
                                                  table=REG_T, width=s.h, tier=tier,
                                                  trows=trows))],
                    [Stream("y", s.h, mine["Y"])])
        return ([rows, p, Stream("m", s.h, mine["dY"])],
                [Step(isa.Opcode.SCATTER, dict(in_addr="rows", p_addr="p", out_addr="m",
                                               table=REG_T, width=s.h, tier=tier,
                                               trows=trows))], [])
