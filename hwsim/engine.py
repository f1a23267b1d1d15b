"""The machine as an executable specification: ``run(program, config, mode)``.

The engine knows no command type: every command goes to the unit model that executes it
(:data:`hwsim.units.REGISTRY`), which checks it against the config, times it (closed forms over
the whole command table at once) and, in functional mode, executes it on modelled buffers and
DRAM. The decoupled controller of :mod:`hwsim.schedule`, which the RTL implements cycle for
cycle, places the commands in time.

``mode="timing"``: closed forms and the closed-form scheduler, no values. ``mode="functional"``:
the same durations, the cycle-stepped scheduler (the two agree exactly; tests check it), and
every command executed in program order through the per-cycle kernels; returns the output
tensors too. Race-free programs (checked unless ``check_races=False``) give the same values in
program order as on the concurrent machine.

``check=False`` skips the per-command checks and the race check, and never builds a Python
object per command: the path for compiled training steps of 10^5-10^6 commands, whose vector
passes are compiler annotations the per-command checks do not accept (:mod:`hwsim.program`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields

import numpy as np

from . import buffers, isa
from ._jit import njit
from .config import AcceleratorConfig
from .energy import SRAM_COMPONENTS, SRAM_PARTS, energy_pj, total_pj
from .program import COL, Program, table_to_commands
from .schedule import ScheduleError, schedule, schedule_per_cycle
from .units import REGISTRY, Accounting, table_cycles

__all__ = ["Machine", "ProgramError", "RunResult", "Schedule", "Stats", "run"]

MODES = ("timing", "functional")
_UNIT_OF = np.zeros(16, np.int64)
for _op in isa.Opcode:
    _UNIT_OF[int(_op)] = int(isa.command_class(_op).UNIT)
_BACK_UNITS = (isa.Unit.ARRAY, isa.Unit.DMA_OUT, isa.Unit.SORE, isa.Unit.VECTOR)


class ProgramError(ValueError):
    """A program that the machine cannot execute; the message names the command and field."""

    def __init__(self, index: int, cmd: isa.Command, field_name: str, why: str):
        self.index, self.cmd, self.field = index, cmd, field_name
        super().__init__(f"command {index} ({cmd.name}) field {field_name!r}: {why}")


@dataclass
class Schedule:
    """Per command (arrays in program order): the cycle the controller accepted it, the cycle
    the last semaphore token it consumed became visible (-1: none), its unit's start and done
    cycles (inclusive) and its ``unit_cycles``."""

    accept: np.ndarray
    token: np.ndarray
    start: np.ndarray
    end: np.ndarray
    duration: np.ndarray


@dataclass
class Stats:
    """What one run measured.

    Attributes
    ----------
    cycles : int
        Total cycles, first command accepted to last retired.
    busy : dict
        Busy cycles per unit queue (``dma_in``, ``dma_out``, ``array``, ...).
    stalls : dict
        Idle cycles of units before a command, by the constraint that cleared last:
        ``dispatch`` (the command had not reached the unit's queue), ``dependency`` (waiting
        for a data token), ``buffer_space`` (a DMA load waiting for a buffer half to be freed);
        and busy cycles that do no useful work: ``dram_latency`` (loads waiting for their last
        data's DRAM latency), ``dram_bandwidth`` (DMA cycles beyond moving each command's bytes
        at the DRAM's peak bandwidth: row misses, channel imbalance, the request issue rate),
        ``pipeline`` (array fill and drain).
    bytes : dict
        ``dram_read``, ``dram_write`` (DMA commands), ``dram_other`` (DRAM traffic units stream
        outside the DMA queues: compiled vector passes and pruning), ``sram_read``,
        ``sram_write``.
    sram_bytes : dict
        Per part of the ``sram`` component (:data:`hwsim.energy.SRAM_PARTS`: the buffers
        ``act``, ``wgt``, ``acc``, ``idx``, ``vec`` and the lookup engine's ``hot_rows``
        cache), ``{"read": bytes, "write": bytes}``; they sum to ``bytes["sram_read"]`` and
        ``bytes["sram_write"]``.
    dram : dict
        ``row_hits`` and ``row_misses`` (row-buffer accesses of the banked model; 0 for the
        fixed model), ``bandwidth_gbps`` (DMA bytes over the cycles in which a DMA unit was
        busy, GB/s) and ``peak_gbps`` (all channels).
    energy_pj : dict
        Per component (:mod:`hwsim.energy`): ``sram`` is the total of its per-buffer parts
        ``sram_act`` ... ``sram_vec`` and ``sram_hot_rows``, which the dict holds as well (do
        not sum its values: :attr:`energy_total_pj` is the run's energy).
    macs : int
        Useful multiply-accumulates (padding excluded) when the caller knows them, else the
        MACs the array performed.
    utilisation : float
        ``macs / (cycles * PEs)``.
    schedule : Schedule
        Per command, arrays: accept, token, start and done cycles and durations.
    extrapolated : dict or None
        None when every command was simulated. A GEMM too large to emit
        (:mod:`dataflow.extrapolate`) is timed from truncated programs and extrapolated over
        its loop nest; this says how: ``loops`` (per loop extrapolated, ``[iterations,
        simulated iterations, period]``, period 0 where no steady state was seen), ``runs``
        (programs simulated), ``exact`` (True when every loop reached a checked steady state:
        the additive fields are then what the full program gives) and ``bound`` (when not
        exact: per additive field, ``"group/key"``, the error the sampled windows allow).
        No :attr:`schedule` then.
    accept_cycles, start_cycles, retire_cycles : list of int
        Per command (properties, from :attr:`schedule`): the cycle the controller accepted it,
        its unit started it, and its unit finished it (cycle 0: first command accepted).
    """

    cycles: int = 0
    busy: dict[str, int] = field(default_factory=dict)
    stalls: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    dram: dict[str, float] = field(default_factory=dict)
    energy_pj: dict[str, float] = field(default_factory=dict)
    sram_bytes: dict[str, dict[str, int]] = field(default_factory=dict)
    macs: int = 0
    utilisation: float = 0.0
    schedule: Schedule | None = field(default=None, repr=False, compare=False)
    extrapolated: dict | None = None

    def _per_command(self, name: str) -> list[int]:
        return [] if self.schedule is None else getattr(self.schedule, name).tolist()

    @property
    def accept_cycles(self) -> list[int]:
        return self._per_command("accept")

    @property
    def start_cycles(self) -> list[int]:
        return self._per_command("start")

    @property
    def retire_cycles(self) -> list[int]:
        return self._per_command("end")

    @property
    def energy_total_pj(self) -> float:
        """The run's energy, picojoules: every component of :attr:`energy_pj` but the parts of
        ``sram`` (:func:`hwsim.energy.total_pj`)."""
        return total_pj(self.energy_pj)

    @property
    def energy_sram_pj_by_buffer(self) -> dict[str, float]:
        """The ``sram`` component's parts by buffer (``act`` ... ``vec``, ``hot_rows``),
        picojoules; they sum to ``energy_pj["sram"]``."""
        return {p: self.energy_pj.get(c, 0.0) for p, c in zip(SRAM_PARTS, SRAM_COMPONENTS,
                                                                strict=True)}

    def to_dict(self, *, per_command: bool = False) -> dict:
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)
             if f.name != "schedule"}
        d["energy_total_pj"] = self.energy_total_pj
        if per_command:
            d.update(accept_cycles=self.accept_cycles, start_cycles=self.start_cycles,
                     retire_cycles=self.retire_cycles)
        return d

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(**kw), indent=2)


@dataclass
class RunResult:
    stats: Stats
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    dram: np.ndarray | None = None


class Machine:
    """Buffers, controller registers and DRAM of the functional mode (what unit models'
    ``execute`` reads and writes)."""

    def __init__(self, config: AcceleratorConfig, dram: np.ndarray):
        self.buffers = {b: np.zeros((buffers.depth(b, config), buffers.width(b, config)),
                                    buffers.np_dtype(b, config)) for b in isa.Buffer}
        self.regs = np.zeros(16, np.uint32)  # SETREG registers
        self.dram = dram


def _row_command(program: Program, i: int) -> isa.Command:
    """Command ``i`` of ``program`` as an ISA object, without building the others."""
    if program._commands is not None:
        return program._commands[i]
    return table_to_commands(program.table[i:i + 1])[0]


def _first_bad_word(table: np.ndarray) -> int:
    """The first row whose opcode is unknown or a field does not fit its width (-1: none):
    what :func:`hwsim.program.table_to_commands` refuses, found over the whole table at once
    (column ranges first: a row-by-row mask only for a column out of range)."""
    op = table[:, COL["opcode"]]
    bad = []
    known = np.isin(op, [int(o) for o in isa.Opcode])
    if not known.all():
        bad.append(int(np.argmin(known)))
    heads = table[:, [COL["wait"], COL["signal"]]]
    if len(heads) and (heads.min() < 0 or heads.max() >= 1 << isa.NUM_SEMAPHORES):
        over = ((heads < 0) | (heads >= 1 << isa.NUM_SEMAPHORES)).any(axis=1)
        bad.append(int(np.argmax(over)))
    for o in np.unique(op[known]).tolist():
        spec = isa.command_class(o).FIELDS
        rows = np.flatnonzero(op == o)
        sub = table[np.ix_(rows, [COL[name] for name, _ in spec])]
        limit = np.array([1 << w for _, w in spec], np.int64)
        if (sub.min(axis=0) < 0).any() or (sub.max(axis=0) >= limit).any():
            bad.append(int(rows[np.argmax(((sub < 0) | (sub >= limit)).any(axis=1))]))
    return min(bad, default=-1)


def _distinct(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows that every unit model's ``check`` and ``footprint`` see alike, grouped: ``(first,
    inverse)``, ``first[k]`` the first row of group ``k`` and ``inverse[i]`` the group of row
    ``i``. A group is an opcode and its fields, but for the semaphore masks and the fields its
    model lists in :attr:`~hwsim.units.UnitModel.address_fields` (DRAM addresses), which
    neither method reads: so the checks and footprints cost per distinct command shape, not
    per command."""
    op = table[:, COL["opcode"]]
    inverse = np.zeros(len(table), np.int64)
    firsts = []
    for o in np.unique(op).tolist():
        rows = np.flatnonzero(op == o)
        model = REGISTRY.get(isa.Opcode(o))
        skip = set(model.address_fields) if model is not None else set()
        cols = [COL[name] for name, _ in isa.command_class(o).FIELDS if name not in skip]
        if cols:
            sub = np.ascontiguousarray(table[np.ix_(rows, cols)])
            key = sub.view(np.dtype((np.void, sub.dtype.itemsize * len(cols)))).ravel()
            _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        else:
            first, inv = np.zeros(1, np.int64), np.zeros(len(rows), np.int64)
        inverse[rows] = inv.reshape(-1) + sum(len(f) for f in firsts)
        firsts.append(rows[first])
    first = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
    return first, inverse


def _check(program: Program, config: AcceleratorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Raise the error of the first command (in program order) that ``config``'s machine cannot
    run: an ISA word that does not decode (:class:`hwsim.isa.IsaError`), an opcode no unit
    models or a unit's ``check`` (:class:`ProgramError`). Each distinct command shape
    (:func:`_distinct`) is checked once. Returns :func:`_distinct`'s groups."""
    table = program.table
    bad = _first_bad_word(table)
    if bad >= 0:
        table_to_commands(table[bad:bad + 1])  # raises the IsaError naming the field
    first, inverse = _distinct(table)
    why = {}
    for k, i in enumerate(first.tolist()):
        cmd = _row_command(program, i)
        model = REGISTRY.get(cmd.OPCODE)
        res = ("opcode", f"{cmd.name} is not modelled yet") if model is None else \
            model.check(cmd, config)
        if res is not None:
            why[k] = res
    if why:
        # the first row of any failing group
        k = min(why, key=lambda k: int(first[k]))
        i = int(first[k])
        raise ProgramError(i, _row_command(program, i), *why[k])
    return first, inverse


_PORTS: dict[str, int] = {}


def _footprints(program: Program, first: np.ndarray, inverse: np.ndarray,
                config: AcceleratorConfig) -> tuple[np.ndarray, ...]:
    """Each command's buffer accesses as arrays ``(count, buf, port, lo, hi, writes)`` of shape
    ``(n, most accesses)``, from one ``footprint`` call per distinct command shape."""
    feet = [REGISTRY[_row_command(program, i).OPCODE].footprint(_row_command(program, i),
                                                                config)
            for i in first.tolist()]
    width = max((len(f) for f in feet), default=0) or 1
    g = len(feet)
    count = np.zeros(g, np.int64)
    buf, port, lo, hi = (np.zeros((g, width), np.int64) for _ in range(4))
    writes = np.zeros((g, width), np.bool_)
    for k, f in enumerate(feet):
        count[k] = len(f)
        for a, x in enumerate(f):
            buf[k, a], lo[k, a], hi[k, a], writes[k, a] = int(x.buf), x.lo, x.hi, x.writes
            port[k, a] = _PORTS.setdefault(x.port, len(_PORTS))
    return tuple(x[inverse] for x in (count, buf, port, lo, hi, writes))


# interpreted: a few us a command on a loaded 2-core machine (hwsim._jit)
@njit(cache=True, cost=lambda order, *_: 3e-6 * order.shape[0])
def _race_sweep(order, start, end, unit, count, buf, port, lo, hi, writes):  # pragma: no cover
    """The first pair of commands running at once that share a buffer port (kind 1) or touch
    overlapping entries of a buffer where one writes (kind 2): ``(i, j, x, y, kind)``, command
    ``i`` the later to start and ``x``, ``y`` their accesses; kind 0 for none."""
    n = order.shape[0]
    active = np.empty(n, np.int64)
    na = 0
    for ii in range(n):
        i = order[ii]
        k = 0
        for a in range(na):
            j = active[a]
            if end[j] >= start[i]:
                active[k] = j
                k += 1
        na = k
        if count[i] > 0:
            for a in range(na):
                j = active[a]
                if unit[j] == unit[i]:
                    continue
                for x in range(count[i]):
                    for y in range(count[j]):
                        if buf[i, x] != buf[j, y]:
                            continue
                        if port[i, x] == port[j, y]:
                            return i, j, x, y, 1
                        if (writes[i, x] or writes[j, y]) and lo[i, x] < hi[j, y] \
                                and lo[j, y] < hi[i, x]:
                            return i, j, x, y, 2
        active[na] = i
        na += 1
    return -1, -1, -1, -1, 0


def _check_races(program: Program, first, inverse, unit, start, end,
                 config: AcceleratorConfig) -> None:
    """Commands that overlap in time must not touch overlapping entries of a buffer where one
    writes (a race the semaphores failed to order), nor share a buffer port."""
    count, buf, port, lo, hi, writes = _footprints(program, first, inverse, config)
    order = np.argsort(start, kind="stable")
    i, j, x, y, kind = _race_sweep(order, np.asarray(start, np.int64),
                                   np.asarray(end, np.int64), np.asarray(unit, np.int64),
                                   count, buf, port, lo, hi, writes)
    if kind == 0:
        return
    a, b = sorted((int(i), int(j)))
    ca, cb = _row_command(program, a), _row_command(program, b)
    name = isa.Buffer(int(buf[i, x])).name
    if kind == 1:
        raise ProgramError(b, cb, "buf", f"uses the {name} buffer's "
                           f"{'write' if writes[i, x] else 'read'} port while "
                           f"command {a} ({ca.name}) does")
    raise ProgramError(b, cb, "wait", f"races with command {a} ({ca.name}) on {name} entries "
                       f"{max(lo[i, x], lo[j, y])}..{min(hi[i, x], hi[j, y]) - 1}: "
                       "no semaphore orders them")


def _idle_stalls(unit, control, wait, signal, token, start, end) -> dict[str, int]:
    """Idle cycles of each unit before each command, by the constraint that cleared last."""
    out = {"dispatch": 0, "dependency": 0, "buffer_space": 0}
    # the unit that (last) signals each semaphore; a DMA load waiting on a token from a unit
    # that consumes a buffer is waiting for buffer space
    back = 0
    for s in range(isa.NUM_SEMAPHORES):
        rows = np.flatnonzero((signal >> s) & 1)
        if len(rows) and unit[rows[-1]] in _BACK_UNITS:
            back |= 1 << s
    for u in np.unique(unit[~control]).tolist():
        idx = np.flatnonzero((unit == u) & ~control)
        prev = np.concatenate(([-1], end[idx][:-1]))
        gap = start[idx] - prev - 1
        pos = gap > 0
        dep = (token[idx] >= 0) & (token[idx] == start[idx])
        space = dep & ((wait[idx] & back) != 0) & (u == isa.Unit.DMA_IN)
        out["buffer_space"] += int(gap[pos & space].sum())
        out["dependency"] += int(gap[pos & dep & ~space].sum())
        out["dispatch"] += int(gap[pos & ~dep].sum())
    return out


def _union_cycles(start: np.ndarray, end: np.ndarray) -> int:
    """Cycles covered by the union of the inclusive intervals ``start[i] .. end[i]``."""
    if not len(start):
        return 0
    order = np.argsort(start, kind="stable")
    s, e = start[order], end[order] + 1
    reach = np.maximum.accumulate(e)
    # an interval adds what it covers beyond the furthest end before it
    before = np.concatenate(([s[0]], reach[:-1]))
    return int(np.maximum(0, e - np.maximum(s, before)).sum())


def run(program: Program, config: AcceleratorConfig, mode: str = "timing", *,
        inputs: dict[str, np.ndarray] | None = None, macs: int | None = None,
        check: bool = True, check_races: bool = True) -> RunResult:
    """Execute a program.

    Parameters
    ----------
    program : Program
    config : AcceleratorConfig
    mode : {"timing", "functional"}
    inputs : dict, optional
        Functional mode: values of ``program.inputs``.
    macs : int, optional
        Useful MACs for the utilisation figure (the compiler knows them; tiles padded at matrix
        edges count their padding otherwise).
    check : bool
        Check every command against the config (False: the fast path of the module docstring;
        timing mode only).
    check_races : bool
        Reject programs in which concurrently running commands touch the same buffer entries
        (one writing) or share a buffer port.

    Returns
    -------
    RunResult
        Statistics, and in functional mode the output tensors and the final DRAM image.

    Raises
    ------
    ProgramError
        A command that cannot run on ``config``, or a race; names the command index and field.
    ValueError
        Unknown mode, missing inputs, or an unchecked functional run.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "functional" and not check:
        raise ValueError("functional mode runs checked programs only (check=True)")
    table = program.table
    if check:
        first, inverse = _check(program, config)
    n = len(table)
    op = table[:, COL["opcode"]]
    unit = _UNIT_OF[op]
    control = unit == int(isa.Unit.CONTROL)
    wait, signal = table[:, COL["wait"]], table[:, COL["signal"]]
    dur, parts = table_cycles(table, config)
    machine = None
    if mode == "functional":
        # values first, in program order (what a race-free program computes on the concurrent
        # machine); units whose cycles depend on values (lookup rows) report them here
        machine = Machine(config, program.dram_image(inputs or {}))
        for i, cmd in enumerate(program.commands):
            d = REGISTRY[cmd.OPCODE].execute(cmd, machine, config)
            if d is not None:
                dur[i] = d
    try:
        accept, token, start, end = schedule(unit, dur, wait, signal, control,
                                             config.queue_depth)
        if mode == "functional":
            # the register-level path: step the controller cycle by cycle
            accept, start, end = schedule_per_cycle(unit, dur, wait, signal, control,
                                                    config.queue_depth)
    except ScheduleError as e:
        raise ProgramError(e.index, _row_command(program, e.index), e.field,
                           str(e).split(": ", 1)[1]) from None
    if check and check_races and n:
        _check_races(program, first, inverse, unit, start, end, config)

    acc = Accounting()
    acc.stalls = {**_idle_stalls(unit, control, wait, signal, token, start, end),
                  "dram_latency": 0, "dram_bandwidth": 0, "pipeline": 0}
    for name, (idx, timing) in parts.items():
        timing = timing._replace(cycles=dur[idx])  # functional mode's value-dependent cycles
        next(m for m in REGISTRY.values() if m.name == name).account(table[idx], timing,
                                                                      config, acc)
    stats = Stats()
    stats.cycles = int(end.max()) + 1 if n else 0
    stats.schedule = Schedule(accept, token, start, end, dur)
    stats.busy = {u.name.lower(): int(dur[(unit == int(u)) & ~control].sum()) for u in isa.Unit}
    stats.stalls = acc.stalls
    stats.bytes = acc.bytes
    stats.sram_bytes = {p: {"read": r, "write": w} for p, (r, w) in acc.sram_bytes.items()}
    dma_rows = parts["dma"][0] if "dma" in parts else np.zeros(0, np.int64)
    dma_busy = _union_cycles(start[dma_rows], end[dma_rows])
    moved = acc.bytes["dram_read"] + acc.bytes["dram_write"]
    stats.dram = {
        **acc.dram,
        "bandwidth_gbps": moved * config.clock_mhz / dma_busy / 1000.0 if dma_busy else 0.0,
        "peak_gbps": config.dram.channels * config.dram.bandwidth_gbps,
    }
    stats.macs = acc.macs if macs is None else macs
    R, C = config.array.rows, config.array.cols
    stats.utilisation = stats.macs / (stats.cycles * R * C) if stats.cycles else 0.0
    stats.energy_pj = energy_pj(acc.actions, stats.cycles, config)
    result = RunResult(stats)
    if machine is not None:
        result.outputs = program.read_outputs(machine.dram)
        result.dram = machine.dram
    return result
