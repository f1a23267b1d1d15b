"""Timing mode's per-shape fast path (issue 18 item 2) against the per-command path it replaced.

The engine checks each distinct command shape once, finds races with a compiled sweep over
footprints computed once per shape, and schedules with memory in tokens rather than commands x
units. Here the per-command reference (what ``hwsim.engine`` did before, kept in this file) and
the per-cycle controller give exactly the same schedules, totals, energy and errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from dataflow import compile_gemm
from hwsim import isa
from hwsim.config import load_config
from hwsim.engine import ProgramError, run
from hwsim.isa import IsaError
from hwsim.program import COL, Program, table_to_commands
from hwsim.schedule import schedule, schedule_per_cycle
from hwsim.units import REGISTRY


def _reference_check(cmds, config):
    """The per-command check the engine ran before."""
    for i, cmd in enumerate(cmds):
        bad = REGISTRY[cmd.OPCODE].check(cmd, config)
        if bad is not None:
            raise ProgramError(i, cmd, *bad)


def _reference_races(cmds, start, end, config):
    """The per-command race check the engine ran before."""
    foot = [REGISTRY[c.OPCODE].footprint(c, config) for c in cmds]
    active: list[int] = []
    for i in np.argsort(start, kind="stable").tolist():
        active = [j for j in active if end[j] >= start[i]]
        for j in active if foot[i] else ():
            if cmds[j].UNIT == cmds[i].UNIT:
                continue
            for x in foot[i]:
                for y in foot[j]:
                    if x.buf != y.buf:
                        continue
                    a, b = sorted((i, j))
                    name = isa.Buffer(x.buf).name
                    if x.port == y.port:
                        raise ProgramError(b, cmds[b], "buf", f"uses the {name} buffer's "
                                           f"{'write' if x.writes else 'read'} port while "
                                           f"command {a} ({cmds[a].name}) does")
                    if (x.writes or y.writes) and x.lo < y.hi and y.lo < x.hi:
                        raise ProgramError(b, cmds[b], "wait", f"races with command {a} "
                                           f"({cmds[a].name}) on {name} entries "
                                           f"{max(x.lo, y.lo)}..{min(x.hi, y.hi) - 1}: "
                                           "no semaphore orders them")
        active.append(i)


def _reference_schedule(unit, duration, wait, signal, control, queue_depth, n_units=8):
    """The closed-form scheduler as it was (per unit and semaphore arrays of n entries), in
    Python."""
    n = len(unit)
    accept, start, end = (np.zeros(n, np.int64) for _ in range(3))
    token = np.full(n, -1, np.int64)
    unit_free = np.zeros(n_units, np.int64)
    unit_count = np.zeros(n_units, np.int64)
    unit_starts = np.zeros((n_units, n), np.int64)
    prod_times = np.zeros((8, n), np.int64)
    n_prod, n_cons = np.zeros(8, np.int64), np.zeros(8, np.int64)
    next_accept, last_end = 0, -1
    for i in range(n):
        u = unit[i]
        a = next_accept
        if not control[i] and unit_count[u] >= queue_depth:
            a = max(a, unit_starts[u, unit_count[u] - queue_depth] + 1)
        accept[i] = a
        ready = a + 1
        for s in range(8):
            if (wait[i] >> s) & 1:
                ready = max(ready, prod_times[s, n_cons[s]])
                token[i] = max(token[i], prod_times[s, n_cons[s]])
                n_cons[s] += 1
        if control[i]:
            start[i] = end[i] = max(ready, last_end + 1)
            next_accept = start[i] + 1
        else:
            start[i] = max(ready, unit_free[u])
            end[i] = start[i] + duration[i] - 1
            unit_free[u] = end[i] + 1
            unit_starts[u, unit_count[u]] = start[i]
            unit_count[u] += 1
            next_accept = a + 1
        last_end = max(last_end, end[i])
        for s in range(8):
            if (signal[i] >> s) & 1:
                prod_times[s, n_prod[s]] = end[i] + 1
                n_prod[s] += 1
    return accept, token, start, end


def _programs():
    """GEMMs dense and 2:8, OS and WS, on the fixed and the banked DRAM, one with a DRAM so
    slow that the array waits for it."""
    tiny = load_config("tiny")
    slow = tiny.replace(name="slow_dram", dram__latency_ns=2000.0, dram__bandwidth_gbps=0.5)
    banked = load_config("small8").replace(name="banked", dram__model="banked")
    for cfg in (tiny, slow, banked):
        for df in ("os", "ws"):
            for nm in (None, (2, 8)):
                if nm is None or cfg.supports_pattern(nm):
                    yield (f"{cfg.name}-{df}-{'dense' if nm is None else '2:8'}", cfg,
                           compile_gemm(40, 56, 72, cfg, dataflow=df, sparsity=nm))


PROGRAMS = list(_programs())


@pytest.mark.parametrize("name, config, program", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_fast_timing_equals_the_per_command_and_per_cycle_paths(name, config, program):
    stats = run(program, config, "timing").stats
    t = program.table
    unit = np.array([int(c.UNIT) for c in program.commands])
    control = unit == int(isa.Unit.CONTROL)
    dur = stats.schedule.duration
    wait, signal = t[:, COL["wait"]], t[:, COL["signal"]]
    ref = _reference_schedule(unit, dur, wait, signal, control, config.queue_depth)
    got = (stats.schedule.accept, stats.schedule.token, stats.schedule.start,
           stats.schedule.end)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)
    acc, st, en = schedule_per_cycle(unit, dur, wait, signal, control, config.queue_depth)
    np.testing.assert_array_equal(st, stats.schedule.start)
    np.testing.assert_array_equal(en, stats.schedule.end)
    _reference_check(program.commands, config)
    _reference_races(program.commands, st, en, config)
    # the same program given as command objects (the engine's other entry) runs alike
    again = run(Program(list(program.commands), program.dram_bytes), config, "timing").stats
    assert again.to_dict(per_command=True) == stats.to_dict(per_command=True)
    assert stats.energy_total_pj == again.energy_total_pj > 0


def test_timing_and_functional_agree_on_a_dram_bound_gemm():
    cfg = load_config("tiny").replace(name="slow_dram", dram__latency_ns=2000.0)
    prog = compile_gemm(12, 20, 24, cfg, dataflow="ws")
    rng = np.random.default_rng(3)
    inputs = {"A": rng.integers(-8, 8, (12, 24)), "B": rng.integers(-8, 8, (24, 20))}
    timing = run(prog, cfg, "timing").stats
    functional = run(prog, cfg, "functional", inputs=inputs).stats
    assert timing.to_dict(per_command=True) == functional.to_dict(per_command=True)
    assert timing.stalls["dram_latency"] > 0


def _error(fn):
    with pytest.raises((ProgramError, IsaError)) as e:
        fn()
    return type(e.value), str(e.value)


def _bad_tables():
    """A GEMM program broken four ways, each fault on a command whose shape repeats earlier
    and later with other DRAM addresses, so a per-shape check must still name the first."""
    cfg = load_config("tiny")
    prog = compile_gemm(40, 56, 72, cfg, dataflow="ws")
    t = prog.table
    loads = np.flatnonzero(t[:, COL["opcode"]] == isa.Opcode.LOAD)
    gemms = np.flatnonzero(t[:, COL["opcode"]] == isa.Opcode.GEMM)
    overflow = t.copy()
    overflow[loads[len(loads) // 2], COL["sram_addr"]] = cfg.act_depth  # past the buffer
    wide = t.copy()
    wide[gemms[3], COL["k"]] = 1 << 20  # does not fit the field
    race = t.copy()
    race[gemms[2:], COL["wait"]] = 0  # the array no longer waits for its operands
    shape = t.copy()
    shape[gemms[5]:, COL["dram_addr"]] += 64  # only addresses differ: still a fine program
    return cfg, {"overflow": overflow, "wide": wide, "race": race, "shape": shape}


@pytest.mark.parametrize("fault", ["overflow", "wide", "race", "shape"])
def test_errors_name_the_same_first_command_as_the_per_command_check(fault):
    cfg, tables = _bad_tables()
    table = tables[fault]
    fast = Program(table=table, dram_bytes=1 << 20)

    def reference():
        cmds = table_to_commands(table)
        _reference_check(cmds, cfg)
        t = run(Program(table=table, dram_bytes=1 << 20), cfg, check_races=False).stats
        _reference_races(cmds, t.schedule.start, t.schedule.end, cfg)

    if fault == "shape":
        reference()
        assert run(fast, cfg).stats.cycles > 0
        return
    assert _error(lambda: run(fast, cfg)) == _error(reference)


def test_a_semaphore_heavy_program_schedules_as_before():
    """Many tokens outstanding on several semaphores and a shallow queue: the token arrays and
    the queue ring of the kernel against the reference."""
    rng = np.random.default_rng(7)
    n = 400
    unit = rng.choice([1, 2, 3, 4], n)
    dur = rng.integers(1, 30, n)
    control = np.zeros(n, bool)
    wait, signal = np.zeros(n, np.int64), np.zeros(n, np.int64)
    # unit 1 signals semaphores 0 and 1, unit 2 consumes 0, unit 3 consumes 1, bounded backlog
    made = {0: 0, 1: 0}
    for i in range(n):
        if unit[i] == 1:
            signal[i] = 0b11
            made[0] += 1
            made[1] += 1
        elif unit[i] == 2 and made[0]:
            wait[i], made[0] = 1, made[0] - 1
        elif unit[i] == 3 and made[1]:
            wait[i], made[1] = 2, made[1] - 1
    for depth in (1, 2, 4):
        ref = _reference_schedule(unit, dur, wait, signal, control, depth)
        got = schedule(unit, dur, wait, signal, control, depth)
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a, b)


def test_distinct_shapes_are_few_for_a_large_gemm():
    """What makes the checks cost per shape: a GEMM of thousands of tiles has a handful."""
    from hwsim.engine import _distinct

    cfg = load_config("tiny")
    prog = compile_gemm(64, 2048, 8, cfg, dataflow="ws")
    first, inverse = _distinct(prog.table)
    t = prog.table
    assert len(t) > 3000 and len(first) < 40
    # a row and its group's first differ in semaphore masks and DRAM addresses only
    same = [c for name, c in COL.items() if name not in ("wait", "signal", "dram_addr",
                                                         "stride")]
    np.testing.assert_array_equal(t[first[inverse]][:, same], t[:, same])
