"""The sweep results store: one DuckDB table, ``results``, one row per (config, workload) point.

Columns (:func:`schema`): the keys and the sweep's name; the workload (``kind``, ``workload``
label, GEMM ``m, n, k, sparsity, dataflow``, model ``model, method, pattern, batch,
model_options, compile_options, compare_dense``); every config field under its dotted name as
in ``satmem info`` (``array.rows``, ``dram.channels``; the config's name is ``config``; tuples
are JSON); the metrics (``cycles, utilisation, macs, dram_read, dram_write, dram_bytes,
energy_pj, seconds`` simulated, ``dense_cycles, speedup`` for models run with
``compare_dense``); the energy per component ``energy_<component>_pj`` (:data:`ENERGY_COLUMNS`
and ``energy_tier_<name>_pj`` per lookup tier used, :mod:`hwsim.energy`), with the SRAM
component's split by buffer beside its total: ``energy_sram_act_pj``, ``energy_sram_wgt_pj``,
``energy_sram_acc_pj``, ``energy_sram_idx_pj``, ``energy_sram_vec_pj`` and
``energy_sram_hot_rows_pj`` (the lookup engine's hot-row cache) sum to ``energy_sram_pj``, so
the run's ``energy_pj`` is the sum of the other energy columns, not of all of them (these
columns are added to a store written before they were kept, whose old rows read NULL there;
no schema version change: they are not core columns); ``error`` (NULL when the point
succeeded), ``wall_s`` (host seconds) and ``finished_at``. Query it with DuckDB directly
(quote dotted names: ``"array.rows"``) or with :func:`read_results`.

A row is keyed by ``config_key`` (:meth:`hwsim.AcceleratorConfig.key`) and ``workload_key``
(:meth:`reports.sweep.Workload.key`). A batch of rows is committed in one transaction as its
points complete (:meth:`ResultStore.put_many`), so an interrupted sweep keeps every committed
batch and a rerun asks :meth:`ResultStore.done_keys` which points to skip. Columns are added
when a row brings a new one (a config field hwsim gained since the file was written); old rows
read NULL there. Integers are DuckDB ``BIGINT``:
a value outside the signed 64-bit range is refused (:class:`StoreValueError`, naming the
column) before anything is written.

The schema is versioned: a table ``satmem_store`` holds ``schema_version``
(:data:`SCHEMA_VERSION`) and the store's id. A file whose ``results`` table lacks satmem's
columns, or has them with other types, is refused by name (:class:`StoreError`), never
altered; a store of a newer schema is refused; a store written before the version existed
(the same columns, no ``satmem_store``) is adopted as version 1.

Beside the file, ``<file>.points.log`` lists every point committed (appended and flushed after
each commit). On opening, points the log lists that the table lacks are reported in
:attr:`ResultStore.notes`: DuckDB replays a truncated write-ahead log without complaint, up to
the cut, so a count against an independent log is what shows the loss (the next run recomputes
those points). What this cannot see: a loss of the log's tail together with the rows' (a
filesystem rolled back as a whole), and damage inside the database file that DuckDB's own
checksums do not catch.

Only one process may hold a DuckDB file open for writing: the sweep's client writes, its
Dask workers only compute. While a sweep runs, a read-only open is refused with the number of
points finished so far, read from the log.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import pandas as pd

__all__ = [
    "ENERGY_COLUMNS",
    "INT64_MAX",
    "INT64_MIN",
    "METRIC_COLUMNS",
    "SCHEMA_VERSION",
    "SRAM_BUFFER_COLUMNS",
    "WORKLOAD_COLUMNS",
    "ResultStore",
    "StoreError",
    "StoreValueError",
    "check_int64",
    "config_columns",
    "markdown_table",
    "points_log_path",
    "read_results",
    "schema",
]

TABLE = "results"
META_TABLE = "satmem_store"
SCHEMA_VERSION = 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

META_COLUMNS = {"config_key": "VARCHAR", "workload_key": "VARCHAR", "sweep": "VARCHAR"}
WORKLOAD_COLUMNS = {
    "kind": "VARCHAR", "workload": "VARCHAR", "m": "BIGINT", "n": "BIGINT", "k": "BIGINT",
    "sparsity": "VARCHAR", "dataflow": "VARCHAR", "model": "VARCHAR", "method": "VARCHAR",
    "pattern": "VARCHAR", "batch": "BIGINT", "model_options": "VARCHAR",
    "compile_options": "VARCHAR", "compare_dense": "BOOLEAN",
}
METRIC_COLUMNS = {
    "cycles": "BIGINT", "utilisation": "DOUBLE", "macs": "BIGINT", "dram_read": "BIGINT",
    "dram_write": "BIGINT", "dram_bytes": "BIGINT", "energy_pj": "DOUBLE", "seconds": "DOUBLE",
    "dense_cycles": "BIGINT", "speedup": "DOUBLE",
}
SRAM_BUFFER_COLUMNS = {f"energy_sram_{b}_pj": "DOUBLE" for b in
                       ("act", "wgt", "acc", "idx", "vec", "hot_rows")}
"""The ``sram`` component by buffer (:data:`hwsim.energy.SRAM_COMPONENTS`), picojoules: parts
of ``energy_sram_pj``, not further terms of ``energy_pj``."""
ENERGY_COLUMNS = {**{f"energy_{c}_pj": "DOUBLE" for c in
                     ("array", "sore", "vector", "lookup", "sram")}, **SRAM_BUFFER_COLUMNS,
                  **{f"energy_{c}_pj": "DOUBLE" for c in ("dram", "static")}}
"""Energy per component (:data:`hwsim.energy.COMPONENTS`, in its order), picojoules; not core
columns: a store written before them gains them on its next write, its rows NULL there."""
RUN_COLUMNS = {"error": "VARCHAR", "wall_s": "DOUBLE", "finished_at": "TIMESTAMP"}
# the columns every satmem store has, whatever its configs (version 1)
CORE_COLUMNS = {**META_COLUMNS, **WORKLOAD_COLUMNS, **METRIC_COLUMNS, **RUN_COLUMNS}
_NOT_CONFIG = set(CORE_COLUMNS)
_SQL_TYPES = {int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", str: "VARCHAR"}


class StoreError(OSError):
    """The file is not a results store this satmem can use (foreign, newer, damaged, busy)."""


class StoreValueError(ValueError):
    """A value cannot be stored: an integer outside the signed 64-bit range of ``BIGINT``.

    Parameters
    ----------
    column : str
    value : object
    """

    def __init__(self, column: str, value: Any):
        self.column, self.value = column, value
        super().__init__(f"{column} = {value} is outside the results store's 64-bit integer "
                         f"range ({INT64_MIN} to {INT64_MAX})")


def check_int64(column: str, value: Any) -> None:
    """Raise :class:`StoreValueError` if ``value`` is an integer ``BIGINT`` cannot hold."""
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise StoreValueError(column, value)


def points_log_path(path: str | Path) -> Path:
    """The log of committed points kept beside a store (``<file>.points.log``)."""
    p = Path(path)
    return p.with_name(p.name + ".points.log")


def config_columns(cfg) -> dict[str, tuple[str, Any]]:
    """Every field of an :class:`~hwsim.AcceleratorConfig` as ``{column: (SQL type, value)}``.

    Columns are dotted paths (``array.rows``); the config's ``name`` is ``config``; tuples
    (``array.patterns``, ``lookup.tiers``) are JSON text.
    """
    return dict(_config_columns(cfg))


@functools.lru_cache(maxsize=1024)
def _config_columns(cfg) -> tuple[tuple[str, tuple[str, Any]], ...]:
    """:func:`config_columns` of a (frozen, hashable) config, computed once: a sweep's rows
    share a few configs, and type hints are slow to read."""
    out: dict[str, tuple[str, Any]] = {}

    def walk(obj: Any, values: dict, prefix: str) -> None:
        hints = get_type_hints(type(obj))
        for f in fields(obj):
            if is_dataclass(getattr(obj, f.name)):
                walk(getattr(obj, f.name), values[f.name], f"{prefix}{f.name}.")
                continue
            col = "config" if not prefix and f.name == "name" else prefix + f.name
            v = values[f.name]
            out[col] = (_SQL_TYPES.get(hints[f.name], "VARCHAR"),
                        json.dumps(v) if isinstance(v, list | dict) else v)

    walk(cfg, cfg.to_dict(), "")
    return tuple(out.items())


def schema(cfg) -> dict[str, str]:
    """Column name to SQL type of the results of sweeps over configs shaped like ``cfg``."""
    cols = {c: typ for c, (typ, _) in config_columns(cfg).items()}
    return {**META_COLUMNS, **WORKLOAD_COLUMNS, **cols, **METRIC_COLUMNS, **RUN_COLUMNS,
            **ENERGY_COLUMNS}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, so that it never lands inside a DuckDB write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got and callable(old):
            old(signal.SIGINT, None)


# --- the log of committed points ------------------------------------------------------------

def _read_log(path: Path) -> tuple[str | None, set[tuple[str, str]]] | None:
    """``(store id, points)`` replayed from a points log, or None when there is none.

    A torn last line (a write cut by a kill) and lines that do not parse are skipped.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot read the points log {path}: {e.strerror or e}") from None
    store_id, points = None, set()
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if i == 0 and isinstance(rec, dict):
            store_id = rec.get("store")
        elif isinstance(rec, list) and len(rec) == 3 and rec[0] in "+-":
            key = (str(rec[1]), str(rec[2]))
            if rec[0] == "+":
                points.add(key)
            else:
                points.discard(key)
    return store_id, points


class _PointsLog:
    """Appends ``["+", ck, wk]`` / ``["-", ck, wk]`` lines, each flushed to disk."""

    def __init__(self, path: Path, store_id: str, points: Iterable[tuple[str, str]] | None):
        self.path = path
        if points is not None:  # start the log afresh from what the table holds
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"satmem_points_log": 1, "store": store_id}) + "\n")
                f.writelines(json.dumps(["+", ck, wk]) + "\n" for ck, wk in sorted(points))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def write(self, op: str, keys: Iterable[tuple[str, str]]) -> None:
        self.file.writelines(json.dumps([op, ck, wk]) + "\n" for ck, wk in keys)
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


class ResultStore:
    """A DuckDB file holding sweep results.

    Parameters
    ----------
    path : str or Path
        The ``.duckdb`` file; created, with its directory, when missing (unless read-only).
    read_only : bool
        Open for reading (``satmem sweep --show``); the file must exist.

    Attributes
    ----------
    notes : list of str
        What opening found that the user should hear, one line each: points the log lists
        that the table lacks, a log that belongs to another store, a schema adopted.

    Raises
    ------
    OSError
        The file is missing (read-only), not a DuckDB file, or held by another process.
    StoreError
        (an OSError) The file is a DuckDB database but not a store this satmem can use: a
        foreign ``results`` table, another program's tables, a newer schema; or, read-only,
        a running sweep holds it (the message says how many points it has finished).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False):
        import duckdb

        self.path = Path(path)
        self.read_only = read_only
        self.notes: list[str] = []
        self._log: _PointsLog | None = None
        if read_only and not self.path.is_file():
            raise FileNotFoundError(f"no results store at {self.path}")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        wal = self.path.with_name(self.path.name + ".wal")
        wal_bytes = wal.stat().st_size if wal.is_file() else 0
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as e:
            if read_only and "lock" in str(e).lower():
                raise self._busy() from None
            raise OSError(f"cannot open results store {self.path}: {_first_line(e)}") from None
        try:
            self._columns: dict[str, str] = self._read_columns()
            self.store_id = self._check_schema()
            self._check_log(wal_bytes)
        except BaseException:
            self.close()
            raise

    def _busy(self) -> StoreError:
        log = _read_log(points_log_path(self.path))
        done = "" if log is None else f" ({len(log[1])} points finished so far)"
        return StoreError(f"results store {self.path} is in use by a running sweep{done}; "
                          "show it when the sweep ends")

    def _read_columns(self) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [TABLE]).fetchall()
        return dict(rows)

    def _refuse(self, what: str) -> StoreError:
        return StoreError(f"{self.path} is not a satmem results store: {what}; give the sweep "
                          "another --db")

    def _check_schema(self) -> str | None:
        """Refuse what is not ours; adopt an unversioned store; create a new store's metadata.

        Returns the store's id (None for an unversioned store opened read-only).
        """
        tables = {t for (t,) in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()}
        meta: dict[str, str] = {}
        if META_TABLE in tables:
            try:
                meta = dict(self.con.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
            except Exception as e:  # a table of that name that is not ours
                raise self._refuse(f"its table {META_TABLE!r} is not satmem's "
                                   f"({_first_line(e)})") from None
            version = meta.get("schema_version")
            if not (version or "").isdigit():
                raise self._refuse(f"its table {META_TABLE!r} has no schema_version")
            if int(version) > SCHEMA_VERSION:
                raise StoreError(f"results store {self.path} has schema version {version}, "
                                 f"written by a newer satmem; this one reads version "
                                 f"{SCHEMA_VERSION} and older")
        elif tables - {TABLE}:
            raise self._refuse(f"it holds another program's tables "
                               f"({', '.join(sorted(tables - {TABLE}))})")
        if TABLE in tables:
            missing = [c for c in CORE_COLUMNS if c not in self._columns]
            if missing:
                shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more"
                                                  if len(missing) > 4 else "")
                raise self._refuse(f"its table {TABLE!r} has no column {shown}")
            for c, t in CORE_COLUMNS.items():
                if self._columns[c] != t:
                    raise self._refuse(f"column {c!r} of its table {TABLE!r} is "
                                       f"{self._columns[c]}, not {t}")
        if meta or self.read_only:
            return meta.get("store_id")
        store_id = uuid.uuid4().hex
        if TABLE in tables:
            self.notes.append(f"results store {self.path}: written before store schemas were "
                              f"versioned; marked as schema version {SCHEMA_VERSION}")
        with _sigint_deferred():
            self.con.execute(f"CREATE TABLE {META_TABLE} (key VARCHAR PRIMARY KEY, "
                             "value VARCHAR)")
            self.con.execute(f"INSERT INTO {META_TABLE} VALUES ('schema_version', ?), "
                             "('store_id', ?)", [str(SCHEMA_VERSION), store_id])
            self.con.execute("CHECKPOINT")
        return store_id

    def _check_log(self, wal_bytes: int) -> None:
        """Compare the table with the points log; start the log where there is none."""
        log_path = points_log_path(self.path)
        log = _read_log(log_path)
        stored = self.done_keys(include_failed=True)
        if log is not None and self.store_id is not None and log[0] != self.store_id:
            self.notes.append(f"results store {self.path}: its points log {log_path.name} "
                              "belongs to another store (the database was replaced)"
                              + ("" if self.read_only else "; starting a new log"))
            log = None
        if log is not None:
            lost = log[1] - stored
            if lost:
                wal = (f"; a write-ahead log of {wal_bytes:,} bytes left by a run that did "
                       "not close the store was replayed, probably only in part" if wal_bytes
                       else "; the database lost them (a write-ahead log replayed only in "
                       "part at an earlier open, or a file truncated or replaced by an older "
                       "copy)")
                who = "a rerun" if self.read_only else "this run"
                self.notes.append(
                    f"results store {self.path} holds {len(stored)} points but its log lists "
                    f"{len(lost)} more as finished{wal}: {who} recomputes them")
        if self.read_only:
            return
        restart = log is None or log[0] is None
        self._log = _PointsLog(log_path, self.store_id or "", stored if restart else None)

    # --- writing --------------------------------------------------------------------------
    def ensure_columns(self, columns: Mapping[str, str]) -> None:
        """Create the table, or add the columns it lacks; ``columns`` maps name to SQL type.

        A new table has every column of :data:`CORE_COLUMNS` (the schema's version 1), whatever
        ``columns`` says.
        """
        if not self._columns:
            columns = {**CORE_COLUMNS, **{c: t for c, t in columns.items()
                                          if c not in CORE_COLUMNS}}
            cols = ", ".join(f"{_quote(c)} {t}" for c, t in columns.items())
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({cols})")
        else:
            for c, t in columns.items():
                if c not in self._columns:
                    self.con.execute(f"ALTER TABLE {TABLE} ADD COLUMN {_quote(c)} {t}")
        self._columns = self._read_columns()

    def put(self, row: Mapping[str, Any]) -> None:
        """Store one point, replacing an earlier row with the same keys; committed on return.

        Values that are lists, tuples or dicts are stored as JSON text. A column the table
        lacks is added with the type of its value (call :meth:`ensure_columns` first to fix
        the types of columns that may hold NULL).

        Raises
        ------
        StoreValueError
            An integer outside the 64-bit range (nothing is written).
        """
        self.put_many([row])

    def put_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Store points in one transaction, replacing earlier rows with the same keys: on return
        every row is committed and listed in the points log; a kill before leaves none of them.

        As :meth:`put`, for a batch: one ``DELETE`` and one ``INSERT`` of column lists
        (``UNNEST``), about 0.2 ms of CPU a row instead of a transaction's 7 ms. A row without
        some column stores NULL there; of two rows with the same keys the later one is kept.

        Raises
        ------
        StoreValueError
            An integer outside the 64-bit range in any row (nothing is written).
        """
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            row = {k: (json.dumps(v) if isinstance(v, list | tuple | dict) else v)
                   for k, v in row.items()}
            for c, v in row.items():
                check_int64(c, v)
            by_key[(row["config_key"], row["workload_key"])] = row
        if not by_key:
            return
        batch = list(by_key.values())
        cols = list(dict.fromkeys(c for row in batch for c in row))
        new = [c for c in cols if c not in self._columns]
        if new:
            first = {c: next((r[c] for r in batch if r.get(c) is not None), None) for c in new}
            self.ensure_columns({c: _sql_type(v) for c, v in first.items()})
        keys = list(by_key)
        values = [[row.get(c) for row in batch] for c in cols]
        # lists cast to the columns' types: DuckDB binds each as one typed array
        select = ", ".join(f"UNNEST(?::{self._columns[c]}[])" for c in cols)
        with _sigint_deferred():
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(
                    f"DELETE FROM {TABLE} USING (SELECT UNNEST(?::VARCHAR[]) AS ck, "
                    "UNNEST(?::VARCHAR[]) AS wk) AS gone WHERE config_key = gone.ck AND "
                    "workload_key = gone.wk", [[k[0] for k in keys], [k[1] for k in keys]])
                self.con.execute(
                    f"INSERT INTO {TABLE} ({', '.join(map(_quote, cols))}) SELECT {select}",
                    values)
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            if self._log is not None:  # after the commit: the log never lists an unstored row
                self._log.write("+", keys)

    def delete(self, keys: Iterable[tuple[str, str]]) -> None:
        """Remove the rows of some ``(config_key, workload_key)`` points."""
        keys = list(keys)
        with _sigint_deferred():
            for ck, wk in keys:
                self.con.execute(
                    f"DELETE FROM {TABLE} WHERE config_key = ? AND workload_key = ?", [ck, wk])
            if self._log is not None:
                self._log.write("-", keys)

    # --- reading --------------------------------------------------------------------------
    def done_keys(self, *, include_failed: bool = False) -> set[tuple[str, str]]:
        """``(config_key, workload_key)`` of stored points (by default only successful ones)."""
        if not self._columns:
            return set()
        where = "" if include_failed else " WHERE error IS NULL"
        rows = self._query(f"SELECT config_key, workload_key FROM {TABLE}{where}")
        return {(a, b) for a, b in rows.fetchall()}

    def frame(self) -> pd.DataFrame:
        """All rows, in completion order."""
        if not self._columns:
            return pd.DataFrame()
        return self._query(f"SELECT * FROM {TABLE} ORDER BY finished_at").df()

    def _query(self, sql: str):
        import duckdb

        try:
            return self.con.execute(sql)
        except duckdb.Error as e:  # damage DuckDB found while reading
            raise StoreError(f"cannot read results store {self.path}: "
                             f"{_first_line(e)}") from None

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self.con.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(path: str | Path, *, notes: Callable[[str], None] | None = None
                 ) -> pd.DataFrame:
    """The ``results`` table of a store, as a DataFrame; ``notes`` hears what opening found
    (:attr:`ResultStore.notes`)."""
    with ResultStore(path, read_only=True) as store:
        for line in store.notes:
            (notes or (lambda _: None))(line)
        return store.frame()


def _is_energy(column: str) -> bool:
    """An energy component column (``energy_array_pj``; config fields are ``energy.NAME``)."""
    return column.startswith("energy_") and column.endswith("_pj")


def markdown_table(df: pd.DataFrame, title: str | None = None) -> str:
    """A Markdown table of stored results: the config fields that vary, the workload, metrics.

    Rows are ordered by sweep, workload and the varying config fields; the ``speedup`` and
    ``error`` columns show only when some row has one.
    """
    head = f"# {title}\n\n" if title else ""
    if df.empty:
        return head + "(no results)\n"
    cfg_cols = [c for c in df.columns if c not in _NOT_CONFIG and not _is_energy(c)
                and df[c].astype(str).nunique() > 1]
    lead = ["sweep"] if df["sweep"].nunique() > 1 else []
    out = df.sort_values([*lead, "workload", *cfg_cols, "config_key"], kind="stable")
    t = out[[*lead, "workload", *cfg_cols]].copy()

    def fmt(col: str, f: Callable[[Any], str]) -> pd.Series:
        return out[col].map(lambda v: "" if pd.isna(v) else f(v))

    t["cycles"] = fmt("cycles", lambda v: f"{int(v):,}")
    t["util"] = fmt("utilisation", lambda v: f"{v:.1%}")
    t["DRAM MB"] = fmt("dram_bytes", lambda v: f"{v / 1e6:,.3f}")
    t["energy uJ"] = fmt("energy_pj", lambda v: f"{v / 1e6:,.3f}")
    t["time us"] = fmt("seconds", lambda v: f"{v * 1e6:,.2f}")
    if out["speedup"].notna().any():
        t["speedup"] = fmt("speedup", lambda v: f"{v:.3f}x")
    if out["error"].notna().any():
        t["error"] = out["error"].fillna("")
    return head + t.to_markdown(index=False) + "\n"
