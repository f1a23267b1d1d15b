"""Chrome/Perfetto trace export: one track per unit that ran, events that do not overlap and
sum to each unit's busy cycles, timestamps at the config's clock; the CLI writes it by
extension for one GEMM and for a model's step."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from dataflow import compile_gemm
from dataflow.simulate import simulate_model
from hwsim import run
from hwsim.config import load_config
from hwsim.trace import (
    csv_to_chrome_trace,
    program_trace,
    read_trace,
    write_chrome_trace,
    write_trace,
)
from reports.cli import main
from reports.figures import capture_runs

TINY_LM = {"seq_len": 8, "n_layers": 1, "vocab_size": 64, "d_model": 32, "n_heads": 2}


def _tracks(doc: dict) -> dict[str, list[dict]]:
    """Events per track, by the track's thread_name."""
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    out = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            assert set(e) >= {"name", "ph", "ts", "dur", "pid", "tid"}
            out[names[e["tid"]]].append(e)
    return dict(out)


def _check_tracks(doc: dict, stats, clock_mhz: float) -> None:
    tracks = _tracks(doc)
    ran = {u for u, busy in stats.busy.items() if busy > 0 and u != "control"}
    assert set(tracks) == ran  # one track per unit that ran, no other
    assert len({e[0]["tid"] for e in tracks.values()}) == len(tracks)
    for unit, events in tracks.items():
        events = sorted(events, key=lambda e: e["args"]["start"])
        start = np.array([e["args"]["start"] for e in events])
        cycles = np.array([e["args"]["cycles"] for e in events])
        assert (start[1:] >= start[:-1] + cycles[:-1]).all(), unit  # no overlap, in cycles
        ts = np.array([e["ts"] for e in events])
        dur = np.array([e["dur"] for e in events])
        assert (ts[1:] >= ts[:-1] + dur[:-1] - 1e-9).all(), unit  # nor in microseconds
        assert int(cycles.sum()) == stats.busy[unit], unit
        assert dur.sum() * clock_mhz == pytest.approx(stats.busy[unit], rel=1e-9)
        np.testing.assert_allclose(ts * clock_mhz, start, rtol=0, atol=1e-6)


def test_gemm_trace_has_a_track_per_unit_summing_to_busy_cycles(tmp_path):
    cfg = load_config("tiny")
    prog = compile_gemm(32, 24, 40, cfg, dataflow="ws")
    stats = run(prog, cfg).stats
    path = write_chrome_trace(prog, stats, tmp_path / "t.json", cfg.clock_mhz)
    doc = json.loads(path.read_text())
    _check_tracks(doc, stats, cfg.clock_mhz)
    assert set(_tracks(doc)) == {"dma_in", "dma_out", "array"}
    # the CSV trace converts to the same events
    csv = write_trace(prog, stats, tmp_path / "t.csv")
    rows = read_trace(csv)
    assert [r["start"] for r in rows] == stats.start_cycles
    assert [r["end"] for r in rows] == stats.retire_cycles
    conv = json.loads(csv_to_chrome_trace(csv, tmp_path / "c.json", cfg.clock_mhz).read_text())
    assert conv["traceEvents"] == doc["traceEvents"]


def test_model_step_trace_names_ops_and_covers_sore_and_vector():
    cfg = load_config("tiny")
    with capture_runs() as runs:
        res = simulate_model("pythia70m", "bdwp", "2:4", cfg, 1, compare_dense=False,
                             **TINY_LM)
    prog, stats = runs[0]
    assert stats.cycles == res.totals["cycles"]
    doc = program_trace(prog, stats, cfg.clock_mhz)
    _check_tracks(doc, stats, cfg.clock_mhz)
    tracks = _tracks(doc)
    assert {"array", "sore", "vector", "dma_in"} <= set(tracks)
    gemm = [e["name"] for e in tracks["array"]]
    assert all(n.startswith("GEMM ") for n in gemm)
    assert any(n.endswith(".fwd") for n in gemm)  # named by the op it computes


def test_cli_writes_chrome_json_by_extension_for_gemm_and_model(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["simulate-gemm", "16", "16", "32", "--config", "tiny", "--trace",
                 str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {e["ph"] for e in doc["traceEvents"]} == {"M", "X"}
    assert list(tmp_path.iterdir()) == [out]  # the intermediate CSV is gone
    csv = tmp_path / "g.csv"
    assert main(["simulate-gemm", "16", "16", "32", "--config", "tiny", "--trace",
                 str(csv)]) == 0
    assert csv.read_text().splitlines()[0] == "index,opcode,unit,accept,start,end,wait,signal"
    # a model's step: its own program, not the dense comparison
    factory = tmp_path / "m.py"
    factory.write_text("from torch import nn\n\n\ndef mlp():\n"
                       "    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), "
                       "nn.Linear(64, 16))\n")
    model = tmp_path / "m.json"
    capsys.readouterr()
    assert main(["simulate", "--model", f"{factory}:mlp", "--input-shape", "8,64",
                 "--config", "tiny", "--pattern", "2:4", "--trace", str(model),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    doc = json.loads(model.read_text())
    busy = {k[len("busy_"):]: v for k, v in res["totals"].items() if k.startswith("busy_")}
    tracks = _tracks(doc)
    assert {u for u, v in busy.items() if v > 0 and u not in ("control", "update")} \
        == set(tracks)
    for unit, events in tracks.items():
        assert sum(e["args"]["cycles"] for e in events) == busy[unit]
    assert main(["simulate", "--topology", str(csv), "--trace", str(model)]) == 2
