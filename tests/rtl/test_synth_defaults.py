"""``satmem rtl synth`` with its defaults, without Yosys: the lane points each preset builds,
the error for a lane count a config cannot build, and the progress lines (Yosys replaced by a
stand-in that returns a made-up result)."""

from __future__ import annotations

import pytest

from hwsim.config import preset
from reports.cli import main
from rtl.synth import DEVICES, RESOURCES, SynthResult
from rtl.synth.designs import _default_vector_lanes, _engine_designs, _sweep_designs
from rtl.vector import VectorUnit


@pytest.mark.parametrize("name, lanes", [("tiny", (1, 2, 4)), ("small8", (1, 2, 4, 8)),
                                         ("vcu1525", (1, 2, 4, 8))])
def test_default_vector_lanes_are_those_the_config_builds(name, lanes):
    cfg = preset(name)
    assert _default_vector_lanes(cfg) == lanes
    designs, _ = _engine_designs(cfg, (1, 2, 4, cfg.sore.lanes), lanes)
    units = [d.build() for d in designs if d.engine == "vector"]
    assert [u.lanes for u in units] == list(lanes)
    assert all(isinstance(u, VectorUnit) for u in units)


def test_a_config_without_two_buildable_lane_counts_sweeps_no_vector_engine():
    # 8 lanes of 4 bytes need a 32-byte beat; a 4-byte bus builds one lane only
    narrow = preset("tiny").replace(dram__bus_bytes=4, array__cols=1, array__rows=1,
                                    vector__lanes=1, array__patterns=())
    assert _default_vector_lanes(narrow) == ()


def test_explicit_vector_lanes_beyond_the_bus_name_the_fields_that_bound_them(tmp_path):
    from rtl.synth import synth_report

    with pytest.raises(ValueError, match=r"^vector_lanes \[8\] do not fit config 'tiny': a VEC "
                                         r"entry of vector\.lanes x 4 bytes must fit one "
                                         r"dram\.bus_bytes \(16\) beat, so at most 4 lanes$"):
        synth_report("tiny", tmp_path, vector_lanes=(1, 8))
    assert list(tmp_path.iterdir()) == []


def test_cli_synth_bad_vector_lanes_is_one_line_exit_2(capsys, tmp_path):
    code = main(["rtl", "synth", "--config", "tiny", "--out", str(tmp_path),
                 "--vector-lanes", "2,8", "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2 and "vector.lanes x 4 bytes" in err and "array.cols" not in err


def _stand_in(calls):
    """A ``_synthesize_text`` that records the design and returns a made-up result."""
    def fake(text, *, top, out_dir, part, timeout_s, reuse, rtlil=False, share=True):
        calls.append(top)
        out_dir.mkdir(parents=True, exist_ok=True)
        v = out_dir / f"{top}.v"
        v.write_text(text)
        n = 1 + len(calls)
        res = {"LUT": 100.0 * n, "FF": 50.0 * n, "DSP48E2": float(n), "BRAM36": 0.0,
               "URAM": 0.0}
        totals = DEVICES[part].totals()
        return SynthResult(top, part, res, {k: res[k] / totals[k] for k in RESOURCES}, {},
                           out_dir / "yosys.log", v, 0.01, "stand-in", ()), False
    return fake


def test_cli_synth_tiny_defaults_run_every_design_with_progress(capsys, tmp_path, monkeypatch):
    import rtl.synth.report as report

    calls = []
    monkeypatch.setattr(report, "_synthesize_text", _stand_in(calls))
    # the defaults but the accelerator top, whose Verilog export alone takes most of a minute
    # (the default design list, top included, is checked without exporting below)
    code = main(["rtl", "synth", "--config", "tiny", "--out", str(tmp_path), "--jobs", "1",
                 "--no-accelerator"])
    out, err = capsys.readouterr()
    assert code == 0 and (tmp_path / "synth_report.md").exists(), err
    assert set(calls) == {"pe_int8", "array_2x2", "array_4x4",
                          "sore_1lane", "sore_2lane", "sore_4lane",
                          "vector_1lane", "vector_2lane", "vector_4lane"}
    designs, note = _sweep_designs(preset("tiny"), (1, 2, 4), accelerator=True)
    assert [d.name for d in designs][-1] == "accelerator_tiny" and note == ""
    lines = err.splitlines()
    for name in calls:  # one line as each design starts and one as it finishes
        assert sum(line == f"started  {name}" for line in lines) == 1, name
        done = [line for line in lines if line.startswith(f"finished {name} in ")]
        assert len(done) == 1 and done[0].endswith(" s in all]"), done
    assert f"[{len(calls)}/{len(calls)}," in err


def test_cli_synth_quiet_prints_no_progress(capsys, tmp_path, monkeypatch):
    import rtl.synth

    seen = {}

    def fake_report(cfg, out, **kw):
        seen.update(kw)
        return tmp_path / "synth_report.md"

    monkeypatch.setattr(rtl.synth, "synth_report", fake_report)
    assert main(["rtl", "synth", "--config", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    _, err = capsys.readouterr()
    assert err == "" and seen["progress"] is None and seen["vector_lanes"] is None
