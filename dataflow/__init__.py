"""dataflow: the compiler, PyTorch model -> workload -> mapping -> lowering -> Program.

``extract`` (workload.py) turns a model into ops; ``search`` (mapping.py) maps each GEMM;
``plan`` (plan.py) orders the ops into items with their true dependencies and fuses vector
ops; ``compile`` (compiler.py) emits the machine's commands with the paper's optimisations
(optimizations.py) as switches, through the lowerings of ``lower/`` (one module per kind of op:
``lower/gemm.py``, also behind ``compile_gemm`` and ``simulate_gemm`` for one GEMM;
``lower/vector.py`` with the vector engine's kernels of vector_ops.py; ``lower/sore.py``);
``simulate_model`` (simulate.py) times a training step, prefill or decode step (``PHASES``) and
splits its critical path; ``load_model`` (frontend.py) brings your own model in, from a
``file.py:factory`` or a ``torch.export`` program (``.pt2``); ``get_model`` and
``model_names`` (zoo/) give the built-in ones; ``run_step`` (execute.py) runs one training
step with values on hwsim's functional units and ``compare`` sets it beside autograd;
scalesim.py reads SCALE-Sim topologies and ``.cfg`` files.

Names are imported on first use, so that one GEMM (``simulate_gemm``, the SCALE-Sim readers)
does not load PyTorch, which model extraction needs.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ABLATION",
    "OBJECTIVES",
    "PATH_PARTS",
    "PHASES",
    "CompileError",
    "CompileOptions",
    "CompiledProgram",
    "ExportedModule",
    "GEMM_NUMERICS",
    "Item",
    "LoadedModel",
    "Mapping",
    "MappingCache",
    "MappingError",
    "ModelFileError",
    "ModelResult",
    "NotOnMachineError",
    "Op",
    "OpShape",
    "StepResult",
    "UnmappableOpError",
    "Workload",
    "check_step",
    "compare",
    "compile",
    "compile_gemm",
    "critical_path",
    "default_skip",
    "estimate",
    "expected_rows",
    "extract",
    "gemm_tiling",
    "get_model",
    "load_model",
    "model_names",
    "model_phases",
    "reference_step",
    "required_skip",
    "run_step",
    "search",
    "simulate_gemm",
    "simulate_model",
    "simulate_program",
    "simulate_workload",
    "sparse_operands",
]

_HOME = {
    "compiler": ("CompiledProgram", "CompileError", "Item", "compile", "simulate_program"),
    "execute": ("GEMM_NUMERICS", "NotOnMachineError", "StepResult", "check_step", "compare",
                "reference_step", "run_step"),
    "frontend": ("ExportedModule", "LoadedModel", "ModelFileError", "load_model"),
    "lower.gemm": ("compile_gemm", "gemm_tiling", "simulate_gemm", "sparse_operands"),
    "mapping": ("OBJECTIVES", "Mapping", "MappingCache", "MappingError", "OpShape", "estimate",
                "search"),
    "optimizations": ("ABLATION", "CompileOptions"),
    "simulate": ("PATH_PARTS", "PHASES", "ModelResult", "critical_path", "model_phases",
                 "simulate_model", "simulate_workload"),
    "workload": ("Op", "UnmappableOpError", "Workload", "default_skip", "expected_rows",
                 "extract", "required_skip"),
    "zoo": ("get_model", "model_names"),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
