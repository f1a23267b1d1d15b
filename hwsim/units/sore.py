"""SORE, the sparse online reduction engine: PRUNE as a per-cycle Numba kernel and closed forms.

What a PRUNE (``axis=1``) computes
----------------------------------
The source is ``rows`` buffer entries of ``width`` elements (``width = array.cols``: a WGT entry
is one row of a K x C weight tile, so the entries run along the GEMM reduction axis K, the axis
BDWP prunes). For every column ``c`` and every group ``g`` of ``M = 2**log2m`` consecutive
entries ``g*M .. g*M+M-1``, the ``N`` elements of largest *magnitude* are kept:

- int8: magnitude ``|x|`` as an unsigned 8-bit number (``|-128| = 128``).
- fp16: magnitude = the bit pattern with the sign bit dropped (``bits & 0x7fff``). For non-NaN
  values this orders exactly like ``|x|`` (``+0`` and ``-0`` tie). NaNs rank above every
  number including infinity, and among themselves by payload (larger payload first). That is
  the one place the hardware differs from ``algorithms.nm``, where all NaNs tie.
- **Ties: the lower index wins**, as in :func:`algorithms.nm.nm_mask`.

Output (the format of ``algorithms.nm.compress(w, n, m, dim=0)``): ``rows*N/M`` value entries
to WGT from ``dst_addr`` and as many index entries to IDX from ``idx_addr``. Entry
``g*N + j`` holds, for every column, the ``j``-th kept element of group ``g`` in increasing
index order, and its in-group index in ``[0, M)`` as one byte per column. Group ``g`` is written
only after its last read, at offsets below ``(g+1)*M``, so a destination at or below the source
in the same buffer (``dst_addr <= src_addr``, pruning in place included) is safe;
:func:`check_prune` rejects ``src_addr < dst_addr < src_addr + rows`` in WGT.

Axis 0 (groups within an entry) is not implemented: :func:`check_prune` rejects it.

Microarchitecture and cycles
----------------------------
``L`` lanes, each a streaming top-N-of-M selector (an insertion list of N slots sorted by
magnitude, one element per cycle, N comparators). Columns go to lanes in ``P = ceil(C / L)``
passes: in pass ``p`` lane ``l`` takes column ``p*L + l``. A *job* is one pass over one group:
M cycles in which the unit reads the group's M entries from the source, one per cycle, and every
lane consumes its column's element. There is no group buffer: each pass re-reads its group, so
the source port carries ``P`` reads per entry. Jobs follow each other without bubbles, group
by group and pass by pass within a group.

Cycle 0 is the start cycle (fields latched). Reads go out on cycles ``1 .. T`` with
``T = rows * P``; the data of the read on cycle ``c`` reaches the lanes on cycle ``c + 1``
(read latency 1). On the cycle after a job's last element the lanes' survivors, reordered by
index, are captured into an N x C staging register; after a group's last pass its N entries are
written on the next N cycles (values and indices on their own ports, one entry each per cycle),
overlapping the next group's first job. ``done`` is high on the cycle of the last write, so
start to done inclusive::

    prune_cycles(rows, width, n, m, lanes) = rows * ceil(width / lanes) + n + 3   (rows > 0)
                                           = 2                                    (rows == 0)

Energy counts magnitude comparisons: ``n`` per element a lane consumes (its N slot
comparators), ``rows * width * n`` per command, times ``config.energy.sore_compare``.
``rtl.sore.Sore`` implements exactly this schedule; ``tests/rtl/test_sore.py`` checks it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import isa
from .._jit import njit
from ..config import AcceleratorConfig
from ..program import COL
from . import Access, UnitModel, UnitTiming

__all__ = [
    "PruneCost",
    "SoreModel",
    "PruneResult",
    "check_prune",
    "magnitude_keys",
    "prune",
    "prune_compares",
    "prune_cost",
    "prune_cycles",
    "prune_passes",
    "prune_per_cycle",
]


class PruneResult(NamedTuple):
    """Outputs of :func:`prune`.

    Attributes
    ----------
    values : ndarray[rows * n // m, width]
        Kept values, dtype of the source.
    indices : uint8 ndarray[rows * n // m, width]
        In-group index of each kept value.
    cycles : int
        Start-to-done cycles, counted by the per-cycle kernel.
    compares : int
        Magnitude comparisons, counted by the per-cycle kernel.
    """

    values: np.ndarray
    indices: np.ndarray
    cycles: int
    compares: int


class PruneCost(NamedTuple):
    """Closed-form cost of one PRUNE command (timing mode)."""

    cycles: int
    compares: int
    energy_pj: float
    sram_read_bytes: int
    sram_write_bytes: int


def _positive_int(name: str, v) -> None:
    if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v!r}")


def _check_pattern(n, m) -> None:
    ok = (isinstance(n, int | np.integer) and isinstance(m, int | np.integer)
          and not isinstance(n, bool) and not isinstance(m, bool)
          and 1 <= n <= m <= 256 and not m & (m - 1))
    if not ok:
        raise ValueError(f"pattern {n!r}:{m!r} needs integers 1 <= n <= m <= 256 with m a "
                         f"power of two")


def prune_passes(width: int, lanes: int) -> int:
    """Passes over each group: ``ceil(width / lanes)``."""
    _positive_int("width", width)
    _positive_int("lanes", lanes)
    return -(-width // lanes)


def prune_cycles(rows: int, width: int, n: int, m: int, lanes: int) -> int:
    """Start-to-done cycles, inclusive, of a PRUNE of ``rows`` entries of ``width`` elements.

    ``rows * ceil(width / lanes) + n + 3``; 2 when ``rows == 0`` (start, then done).

    Raises
    ------
    ValueError
        Bad pattern, ``lanes`` or ``width``, or ``rows`` not a multiple of ``m``.
    """
    _check_pattern(n, m)
    passes = prune_passes(width, lanes)
    if not isinstance(rows, int | np.integer) or rows < 0 or rows % m:
        raise ValueError(f"rows {rows!r} must be a non-negative multiple of m={m} "
                         f"(pattern {n}:{m})")
    return 2 if rows == 0 else int(rows) * passes + int(n) + 3


def prune_compares(rows: int, width: int, n: int) -> int:
    """Magnitude comparisons of a PRUNE: ``n`` per element consumed."""
    return int(rows) * int(width) * int(n)


def magnitude_keys(src: np.ndarray) -> np.ndarray:
    """The unsigned magnitudes the lanes compare (see the module docstring), as int64.

    Raises
    ------
    ValueError
        If ``src`` is not int8 or float16.
    """
    if src.dtype == np.int8:
        return np.abs(src.astype(np.int64))
    if src.dtype == np.float16:
        return (src.view(np.uint16) & 0x7FFF).astype(np.int64)
    raise ValueError(f"src must be int8 or float16, not {src.dtype}")


def prune(src: np.ndarray, n: int, m: int, *, lanes: int | None = None) -> PruneResult:
    """Run one PRUNE (``axis=1``) through the per-cycle model of the lanes.

    Parameters
    ----------
    src : int8 or float16 ndarray[rows, width]
        The source entries (a K x C weight tile; ``rows`` a multiple of ``m``).
    n, m : int
        Keep ``n`` of every ``m`` along axis 0 (across entries).
    lanes : int, optional
        Selector lanes (``config.sore.lanes``); default one per column. Only cycles depend
        on it.

    Returns
    -------
    PruneResult
        Values and indices equal ``algorithms.nm.compress(w, n, m, dim=0)`` (NaN payloads
        aside), plus the counted cycles and comparisons.

    Raises
    ------
    ValueError
        Wrong dtype or shape, bad pattern or lanes, or ``rows`` not a multiple of ``m``.
    """
    if not isinstance(src, np.ndarray) or src.ndim != 2 or src.dtype not in (np.int8,
                                                                              np.float16):
        desc = (f"{src.dtype} array of shape {src.shape}" if isinstance(src, np.ndarray)
                else type(src).__name__)
        raise ValueError(f"src must be a 2-D int8 or float16 array, not {desc}")
    rows, width = src.shape
    lanes = width if lanes is None else lanes
    _positive_int("lanes", lanes)
    if width == 0:
        raise ValueError("src has no columns (width 0)")
    prune_cycles(rows, width, n, m, lanes)  # validates the pattern and rows
    raw = src.view(np.uint8 if src.dtype == np.int8 else np.uint16).astype(np.int64)
    vals, idx, cycles, compares = prune_per_cycle(raw, magnitude_keys(src), int(n), int(m),
                                                  int(lanes))
    values = vals.astype(np.uint8 if src.dtype == np.int8 else np.uint16).view(src.dtype)
    return PruneResult(values, idx, int(cycles), int(compares))


@njit(cache=True)
def prune_per_cycle(raw: np.ndarray, keys: np.ndarray, n: int, m: int, lanes: int):
    """The SORE register by register: read stage, lanes, staging register and writer.

    Each loop iteration is one clock. Stages are evaluated from the back of the pipeline to
    the front so that each reads the registers of the stage before it as they were at the
    start of the cycle, as the RTL's synchronous logic does.

    Parameters
    ----------
    raw : int64[rows, width]
        Element bit patterns (moved, never interpreted).
    keys : int64[rows, width]
        Magnitudes compared by the lanes.
    n, m, lanes : int

    Returns
    -------
    values : int64[rows * n // m, width]
        Bit patterns of the kept elements.
    indices : uint8[rows * n // m, width]
    cycles : int
        Start cycle to the cycle of the last write, inclusive.
    compares : int
    """
    rows, width = keys.shape
    passes = (width + lanes - 1) // lanes
    groups = rows // m
    out_v = np.zeros((groups * n, width), np.int64)
    out_i = np.zeros((groups * n, width), np.uint8)
    if groups == 0:
        return out_v, out_i, 2, 0
    # lane registers: an insertion list of n slots, largest magnitude first
    s_key = np.zeros((lanes, n), np.int64)
    s_val = np.zeros((lanes, n), np.int64)
    s_idx = np.zeros((lanes, n), np.int64)
    s_ok = np.zeros((lanes, n), np.bool_)
    stage_v = np.zeros((n, width), np.int64)
    stage_i = np.zeros((n, width), np.int64)
    rank = np.zeros(n, np.int64)
    # read stage counters, and the tags travelling with the data on the read port
    rd_on, i, p, g = True, 0, 0, 0
    d_ok, d_row, d_first, d_last, d_pass, d_i, d_final = False, 0, False, False, 0, 0, False
    cap, cap_pass, cap_final = False, 0, False
    w_on, w_j, w_ptr, w_final = False, 0, 0, False
    compares = 0
    cycle = 1  # cycle 0 latches the command
    while True:
        # writer: one value entry and one index entry from the staging register
        done = False
        if w_on:
            for c in range(width):
                out_v[w_ptr, c] = stage_v[w_j, c]
                out_i[w_ptr, c] = stage_i[w_j, c]
            done = w_final and w_j == n - 1
        # capture: survivors of the finished job, in increasing index order
        if cap:
            for lane in range(lanes):
                c = cap_pass * lanes + lane
                if c >= width:
                    continue
                for s in range(n):
                    rank[s] = 0
                    for t in range(n):
                        if s_idx[lane, t] < s_idx[lane, s]:
                            rank[s] += 1
                for s in range(n):
                    stage_v[rank[s], c] = s_val[lane, s]
                    stage_i[rank[s], c] = s_idx[lane, s]
        # lanes: insert this cycle's element (the first of a group into an empty list)
        if d_ok:
            for lane in range(lanes):
                c = d_pass * lanes + lane
                if c >= width:
                    continue
                compares += n
                k = keys[d_row, c]
                if d_first:
                    for s in range(n):
                        s_ok[lane, s] = False
                pos = 0
                while pos < n and s_ok[lane, pos] and s_key[lane, pos] >= k:
                    pos += 1
                if pos < n:
                    for s in range(n - 1, pos, -1):
                        s_key[lane, s] = s_key[lane, s - 1]
                        s_val[lane, s] = s_val[lane, s - 1]
                        s_idx[lane, s] = s_idx[lane, s - 1]
                        s_ok[lane, s] = s_ok[lane, s - 1]
                    s_key[lane, pos] = k
                    s_val[lane, pos] = raw[d_row, c]
                    s_idx[lane, pos] = d_i
                    s_ok[lane, pos] = True
        # next state, back to front
        if w_on:
            w_ptr += 1
            if w_j == n - 1:
                w_on = False
            else:
                w_j += 1
        if cap and cap_pass == passes - 1:
            w_on, w_j, w_final = True, 0, cap_final
        cap, cap_pass, cap_final = d_ok and d_last, d_pass, d_final
        d_ok = rd_on
        if rd_on:
            d_row, d_first, d_last, d_pass, d_i = g * m + i, i == 0, i == m - 1, p, i
            d_final = i == m - 1 and p == passes - 1 and g == groups - 1
            if i < m - 1:
                i += 1
            else:
                i = 0
                if p < passes - 1:
                    p += 1
                else:
                    p = 0
                    g += 1
                    rd_on = g < groups
        if done:
            return out_v, out_i, cycle + 1, compares
        cycle += 1


def check_prune(cmd: isa.Prune, config: AcceleratorConfig) -> tuple[str, str] | None:
    """Why the machine cannot execute ``cmd``, as ``(field, reason)``; ``None`` if it can.

    The engine wraps the answer in its ``ProgramError``; the RTL controller must reject the
    same commands (the RTL's behaviour on them is undefined).
    """
    R, C = config.array.rows, config.array.cols
    m = 1 << cmd.log2m
    if cmd.axis != 1:
        return "axis", ("axis 0 (groups within an entry) is not implemented by the SORE; "
                        "prune across entries with axis=1")
    if (cmd.n, m) not in config.array.nm_patterns:
        return "n", (f"pattern {cmd.n}:{m} is not supported by config {config.name!r} "
                     f"{config.array.patterns}")
    if cmd.rows % m:
        return "rows", f"{cmd.rows} entries are not a whole number of groups of {m}"
    if cmd.src_buf == isa.Buffer.WGT or cmd.src_buf == isa.Buffer.ACT and R == C:
        depth = config.wgt_depth if cmd.src_buf == isa.Buffer.WGT else config.act_depth
    else:
        return "src_buf", (f"buffer {cmd.src_buf} does not hold entries of {C} operands "
                           f"(WGT{', or ACT' if R == C else ''})")
    if cmd.src_addr + cmd.rows > depth:
        return "rows", (f"source entries {cmd.src_addr}..{cmd.src_addr + cmd.rows - 1} overflow "
                        f"the {isa.Buffer(cmd.src_buf).name} buffer of {depth} entries")
    out = cmd.rows * cmd.n // m
    if cmd.dst_addr + out > config.wgt_depth:
        return "dst_addr", (f"value entries {cmd.dst_addr}..{cmd.dst_addr + out - 1} overflow "
                            f"the WGT buffer of {config.wgt_depth} entries")
    if cmd.src_buf == isa.Buffer.WGT and cmd.src_addr < cmd.dst_addr < cmd.src_addr + cmd.rows:
        last = cmd.src_addr + cmd.rows - 1
        return "dst_addr", (f"value entries {cmd.dst_addr}..{cmd.dst_addr + out - 1} would "
                            f"overwrite source entries {cmd.src_addr}..{last} before they are "
                            f"read; use dst_addr <= src_addr or a disjoint range")
    return None


def prune_cost(cmd: isa.Prune, config: AcceleratorConfig) -> PruneCost:
    """Cycles, comparisons, energy and SRAM traffic of a valid PRUNE (see :func:`check_prune`).

    Reads: ``rows * ceil(C / L)`` source entries (each pass re-reads its group); writes:
    ``rows * n / m`` value entries and as many index entries of ``C`` bytes.
    """
    C, L = config.array.cols, config.sore.lanes
    m = 1 << cmd.log2m
    out = cmd.rows * cmd.n // m
    compares = prune_compares(cmd.rows, C, cmd.n)
    eb = config.array.elem_bytes
    return PruneCost(
        cycles=prune_cycles(cmd.rows, C, cmd.n, m, L),
        compares=compares,
        energy_pj=compares * config.energy.sore_compare,
        sram_read_bytes=cmd.rows * prune_passes(C, L) * C * eb,
        sram_write_bytes=out * C * (eb + 1),
    )


class SoreModel(UnitModel):
    """PRUNE (module docstring). A compiler's PRUNE row may carry ``xbytes``: DRAM bytes the
    SORE streams outside the DMA queues (the weights read and the sparse copies written when
    pruning runs off DRAM), counted as ``dram_other`` traffic."""

    name = "sore"
    opcodes = (isa.Opcode.PRUNE,)

    def check(self, cmd, config):
        bad = check_prune(cmd, config)
        if bad is not None:
            return bad
        out = cmd.rows * cmd.n >> cmd.log2m
        if cmd.idx_addr + out > config.idx_depth:
            return "idx_addr", (f"index entries {cmd.idx_addr}..{cmd.idx_addr + out - 1} "
                                f"overflow the IDX buffer of {config.idx_depth} entries")
        return None

    def execute(self, cmd, machine, config):
        src = machine.buffers[isa.Buffer(cmd.src_buf)][cmd.src_addr:cmd.src_addr + cmd.rows]
        res = prune(src.copy(), cmd.n, 1 << cmd.log2m, lanes=config.sore.lanes)
        out = res.values.shape[0]
        machine.buffers[isa.Buffer.WGT][cmd.dst_addr:cmd.dst_addr + out] = res.values
        machine.buffers[isa.Buffer.IDX][cmd.idx_addr:cmd.idx_addr + out] = res.indices

    def cycles(self, rows, config):
        passes = -(-config.array.cols // config.sore.lanes)
        n_rows = rows[:, COL["rows"]]
        return UnitTiming(np.where(n_rows == 0, 2, n_rows * passes + rows[:, COL["n"]] + 3))

    def footprint(self, cmd, config):
        out = cmd.rows * cmd.n >> cmd.log2m
        return [Access(cmd.src_buf, "r", cmd.src_addr, cmd.src_addr + cmd.rows, False),
                Access(isa.Buffer.WGT, "w", cmd.dst_addr, cmd.dst_addr + out, True),
                Access(isa.Buffer.IDX, "w", cmd.idx_addr, cmd.idx_addr + out, True)]

    def account(self, rows, timing, config, acc):
        C, L = config.array.cols, config.sore.lanes
        n_rows, n = rows[:, COL["rows"]], rows[:, COL["n"]]
        out = (n_rows * n) >> rows[:, COL["log2m"]]
        eb = config.array.elem_bytes
        acc.add("sore", "sore_compare", int((n_rows * C * n).sum()))
        # each pass reads the source entries; the kept values go to WGT, their 1-byte indices
        # to IDX
        src = rows[:, COL["src_buf"]]
        for b in np.unique(src):
            acc.sram(int(n_rows[src == b].sum()) * prune_passes(C, L) * C * eb, 0, int(b))
        acc.sram(0, int(out.sum()) * C * eb, isa.Buffer.WGT)
        acc.sram(0, int(out.sum()) * C, isa.Buffer.IDX)
        other = int(rows[:, COL["xbytes"]].sum())
        acc.bytes["dram_other"] += other
        acc.add("dram", "dram_byte", other)
