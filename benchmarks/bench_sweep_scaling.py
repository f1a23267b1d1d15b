"""Sweep throughput: the same GEMM sweep in this process, on 1 and on 2 Dask workers.

Each run starts from an empty DuckDB store and runs :func:`reports.sweep.run_sweep` (the code
behind ``satmem sweep``): points batched per Dask task, each batch committed in one
transaction. Printed per run: wall time of the whole call (cluster start-up included), the
points per minute once the cluster is up (from the sweep's first progress line to its end),
the main process's CPU seconds per point, and the speedup over one worker.

    .venv/bin/python benchmarks/bench_sweep_scaling.py            # 960 points, 0/1/2 workers
    .venv/bin/python benchmarks/bench_sweep_scaling.py --points 240 --workers 0 2

Noisy on a shared machine: the load average at the start and end is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from reports.store import read_results
from reports.sweep import parse_spec, run_sweep

GRID = {"array.rows": [4, 8], "dram.channels": [1, 2], "queue_depth": [2, 4]}
SHAPES = [(m, n, k) for m in (16, 32, 64, 128) for n in (16, 32, 48, 64, 96)
          for k in (16, 32, 64)]  # 8-10 ms of simulation a point, as in issue 17's sweep


def spec(points: int):
    """``points`` GEMM points: 8 configs (GRID) x up to 120 workloads (SHAPES, OS and WS)."""
    work = [{"gemm": list(s), "dataflow": d} for s in SHAPES for d in ("ws", "os")]
    per_config = -(-points // 8)
    return parse_spec({"name": "bench", "base": "tiny", "grid": GRID,
                       "workloads": work[:per_config]})


def run(points: int, workers: int, root: Path) -> dict:
    sp = spec(points)
    db = root / f"w{workers}" / "results.duckdb"
    up: list[float] = []

    def progress(line: str) -> None:
        if not up and line.startswith(f"sweep {sp.name}:"):
            up.append(time.perf_counter())  # the cluster is up: the first point is submitted

    t0, c0 = time.perf_counter(), time.process_time()
    res = run_sweep(sp, db, workers=workers, progress=progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert res.computed == len(sp.points()) and res.failed == 0, res
    steady = wall - (up[0] - t0)
    busy = float(read_results(db)["wall_s"].sum())  # seconds inside run_point, all workers
    return {"busy": busy / steady, "ms_per_point": 1e3 * busy / res.computed,
            "workers": workers, "points": res.computed, "wall_s": wall, "steady_s": steady,
            "per_min": 60 * res.computed / steady, "per_min_wall": 60 * res.computed / wall,
            "cpu_ms_per_point": 1e3 * cpu / res.computed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=960)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec(args.points).points()  # imports and the config hashes, outside the timings
        for w in args.workers:
            rows.append(run(args.points, w, Path(tmp)))
            r = rows[-1]
            print(f"  {'in-process' if w == 0 else f'{w} worker(s)'}: {r['wall_s']:.1f} s",
                  flush=True)
    load1 = os.getloadavg()
    one = next((r for r in rows if r["workers"] == 1), None)
    print(f"\n{rows[0]['points']} GEMM points (tiny, 8 configs), {os.cpu_count()} cores, load "
          f"average {load0[0]:.1f} at start, {load1[0]:.1f} at end\n")
    print("| run | wall s | points/min (cluster up) | points/min (whole call) | main CPU ms/point "
          "| ms a point in run_point | points running at once | speedup vs 1 worker |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "in-process" if r["workers"] == 0 else f"{r['workers']} worker" + (
            "s" if r["workers"] > 1 else "")
        speed = f"{r['per_min'] / one['per_min']:.2f}x" if one else "-"
        print(f"| {name} | {r['wall_s']:.1f} | {r['per_min']:,.0f} | {r['per_min_wall']:,.0f} | "
              f"{r['cpu_ms_per_point']:.1f} | {r['ms_per_point']:.1f} | {r['busy']:.2f} | "
              f"{speed} |")


if __name__ == "__main__":
    main()
