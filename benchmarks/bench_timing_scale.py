"""Timing mode at scale: seconds of ``hwsim.run(..., "timing")`` on GEMMs of many identical tiles.

The cases of issue 18 item 2: the layers of ``tests/dataflow/data/gpt2_gemm.csv`` and
``satmem simulate-gemm 256 N 8 --config tiny`` (N = 10^6 in the issue), weight-stationary. Each
program is compiled once (its seconds printed apart: the compiler is not hwsim), then run in
timing mode; ``--baseline DIR`` also runs the same in a subprocess on another checkout (for
example ``git archive <commit> | tar -x -C DIR``) and prints the speedup, after checking that
both give the same cycles and energy.

Cases whose program would exceed ``--max-commands`` (default 2 M; the command table alone is
about 376 bytes a command, so GPT-2's Linear1 on ``tiny``, 23 M commands, needs 9 GB) are
not run in full. Every case is also timed by extrapolation (``simulate_gemm(...,
extrapolate=True)``, :mod:`dataflow.extrapolate`: what ``satmem simulate-gemm`` does over its
command budget), in a fresh process, compile included: its seconds, whether it is exact, and,
where the full run was made, a check that it gives the same cycles and energy (exact) or how
far off it is (approximate, banked DRAM).

Run: ``.venv/bin/python benchmarks/bench_timing_scale.py [--config tiny] [--n 1000000]
[--baseline /tmp/base] [--skip-gpt2] [--max-commands 2000000] [--mapping default|search]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPT2 = ROOT / "tests" / "dataflow" / "data" / "gpt2_gemm.csv"

_ONE = """
import json, sys, time
from dataflow.lower.gemm import compile_gemm
from hwsim.config import load_config
from hwsim.engine import run
m, n, k, cfg = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), load_config(sys.argv[4])
run(compile_gemm(16, 16, 16, cfg, dataflow="ws"), cfg)  # load Numba's kernels first
t0 = time.perf_counter()
prog = compile_gemm(m, n, k, cfg, dataflow="ws", max_commands=0)
t1 = time.perf_counter()
s = run(prog, cfg, "timing").stats
t2 = time.perf_counter()
print(json.dumps({"commands": len(prog.table), "compile_s": t1 - t0, "run_s": t2 - t1,
                  "cycles": s.cycles, "energy_pj": s.energy_total_pj}))
"""


_EXTRAPOLATED = """
import json, sys, time
from dataflow.lower.gemm import simulate_gemm
from hwsim.config import load_config
m, n, k, cfg = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), load_config(sys.argv[4])
mapping = None if sys.argv[5] == "default" else sys.argv[5]
simulate_gemm(16, 16, 16, cfg, dataflow="ws")  # load Numba's kernels first
t0 = time.perf_counter()
s = simulate_gemm(m, n, k, cfg, dataflow="ws", mapping=mapping, extrapolate=True)
t1 = time.perf_counter()
x = s.extrapolated or {"exact": True, "runs": 1, "bound": {}}
print(json.dumps({"seconds": t1 - t0, "cycles": s.cycles, "energy_pj": s.energy_total_pj,
                  "exact": x["exact"], "runs": x["runs"], "bound": x["bound"].get("cycles", 0)}))
"""


def extrapolated(m: int, n: int, k: int, config: str, mapping: str) -> dict:
    """Time one WS GEMM by extrapolation in a fresh process on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _EXTRAPOLATED, str(m), str(n), str(k), config,
                          mapping], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def one(m: int, n: int, k: int, config: str, root: Path) -> dict:
    """Compile and time one WS GEMM in a fresh process on the checkout at ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", _ONE, str(m), str(n), str(k), config],
                         capture_output=True, text=True, check=True, cwd=root, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cases(args) -> list[tuple[str, int, int, int]]:
    out = []
    if not args.skip_gpt2:
        for line in GPT2.read_text().splitlines()[1:]:
            name, m, n, k = line.split(",")
            out.append((f"gpt2 {name}", int(m), int(n), int(k)))
    out.append(("simulate-gemm", 256, args.n, 8))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--n", type=int, default=1_000_000, help="N of simulate-gemm 256 N 8")
    ap.add_argument("--baseline", type=Path, help="another checkout to compare with")
    ap.add_argument("--skip-gpt2", action="store_true")
    ap.add_argument("--max-commands", type=int, default=2_000_000)
    ap.add_argument("--mapping", choices=("default", "search"), default="default",
                    help="the extrapolated runs' mapping (the full runs use the default)")
    args = ap.parse_args(argv)
    from dataflow.lower.gemm import estimate_commands, gemm_tiling
    from dataflow.mapping import OpShape
    from hwsim.config import load_config

    cfg = load_config(args.config)
    print(f"{'case':<22}{'commands':>11}{'compile s':>11}{'run s':>9}{'base s':>9}"
          f"{'speedup':>9}{'extrap s':>10}  extrapolation")
    total = base_total = 0.0
    for name, m, n, k in cases(args):
        est = estimate_commands(OpShape(m, n, k), gemm_tiling(m, n, k, cfg, "ws"), cfg)
        now = None
        if est > args.max_commands:
            line = f"{name:<22}{est:>11,}{'over --max-commands: not run in full':>38}"
        else:
            now = one(m, n, k, args.config, ROOT)
            line = (f"{name:<22}{now['commands']:>11,}{now['compile_s']:>11.1f}"
                    f"{now['run_s']:>9.2f}")
            total += now["run_s"]
            if args.baseline is not None:
                base = one(m, n, k, args.config, args.baseline)
                if (base["cycles"], base["energy_pj"]) != (now["cycles"], now["energy_pj"]):
                    raise SystemExit(f"{name}: baseline {base} differs from {now}")
                base_total += base["run_s"]
                line += f"{base['run_s']:>9.2f}{base['run_s'] / now['run_s']:>8.1f}x"
            else:
                line += f"{'':>18}"
        x = extrapolated(m, n, k, args.config, args.mapping)
        how = (f"exact, {x['runs']} runs" if x["exact"] else
               f"approximate +-{x['bound']:,} cycles, {x['runs']} runs")
        if now is not None and args.mapping == "default":
            # energies are float sums: equal to rounding
            if x["exact"] and (x["cycles"] != now["cycles"] or abs(
                    x["energy_pj"] - now["energy_pj"]) > 1e-9 * now["energy_pj"]):
                raise SystemExit(f"{name}: extrapolated {x} differs from the full run {now}")
            how += f"; full run {'equal' if x['cycles'] == now['cycles'] else 'differs'}: " \
                   f"{x['cycles'] - now['cycles']:+,} cycles"
        print(f"{line}{x['seconds']:>10.2f}  {how}", flush=True)
    if args.baseline is not None:
        print(f"{'all':<22}{'':>11}{'':>11}{total:>9.2f}{base_total:>9.2f}"
              f"{base_total / total:>8.1f}x")


if __name__ == "__main__":
    main()
