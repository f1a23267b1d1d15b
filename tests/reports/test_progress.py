"""Progress of the long commands: a bar on a terminal (or when forced), nothing in a pipe or with
--quiet, and the commands' output the same either way."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from reports import progress as pg
from reports.cli import main

MLP = '''
from torch import nn


def mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
'''


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(pg.ENV, raising=False)


def test_progress_is_on_for_a_terminal_and_off_for_a_file_or_quiet(monkeypatch):
    assert pg.enabled(Tty()) and not pg.enabled(io.StringIO())
    assert not pg.enabled(Tty(), quiet=True) and not pg.enabled(Tty(), quiet=True, force=True)
    assert pg.enabled(io.StringIO(), force=True) and not pg.enabled(Tty(), force=False)
    monkeypatch.setenv(pg.ENV, "1")
    assert pg.enabled(io.StringIO()) and not pg.enabled(io.StringIO(), quiet=True)
    monkeypatch.setenv(pg.ENV, "0")
    assert not pg.enabled(Tty())
    assert pg.progress_for(stream=Tty()) is None  # the environment wins over the terminal


def test_progress_for_gives_a_bar_nothing_or_a_log():
    assert isinstance(pg.progress_for(stream=Tty()), pg.ProgressBar)
    assert pg.progress_for(stream=io.StringIO()) is None
    assert pg.progress_for(quiet=True, stream=Tty()) is None
    assert pg.progress_for(quiet=True, log=True, stream=Tty()) is None
    log = io.StringIO()
    say = pg.progress_for(log=True, stream=log)
    assert isinstance(say, pg.LinePrinter)
    pg.stage(say, "ignored", 3)  # a plain callable takes no stage
    say("one point stored")
    assert log.getvalue() == "one point stored\n"


def test_forced_bar_draws_stages_lines_and_tracked_loops():
    out = io.StringIO()
    with pg.progress_for(stream=out, force=True) as bar:
        bar("before any stage")
        pg.stage(bar, "speedups", 2)
        bar("resnet18 bdwp 2:8: 1.7x")
        bar("resnet18 bdwp 2:4: 1.4x")
        bar("after the stage")
        assert list(pg.track(range(3), bar, "steps")) == [0, 1, 2]
        with pg.running(bar, "programs"):
            bar.advance(postfix="dense step timed")
    text = out.getvalue()
    for line in ("before any stage\n", "resnet18 bdwp 2:8: 1.7x\n", "after the stage\n"):
        assert line in text
    assert "speedups: 100%" in text and "2/2" in text and "steps: 100%" in text
    assert "3/3" in text and "programs: 1" in text and "dense step timed" in text


def test_plain_callables_and_none_get_no_bar_calls():
    lines: list[str] = []
    pg.stage(lines.append, "x", 3)
    pg.stage(None, "x", 3)
    assert list(pg.track(range(2), lines.append, "x")) == [0, 1]
    assert list(pg.track(range(2), None, "x")) == [0, 1]
    with pg.running(None, "x"):
        pass
    assert lines == []


@pytest.fixture
def mlp(tmp_path):
    path = tmp_path / "mymodels.py"
    path.write_text(MLP)
    return f"{path}:mlp"


def simulate(capsys, mlp, *extra):
    code = main(["simulate", "--model", mlp, "--input-shape", "16,64", "--json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def test_simulate_model_is_silent_in_a_pipe_and_with_quiet(capsys, mlp, monkeypatch):
    data, err = simulate(capsys, mlp)  # capsys: stderr is not a terminal
    assert err == "" and data["totals"]["cycles"] > 0
    monkeypatch.setenv(pg.ENV, "1")
    quiet, err = simulate(capsys, mlp, "--quiet")
    assert err == "" and quiet["totals"] == data["totals"]


def test_simulate_model_draws_a_bar_when_forced_and_prints_the_same(capsys, mlp, monkeypatch):
    data, _ = simulate(capsys, mlp)
    monkeypatch.setenv(pg.ENV, "1")
    forced, err = simulate(capsys, mlp)
    assert forced["totals"] == data["totals"]  # stdout held back until the bar closed
    assert f"simulate {mlp} (programs timed): 2" in err  # the step and its dense baseline
    assert "step timed" in err


def test_sweep_keeps_its_log_lines_in_a_pipe_and_adds_a_bar_when_forced(capsys, tmp_path,
                                                                         monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "p", "base": "tiny", "grid": {"array.rows": [4, 8]},
                                    "workloads": [{"gemm": [16, 16, 32]}]}))

    def sweep(*extra):
        code = main(["sweep", str(spec), "--db", str(tmp_path / f"r{len(extra)}.duckdb"),
                     "--workers", "0", *extra])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out, err

    out, err = sweep()
    assert "2 points computed" in out
    assert [x[:5] for x in err.splitlines() if x.startswith("[")] == ["[1/2]", "[2/2]"]
    assert "%|" not in err
    out, err = sweep("--quiet")
    assert err == "" and "2 points computed" in out
    monkeypatch.setenv(pg.ENV, "1")
    out, err = sweep("--max-points", "2")
    assert "2 points computed" in out
    assert "[1/2]" in err and "[2/2]" in err and "sweep p: 100%" in err


def test_demo_and_reports_accept_quiet():
    from reports.cli import build_parser

    p = build_parser()
    for argv in (["demo", "--quiet"], ["report", "sat", "--quiet"],
                 ["report", "memoryformer", "--quiet"], ["report", "attmemo", "--quiet"],
                 ["sweep", "x.yaml", "--quiet"], ["experiment", "nm", "--quiet"],
                 ["simulate", "--model", "resnet18", "--quiet"]):
        assert p.parse_args(argv).quiet, argv
