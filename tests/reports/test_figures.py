"""The report figures, checked for what they show: energy segments that sum to the run's total,
roofline points under both roofs with the memory-bound mark where the intensity is below the
ridge, Pareto fronts that are non-dominated and dominate the rest, utilisation that sums to
busy cycles, HTML pages that embed every image their Markdown references."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dataflow.simulate import simulate_model
from hwsim.config import load_config
from hwsim.energy import SRAM_COMPONENTS
from reports import figures as fg
from reports.html import image_refs, sweep_report, write_html
from reports.store import read_results
from reports.sweep import load_spec, parse_spec, run_sweep

TINY_LM = {"seq_len": 8, "n_layers": 1, "vocab_size": 64, "d_model": 32, "n_heads": 2}
SYNTH = Path(__file__).resolve().parents[2] / "reports" / "synth" / "vcu1525_synth_report.json"


@pytest.fixture(scope="module")
def runs():
    """A small LM's BDWP step and its dense comparison on tiny (compute side of the ridge) and
    on vcu1525 (memory side): ``config -> (result, [(program, stats), ...])``."""
    out = {}
    for name in ("tiny", "vcu1525"):
        with fg.capture_runs() as captured:
            res = simulate_model("pythia70m", "bdwp", "2:4", name, 1, **TINY_LM)
        out[name] = (res, captured)
    return out


def _bars(fig):
    """Per bar (x position): the segments' (bottom, height) in drawing order."""
    bars = {}
    for p in fig.axes[0].patches:
        bars.setdefault(round(p.get_x() + p.get_width() / 2, 6), []).append(
            (p.get_y(), p.get_height(), p.get_gid()))
    return [bars[x] for x in sorted(bars)]


def test_energy_bar_segments_stack_to_each_runs_total(runs, tmp_path):
    res, captured = runs["tiny"]
    prog, dense_stats = captured[1]
    assert captured[0][1].cycles == res.totals["cycles"]
    assert dense_stats.cycles == res.dense_cycles  # the capture holds both runs, in order
    dense = {"energy_pj": dense_stats.energy_total_pj,
             **{f"energy_{k}_pj": v for k, v in dense_stats.energy_pj.items()}}
    fig = fg.plot_energy({"step": {"dense": dense, "bdwp 2:4": res.totals}},
                         tmp_path / "e.png", unit="uJ")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    for segs, total in zip(_bars(fig), (dense["energy_pj"], res.totals["energy_pj"]),
                           strict=True):
        top = 0.0
        for bottom, height, _ in segs:
            assert bottom == pytest.approx(top)  # stacked, no gaps
            top = bottom + height
        assert top * 1e6 == pytest.approx(total, rel=1e-9)
        # SRAM drawn per buffer: its parts are segments, the total is not drawn again
        assert {g for *_, g in segs} <= {"array", *SRAM_COMPONENTS, "dram", "sore", "vector",
                                         "static"}
    bdwp = {g: h * 1e6 for _, h, g in _bars(fig)[1]}
    # the BDWP step touches every buffer: ACT, WGT, ACC, IDX (N:M indices), VEC (optimizer)
    assert set(bdwp) >= {"sram_act", "sram_wgt", "sram_acc", "sram_idx", "sram_vec"}
    assert {g: h for _, h, g in _bars(fig)[0]}["sram_idx"] == 0.0  # dense: no index traffic
    assert sum(bdwp[c] for c in SRAM_COMPONENTS if c in bdwp) == pytest.approx(
        res.totals["energy_sram_pj"], rel=1e-9)
    for c in SRAM_COMPONENTS:
        assert bdwp.get(c, 0.0) == pytest.approx(res.totals[f"energy_{c}_pj"], rel=1e-9)
    table = fig.energy_tables["step"]
    assert table.loc["bdwp 2:4", "total"] == pytest.approx(res.totals["energy_pj"], rel=1e-12)
    assert list(table.columns[:6]) == ["array", "sram_act", "sram_wgt", "sram_acc", "sram_idx",
                                       "sram_vec"]
    assert "sram" not in table.columns  # the parts cover it
    assert table.loc["bdwp 2:4", list(SRAM_COMPONENTS)].sum() == pytest.approx(
        res.totals["energy_sram_pj"], rel=1e-12)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:6] == ["array", "sram ACT", "sram WGT", "sram ACC", "sram IDX", "sram VEC"]
    # the BDWP step does half the array's MACs at 2:4 on its sparse passes: less array energy
    assert table.loc["bdwp 2:4", "array"] < table.loc["dense", "array"]


def test_energy_without_buffer_parts_draws_sram_whole_and_a_remainder_beside_parts():
    old = {"energy_pj": 10.0, "energy_array_pj": 4.0, "energy_sram_pj": 5.0,
           "energy_dram_pj": 1.0, **{f"energy_{c}_pj": np.nan for c in SRAM_COMPONENTS}}
    assert fg.energy_components(old) == {"array": 4.0, "sram": 5.0, "dram": 1.0}
    new = {**old, "energy_sram_act_pj": 1.0, "energy_sram_acc_pj": 4.0,
           **{f"energy_{c}_pj": 0.0 for c in SRAM_COMPONENTS[3:]}, "energy_sram_wgt_pj": 0.0}
    got = fg.energy_components(new)
    assert "sram" not in got and got["sram_act"] == 1.0 and got["sram_acc"] == 4.0
    assert sum(got.values()) == 10.0
    # SRAM traffic filed with no buffer named stays as the sram segment's remainder
    got = fg.energy_components({**new, "energy_sram_pj": 6.0, "energy_pj": 11.0})
    assert got["sram"] == pytest.approx(1.0) and sum(got.values()) == pytest.approx(11.0)
    fig = fg.plot_energy({"p": {"old": old, "new": new}}, unit="pJ")
    table = fig.energy_tables["p"]
    assert list(table.columns) == ["array", *SRAM_COMPONENTS, "sram", "dram", "total"]
    assert table["total"].tolist() == [10.0, 10.0]
    assert table.loc["old", "sram"] == 5.0 and table.loc["new", "sram"] == 0.0
    assert [fg.component_label(c) for c in ("sram_idx", "sram_hot_rows", "tier_ddr")] == [
        "sram IDX", "sram hot rows", "tier ddr"]


def test_roofline_points_lie_under_both_roofs_and_mark_memory_bound(runs, tmp_path):
    marks = set()
    for name, (res, captured) in runs.items():
        cfg = load_config(name)
        roofs = {"bdwp": fg.roofline(*captured[0], cfg), "dense": fg.roofline(*captured[1], cfg)}
        for df in roofs.values():
            peak, bw = cfg.peak_macs_per_cycle, cfg.dram_bytes_per_cycle
            assert df.attrs["ridge"] == pytest.approx(peak / bw)
            assert len(df) and (df.attained > 0).all()
            bound = np.minimum(peak, df.intensity * bw)
            assert (df.attained <= bound * (1 + 1e-9)).all()
            assert (df.memory_bound == (df.intensity < peak / bw)).all()
            marks |= set(df.memory_bound)
        assert roofs["bdwp"].macs.sum() == res.totals["macs"]
        assert (roofs["bdwp"].dram_bytes.to_numpy() > 0).all()
        fig = fg.plot_roofline(roofs, tmp_path / f"{name}.png")
        clock = cfg.clock_mhz * 1e6 / 1e9
        for coll in fig.axes[0].collections:
            label, kind = coll.get_gid().split(":")
            df = roofs[label]
            sel = df[df.memory_bound == (kind == "m")]
            pts = coll.get_offsets()
            assert len(pts) == len(sel)
            np.testing.assert_allclose(pts[:, 0], sel.intensity)
            np.testing.assert_allclose(pts[:, 1], sel.attained * clock)
    assert marks == {True, False}  # both sides of the ridge were checked


def _dominates(a, b):
    return (a <= b).all() and (a < b).any()


def test_pareto_front_is_non_dominated_and_dominates_the_rest(tmp_path):
    rng = np.random.default_rng(3)
    n = 60
    df = pd.DataFrame({"workload": np.repeat(["a", "b"], n // 2),
                       "seconds": rng.uniform(1, 2, n), "energy_pj": rng.uniform(1e9, 2e9, n)})
    df.loc[5, ["seconds", "energy_pj"]] = df.loc[4, ["seconds", "energy_pj"]].to_numpy()  # a tie
    df.loc[7, "energy_pj"] = np.nan  # a failed point
    fig = fg.plot_pareto(df, tmp_path / "p.png")
    for g, sub in df.groupby("workload"):
        front = fg.pareto_front(sub, "seconds", "energy_pj")
        assert sorted(fig.fronts[g]) == sorted(sub.index[front])
        pts = sub[["seconds", "energy_pj"]].to_numpy()
        valid = ~np.isnan(pts).any(axis=1)
        f = pts[front.to_numpy()]
        for p in f:
            assert not any(_dominates(q, p) for q in pts[valid])
        for p, on in zip(pts[valid], front.to_numpy()[valid], strict=True):
            if not on:
                assert any(_dominates(q, p) for q in f)
        assert not front[sub["energy_pj"].isna()].any()
    # the drawn front is the computed one, sorted by latency
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_gid() == "front")
    a = df[df.workload == "a"].loc[fig.fronts["a"]].sort_values("seconds")
    np.testing.assert_allclose(line.get_xdata(), a.seconds * 1e3)
    np.testing.assert_allclose(line.get_ydata(), a.energy_pj * 1e-9)
    assert 4 in fig.fronts["a"] or 5 not in fig.fronts["a"]
    assert (4 in fig.fronts["a"]) == (5 in fig.fronts["a"])  # equal points: both or neither


def test_area_from_the_synthesis_fits_or_a_reason():
    synth = json.loads(SYNTH.read_text())
    df = pd.DataFrame({"array.rows": [8, 16], "array.cols": [8, 16], "array.dtype": "fp16",
                       "sore.lanes": [2, 4], "vector.lanes": [4, 8]})
    luts, why = fg.area_luts(df, synth)
    a, s, v = synth["fit"]["LUT"], *(synth["engine_estimates"][k]["fit"]["LUT"]
                                      for k in ("sore", "vector"))
    expect = [a["a"] + a["b"] * 64 + s["a"] + s["b"] * 2 + v["a"] + v["b"] * 4,
              a["a"] + a["b"] * 256 + s["a"] + s["b"] * 4 + v["a"] + v["b"] * 8]
    np.testing.assert_allclose(luts, expect)
    assert "array" in why and "SORE" in why
    luts, why = fg.area_luts(df.assign(**{"array.dtype": "int8"}), synth)
    assert luts is None and "int8" in why


def test_utilisation_bins_sum_to_each_units_busy_cycles(runs, tmp_path):
    prog, stats = runs["tiny"][1][0]
    util = fg.schedule_utilisation(prog, stats, bins=37)
    assert len(util) == 37
    width = util.attrs["width"]
    assert width * 37 == pytest.approx(stats.cycles)
    for unit in util.columns:
        assert (util[unit] >= 0).all() and (util[unit] <= 1 + 1e-12).all()
        assert (util[unit] * width).sum() == pytest.approx(stats.busy[unit], rel=1e-9)
    assert set(util.columns) == {u for u, b in stats.busy.items() if b and u != "control"}
    fig = fg.plot_utilisation(util, tmp_path / "u.png", clock_mhz=100.0)
    assert len(fig.axes) == len(util.columns)
    # the same bins from the CSV trace
    from hwsim.trace import write_trace

    again = fg.trace_utilisation(write_trace(prog, stats, tmp_path / "t.csv"), bins=37)
    pd.testing.assert_frame_equal(again, util)


def _png_srcs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img alt="[^"]*" src="data:image/png;'
                                                     r'base64,([^"]+)"', html)]


def test_html_embeds_every_image_the_markdown_references(tmp_path):
    fig = fg.plot_pareto(pd.DataFrame({"workload": ["w"] * 3, "seconds": [1.0, 2.0, 3.0],
                                       "energy_pj": [3e9, 1e9, 2e9]}), tmp_path / "a.png")
    assert fig.fronts["w"] == [0, 1]
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes()[::-1])
    md = tmp_path / "r.md"
    md.write_text("# Title *here*\n\nText with `code <x>` and **bold**.\n\n![one](a.png)\n\n"
                  "| a | b |\n|---|---:|\n| 1 | 2 |\n\n- item\n- ![two](b.png)\n")
    html = write_html(md).read_text()
    assert image_refs(md.read_text()) == ["a.png", "b.png"]
    srcs = _png_srcs(html)
    assert srcs == [(tmp_path / "a.png").read_bytes(), (tmp_path / "b.png").read_bytes()]
    assert "<code>code &lt;x&gt;</code>" in html and "<strong>bold</strong>" in html
    assert "<td class=r>2</td>" in html and "<h1>Title <em>here</em></h1>" in html
    md.write_text("![gone](c.png)\n")
    with pytest.raises(FileNotFoundError, match="c.png"):
        write_html(md)


def test_sweep_report_keeps_energy_components_and_draws_pareto_fronts(tmp_path):
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "f", "base": "tiny",
        "grid": {"array.rows": [4, 8], "dram.channels": [1, 2]},
        "workloads": [{"gemm": [32, 32, 64]}, {"gemm": [32, 32, 64], "sparsity": "2:4"}]}))
    res = run_sweep(load_spec(spec_path), tmp_path / "r.duckdb", workers=0)
    assert res.computed == 8 and res.failed == 0
    df = read_results(res.db)
    buffers = [f"energy_{c}_pj" for c in SRAM_COMPONENTS]
    parts = df[[c for c in df.columns if c.startswith("energy_") and c != "energy_pj"
                and c not in buffers]]
    assert {"energy_array_pj", "energy_sram_pj", "energy_dram_pj", "energy_static_pj"} \
        <= set(parts.columns)
    np.testing.assert_allclose(parts.sum(axis=1), df.energy_pj, rtol=1e-12)
    # the store keeps SRAM per buffer beside its total; a GEMM reads ACT and WGT, writes ACC
    np.testing.assert_allclose(df[buffers].sum(axis=1), df.energy_sram_pj, rtol=1e-12)
    assert (df.energy_sram_act_pj > 0).all() and (df.energy_sram_acc_pj > 0).all()
    assert (df.energy_sram_hot_rows_pj == 0).all() and (df.energy_sram_vec_pj == 0).all()
    md = sweep_report(df, tmp_path / "rep", "Sweep f", synth=SYNTH)
    text = md.read_text()
    assert "energy_array_pj" not in text.split("## ")[0]  # not shown as a config column
    refs = image_refs(text)
    assert refs == ["pareto_energy.png", "energy.png"]  # tiny is int8: no area front
    assert "No latency-against-area front: the synthesized PEs are fp16" in text
    html = md.with_suffix(".html").read_text()
    assert _png_srcs(html) == [(md.parent / r).read_bytes() for r in refs]
    for _, sub in df.groupby("workload"):
        front = sub[fg.pareto_front(sub, "seconds", "energy_pj")]
        assert len(front)
        for sec, pj in zip(front.seconds, front.energy_pj, strict=True):
            assert f"{sec * 1e3:,.4f} | {pj / 1e9:,.4f} |" in text


def test_sparse_model_workloads_compare_with_dense_by_default():
    spec = parse_spec({"base": "tiny", "workloads": [
        {"model": "resnet18", "method": "bdwp"}, {"model": "resnet18", "method": "dense"},
        {"model": "resnet18", "method": "srste", "compare_dense": False}]})
    assert [w.compare_dense for w in spec.workloads] == [True, False, False]


def test_sat_report_html_embeds_its_figures_and_the_energy_bars_match_the_csv(tmp_path):
    from reports.sat_report import sat_reproduction

    md = sat_reproduction(tmp_path, models=["resnet18"], sensitivity_lanes=None,
                          ablation_model=None, leave_one_out_all=False, burst_dma=False)
    text = md.read_text()
    refs = image_refs(text)
    assert refs == ["sat_speedup.png", "sat_energy.png", "sat_roofline.png",
                    "sat_utilisation.png"]
    html = md.with_suffix(".html").read_text()
    assert _png_srcs(html) == [(tmp_path / r).read_bytes() for r in refs]
    row = pd.read_csv(tmp_path / "sat_speedup.csv").set_index(["method", "pattern"]).loc[
        ("bdwp", "2:8")]
    buffers = [f"energy_{c}_pj" for c in SRAM_COMPONENTS]
    assert sum(row[c] for c in buffers) == pytest.approx(row.energy_sram_pj, rel=1e-12)
    parts = [c for c in row.index if c.startswith("energy_") and c != "energy_pj"
             and c not in buffers]
    assert sum(row[c] for c in parts) == pytest.approx(row.energy_pj, rel=1e-12)
    assert sum(row["dense_" + c] for c in parts) == pytest.approx(row.dense_energy_pj,
                                                                 rel=1e-12)
    assert row.energy_array_pj < row.dense_energy_array_pj  # sparse tiles: fewer MACs
    m = re.search(r"memory-bound items \(open triangles\): dense (\d+), bdwp 2:8 (\d+)\.", text)
    assert m is not None
