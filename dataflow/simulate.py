"""``simulate_model``: one training step of a zoo model on a config, against dense.

Cycles, traffic and energy come from :func:`hwsim.run` on the compiled program's command table
(the unit models' closed forms and the decoupled controller; energy from :mod:`hwsim.energy`).
The vector engine's elementwise passes are compiler estimates (:mod:`dataflow.vector_ops`);
every other command is timed by the closed forms the RTL is checked against. Per-op cycles
are attributed by completion: an op is charged the cycles between the latest completion of the
ops before it (in program order) and its own last completion, so the per-op cycles sum to the
step's cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hwsim import isa
from hwsim.buffers import elem_bytes_of
from hwsim.config import AcceleratorConfig, load_config
from hwsim.engine import Stats
from hwsim.program import COL

from .compiler import CompiledProgram, compile, simulate_program
from .optimizations import CompileOptions
from .workload import Workload, default_skip, extract, required_skip
from .zoo import get_model

__all__ = ["PATH_PARTS", "ModelResult", "critical_path", "simulate_model", "simulate_workload"]

PATH_PARTS = ("gemm_dense", "gemm_sparse", "vector", "update", "dma_in", "dma_out", "sore",
              "control")
"""Parts of a step's critical path (:func:`critical_path`)."""
_UNIT_OF = np.zeros(max(int(o) for o in isa.Opcode) + 1, np.int64)
for _op in isa.Opcode:
    _UNIT_OF[int(_op)] = int(isa.command_class(_op).UNIT)


def critical_path(table: np.ndarray, st: Stats, queue_depth: int,
                  trace: list | None = None) -> dict[str, int]:
    """The step's cycles split by what its critical path ran: a walk back from the last command
    through whatever bound each start (the token it waited for, the previous command of its
    unit, or the controller accepting it: each accept cycle is ``control``).

    Returns the cycles per :data:`PATH_PARTS` entry (GEMMs dense and sparse, vector passes,
    optimizer updates, DMA in and out, SORE, the controller); they sum to ``st.cycles``.
    ``trace``, when given, receives the commands on the path (last first).
    """
    n = len(table)
    out = dict.fromkeys(PATH_PARTS, 0)
    if n == 0:
        return out
    op = table[:, 0]
    unit = _UNIT_OF[op]
    sch = st.schedule
    start, end, acc, tok = sch.start, sch.end, sch.accept, sch.token
    prev_same = np.full(n, -1, np.int64)
    qslot = np.full(n, -1, np.int64)
    for u in np.unique(unit):
        idx = np.nonzero(unit == u)[0]
        prev_same[idx[1:]] = idx[:-1]
        if len(idx) > queue_depth:
            qslot[idx[queue_depth:]] = idx[:-queue_depth]
    wait, signal = table[:, 1], table[:, 2]
    prods = [np.nonzero((signal >> s) & 1)[0] for s in range(8)]
    cons = [np.nonzero((wait >> s) & 1)[0] for s in range(8)]
    prefix_last = np.maximum.accumulate(np.where(end == np.maximum.accumulate(end),
                                                 np.arange(n), 0))
    cat = np.where(op == isa.Opcode.GEMM,
                   np.where(table[:, COL["sparse"]] != 0, 1, 0),
                   np.select([op == isa.Opcode.UPDATE, op == isa.Opcode.LOAD,
                              op == isa.Opcode.STORE, op == isa.Opcode.PRUNE],
                             [np.where(table[:, COL["vperiod"]] == 0, 3, 2), 4, 5, 6], 7))
    c = int(np.argmax(end))
    t = int(end[c]) + 1
    state = "end"
    while True:
        if state == "end":
            out[PATH_PARTS[cat[c]]] += t - int(start[c])
            if trace is not None:
                trace.append(c)
            t = int(start[c])
            state = "start"
            continue
        if t <= 0:
            break
        if state == "start":
            nxt = -1
            if tok[c] == t:
                w = int(wait[c])
                for s in range(8):
                    if (w >> s) & 1:
                        k = int(np.searchsorted(cons[s], c))
                        p = int(prods[s][k])
                        if end[p] + 1 == t:
                            nxt = p
                            break
            if nxt < 0 and prev_same[c] >= 0 and end[prev_same[c]] + 1 == t:
                nxt = int(prev_same[c])
            if nxt < 0 and unit[c] == isa.Unit.CONTROL and c > 0 \
                    and end[prefix_last[c - 1]] + 1 == t:
                nxt = int(prefix_last[c - 1])
            if nxt >= 0:
                c, state = nxt, "end"
                continue
            if acc[c] + 1 == t:
                out["control"] += 1
                t = int(acc[c])
                state = "accept"
                continue
            out["control"] += t  # not explained by the rules above
            break
        # state == "accept": what held the controller until it accepted command c
        q = int(qslot[c])
        if q >= 0 and start[q] + 1 == t:
            out["control"] += 1
            c, t, state = q, int(start[q]), "start"
        elif c > 0 and acc[c - 1] + 1 == t:
            out["control"] += 1
            c, t = c - 1, t - 1
        elif c > 0 and unit[c - 1] == isa.Unit.CONTROL and end[c - 1] + 1 == t:
            c, state = c - 1, "end"
        else:
            out["control"] += t
            break
    return out


@dataclass
class ModelResult:
    """What :func:`simulate_model` measured.

    Attributes
    ----------
    model, method, pattern, config : str
    batch : int
    ops : pandas.DataFrame
        One row per item (GEMM group, vector op, prune): ``name, layer, pass, kind, mapping,
        commands, cycles, array_busy, macs, utilisation, dram_bytes``.
    per_layer, per_pass : pandas.DataFrame
        ``ops`` summed by layer and by pass.
    totals : dict
        ``cycles, seconds, macs, utilisation, dram_read, dram_write, dram_other, energy_pj``,
        busy cycles per unit, ``commands``.
    dense_cycles : int or None
        The same model with method ``dense`` (None when it was not run).
    ideal_speedup : float
        ``Workload.ideal_speedup()`` (dense over sparse GEMM MACs).
    dense_layers : tuple of str
        The ``skip`` entries the workload was extracted with (layers kept dense).
    """

    model: str
    method: str
    pattern: str | None
    config: str
    batch: int
    ops: pd.DataFrame
    per_layer: pd.DataFrame
    per_pass: pd.DataFrame
    totals: dict = field(default_factory=dict)
    dense_cycles: int | None = None
    ideal_speedup: float = 1.0
    dense_layers: tuple[str, ...] = ()

    @property
    def speedup(self) -> float | None:
        """Dense cycles over these cycles."""
        if self.dense_cycles is None:
            return None
        return self.dense_cycles / self.totals["cycles"]

    def summary(self) -> str:
        t = self.totals
        sp = "" if self.speedup is None else (f", speedup over dense {self.speedup:.3f}x "
                                              f"(ideal {self.ideal_speedup:.3f}x)")
        return (f"{self.model} {self.method} {self.pattern or ''} on {self.config} batch "
                f"{self.batch}: {t['cycles']:,} cycles ({t['seconds'] * 1e3:.2f} ms), "
                f"utilisation {t['utilisation']:.1%}, DRAM {t['dram_total'] / 1e6:.1f} MB, "
                f"energy {t['energy_pj'] / 1e9:.3f} mJ{sp}")


def simulate_workload(workload: Workload, config: AcceleratorConfig,
                      options: CompileOptions | None = None
                      ) -> tuple[CompiledProgram, pd.DataFrame, dict]:
    """Compile and time one workload; returns ``(program, per-item table, totals)``."""
    prog = compile(workload, config, options)
    st = simulate_program(prog, config)
    items = prog.items
    n_items = len(items)
    op = prog.table[:, 0]
    it = prog.item_of
    valid = it >= 0
    finish = np.full(n_items, -1, np.int64)
    np.maximum.at(finish, it[valid], st.schedule.end[valid])
    charged = np.zeros(n_items, np.int64)
    running = -1
    for k in range(n_items):
        if finish[k] > running:
            charged[k] = finish[k] - running
            running = finish[k]
    array = op == isa.Opcode.GEMM
    busy = np.bincount(it[array & valid], st.schedule.duration[array & valid], n_items)
    macs = np.bincount(it[valid], prog.useful_macs[valid], n_items)
    ncmd = np.bincount(it[valid], minlength=n_items)
    nbytes = prog.table[:, COL["rows"]] * prog.table[:, COL["elems"]]
    ebuf = elem_bytes_of(prog.table[:, COL["buf"]], config)
    dma = (op == isa.Opcode.LOAD) | (op == isa.Opcode.STORE)
    traffic = np.bincount(it[dma & valid], (nbytes * ebuf)[dma & valid], n_items)
    pes = config.array.pes
    rows = []
    for k, item in enumerate(items):
        rows.append((item.name, item.layer, item.pass_, item.kind, item.mapping, int(ncmd[k]),
                     int(charged[k]), int(busy[k]), int(macs[k]),
                     macs[k] / (charged[k] * pes) if charged[k] else 0.0, int(traffic[k])))
    df = pd.DataFrame(rows, columns=["name", "layer", "pass", "kind", "mapping", "commands",
                                     "cycles", "array_busy", "macs", "utilisation",
                                     "dram_bytes"])
    seconds = st.cycles / (config.clock_mhz * 1e6)
    other = st.bytes["dram_other"]
    dram_total = st.bytes["dram_read"] + st.bytes["dram_write"] + other
    totals = {
        "cycles": st.cycles, "seconds": seconds, "macs": int(prog.useful_macs.sum()),
        "utilisation": float(prog.useful_macs.sum()) / (st.cycles * pes) if st.cycles else 0.0,
        "dram_read": st.bytes["dram_read"], "dram_write": st.bytes["dram_write"],
        "dram_other": other, "dram_total": dram_total,
        "energy_pj": st.energy_total_pj,
        **{f"energy_{k}_pj": v for k, v in st.energy_pj.items()},
        **{f"busy_{k}": v for k, v in st.busy.items()},
        "commands": len(prog),
        **{f"path_{k}": v for k, v in critical_path(prog.table, st, config.queue_depth).items()},
        "busy_update": int(st.schedule.duration[(op == isa.Opcode.UPDATE)
                                       & (prog.table[:, COL["vperiod"]] == 0)].sum()),
    }
    return prog, df, totals


def _group(df: pd.DataFrame, key: str) -> pd.DataFrame:
    g = df.groupby(key, sort=False)[["cycles", "array_busy", "macs", "dram_bytes",
                                     "commands"]].sum()
    return g.reset_index()


def simulate_model(model_name: str, method: str = "bdwp", pattern: str | None = "2:8",
                   config: AcceleratorConfig | str = "vcu1525", batch: int = 1,
                   options: CompileOptions | None = None, *, skip: str | tuple = "default",
                   compare_dense: bool = True, **model_kw) -> ModelResult:
    """One training step of zoo model ``model_name``: per-op, per-layer, per-pass results.

    Parameters
    ----------
    model_name : str
        A :func:`dataflow.zoo.model_names` entry.
    method : {"dense", "srste", "bdwp", "transposable"}
    pattern : str or None
        ``"N:M"``; ignored for ``dense``.
    config : AcceleratorConfig or str
        A config, preset name or YAML path.
    batch : int
    options : CompileOptions, optional
    skip : "default", "required" or tuple of str
        Layers kept dense: ``"default"`` is :func:`dataflow.workload.default_skip` (a conv
        stem and the classifier), ``"required"`` :func:`dataflow.workload.required_skip` (only
        the layers that cannot be N:M at ``pattern``).
    compare_dense : bool
        Also simulate method ``dense`` for the speedup.
    **model_kw
        Passed to :func:`dataflow.zoo.get_model` (e.g. ``seq_len=512``).

    Raises
    ------
    dataflow.compiler.CompileError
        The pattern is not supported by the config (checked before extraction).
    """
    cfg = load_config(config)
    options = options or CompileOptions()
    if method != "dense":
        from .compiler import CompileError

        if pattern is None:
            raise CompileError(f"method {method!r} needs a pattern such as '2:8'")
        if not cfg.supports_pattern(pattern):
            raise CompileError(f"pattern {pattern} is not supported by config {cfg.name!r} "
                               f"(supported: {cfg.array.patterns})")
    model, x = get_model(model_name, batch=batch, device="meta", **model_kw)
    if skip == "default":
        sk = default_skip(model)
    elif skip == "required":
        sk = required_skip(model, method, pattern) if method != "dense" else ()
    else:
        sk = tuple(skip)
    wl = extract(model, x, method=method, pattern=None if method == "dense" else pattern,
                 skip=sk, name=model_name)
    _, df, totals = simulate_workload(wl, cfg, options)
    dense = None
    if compare_dense:
        if method == "dense":
            dense = totals["cycles"]
        else:
            wd = extract(model, x, method="dense", skip=sk, name=model_name)
            dense = simulate_workload(wd, cfg, options)[2]["cycles"]
    return ModelResult(model_name, method, None if method == "dense" else pattern, cfg.name,
                       batch, df, _group(df, "layer"), _group(df, "pass"), totals, dense,
                       wl.ideal_speedup(), sk)
