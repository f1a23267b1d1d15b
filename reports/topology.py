"""SCALE-Sim topologies through hwsim: a per-layer table."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from dataflow import simulate_gemm
from dataflow.scalesim import read_topology
from hwsim.config import AcceleratorConfig

__all__ = ["simulate_topology"]


def simulate_topology(path: str | Path, config: AcceleratorConfig, *,
                      dataflow: str = "ws") -> pd.DataFrame:
    """Simulate every layer of a SCALE-Sim topology CSV (forward GEMMs, SCALE-Sim's im2col
    convention) in timing mode; one row per layer.

    Raises
    ------
    TopologyError
        Malformed file (names the file, line and column).
    ConfigError
        A layer's sparsity pattern that the config does not support.
    """
    rows = []
    for layer in read_topology(path):
        m, n, k = layer.gemm_shape()
        pattern = None if layer.sparsity is None else f"{layer.sparsity[0]}:{layer.sparsity[1]}"
        t0 = time.perf_counter()
        s = simulate_gemm(m, n, k, config, sparsity=pattern, dataflow=dataflow)
        rows.append({
            "layer": layer.name, "M": m, "N": n, "K": k, "sparsity": pattern or "dense",
            "cycles": s.cycles, "utilisation": round(s.utilisation, 4),
            "dram_read_B": s.bytes["dram_read"], "dram_write_B": s.bytes["dram_write"],
            "energy_uJ": round(s.energy_total_pj / 1e6, 3),
            "sim_s": round(time.perf_counter() - t0, 3),
        })
    return pd.DataFrame(rows)
