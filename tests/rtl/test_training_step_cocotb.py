"""A two-layer MLP's training step, compiled by ``dataflow``, on the generated Verilog.

``Linear -> ReLU -> Linear`` is extracted (dense) and compiled with
``CompileOptions(vector_ops=False)``: its six GEMMs (forward, backward-data and weight-gradient
of both layers) as one program of LOAD/GEMM/STORE commands whose ops are chained by cross-op
semaphores. The machine does no ReLU or requantisation in such a program, so each op reads its
own operand tensors; the host fills them from one consistent step (input ``x``, weights,
post-ReLU activations ``h``, output gradient ``dy`` and the ReLU-masked ``dh``), so each op's
result is the matching tensor of torch's autograd on the same values. The RTL must equal hwsim's
functional mode bit for bit and, command by command, in accept and finish cycles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dataflow.compiler import simulate_program
from hwsim.config import preset
from hwsim.engine import run
from hwsim.numerics import matmul_error_bound
from reports.fidelity import command_end_cycles, cosim_programs
from rtl.cosim import available_simulators
from tests.rtl.training_step import op_operands, step_tensors, step_values, training_step_program

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

# config -> (batch, in, hidden, out). On tiny the ops span up to 2x2 tiles of the 4x4 array and
# the mapping search picks OS for five ops, WS for the first layer's weight gradient; on small8
# one tile each, WS for five ops and OS for that one.
STEPS = {"tiny": (4, 8, 8, 4), "small8": (4, 8, 8, 4), "tiny_fp16": (4, 8, 8, 4),
         "tiny_wide": (4, 8, 8, 4)}
SEED = 6
# each launch spends 10-20 s generating the top's Verilog on this machine; the fp16 step adds
# little beyond test_accelerator_cocotb's fp16 GEMMs, so it runs with the slow tests
# tiny_wide: the wide DMA (dram.dma: wide), whose LOADs of the compiler's tile-blocked operands
# ask for four entries a request
CONFIGS = ["tiny", "small8", "tiny_wide", pytest.param("tiny_fp16", marks=pytest.mark.slow)]


def _config(name):
    if name == "tiny_fp16":
        return preset("tiny").replace(name="tiny_fp16", array__dtype="fp16")
    if name == "tiny_wide":
        return preset("tiny").replace(name="tiny_wide", dram__dma="wide")
    return preset(name)


def _wide_loads(prog, config) -> int:
    """LOADs of several entries that the program asks for four entries a request."""
    from hwsim import isa
    from hwsim.program import COL
    from hwsim.units.dma import load_beats

    t = prog.table
    b = load_beats(t[:, 0] == isa.Opcode.LOAD, t[:, COL["buf"]], t[:, COL["sram_addr"]],
                   t[:, COL["elems"]], t[:, COL["stride"]], config)
    return int(((b > 1) & (t[:, COL["rows"]] > 1)).sum())


def torch_step(layers):
    """Per op name, torch's result in float64 (exact for int8 operands at these sizes):
    autograd of ``y = x @ w.T`` with upstream gradient ``dy``, layer by layer."""
    out = {}
    for layer, (x, w, dy) in layers.items():
        x_t = torch.from_numpy(x.astype(np.float64)).requires_grad_()
        w_t = torch.from_numpy(w.astype(np.float64)).requires_grad_()
        y = nn.functional.linear(x_t, w_t)
        y.backward(torch.from_numpy(dy.astype(np.float64)))
        out.update({f"{layer}.fwd": y.detach().numpy(), f"{layer}.bgrad": x_t.grad.numpy(),
                    f"{layer}.wgrad": w_t.grad.numpy()})
    return out


def run_everywhere(config, prog, compiled, values, sim, tag, where):
    """Run ``prog`` in hwsim's functional mode (its cycles equal to the compiler's fast path)
    and on the RTL: hwsim's result, the bench's and the RTL's final DRAM bytes."""
    model = run(prog, config, "functional", inputs=values)
    assert simulate_program(compiled).cycles == model.stats.cycles, where
    got = cosim_programs(config, [(prog, values)], sim=sim, seed=SEED, build_root=BUILD,
                         tag=f"{tag}-seed{SEED}")[0]
    assert got["error"] == 0, where
    return model, got, np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_two_layer_training_step_matches_hwsim_and_torch(sim, config_name):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = _config(config_name)
    dims = STEPS[config_name]
    where = f"{sim}/{config_name} training step {dims} (seed {SEED})"
    prog, ops, compiled = training_step_program(config, *dims)
    assert (_wide_loads(prog, config) > 0) == (config.dram.dma == "wide"), where
    layers = step_tensors(config.array.dtype, np.random.default_rng(SEED), *dims)
    values = {}
    for op in ops:
        values[f"{op.name}.A"], values[f"{op.name}.B"] = op_operands(op, layers)
    model, got, dram = run_everywhere(config, prog, compiled, values, sim, "training-step",
                                      where)
    ref = torch_step(layers)
    for op in ops:
        name = f"{op.name}.C"
        rtl_c = prog.tensors[name].read(dram.copy())
        np.testing.assert_array_equal(rtl_c.view(np.uint32), model.outputs[name].view(np.uint32),
                                      err_msg=f"{where}: {name} RTL vs hwsim")
        a, b = values[f"{op.name}.A"], values[f"{op.name}.B"]
        if config.array.dtype == "int8":
            mm = torch.from_numpy(a).int() @ torch.from_numpy(b).int()
            np.testing.assert_array_equal(model.outputs[name], mm.numpy(),
                                          err_msg=f"{where}: {name} hwsim vs torch int32")
            np.testing.assert_array_equal(model.outputs[name], ref[op.name],
                                          err_msg=f"{where}: {name} hwsim vs autograd")
        else:
            err = np.abs(model.outputs[name].astype(np.float64) - ref[op.name])
            assert (err <= matmul_error_bound(a, b) + 1e-30).all(), \
                f"{where}: {name} hwsim vs autograd beyond the fp32 accumulation bound"
    assert got["accept"] == model.stats.accept_cycles, f"{where}: accept cycles differ"
    ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    assert ends == model.stats.retire_cycles, f"{where}: finish cycles differ"
    assert max(ends) + 1 == model.stats.cycles, where


@pytest.mark.parametrize("dataflow,config_name", [("os", "tiny"), ("ws", "tiny"),
                                                ("ws", "tiny_wide")])
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_bdwp_training_step_with_sparse_tiles_matches_hwsim_and_torch(sim, dataflow,
                                                                      config_name):
    """BDWP 2:4 on tiny: forward and backward-data GEMMs are N:M tiles (weights pruned along
    their reduction axis, loaded compressed with their indices), weight gradients dense; every
    op mapped output- or weight-stationary; with the wide DMA too."""
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = _config(config_name)
    dims = STEPS[config_name]
    where = f"{sim}/{config_name} BDWP 2:4 {dataflow} training step {dims} (seed {SEED})"
    prog, ops, compiled = training_step_program(config, *dims, method="bdwp", pattern="2:4",
                                                dataflows=(dataflow,))
    assert (_wide_loads(prog, config) > 0) == (config.dram.dma == "wide"), where
    assert sum(op.sparsity is not None for op in ops) == 4, where
    assert {c.dataflow for c in prog.commands if c.name == "GEMM"} == \
        {0 if dataflow == "os" else 1}, where
    layers = step_tensors("int8", np.random.default_rng(SEED), *dims)
    values, dense_b = step_values(prog, ops, layers, config)
    # one run directory per dataflow: xdist runs the two variants at the same time
    model, got, dram = run_everywhere(config, prog, compiled, values, sim,
                                      f"bdwp-step-{dataflow}-{config_name}", where)
    for op in ops:
        name = f"{op.name}.C"
        rtl_c = prog.tensors[name].read(dram.copy())
        np.testing.assert_array_equal(rtl_c, model.outputs[name],
                                      err_msg=f"{where}: {name} RTL vs hwsim")
        a = op_operands(op, layers)[0]
        b = dense_b[op.name][:a.shape[1]]
        mm = torch.from_numpy(a).int() @ torch.from_numpy(b).int()
        np.testing.assert_array_equal(model.outputs[name], mm.numpy(),
                                      err_msg=f"{where}: {name} hwsim vs torch (pruned B)")
    assert got["accept"] == model.stats.accept_cycles, f"{where}: accept cycles differ"
    ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    assert ends == model.stats.retire_cycles, f"{where}: finish cycles differ"
