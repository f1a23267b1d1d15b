"""Start-up: whole-process times of ``satmem simulate-gemm`` and ``satmem simulate --topology``,
and, when SCALE-Sim is installed in another venv, the ratios to SCALE-Sim on the same files.

Warm runs (one run first writes bytecode and Numba caches), median of ``--repeat`` runs, wall
and CPU seconds of the child process. Against SCALE-Sim (``--scalesim-python``, default
``/tmp/ssenv/bin/python`` when it exists; SCALE-Sim is never a satmem dependency), one run of
each on the same topology and ``.cfg`` gives two ratios: whole process (SCALE-Sim's
``python -m scalesim.scale`` with its traces off, ``-s N``, vs ``satmem simulate --topology
--scalesim-cfg``) and simulation only (SCALE-Sim's ``run_scale`` vs the sum of satmem's per-layer
``sim_s``, compile and run of each layer). Then one process, by phase: where the whole-process
time goes (interpreter, NumPy, satmem's modules, Numba's import, the command with Numba's
first call, exit), beside the simulation repeated in that process once Numba is loaded.

    .venv/bin/python benchmarks/bench_startup.py
    .venv/bin/python benchmarks/bench_startup.py --topology T.csv --cfg X.cfg --repeat 7

The default topology is the first layers of ResNet-18 (SCALE-Sim's conv format) on a 32x32 WS
array (``--layers`` of them; SCALE-Sim's time grows with the layers, satmem's hardly).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
          "Num Filter, Strides,\n")
RESNET18 = HEADER + """Conv1,230,230,7,7,3,64,2,
L1_1,58,58,3,3,64,64,1,
L1_2,58,58,3,3,64,64,1,
L2_1,58,58,3,3,64,128,2,
L2_2,30,30,3,3,128,128,1,
L2_ds,56,56,1,1,64,128,2,
L3_1,30,30,3,3,128,256,2,
L3_2,16,16,3,3,256,256,1,
L3_ds,28,28,1,1,128,256,2,
L4_1,16,16,3,3,256,512,2,
L4_2,9,9,3,3,512,512,1,
L4_ds,14,14,1,1,256,512,2,
FC,1,1,1,1,512,1000,1,
"""

CFG32 = """[general]
run_name = ws32

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     32
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 64
Dataflow : ws
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 64
IfmapSRAMBankNum: 8
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 64
FilterSRAMBankNum: 8
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""

SCALESIM_SIM_ONLY = """
import sys, time
from scalesim.scale_sim import scalesim
s = scalesim(save_disk_space=True, verbose=False, config=sys.argv[1], topology=sys.argv[2],
             layout=sys.argv[3])
t0 = time.perf_counter()
s.run_scale(top_path=sys.argv[4])
print(time.perf_counter() - t0)
"""


# One warm `satmem simulate --topology` process, as the program runs it, timed by phase: the
# modules in the order the command imports them, Numba's import (hwsim._jit.load_numba), the
# command (Numba's first call, the simulation, the output), then the same simulation again
# in the process (Numba loaded): what the simulation alone costs.
PHASES = """
import time
T = [time.time()]
import contextlib, io, json, os, sys
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # what reports.cli.main sets
names = []
def mark(name):
    T.append(time.time()); names.append(name)
import numpy
mark("NumPy")
import dataflow.lower.gemm, hwsim.engine, reports.cli, reports.topology
mark("satmem modules")
from hwsim import _jit
_jit.load_numba()
mark("Numba import")
topo, cfg = sys.argv[1:]
sys.argv = ["satmem", "simulate", "--topology", topo, "--scalesim-cfg", cfg, "--json"]
with contextlib.redirect_stdout(io.StringIO()):
    reports.cli.main()
mark("command")
from dataflow.scalesim import read_scalesim_cfg, read_topology
from hwsim.config import preset
t0 = time.perf_counter()
reports.topology.run_layers(read_topology(topo), read_scalesim_cfg(cfg, base=preset("vcu1525")),
                            "ws")
print(json.dumps([T, names, time.perf_counter() - t0]))
sys.stdout.flush()
"""


def phases(python: str, topo: Path, cfg: Path, env: dict, repeat: int) -> list[tuple[str, float]]:
    """Median seconds of each phase of one process (:data:`PHASES`), from its launch to its
    exit, and of the simulation repeated once Numba is loaded."""
    runs = []
    for _ in range(repeat + 1):
        t0 = time.time()
        r = subprocess.run([python, "-c", PHASES, str(topo), str(cfg)], capture_output=True,
                           text=True, env=env, check=True)
        t1 = time.time()
        stamps, names, again = json.loads(r.stdout)
        runs.append([("interpreter start", stamps[0] - t0),
                     *((n, b - a) for n, a, b in zip(names, stamps[:-1], stamps[1:], strict=True)),
                     ("exit", t1 - stamps[-1] - again), ("(simulation, Numba loaded)", again)])
    runs = runs[1:]  # the first wrote the caches
    return [(name, statistics.median(run[i][1] for run in runs))
            for i, (name, _) in enumerate(runs[0])]


def timed(argv: list[str], env: dict, cwd: str | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds of one child process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{r.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.stdout


def median_run(argv: list[str], env: dict, repeat: int) -> tuple[float, float, str]:
    timed(argv, env)  # warm: bytecode, Numba's cache
    runs = [timed(argv, env) for _ in range(repeat)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            runs[-1][2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", type=Path, help="SCALE-Sim topology CSV (default: ResNet-18)")
    ap.add_argument("--layers", type=int, default=4, help="default topology: its first N layers")
    ap.add_argument("--cfg", type=Path, help="SCALE-Sim .cfg (default: 32x32 WS)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scalesim-python", default="/tmp/ssenv/bin/python")
    args = ap.parse_args()
    satmem = str(Path(sys.executable).with_name("satmem"))
    # as a user runs it: bytecode cached (a sandbox may set PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        topo = args.topology
        if topo is None:
            topo = tmp / "resnet18.csv"
            topo.write_text("".join(RESNET18.splitlines(keepends=True)[:args.layers + 1]))
        cfg = args.cfg
        if cfg is None:
            cfg = tmp / "ws32.cfg"
            cfg.write_text(CFG32)
        gemm = median_run([satmem, "simulate-gemm", "64", "64", "64"], env, args.repeat)
        topo_argv = [satmem, "simulate", "--topology", str(topo), "--scalesim-cfg", str(cfg)]
        top = median_run([*topo_argv, "--json"], env, args.repeat)
        sim_s = sum(r["sim_s"] for r in json.loads(top[2]))
        print(f"load average {load0:.1f}; {os.cpu_count()} cores; median of {args.repeat} warm "
              "runs\n")
        print("| command | wall s | CPU s |\n|---|---|---|")
        print(f"| satmem simulate-gemm 64 64 64 | {gemm[0]:.3f} | {gemm[1]:.3f} |")
        print(f"| satmem simulate --topology ({topo.name}, {len(json.loads(top[2]))} layers) "
              f"--scalesim-cfg {cfg.name} | {top[0]:.3f} | {top[1]:.3f} |")
        print(f"\nsatmem simulation alone (sum of sim_s): {sim_s:.3f} s")
        print(f"\nwhere one `satmem simulate --topology` process spends its time (median of "
              f"{args.repeat}):\n\n| phase | ms |\n|---|---|")
        for name, sec in phases(sys.executable, topo, cfg, env, args.repeat):
            print(f"| {name} | {1000 * sec:.0f} |")
        if not Path(args.scalesim_python).exists():
            print(f"SCALE-Sim not found at {args.scalesim_python}: no ratios")
            return
        layout = tmp / "layout.csv"
        layout.write_text("Layer name,\n")
        whole = timed([args.scalesim_python, "-m", "scalesim.scale", "-c", str(cfg), "-t",
                       str(topo), "-l", str(layout), "-p", str(tmp / "ss_whole"), "-s", "N"],
                      env)
        alone = float(timed([args.scalesim_python, "-c", SCALESIM_SIM_ONLY, str(cfg),
                             str(topo), str(layout), str(tmp / "ss_sim")], env)[2].split()[-1])
        print(f"SCALE-Sim whole process {whole[0]:.1f} s wall ({whole[1]:.1f} s CPU), "
              f"simulation alone {alone:.1f} s")
        print(f"\nratio, whole process (wall): {whole[0] / top[0]:.0f}x; (CPU): "
              f"{whole[1] / top[1]:.0f}x; simulation only: {alone / sim_s:.0f}x")
        print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
