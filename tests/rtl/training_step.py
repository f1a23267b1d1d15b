"""The two-layer MLP training step of ``test_training_step_cocotb`` (on the bare top) and
``test_driver_cocotb`` (through the host driver and the kernel): the compiled program, one
consistent step's tensors, and each op's operands as the program's inputs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dataflow import sparse_operands
from dataflow.compiler import compile
from dataflow.optimizations import CompileOptions
from dataflow.workload import extract
from hwsim.program import Program

__all__ = ["op_operands", "step_tensors", "step_values", "training_step_program"]


def training_step_program(config, batch, d_in, hidden, d_out, method="dense", pattern=None,
                          dataflows=None):
    """``(program, ops, compiled)``: the compiled step as a :class:`Program` whose inputs are
    every op's A and B (and Bi, the indices of a sparse op's compressed B) and whose outputs
    are every op's C, the workload's GEMM ops, and the
    :class:`dataflow.compiler.CompiledProgram` itself. ``dataflows`` restricts the mapping
    search."""
    model = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))
    workload = extract(model, torch.zeros(batch, d_in), method=method, pattern=pattern)
    opts = CompileOptions(vector_ops=False, dataflows=dataflows)
    compiled = compile(workload, config, opts)
    ops = workload.gemms()
    names = [f"{op.name}.{t}" for op in ops for t in ("A", "B", "Bi")]
    prog = Program(compiled.commands, compiled.dram_bytes, compiled.tensors,
                   inputs=tuple(n for n in names if n in compiled.tensors),
                   outputs=tuple(f"{op.name}.C" for op in ops))
    return prog, ops, compiled


def step_tensors(dtype, rng, batch, d_in, hidden, d_out):
    """Per layer (``"0"``, ``"2"``) its input, weight and output gradient, of ``dtype``."""
    def draw(shape):
        if dtype == "int8":
            return rng.integers(-128, 128, shape).astype(np.int8)
        return rng.standard_normal(shape).astype(np.float16)

    h = np.maximum(draw((batch, hidden)), 0)  # after the ReLU
    dh = np.where(h > 0, draw((batch, hidden)), 0).astype(h.dtype)  # through the ReLU
    return {"0": (draw((batch, d_in)), draw((hidden, d_in)), dh),
            "2": (h, draw((d_out, hidden)), draw((batch, d_out)))}


def op_operands(op, layers):
    """``(A, B)`` of one GEMM op (conventions of :mod:`dataflow.workload`)."""
    x, w, dy = layers[op.layer]
    return {"fwd": (x, w.T), "bgrad": (dy, w), "wgrad": (dy.T, x)}[op.pass_]


def step_values(prog, ops, layers, config):
    """``(values, dense_b)``: the program's inputs for the step ``layers`` (a sparse op's B
    pruned N:M and loaded compressed, with its A blocked by reduction chunk when the program
    holds it so: weight-stationary), and per op the dense B it multiplies (pruned, if sparse)."""
    values, dense_b = {}, {}
    for op in ops:
        a, b = op_operands(op, layers)
        if op.sparsity is None:
            values[f"{op.name}.A"], values[f"{op.name}.B"] = a, b
            dense_b[op.name] = b
            continue
        blocked = prog.tensors[f"{op.name}.A"].shape != a.shape
        ops_nm = sparse_operands(a, b, *op.sparsity,
                                 ws_rows=config.array.rows if blocked else None)
        values[f"{op.name}.A"] = ops_nm["A"]
        values[f"{op.name}.B"], values[f"{op.name}.Bi"] = ops_nm["Bv"], ops_nm["Bi"]
        dense_b[op.name] = ops_nm["B"]
    return values, dense_b
