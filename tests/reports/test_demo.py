"""The demo end to end (Icarus for a quick build): a complete report with equal fidelity rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reports.demo import run_demo

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"  # the RTL tests' builds, shared


def test_demo_writes_a_complete_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = run_demo(tmp_path / "runs", sim="icarus", progress=False, build_root=BUILD,
                      quick=True)
    assert report.exists() and report.name == "report.md"
    text = report.read_text()
    assert "**All equal: yes**" in text
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
    assert not list((tmp_path / "runs").glob(".demo-*.partial"))
