"""Design-space sweeps: a base config, a grid of overrides and workloads, run on Dask.

A sweep spec is a YAML file::

    name: example                  # optional; default: the file's stem (names sweep-NAME/)
    base: small8                   # a preset, a config YAML path (relative to the spec's
                                   # directory) or an inline config mapping (may say base: PRESET)
    grid:                          # cartesian product of these overrides; a scalar is one value
      array.rows: [8, 16]          # SECTION.FIELD or a top-level field (clock_mhz, queue_depth)
      dram.channels: [1, 2]
    workloads:
      - {gemm: [128, 128, 128]}                               # M, N, K; dataflow ws, dense
      - {gemm: [128, 128, 256], sparsity: "2:8", dataflow: os}
      - {model: pythia70m, method: bdwp, pattern: "2:8", batch: 1,
         options: {seq_len: 32, n_layers: 1},   # dataflow.zoo.get_model options
         compile: {interleave: false},           # dataflow.CompileOptions fields
         compare_dense: false}                   # also run method dense: speedup column
                                                 # (default: true for a sparse method)

Every (config, workload) pair is a point. GEMMs run :func:`dataflow.simulate_gemm` in timing mode;
models run :func:`dataflow.simulate_model` (what ``satmem simulate --model`` runs). Points run
as Dask tasks on a local cluster (single-threaded worker processes, one per core) or on an
existing cluster (``scheduler="tcp://host:8786"``; its workers need satmem installed), or in
this process (``workers=0``, same code path without Dask). A task runs a batch of points
(:func:`batches`: a model alone, GEMMs up to :data:`MAX_BATCH` together) and returns their
results; each finished batch is committed to the DuckDB store (:mod:`reports.store`) in one
transaction (in this process, the points finished within :data:`BATCH_SECONDS`), keyed by the
config's :meth:`~hwsim.AcceleratorConfig.key` and the workload's :meth:`GemmWorkload.key`. A
killed sweep keeps every committed batch; a rerun skips the points stored without error and
runs the rest (missing or failed). A point that raises is stored with its error and the sweep
goes on.

The whole spec is checked before anything runs: every grid config is built (a bad field gives
hwsim's :class:`~hwsim.config.ConfigError`), every workload field is checked and every integer
must fit the store's 64-bit columns (:class:`SpecError` names the field).

Ctrl-C stops a sweep with one line (how many points are stored; the same command resumes):
the local cluster's workers ignore SIGINT (:func:`dask_setup`, run in each worker), the client
closes them, and Dask's shutdown chatter is silenced.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import Any

import yaml

from hwsim.config import DATAFLOWS, AcceleratorConfig, ConfigError, load_config, parse_nm

from .progress import stage
from .store import (
    INT64_MAX,
    INT64_MIN,
    METRIC_COLUMNS,
    ResultStore,
    StoreValueError,
    check_int64,
    config_columns,
    schema,
)

__all__ = [
    "METHODS",
    "GemmWorkload",
    "ModelWorkload",
    "Point",
    "SpecError",
    "SweepInterrupted",
    "SweepResult",
    "SweepSpec",
    "batches",
    "default_db",
    "default_workers",
    "load_spec",
    "parse_spec",
    "run_point",
    "run_points",
    "run_sweep",
]

METHODS = ("dense", "srste", "bdwp", "transposable")
_SPEC_KEYS = ("name", "base", "grid", "workloads")
_GRID_KEY = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


class SpecError(ValueError):
    """A sweep spec field has a value outside what is allowed.

    Parameters
    ----------
    field : str
        Path of the field in the spec, e.g. ``"workloads[1].gemm"``.
    value : object
    allowed : str
        What is allowed (or why the value is not).
    """

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"sweep spec field {field!r} = {value!r} is not allowed: {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_ints(value: Any, where: str) -> None:
    """Every integer in a parsed spec value fits the store's BIGINT columns."""
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_ints(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_ints(v, f"{where}.{k}")
    elif _is_int(value) and not INT64_MIN <= value <= INT64_MAX:
        raise SpecError(where, value, f"expected an integer from {INT64_MIN} to {INT64_MAX} "
                        "(the results store's 64-bit range)")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def simulator_stamp() -> str:
    """Hash of the simulator and compiler sources (``hwsim``, ``dataflow``): part of every
    point's key, so results stored by an older simulator are recomputed, not reused."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted([*(root / "hwsim").glob("*.py"), *(root / "dataflow").glob("**/*.py")]):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


_STAMP = simulator_stamp()


@lru_cache(maxsize=1024)
def _config_key(config: AcceleratorConfig) -> str:
    return config.key()  # a sweep's points share a few configs: hash each once


# --- workloads: two siblings with one protocol (key, label, columns, run) ------------------

@dataclass(frozen=True)
class GemmWorkload:
    """C[M,N] = A[M,K]·B[K,N], B optionally N:M sparse along K, in timing mode."""

    m: int
    n: int
    k: int
    sparsity: str | None = None
    dataflow: str = "ws"
    kind = "gemm"

    def key(self) -> str:
        """Content hash of the normalised workload (the sweep's resume key, with the config's)."""
        return _hash({"kind": self.kind, "m": self.m, "n": self.n, "k": self.k,
                      "sparsity": self.sparsity, "dataflow": self.dataflow})

    @property
    def label(self) -> str:
        return f"gemm {self.m}x{self.n}x{self.k} {self.dataflow}" + (
            f" {self.sparsity}" if self.sparsity else "")

    def columns(self) -> dict[str, Any]:
        return {"kind": self.kind, "workload": self.label, "m": self.m, "n": self.n,
                "k": self.k, "sparsity": self.sparsity, "dataflow": self.dataflow}

    def run(self, config: AcceleratorConfig) -> dict[str, Any]:
        from dataflow import simulate_gemm

        st = simulate_gemm(self.m, self.n, self.k, config, sparsity=self.sparsity,
                           dataflow=self.dataflow, mode="timing")
        rd, wr = int(st.bytes["dram_read"]), int(st.bytes["dram_write"])
        return {"cycles": int(st.cycles), "utilisation": float(st.utilisation),
                "macs": int(st.macs), "dram_read": rd, "dram_write": wr, "dram_bytes": rd + wr,
                "energy_pj": float(st.energy_total_pj),
                "seconds": st.cycles / (config.clock_mhz * 1e6),
                **{f"energy_{c}_pj": float(v) for c, v in st.energy_pj.items()}}


@dataclass(frozen=True)
class ModelWorkload:
    """One training step of a zoo model (:func:`dataflow.simulate_model`)."""

    model: str
    method: str = "bdwp"
    pattern: str | None = "2:8"
    batch: int = 1
    options: tuple[tuple[str, Any], ...] = ()
    compile: tuple[tuple[str, Any], ...] = ()
    compare_dense: bool = False
    kind = "model"

    def key(self) -> str:
        """Content hash of the normalised workload (the sweep's resume key, with the config's)."""
        return _hash({"kind": self.kind, "model": self.model, "method": self.method,
                      "pattern": self.pattern, "batch": self.batch,
                      "options": dict(self.options), "compile": dict(self.compile),
                      "compare_dense": self.compare_dense})

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        comp = ",".join(f"{k}={v}" for k, v in self.compile)
        return (f"{self.model}{f'({opts})' if opts else ''} {self.method}"
                f"{f' {self.pattern}' if self.pattern else ''} b{self.batch}"
                f"{f' [{comp}]' if comp else ''}")

    def columns(self) -> dict[str, Any]:
        return {"kind": self.kind, "workload": self.label, "model": self.model,
                "method": self.method, "pattern": self.pattern, "batch": self.batch,
                "model_options": json.dumps(dict(self.options)) if self.options else None,
                "compile_options": json.dumps(dict(self.compile)) if self.compile else None,
                "compare_dense": self.compare_dense}

    def run(self, config: AcceleratorConfig) -> dict[str, Any]:
        from dataflow import CompileOptions, simulate_model

        res = simulate_model(self.model, self.method, self.pattern, config, self.batch,
                             CompileOptions(**dict(self.compile)),
                             compare_dense=self.compare_dense, **dict(self.options))
        t = res.totals
        return {"cycles": int(t["cycles"]), "utilisation": float(t["utilisation"]),
                "macs": int(t["macs"]), "dram_read": int(t["dram_read"]),
                "dram_write": int(t["dram_write"]), "dram_bytes": int(t["dram_total"]),
                "energy_pj": float(t["energy_pj"]), "seconds": float(t["seconds"]),
                "dense_cycles": None if res.dense_cycles is None else int(res.dense_cycles),
                "speedup": res.speedup,
                **{k: float(v) for k, v in t.items() if k.startswith("energy_")
                   and k.endswith("_pj") and k != "energy_pj"}}


Workload = GemmWorkload | ModelWorkload


def _parse_gemm(w: Mapping, where: str) -> GemmWorkload:
    extra = sorted(set(w) - {"gemm", "sparsity", "dataflow"})
    if extra:
        raise SpecError(f"{where}.{extra[0]}", w[extra[0]],
                        "expected a GEMM field: gemm, sparsity, dataflow")
    shape = w["gemm"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(x) and x > 0
                                                                 for x in shape)):
        raise SpecError(f"{where}.gemm", shape, "expected [M, N, K], three positive integers")
    sparsity = w.get("sparsity")
    if sparsity is not None:
        try:
            parse_nm(sparsity, f"{where}.sparsity")
        except ConfigError as e:
            raise SpecError(e.field, e.value, f"expected {e.allowed} or null") from None
    dataflow = w.get("dataflow", "ws")
    if dataflow not in DATAFLOWS:
        raise SpecError(f"{where}.dataflow", dataflow, f"expected one of {DATAFLOWS}")
    return GemmWorkload(*shape, sparsity=sparsity, dataflow=dataflow)


def _parse_model(w: Mapping, where: str) -> ModelWorkload:
    allowed = ("model", "method", "pattern", "batch", "options", "compile", "compare_dense")
    extra = sorted(set(w) - set(allowed))
    if extra:
        raise SpecError(f"{where}.{extra[0]}", w[extra[0]],
                        f"expected a model field: {', '.join(allowed)}")
    from dataflow.zoo import get_model, model_names

    name = w["model"]
    if name not in model_names():
        raise SpecError(f"{where}.model", name, f"expected one of {model_names()}")
    method = w.get("method", "bdwp")
    if method not in METHODS:
        raise SpecError(f"{where}.method", method, f"expected one of {METHODS}")
    pattern = w.get("pattern", "2:8")
    if method == "dense":
        pattern = None
    else:
        try:
            parse_nm(pattern, f"{where}.pattern")
        except ConfigError as e:
            raise SpecError(e.field, e.value, f"expected {e.allowed}") from None
    batch = w.get("batch", 1)
    if not (_is_int(batch) and batch > 0):
        raise SpecError(f"{where}.batch", batch, "expected a positive integer")
    options, comp = w.get("options") or {}, w.get("compile") or {}
    for fld, v in (("options", options), ("compile", comp)):
        if not isinstance(v, dict):
            raise SpecError(f"{where}.{fld}", v, "expected a mapping")
    try:  # shapes only: checks the options without building weights
        get_model(name, batch=batch, device="meta", **options)
    except (ValueError, TypeError) as e:
        raise SpecError(f"{where}.options", options, str(e).splitlines()[0]) from None
    from dataflow import CompileOptions

    known = [f.name for f in fields(CompileOptions)]
    bad = sorted(set(comp) - set(known))
    if bad:
        raise SpecError(f"{where}.compile.{bad[0]}", comp[bad[0]],
                        f"expected a CompileOptions field: {', '.join(known)}")
    try:
        CompileOptions(**comp)
    except ValueError as e:
        raise SpecError(f"{where}.compile", comp, str(e)) from None
    dense = w.get("compare_dense", method != "dense")  # a sparse method: its speedup
    if not isinstance(dense, bool):
        raise SpecError(f"{where}.compare_dense", dense, "expected true or false")
    return ModelWorkload(name, method, pattern, batch, tuple(sorted(options.items())),
                         tuple(sorted(comp.items())), dense)


def _parse_workload(w: Any, where: str) -> Workload:
    if not isinstance(w, dict) or ("gemm" in w) == ("model" in w):
        raise SpecError(where, w, "expected a mapping with one of gemm: [M, N, K] or "
                        "model: NAME")
    return _parse_gemm(w, where) if "gemm" in w else _parse_model(w, where)


# --- the spec ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One (config, workload) pair; ``overrides`` are the grid values that made the config."""

    config: AcceleratorConfig
    overrides: tuple[tuple[str, Any], ...]
    workload: Workload

    @cached_property
    def keys(self) -> tuple[str, str]:
        """``(config_key, workload_key)``, the point's key in the store (hashed once)."""
        return _config_key(self.config), _hash([self.workload.key(), _STAMP])

    @property
    def label(self) -> str:
        over = " ".join(f"{k}={v}" for k, v in self.overrides) or self.config.name
        return f"{self.workload.label} | {over}"


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: base config, grid, workloads. Build with :func:`load_spec`."""

    name: str
    base: AcceleratorConfig
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    workloads: tuple[Workload, ...]
    configs: tuple[tuple[tuple[tuple[str, Any], ...], AcceleratorConfig], ...] = field(
        default=(), compare=False)

    def points(self) -> list[Point]:
        """Every (config, workload) pair, once (duplicates by key are dropped)."""
        seen, out = set(), []
        for over, cfg in self.configs:
            for w in self.workloads:
                p = Point(cfg, over, w)
                if p.keys not in seen:
                    seen.add(p.keys)
                    out.append(p)
        return out


def _apply(base: AcceleratorConfig, over: tuple[tuple[str, Any], ...]) -> AcceleratorConfig:
    top = {f.name for f in fields(AcceleratorConfig)}
    changes = {}
    for k, v in over:
        if "." not in k and k not in top:
            raise ConfigError(k, v, f"a field of AcceleratorConfig or SECTION.FIELD: "
                              f"{sorted(top)}")
        changes[k.replace(".", "__")] = v
    return base.replace(**changes)


def _base(value: Any, root: Path) -> AcceleratorConfig:
    if isinstance(value, dict):
        return AcceleratorConfig.from_dict(value)
    if not isinstance(value, str) or not value:
        raise SpecError("base", value, "expected a preset name, a config YAML path or a "
                        "config mapping")
    local = root / value
    return load_config(local if not Path(value).is_absolute() and local.is_file() else value)


def parse_spec(data: Any, *, name: str = "sweep", root: str | Path = ".") -> SweepSpec:
    """Check a parsed spec and build its configs.

    Parameters
    ----------
    data : mapping
        The spec (module docstring).
    name : str
        Used when the spec has no ``name``.
    root : str or Path
        Directory that relative config paths in ``base`` are resolved against first.

    Raises
    ------
    SpecError
        A spec field (its path named) is missing or malformed.
    hwsim.config.ConfigError
        The base config or a grid point has a bad config field.
    """
    if not isinstance(data, dict):
        raise SpecError("<root>", type(data).__name__, f"expected a mapping with keys "
                        f"{', '.join(_SPEC_KEYS)}")
    extra = sorted(set(data) - set(_SPEC_KEYS))
    if extra:
        raise SpecError(extra[0], data[extra[0]], f"expected one of {', '.join(_SPEC_KEYS)}")
    for k in _SPEC_KEYS:
        _check_ints(data.get(k), k)
    name = data.get("name", name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SpecError("name", name, "expected letters, digits, '_', '.' or '-'")
    if "base" not in data:
        raise SpecError("base", None, "expected a preset name, a config YAML path or a "
                        "config mapping")
    base = _base(data["base"], Path(root))
    for col, (_, v) in config_columns(base).items():  # a config file's fields
        _check_ints(v, f"base.{col}")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise SpecError("grid", grid, "expected a mapping of config field to a list of values")
    axes = []
    for k, v in grid.items():
        if not isinstance(k, str) or not _GRID_KEY.fullmatch(k):
            raise SpecError(f"grid.{k}", v, "expected a key SECTION.FIELD (e.g. array.rows) "
                            "or a top-level config field")
        values = tuple(v) if isinstance(v, list) else (v,)
        if not values:
            raise SpecError(f"grid.{k}", v, "expected at least one value")
        axes.append((k, values))
    configs = []
    for combo in itertools.product(*(vals for _, vals in axes)):
        over = tuple((k, val) for (k, _), val in zip(axes, combo, strict=True))
        configs.append((over, _apply(base, over)))
    wl = data.get("workloads")
    if not isinstance(wl, list) or not wl:
        raise SpecError("workloads", wl, "expected a non-empty list of {gemm: [M, N, K], ...} "
                        "or {model: NAME, ...}")
    workloads = tuple(_parse_workload(w, f"workloads[{i}]") for i, w in enumerate(wl))
    return SweepSpec(name, base, tuple(axes), workloads, tuple(configs))


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec YAML file (see :func:`parse_spec`).

    Raises
    ------
    SpecError, hwsim.config.ConfigError
    """
    p = Path(path)
    from hwsim.textfile import TextFileError, read_text

    try:
        text = read_text(p)
    except TextFileError as e:
        raise SpecError("spec", str(p), f"expected a readable YAML file ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0]
        raise SpecError("spec", str(p), f"expected valid YAML ({first})") from None
    except RecursionError:
        raise SpecError("spec", str(p), "expected a spec's few levels of YAML (nested too "
                        "deeply)") from None
    return parse_spec(data, name=p.stem, root=p.parent)


def default_db(spec: SweepSpec, runs: str | Path | None = None) -> Path:
    """``RUNS/sweep-NAME/results.duckdb``; ``runs`` defaults to :func:`hwsim.paths.runs_dir`
    (``$SATMEM_HOME/runs``, the checkout's ``runs/``, or the user data directory)."""
    from hwsim.paths import runs_dir

    return Path(runs if runs is not None else runs_dir()) / f"sweep-{spec.name}" / "results.duckdb"


# --- rows ----------------------------------------------------------------------------------

def _row(spec_name: str, p: Point, result: Mapping[str, Any]) -> dict[str, Any]:
    ck, wk = p.keys
    cfg = {c: v for c, (_, v) in config_columns(p.config).items()}
    return {"config_key": ck, "workload_key": wk, "sweep": spec_name, **p.workload.columns(),
            **cfg, **{c: result.get(c) for c in METRIC_COLUMNS},
            **{c: v for c, v in result.items() if c.startswith("energy_") and c.endswith("_pj")
               and c != "energy_pj"},
            "error": result.get("error"), "wall_s": result.get("wall_s"),
            "finished_at": datetime.now()}


def _store_batch(store: ResultStore, spec_name: str, done: list[tuple[Point, dict]]
                 ) -> list[dict]:
    """Commit finished points in one transaction (:meth:`ResultStore.put_many`); a result the
    store cannot hold (an integer past 64 bits) is stored as the point's error instead.
    Returns the results as stored, in order."""
    stored = []
    for _, res in done:
        try:
            for c, v in res.items():
                check_int64(c, v)
        except StoreValueError as e:
            res = {"error": f"{type(e).__name__}: {e}", "wall_s": res.get("wall_s")}
        stored.append(res)
    rows = [_row(spec_name, p, res) for (p, _), res in zip(done, stored, strict=True)]
    try:
        store.put_many(rows)
    except StoreValueError:  # a value of the row outside the result (a config field, a label)
        for (p, _), res in zip(done, stored, strict=True):
            _store_point(store, spec_name, p, res)
    return stored


def _store_point(store: ResultStore, spec_name: str, p: Point, res: dict) -> dict:
    """Commit one point; a result the store cannot hold (an integer past 64 bits) is stored as
    the point's error instead. Returns the result as stored."""
    try:
        store.put(_row(spec_name, p, res))
    except StoreValueError as e:
        res = {"error": f"{type(e).__name__}: {e}", "wall_s": res.get("wall_s")}
        store.put(_row(spec_name, p, res))
    return res


def run_point(config: AcceleratorConfig, workload: Workload) -> dict[str, Any]:
    """Run one point (a Dask task); an exception becomes the result's ``error``, not a raise."""
    t0 = time.perf_counter()
    try:
        out: dict[str, Any] = dict(workload.run(config))
        out["error"] = None
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        out = {"error": f"{type(e).__name__}: {first}".rstrip(": ")}
    out["wall_s"] = time.perf_counter() - t0
    return out


def run_points(batch: list[tuple[AcceleratorConfig, Workload]]) -> list[dict[str, Any]]:
    """Run a batch of points (one Dask task): :func:`run_point` of each, in order.

    A task per point costs the client more CPU than a small GEMM takes to simulate; a batch
    of them is one task, its results one reply.
    """
    return [run_point(config, workload) for config, workload in batch]


# --- running -------------------------------------------------------------------------------

@dataclass
class SweepResult:
    """What :func:`run_sweep` did: point counts, the store, host seconds, what opening the
    store found (:attr:`reports.store.ResultStore.notes`)."""

    db: Path
    total: int
    skipped: int
    computed: int
    failed: int
    wall_s: float
    where: str
    notes: tuple[str, ...] = ()

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.computed


BATCH_SECONDS = 0.5
"""In this process, finished points are committed together at most this often (or every
:data:`MAX_BATCH` points): a kill loses at most that much work."""

MAX_BATCH = 32
"""Points of one Dask task (and of one commit) at most; a task of GEMMs is a fraction of a
second, short enough to balance the workers at a sweep's end."""

TASKS_PER_WORKER = 8
"""A sweep is cut into at least this many tasks per worker (fewer points per task when the
sweep is small), so that workers finish together."""


def _run_local(points: list[Point]) -> Iterator[list[tuple[Point, dict]]]:
    done: list[tuple[Point, dict]] = []
    t0 = time.monotonic()
    for p in points:
        done.append((p, run_point(p.config, p.workload)))
        if len(done) >= MAX_BATCH or time.monotonic() - t0 >= BATCH_SECONDS:
            yield done
            done, t0 = [], time.monotonic()
    if done:
        yield done


def batches(points: list[Point], slots: int) -> list[list[Point]]:
    """Points cut into Dask tasks: a model alone (it takes seconds), GEMMs in runs of up to
    :data:`MAX_BATCH`, at least :data:`TASKS_PER_WORKER` tasks per worker slot."""
    gemms = [p for p in points if p.workload.kind != "model"]
    size = max(1, min(MAX_BATCH, -(-len(gemms) // (TASKS_PER_WORKER * max(1, slots)))))
    out = [[p] for p in points if p.workload.kind == "model"]
    out += [gemms[i:i + size] for i in range(0, len(gemms), size)]
    return out


def _slots(client) -> int:
    """Threads across the cluster's workers (one point runs on each at a time)."""
    with suppress(Exception):
        return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
    return 1


def _run_dask(client, points: list[Point]) -> Iterator[list[tuple[Point, dict]]]:
    from dask.distributed import as_completed

    futures = {client.submit(run_points, [(p.config, p.workload) for p in batch], pure=False):
               batch for batch in batches(points, _slots(client))}
    try:
        for fut in as_completed(futures):
            batch = futures[fut]
            try:
                results = fut.result()
            except Exception as e:  # the worker died (KilledWorker), or was cancelled
                first = str(e).splitlines()[0] if str(e) else ""
                results = [{"error": f"{type(e).__name__}: {first}".rstrip(": "),
                            "wall_s": None}] * len(batch)
            yield list(zip(batch, results, strict=True))
    finally:
        client.cancel(list(futures))


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep; the message says how many points are stored and how to resume.

    Attributes
    ----------
    stored, total : int
        Points of the sweep in the store (finished or failed), points of the sweep.
    db : Path
    """

    def __init__(self, stored: int, total: int, db: Path):
        self.stored, self.total, self.db = stored, total, db
        super().__init__(f"interrupted: {stored} of {total} points stored in {db}; the same "
                         "sweep command resumes from there")


def dask_setup(worker) -> None:
    """Dask preload hook, run in each local-cluster worker process: ignore SIGINT.

    Ctrl-C in a terminal reaches the whole process group; the client alone stops the sweep
    and closes its workers, which would otherwise each print a KeyboardInterrupt traceback.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the one warning a worker logs when it closes with a point still running: after Ctrl-C,
    # each would print it (Dask: "this should exclusively happen in Worker.close()")
    logging.getLogger("distributed.worker.state_machine").addFilter(
        lambda record: "ended with CancelledError" not in record.getMessage())


@contextmanager
def _first_sigint_held() -> Iterator[None]:
    """Hold a first Ctrl-C until the block ends (a cluster half built cannot be closed); a
    second one interrupts at once, so a start that hangs can still be stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def hold(signum, frame):
        if got:
            raise KeyboardInterrupt
        got.append(signum)

    old = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got and callable(old):
            old(signal.SIGINT, None)


def _mute_logging() -> None:
    """Run on each worker after Ctrl-C, before the cluster closes: from here on a worker only
    shuts down, and its log lines (heartbeats to a scheduler already gone, cancelled points)
    would be noise on the user's terminal."""
    logging.disable(logging.CRITICAL)


@contextmanager
def _dask_muted(client) -> Iterator[None]:
    """Mute Dask's shutdown chatter, in this process and the workers, while a cluster closes."""
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        if client is not None:
            # a broken client: its workers go down with the cluster anyway
            with suppress(Exception):
                client.run(_mute_logging, on_error="ignore")
        yield
    finally:
        logging.disable(before)


def default_workers() -> int:
    """One worker process per core (the simulator is single-threaded), at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def _local_cluster(n: int, models: bool):
    """A LocalCluster of ``n`` single-threaded worker processes.

    Workers fork from a forkserver that has imported satmem (and, for model workloads, torch
    and the parts of it the zoo's meta-device models load lazily) once, instead of each
    spawned worker importing them again: on a 2-core machine that is most of a small sweep.
    """
    import multiprocessing

    import dask
    from dask.distributed import LocalCluster

    kw = {"n_workers": n, "threads_per_worker": 1, "processes": True,
          "dashboard_address": None, "preload": ["reports.sweep"],  # its dask_setup
          # the scheduler's HTTP routes (no dashboard) on a free loopback port, not 8787 with
          # a warning when another cluster has it
          "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"}}
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return LocalCluster(**kw)
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        ctx = get_mp_context()  # Dask sets its own preload list once, on this first call
        heavy = ["dataflow", "torch._dynamo"] if models else []
        # reports._sigint first: the server and the workers it forks ignore SIGINT from the
        # start (see dask_setup); hwsim before numba (it sets Numba's cache directory), which
        # hwsim itself imports only when a kernel is first built (hwsim._jit)
        ctx.set_forkserver_preload(["reports._sigint", "distributed", "hwsim", "numba",
                                    "dataflow.lower.gemm", *heavy, "reports.sweep"])
        os.environ[_WARM] = "1"  # read by the forkserver, started by the first worker
        try:
            return LocalCluster(**kw)
        finally:
            os.environ.pop(_WARM, None)


_WARM = "SATMEM_SWEEP_FORKSERVER"


def _warm_kernels() -> None:
    """Build the timing path's Numba kernels (loaded from the cache) in the forkserver that
    the local cluster's workers fork from: each inherits them instead of loading Numba on its
    first points (about a second of CPU a worker on this 2-core machine)."""
    from dataflow.lower.gemm import simulate_gemm
    from hwsim import _jit
    from hwsim.config import preset

    _jit.PYTHON_BUDGET_S = 0.0  # no interpreted calls: build the kernels now
    simulate_gemm(64, 64, 64, preset("vcu1525"), mode="timing")  # schedule, banked DRAM


if os.environ.get(_WARM) == "1":  # imported by the forkserver's preload
    with suppress(Exception):
        _warm_kernels()


@contextmanager
def _executor(todo: list[Point], scheduler: str | None, workers: int | None):
    """Yield ``(run, where)``: ``run(points)`` yields ``(point, result)`` as points complete."""
    if not todo:
        yield _run_local, ""
    elif scheduler is not None:
        from dask.distributed import Client

        try:
            client = Client(scheduler, timeout="10s")
        except OSError as e:
            raise OSError(f"cannot reach Dask scheduler {scheduler}: {e}") from None
        with client:
            yield partial(_run_dask, client), f"on Dask scheduler {scheduler}"
    elif workers == 0:
        yield _run_local, "in this process"
    else:
        from dask.distributed import Client

        n = min(workers or default_workers(), len(todo))
        models = any(p.workload.kind == "model" for p in todo)
        cluster = client = None
        interrupted = False
        try:
            with _first_sigint_held():
                cluster = _local_cluster(n, models)
                client = Client(cluster)
            yield (partial(_run_dask, client),
                   f"on a local Dask cluster ({n} worker{'s' * (n > 1)})")
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            with _dask_muted(client) if interrupted else nullcontext():
                if client is not None:
                    client.close()
                if cluster is not None:
                    cluster.close()


def run_sweep(spec: SweepSpec, db: str | Path | None = None, *, scheduler: str | None = None,
              workers: int | None = None, max_points: int | None = None,
              progress: Callable[[str], None] | None = None) -> SweepResult:
    """Run a sweep's points not yet stored; each batch of results is committed as it completes.

    Parameters
    ----------
    spec : SweepSpec
    db : str or Path, optional
        The DuckDB store; default :func:`default_db`.
    scheduler : str, optional
        Address of an existing Dask scheduler; default: start a local cluster.
    workers : int, optional
        Local cluster worker processes (default :func:`default_workers`, never more than the
        points to run); 0 runs the points in this process, without Dask.
    max_points : int, optional
        Stop after this many points complete (the rest stay for a rerun).
    progress : callable, optional
        Called with one line per completed point, and a first and a last line; a
        :class:`reports.progress.ProgressBar` also draws a bar over the points to run.

    Raises
    ------
    OSError
        The store cannot be opened, or the scheduler cannot be reached.
    """
    say = progress or (lambda line: None)
    db = Path(db) if db is not None else default_db(spec)
    points = spec.points()
    t0 = time.perf_counter()
    computed = failed = 0
    with ResultStore(db) as store:
        for line in store.notes:
            say(line)
        store.ensure_columns(schema(points[0].config))
        done = store.done_keys()
        pending = [p for p in points if p.keys not in done]
        skipped = len(points) - len(pending)
        # models first: the longest points start first, so the tail is short
        pending.sort(key=lambda p: p.workload.kind != "model")
        todo = pending if max_points is None else pending[:max_points]
        try:
            with _executor(todo, scheduler, workers) as (run, where):
                say(f"sweep {spec.name}: {len(points)} points, {skipped} stored, {len(todo)} "
                    f"to run {where}".rstrip() + f"; results in {db}")
                stage(progress, f"sweep {spec.name}", len(todo))
                for done in run(todo):
                    # one commit a batch, then its progress lines: a line means stored
                    for (p, _), res in zip(done, _store_batch(store, spec.name, done),
                                           strict=True):
                        computed += 1
                        failed += res.get("error") is not None
                        say(f"[{skipped + computed}/{len(points)}] {p.label}: " + (
                            f"FAILED {res['error']}" if res.get("error") else
                            f"{res['cycles']:,} cycles, util {res['utilisation']:.1%}, "
                            f"{res['wall_s']:.2f} s"))
        except KeyboardInterrupt:
            stored = len({p.keys for p in points} & store.done_keys(include_failed=True))
            raise SweepInterrupted(stored, len(points), db) from None
    res = SweepResult(db, len(points), skipped, computed, failed, time.perf_counter() - t0,
                      where, tuple(store.notes))
    say(f"sweep {spec.name}: {computed} computed ({failed} failed), {skipped} stored before, "
        f"{res.remaining} left, in {res.wall_s:.1f} s")
    return res
