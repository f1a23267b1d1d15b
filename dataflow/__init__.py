"""dataflow: the compiler, PyTorch model -> workload -> mapping -> Program.

``extract`` (workload.py) turns a model into ops; ``search`` (mapping.py) maps each GEMM;
``plan`` (plan.py) orders the ops into items with their true dependencies and fuses vector
ops; ``compile`` (compiler.py) emits the machine's commands with the paper's optimisations
(optimizations.py) as switches and the vector engine's kernels (vector_ops.py);
``simulate_model`` (simulate.py) times a training step and splits its critical path.
"""

from __future__ import annotations

from .compiler import CompiledProgram, CompileError, Item, compile, simulate_program
from .mapping import OBJECTIVES, Mapping, MappingCache, MappingError, OpShape, estimate, search
from .optimizations import ABLATION, CompileOptions
from .simulate import ModelResult, simulate_model, simulate_workload
from .workload import Op, UnmappableOpError, Workload, default_skip, extract

__all__ = [
    "ABLATION",
    "OBJECTIVES",
    "CompileError",
    "CompileOptions",
    "CompiledProgram",
    "Item",
    "Mapping",
    "MappingCache",
    "MappingError",
    "ModelResult",
    "Op",
    "OpShape",
    "UnmappableOpError",
    "Workload",
    "compile",
    "default_skip",
    "estimate",
    "extract",
    "search",
    "simulate_model",
    "simulate_program",
    "simulate_workload",
]
