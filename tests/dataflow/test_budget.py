"""Bounded work (issue 18): programs are sized from their mappings before anything is built, and
work beyond a budget is refused in one line naming the option that allows it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow import CompileOptions
from dataflow.compiler import compile
from dataflow.lower.emitter import Alloc
from dataflow.lower.gemm import (
    BudgetError,
    compile_gemm,
    estimate_commands,
    gemm_blocks,
    gemm_steps,
    gemm_tensors,
    gemm_tiling,
    simulate_gemm,
)
from dataflow.mapping import OpShape
from dataflow.workload import extract
from dataflow.zoo import get_model
from hwsim.config import load_config
from reports.cli import main


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 700),
       cfg=st.sampled_from(["tiny", "small8", "vcu1525"]), df=st.sampled_from(["os", "ws"]),
       sparse=st.booleans())
def test_the_estimate_counts_the_gemm_steps_exactly_and_the_commands_closely(m, n, k, cfg, df,
                                                                              sparse):
    c = load_config(cfg)
    nm = (2, 8) if sparse and c.supports_pattern((2, 8)) else None
    shape = OpShape(m, n, k, nm)
    mp = gemm_tiling(m, n, k, c, df, nm)
    steps = sum(len(b) for b in gemm_blocks(shape, mp, c, gemm_tensors(shape, df, c, Alloc())))
    assert gemm_steps(shape, mp, c) == steps
    commands = len(compile_gemm(m, n, k, c, dataflow=df, sparsity=nm).table)
    assert 0.7 * commands <= estimate_commands(shape, mp, c) <= commands


def test_a_gemm_over_budget_is_refused_before_it_is_built():
    c = load_config("tiny")
    est = estimate_commands(OpShape(256, 1_000_000, 8), gemm_tiling(256, 1_000_000, 8, c, "ws"),
                            c)
    assert est > 4_000_000
    with pytest.raises(BudgetError, match=r"pass --max-commands \d+ \(or 0, no limit\)"):
        compile_gemm(256, 1_000_000, 8, c, dataflow="ws")
    small = compile_gemm(64, 64, 64, c, dataflow="ws", max_commands=0)  # 0: no limit
    with pytest.raises(BudgetError, match="budget is 0.0 M"):
        compile_gemm(64, 64, 64, c, dataflow="ws", max_commands=len(small.table) // 2)
    with pytest.raises(BudgetError, match="use --mode timing, or pass --max-macs 0"):
        simulate_gemm(2048, 2048, 1024, c, mode="functional")
    # timing mode extrapolates instead (tests/dataflow/test_extrapolate.py), unless told not to
    with pytest.raises(BudgetError, match=r"pass --max-commands \d+"):
        simulate_gemm(256, 1_000_000, 8, c, extrapolate=False)
    assert simulate_gemm(256, 1_000_000, 8, c).extrapolated["exact"]


def test_a_workload_over_budget_is_refused_before_it_is_emitted():
    model, x = get_model("pythia70m", batch=2, device="meta", seq_len=2048)
    wl = extract(model, x, method="dense")
    with pytest.raises(BudgetError, match="workload 'GPT' on config 'tiny'"):
        compile(wl, load_config("tiny"))
    with pytest.raises(BudgetError, match="budget is 0.0 M"):
        compile(wl, load_config("vcu1525"), CompileOptions(max_commands=1000))


@pytest.mark.parametrize("argv, message", [
    (["simulate-gemm", "256", "1000000", "8", "--config", "tiny", "--no-extrapolate"],
     "--max-commands"),
    (["simulate-gemm", "4096", "4096", "4096", "--mode", "functional"], "--max-macs 0"),
    (["simulate", "--model", "pythia70m", "--config", "tiny", "--batch", "8"], "--max-commands"),
])
def test_the_cli_refuses_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_cli_budget_can_be_raised(capsys):
    assert main(["simulate-gemm", "64", "64", "64", "--max-commands", "0", "--json"]) == 0
    assert main(["simulate-gemm", "64", "64", "64", "--max-commands", "10",
                 "--no-extrapolate"]) == 2
    assert "budget is 0.0 M" in capsys.readouterr().err
