"""dataflow.compile: whole workloads to programs that hwsim runs."""

import numpy as np
import pytest
import torch
from torch import nn

import hwsim
from dataflow import CompileError, CompileOptions, MappingError, compile, extract, simulate_program
from dataflow.workload import Op, Workload
from hwsim.config import preset

GEMM_ONLY = CompileOptions(vector_ops=False)


def small_mlp():
    return nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 8))


def small_cnn():
    return nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 3 * 3, 16))


def mlp_workload(method="dense", pattern=None):
    torch.manual_seed(0)
    return extract(small_mlp(), torch.randn(4, 32), method=method, pattern=pattern)


@pytest.mark.parametrize("cfg", ["tiny", "vcu1525"])
def test_dense_mlp_step_runs_in_hwsim_and_matches_fast_path(cfg):
    config = preset(cfg)
    prog = compile(mlp_workload(), config, GEMM_ONLY)
    res = hwsim.run(prog, config, "timing")  # race checks included
    assert res.stats.cycles == simulate_program(prog, config).cycles


@pytest.mark.parametrize("cfg", ["tiny", "small8", "vcu1525"])
@pytest.mark.parametrize("method,pattern", [("bdwp", "2:8"), ("bdwp", "2:4"), ("srste", "1:8")])
def test_sparse_mlp_step_runs_in_hwsim_and_matches_fast_path(cfg, method, pattern):
    """N:M tiles are modelled exactly now: hwsim.run accepts the compiler's sparse programs
    (buffer capacities, banked-ACT alignment, races) and times them as the fast path does."""
    config = preset(cfg)
    prog = compile(mlp_workload(method, pattern), config, GEMM_ONLY)
    assert any(c.name == "GEMM" and c.sparse for c in prog.commands)
    res = hwsim.run(prog, config, "timing")
    assert res.stats.cycles == simulate_program(prog, config).cycles


def test_dense_cnn_step_runs_in_hwsim_with_every_option_mix():
    config = preset("tiny")
    wl = extract(small_cnn(), torch.randn(1, 8, 8, 8))
    for inter in (False, True):
        for off in (False, True):
            opts = CompileOptions(vector_ops=False, interleave=inter, offline_schedule=off)
            prog = compile(wl, config, opts)
            assert hwsim.run(prog, config, "timing").stats.cycles == \
                simulate_program(prog, config).cycles


@pytest.mark.parametrize("method,pattern", [("dense", None), ("bdwp", "2:4"), ("srste", "2:8")])
def test_compiled_macs_equal_extracted_macs(method, pattern):
    wl = extract(small_cnn(), torch.randn(2, 8, 8, 8), method=method, pattern=pattern,
                 skip=("0",))
    prog = compile(wl, preset("vcu1525"))
    assert int(prog.useful_macs.sum()) == sum(op.macs for op in wl.gemms())
    assert simulate_program(prog).cycles > 0


def test_bdwp_step_with_vector_ops_schedules_without_deadlock():
    wl = mlp_workload("bdwp", "2:8")
    for pre in (False, True):
        for off in (False, True):
            prog = compile(wl, preset("vcu1525"),
                           CompileOptions(pregenerate=pre, offline_schedule=off))
            ops = set(prog.table[:, 0].tolist())
            assert int(hwsim.isa.Opcode.PRUNE) in ops and int(hwsim.isa.Opcode.UPDATE) in ops
            assert simulate_program(prog).cycles > 0


def test_unsupported_pattern_refused_before_work():
    config = preset("tiny").replace(array__patterns=("2:4",))
    with pytest.raises(CompileError, match=r"pattern 2:8 .*config 'tiny'"):
        compile(mlp_workload("bdwp", "2:8"), config)


def test_op_that_fits_no_mapping_is_named():
    big = 9_000_000
    op = Op("huge.fwd", "huge", "gemm", "fwd", "linear", m=big, n=64, k=big)
    wl = Workload((op,), "m", "dense", None, True)
    with pytest.raises(MappingError, match="huge.fwd in module huge"):
        compile(wl, preset("vcu1525"), GEMM_ONLY)


def test_functional_dense_int8_gemm_workload_equals_numpy():
    config = preset("tiny")
    wl = Workload((Op("g.fwd", "g", "gemm", "fwd", "linear", m=10, n=7, k=13),
                   Op("h.fwd", "h", "gemm", "fwd", "linear", m=5, n=9, k=6)),
                  "two", "dense", None, False)
    prog = compile(wl, config, GEMM_ONLY)
    rng = np.random.default_rng(1)
    vals = {}
    for name in ("g.fwd", "h.fwd"):
        a_ref, b_ref = prog.tensors[f"{name}.A"], prog.tensors[f"{name}.B"]
        vals[f"{name}.A"] = rng.integers(-128, 128, a_ref.shape)
        vals[f"{name}.B"] = rng.integers(-128, 128, b_ref.shape)
    prog.inputs = tuple(vals)
    prog.outputs = ("g.fwd.C", "h.fwd.C")
    out = hwsim.run(prog, config, "functional", inputs=vals).outputs
    for name in ("g.fwd", "h.fwd"):
        np.testing.assert_array_equal(out[f"{name}.C"], vals[f"{name}.A"] @ vals[f"{name}.B"])
