"""Timing of GEMMs too large to emit: steady-state extrapolation over the loop nest.

A GEMM's loop nest (:func:`dataflow.lower.gemm.gemm_loops`) repeats the same tiles many times.
Keep iterations ``0 .. j-2`` and the last one, ``Q-1``, of a loop of ``Q`` iterations (every kept
step at its own DRAM addresses, offsets and first/last flags: :func:`~dataflow.lower.gemm.
gemm_blocks`'s ``select``) and call the statistics of that program F(j): F(Q) is the full
program's. Once the machine reaches a steady state, adding an iteration adds the same cycles,
busy and stall cycles, bytes, row hits and energy, so ``F(j + P) - F(j)`` is constant for some
period ``P`` (1 on the fixed DRAM model; a fractional DRAM rate can make block times alternate).

:func:`gemm_stats` simulates F(2), F(3), ... and stops as soon as the last :data:`CHECKS`
increments over a period ``P <= MAX_PERIOD`` are equal in every additive field (integers
exactly, energies to :data:`RTOL`); then ``F(Q) = F(j0) + (Q - j0) / P * increment`` with
``j0`` a simulated point congruent to ``Q`` modulo ``P``. That is the full program's result
whenever the steady state the check saw lasts to the end of the loop, which tests check against
full simulation. Loops of more than :data:`WHOLE` iterations are extrapolated one inside the
other (each sample of an outer loop is itself extrapolated over the inner ones); shorter loops
are simulated whole, and so are long ones whose extrapolation would simulate more steps than
keeping them whole inside the samples of the others.

Where no period holds within :data:`MAX_SAMPLES` samples (the banked DRAM model with addresses
that do not repeat in step with the tiles: a tile's row hits depend on them), the increment is
the mean over the first samples and over :data:`POSITIONS` windows of :data:`WINDOW` iterations
spread over the loop, each simulated after :data:`WARMUP` iterations at its own place; the
result says it is not exact, and each field carries a bound: the spread of the windows' mean
increments times the iterations extrapolated, plus one for rounding, plus the inner loops'
bounds grown by the extrapolation. It assumes the true mean lies among the windows'; the tests
measure the real error against full simulation. Row hits and misses vary more from tile to
tile than the windows show: their bound is every access of the extrapolated iterations.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.engine import Stats, run
from hwsim.program import COL

from .lower.gemm import compile_gemm, gemm_loops
from .mapping import Mapping, OpShape

__all__ = ["CHECKS", "MAX_PERIOD", "MAX_SAMPLES", "RTOL", "WHOLE", "gemm_stats"]

CHECKS = 3
"""Equal consecutive increments over a period that make a steady state."""

MAX_PERIOD = 2
"""Longest period of the steady state looked for."""

MAX_SAMPLES = 2 + CHECKS * MAX_PERIOD
"""Largest j of F(j) simulated per loop before falling back to the mean increment."""

POSITIONS, WARMUP, WINDOW = 4, 2, 4
"""Without a steady state: windows of ``WINDOW`` iterations (after ``WARMUP`` more) at
``POSITIONS`` places spread over the loop, beside the first ``MAX_SAMPLES``."""

WHOLE = 16
"""Loops of at most this many iterations are simulated whole."""

RTOL = 1e-9
"""Relative tolerance of equal energy increments (floating-point sums of integer actions)."""

_DMA = (int(isa.Opcode.LOAD), int(isa.Opcode.STORE))
_ROWS = (("dram", "row_hits"), ("dram", "row_misses"))


def _union(start: np.ndarray, end: np.ndarray) -> int:
    """Cycles covered by the inclusive intervals ``start[i] .. end[i]`` (the DMA's busy cycles,
    which the bandwidth figure divides by)."""
    if not len(start):
        return 0
    order = np.argsort(start, kind="stable")
    s, e = start[order], end[order] + 1
    before = np.concatenate(([s[0]], np.maximum.accumulate(e)[:-1]))
    return int(np.maximum(0, e - np.maximum(s, before)).sum())


def _flat(stats: Stats, table: np.ndarray) -> dict[tuple, int | float]:
    """The additive fields of ``stats``, flattened."""
    v: dict[tuple, int | float] = {("cycles",): stats.cycles, ("macs",): stats.macs}
    for group in ("busy", "stalls", "bytes"):
        v.update(((group, key), val) for key, val in getattr(stats, group).items())
    for part, rw in stats.sram_bytes.items():
        v.update((("sram_bytes", part, key), val) for key, val in rw.items())
    for key in ("row_hits", "row_misses"):
        v[("dram", key)] = stats.dram.get(key, 0)
    v.update((("energy_pj", key), val) for key, val in stats.energy_pj.items())
    dma = np.isin(table[:, COL["opcode"]], _DMA)
    v[("dma_busy",)] = _union(stats.schedule.start[dma], stats.schedule.end[dma])
    return {key: float(x) if isinstance(x, float) else int(x) for key, x in v.items()}


def _stats(v: dict[tuple, int | float], config: AcceleratorConfig, macs: int,
           info: dict) -> Stats:
    """A :class:`Stats` from flattened fields (:func:`_flat`), the derived figures recomputed
    as :func:`hwsim.run` computes them."""
    s = Stats()
    s.cycles = int(v[("cycles",)])
    s.busy = {key[1]: int(x) for key, x in v.items() if key[0] == "busy"}
    s.stalls = {key[1]: int(x) for key, x in v.items() if key[0] == "stalls"}
    s.bytes = {key[1]: int(x) for key, x in v.items() if key[0] == "bytes"}
    for key, x in v.items():
        if key[0] == "sram_bytes":
            s.sram_bytes.setdefault(key[1], {})[key[2]] = int(x)
    moved = s.bytes["dram_read"] + s.bytes["dram_write"]
    busy = int(v[("dma_busy",)])
    s.dram = {"row_hits": int(v[("dram", "row_hits")]),
              "row_misses": int(v[("dram", "row_misses")]),
              "bandwidth_gbps": moved * config.clock_mhz / busy / 1000.0 if busy else 0.0,
              "peak_gbps": config.dram.channels * config.dram.bandwidth_gbps}
    s.energy_pj = {key[1]: float(x) for key, x in v.items() if key[0] == "energy_pj"}
    s.macs = macs
    s.utilisation = macs / (s.cycles * config.array.pes) if s.cycles else 0.0
    s.extrapolated = info
    return s


def _equal(a: dict, b: dict) -> bool:
    """Increments ``a`` and ``b`` agree: integers exactly, floats to :data:`RTOL`."""
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) or isinstance(y, float):
            if abs(x - y) > RTOL * max(abs(x), abs(y), 1.0):
                return False
        elif x != y:
            return False
    return True


def _sub(a: dict, b: dict) -> dict:
    return {key: a[key] - b[key] for key in a}


class _Extrapolation:
    """The recursive extrapolation of one GEMM (module docstring)."""

    def __init__(self, m, n, k, config, dataflow, sparsity, mapping, blocked=False):
        self.args = (m, n, k, config)
        self.kw = {"dataflow": dataflow, "sparsity": sparsity, "mapping": mapping,
                   "blocked": blocked}
        self.runs = 0
        self.simulated: dict[str, set[int]] = {}
        self.periods: dict[str, int] = {}
        self.exact = True
        self.banked = config.dram.model != "fixed"
        loops = gemm_loops(OpShape(m, n, k, sparsity), mapping, config)
        long = [i for i, (_, count) in enumerate(loops) if count > WHOLE]
        # the loops to extrapolate: the non-empty set of long loops that simulates the fewest
        # steps, each extrapolated loop costing about ``runs x iterations`` of them (banked
        # DRAM: the windows too), each loop kept whole its count
        per = 15 * 6 if self.banked else 4 * 4

        def cost(chosen):
            return math.prod(per if i in chosen else count
                             for i, (_, count) in enumerate(loops))

        subsets = [c for r in range(1, len(long) + 1) for c in combinations(long, r)]
        best = min(subsets, key=cost, default=())
        self.loops = [loops[i] for i in best]

    def simulate(self, select: dict[str, list[int]]) -> tuple[dict, dict]:
        for name, kept in select.items():
            self.simulated.setdefault(name, set()).update(kept)
        prog = compile_gemm(*self.args, **self.kw, select=select, max_commands=0)
        stats = run(prog, self.args[3], "timing").stats
        self.runs += 1
        v = _flat(stats, prog.table)
        return v, dict.fromkeys(v, 0.0)

    def values(self, depth: int, select: dict[str, list[int]]) -> tuple[dict, dict]:
        """F at the full count of loops ``depth..``, with ``select`` fixing the outer ones:
        ``(values, absolute error bounds)``."""
        if depth == len(self.loops):
            return self.simulate(select)
        name, count = self.loops[depth]
        f: dict[int, tuple[dict, dict]] = {}

        def at(j):
            if j not in f:
                f[j] = self.values(depth + 1, {**select, name: [*range(j - 1), count - 1]})
            return f[j]

        j, steady = 2, None
        while steady is None:
            at(j)
            for period in range(1, MAX_PERIOD + 1):
                first = j - CHECKS * period
                if first < 2:
                    break
                inc = [_sub(at(i + period)[0], at(i)[0]) for i in range(first, j, period)]
                if all(_equal(inc[0], x) for x in inc[1:]):
                    steady = period, first, inc[-1]
                    break
            if steady is None and j == MAX_SAMPLES:
                break
            j += steady is None
        # windows over the loop: where addresses set the DRAM's timing, a steady start is not
        # enough, every window must agree with it
        windows, errs = ([], []) if steady is not None and not self.banked else \
            self.windows(depth, select, name, count, j)
        if steady is not None:
            period, first, inc = steady
            if all(_equal({key: x * WINDOW // period for key, x in inc.items()}, d)
                   for d, _ in windows):
                j0 = next(i for i in range(j - period + 1, j + 1) if (count - i) % period == 0)
                return self._line(at(j0), inc, (count - j0) // period,
                                  [at(i)[1] for i in range(first, j + 1)] + errs, name, period)
        # no steady state: the mean increment of the first samples and the windows
        self.exact = False
        r = count - j
        windows.append((_sub(at(j)[0], at(2)[0]), j - 2))
        errs += [at(i)[1] for i in range(2, j + 1)]
        total = sum(w for _, w in windows)
        keys = windows[0][0]
        mean = {key: sum(d[key] for d, _ in windows) / total for key in keys}
        means = [{key: d[key] / w for key in keys} for d, w in windows if w]
        out = {key: at(j)[0][key] + r * mean[key] for key in keys}
        out = {key: round(x) if isinstance(at(j)[0][key], int) else x for key, x in out.items()}
        # the true mean increment lies among the windows' (an assumption the tests measure)
        err = {key: max(e[key] for e in errs) * (1 + 2 * r) + r * (
            max(x[key] for x in means) - min(x[key] for x in means)) for key in keys}
        # how the extrapolated accesses split into row hits and misses varies more than the
        # windows show: bounded by all of them
        for key in _ROWS:
            err[key] = max(e[key] for e in errs) * (1 + 2 * r) + r * sum(mean[k] for k in _ROWS)
        self.periods[name] = -1  # marks the loop unsteady for good
        return out, err

    def windows(self, depth, select, name, count, lo) -> tuple[list, list]:
        """``(increment, iterations)`` of :data:`WINDOW` iterations at :data:`POSITIONS`
        places from iteration ``lo`` to the end of loop ``name``, each after :data:`WARMUP`
        at its own place; and the error bounds of the runs."""
        out, errs = [], []
        hi = count - 1 - (WARMUP + WINDOW)
        for s in sorted({lo + (hi - lo) * i // (POSITIONS - 1) for i in range(POSITIONS)}
                        if hi >= lo else ()):
            a, b = (self.values(depth + 1, {**select, name: [0, *range(s, s + w), count - 1]})
                    for w in (WARMUP, WARMUP + WINDOW))
            out.append((_sub(b[0], a[0]), WINDOW))
            errs += [a[1], b[1]]
        return out, errs

    def _line(self, base, inc, steps, errs, name, period):
        """``base + steps * inc``; the inner loops' error bounds grow with the steps."""
        if self.periods.get(name, 0) >= 0:
            self.periods[name] = max(self.periods.get(name, 0), period)
        out = {key: base[0][key] + steps * inc[key] for key in inc}
        err = {key: max(e[key] for e in errs) * (1 + 2 * steps) for key in inc}
        return out, err


def gemm_stats(m: int, n: int, k: int, config: AcceleratorConfig, *, dataflow: str,
               sparsity: tuple[int, int] | None, mapping: Mapping,
               macs: int | None = None, blocked: bool = False) -> Stats:
    """Timing-mode statistics of the :func:`~dataflow.lower.gemm.compile_gemm` program of one
    GEMM without emitting it: extrapolated over its long loops (module docstring).

    Returns the :class:`~hwsim.engine.Stats` of the full program, with
    :attr:`~hwsim.engine.Stats.extrapolated` saying how it was found (None, and the per-command
    schedule kept, when every loop is short enough to simulate whole). ``macs``: the useful
    MACs for the utilisation (default: the MACs the array performs). ``blocked``: the
    tile-blocked layouts (:func:`~dataflow.lower.gemm.compile_gemm`).

    Raises
    ------
    ValueError
        What :func:`~dataflow.lower.gemm.compile_gemm` raises for the shape, pattern, dataflow
        or mapping.
    """
    x = _Extrapolation(m, n, k, config, dataflow, sparsity, mapping, blocked)
    if not x.loops:
        stats = run(compile_gemm(m, n, k, config, dataflow=dataflow, sparsity=sparsity,
                                 mapping=mapping, max_commands=0, blocked=blocked), config,
                                 "timing",
                    macs=macs).stats
        return stats
    v, err = x.values(0, {})
    loops = {name: [count, len(x.simulated[name]), max(x.periods[name], 0)]
             for name, count in x.loops}
    info = {"loops": loops, "runs": x.runs, "exact": x.exact,
            "bound": {} if x.exact else {"/".join(key): math.ceil(e) + 1 if isinstance(v[key], int)
                                         else e for key, e in err.items()}}
    performed = int(v[("macs",)])
    return _stats(v, config, performed if macs is None else macs, info)
