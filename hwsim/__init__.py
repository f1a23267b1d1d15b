"""hwsim: the machine as an executable specification (config, ISA, cycle-level model).

Programs come from the compiler (``dataflow``: ``dataflow.compile`` for a model,
``dataflow.compile_gemm`` and ``dataflow.simulate_gemm`` for one GEMM); hwsim runs them.
"""

from __future__ import annotations

from . import paths  # first: it sets Numba's cache directory before anything imports Numba
from .config import (
    AcceleratorConfig,
    ConfigError,
    load_config,
    preset,
    preset_names,
)
from .engine import ProgramError, RunResult, Stats, run
from .program import Program, TensorRef

__all__ = [
    "AcceleratorConfig",
    "ConfigError",
    "Program",
    "ProgramError",
    "RunResult",
    "Stats",
    "TensorRef",
    "load_config",
    "paths",
    "preset",
    "preset_names",
    "run",
]
