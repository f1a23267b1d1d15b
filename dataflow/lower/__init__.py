"""Lowering: what emits each unit's commands into a program's command table.

One module per kind of op, each appending rows to one :class:`Emitter`: :mod:`.gemm` (LOAD,
GEMM, STORE on the DMA units and the array, with the double-buffering semaphores; also the
one-GEMM entries :func:`compile_gemm` and :func:`simulate_gemm`), :mod:`.vector` (UPDATE rows
of the vector engine), :mod:`.sore` (PRUNE rows). :func:`dataflow.compile` decides what to
emit and in which order; these modules decide how.
"""

from __future__ import annotations

from .emitter import Alloc, Emitter
from .gemm import (
    GemmProtocol,
    GemmTensors,
    compile_gemm,
    gemm_blocks,
    gemm_tensors,
    gemm_tiling,
    simulate_gemm,
    sparse_operands,
)
from .sore import emit_prune, prune_steps
from .vector import emit_vector, vector_steps

__all__ = [
    "Alloc",
    "Emitter",
    "GemmProtocol",
    "GemmTensors",
    "compile_gemm",
    "emit_prune",
    "emit_vector",
    "gemm_blocks",
    "gemm_tensors",
    "gemm_tiling",
    "prune_steps",
    "simulate_gemm",
    "sparse_operands",
    "vector_steps",
]
