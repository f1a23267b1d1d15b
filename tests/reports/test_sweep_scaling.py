"""Sweeps that scale: points batched per Dask task, rows committed a batch at a time, a cluster
started as separate processes (``dask scheduler`` / ``dask worker``), no process left behind.
Throughput is measured by benchmarks/bench_sweep_scaling.py, not here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dataflow import simulate_gemm
from hwsim import load_config
from reports.store import (
    CORE_COLUMNS,
    INT64_MAX,
    ResultStore,
    StoreValueError,
    points_log_path,
    read_results,
)
from reports.sweep import MAX_BATCH, batches, parse_spec

GEMMS = [{"gemm": [16, 16, 32], "dataflow": "ws"},
         {"gemm": [16, 24, 64], "sparsity": "2:8", "dataflow": "os"},
         {"gemm": [32, 16, 48], "dataflow": "os"}]
SPEC = {"name": "t", "base": "tiny", "grid": {"array.rows": [4, 8], "dram.channels": [1, 2]},
        "workloads": GEMMS}


def session_processes(sid: int) -> list[str]:
    """Live (not zombie) processes of a session, from ps."""
    ps = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True,
                        check=True).stdout
    return [line for line in ps.splitlines()
            if line.split()[1] == str(sid) and not line.split()[2].startswith("Z")]


def wait_gone(sid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while session_processes(sid):
        assert time.monotonic() < deadline, session_processes(sid)
        time.sleep(0.2)


def test_points_are_batched_models_alone_gemms_in_runs():
    spec = parse_spec({"base": "tiny", "grid": {"array.rows": [4, 8]},
                       "workloads": GEMMS + [{"model": "pythia70m", "method": "dense",
                                              "options": {"seq_len": 8, "n_layers": 1}}]})
    points = spec.points()
    out = batches(points, slots=1)
    assert sorted(len(b) for b in out) == [1, 1, 1, 1, 1, 1, 1, 1]  # 6 GEMMs over 8 tasks
    assert [p.workload.kind for p in out[0] + out[1]] == ["model", "model"]
    big = parse_spec({"base": "tiny", "grid": {"queue_depth": list(range(1, 41))},
                      "workloads": GEMMS}).points()  # 120 GEMM points
    assert [len(b) for b in batches(big, slots=2)] == [8] * 15
    assert max(len(b) for b in batches(big * 10, slots=1)) == MAX_BATCH
    assert sum(map(len, batches(big, slots=2))) == len(big)


def test_a_batch_is_stored_whole_or_not_at_all(tmp_path):
    db = tmp_path / "r.duckdb"
    rows = [{"config_key": "c", "workload_key": str(i), "cycles": i} for i in range(5)]
    with ResultStore(db) as store:
        store.ensure_columns(CORE_COLUMNS)
        store.put_many(rows[:3])
        with pytest.raises(StoreValueError, match="cycles"):
            store.put_many([*rows[3:], {"config_key": "c", "workload_key": "9",
                                        "cycles": INT64_MAX + 1}])
        assert store.done_keys() == {("c", "0"), ("c", "1"), ("c", "2")}
        store.put_many([{**rows[1], "cycles": 11}, *rows[3:], {**rows[4], "cycles": 44}])
        assert len(store.done_keys()) == 5
    df = read_results(db).set_index("workload_key")
    assert df["cycles"].to_dict() == {"0": 0, "1": 11, "2": 2, "3": 3, "4": 44}
    log = points_log_path(db).read_text().splitlines()
    assert len(log) == 1 + 3 + 3  # header, the first batch, the last one (the refused: none)


def test_local_dask_sweep_leaves_no_process_behind(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    db = tmp_path / "r.duckdb"
    proc = subprocess.Popen([sys.executable, "-m", "reports.cli", "sweep", str(spec), "--db",
                             str(db), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "12 points computed (0 failed)" in out and "(2 workers)" in err
    wait_gone(proc.pid)
    assert len(read_results(db)) == 12


@pytest.fixture
def cluster(tmp_path):
    """A Dask scheduler and two single-threaded workers, each its own process (the CLIs), as
    on a real cluster; killed, with every child, at the end."""
    info = tmp_path / "scheduler.json"
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              start_new_session=True)]
    deadline = time.monotonic() + 120
    while not info.exists():
        assert time.monotonic() < deadline and procs[0].poll() is None, "no scheduler"
        time.sleep(0.2)
    procs += [subprocess.Popen([dask, "worker", "--scheduler-file", str(info), "--nthreads",
                                "1", "--no-dashboard", "--name", f"w{i}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               start_new_session=True) for i in range(2)]
    import json

    from dask.distributed import Client

    address = json.loads(info.read_text())["address"]
    try:
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        for p in procs:
            wait_gone(p.pid)


def test_sweep_on_a_separate_scheduler_and_workers_stores_simulate_gemms_results(
        cluster, tmp_path):
    spec = tmp_path / "spec.yaml"
    grid = {**SPEC["grid"], "queue_depth": [2, 4, 8, 16]}  # 16 configs, 48 points
    spec.write_text(yaml.safe_dump({**SPEC, "grid": grid}))
    db = tmp_path / "r.duckdb"
    r = subprocess.run([sys.executable, "-m", "reports.cli", "sweep", str(spec), "--db", str(db),
                        "--scheduler", cluster], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"on Dask scheduler {cluster}" in r.stderr and "48 points computed (0 failed)" \
        in r.stdout
    df = read_results(db)
    assert len(df) == 48 and df["error"].isna().all()
    for row in df.astype(object).where(df.notna(), None).to_dict("records"):
        cfg = load_config("tiny").replace(array__rows=row["array.rows"],
                                          dram__channels=row["dram.channels"],
                                          queue_depth=row["queue_depth"])
        st = simulate_gemm(row["m"], row["n"], row["k"], cfg, sparsity=row["sparsity"],
                           dataflow=row["dataflow"], mode="timing")
        assert row["config_key"] == cfg.key() and row["cycles"] == st.cycles
        assert row["dram_bytes"] == st.bytes["dram_read"] + st.bytes["dram_write"]
    # the points ran as batches on the cluster's 2 workers: 16 tasks of 3 points
    from dask.distributed import Client

    with Client(cluster, timeout="60s") as client:
        tasks = client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.task_prefixes["run_points"]
            .state_counts["memory"])
    assert tasks == 16
    # a rerun on the same cluster finds them all stored
    r = subprocess.run([sys.executable, "-m", "reports.cli", "sweep", str(spec), "--db", str(db),
                        "--scheduler", cluster], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "0 points computed (0 failed), 48 already stored" in r.stdout
