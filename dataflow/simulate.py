"""``simulate_model``: one training step of a zoo model on a config, against dense.

Cycles come from scheduling the compiled program with the decoupled controller
(:func:`hwsim.fast_timing.simulate_table`, the scheduler of :func:`hwsim.run`). Which numbers
are closed forms of hwsim and which are estimates is stated in :mod:`hwsim.fast_timing`:
sparse GEMM tiles, PRUNE and the vector engine are estimated; LOAD, STORE and dense GEMM are
hwsim's. Per-op cycles are attributed by completion: an op is charged the cycles between the
latest completion of the ops before it (in program order) and its own last completion, so the
per-op cycles sum to the step's cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hwsim import isa
from hwsim.config import AcceleratorConfig, load_config

from .compiler import CompiledProgram, compile, simulate_program
from .optimizations import CompileOptions
from .workload import Workload, default_skip, extract
from .zoo import get_model

__all__ = ["ModelResult", "simulate_model", "simulate_workload"]


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
    np.maximum.at(finish, it[valid], st.end[valid])
    charged = np.zeros(n_items, np.int64)
    running = -1
    for k in range(n_items):
        if finish[k] > running:
            charged[k] = finish[k] - running
            running = finish[k]
    array = op == isa.Opcode.GEMM
    busy = np.bincount(it[array & valid], st.duration[array & valid], n_items)
    macs = np.bincount(it[valid], prog.useful_macs[valid], n_items)
    ncmd = np.bincount(it[valid], minlength=n_items)
    eb = config.array.elem_bytes
    nbytes = prog.table[:, 6] * prog.table[:, 7]  # rows * elems
    ebuf = np.where(prog.table[:, 3] <= 1, eb, np.where(prog.table[:, 3] == 3, 1, 4))
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
    e = config.energy
    mac_pj = e.mac_int8 if config.array.dtype == "int8" else e.mac_fp16
    seconds = st.cycles / (config.clock_mhz * 1e6)
    other = sum(prog.extra_bytes.values())
    dram_total = st.bytes["dram_read"] + st.bytes["dram_write"] + other
    energy = {
        "array": float(prog.useful_macs.sum()) * mac_pj,
        "sram": 2 * (st.bytes["dram_read"] + st.bytes["dram_write"]) *
        (e.sram_read_byte + e.sram_write_byte) / 2,
        "dram": dram_total * e.dram_byte,
        "sore": prog.sore_compares * e.sore_compare,
        "vector": prog.vector_flops * e.vector_flop,
        "static": e.static_mw * 1e-3 * seconds * 1e12,
    }
    totals = {
        "cycles": st.cycles, "seconds": seconds, "macs": int(prog.useful_macs.sum()),
        "utilisation": float(prog.useful_macs.sum()) / (st.cycles * pes) if st.cycles else 0.0,
        "dram_read": st.bytes["dram_read"], "dram_write": st.bytes["dram_write"],
        "dram_other": other, "dram_total": dram_total,
        "energy_pj": float(sum(energy.values())),
        **{f"energy_{k}_pj": v for k, v in energy.items()},
        **{f"busy_{k}": v for k, v in st.busy.items()},
        "commands": len(prog),
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
    skip : "default" or tuple of str
        Layers kept dense: ``"default"`` is :func:`dataflow.workload.default_skip`.
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
    sk = default_skip(model) if skip == "default" else tuple(skip)
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
                       wl.ideal_speedup())
