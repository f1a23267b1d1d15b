"""The sweep results store: one DuckDB table, ``results``, one row per (config, workload) point.

Columns (:func:`schema`): the keys and the sweep's name; the workload (``kind``, ``workload``
label, GEMM ``m, n, k, sparsity, dataflow``, model ``model, method, pattern, batch,
model_options, compile_options, compare_dense``); every config field under its dotted name as
in ``satmem info`` (``array.rows``, ``dram.channels``; the config's name is ``config``; tuples
are JSON); the metrics (``cycles, utilisation, macs, dram_read, dram_write, dram_bytes,
energy_pj, seconds`` simulated, ``dense_cycles, speedup`` for models run with
``compare_dense``); ``error`` (NULL when the point succeeded), ``wall_s`` (host seconds) and
``finished_at``. Query it with DuckDB directly (quote dotted names: ``"array.rows"``) or
with :func:`read_results`.

A row is keyed by ``config_key`` (:meth:`hwsim.AcceleratorConfig.key`) and ``workload_key``
(:meth:`reports.sweep.Workload.key`). Each row is committed as its point completes, so an
interrupted sweep keeps every finished point and a rerun asks :meth:`ResultStore.done_keys`
which points to skip. Columns are added when a row brings a new one (a config field hwsim
gained since the file was written); old rows read NULL there.

Only one process may hold a DuckDB file open for writing: the sweep's client writes, its
Dask workers only compute.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import pandas as pd

__all__ = [
    "METRIC_COLUMNS",
    "WORKLOAD_COLUMNS",
    "ResultStore",
    "config_columns",
    "markdown_table",
    "read_results",
    "schema",
]

TABLE = "results"

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
RUN_COLUMNS = {"error": "VARCHAR", "wall_s": "DOUBLE", "finished_at": "TIMESTAMP"}
_NOT_CONFIG = {*META_COLUMNS, *WORKLOAD_COLUMNS, *METRIC_COLUMNS, *RUN_COLUMNS}
_SQL_TYPES = {int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", str: "VARCHAR"}


def config_columns(cfg) -> dict[str, tuple[str, Any]]:
    """Every field of an :class:`~hwsim.AcceleratorConfig` as ``{column: (SQL type, value)}``.

    Columns are dotted paths (``array.rows``); the config's ``name`` is ``config``; tuples
    (``array.patterns``, ``lookup.tiers``) are JSON text.
    """
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
    return out


def schema(cfg) -> dict[str, str]:
    """Column name to SQL type of the results of sweeps over configs shaped like ``cfg``."""
    cols = {c: typ for c, (typ, _) in config_columns(cfg).items()}
    return {**META_COLUMNS, **WORKLOAD_COLUMNS, **cols, **METRIC_COLUMNS, **RUN_COLUMNS}


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


class ResultStore:
    """A DuckDB file holding sweep results.

    Parameters
    ----------
    path : str or Path
        The ``.duckdb`` file; created, with its directory, when missing (unless read-only).
    read_only : bool
        Open for reading (``satmem sweep --show``); the file must exist.

    Raises
    ------
    OSError
        The file is missing (read-only), not a DuckDB file, or held by another process.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False):
        import duckdb

        self.path = Path(path)
        if read_only and not self.path.is_file():
            raise FileNotFoundError(f"no results store at {self.path}")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise OSError(f"cannot open results store {self.path}: {first}") from None
        self._columns: dict[str, str] = self._read_columns()

    def _read_columns(self) -> dict[str, str]:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position", [TABLE]).fetchall()
        return dict(rows)

    # --- writing --------------------------------------------------------------------------
    def ensure_columns(self, columns: Mapping[str, str]) -> None:
        """Create the table, or add the columns it lacks; ``columns`` maps name to SQL type."""
        if not self._columns:
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
        """
        row = {k: (json.dumps(v) if isinstance(v, list | tuple | dict) else v)
               for k, v in row.items()}
        if any(c not in self._columns for c in row):
            self.ensure_columns({c: _sql_type(v) for c, v in row.items()})
        cols = list(row)
        with _sigint_deferred():
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(
                    f"DELETE FROM {TABLE} WHERE config_key = ? AND workload_key = ?",
                    [row["config_key"], row["workload_key"]])
                self.con.execute(
                    f"INSERT INTO {TABLE} ({', '.join(map(_quote, cols))}) "
                    f"VALUES ({', '.join('?' for _ in cols)})", [row[c] for c in cols])
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise

    def delete(self, keys: Iterable[tuple[str, str]]) -> None:
        """Remove the rows of some ``(config_key, workload_key)`` points."""
        for ck, wk in keys:
            self.con.execute(f"DELETE FROM {TABLE} WHERE config_key = ? AND workload_key = ?",
                             [ck, wk])

    # --- reading --------------------------------------------------------------------------
    def done_keys(self, *, include_failed: bool = False) -> set[tuple[str, str]]:
        """``(config_key, workload_key)`` of stored points (by default only successful ones)."""
        if not self._columns:
            return set()
        where = "" if include_failed else " WHERE error IS NULL"
        rows = self.con.execute(f"SELECT config_key, workload_key FROM {TABLE}{where}")
        return {(a, b) for a, b in rows.fetchall()}

    def frame(self) -> pd.DataFrame:
        """All rows, in completion order."""
        if not self._columns:
            return pd.DataFrame()
        return self.con.execute(f"SELECT * FROM {TABLE} ORDER BY finished_at").df()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(path: str | Path) -> pd.DataFrame:
    """The ``results`` table of a store, as a DataFrame."""
    with ResultStore(path, read_only=True) as store:
        return store.frame()


def markdown_table(df: pd.DataFrame, title: str | None = None) -> str:
    """A Markdown table of stored results: the config fields that vary, the workload, metrics.

    Rows are ordered by sweep, workload and the varying config fields; the ``speedup`` and
    ``error`` columns show only when some row has one.
    """
    head = f"# {title}\n\n" if title else ""
    if df.empty:
        return head + "(no results)\n"
    cfg_cols = [c for c in df.columns if c not in _NOT_CONFIG
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
