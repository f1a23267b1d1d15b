"""``satmem sweep``: grid x workloads on Dask, results in DuckDB equal to hwsim's, resumable."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from dataflow import simulate_gemm
from hwsim import load_config
from reports.cli import main
from reports.store import ResultStore, read_results
from reports.sweep import load_spec, simulator_stamp

GEMMS = [{"gemm": [16, 16, 32], "dataflow": "ws"},
         {"gemm": [16, 24, 64], "sparsity": "2:8", "dataflow": "os"}]


def write_spec(tmp_path, **spec):
    spec = {"name": "t", "base": "tiny", **spec}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep(capsys, *argv):
    code = main(["sweep", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def computed(err: str) -> list[str]:
    """Labels of the points a run computed, from its progress lines."""
    return [re.sub(r"^\[\d+/\d+\] ", "", line).split(": ")[0]
            for line in err.splitlines() if line.startswith("[")]


def test_sweep_on_local_dask_cluster_stores_what_simulate_gemm_gives(capsys, tmp_path):
    spec = write_spec(tmp_path, grid={"array.rows": [4, 8], "dram.channels": 2},
                      workloads=GEMMS)
    db = tmp_path / "r.duckdb"
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "1", "--report")
    assert code == 0, err
    assert "on a local Dask cluster (1 worker)" in err
    assert "4 points computed (0 failed)" in out
    df = read_results(db)
    assert len(df) == 4 and df["error"].isna().all()
    for row in df.astype(object).where(df.notna(), None).to_dict("records"):
        cfg = load_config("tiny").replace(array__rows=row["array.rows"], dram__channels=2)
        assert row["config_key"] == cfg.key()
        st = simulate_gemm(row["m"], row["n"], row["k"], cfg, sparsity=row["sparsity"],
                           dataflow=row["dataflow"], mode="timing")
        assert row["cycles"] == st.cycles
        assert row["utilisation"] == pytest.approx(st.utilisation, rel=1e-12)
        assert row["macs"] == st.macs  # MACs performed: kept weights only when sparse
        if row["sparsity"] in (None, ""):
            kept = row["k"]
        else:
            pn, pm = (int(x) for x in row["sparsity"].split(":"))
            kept = -(-row["k"] // pm) * pn
        assert row["macs"] == row["m"] * row["n"] * kept
        assert row["dram_read"] == st.bytes["dram_read"]
        assert row["dram_bytes"] == st.bytes["dram_read"] + st.bytes["dram_write"]
        assert row["energy_pj"] == pytest.approx(st.energy_total_pj, rel=1e-12)
        assert row["seconds"] == pytest.approx(st.cycles / 100e6, rel=1e-12)
    assert set(df["array.rows"]) == {4, 8} and set(df["dram.channels"]) == {2}
    assert set(df["config"]) == {"tiny"} and set(df["sparsity"].dropna()) == {"2:8"}
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Sweep t") and "| gemm 16x24x64 os 2:8 " in report


def test_interrupted_sweep_resumes_with_only_the_missing_points(capsys, tmp_path):
    spec = write_spec(tmp_path, grid={"array.rows": [4, 8], "array.cols": [4, 2]},
                      workloads=GEMMS)
    db = tmp_path / "r.duckdb"
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0", "--max-points", "3")
    assert code == 0 and "3 points computed (0 failed), 0 already stored, 5 left" in out
    first = set(computed(err))
    assert len(first) == 3 and len(read_results(db)) == 3

    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert code == 0 and "5 points computed (0 failed), 3 already stored, 0 left" in out
    second = set(computed(err))
    assert len(second) == 5 and not first & second

    df = read_results(db)
    assert len(df) == 8 and df[["config_key", "workload_key"]].drop_duplicates().shape[0] == 8
    gone = list(zip(df["config_key"][:2], df["workload_key"][:2], strict=True))
    kept = df.set_index(["config_key", "workload_key"])["finished_at"].drop(gone)
    with ResultStore(db) as store:
        store.delete(gone)
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert "2 points computed (0 failed), 6 already stored" in out
    assert len(computed(err)) == 2
    df = read_results(db).set_index(["config_key", "workload_key"])
    assert len(df) == 8 and (df["finished_at"].loc[kept.index] == kept).all()

    code, out, _ = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert "0 points computed (0 failed), 8 already stored, 0 left" in out


def test_failing_point_is_stored_with_its_error_and_the_rest_complete(capsys, tmp_path):
    spec = write_spec(tmp_path, grid={"array.patterns": [["2:4", "2:8"], ["2:4"]]},
                      workloads=GEMMS)
    db = tmp_path / "r.duckdb"
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert code == 0 and "4 points computed (1 failed)" in out
    assert "FAILED ConfigError: config field 'sparsity' = '2:8' is not allowed" in err
    df = read_results(db)
    bad = df[df["error"].notna()]
    assert len(bad) == 1 and bad["sparsity"].iloc[0] == "2:8"
    assert bad["array.patterns"].iloc[0] == '["2:4"]' and bad["cycles"].isna().all()
    assert (df[df["error"].isna()]["cycles"] > 0).all() and len(df) == 4
    # a rerun retries the failed point only
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert "1 point computed (1 failed), 3 already stored" in out and len(read_results(db)) == 4
    code, out, _ = sweep(capsys, "--show", db)
    assert code == 0 and "| error" in out and "'sparsity' = '2:8'" in out


def test_model_workload_equals_simulate_model(capsys, tmp_path):
    from dataflow import CompileOptions, simulate_model

    opts = {"seq_len": 8, "n_layers": 1, "vocab_size": 64, "d_model": 32, "n_heads": 2}
    spec = write_spec(tmp_path, workloads=[{"model": "pythia70m", "method": "bdwp",
                                            "pattern": "2:4", "options": opts,
                                            "compile": {"interleave": False}}])
    db = tmp_path / "r.duckdb"
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert code == 0, err
    row = read_results(db).iloc[0]
    ref = simulate_model("pythia70m", "bdwp", "2:4", "tiny", 1,
                         CompileOptions(interleave=False), compare_dense=False, **opts)
    assert row["cycles"] == ref.totals["cycles"] and row["macs"] == ref.totals["macs"]
    assert row["dram_bytes"] == ref.totals["dram_total"]
    assert row["energy_pj"] == pytest.approx(ref.totals["energy_pj"], rel=1e-12)
    assert row["kind"] == "model" and row["pattern"] == "2:4" and row["batch"] == 1


@pytest.mark.parametrize(("spec", "needle"), [
    ({"grid": {"array.rows": [4, 0]}, "workloads": GEMMS},
     "config field 'array.rows' = 0 is not allowed: expected a positive integer"),
    ({"grid": {"array.colour": [1]}, "workloads": GEMMS}, "config field 'array.colour' = 1"),
    ({"grid": {"clock": [1]}, "workloads": GEMMS}, "config field 'clock' = 1"),
    ({"grid": {"array.dtype": ["int4"]}, "workloads": GEMMS}, "'array.dtype' = 'int4'"),
    ({"base": "huge", "workloads": GEMMS}, "config field 'config' = 'huge'"),
    ({"workloads": [{"gemm": [64, 64]}]}, "'workloads[0].gemm' = [64, 64]"),
    ({"workloads": [GEMMS[0], {"gemm": [8, 8, 8], "sparsity": "3:5"}]},
     "'workloads[1].sparsity' = '3:5'"),
    ({"workloads": [{"gemm": [8, 8, 8], "dataflow": "xs"}]}, "'workloads[0].dataflow' = 'xs'"),
    ({"workloads": [{"gemm": [8, 8, 8], "mode": "functional"}]}, "'workloads[0].mode'"),
    ({"workloads": [{"model": "resnet9"}]}, "'workloads[0].model' = 'resnet9'"),
    ({"workloads": [{"model": "resnet18", "options": {"seq_len": 8}}]},
     "model 'resnet18' takes no option 'seq_len'"),
    ({"workloads": [{"model": "resnet18", "compile": {"fast": True}}]},
     "'workloads[0].compile.fast' = True"),
    ({"workloads": []}, "sweep spec field 'workloads' = []"),
    ({"workload": GEMMS}, "sweep spec field 'workload'"),
])
def test_bad_spec_field_is_one_line_naming_it(capsys, tmp_path, spec, needle):
    code, out, err = sweep(capsys, write_spec(tmp_path, **spec), "--db", tmp_path / "r.duckdb")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satmem: error: ") and needle in lines[0]
    assert not (tmp_path / "r.duckdb").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    ([], "sweep needs a SPEC.yaml to run or --show DB"),
    (["/nonexistent/s.yaml"], "'spec' = '/nonexistent/s.yaml'"),
    (["--show", "/nonexistent/r.duckdb"], "no results store at /nonexistent/r.duckdb"),
    (["x.yaml", "--scheduler", "tcp://h:1", "--workers", "2"], "cannot be used with"),
    (["x.yaml", "--workers", "-1"], "expected a non-negative integer, got '-1'"),
])
def test_bad_sweep_arguments_are_one_line(capsys, argv, needle):
    code, out, err = sweep(capsys, *argv)
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1


def test_example_spec_is_valid_and_small():
    from pathlib import Path

    spec = load_spec(Path(__file__).resolve().parents[2] / "reports/sweeps/example.yaml")
    kinds = [p.workload.kind for p in spec.points()]
    assert spec.name == "example" and len(kinds) == 12 and kinds.count("model") == 4


def session_processes(sid: int) -> list[str]:
    """Live (not zombie) processes of a session, from ps."""
    ps = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True,
                        check=True).stdout
    return [line for line in ps.splitlines()
            if line.split()[1] == str(sid) and not line.split()[2].startswith("Z")]


def test_ctrl_c_on_a_dask_sweep_is_one_line_leaves_no_process_and_resumes(tmp_path):
    """A real SIGINT to the sweep's whole process group, as a terminal's Ctrl-C sends it."""
    spec = write_spec(tmp_path, grid={"array.rows": [4, 8], "dram.channels": [1, 2]},
                      workloads=[*GEMMS, {"gemm": [64, 64, 256]}, {"gemm": [128, 128, 128]}])
    db = tmp_path / "r.duckdb"
    stamp = simulator_stamp()
    proc = subprocess.Popen([sys.executable, "-m", "reports.cli", "sweep", str(spec), "--db",
                             str(db), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while sum(x.startswith("[") for x in lines) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.stdout.read()  # stderr is the reader's
    proc.wait(timeout=120)
    reader.join(timeout=10)
    assert proc.returncode == 130 and out == ""
    rest = [x.rstrip("\n") for x in lines if not x.startswith(("[", "sweep t: 16 points"))]
    stored = len(read_results(db))
    assert 2 <= stored < 16
    assert rest == [f"satmem: interrupted: {stored} of 16 points stored in {db}; the same sweep "
                    "command resumes from there"], "".join(lines)
    deadline = time.monotonic() + 20
    while session_processes(proc.pid):
        assert time.monotonic() < deadline, session_processes(proc.pid)
        time.sleep(0.2)
    kept = read_results(db).set_index(["config_key", "workload_key"])["finished_at"]
    # resumed in a fresh process too: the points' keys hold the simulator sources' hash, which
    # this test process took at import
    r = subprocess.run([sys.executable, "-m", "reports.cli", "sweep", str(spec), "--db", str(db),
                        "--workers", "0"], capture_output=True, text=True, timeout=300)
    if simulator_stamp() != stamp:  # every point's key changed: all are recomputed, rightly
        pytest.skip("hwsim or dataflow sources were edited while this test ran")
    assert r.returncode == 0 and f"{16 - stored} points computed (0 failed), {stored} already " \
        "stored, 0 left" in r.stdout and len(computed(r.stderr)) == 16 - stored, r.stdout
    df = read_results(db).set_index(["config_key", "workload_key"])
    assert len(df) == 16 and df.index.is_unique and df["error"].isna().all()
    assert (df["finished_at"].loc[kept.index] == kept).all()
