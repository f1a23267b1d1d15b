"""The machine's command set and its fixed-width binary encoding.

Every command is 128 bits (:data:`WORD_BITS`), little-endian, laid out LSB first as::

    [3:0]    opcode
    [11:4]   wait    semaphore mask: before issue, every semaphore in the mask must be > 0;
                     issue decrements each of them
    [19:12]  signal  semaphore mask: on completion, each semaphore in the mask is incremented
    [127:20] payload fields of the opcode, in the order of its ``FIELDS`` (LSB first), zero-padded

Units execute their own queue in program order (LOAD -> DMA-in, STORE -> DMA-out, GEMM -> PE
array, PRUNE -> SORE, UPDATE -> vector engine, HASH/GATHER/SCATTER -> lookup engine); units run
concurrently and order across units only through the semaphores (tokens, as in VTA's
dependency queues, generalised to 8 counters) and through SYNC, a fence that waits until every
unit is idle. SETREG writes a controller register (hyper-parameters, table bases) in order.

The simulator (:mod:`hwsim`), the compiler (:mod:`dataflow`) and the RTL controller
(:mod:`rtl`) all read this module: field names, widths and opcodes exist only here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import ClassVar

__all__ = [
    "HEADER_BITS",
    "NUM_SEMAPHORES",
    "SEMAPHORE_MAX",
    "WORD_BITS",
    "WORD_BYTES",
    "Buffer",
    "Command",
    "Dataflow",
    "Gather",
    "Gemm",
    "Hash",
    "IsaError",
    "Load",
    "Opcode",
    "Prune",
    "Scatter",
    "SetReg",
    "Store",
    "Sync",
    "Unit",
    "Update",
    "decode",
    "decode_program",
    "encode",
    "encode_program",
]

WORD_BITS = 128
WORD_BYTES = WORD_BITS // 8
NUM_SEMAPHORES = 8
SEMAPHORE_MAX = 255
"""Most tokens a semaphore holds: the RTL controller's counters are 8 bits
(``rtl.controller``); hwsim refuses a program that would exceed it (:mod:`hwsim.schedule`)."""
HEADER_BITS = 4 + 2 * NUM_SEMAPHORES


class IsaError(ValueError):
    """A command field is out of range, or a binary word does not decode."""


class Opcode(IntEnum):
    LOAD = 1
    STORE = 2
    GEMM = 3
    PRUNE = 4
    UPDATE = 5
    HASH = 6
    GATHER = 7
    SCATTER = 8
    SETREG = 9
    SYNC = 10


class Unit(IntEnum):
    """The queue a command executes on."""

    CONTROL = 0
    DMA_IN = 1
    DMA_OUT = 2
    ARRAY = 3
    SORE = 4
    VECTOR = 5
    LOOKUP = 6


class Buffer(IntEnum):
    """On-chip buffers addressable by DMA commands."""

    ACT = 0  # activations: entries of array.rows operands
    WGT = 1  # weights: entries of array.cols operands (compressed values in sparse mode)
    ACC = 2  # accumulators: entries of array.cols int32/fp32
    IDX = 3  # N:M indices of compressed weights
    VEC = 4  # vector-engine and lookup-engine scratch (fp32 words)


class Dataflow(IntEnum):
    OS = 0
    WS = 1


@dataclass(frozen=True)
class Command:
    """Base of all commands: semaphore masks common to every opcode."""

    OPCODE: ClassVar[Opcode]
    UNIT: ClassVar[Unit]
    FIELDS: ClassVar[tuple[tuple[str, int], ...]] = ()

    def __post_init__(self) -> None:
        for name, width in (("wait", NUM_SEMAPHORES), ("signal", NUM_SEMAPHORES), *self.FIELDS):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) and width != 1:
                raise IsaError(f"{type(self).__name__}.{name} must be an integer, not {v!r}")
            if not 0 <= int(v) < (1 << width):
                raise IsaError(
                    f"{type(self).__name__}.{name} = {v} does not fit in {width} bits "
                    f"(allowed 0..{(1 << width) - 1})"
                )

    @property
    def name(self) -> str:
        return self.OPCODE.name


def _command(opcode: Opcode, unit: Unit, spec: tuple[tuple[str, int], ...]):
    """Class decorator: attach opcode, unit and field layout; check it fits the word."""

    def wrap(cls):
        cls.OPCODE, cls.UNIT, cls.FIELDS = opcode, unit, spec
        total = HEADER_BITS + sum(w for _, w in spec)
        assert total <= WORD_BITS, f"{cls.__name__} needs {total} bits"
        declared = [f.name for f in fields(cls)]
        assert declared == [n for n, _ in spec] + ["wait", "signal"], (cls.__name__, declared)
        _REGISTRY[opcode] = cls
        return cls

    return wrap


_REGISTRY: dict[Opcode, type[Command]] = {}


@dataclass(frozen=True)
class _Transfer(Command):
    """Fields shared by LOAD and STORE."""

    buf: int
    sram_addr: int
    dram_addr: int
    rows: int
    elems: int
    stride: int
    wait: int = 0
    signal: int = 0


_TRANSFER_FIELDS = (
    ("buf", 3), ("sram_addr", 16), ("dram_addr", 32), ("rows", 16), ("elems", 12),
    ("stride", 24),
)


@_command(Opcode.LOAD, Unit.DMA_IN, _TRANSFER_FIELDS)
@dataclass(frozen=True)
class Load(_Transfer):
    """DMA DRAM -> buffer ``buf``: ``rows`` entries starting at entry ``sram_addr``.

    Entry ``r`` takes ``elems`` elements (of the buffer's element size) from DRAM byte address
    ``dram_addr + r * stride``; the rest of the entry is zero-filled, which is how partial tiles
    at matrix edges are padded.
    """


@_command(Opcode.STORE, Unit.DMA_OUT, _TRANSFER_FIELDS)
@dataclass(frozen=True)
class Store(_Transfer):
    """DMA buffer ``buf`` -> DRAM: the first ``elems`` elements of each of ``rows`` entries
    starting at ``sram_addr`` go to ``dram_addr + r * stride``."""


@_command(Opcode.GEMM, Unit.ARRAY, (
    ("a_addr", 16), ("b_addr", 16), ("c_addr", 16), ("idx_addr", 16), ("k", 16), ("m", 16),
    ("dataflow", 1), ("sparse", 1), ("accumulate", 1), ("n", 4), ("log2m", 3),
))
@dataclass(frozen=True)
class Gemm(Command):
    """One array tile of C += A·B.

    Output-stationary (``dataflow=0``): ACT entries ``a_addr + t`` hold column ``t`` of the A
    tile (R operands), WGT entries ``b_addr + t`` hold row ``t`` of the B tile (C operands), for
    ``t < k`` reduction steps; the R x C result is written to ACC entries ``c_addr + i``
    (``m`` is ignored). Weight-stationary (``dataflow=1``): WGT entries ``b_addr + r``,
    ``r < k <= R``, are preloaded into the array; ACT entries ``a_addr + t``, ``t < m``, hold
    row ``t`` of A (up to R reduction operands) and stream through; row ``t`` of the result
    goes to ACC entry ``c_addr + t``.

    ``accumulate``: add to the ACC entries instead of overwriting them. ``sparse``: the WGT
    entries hold N:M-compressed weights (``n`` values per group of ``2**log2m``) and IDX
    entries from ``idx_addr`` their in-group indices; ``k`` counts compressed steps
    (compressed weight rows in WS). OS sparse: ACT holds the whole groups, entries
    ``a_addr .. a_addr + k/n * M - 1``, with ``a_addr`` a multiple of M. WS sparse (N divides
    M): activation row ``t`` spans the ``M/N`` entries from ``a_addr + t*M/N`` (``a_addr`` a
    multiple of M/N), row ``r`` of the array using operands ``(r // n) * M ..`` of it
    (:mod:`hwsim.sparse_tile`).
    """

    a_addr: int
    b_addr: int
    c_addr: int
    idx_addr: int
    k: int
    m: int
    dataflow: int = 0
    sparse: int = 0
    accumulate: int = 0
    n: int = 0
    log2m: int = 0
    wait: int = 0
    signal: int = 0


@_command(Opcode.PRUNE, Unit.SORE, (
    ("src_buf", 3), ("src_addr", 16), ("dst_addr", 16), ("idx_addr", 16), ("rows", 16),
    ("groups", 12), ("n", 4), ("log2m", 3), ("axis", 1),
))
@dataclass(frozen=True)
class Prune(Command):
    """SORE: dense -> N:M compressed. Reads ``rows`` entries of ``src_buf`` from ``src_addr``;
    along ``axis`` (0: within an entry, 1: across entries) keeps the ``n`` largest magnitudes of
    each group of ``2**log2m``; writes values to WGT from ``dst_addr`` and indices to IDX from
    ``idx_addr`` (format of ``algorithms.nm.compress``). ``groups``: groups per entry."""

    src_buf: int
    src_addr: int
    dst_addr: int
    idx_addr: int
    rows: int
    groups: int
    n: int
    log2m: int
    axis: int = 0
    wait: int = 0
    signal: int = 0


@_command(Opcode.UPDATE, Unit.VECTOR, (
    ("w_addr", 16), ("g_addr", 16), ("v_addr", 16), ("out_addr", 16), ("count", 20),
    ("optimizer", 2), ("hp_base", 4),
))
@dataclass(frozen=True)
class Update(Command):
    """Vector engine optimizer step over ``count`` fp32 words of VEC: master weights at
    ``w_addr``, gradients at ``g_addr``, optimizer state at ``v_addr``; the fp16 copy goes to
    ``out_addr``. ``optimizer``: 0 SGD, 1 SGD with momentum, 2 Adam (reserved, not built), 3 the
    first SGD-with-momentum step (v = g', as PyTorch); hyper-parameters are
    controller registers ``hp_base..hp_base+3`` (lr, momentum/beta1, weight decay, beta2)."""

    w_addr: int
    g_addr: int
    v_addr: int
    out_addr: int
    count: int
    optimizer: int = 1
    hp_base: int = 0
    wait: int = 0
    signal: int = 0


_LOOKUP_FIELDS = (
    ("in_addr", 16), ("p_addr", 16), ("out_addr", 16), ("table", 4), ("tokens", 16),
    ("chunks", 12), ("width", 12), ("tier", 3), ("mode", 2),
)


@dataclass(frozen=True)
class _Lookup(Command):
    """Fields shared by the lookup engine's commands. Operands live in the VEC buffer as fp32
    (or uint32) words, word ``w`` of an operand at ``addr`` being word ``w % L`` of entry
    ``addr + w // L`` (``L = vector.lanes``); tables live in memory tier ``tier`` at the byte
    address held in controller register ``table`` (:mod:`hwsim.units.lookup`)."""

    in_addr: int
    p_addr: int
    out_addr: int
    table: int
    tokens: int
    chunks: int
    width: int
    tier: int = 0
    mode: int = 0
    wait: int = 0
    signal: int = 0


@_command(Opcode.HASH, Unit.LOOKUP, _LOOKUP_FIELDS)
@dataclass(frozen=True)
class Hash(_Lookup):
    """Lookup engine hash: for each of ``tokens`` inputs at ``in_addr`` and each of ``chunks``
    chunks of ``width`` (tau) elements, the sign bits give the flat row index
    ``chunk * 2**tau + code`` (written to ``out_addr``) and the chunk weight p(z) (to
    ``p_addr``); register ``table`` holds the fp32 scale ``2/t``. ``mode``: 0 the paper's
    weight, 1 the official code's ``||z||_1 * p(z)``; 2 and 3 the backward of 0 and 1 (dz to
    ``out_addr`` from dL/dp at ``p_addr``). ``tier`` unused."""


@_command(Opcode.GATHER, Unit.LOOKUP, _LOOKUP_FIELDS)
@dataclass(frozen=True)
class Gather(_Lookup):
    """Lookup engine gather: row indices at ``in_addr`` select rows of ``width`` (h) elements
    of the table at register ``table`` in tier ``tier``. ``mode`` 0: for each token, the sum
    over chunks of p · T[row] (weights at ``p_addr``) to ``out_addr``; mode 1: for each token
    and chunk, the dot product dY · T[row] (dY at ``p_addr``) to ``out_addr``."""


@_command(Opcode.SCATTER, Unit.LOOKUP, _LOOKUP_FIELDS)
@dataclass(frozen=True)
class Scatter(_Lookup):
    """Lookup engine backward and update. ``mode`` 0: scatter-add p · dY (weights at
    ``p_addr``, dY at ``out_addr``) into the hashed rows (``in_addr``) of the fp32 gradient
    table at register ``table`` in tier ``tier`` (read-modify-write). ``mode`` 1: the sparse
    optimizer step of the ``tokens`` rows listed at ``in_addr`` (SGD with momentum; table
    registers ``table .. table+3``: fp16 table, fp32 master, gradient, momentum;
    hyper-parameters from register ``p_addr``). ``mode`` 2: the same by Adam (table registers
    ``table .. table+4``: fp16 table, fp32 master, gradient, first and second moments;
    hyper-parameters ``p_addr .. p_addr+4``: lr_t, 1-beta1, 1-beta2, eps, weight decay)."""


@_command(Opcode.SETREG, Unit.CONTROL, (("reg", 4), ("value", 32)))
@dataclass(frozen=True)
class SetReg(Command):
    """Write 32-bit ``value`` (e.g. an fp32 bit pattern, a table base) to controller
    register ``reg``."""

    reg: int
    value: int
    wait: int = 0
    signal: int = 0


@_command(Opcode.SYNC, Unit.CONTROL, ())
@dataclass(frozen=True)
class Sync(Command):
    """Fence: issue nothing further until every unit is idle."""

    wait: int = 0
    signal: int = 0


def command_class(opcode: int) -> type[Command]:
    try:
        return _REGISTRY[Opcode(opcode)]
    except ValueError:
        raise IsaError(f"unknown opcode {opcode} (known: {[o.value for o in Opcode]})") from None


def encode(cmd: Command) -> int:
    """The command as a 128-bit integer."""
    word = int(cmd.OPCODE) | (cmd.wait << 4) | (cmd.signal << (4 + NUM_SEMAPHORES))
    pos = HEADER_BITS
    for name, width in cmd.FIELDS:
        word |= int(getattr(cmd, name)) << pos
        pos += width
    return word


def decode(word: int) -> Command:
    """The command encoded in a 128-bit integer.

    Raises
    ------
    IsaError
        Unknown opcode, or bits set beyond the opcode's fields.
    """
    if not 0 <= word < (1 << WORD_BITS):
        raise IsaError(f"command word {word:#x} is not a {WORD_BITS}-bit unsigned integer")
    cls = command_class(word & 0xF)
    kwargs = {"wait": (word >> 4) & 0xFF, "signal": (word >> 12) & 0xFF}
    pos = HEADER_BITS
    for name, width in cls.FIELDS:
        kwargs[name] = (word >> pos) & ((1 << width) - 1)
        pos += width
    if word >> pos:
        raise IsaError(f"{cls.__name__} word {word:#x} has bits set above bit {pos - 1}")
    return cls(**kwargs)


def encode_program(cmds: list[Command]) -> bytes:
    """Commands as consecutive 16-byte little-endian words."""
    out = bytearray()
    for c in cmds:
        w = encode(c)
        out += struct.pack("<QQ", w & (2**64 - 1), w >> 64)
    return bytes(out)


def decode_program(blob: bytes) -> list[Command]:
    if len(blob) % WORD_BYTES:
        raise IsaError(f"program of {len(blob)} bytes is not a whole number of "
                       f"{WORD_BYTES}-byte commands")
    cmds = []
    for i in range(0, len(blob), WORD_BYTES):
        lo, hi = struct.unpack_from("<QQ", blob, i)
        try:
            cmds.append(decode(lo | (hi << 64)))
        except IsaError as e:
            raise IsaError(f"command {i // WORD_BYTES}: {e}") from None
    return cmds


def field_offsets(cls: type[Command]) -> dict[str, tuple[int, int]]:
    """``name -> (lsb, width)`` of every field, header included (used by the RTL decoder)."""
    out = {"opcode": (0, 4), "wait": (4, NUM_SEMAPHORES), "signal": (4 + NUM_SEMAPHORES,
                                                                      NUM_SEMAPHORES)}
    pos = HEADER_BITS
    for name, width in cls.FIELDS:
        out[name] = (pos, width)
        pos += width
    return out
