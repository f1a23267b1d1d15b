"""hwsim: the machine as an executable specification (config, ISA, cycle-level model)."""

from __future__ import annotations

from .config import (
    AcceleratorConfig,
    ConfigError,
    load_config,
    parse_nm,
    preset,
    preset_names,
)
from .engine import ProgramError, RunResult, Stats, run
from .gemm import compile_gemm, gemm_tiling, sparse_operands
from .program import Program, TensorRef

__all__ = [
    "AcceleratorConfig",
    "ConfigError",
    "Program",
    "ProgramError",
    "RunResult",
    "Stats",
    "TensorRef",
    "compile_gemm",
    "gemm_tiling",
    "load_config",
    "preset",
    "preset_names",
    "run",
    "simulate_gemm",
    "sparse_operands",
]


def simulate_gemm(m: int, n: int, k: int, config: AcceleratorConfig | str, *,
                  sparsity: str | None = None, dataflow: str = "ws",
                  mode: str = "timing", trace: str | None = None) -> Stats:
    """Cycles, traffic and energy of one GEMM C[M,N] = A[M,K]·B[K,N] on ``config``.

    Parameters
    ----------
    m, n, k : int
        GEMM shape.
    config : AcceleratorConfig or str
        A config, preset name or YAML path.
    sparsity : str, optional
        ``"N:M"`` pattern of B along K; must be one the config supports. Sparse GEMMs run
        N:M tiles in either dataflow (:mod:`hwsim.sparse_tile`).
    dataflow : {"ws", "os"}
    mode : {"timing", "functional"}
        Functional mode runs random operands through the per-cycle model.
    trace : str, optional
        Write a per-command trace (CSV, :mod:`hwsim.trace`) to this path.

    Raises
    ------
    ConfigError, ValueError
        Unknown preset, unsupported pattern or dataflow, bad shape.
    """
    import numpy as np

    cfg = load_config(config)
    nm = None
    if sparsity is not None:
        nm = parse_nm(sparsity, "sparsity")
        if not cfg.supports_pattern(nm):
            raise ConfigError("sparsity", sparsity, f"a pattern of config {cfg.name!r}: "
                              f"{cfg.array.patterns}")
    prog = compile_gemm(m, n, k, cfg, dataflow=dataflow, sparsity=nm)
    inputs = None
    if mode == "functional":
        rng = np.random.default_rng(0)
        a = rng.integers(-128, 128, (m, k))
        b = rng.integers(-128, 128, (k, n))
        inputs = {"A": a, "B": b} if nm is None else sparse_operands(
            a, b, *nm, ws_rows=cfg.array.rows if dataflow == "ws" else None)
    # MACs the array performs: a sparse GEMM multiplies only the kept weights
    kept = k if nm is None else -(-k // nm[1]) * nm[0]
    stats = run(prog, cfg, mode, inputs=inputs, macs=m * n * kept).stats
    if trace is not None:
        from .trace import write_trace

        write_trace(prog, stats, trace)
    return stats
