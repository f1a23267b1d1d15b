"""The SAT report's tables: speedups from real simulations, rendered with their verdicts."""

from __future__ import annotations

import pandas as pd
import pytest

from algorithms.flops import ideal_speedup, training_macs
from dataflow.simulate import simulate_model
from dataflow.workload import required_skip
from dataflow.zoo import get_model
from reports.sat_report import TARGET, _markdown, policy_table, sat_table


@pytest.fixture(scope="module")
def resnet18_policy():
    dense = simulate_model("resnet18", "dense", None, "vcu1525", 1)
    table = policy_table("vcu1525", {"resnet18": dense.totals["cycles"]}, models=["resnet18"])
    return dense, table


def test_policy_table_keeps_only_the_stem_dense_and_matches_simulate_model(resnet18_policy):
    dense, table = resnet18_policy
    row = table.iloc[0]
    assert row.dense_layers == "conv1"
    r = simulate_model("resnet18", "bdwp", "2:8", "vcu1525", 1, skip=("conv1",),
                       compare_dense=False)
    assert row.speedup == pytest.approx(dense.totals["cycles"] / r.totals["cycles"])
    # the bound is algorithms.flops' over the same layers
    model, x = get_model("resnet18", device="meta")
    macs = training_macs(model, x, "bdwp", "2:8", skip=required_skip(model, "bdwp", "2:8"))
    assert row.ideal == pytest.approx(ideal_speedup(macs))
    assert 1.0 < row.speedup < row.ideal < 2.0


def test_markdown_states_both_layer_policies_and_their_verdicts(resnet18_policy):
    _, policy = resnet18_policy
    row = policy.iloc[0]
    df = sat_table("vcu1525", models=["resnet18"], patterns=("2:8",), methods=("bdwp",))
    main = df.iloc[0]
    assert main.speedup < row.speedup  # the sparse classifier only adds
    ceiling = pd.DataFrame([{"model": "resnet18", "gemm_speedup": 1.75, "ideal": 1.87}])
    md = _markdown(df, ceiling, pd.DataFrame(), pd.DataFrame(), "t", "notes", "vcu1525", 1,
                   policy)
    verdict = "met" if main.speedup >= TARGET else "missed"
    assert f"Mean {main.speedup:.3f}x against {TARGET}x: **{verdict}**." in md
    assert "### Only the layers that cannot be N:M kept dense" in md
    verdict = "met" if row.speedup >= TARGET else "missed"
    assert f"Mean {row.speedup:.3f}x against {TARGET}x: **{verdict}** with this layer policy" in md
    assert f"| resnet18 | {row.speedup:.3f}x | {row.ideal:.3f}x |" in md and "| conv1 |" in md


def test_burst_dma_section_sets_the_rtls_dma_beside_a_burst_dma(resnet18_policy):
    """The policy rows with the entry DMA and a burst DMA (model only) beside the DMA as built
    (the wide one): a burst DMA moves the same commands faster, so the step and its speedup can
    only gain at batch 1, and the entry DMA moves them slower."""
    from hwsim.config import preset

    _, policy = resnet18_policy
    entry_cfg = preset("vcu1525").replace(dram__dma="entry", name="vcu1525-entry-dma")
    entry = policy_table(entry_cfg, None, models=["resnet18"])
    assert entry.iloc[0].speedup < policy.iloc[0].speedup
    burst_cfg = preset("vcu1525").replace(dram__dma="burst", name="vcu1525-burst-dma")
    burst = policy_table(burst_cfg, None, models=["resnet18"])
    dense = simulate_model("resnet18", "dense", None, burst_cfg, 1)
    assert burst.iloc[0].speedup == pytest.approx(
        dense.totals["cycles"] / simulate_model("resnet18", "bdwp", "2:8", burst_cfg, 1,
                                                skip=("conv1",),
                                                compare_dense=False).totals["cycles"])
    assert burst.iloc[0].ideal == policy.iloc[0].ideal
    assert burst.iloc[0].speedup > policy.iloc[0].speedup
    df = sat_table("vcu1525", models=["resnet18"], patterns=("2:8",), methods=("bdwp",))
    md = _markdown(df, pd.DataFrame(columns=["model", "gemm_speedup", "ideal"]), pd.DataFrame(),
                   pd.DataFrame(), "t", "notes", "vcu1525", 1, policy, burst=burst,
                   entry=entry)
    assert "### The DMA as built against an entry DMA and a burst DMA" in md
    assert "`dram.dma: wide`" in md
    p, b = policy.iloc[0], burst.iloc[0]
    assert (f"| resnet18 | {entry.iloc[0].speedup:.3f}x | {p.speedup:.3f}x | "
            f"{b.speedup:.3f}x | {b.ideal:.3f}x | {p.speedup / b.ideal:.1%} | "
            f"{b.share_of_bound:.1%} |") in md


def test_leave_one_out_turns_each_switch_off_alone_and_renders(resnet18_policy):
    from dataflow.optimizations import CompileOptions
    from reports.sat_report import SWITCHES, leave_one_out

    loo = leave_one_out("vcu1525", models=["resnet18"])
    row = loo.iloc[0]
    r = simulate_model("resnet18", "bdwp", "2:8", "vcu1525", 1,
                       CompileOptions(offline_schedule=False))
    assert row.no_offline_schedule == pytest.approx(r.speedup)
    assert row["all"] == pytest.approx(simulate_model("resnet18", "bdwp", "2:8", "vcu1525",
                                                       1).speedup)
    # the offline schedule is the switch that matters most (the report's ablation)
    assert row["all"] > row.no_offline_schedule
    _, policy = resnet18_policy
    df = sat_table("vcu1525", models=["resnet18"], patterns=("2:8",), methods=("bdwp",))
    md = _markdown(df, pd.DataFrame(columns=["model", "gemm_speedup", "ideal"]), pd.DataFrame(),
                   pd.DataFrame(), "t", "notes", "vcu1525", 1, policy, loo)
    assert "## Each optimisation on every model" in md
    for sw in SWITCHES:
        assert f"without {sw}" in md
    change = row["all"] / row.no_offline_schedule - 1
    assert f"{row.no_offline_schedule:.3f}x ({change:+.1%})" in md
