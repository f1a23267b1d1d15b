"""The demo: the performance sections checked for content (relations, not pinned numbers: the
compiler's cycles move), and end to end with the RTL (Icarus for a quick build)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from hwsim import preset
from reports import demo
from reports.demo import SECTIONS, DemoSection, SectionResult, figure_files, run_demo

BUILD = Path(__file__).resolve().parents[2] / "build"  # the RTL tests' builds, shared


@pytest.fixture(scope="module")
def performance(tmp_path_factory):
    """The demo without its RTL section: the report and its directory."""
    root = tmp_path_factory.mktemp("demo")
    sections = [s for s in SECTIONS if s.run is not demo.fidelity_section]
    report = run_demo(root, progress=False, sections=sections)
    return report, report.parent


def test_sections_list_fidelity_first_and_the_performance_sections():
    runs = [s.run for s in SECTIONS]
    assert runs[0] is demo.fidelity_section
    for fn in (demo.training_values_section, demo.training_step_section,
               demo.sparse_gemm_section,
               demo.memory_layer_section, demo.gemm_sweep_section):
        assert fn in runs


def test_training_step_values_are_within_their_bound_of_autograd(performance):
    report, d = performance
    tab = pd.read_csv(d / "training_values.csv")
    # every parameter's gradient and updated weight, each within the stated bound
    assert set(tab.kind) == {"grad", "weight"} and len(tab) % 2 == 0 and len(tab) > 20
    assert (tab.rel_error <= demo.VALUES_BOUND).all() and (tab.rel_error > 0).any()
    text = report.read_text()
    assert "A value left its bound" not in text and "on the sparse path" in text


def test_bdwp_step_speedup_is_above_one_and_below_its_bound(performance):
    report, d = performance
    row = pd.read_csv(d / "step_speedup.csv").iloc[0]
    assert (row.model, row.method, row.pattern) == demo.STEP[:3]
    assert 1 < row.speedup <= row.bound
    assert row.speedup == pytest.approx(row.dense_cycles / row.cycles)
    assert row.share_of_bound == pytest.approx(row.speedup / row.bound)
    text = report.read_text()
    assert f"**{row.speedup:.3f}x** | {row.bound:.3f}x" in text


def test_critical_path_split_sums_to_each_step_and_excesses_to_the_gap(performance):
    _, d = performance
    row = pd.read_csv(d / "step_speedup.csv").iloc[0]
    gap = pd.read_csv(d / "step_critical_path.csv")
    assert gap.sparse_cycles.sum() == row.cycles
    assert gap.dense_cycles.sum() == row.dense_cycles
    assert gap.excess.sum() == pytest.approx(row.cycles - row.dense_cycles / row.bound)
    assert gap.share_of_gap.sum() == pytest.approx(1.0)
    assert "GEMM tiles" in set(gap.part)


def test_gap_table_excess_is_zero_at_the_bound():
    dense = {"cycles": 100, "path_gemm_dense": 80, "path_vector": 20}
    at_bound = {"cycles": 50, "path_gemm_sparse": 40, "path_vector": 10}
    gap = demo.gap_table(at_bound, dense, 2.0)
    assert list(gap.part) == ["GEMM tiles", "vector passes"]
    assert np.allclose(gap.excess, 0) and (gap.share_of_gap == 0).all()


def test_energy_breakdown_sums_to_the_total(performance):
    _, d = performance
    e = pd.read_csv(d / "step_energy.csv").set_index("step")
    parts = e.drop(columns=["total", "reported_total"])
    assert np.allclose(parts.sum(axis=1), e.total, rtol=1e-9)
    assert np.allclose(e.total, e.reported_total, rtol=1e-9)
    assert list(e.index) == ["dense", "BDWP 2:8"]
    assert (parts["array"].iloc[1] < parts["array"].iloc[0])  # fewer MACs, less array energy


def test_roofline_points_lie_under_the_roofs(performance):
    _, d = performance
    r = pd.read_csv(d / "step_roofline.csv")
    assert set(r.step) == {"dense", "BDWP 2:8"} and len(r) > 10
    assert (r.attained <= r.roof * (1 + 1e-9)).all()
    cfg = preset(demo.CONFIG)
    peak, bw = cfg.peak_macs_per_cycle, cfg.dram_bytes_per_cycle
    assert np.allclose(r.roof, np.minimum(peak, r.intensity * bw))
    assert (r.memory_bound == (r.intensity < peak / bw)).all()


def test_figures_exist_and_show_their_components_and_runs(performance):
    report, d = performance
    figs = figure_files(report)
    assert [f.name for f in figs] == ["step_energy.png", "step_roofline.png",
                                      "gemm_utilisation.png"]
    for f in figs:
        img = imread(f)
        assert img.shape[0] > 300 and img.shape[1] > 500 and img.std() > 0.05, f
    e = pd.read_csv(d / "step_energy.csv").set_index("step")
    svg = (d / "step_energy.svg").read_text()
    for comp in e.columns.drop(["total", "reported_total"]):
        assert (f'id="{comp}"' in svg) == bool(e[comp].any()), comp
    r = pd.read_csv(d / "step_roofline.csv")
    svg = (d / "step_roofline.svg").read_text()
    for step, sub in r.groupby("step"):
        assert (f'id="{step}:m"' in svg) == bool(sub.memory_bound.any())
        assert (f'id="{step}:c"' in svg) == bool((~sub.memory_bound).any())
    html = (d / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figs)


def test_sparse_gemms_beat_dense_within_their_bound(performance):
    """No sparse GEMM beats its bound; each GEMM's best sparse run beats dense, and 2:8 beats it
    in output-stationary. A sparse GEMM may lose to dense where the RTL's DMA (an entry a
    cycle) bounds it: the report then names the rows."""
    report, d = performance
    g = pd.read_csv(d / "sparse_gemm.csv")
    assert set(g.pattern) == {"dense", "2:4", "2:8"}
    dense = g[g.pattern == "dense"]
    assert (dense.speedup == 1).all() and (dense.energy_vs_dense == 1).all()
    sparse = g[g.pattern != "dense"]
    assert (sparse.speedup <= sparse.bound).all()
    assert (sparse.groupby("gemm").speedup.max() > 1.4).all()
    assert (sparse[(sparse.pattern == "2:8") & (sparse.dataflow == "os")].speedup > 1).all()
    assert (sparse.energy_vs_dense < 1).all()
    assert set(sparse.bound) == {2.0, 4.0}
    for r in sparse[sparse.speedup < 1].itertuples():
        assert f"{r.gemm} {r.dataflow} {r.pattern}" in report.read_text()


def test_memoryformer_layer_time_goes_to_the_lookup_engine(performance):
    report, d = performance
    t = pd.read_csv(d / "memory_layer.csv").set_index("phase")
    assert list(t.index) == ["forward", "train"]
    assert t.cycles["train"] > t.cycles["forward"] > 0
    parts = t[[c for c in t.columns if c.startswith("path_")]].sum(axis=1)
    assert (parts == t.cycles).all()
    assert (t.path_lookup > t.cycles / 2).all()
    energy = t[[c for c in t.columns if c.startswith("energy_") and c != "energy_uJ"]]
    assert np.allclose(energy.sum(axis=1), t.energy_uJ)
    cmds = pd.read_csv(d / "memory_layer_commands.csv")
    assert {"HASH: rows and chunk weights", "GATHER: weighted row sums",
            "SCATTER: table gradient"} <= set(cmds.command)
    assert cmds.busy.iloc[0] == cmds.busy.max()
    assert re.search(r"^## \d\. A MemoryFormer layer on the lookup engine$", report.read_text(),
                     re.M)


def test_a_section_is_one_more_entry_and_failed_checks_are_reported(tmp_path):
    def extra(ctx):
        (ctx.work / "x.txt").write_text("x")
        return SectionResult(["hello"], {"extra": pd.DataFrame({"a": [1]})}, ok=False)

    report = run_demo(tmp_path, progress=False, sections=[DemoSection("Extra", extra)])
    text = report.read_text()
    assert "## 1. Extra\n\nhello" in text and "**Section 1 failed its checks.**" in text
    assert (report.parent / "extra.csv").exists() and (report.parent / "report.html").exists()
    assert not list(tmp_path.glob(".demo-*.partial"))


@pytest.mark.cocotb
def test_demo_writes_a_complete_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = run_demo(tmp_path / "runs", sim="icarus", progress=False, build_root=BUILD,
                      quick=True)
    assert report.exists() and report.name == "report.md"
    text = report.read_text()
    assert "**All equal: yes**" in text and "failed its checks" not in text
    headings = re.findall(r"^## \d+\. (.*)$", text, re.M)
    assert headings == [s.title for s in SECTIONS]
    fid = pd.read_csv(report.parent / "fidelity.csv")
    assert fid["cycles_equal"].all() and fid["values_equal"].all()
    assert (fid["rtl_cycles"] == fid["hwsim_cycles"]).all() and len(fid) == 2
    lookup = pd.read_csv(report.parent / "fidelity_lookup.csv")
    assert len(lookup) == 1 and lookup["cycles_equal"].all() and lookup["values_equal"].all()
    step = pd.read_csv(report.parent / "fidelity_lookup_step.csv")
    assert len(step) == 1 and step["cycles_equal"].all() and step["values_equal"].all()
    assert step["worst_error_over_bound"].iloc[0] <= 1 and step["commands"].iloc[0] > 7
    sweep = pd.read_csv(report.parent / "gemm_sweep.csv")
    assert ((sweep["utilisation"] > 0) & (sweep["utilisation"] <= 1)).all()
    assert (report.parent / "gemm_utilisation.png").stat().st_size > 10_000
    for f in figure_files(report):
        assert f.exists()
    assert not list((tmp_path / "runs").glob(".demo-*.partial"))
