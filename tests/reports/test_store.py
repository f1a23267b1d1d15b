"""The sweep store refuses what it cannot hold or does not own, by name, and says what it lost.

Integers past 64 bits, foreign and newer schemas, an unversioned store, a write-ahead log cut
in half, a database replaced under its log, a store held by a running sweep.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from hwsim import load_config
from hwsim.energy import COMPONENTS, SRAM_COMPONENTS
from reports.cli import main
from reports.store import (
    CORE_COLUMNS,
    ENERGY_COLUMNS,
    INT64_MAX,
    INT64_MIN,
    SRAM_BUFFER_COLUMNS,
    ResultStore,
    StoreValueError,
    points_log_path,
    read_results,
)
from reports.sweep import (
    GemmWorkload,
    Point,
    _store_point,
    parse_spec,
    run_point,
    run_sweep,
    simulator_stamp,
)

GEMMS = [{"gemm": [16, 16, 32]}, {"gemm": [16, 24, 64], "sparsity": "2:8", "dataflow": "os"}]


def write_spec(tmp_path, **spec):
    spec = {"name": "t", "base": "tiny", "grid": {"array.rows": [4, 8]}, "workloads": GEMMS,
            **spec}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep(capsys, *argv):
    code = main(["sweep", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code: int, out: str, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("satmem: error: ")
    return lines[0]


# --- integers ------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "field"), [
    ({"grid": {"dram.channels": [1, 2**63]}}, "'grid.dram.channels[1]' = 9223372036854775808"),
    ({"workloads": [{"gemm": [2**63, 8, 8]}]}, "'workloads[0].gemm[0]' = 9223372036854775808"),
    ({"workloads": [{"gemm": [8, 8, -(2**63) - 1]}]}, "'workloads[0].gemm[2]'"),
    ({"base": {"base": "tiny", "dram": {"channels": 2**64}}}, "'base.dram.channels'"),
])
def test_integer_past_64_bits_in_a_spec_is_one_line_before_any_point(capsys, tmp_path, spec,
                                                                     field):
    db = tmp_path / "r.duckdb"
    line = one_error_line(*sweep(capsys, write_spec(tmp_path, **spec), "--db", db))
    assert field in line and "64-bit range" in line
    assert not db.exists()


def test_integer_past_64_bits_in_a_config_file_names_the_base_field(capsys, tmp_path):
    (tmp_path / "big.yaml").write_text("base: tiny\ndram: {channels: 18446744073709551616}\n")
    line = one_error_line(*sweep(capsys, write_spec(tmp_path, base="big.yaml"), "--db",
                                 tmp_path / "r.duckdb"))
    assert "'base.dram.channels' = 18446744073709551616" in line


def test_largest_64_bit_integers_are_stored_exactly(tmp_path):
    spec = parse_spec({"base": "tiny", "grid": {"dram.channels": [INT64_MAX]},
                       "workloads": GEMMS})
    assert spec.configs[0][1].dram.channels == INT64_MAX
    row = {"config_key": "c", "workload_key": "w", "cycles": INT64_MAX, "macs": INT64_MIN}
    with ResultStore(tmp_path / "r.duckdb") as store:
        store.ensure_columns(CORE_COLUMNS)
        store.put(row)
        with pytest.raises(StoreValueError, match=r"^dram_read = 9223372036854775808 is "
                                                  r"outside the results store's 64-bit"):
            store.put({**row, "workload_key": "w2", "dram_read": INT64_MAX + 1})
    df = read_results(tmp_path / "r.duckdb")
    assert len(df) == 1 and df["cycles"].iloc[0] == INT64_MAX and df["macs"].iloc[0] == INT64_MIN


def test_result_past_64_bits_is_stored_as_the_points_error(tmp_path):
    cfg = load_config("tiny")
    point = Point(cfg, (), GemmWorkload(16, 16, 32))
    res = run_point(cfg, point.workload)
    assert res["error"] is None
    huge = {**res, "cycles": res["cycles"] * 2**60}  # what a GEMM of 2**60 times the tiles gives
    with ResultStore(tmp_path / "r.duckdb") as store:
        stored = _store_point(store, "t", point, huge)
        assert store.done_keys() == set()  # a failed point: a rerun retries it
        assert store.done_keys(include_failed=True) == {point.keys}
    assert stored["error"] == (f"StoreValueError: cycles = {res['cycles'] * 2**60} is outside "
                               f"the results store's 64-bit integer range ({INT64_MIN} to "
                               f"{INT64_MAX})")
    row = read_results(tmp_path / "r.duckdb").iloc[0]
    assert row["error"] == stored["error"] and pd.isna(row["cycles"])
    assert row["m"] == 16 and row["workload"] == "gemm 16x16x32 ws"


# --- schemas -------------------------------------------------------------------------------

def test_foreign_results_table_is_refused_by_sweep_and_show_and_left_alone(capsys, tmp_path):
    db = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE results (a INTEGER, b VARCHAR)")
        con.execute("INSERT INTO results VALUES (1, 'x')")
    for argv in ((write_spec(tmp_path), "--db", db), ("--show", db)):
        line = one_error_line(*sweep(capsys, *argv))
        assert line == (f"satmem: error: {db} is not a satmem results store: its table "
                        "'results' has no column config_key, workload_key, sweep, kind and "
                        f"{len(CORE_COLUMNS) - 4} more; give the sweep another --db")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT * FROM results").fetchall() == [(1, "x")]
        assert [t for (t,) in con.execute("SHOW TABLES").fetchall()] == ["results"]
    assert not points_log_path(db).exists()


def test_results_table_with_a_column_of_another_type_is_refused(capsys, tmp_path):
    db = tmp_path / "typed.duckdb"
    cols = ", ".join(f'"{c}" {"VARCHAR" if c == "cycles" else t}'
                     for c, t in CORE_COLUMNS.items())
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE results ({cols})")
    line = one_error_line(*sweep(capsys, "--show", db))
    assert "column 'cycles' of its table 'results' is VARCHAR, not BIGINT" in line


def test_database_of_another_program_is_refused(capsys, tmp_path):
    db = tmp_path / "other.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE people (name VARCHAR)")
    line = one_error_line(*sweep(capsys, write_spec(tmp_path), "--db", db))
    assert f"{db} is not a satmem results store: it holds another program's tables " \
           "(people)" in line
    with duckdb.connect(str(db), read_only=True) as con:
        assert [t for (t,) in con.execute("SHOW TABLES").fetchall()] == ["people"]


def test_store_is_versioned_and_a_newer_schema_is_refused(capsys, tmp_path):
    db = tmp_path / "r.duckdb"
    assert sweep(capsys, write_spec(tmp_path), "--db", db, "--workers", "0")[0] == 0
    with duckdb.connect(str(db)) as con:
        meta = dict(con.execute("SELECT key, value FROM satmem_store").fetchall())
        assert meta["schema_version"] == "1" and len(meta["store_id"]) == 32
        con.execute("UPDATE satmem_store SET value = '2' WHERE key = 'schema_version'")
    for argv in ((write_spec(tmp_path), "--db", db), ("--show", db)):
        line = one_error_line(*sweep(capsys, *argv))
        assert line == (f"satmem: error: results store {db} has schema version 2, written by "
                        "a newer satmem; this one reads version 1 and older")


def test_unversioned_store_is_adopted_without_recomputing(capsys, tmp_path):
    db, spec = tmp_path / "r.duckdb", write_spec(tmp_path)
    assert sweep(capsys, spec, "--db", db, "--workers", "0")[0] == 0
    before = read_results(db)
    with duckdb.connect(str(db)) as con:  # as satmem wrote stores before they had a version
        con.execute("DROP TABLE satmem_store")
    points_log_path(db).unlink()
    code, out, err = sweep(capsys, "--show", db)
    assert code == 0 and err == "" and out.count("| gemm 16x") == 4
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert code == 0 and "0 points computed (0 failed), 4 already stored" in out
    assert f"results store {db}: written before store schemas were versioned; marked as " \
           "schema version 1" in err
    assert read_results(db)["finished_at"].tolist() == before["finished_at"].tolist()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT value FROM satmem_store WHERE key = 'schema_version'"
                           ).fetchall() == [("1",)]


def test_store_without_sram_per_buffer_columns_gains_them_and_old_rows_read_null(capsys,
                                                                                   tmp_path):
    """A store written before SRAM energy was kept per buffer (same schema version: the energy
    columns are not core) takes the new points' buffer columns; its old points read NULL there
    and keep their SRAM total; the new points' buffers sum to it."""
    db = tmp_path / "r.duckdb"
    assert sweep(capsys, write_spec(tmp_path), "--db", db, "--workers", "0")[0] == 0
    with duckdb.connect(str(db)) as con:
        for c in SRAM_BUFFER_COLUMNS:
            con.execute(f'ALTER TABLE results DROP COLUMN "{c}"')
    spec = write_spec(tmp_path, grid={"array.rows": [4, 8, 16]})
    code, out, err = sweep(capsys, spec, "--db", db, "--workers", "0")
    assert code == 0 and "2 points computed (0 failed), 4 already stored" in out
    df = read_results(db)
    assert list(SRAM_BUFFER_COLUMNS) == [f"energy_{c}_pj" for c in SRAM_COMPONENTS]
    assert list(ENERGY_COLUMNS) == [f"energy_{c}_pj" for c in COMPONENTS]
    new = df["array.rows"] == 16
    buffers = df[list(SRAM_BUFFER_COLUMNS)]
    assert buffers[~new].isna().all().all() and df.energy_sram_pj[~new].gt(0).all()
    np.testing.assert_allclose(buffers[new].sum(axis=1), df.energy_sram_pj[new], rtol=1e-12)
    assert (df.energy_sram_act_pj[new] > 0).all() and (df.energy_sram_wgt_pj[new] > 0).all()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT value FROM satmem_store WHERE key = 'schema_version'"
                           ).fetchall() == [("1",)]


def test_file_that_is_not_a_database_is_one_line(capsys, tmp_path):
    db = tmp_path / "notes.duckdb"
    db.write_text("a text file\n" * 100)
    line = one_error_line(*sweep(capsys, "--show", db))
    assert line.startswith(f"satmem: error: cannot open results store {db}: ")
    assert db.read_text() == "a text file\n" * 100


# --- losses --------------------------------------------------------------------------------

def snapshot_while_open(tmp_path, n_points: int):
    """A store as a killed sweep leaves it: its files copied while the writer holds them (the
    rows since the last checkpoint only in the write-ahead log)."""
    db = tmp_path / "live.duckdb"
    spec = parse_spec({"base": "tiny", "grid": {"array.rows": [4, 8], "dram.channels": [1, 2]},
                       "workloads": GEMMS})
    points = spec.points()[:n_points]
    store = ResultStore(db)
    store.ensure_columns(CORE_COLUMNS)
    for p in points:
        _store_point(store, "t", p, run_point(p.config, p.workload))
    copy = tmp_path / "killed.duckdb"
    for src, dst in ((db, copy), (db.with_name(db.name + ".wal"), copy.with_name(copy.name +
                                                                                ".wal")),
                     (points_log_path(db), points_log_path(copy))):
        shutil.copyfile(src, dst)
    store.close()
    return copy, spec, points


def test_half_a_write_ahead_log_is_reported_and_the_lost_points_recomputed(capsys, tmp_path):
    copy, spec, points = snapshot_while_open(tmp_path, 8)
    wal = copy.with_name(copy.name + ".wal")
    wal_bytes = wal.stat().st_size
    assert wal_bytes > 0
    with ResultStore(copy, read_only=True) as intact:
        assert len(intact.done_keys()) == 8 and intact.notes == []
    with open(wal, "r+b") as f:
        f.truncate(wal_bytes // 2)
    with ResultStore(copy) as store:  # DuckDB itself opens it without a word
        kept = len(store.done_keys())
        assert kept < 8
        assert store.notes == [
            f"results store {copy} holds {kept} points but its log lists {8 - kept} more as "
            f"finished; a write-ahead log of {wal_bytes // 2:,} bytes left by a run that did "
            "not close the store was replayed, probably only in part: this run recomputes them"]
    code, out, err = sweep(capsys, "--show", copy)
    assert code == 0 and out.count("| gemm 16x") == kept
    assert err == (f"results store {copy} holds {kept} points but its log lists {8 - kept} more "
                   "as finished; the database lost them (a write-ahead log replayed only in "
                   "part at an earlier open, or a file truncated or replaced by an older copy): "
                   "a rerun recomputes them\n")
    # the sweep over the same points recomputes exactly the lost ones, and says why
    lines: list[str] = []
    res = run_sweep(spec, copy, workers=0, progress=lines.append)
    assert res.skipped == kept and res.computed == 8 - kept and res.failed == 0
    assert lines[0].startswith(f"results store {copy} holds {kept} points but its log lists")
    with ResultStore(copy, read_only=True) as store:
        assert store.done_keys() == {p.keys for p in points} and store.notes == []


def test_database_replaced_under_its_log_is_reported(tmp_path):
    copy, _, _ = snapshot_while_open(tmp_path, 2)
    copy.unlink()
    copy.with_name(copy.name + ".wal").unlink()
    with ResultStore(copy) as store:
        assert store.notes == [f"results store {copy}: its points log {copy.name}.points.log "
                               "belongs to another store (the database was replaced); starting "
                               "a new log"]
    with ResultStore(copy, read_only=True) as store:
        assert store.notes == []


def test_store_held_by_a_running_sweep_is_refused_with_its_progress(capsys, tmp_path):
    db = tmp_path / "r.duckdb"
    holder = textwrap.dedent(f"""
        import sys
        from reports.store import CORE_COLUMNS, ResultStore
        store = ResultStore({str(db)!r})
        store.ensure_columns(CORE_COLUMNS)
        for i in range(3):
            store.put({{"config_key": "c", "workload_key": str(i)}})
        print("ready", flush=True)
        sys.stdin.readline()
        store.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        line = one_error_line(*sweep(capsys, "--show", db))
        assert line == (f"satmem: error: results store {db} is in use by a running sweep (3 "
                        "points finished so far); show it when the sweep ends")
    finally:
        proc.communicate("\n", timeout=60)
    assert len(read_results(db)) == 3


def test_sigkilled_sweep_keeps_every_finished_point_with_no_false_alarm(tmp_path):
    spec = write_spec(tmp_path, grid={"array.rows": [4, 8], "dram.channels": [1, 2]},
                      workloads=[*GEMMS, {"gemm": [64, 64, 256]}])
    db = tmp_path / "r.duckdb"
    argv = [sys.executable, "-m", "reports.cli", "sweep", str(spec), "--db", str(db),
            "--workers", "0"]
    stamp = simulator_stamp()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    finished = []
    for line in proc.stderr:
        if line.startswith("["):
            finished.append(line)
        if len(finished) == 4:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode == -9 and db.with_name(db.name + ".wal").exists()
    with ResultStore(db, read_only=True) as store:  # the WAL replays whole: nothing lost
        assert len(store.done_keys()) >= 4 and store.notes == []
        stored = len(store.done_keys())
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if simulator_stamp() != stamp:  # every point's key changed: all are recomputed, rightly
        pytest.skip("hwsim or dataflow sources were edited while this test ran")
    assert r.returncode == 0 and f"{12 - stored} points computed (0 failed), {stored} already " \
        "stored, 0 left" in r.stdout, r.stdout + r.stderr
    assert not [x for x in r.stderr.splitlines() if x.startswith("results store")]
