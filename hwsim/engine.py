"""The machine as an executable specification: ``run(program, config, mode)``.

``mode="functional"`` executes every command on modelled buffers and DRAM, stepping the PE array
register by register (:mod:`hwsim.systolic_array`, :mod:`hwsim.sparse_tile`), and returns the
output tensors with the statistics. ``mode="timing"`` computes the same statistics from the
closed forms of :mod:`hwsim.timing` without touching values. Both schedule commands with the
decoupled controller of :mod:`hwsim.schedule`, which the RTL implements cycle for cycle.

LOAD and STORE durations come from :func:`hwsim.dram.dma_cycles` on the program's DMA commands
in program order: with ``config.dram.model == "fixed"`` (the RTL's) they are the closed forms of
:func:`hwsim.timing.unit_cycles`; with ``"banked"`` each command's request stream goes through
the banked DRAM model, whose row buffers carry over from one DMA command to the next in program
order (the ordering rule is stated in :func:`hwsim.dram.dma_cycles`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from . import isa
from .config import AcceleratorConfig
from .dram import DmaTiming, dma_cycles
from .numerics import fp32_add_array
from .program import Program
from .schedule import ScheduleError, schedule, schedule_per_cycle
from .sore import check_prune, prune, prune_cost
from .sparse_tile import os_sparse_tile_per_cycle, ws_sparse_tile_per_cycle
from .systolic_array import os_tile_per_cycle, ws_tile_per_cycle
from .timing import elem_bytes, unit_cycles
from .vector_unit import check_update, update, update_cost, update_entries

__all__ = ["ProgramError", "RunResult", "Stats", "run"]

MODES = ("timing", "functional")
_UNIT_NAMES = {u: u.name.lower() for u in isa.Unit}


class ProgramError(ValueError):
    """A program that the machine cannot execute; the message names the command and field."""

    def __init__(self, index: int, cmd: isa.Command, field_name: str, why: str):
        self.index, self.cmd, self.field = index, cmd, field_name
        super().__init__(f"command {index} ({cmd.name}) field {field_name!r}: {why}")


@dataclass
class Stats:
    """What one run measured.

    Attributes
    ----------
    cycles : int
        Total cycles, first command accepted to last retired.
    busy : dict
        Busy cycles per unit (``dma_in``, ``dma_out``, ``array``, ...).
    stalls : dict
        Idle cycles of units before a command, by the constraint that cleared last:
        ``dispatch`` (the command had not reached the unit's queue), ``dependency`` (waiting
        for a data token), ``buffer_space`` (a DMA load waiting for a buffer half to be freed);
        and busy cycles that do no useful work: ``dram_latency`` (loads waiting for their last
        data's DRAM latency), ``dram_bandwidth`` (DMA cycles beyond moving each command's bytes
        at the DRAM's peak bandwidth: row misses, channel imbalance, the request issue rate),
        ``pipeline`` (array fill and drain).
    bytes : dict
        ``dram_read``, ``dram_write``, ``sram_read``, ``sram_write``.
    dram : dict
        ``row_hits`` and ``row_misses`` (row-buffer accesses of the banked model; 0 for the
        fixed model), ``bandwidth_gbps`` (DRAM bytes over the cycles in which a DMA unit was
        busy, GB/s) and ``peak_gbps`` (all channels).
    energy_pj : dict
        Per component, from the config's energy table (static energy from ``static_mw``).
    macs : int
        Useful multiply-accumulates (padding excluded).
    utilisation : float
        ``macs / (cycles * PEs)``.
    accept_cycles, start_cycles, retire_cycles : list of int
        Per command: the cycle the controller accepted it, its unit started it, and its unit
        finished it (cycle 0: first command accepted).
    """

    cycles: int = 0
    busy: dict[str, int] = field(default_factory=dict)
    stalls: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    dram: dict[str, float] = field(default_factory=dict)
    energy_pj: dict[str, float] = field(default_factory=dict)
    macs: int = 0
    utilisation: float = 0.0
    accept_cycles: list[int] = field(default_factory=list)
    start_cycles: list[int] = field(default_factory=list)
    retire_cycles: list[int] = field(default_factory=list)

    @property
    def energy_total_pj(self) -> float:
        return float(sum(self.energy_pj.values()))

    def to_dict(self, *, per_command: bool = False) -> dict:
        d = asdict(self)
        d["energy_total_pj"] = self.energy_total_pj
        if not per_command:
            for k in ("accept_cycles", "start_cycles", "retire_cycles"):
                d.pop(k)
        return d

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(**kw), indent=2)


@dataclass
class RunResult:
    stats: Stats
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    dram: np.ndarray | None = None


class _Machine:
    """Buffers and DRAM of the functional mode."""

    def __init__(self, config: AcceleratorConfig, dram: np.ndarray):
        R, C = config.array.rows, config.array.cols
        op = np.int8 if config.array.dtype == "int8" else np.float16
        self.buffers = {
            isa.Buffer.ACT: np.zeros((config.act_depth, R), op),
            isa.Buffer.WGT: np.zeros((config.wgt_depth, C), op),
            isa.Buffer.ACC: np.zeros((config.acc_depth, C),
                                     np.int32 if config.array.dtype == "int8" else np.float32),
            isa.Buffer.IDX: np.zeros((config.idx_depth, C), np.uint8),
            isa.Buffer.VEC: np.zeros((config.vec_depth, config.vector.lanes), np.float32),
        }
        self.regs = np.zeros(16, np.uint32)  # SETREG registers
        self.dram = dram


def _check(i: int, cmd: isa.Command, config: AcceleratorConfig) -> None:
    R, C = config.array.rows, config.array.cols
    depth = {isa.Buffer.ACT: config.act_depth, isa.Buffer.WGT: config.wgt_depth,
             isa.Buffer.ACC: config.acc_depth, isa.Buffer.IDX: config.idx_depth,
             isa.Buffer.VEC: config.vec_depth}
    width = {isa.Buffer.ACT: R, isa.Buffer.WGT: C, isa.Buffer.ACC: C, isa.Buffer.IDX: C,
             isa.Buffer.VEC: config.vector.lanes}
    if isinstance(cmd, isa.Load | isa.Store):
        if cmd.buf not in depth:
            raise ProgramError(i, cmd, "buf", f"buffer {cmd.buf} is not one of "
                               f"{[b.name for b in depth]}")
        b = isa.Buffer(cmd.buf)
        if cmd.sram_addr + cmd.rows > depth[b]:
            last = cmd.sram_addr + cmd.rows - 1
            raise ProgramError(i, cmd, "rows", f"entries {cmd.sram_addr}..{last} overflow the "
                               f"{b.name} buffer of {depth[b]} entries")
        if cmd.elems > width[b]:
            raise ProgramError(i, cmd, "elems", f"{cmd.elems} elements exceed the {b.name} "
                               f"entry of {width[b]}")
    elif isinstance(cmd, isa.Gemm):
        if cmd.dataflow == isa.Dataflow.OS and "os" not in config.array.dataflows or \
                cmd.dataflow == isa.Dataflow.WS and "ws" not in config.array.dataflows:
            raise ProgramError(i, cmd, "dataflow", f"config {config.name!r} supports "
                               f"{config.array.dataflows}")
        rows_a = cmd.k if cmd.dataflow == isa.Dataflow.OS else cmd.m
        if cmd.sparse:
            pat = (cmd.n, 1 << cmd.log2m)
            if pat not in config.array.nm_patterns:
                raise ProgramError(i, cmd, "n", f"pattern {pat[0]}:{pat[1]} is not supported by "
                                   f"config {config.name!r} {config.array.patterns}")
            gm = 1 << cmd.log2m
            if cmd.k % cmd.n:
                raise ProgramError(i, cmd, "k", f"{cmd.k} compressed steps are not a whole "
                                   f"number of groups of {cmd.n}")
            if cmd.dataflow == isa.Dataflow.OS:
                rows_a, align = cmd.k // cmd.n * gm, gm  # the activations of whole groups
            else:
                if gm % cmd.n:
                    raise ProgramError(i, cmd, "n", f"weight-stationary N:M tiles need N to "
                                       f"divide M, not {cmd.n}:{gm}")
                rows_a, align = cmd.m * (gm // cmd.n), gm // cmd.n  # M/N entries per row
            if cmd.a_addr % align:
                raise ProgramError(i, cmd, "a_addr", f"{cmd.a_addr} is not a multiple of "
                                   f"{align}: a sparse tile reads each group of ACT entries in "
                                   "one access of the banked buffer")
            if cmd.idx_addr + cmd.k > config.idx_depth:
                raise ProgramError(i, cmd, "idx_addr", f"entries {cmd.idx_addr}.."
                                   f"{cmd.idx_addr + cmd.k - 1} overflow the IDX buffer of "
                                   f"{config.idx_depth} entries")
        rows_c = R if cmd.dataflow == isa.Dataflow.OS else cmd.m
        if cmd.dataflow == isa.Dataflow.WS and cmd.k > R:
            raise ProgramError(i, cmd, "k", f"{cmd.k} preloaded weight rows exceed {R} array rows")
        for fname, buf, n in (("a_addr", isa.Buffer.ACT, rows_a), ("b_addr", isa.Buffer.WGT, cmd.k),
                              ("c_addr", isa.Buffer.ACC, rows_c)):
            start = getattr(cmd, fname)
            if start + n > depth[buf]:
                raise ProgramError(i, cmd, fname, f"entries {start}..{start + n - 1} overflow the "
                                   f"{buf.name} buffer of {depth[buf]} entries")
    elif isinstance(cmd, isa.Prune):
        bad = check_prune(cmd, config)
        if bad is not None:
            raise ProgramError(i, cmd, *bad)
        out = cmd.rows * cmd.n >> cmd.log2m
        if cmd.idx_addr + out > config.idx_depth:
            raise ProgramError(i, cmd, "idx_addr", f"index entries {cmd.idx_addr}.."
                               f"{cmd.idx_addr + out - 1} overflow the IDX buffer of "
                               f"{config.idx_depth} entries")
    elif isinstance(cmd, isa.Update):
        bad = check_update(cmd, config, config.vec_depth)
        if bad is not None:
            raise ProgramError(i, cmd, *bad)
    elif not isinstance(cmd, isa.SetReg | isa.Sync):
        raise ProgramError(i, cmd, "opcode", f"{cmd.name} is not modelled yet")


def _execute(cmd: isa.Command, m: _Machine, config: AcceleratorConfig) -> int:
    """Run one command on the functional state; returns useful MACs."""
    R, C = config.array.rows, config.array.cols
    if isinstance(cmd, isa.Load):
        buf = m.buffers[isa.Buffer(cmd.buf)]
        esz = buf.dtype.itemsize
        for r in range(cmd.rows):
            a = cmd.dram_addr + r * cmd.stride
            raw = np.zeros(buf.shape[1] * esz, np.uint8)
            n = cmd.elems * esz
            chunk = m.dram[a:a + n]
            raw[:len(chunk)] = chunk
            buf[cmd.sram_addr + r] = raw.view(buf.dtype)
        return 0
    if isinstance(cmd, isa.Store):
        buf = m.buffers[isa.Buffer(cmd.buf)]
        esz = buf.dtype.itemsize
        n = cmd.elems * esz
        for r in range(cmd.rows):
            a = cmd.dram_addr + r * cmd.stride
            m.dram[a:a + n] = buf[cmd.sram_addr + r].view(np.uint8)[:n]
        return 0
    if isinstance(cmd, isa.SetReg):
        m.regs[cmd.reg] = cmd.value
        return 0
    if isinstance(cmd, isa.Update):
        update(m.buffers[isa.Buffer.VEC], cmd, m.regs)
        return 0
    if isinstance(cmd, isa.Prune):
        src = m.buffers[isa.Buffer(cmd.src_buf)][cmd.src_addr:cmd.src_addr + cmd.rows].copy()
        res = prune(src, cmd.n, 1 << cmd.log2m, lanes=config.sore.lanes)
        out = res.values.shape[0]
        m.buffers[isa.Buffer.WGT][cmd.dst_addr:cmd.dst_addr + out] = res.values
        m.buffers[isa.Buffer.IDX][cmd.idx_addr:cmd.idx_addr + out] = res.indices
        return 0
    if isinstance(cmd, isa.Gemm):
        act, wgt, acc = (m.buffers[b] for b in (isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.ACC))
        if cmd.sparse and cmd.dataflow == isa.Dataflow.WS:
            gm, e = 1 << cmd.log2m, (1 << cmd.log2m) // cmd.n
            dst = acc[cmd.c_addr:cmd.c_addr + cmd.m]
            a_rows = act[cmd.a_addr:cmd.a_addr + cmd.m * e].reshape(cmd.m, e * R)
            dst[:], _ = ws_sparse_tile_per_cycle(
                a_rows, wgt[cmd.b_addr:cmd.b_addr + cmd.k],
                m.buffers[isa.Buffer.IDX][cmd.idx_addr:cmd.idx_addr + cmd.k], cmd.n, gm, R, C,
                acc=dst.copy() if cmd.accumulate else None)
            return 0
        if cmd.sparse:
            gm = 1 << cmd.log2m
            res, _ = os_sparse_tile_per_cycle(
                act[cmd.a_addr:cmd.a_addr + cmd.k // cmd.n * gm],
                wgt[cmd.b_addr:cmd.b_addr + cmd.k],
                m.buffers[isa.Buffer.IDX][cmd.idx_addr:cmd.idx_addr + cmd.k], cmd.n, gm, R, C)
            rows = R
        elif cmd.dataflow == isa.Dataflow.OS:
            res, _ = os_tile_per_cycle(act[cmd.a_addr:cmd.a_addr + cmd.k],
                                       wgt[cmd.b_addr:cmd.b_addr + cmd.k], R, C)
            rows = R
        else:
            dst = acc[cmd.c_addr:cmd.c_addr + cmd.m]
            # WS accumulate: the old entries enter the columns as the initial partial sums
            dst[:], _ = ws_tile_per_cycle(act[cmd.a_addr:cmd.a_addr + cmd.m],
                                          wgt[cmd.b_addr:cmd.b_addr + cmd.k], R, C,
                                          acc=dst.copy() if cmd.accumulate else None)
            return 0
        dst = acc[cmd.c_addr:cmd.c_addr + rows]
        if not cmd.accumulate:
            dst[:] = res
        elif config.array.dtype == "int8":
            dst[:] = (dst.astype(np.int64) + res).astype(np.int64).astype(np.int32)
        else:
            # OS drain read-modify-write: one fp32 RNE addition of the tile's rounded sum
            dst[:] = fp32_add_array(dst.view(np.uint32), res.view(np.uint32)).view(np.float32)
        return 0
    return 0


def _gemm_macs(cmd: isa.Gemm, config: AcceleratorConfig) -> int:
    R, C = config.array.rows, config.array.cols
    return cmd.k * R * C if cmd.dataflow == isa.Dataflow.OS else cmd.m * cmd.k * C


def _footprint(cmd: isa.Command, config: AcceleratorConfig):
    """(buffer, port, lo, hi, writes) ranges a command touches, for race and port checks."""
    R = config.array.rows
    if isinstance(cmd, isa.Load):
        return [(cmd.buf, "w", cmd.sram_addr, cmd.sram_addr + cmd.rows, True)]
    if isinstance(cmd, isa.Store):
        port = "r_store" if cmd.buf == isa.Buffer.ACC else "r"
        return [(cmd.buf, port, cmd.sram_addr, cmd.sram_addr + cmd.rows, False)]
    if isinstance(cmd, isa.Update):
        e = update_entries(cmd.count, config.vector.lanes)
        regions = [(cmd.w_addr, True), (cmd.g_addr, False)]
        if cmd.optimizer != 0:
            regions.append((cmd.v_addr, True))
        out = [(isa.Buffer.VEC, "r" if not w else "w", a, a + e, w) for a, w in regions]
        o = -(-cmd.count // (2 * config.vector.lanes))
        out.append((isa.Buffer.VEC, "w", cmd.out_addr, cmd.out_addr + o, True))
        return out
    if isinstance(cmd, isa.Prune):
        out = cmd.rows * cmd.n >> cmd.log2m
        return [(cmd.src_buf, "r", cmd.src_addr, cmd.src_addr + cmd.rows, False),
                (isa.Buffer.WGT, "w", cmd.dst_addr, cmd.dst_addr + out, True),
                (isa.Buffer.IDX, "w", cmd.idx_addr, cmd.idx_addr + out, True)]
    if isinstance(cmd, isa.Gemm):
        os_ = cmd.dataflow == isa.Dataflow.OS
        rows_a = cmd.k if os_ else cmd.m
        if cmd.sparse:
            gm, gn = 1 << cmd.log2m, max(cmd.n, 1)
            rows_a = cmd.k // gn * gm if os_ else cmd.m * (gm // gn)
        rows_c = R if os_ else cmd.m
        out = [(isa.Buffer.ACT, "r", cmd.a_addr, cmd.a_addr + rows_a, False),
               (isa.Buffer.WGT, "r", cmd.b_addr, cmd.b_addr + cmd.k, False),
               (isa.Buffer.ACC, "w", cmd.c_addr, cmd.c_addr + rows_c, True)]
        if cmd.sparse:
            out.append((isa.Buffer.IDX, "r", cmd.idx_addr, cmd.idx_addr + cmd.k, False))
        return out
    return []


def _check_races(cmds, start, end, config: AcceleratorConfig) -> None:
    """Commands that overlap in time must not touch overlapping entries of a buffer where one
    writes (a race the semaphores failed to order), nor share a buffer port."""
    order = np.argsort(start, kind="stable")
    active: list[int] = []
    for i in order:
        i = int(i)
        active = [j for j in active if end[j] >= start[i]]
        fi = _footprint(cmds[i], config)
        if fi:
            for j in active:
                if cmds[j].UNIT == cmds[i].UNIT:
                    continue
                for bi, pi, lo_i, hi_i, wi in fi:
                    for bj, pj, lo_j, hj, wj in _footprint(cmds[j], config):
                        if bi != bj:
                            continue
                        a, b = sorted((i, j))
                        if pi == pj:
                            raise ProgramError(b, cmds[b], "buf", f"uses the {isa.Buffer(bi).name} "
                                               f"buffer's {'write' if wi else 'read'} port while "
                                               f"command {a} ({cmds[a].name}) does")
                        if (wi or wj) and lo_i < hj and lo_j < hi_i:
                            raise ProgramError(b, cmds[b], "wait", f"races with command {a} "
                                               f"({cmds[a].name}) on {isa.Buffer(bi).name} "
                                               f"entries {max(lo_i, lo_j)}..{min(hi_i, hj) - 1}: "
                                               "no semaphore orders them")
        active.append(i)


@dataclass
class _DmaCommands:
    index: np.ndarray  # program indices of the LOAD/STORE commands
    timing: DmaTiming


def _dma_timing(cmds, config: AcceleratorConfig) -> _DmaCommands:
    """:func:`hwsim.dram.dma_cycles` of the program's LOAD/STORE commands, in program order."""
    index = [i for i, c in enumerate(cmds) if isinstance(c, isa.Load | isa.Store)]
    fields = np.array([(isinstance(cmds[i], isa.Store), cmds[i].dram_addr, cmds[i].rows,
                        cmds[i].elems * elem_bytes(cmds[i].buf, config), cmds[i].stride)
                       for i in index], np.int64).reshape(-1, 5)
    return _DmaCommands(np.array(index, np.int64), dma_cycles(*fields.T, config))


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
        check_races: bool = True) -> RunResult:
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
    check_races : bool
        Reject programs in which concurrently running commands touch the same buffer entries
        (one writing) or share a buffer port. Functional mode executes commands in program
        order, which equals the concurrent machine exactly for race-free programs.

    Returns
    -------
    RunResult
        Statistics, and in functional mode the output tensors and the final DRAM image.

    Raises
    ------
    ProgramError
        A command that cannot run on ``config``, or a race; names the command index and field.
    ValueError
        Unknown mode, or missing inputs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    machine = None
    if mode == "functional":
        machine = _Machine(config, program.dram_image(inputs or {}))
    cmds = program.commands
    n = len(cmds)
    R, C = config.array.rows, config.array.cols
    unit = np.empty(n, np.int64)
    dur = np.empty(n, np.int64)
    wait = np.empty(n, np.int64)
    signal = np.empty(n, np.int64)
    control = np.empty(n, np.bool_)
    for i, cmd in enumerate(cmds):
        _check(i, cmd, config)
        unit[i] = int(cmd.UNIT)
        dur[i] = unit_cycles(cmd, config)
        wait[i] = cmd.wait
        signal[i] = cmd.signal
        control[i] = cmd.UNIT == isa.Unit.CONTROL
    dma = _dma_timing(cmds, config)
    if config.dram.model != "fixed":
        dur[dma.index] = dma.timing.cycles
    try:
        accept, token, start, end = schedule(unit, dur, wait, signal, control,
                                             config.queue_depth)
        if mode == "functional":
            # the register-level path: step the controller cycle by cycle
            accept, start, end = schedule_per_cycle(unit, dur, wait, signal, control,
                                                    config.queue_depth)
    except ScheduleError as e:
        raise ProgramError(e.index, cmds[e.index], e.field, str(e).split(": ", 1)[1]) from None
    if check_races and n:
        _check_races(cmds, start, end, config)

    stats = Stats()
    busy = dict.fromkeys(_UNIT_NAMES.values(), 0)
    stall = {"dispatch": 0, "dependency": 0, "buffer_space": 0, "dram_latency": 0,
             "dram_bandwidth": int((dma.timing.transfer - dma.timing.ideal).sum()),
             "pipeline": 0}
    nbytes = {"dram_read": 0, "dram_write": 0, "sram_read": 0, "sram_write": 0}
    padded_macs = 0
    sore_pj = 0.0
    vector_pj = 0.0
    prev_end = dict.fromkeys(range(len(isa.Unit)), -1)
    producers = {}
    for cmd in cmds:
        for s in range(isa.NUM_SEMAPHORES):
            if cmd.signal >> s & 1:
                producers[s] = cmd.UNIT
    for i, cmd in enumerate(cmds):
        u = int(unit[i])
        name = _UNIT_NAMES[cmd.UNIT]
        if not control[i]:
            busy[name] += int(dur[i])
            gap = int(start[i]) - (prev_end[u] + 1)
            if gap > 0:
                # the last constraint to clear decides the reason
                if token[i] >= 0 and token[i] == start[i]:
                    back = any(cmd.wait >> s & 1 and producers.get(s) in
                               (isa.Unit.ARRAY, isa.Unit.DMA_OUT, isa.Unit.SORE, isa.Unit.VECTOR)
                               for s in range(isa.NUM_SEMAPHORES))
                    reason = "buffer_space" if cmd.UNIT == isa.Unit.DMA_IN and back else \
                        "dependency"
                else:
                    reason = "dispatch"
                stall[reason] += gap
            prev_end[u] = int(end[i])
        if isinstance(cmd, isa.Load | isa.Store):
            moved = cmd.rows * cmd.elems * elem_bytes(cmd.buf, config)
            if isinstance(cmd, isa.Load):
                nbytes["dram_read"] += moved
                nbytes["sram_write"] += moved
                if cmd.rows:
                    stall["dram_latency"] += config.dram_latency_cycles
            else:
                nbytes["dram_write"] += moved
                nbytes["sram_read"] += moved
        elif isinstance(cmd, isa.Gemm):
            padded_macs += _gemm_macs(cmd, config)
            eb = config.array.elem_bytes
            rows_a = cmd.k if cmd.dataflow == isa.Dataflow.OS else cmd.m
            if cmd.sparse:
                # each ACT read is a whole banked row of G entries, plus one IDX entry per row
                rows_a *= max(p for _, p in config.array.nm_patterns)
                nbytes["sram_read"] += cmd.k * C
            nbytes["sram_read"] += rows_a * R * eb + cmd.k * C * eb
            out_rows = R if cmd.dataflow == isa.Dataflow.OS else cmd.m
            nbytes["sram_write"] += out_rows * C * 4
            if cmd.accumulate:
                nbytes["sram_read"] += out_rows * C * 4
            stall["pipeline"] += int(dur[i]) - (cmd.k if cmd.dataflow == isa.Dataflow.OS
                                                else cmd.m)
        elif isinstance(cmd, isa.Prune):
            cost = prune_cost(cmd, config)
            nbytes["sram_read"] += cost.sram_read_bytes
            nbytes["sram_write"] += cost.sram_write_bytes
            sore_pj += cost.energy_pj
        elif isinstance(cmd, isa.Update):
            ucost = update_cost(cmd, config)
            nbytes["sram_read"] += ucost.sram_read_bytes
            nbytes["sram_write"] += ucost.sram_write_bytes
            vector_pj += ucost.energy_pj
        if machine is not None:
            _execute(cmd, machine, config)
    stats.cycles = int(end.max()) + 1 if n else 0
    stats.accept_cycles = accept.tolist()
    stats.start_cycles = start.tolist()
    stats.retire_cycles = end.tolist()
    stats.busy = busy
    stats.stalls = stall
    stats.bytes = nbytes
    dma_busy = _union_cycles(start[dma.index], end[dma.index])
    moved = nbytes["dram_read"] + nbytes["dram_write"]
    stats.dram = {
        "row_hits": int(dma.timing.row_hits.sum()),
        "row_misses": int(dma.timing.row_misses.sum()),
        "bandwidth_gbps": moved * config.clock_mhz / dma_busy / 1000.0 if dma_busy else 0.0,
        "peak_gbps": config.dram.channels * config.dram.bandwidth_gbps,
    }
    stats.macs = padded_macs if macs is None else macs
    stats.utilisation = stats.macs / (stats.cycles * R * C) if stats.cycles else 0.0
    e = config.energy
    mac_pj = e.mac_int8 if config.array.dtype == "int8" else e.mac_fp16
    seconds = stats.cycles / (config.clock_mhz * 1e6)
    stats.energy_pj = {
        "array": padded_macs * mac_pj,
        "sore": sore_pj,
        "vector": vector_pj,
        "sram": nbytes["sram_read"] * e.sram_read_byte + nbytes["sram_write"] * e.sram_write_byte,
        "dram": (nbytes["dram_read"] + nbytes["dram_write"]) * e.dram_byte,
        "static": e.static_mw * 1e-3 * seconds * 1e12,
    }
    result = RunResult(stats)
    if machine is not None:
        result.outputs = program.read_outputs(machine.dram)
        result.dram = machine.dram
    return result
