"""The lookup engine: HASH, GATHER and SCATTER (MemoryFormer's hashed tables over memory tiers).

Operands live in the VEC buffer as 32-bit words (``L = vector.lanes`` words an entry; word
``w`` of an operand at entry ``addr`` is word ``w % L`` of entry ``addr + w // L``): inputs
``z``, weights ``p`` and gradients fp32, row indices unsigned. Tables live in memory tier
``tier`` (``config.lookup.tiers``) at the byte address in controller register ``table``: one
contiguous table per memory layer, row ``r`` at ``base + r * row_bytes`` (MemoryFormer's
layout: the flat row of chunk ``k`` with code ``c`` is ``k * 2**tau + c``). The machine has one
physical address space: the tier says which memory serves a request (its timing and energy),
the functional model keeps every byte in the one DRAM image.

HASH (``tokens * chunks`` chunks of ``width = tau`` elements of ``z`` at ``in_addr``)
    mode 0 / 1: row index ``k * 2**tau + code`` to ``out_addr``, element 0 of the chunk the
    most significant bit, bit ``j`` set when ``z_j >= 0`` (so ``-0`` sets it, NaN does not);
    the chunk weight to ``p_addr``: :func:`hwsim.numerics.chunk_weight` with the fp32 scale
    ``2/t`` held in register ``table`` (mode 1: times ``||z||_1``, the official code's form).
    mode 2 / 3: the backward of mode 0 / 1: ``dz_j = g (x) dp/dz_j`` to ``out_addr``
    (:func:`hwsim.numerics.chunk_weight_grad`), ``g = dL/dp`` per chunk at ``p_addr``.
    Cycles: :func:`hash_cycles` (as ``rtl.lookup.hashing.HashEngine`` runs each mode): each
    lane takes one element a cycle through the scale multiply, the sigmoid (a table read, a
    multiply, an add) and the running product; the backward's lanes then make a second pass
    over the chunk for ``dz``.
GATHER (rows of ``width = h`` elements, ``config.lookup.element``: fp16 or int8)
    mode 0: ``y[t] = sum_k p[t,k] (x) T[row[t,k]]`` in fp32, ``k`` in order, from the first
    product (no ``+0`` start), to ``out_addr`` (``tokens * h`` words).
    mode 1: ``g[t,k] = dY[t] . T[row[t,k]]`` (dY at ``p_addr``, token 0's loaded before the
    first row request: :func:`dy_preload`): ``G = gather_lanes`` lanes,
    lane ``l`` summing elements ``l, l+G, ...`` in order, then the lane sums added in lane
    order; to ``out_addr`` (``tokens * chunks`` words). MemoryFormer's input gradient is this
    followed by HASH mode 2 or 3. The lane sums' adds (one a cycle, behind the lanes, so rows
    keep their mode-0 pace) end the command ``G - 1`` cycles after mode 0's timing.
SCATTER
    mode 0: for each token ``t`` and chunk ``k`` in order, ``G[row] = G[row] (+) p (x) dY[t]``
    on the fp32 gradient table at register ``table`` (dY at ``out_addr``): a read-modify-write;
    rows repeated within a command sum in order.
    mode 1: the lazy sparse optimizer step of the rows listed at ``in_addr`` (``tokens *
    chunks`` indices, the scatter's own list): a row is updated when its gradient row is not
    all zero (it was scattered into since its last update; repeats in the list, or in later
    commands, find it zeroed and are skipped after reading it), by SGD with momentum
    (:func:`hwsim.units.vector.sgd_update`, bit for bit the vector engine's) on the fp32 master,
    gradient and momentum tables at registers ``table+1 .. table+3``, the fp16 copy written to the
    table at register ``table`` and the gradient row zeroed; hyper-parameters (lr, momentum, weight
    decay) in registers ``p_addr .. p_addr+2``.
    mode 2: the same lazy row update (the same list, the same dirty-row rule) by Adam
    (:func:`hwsim.units.vector.adam_update`, which states the operation order: SparseAdam's, in
    separately rounded fp32 with a correctly rounded square root and division) on the tables at
    registers ``table .. table+4``: the fp16 copy ``T16``, the fp32 master ``W``, gradient ``G``,
    first moment ``M`` and second moment ``V``; writes ``W``, ``M``, ``V``, ``T16`` (round to
    nearest even) and the zeroed ``G`` row. Hyper-parameters, fp32 bit patterns, in registers
    ``p_addr .. p_addr+4``: ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` (the host's
    bias-corrected step size of step ``t``), ``1 - beta1``, ``1 - beta2``, ``eps`` (added to
    ``sqrt(V)`` as SparseAdam adds it) and the L2 weight decay (added to the gradient; 0 for
    none); :func:`hwsim.units.vector.adam_registers` computes them as torch does. A listed row
    whose gradient is exactly zero is skipped, where SparseAdam, given the row, would decay its
    moments and move it.
    Row updates (both modes) as :mod:`hwsim.units.update_timing` times them: per listed row, in
    slots held until the row retires, the reads of ``G``, ``W`` and the state (``V``; Adam
    ``M`` and ``V``) back to back; a repeat of a row still held is skipped (no reads: it is
    clean); a dirty row spends a row's compute time in the lanes (a GATHER row's, the Adam
    datapath as pipelined as SGD's), a clean or skipped one a cycle (at most that), and a dirty
    row writes ``W``, the state, the fp16 row and the zeroed ``G``, with up to
    ``max(4, rows_in_flight(r * 4h))`` rows in flight for ``r`` = 3 (mode 1) or 4 (mode 2)
    reads a row. Timing mode takes the first access to each row as dirty, the others as
    clean. Tier traffic (``account``, every listed row charged as dirty, an upper bound) per
    listed row: mode 1 three fp32 rows read, three written and the fp16 row written; mode 2
    four read, four written and the fp16 row.

Cycles of GATHER and SCATTER come from the row pipeline of
:mod:`hwsim.units.lookup_timing` (request issue, the tier's banked model, the accumulate
lanes): in functional mode with the rows the program computed (stepped per cycle), in timing
mode with rows drawn uniformly from each chunk's ``2**tau`` rows (annotation ``trows``, default
256), event by event, from a seed that is the command's shape, so that commands of one shape
take the same cycles and are timed once. SCATTER mode 0 without a hot-row cache has its own
pipeline, :mod:`hwsim.units.scatter_timing` (slots held until a row's write is acknowledged,
forwarding from a slot whose write has not issued, a wait for one that has; one per-cycle
kernel for both modes); with a cache it keeps the generic pipeline's rules (forwarding within
the window's distance), which no RTL checks.
RTL: ``rtl/lookup`` runs every mode of HASH, GATHER and SCATTER (Adam with a correctly rounded
square root and division a lane, ``rtl.fp32``), equal to this model in values and in every
command's cycles (``tests/rtl/test_lookup_cocotb.py``, ``tests/rtl/test_lookup_hash_cocotb.py``,
``tests/rtl/test_lookup_axi_cocotb.py``); the hot-row cache is model-only.

Hot-row cache (``config.lookup.hot_rows`` rows, 0: none)
    An on-chip SRAM of whole rows in front of the tiers, **fully associative with LRU
    replacement** (:func:`hot_row_hits`): an upper bound for the set-associative cache a
    16k-row store would be built as (with MemoryFormer's layout, row ``k * 2**tau + code``,
    a set index from the low bits would spread each chunk's rows over the sets evenly, so the
    loss is conflict misses only), and independent of where the table sits. It serves GATHER
    (both modes: the table rows) and SCATTER mode 0 (the gradient rows it read-modify-writes);
    the row update (modes 1 and 2, each row touched once per command, several tables a row)
    bypasses it. **Cold at every command**: hwsim times each lookup command on its own from an
    idle memory (timing mode even times commands of one shape once), so a cache warm across
    commands would break that; a decode step's GATHER (one token: one row a chunk, no repeat)
    therefore never hits, and the cache pays off on commands of many tokens (training,
    prefill). The command's listed rows reference it once each, in program order: a reference
    that finds its row is a hit (the row becomes the most recent), otherwise the row is
    allocated, evicting the least recent (a read miss fills it from the tier; a SCATTER row
    forwarded from the accumulator is written into it). A read hit issues no tier request and
    takes no outstanding slot of a channel: its data is ready :func:`hot_row_latency` cycles
    after its issue (the ``"sram"`` preset's 2 ns), or once the miss filling its row has been
    answered if that is later; it still takes an issue slot, a slot of the row window and a
    response port. SCATTER writes **through** the cache (every row is written to the tier, as
    without it; the cached copy is current from the write's issue, so a read hit on a row an
    earlier access updates waits for that write's issue, not its completion). Kernels:
    :func:`hwsim.units.lookup_timing.events_hot` and
    :func:`~hwsim.units.lookup_timing.per_cycle_hot`; with ``hot_rows = 0`` the kernels without
    a cache run, so every cycle, byte and joule is as without this feature.
    Accounting (``account``): a hit moves no tier bytes (tier reads are the misses times the
    row's whole access blocks); hits and fills (and SCATTER's write-through) count as on-chip
    SRAM bytes (``sram_read``/``sram_write``) of the ``sram_hot_rows`` part of the energy's
    ``sram`` component, priced by the action ``hot_row_byte`` (:func:`hwsim.energy.price`);
    the operands' traffic is the ``sram_vec`` part. The hits come from the rows timing mode draws
    (``_hot_hits``), **in both modes**: functional mode's cycles use the program's rows, its
    bytes these counts (``account`` sees the command table, not the values, as with the row
    update's dirty rows; it may be called without the timing, as ``dataflow.simulate`` does, so
    it draws the rows itself). Timing mode's rows are uniform within each chunk's ``trows``
    rows, which a cache helps only through repeats; skewed real hash codes hit more, which
    ``reports/memoryformer_report.py`` measures (``hot_row_sweep``) by running this pipeline
    on the rows of a MemoryFormer layer hashing real text.
"""

from __future__ import annotations

import numpy as np

from .. import isa
from .._jit import njit
from ..config import AcceleratorConfig
from ..energy import HOT_ROWS
from ..numerics import (
    _chunk_grad_kernel,
    _chunk_weight_kernel,
    fp16_to_fp32,
    fp32_add,
    fp32_mul,
    fp32_mul_array,
)
from ..program import COL
from . import Access, UnitModel, UnitTiming
from .lookup_timing import TierParams, events, events_hot, lru_hits, per_cycle, per_cycle_hot
from .scatter_timing import previous_access, scatter_run
from .update_timing import first_access, update_run
from .vector import ADAM_FLOPS, SGD_MOMENTUM, adam_update, sgd_update

__all__ = ["HASH_LATENCY", "LookupModel", "dy_preload", "hash_cycles", "hash_rows",
           "hot_row_hits",
           "hot_row_latency", "row_compute_cycles", "rtl_limit", "timing_rows"]

HASH_LATENCY = 4
"""Pipeline cycles of a hash lane after its last element: the scale multiply, the sigmoid's
table read and multiply-add, the product multiply and the write are overlapped but for these."""
DEFAULT_TROWS = 256
_FWD, _OFFICIAL, _BWD = 0, 1, 2


def hash_cycles(chunks_total, tau, lanes, vec_lanes, mode=0):
    """``unit_cycles`` of HASH commands (vectorised), as ``rtl.lookup.hashing.HashEngine``
    runs them: ``n`` chunks in ``G = ceil(n / lanes)`` groups of ``lanes`` (``H``), ``tau``
    cycles a group in the lanes, ``z`` read one VEC entry of ``vec_lanes`` (``L``) words a
    cycle from the start cycle, a fetch register in front of the lanes. 2 for ``n = 0``.

    Modes 0 and 1: group 0 starts the cycle after its last ``z`` word has arrived, the others
    back to back; :data:`HASH_LATENCY` cycles to the last group's weights, then two entry
    writes (rows, weights)::

        (min(H, n) tau - 1) // L + G tau + HASH_LATENCY + 5

    Modes 2 and 3: the read port takes each block's ``g`` entry (``L`` chunks: their ``z`` is
    ``tau`` entries), then the block's ``z`` entries; a group starts the cycle after its last
    read has arrived and not before the previous group's ``tau`` cycles are over. With
    ``H = L`` a group is a block, ``tau + 1`` reads for ``tau`` lane cycles: groups start
    ``tau + 1`` apart (read-bound); with ``H < L`` the reads keep ahead of the lanes. The last
    group starts on cycle::

        B = max(ceil(min(H, n) tau / L) + 2 + (G - 1) tau,
                ceil(n / L) + ceil(n tau / L) + 1,
                G (tau + 1) if H = L and G >= 2)

    its ``dz_j`` leave the gradient lanes ``tau + HASH_LATENCY + 2 + j`` cycles later (the
    lane's second pass: ``HASH_LATENCY + 2`` from a chunk's last element to its ``dz_0``), and
    from the next cycle the entries not yet written (all of the earlier groups' are) are
    written one a cycle::

        B + 2 tau + HASH_LATENCY + 2 + ceil(n tau / L) - (G - 1) H tau // L
    """
    n, tau = np.asarray(chunks_total, np.int64), np.asarray(tau, np.int64)
    groups = -(-n // lanes)
    fwd = (np.minimum(lanes, n) * tau - 1) // vec_lanes + groups * tau + HASH_LATENCY + 5
    words = n * tau
    begin = np.maximum.reduce([
        -(-np.minimum(lanes, n) * tau // vec_lanes) + 2 + (groups - 1) * tau,
        -(-n // vec_lanes) - (-words // vec_lanes) + 1,
        np.where((lanes == vec_lanes) & (groups >= 2), groups * (tau + 1), 0)])
    bwd = (begin + 2 * tau + HASH_LATENCY + 2 - (-words // vec_lanes)
           - (groups - 1) * lanes * tau // vec_lanes)
    return np.where(n == 0, 2, np.where(np.asarray(mode) >= _BWD, bwd, fwd))


def dy_preload(n: int, h: int, vec_lanes: int, streams: int) -> int:
    """Cycles by which a GATHER mode 1 (``streams = 1``: the row indices) or a SCATTER mode 0
    (``streams = 2``: the row indices and the weights) starts its rows late, as
    ``rtl.lookup`` runs them: token 0's dY (``h / L`` VEC entries) loads before the first row
    request or admission, after each operand stream's first ``min(2, ceil(n / L))`` entries,
    one VEC read a cycle from the start cycle, so that the lanes never wait for dY::

        streams * min(2, ceil(n / L)) + h / L

    (rows issue from cycle 1 otherwise)."""
    entries = -(-n // vec_lanes)
    return streams * min(2, entries) + -(-h // vec_lanes)


def row_compute_cycles(h: int, lanes: int) -> float:
    """Cycles the accumulate lanes spend on one row of ``h`` elements: ``ceil(h / lanes)``, a
    row at a time, or ``h / lanes`` when ``lanes`` is a multiple of ``h`` (that many rows a
    cycle, side by side)."""
    return h / lanes if lanes % h == 0 else float(-(-h // lanes))


def hot_row_latency(clock_mhz: float) -> int:
    """Cycles from a hot-row cache hit's issue to its data: the ``"sram"`` tier preset's read
    latency (:func:`hwsim.tiers.tier_preset`, 2 ns) at ``clock_mhz``, rounded up (at least 1)."""
    from ..tiers import tier_preset

    return max(1, TierParams(tier_preset("sram"), clock_mhz).rd_lat)


def hot_row_hits(rows: np.ndarray, hot_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of a command's row references hit a hot-row cache of ``hot_rows`` rows.

    The cache (``lookup.hot_rows``) is fully associative with LRU replacement, cold at the
    command's start, and referenced once per listed row in program order (token by token,
    chunk by chunk): :func:`hwsim.units.lookup_timing.lru_hits`.

    Returns
    -------
    hit : numpy.ndarray of bool
    src : numpy.ndarray of int64
        For a hit, the reference whose miss filled its row; -1 for a miss.
    """
    return lru_hits(np.asarray(rows, np.int64), int(hot_rows))


def hash_rows(z: np.ndarray, tau: int) -> np.ndarray:
    """Flat row indices of ``z`` (float32, shape ``(..., chunks * tau)``):
    ``k * 2**tau + code``, element 0 the most significant bit, bit set when ``z >= 0``."""
    z = np.asarray(z, np.float32)
    chunks = z.shape[-1] // tau
    bits = (z.reshape(*z.shape[:-1], chunks, tau) >= 0).astype(np.int64)
    code = (bits << np.arange(tau - 1, -1, -1)).sum(-1)
    return code + np.arange(chunks) * (1 << tau)


# --- values ------------------------------------------------------------------------------------


@njit(cache=True)
def _row_fp32(mem, addr, j, eb):  # pragma: no cover - compiled
    if eb == 2:
        return fp16_to_fp32(np.uint16(mem[addr + 2 * j]) | (np.uint16(mem[addr + 2 * j + 1]) << 8))
    v = np.int64(mem[addr + j])
    v = v - 256 if v >= 128 else v
    return np.float32(v).view(np.uint32)  # an int8 element is exact in fp32


@njit(cache=True)
def _gather(mem, base, row_bytes, eb, rows, p, tokens, chunks, h, out):  # pragma: no cover
    for t in range(tokens):
        for k in range(chunks):
            r = rows[t * chunks + k]
            w = p[t * chunks + k]
            for j in range(h):
                prod = fp32_mul(w, _row_fp32(mem, base + r * row_bytes, j, eb))
                out[t * h + j] = prod if k == 0 else fp32_add(out[t * h + j], prod)


@njit(cache=True)
def _dot(mem, base, row_bytes, eb, rows, dy, tokens, chunks, h, lanes, out):  # pragma: no cover
    part = np.zeros(lanes, np.uint32)
    for t in range(tokens):
        for k in range(chunks):
            r = rows[t * chunks + k]
            for j in range(h):
                prod = fp32_mul(dy[t * h + j], _row_fp32(mem, base + r * row_bytes, j, eb))
                part[j % lanes] = prod if j < lanes else fp32_add(part[j % lanes], prod)
            acc = part[0]
            for lane in range(1, min(lanes, h)):
                acc = fp32_add(acc, part[lane])
            out[t * chunks + k] = acc


@njit(cache=True)
def _scatter(grad, base_word, h, rows, p, dy, tokens, chunks):  # pragma: no cover - compiled
    for t in range(tokens):
        for k in range(chunks):
            a = base_word + rows[t * chunks + k] * h
            w = p[t * chunks + k]
            for j in range(h):
                grad[a + j] = fp32_add(grad[a + j], fp32_mul(w, dy[t * h + j]))


def _words(machine, addr: int, n: int, config: AcceleratorConfig) -> np.ndarray:
    """``n`` 32-bit words of VEC from entry ``addr`` (a view)."""
    vec = machine.buffers[isa.Buffer.VEC].view(np.uint32).reshape(-1)
    w0 = addr * config.vector.lanes
    return vec[w0:w0 + n]


def _store(machine, addr: int, values: np.ndarray, config: AcceleratorConfig) -> None:
    """Write a result to VEC from entry ``addr`` as whole entries: the words of the last entry
    past ``values`` are zero (the engine writes entries, not words)."""
    lanes = config.vector.lanes
    out = _words(machine, addr, -(-len(values) // lanes) * lanes, config)
    out[:len(values)] = values
    out[len(values):] = 0


def _dram_words(machine, addr: int, nbytes: int) -> np.ndarray:
    if addr % 4:
        raise ValueError(f"fp32 table address {addr:#x} is not 4-byte aligned")
    return machine.dram[addr:addr + nbytes].view(np.uint32)


# --- the unit ----------------------------------------------------------------------------------


def _row_bytes(cmd, config: AcceleratorConfig) -> int:
    if cmd.OPCODE == isa.Opcode.GATHER:
        return cmd.width * config.lookup.element_bytes
    return cmd.width * 4  # fp32 gradient, master and momentum rows


_UPDATE_READS = {1: 3, 2: 4}  # fp32 rows a row update reads: G, W and its state


def rtl_limit(cmd, config: AcceleratorConfig) -> tuple[str, str] | None:
    """Why the RTL engine of ``config`` (``config.lookup``'s ``row_bytes``, ``slots``,
    ``max_tau``, ``min_dy_chunks``, ``min_dy_entries``; :class:`rtl.lookup.unit.LookupUnit`
    ``accepts``) cannot run the lookup command ``cmd``, as ``(field, reason)``; None if it can.
    The reason names the limit and the config field that sets it."""
    lk, lanes = config.lookup, config.vector.lanes
    w = cmd.width
    if cmd.OPCODE == isa.Opcode.HASH:
        if not 2 <= w <= lk.max_tau:
            return "width", (f"chunks of {w} elements are beyond the hash engine's 2.."
                             f"{lk.max_tau} (lookup.max_tau = {lk.max_tau})")
        return None
    gather = cmd.OPCODE == isa.Opcode.GATHER
    eb = lk.element_bytes if gather else 4
    if w * eb > lk.row_bytes:
        return "width", (f"rows of {w} x {eb} = {w * eb} bytes exceed the engine's row buffer "
                         f"(lookup.row_bytes = {lk.row_bytes})")
    if w == 0 or w % lanes:
        return "width", (f"rows of {w} elements are not a positive whole number of VEC "
                         f"entries of {lanes} words (vector.lanes)")
    if (gather and cmd.mode == 1) or (not gather and cmd.mode == 0):
        if cmd.chunks < lk.min_dy_chunks:
            return "chunks", (f"{cmd.chunks} chunks a token are fewer than the "
                              f"{lk.min_dy_chunks} that keep dY's loads ahead of the lanes "
                              f"(lookup.min_dy_chunks = {lk.min_dy_chunks})")
        if w < lk.min_dy_entries * lanes:
            return "width", (f"rows of {w} elements are fewer than the "
                             f"{lk.min_dy_entries * lanes} ({lk.min_dy_entries} VEC entries) "
                             f"that keep dY's loads ahead of the lanes (lookup.min_dy_entries "
                             f"= {lk.min_dy_entries})")
    if gather or cmd.mode == 0:
        window, slots = lk.row_window(w * eb), lk.slots
    else:
        window, slots = lk.row_window(_UPDATE_READS[cmd.mode] * w * 4), lk.slots // 4
    if window > slots:
        kind = "the row update's" if not gather and cmd.mode else "the row-buffer"
        return "width", (f"rows of {w * eb} bytes keep {window} rows in flight (lookup."
                         f"inflight_kib = {lk.inflight_kib}), beyond {kind} {slots} slots "
                         f"(lookup.slots = {lk.slots})")
    return None


class LookupModel(UnitModel):
    """HASH, GATHER and SCATTER (module docstring)."""

    name = "lookup"
    opcodes = (isa.Opcode.HASH, isa.Opcode.GATHER, isa.Opcode.SCATTER)

    # ---- checks -------------------------------------------------------------------------
    def _operands(self, cmd, config) -> list[tuple[str, int, int, bool]]:
        """(field, entry address, words, written) of each VEC operand."""
        n = cmd.tokens * cmd.chunks
        if cmd.OPCODE == isa.Opcode.HASH:
            if cmd.mode < _BWD:
                return [("in_addr", cmd.in_addr, n * cmd.width, False),
                        ("out_addr", cmd.out_addr, n, True), ("p_addr", cmd.p_addr, n, True)]
            return [("in_addr", cmd.in_addr, n * cmd.width, False),
                    ("p_addr", cmd.p_addr, n, False),
                    ("out_addr", cmd.out_addr, n * cmd.width, True)]
        if cmd.OPCODE == isa.Opcode.GATHER:
            if cmd.mode == 0:
                return [("in_addr", cmd.in_addr, n, False), ("p_addr", cmd.p_addr, n, False),
                        ("out_addr", cmd.out_addr, cmd.tokens * cmd.width, True)]
            return [("in_addr", cmd.in_addr, n, False),
                    ("p_addr", cmd.p_addr, cmd.tokens * cmd.width, False),
                    ("out_addr", cmd.out_addr, n, True)]
        if cmd.mode == 0:
            return [("in_addr", cmd.in_addr, n, False), ("p_addr", cmd.p_addr, n, False),
                    ("out_addr", cmd.out_addr, cmd.tokens * cmd.width, False)]
        return [("in_addr", cmd.in_addr, n, False)]

    def check(self, cmd, config):
        lk = config.lookup
        modes = {isa.Opcode.HASH: 4, isa.Opcode.SCATTER: 3}.get(cmd.OPCODE, 2)
        if cmd.mode >= modes:
            return "mode", f"{cmd.mode} is not a {cmd.name} mode (0..{modes - 1})"
        if cmd.OPCODE != isa.Opcode.HASH and cmd.tier >= len(lk.tiers):
            return "tier", (f"tier {cmd.tier} does not exist: config {config.name!r} has "
                            f"{[t.name for t in lk.tiers]}")
        if cmd.width == 0 and cmd.tokens * cmd.chunks:
            return "width", "0 elements per chunk or row"
        if cmd.OPCODE == isa.Opcode.HASH and cmd.width > 31:
            return "width", f"{cmd.width}-bit codes do not fit the 32-bit row index words"
        if cmd.OPCODE == isa.Opcode.SCATTER and cmd.mode == 1 and (cmd.table > 12
                                                                   or cmd.p_addr > 13):
            return ("table" if cmd.table > 12 else "p_addr"), (
                "the row update's registers (table..table+3, p_addr..p_addr+2) exceed the "
                "16 controller registers")
        if cmd.OPCODE == isa.Opcode.SCATTER and cmd.mode == 2 and (cmd.table > 11
                                                                   or cmd.p_addr > 11):
            return ("table" if cmd.table > 11 else "p_addr"), (
                "the Adam row update's registers (table..table+4: T16, W, G, M, V; "
                "p_addr..p_addr+4: lr_t, 1-beta1, 1-beta2, eps, weight decay) exceed the 16 "
                "controller registers: table and p_addr must be at most 11")
        lanes = config.vector.lanes
        for fname, addr, words, _ in self._operands(cmd, config):
            entries = -(-words // lanes)
            if addr + entries > config.vec_depth:
                return fname, (f"entries {addr}..{addr + entries - 1} overflow the VEC buffer "
                               f"of {config.vec_depth} entries")
        return rtl_limit(cmd, config) if lk.rtl_limits else None

    # ---- values -------------------------------------------------------------------------
    def execute(self, cmd, machine, config):
        n = cmd.tokens * cmd.chunks
        if n == 0:
            return None
        if cmd.OPCODE == isa.Opcode.HASH:
            return self._hash(cmd, machine, config, n)
        rows = _words(machine, cmd.in_addr, n, config).astype(np.int64)
        base = int(machine.regs[cmd.table])
        if cmd.OPCODE == isa.Opcode.GATHER:
            eb = config.lookup.element_bytes
            if cmd.mode == 0:
                p = _words(machine, cmd.p_addr, n, config).copy()
                out = np.empty(cmd.tokens * cmd.width, np.uint32)
                _gather(machine.dram, base, cmd.width * eb, eb, rows, p, cmd.tokens, cmd.chunks,
                        cmd.width, out)
            else:
                dy = _words(machine, cmd.p_addr, cmd.tokens * cmd.width, config).copy()
                out = np.empty(n, np.uint32)
                _dot(machine.dram, base, cmd.width * eb, eb, rows, dy, cmd.tokens, cmd.chunks,
                     cmd.width, config.lookup.gather_lanes, out)
            _store(machine, cmd.out_addr, out, config)
        elif cmd.mode == 0:
            grad = machine.dram.view(np.uint8)
            if base % 4:
                raise ValueError(f"fp32 gradient table at {base:#x} is not 4-byte aligned")
            words = grad[:len(grad) // 4 * 4].view(np.uint32)
            p = _words(machine, cmd.p_addr, n, config).copy()
            dy = _words(machine, cmd.out_addr, cmd.tokens * cmd.width, config).copy()
            _scatter(words, base // 4, cmd.width, rows, p, dy, cmd.tokens, cmd.chunks)
        else:
            dirty = self._update_rows(cmd, machine, rows)
            return int(self._pipeline(cmd, config, rows, machine.regs, per_cycle, dirty))
        return int(self._pipeline(cmd, config, rows, machine.regs, per_cycle))

    def _hash(self, cmd, machine, config, n):
        z = _words(machine, cmd.in_addr, n * cmd.width, config).reshape(n, cmd.width).copy()
        c = np.uint32(machine.regs[cmd.table])
        official = bool(cmd.mode & 1)
        if cmd.mode < _BWD:
            rows = hash_rows(z.view(np.float32).reshape(cmd.tokens, -1), cmd.width)
            p = np.empty(n, np.uint32)
            _chunk_weight_kernel(z, c, official, p)
            _store(machine, cmd.out_addr, rows.reshape(-1).astype(np.uint32), config)
            _store(machine, cmd.p_addr, p, config)
        else:
            grad = np.empty(z.shape, np.uint32)
            _chunk_grad_kernel(z, c, official, grad)
            g = _words(machine, cmd.p_addr, n, config).copy()
            dz = fp32_mul_array(np.repeat(g, cmd.width), grad.reshape(-1))
            _store(machine, cmd.out_addr, dz, config)
        return None

    def _update_rows(self, cmd, machine, rows) -> np.ndarray:
        """Update the dirty rows of ``rows``; returns which entries were dirty."""
        h = cmd.width
        regs = machine.regs
        adam = cmd.mode == 2
        hp = [np.uint32(regs[cmd.p_addr + i]) for i in range(5 if adam else 3)]
        w16_base, w_base, g_base, *state = (int(regs[cmd.table + i])
                                            for i in range(5 if adam else 4))
        dirty = np.zeros(len(rows), np.bool_)
        for i, r in enumerate(rows.tolist()):
            g = _dram_words(machine, g_base + r * 4 * h, 4 * h)
            if not (g & 0x7FFFFFFF).any():
                continue
            dirty[i] = True
            w = _dram_words(machine, w_base + r * 4 * h, 4 * h)
            s = [_dram_words(machine, b + r * 4 * h, 4 * h) for b in state]  # V; or M, V
            if adam:
                w_new, m_new, v_new, w16 = adam_update(w, g, s[0], s[1], *hp)
                s[0][:] = m_new.view(np.uint32)
            else:
                w_new, v_new, w16 = sgd_update(w, g, s[0], *hp, SGD_MOMENTUM)
            w[:], s[-1][:] = w_new.view(np.uint32), v_new.view(np.uint32)
            g[:] = 0
            machine.dram[w16_base + r * 2 * h:w16_base + (r + 1) * 2 * h] = w16.view(np.uint8)
        return dirty

    # ---- time ---------------------------------------------------------------------------
    def _pipeline(self, cmd, config, rows, regs, kernel, dirty=None) -> int:
        """Cycles of a GATHER or SCATTER whose row indices are ``rows`` (module docstring);
        ``dirty``: which rows a row update finds dirty (default all). GATHER mode 1 starts its
        row stream :func:`dy_preload` cycles late (token 0's dY loads first) and adds
        ``gather_lanes - 1`` cycles after the last row's lane cycles: the lane sums of a row are
        added in lane order, an add a cycle, behind the lanes."""
        cycles = self._run_pipeline(cmd, config, rows, regs, kernel, dirty)[0]
        if cmd.OPCODE == isa.Opcode.GATHER and cmd.mode == 1:
            cycles += (dy_preload(cmd.tokens * cmd.chunks, cmd.width, config.vector.lanes, 1)
                       + config.lookup.gather_lanes - 1)
        return cycles

    def _run_pipeline(self, cmd, config, rows, regs, kernel, dirty=None
                      ) -> tuple[int, int, int]:
        """:meth:`_pipeline` with the hot-row cache's counts: ``(cycles, hits, read_hits)``.

        ``hits``: references of the command's row stream (one per listed row) that find their
        row in the hot-row cache (:func:`hot_row_hits`), what :meth:`account` charges no tier
        read for; ``read_hits``: the read requests the cache served (a SCATTER's forwarded rows
        issue no read). Both 0 without a cache (``lookup.hot_rows = 0``) and for the row
        update (SCATTER modes 1 and 2), which bypasses it. ``kernel``:
        :func:`~hwsim.units.lookup_timing.events` or
        :func:`~hwsim.units.lookup_timing.per_cycle` (with a cache, their ``_hot`` twins run).
        """
        lk = config.lookup
        tier = lk.tiers[cmd.tier]
        G = lk.gather_lanes
        h = cmd.width
        n = len(rows)
        compute = np.full(n, row_compute_cycles(h, G), np.float64)
        dep = np.full(n, -1, np.int64)
        if cmd.OPCODE == isa.Opcode.GATHER:
            rb = h * lk.element_bytes
            base = int(regs[cmd.table])
            rd_addr = base + rows * rb
            rd_size = np.full(n, rb, np.int64)
            rd_ptr = np.arange(n + 1, dtype=np.int64)
            wr_addr = wr_size = np.zeros(0, np.int64)
            wr_ptr = np.zeros(n + 1, np.int64)
            window = lk.rows_in_flight(rb)
            fwd = np.zeros(n, np.bool_)
        elif cmd.mode == 0:
            rb = 4 * h
            base = int(regs[cmd.table])
            if lk.hot_rows == 0:  # as the RTL runs it: one kernel for both modes
                return int(scatter_run(config, rows, h, cmd.tier, base)[0]), 0, 0
            # with a hot-row cache: the generic pipeline, forwarding within the window's reach
            window = lk.rows_in_flight(rb)
            dep = previous_access(rows)
            fwd = (dep >= 0) & (np.arange(n) - dep <= window)
            reads = ~fwd
            rd_addr = base + rows[reads] * rb
            rd_size = np.full(len(rd_addr), rb, np.int64)
            rd_ptr = np.concatenate(([0], np.cumsum(reads))).astype(np.int64)
            wr_addr = base + rows * rb
            wr_size = np.full(n, rb, np.int64)
            wr_ptr = np.arange(n + 1, dtype=np.int64)
        else:  # the row update, as the RTL runs it (hwsim.units.update_timing)
            bases = tuple(int(regs[cmd.table + i]) for i in range(5 if cmd.mode == 2 else 4))
            dirty = first_access(rows) if dirty is None else dirty
            return int(update_run(config, rows, dirty, h, cmd.tier, bases)[0]), 0, 0
        p = TierParams(tier, config.clock_mhz).args()
        args = (rd_addr.astype(np.int64), rd_size, rd_ptr, wr_addr.astype(np.int64), wr_size,
                wr_ptr, compute, dep, fwd, lk.request_ports, max(window, 4), p)
        cached = cmd.OPCODE == isa.Opcode.GATHER or cmd.mode == 0
        if lk.hot_rows == 0 or not cached:
            cycles, *_ = kernel(*args)  # the engine without a cache, as the RTL has it
            return int(cycles), 0, 0
        ref_hit, src = hot_row_hits(rows, lk.hot_rows)
        hit = ref_hit
        if cmd.OPCODE == isa.Opcode.SCATTER:
            # reads: the accesses not forwarded; a hit waits for the write of the previous access
            # to its row (dep), not for a fill, so no source read
            hit, src = ref_hit[reads], np.full(int(reads.sum()), -1, np.int64)
        hot = per_cycle_hot if kernel is per_cycle else events_hot
        cycles, *_, served = hot(*args, hit, src, hot_row_latency(config.clock_mhz))
        return int(cycles), int(ref_hit.sum()), int(served)

    def cycles(self, rows, config):
        op = rows[:, COL["opcode"]]
        n = rows[:, COL["tokens"]] * rows[:, COL["chunks"]]
        out = np.where(op == isa.Opcode.HASH,
                       hash_cycles(n, rows[:, COL["width"]], config.lookup.hash_lanes,
                                   config.vector.lanes, rows[:, COL["mode"]]), 0)
        # timing mode draws each command's rows from its shape alone, so commands of one shape
        # take the same cycles: each shape is timed once
        keys = [f for f in ("opcode", "tokens", "chunks", "width", "tier", "mode", "trows")]
        shape = rows[:, [COL[k] for k in keys]]
        memory = op != isa.Opcode.HASH
        if memory.any():
            uniq, inv = np.unique(shape[memory], axis=0, return_inverse=True)
            timed = np.empty(len(uniq), np.int64)
            for u, key in enumerate(uniq.tolist()):
                f = dict(zip(keys, key, strict=True))
                cmd = isa.command_class(f.pop("opcode"))(0, 0, 0, 0, **{
                    k: v for k, v in f.items() if k != "trows"})
                timed[u] = 2 if cmd.tokens * cmd.chunks == 0 else self._pipeline(
                    cmd, config, _synthetic_rows(key, cmd, f["trows"]), np.zeros(16, np.int64),
                    events)
            out[memory] = timed[inv.reshape(-1)]
        return UnitTiming(np.asarray(out, np.int64))

    def _hot_hits(self, rows, config) -> np.ndarray:
        """Hot-row cache hits of each row of a command table (:func:`hot_row_hits` over the rows
        timing mode draws, :func:`_synthetic_rows`): 0 without a cache, for HASH and for the row
        update."""
        hits = np.zeros(len(rows), np.int64)
        if not config.lookup.hot_rows:
            return hits
        keys = ("opcode", "tokens", "chunks", "width", "tier", "mode", "trows")
        memo: dict[tuple, int] = {}
        for i in range(len(rows)):
            key = tuple(int(rows[i, COL[k]]) for k in keys)
            op, mode = key[0], key[5]
            if key[1] * key[2] == 0 or not (op == isa.Opcode.GATHER or (
                    op == isa.Opcode.SCATTER and mode == 0)):
                continue
            if key not in memo:
                cmd = isa.command_class(op)(0, 0, 0, 0, *key[1:6])
                memo[key] = int(hot_row_hits(_synthetic_rows(list(key), cmd, key[6]),
                                             config.lookup.hot_rows)[0].sum())
            hits[i] = memo[key]
        return hits

    def footprint(self, cmd, config):
        lanes = config.vector.lanes
        return [Access(isa.Buffer.VEC, "w" if wr else "r", a, a + -(-w // lanes), wr)
                for _, a, w, wr in self._operands(cmd, config)]

    def account(self, rows, timing, config, acc):
        # arithmetic: the hash lanes' per-element operations, the accumulate lanes' MACs
        op = rows[:, COL["opcode"]]
        n = rows[:, COL["tokens"]] * rows[:, COL["chunks"]]
        width = rows[:, COL["width"]]
        flops = np.where(op == isa.Opcode.HASH, n * width * 5, 2 * n * width)
        # the row updates' traffic and updated rows: their pipeline over timing mode's rows
        # (both modes, as the hot-row hits), once per command shape
        traffic = self._update_traffic(rows, config)
        update = (op == isa.Opcode.SCATTER) & (rows[:, COL["mode"]] >= 1)
        # a row update: an SGD step (6 operations) or ADAM_FLOPS a word of each updated row
        per_word = np.where(rows[:, COL["mode"]] == 2, ADAM_FLOPS, 6)
        flops = np.where(update, per_word * traffic[:, 1] * width, flops)
        acc.add("lookup", "vector_flop", int(flops.sum()))
        hot = self._hot_hits(rows, config)
        for i in range(len(rows)):
            cmd = isa.command_class(int(op[i]))(**{
                f: int(rows[i, COL[f]]) for f, _ in isa.Gather.FIELDS})
            ops = self._operands(cmd, config)
            acc.sram(4 * sum(w for *_, w, wr in ops if not wr),
                     4 * sum(w for *_, w, wr in ops if wr), isa.Buffer.VEC)
            if cmd.OPCODE == isa.Opcode.HASH or n[i] == 0:
                continue
            tier = config.lookup.tiers[cmd.tier]
            rb = _row_bytes(cmd, config)
            gran = tier.access_bytes
            moved = -(-rb // gran) * gran
            # hot-row cache hits (timing mode's rows, in both modes: _hot_hits) move no
            # tier bytes; each hit reads its row from the cache SRAM, each miss fills it, and a
            # SCATTER writes its row through the cache to the tier
            hits = int(hot[i])
            if cmd.OPCODE == isa.Opcode.GATHER:
                rd, wr = (n[i] - hits) * moved, 0
            elif cmd.mode == 0:
                rd, wr = (n[i] - hits) * moved, n[i] * moved
            else:  # row update (hwsim.units.update_timing): the accesses not skipped read G,
                # W and the state (mode 1 V, mode 2 M and V), the updated rows write them and
                # the fp16 row
                state = 2 if cmd.mode == 2 else 1
                rd = (n[i] - traffic[i, 0]) * (2 + state) * moved
                wr = traffic[i, 1] * ((2 + state) * moved + -(-(rb // 2) // gran) * gran)
            if config.lookup.hot_rows and (cmd.OPCODE == isa.Opcode.GATHER or cmd.mode == 0):
                fills = n[i] - hits + (n[i] if cmd.OPCODE == isa.Opcode.SCATTER else 0)
                acc.sram(hits * rb, int(fills) * rb, HOT_ROWS)
            key = f"tier_{tier.name}"
            acc.bytes[f"{key}_read"] = acc.bytes.get(f"{key}_read", 0) + int(rd)
            acc.bytes[f"{key}_write"] = acc.bytes.get(f"{key}_write", 0) + int(wr)
            acc.add(key, f"tier_read:{tier.name}", int(rd))
            acc.add(key, f"tier_write:{tier.name}", int(wr))


    def _update_traffic(self, rows, config) -> np.ndarray:
        """Per command table row: ``(accesses skipped, rows updated)`` of a row update (SCATTER
        modes 1, 2) over timing mode's rows (:func:`timing_rows`, the first access to each row
        dirty, as timing mode times it); zeros for other commands."""
        out = np.zeros((len(rows), 2), np.int64)
        keys = ("opcode", "tokens", "chunks", "width", "tier", "mode", "trows")
        memo: dict[tuple, tuple[int, int]] = {}
        for i in range(len(rows)):
            key = tuple(int(rows[i, COL[k]]) for k in keys)
            op, n, mode = key[0], key[1] * key[2], key[5]
            if op != isa.Opcode.SCATTER or mode == 0 or n == 0:
                continue
            if key not in memo:
                cmd = isa.command_class(op)(0, 0, 0, 0, *key[1:6])
                synth = _synthetic_rows(list(key), cmd, key[6])
                r = update_run(config, synth, first_access(synth), cmd.width, cmd.tier,
                               (0,) * (5 if mode == 2 else 4))
                memo[key] = (int(r[5]), int(r[6]))
            out[i] = memo[key]
        return out


def timing_rows(cmd, trows: int = 0) -> np.ndarray:
    """The row indices timing mode draws for the GATHER or SCATTER ``cmd`` whose ``trows``
    annotation (rows a chunk; 0 for the default) is ``trows``."""
    key = [int(cmd.OPCODE), cmd.tokens, cmd.chunks, cmd.width, cmd.tier, cmd.mode, trows]
    return _synthetic_rows(key, cmd, trows)


def _synthetic_rows(key, cmd, trows: int) -> np.ndarray:
    """Timing mode's row indices: uniform within each chunk's ``trows`` rows (default
    :data:`DEFAULT_TROWS`), from a seed that is the command's shape ``key``, so a program times
    the same on every run and commands of one shape alike."""
    trows = trows or DEFAULT_TROWS
    n = cmd.tokens * cmd.chunks
    seed = int(np.frombuffer(np.asarray(key, np.int64).tobytes(), np.uint8).astype(np.uint64)
               .dot(np.arange(1, 8 * len(key) + 1, dtype=np.uint64)) % (1 << 32))
    rng = np.random.default_rng(seed)
    chunk = np.tile(np.arange(cmd.chunks, dtype=np.int64), cmd.tokens)
    return chunk * trows + rng.integers(0, trows, n, dtype=np.int64)
