"""Timing of whole programs held as arrays: the fast path beside :func:`hwsim.run`.

A compiled training step is 10^5-10^6 commands. :func:`hwsim.run` builds one Python object per
command and checks races pairwise; this module takes the program as a table of integer columns
(:data:`COLUMNS`, one row per command), computes every command's ``unit_cycles`` with vectorised
closed forms and hands the arrays to :func:`hwsim.schedule.schedule`, the same decoupled
controller timing mode uses. For the commands :func:`hwsim.run` accepts (dense GEMM, LOAD,
STORE, SYNC, SETREG) the durations are those of :func:`hwsim.timing.unit_cycles` and the cycles
equal ``run(...).stats.cycles`` exactly (``tests/dataflow/test_compiler.py`` checks it).

Three command kinds ``hwsim.run`` rejects today get their durations here; each model lives in
one function so it is easy to replace when hwsim executes the command:

- sparse GEMM (:func:`gemm_cycles`): the dense closed form with ``k`` the compressed step count
  (the ISA's ``k`` of a sparse tile already counts compressed steps, ``ceil(K·N/M)``);
- PRUNE (:func:`prune_unit_cycles`): :func:`hwsim.sore.prune_cycles`, SORE's documented
  schedule;
- UPDATE (:func:`vector_cycles`): an optimizer step (``vperiod == 0``) costs exactly
  :func:`hwsim.vector_unit.update_cycles`, the RTL-checked formula; the compiler also issues the
  vector engine's elementwise passes (norms, activations, softmax, col2im, loss) as UPDATE rows
  with ``vperiod`` the pass's cycles per entry, costed by the same pipeline formula
  (:mod:`dataflow.vector_ops` states the kernel model). Either is bounded below by streaming its
  DRAM bytes (``vbytes`` per element) at peak bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import isa, timing
from .config import AcceleratorConfig
from .dram import dma_cycles
from .schedule import schedule
from .vector_unit import update_cycles

__all__ = [
    "COLUMNS",
    "VECTOR_LATENCY",
    "FastStats",
    "gemm_cycles",
    "prune_unit_cycles",
    "simulate_table",
    "unit_cycles_table",
    "vector_cycles",
]

COLUMNS = (
    "opcode", "wait", "signal",
    "buf", "sram_addr", "dram_addr", "rows", "elems", "stride",   # LOAD/STORE
    "a_addr", "b_addr", "c_addr", "idx_addr", "k", "m", "dataflow", "sparse", "accumulate",
    "n", "log2m",                                                  # GEMM (n, log2m: PRUNE too)
    "count", "vbytes", "vflops",                                   # UPDATE: words, bytes/flops
    "vperiod",                                                     # UPDATE: 0 optimizer, else P
)
"""Columns of a command table; ``vbytes``, ``vflops`` and ``vperiod`` are per-element annotations
of UPDATE commands used by :func:`vector_cycles` (not ISA fields); an UPDATE row's optimizer is
in the ``dataflow`` column."""
COL = {name: i for i, name in enumerate(COLUMNS)}

VECTOR_LATENCY = 10
"""Fill and drain of one vector-engine pass, cycles: ``update_cycles = P * entries + 10 - P``
(:mod:`hwsim.vector_unit`: eight stages, the read latency and the done cycle)."""

_UNIT_OF = np.zeros(16, np.int64)
for _op, _cls in isa._REGISTRY.items():
    _UNIT_OF[int(_op)] = int(_cls.UNIT)


def gemm_cycles(k, m, dataflow, config: AcceleratorConfig, sparse=0, nm=(0, 0)):
    """``unit_cycles`` of GEMM tiles (vectorised), dense or sparse.

    Each distinct ``(k, m, dataflow)`` is timed by :func:`hwsim.timing.unit_cycles`, so the
    closed forms stay hwsim's. **Sparse assumption** (while ``hwsim.timing`` has no sparse
    model): an N:M tile costs the dense closed form with ``k`` its compressed step count
    (``ceil(K·N/M)``, what the ISA's ``k`` field holds for a sparse tile): each PE picks its
    activation by index from an M-wide group, so the array consumes one compressed weight row
    per step. ``sparse``/``nm`` are accepted for when hwsim models sparse tiles.
    """
    scalar = np.ndim(k) == 0
    k = np.atleast_1d(np.asarray(k, np.int64))
    m = np.broadcast_to(np.asarray(m, np.int64), k.shape)
    df = np.broadcast_to(np.asarray(dataflow, np.int64), k.shape)
    keys = np.stack([k, m, df], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    vals = np.array([timing.unit_cycles(isa.Gemm(0, 0, 0, 0, int(kk), int(mm), int(d)), config)
                     for kk, mm, d in uniq.tolist()], np.int64)
    out = vals[inv.reshape(-1)]
    return int(out[0]) if scalar else out


def prune_unit_cycles(rows, n, log2m, config: AcceleratorConfig):
    """``unit_cycles`` of PRUNE commands (vectorised form of :func:`hwsim.sore.prune_cycles`)."""
    passes = -(-config.array.cols // config.sore.lanes)
    rows = np.asarray(rows, np.int64)
    return np.where(rows == 0, 2, rows * passes + np.asarray(n, np.int64) + 3)


def vector_cycles(count, vperiod, vbytes, optimizer, config: AcceleratorConfig):
    """``unit_cycles`` of vector-engine (UPDATE) rows (vectorised).

    ``vperiod == 0``: an optimizer step, :func:`hwsim.vector_unit.update_cycles` of ``count``
    words (each distinct ``(count, optimizer)`` timed by that function). ``vperiod = P > 0``: an
    elementwise pass issuing one ``lanes``-word entry every ``P`` cycles through the same
    pipeline, ``P * ceil(count / lanes) + VECTOR_LATENCY - P`` (2 when ``count == 0``). Both
    take at least ``ceil(count * vbytes / dram_bytes_per_cycle) + dram latency + 1``: streaming
    their operands and results at the DRAM's peak bandwidth.
    """
    count = np.atleast_1d(np.asarray(count, np.int64))
    period = np.broadcast_to(np.asarray(vperiod, np.int64), count.shape)
    opt = np.broadcast_to(np.asarray(optimizer, np.int64), count.shape)
    lanes = config.vector.lanes
    entries = -(-count // lanes)
    comp = np.where(count == 0, 2, period * entries + VECTOR_LATENCY - period)
    upd = period == 0
    if upd.any():
        keys = np.stack([count[upd], opt[upd]], axis=1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        vals = np.array([update_cycles(int(c), lanes, int(o)) for c, o in uniq.tolist()],
                        np.int64)
        comp[upd] = vals[inv.reshape(-1)]
    nbytes = count * np.broadcast_to(np.asarray(vbytes, np.int64), count.shape)
    mem = np.ceil(nbytes / config.dram_bytes_per_cycle - 1e-9).astype(np.int64)
    mem = np.where(nbytes > 0, mem + config.dram_latency_cycles + 1, 0)
    return np.maximum(comp, mem)


def _elem_bytes(buf: np.ndarray, config: AcceleratorConfig) -> np.ndarray:
    eb = np.full(buf.shape, 4, np.int64)
    eb[(buf == isa.Buffer.ACT) | (buf == isa.Buffer.WGT)] = config.array.elem_bytes
    eb[buf == isa.Buffer.IDX] = 1
    return eb


def unit_cycles_table(table: np.ndarray, config: AcceleratorConfig) -> np.ndarray:
    """``unit_cycles`` of every row of a command table (see the module docstring)."""
    op = table[:, COL["opcode"]]
    dur = np.ones(len(table), np.int64)
    dma = (op == isa.Opcode.LOAD) | (op == isa.Opcode.STORE)
    if dma.any() and config.dram.model == "fixed":
        # each distinct (opcode, buffer, rows, elems) timed by hwsim.timing.unit_cycles
        keys = table[dma][:, [COL["opcode"], COL["buf"], COL["rows"], COL["elems"]]]
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        vals = np.array([timing.unit_cycles(isa._REGISTRY[isa.Opcode(o)](b, 0, 0, r, e, 0),
                                            config) for o, b, r, e in uniq.tolist()], np.int64)
        dur[dma] = vals[inv.reshape(-1)]
    elif dma.any():
        # the banked DRAM model, as hwsim.run times it (row state in program order)
        t = table[dma]
        buf = t[:, COL["buf"]]
        eb = np.where((buf == isa.Buffer.ACT) | (buf == isa.Buffer.WGT),
                      config.array.elem_bytes, np.where(buf == isa.Buffer.IDX, 1, 4))
        dur[dma] = dma_cycles(t[:, COL["opcode"]] == isa.Opcode.STORE, t[:, COL["dram_addr"]],
                              t[:, COL["rows"]], t[:, COL["elems"]] * eb, t[:, COL["stride"]],
                              config).cycles
    g = op == isa.Opcode.GEMM
    if g.any():
        t = table[g]
        dur[g] = gemm_cycles(t[:, COL["k"]], t[:, COL["m"]], t[:, COL["dataflow"]], config)
    p = op == isa.Opcode.PRUNE
    if p.any():
        t = table[p]
        dur[p] = prune_unit_cycles(t[:, COL["rows"]], t[:, COL["n"]], t[:, COL["log2m"]], config)
    u = op == isa.Opcode.UPDATE
    if u.any():
        t = table[u]
        dur[u] = vector_cycles(t[:, COL["count"]], t[:, COL["vperiod"]], t[:, COL["vbytes"]],
                               t[:, COL["dataflow"]], config)
    other = ~(dma | g | p | u | (op == isa.Opcode.SYNC) | (op == isa.Opcode.SETREG))
    if other.any():
        bad = int(np.argmax(other))
        raise NotImplementedError(f"command {bad}: opcode {isa.Opcode(int(op[bad])).name} has "
                                  "no timing in hwsim.fast_timing")
    return dur


@dataclass
class FastStats:
    """What :func:`simulate_table` measured (a subset of :class:`hwsim.Stats`, plus arrays).

    Attributes
    ----------
    cycles : int
    busy : dict
        Busy cycles per unit name (``dma_in``, ``dma_out``, ``array``, ``sore``, ``vector``).
    bytes : dict
        ``dram_read``, ``dram_write`` moved by LOAD/STORE.
    start, end, duration : numpy.ndarray
        Per command start and done cycle (inclusive) and ``unit_cycles``.
    accept, token : numpy.ndarray
        Per command the cycle the controller accepted it and the cycle the last semaphore
        token it waited for became visible (-1: none), as :func:`hwsim.schedule.schedule`
        returns them (for critical-path analyses).
    """

    cycles: int
    busy: dict = field(default_factory=dict)
    bytes: dict = field(default_factory=dict)
    start: np.ndarray | None = None
    end: np.ndarray | None = None
    duration: np.ndarray | None = None
    accept: np.ndarray | None = None
    token: np.ndarray | None = None


def simulate_table(table: np.ndarray, config: AcceleratorConfig) -> FastStats:
    """Schedule a command table with :func:`hwsim.schedule.schedule` (no race check).

    Raises
    ------
    hwsim.schedule.ScheduleError
        Semaphores that cannot be honoured (names the command).
    """
    table = np.asarray(table, np.int64)
    op = table[:, COL["opcode"]]
    unit = _UNIT_OF[op]
    control = unit == int(isa.Unit.CONTROL)
    dur = unit_cycles_table(table, config)
    accept, token, start, end = schedule(unit, dur, table[:, COL["wait"]],
                                         table[:, COL["signal"]], control, config.queue_depth)
    busy = {}
    for u in isa.Unit:
        if u != isa.Unit.CONTROL:
            busy[u.name.lower()] = int(dur[unit == int(u)].sum())
    moved = table[:, COL["rows"]] * table[:, COL["elems"]] * _elem_bytes(table[:, COL["buf"]],
                                                                       config)
    nbytes = {"dram_read": int(moved[op == isa.Opcode.LOAD].sum()),
              "dram_write": int(moved[op == isa.Opcode.STORE].sum())}
    cycles = int(end.max()) + 1 if len(table) else 0
    return FastStats(cycles, busy, nbytes, start, end, dur, accept, token)
