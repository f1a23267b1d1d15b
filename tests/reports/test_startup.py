"""Start-up: a GEMM or topology run imports only what it needs (the import graph, not the time:
speed is measured by benchmarks/bench_startup.py), and Numba kernels built lazily give the
same results interpreted and compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "dataflow" / "data"
HEAVY = ("torch", "pandas", "dask", "distributed", "matplotlib", "numba", "scipy", "duckdb")


def heavy_modules_after(argv: list[str]) -> tuple[list[str], str]:
    """Run ``satmem ARGV`` in a fresh interpreter; the heavy modules it imported, its output."""
    code = (f"import sys, json; from reports.cli import main; code = main({argv!r}); "
            f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, check=True)
    *out, last = r.stdout.strip().splitlines()
    status, mods = json.loads(last)
    assert status == 0, r.stderr
    return mods, "\n".join(out)


def test_simulate_gemm_imports_no_torch_pandas_dask_matplotlib_or_numba():
    mods, out = heavy_modules_after(["simulate-gemm", "64", "64", "64", "--json"])
    assert mods == []
    assert json.loads(out)["cycles"] > 0


def test_simulate_topology_imports_no_pandas_torch_dask_or_numba():
    mods, out = heavy_modules_after(["simulate", "--topology",
                                     str(DATA / "scalesim_v3" / "small_conv.csv"), "--json"])
    assert mods == []
    rows = json.loads(out)
    assert [r["layer"] for r in rows] == ["Stem", "C3x3", "PW", "FC"]
    assert all(r["cycles"] > r["scalesim_cycles"] > 0 for r in rows)


def test_topology_text_table_is_what_pandas_prints():
    pd = pytest.importorskip("pandas")
    from hwsim.config import preset
    from reports.topology import format_table, topology_rows

    for topo, cfg in (("resnet_sparse.csv", "vcu1525"), ("gemm_sparse.csv", "tiny"),
                      ("scalesim_v3/small_gemm.csv", "vcu1525")):
        rows = topology_rows(DATA / topo, preset(cfg))
        rows = [{"layer": r["layer"], "dataflow": "ws", **r} for r in rows]
        assert format_table(rows) == pd.DataFrame(rows).to_string(index=False)
    # columns pandas prints in scientific notation, or with NaN: pandas itself formats them
    odd = [{"a": 1e-7, "b": float("nan"), "c": "x"}, {"a": 2.5, "b": 1.0, "c": "yy"}]
    assert format_table(odd) == pd.DataFrame(odd).to_string(index=False)


def test_numba_is_loaded_once_a_run_outgrows_the_interpreted_budget():
    """A large timing run loads the cached kernels (same cycles as a small one in Python),
    without SciPy, and leaves the garbage collector on with Numba's objects frozen."""
    code = ("import sys, gc; from dataflow import simulate_gemm; from hwsim.config import preset; "
            "s = simulate_gemm(512, 512, 512, preset('vcu1525'), mode='timing'); "
            "print(s.cycles, 'numba' in sys.modules, 'scipy' in sys.modules, gc.isenabled(), "
            "gc.get_freeze_count() > 50_000)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=600, check=True)
    cycles, *flags = r.stdout.split()
    assert int(cycles) > 0 and flags == ["True", "False", "True", "True"]


def test_kernels_compiled_after_numba_loads_without_scipy_still_call_blas():
    """SciPy is hidden only while Numba is imported: ``np.dot`` and ``@`` of floats in a kernel
    compiled afterwards import it and agree with NumPy; ``np.convolve`` runs as a loop."""
    code = (
        "import sys, json, numpy as np; from hwsim import _jit; _jit.load_numba(); "
        "hidden = 'scipy' not in sys.modules; from numba import njit; "
        "f = njit(lambda a, b: (np.dot(a, b), a @ b, np.convolve(a, b))); "
        "a = np.linspace(0.1, 2.0, 7); b = np.linspace(-1.0, 3.0, 7); d, m, c = f(a, b); "
        "print(json.dumps([hidden, 'scipy.linalg' in sys.modules, "
        "bool(np.isclose(d, np.dot(a, b))), bool(np.isclose(m, a @ b)), "
        "bool(np.allclose(c, np.convolve(a, b)))]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=600, check=True)
    assert json.loads(r.stdout) == [True, True, True, True, True]


TOPOLOGY_ROWS = """
import json, sys
import hwsim._jit as jit
jit.PYTHON_BUDGET_S = float(sys.argv[1])
from dataflow.scalesim import read_scalesim_cfg
from hwsim.config import preset
from reports.topology import topology_rows
rows = topology_rows(sys.argv[2], read_scalesim_cfg(sys.argv[3], base=preset("vcu1525")))
for r in rows:
    del r["sim_s"]
print(json.dumps(["numba" in sys.modules, rows]))
"""


def test_topology_rows_are_the_same_with_kernels_interpreted_and_compiled(tmp_path):
    """Every column of a topology whose DMA outgrows the interpreted budget (so satmem loads
    Numba) is the same when all of it runs as Python: the start-up path changes no result."""
    topo = tmp_path / "mid.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\nL1,30,30,3,3,32,32,1,\n"
                    "Stem,58,58,7,7,3,16,2,\nPW,6,6,1,1,20,9,1,\n")
    runs = {}
    for budget in ("1e9", str(0.25)):  # everything interpreted; satmem's default budget
        r = subprocess.run([sys.executable, "-c", TOPOLOGY_ROWS, budget, str(topo),
                            str(DATA / "scalesim_v3" / "ws8.cfg")],
                           capture_output=True, text=True, timeout=600, check=True)
        runs[budget] = json.loads(r.stdout)
    (interpreted_loaded, interpreted), (compiled_loaded, compiled) = runs.values()
    assert not interpreted_loaded and compiled_loaded
    assert [r["layer"] for r in compiled] == ["L1", "Stem", "PW"]
    assert all(r["dram_stall"] > 0 for r in compiled[:2])
    assert interpreted == compiled


PROGRAM = """
import contextlib, gc, io, json, os, sys
from reports.cli import main
outs = []
for argv in (["simulate-gemm", "8", "8", "8", "--json"], None):  # in a process; as satmem
    before = [gc.get_freeze_count(), os.environ.get("OPENBLAS_THREAD_TIMEOUT")]
    sys.argv = ["satmem", "simulate-gemm", "8", "8", "8", "--json"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    outs.append([code, json.loads(out.getvalue())["cycles"], before])
print(json.dumps([outs, gc.get_freeze_count() > 0, os.environ.get("OPENBLAS_THREAD_TIMEOUT")]))
"""


def test_satmem_program_freezes_the_collector_and_quiets_openblas():
    """Run as the ``satmem`` program (``main()`` without arguments), the CLI moves what is left
    to the permanent generation before the interpreter's exit collections, and sets
    OpenBLAS's spin timeout unless the user did; ``main(argv)`` in a process does neither."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    for user, want in ((None, "4"), ("12", "12")):
        if user is not None:
            env["OPENBLAS_THREAD_TIMEOUT"] = user
        r = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                           timeout=300, check=True, env=env)
        (inproc, program), frozen, timeout = json.loads(r.stdout)
        assert inproc[0] == program[0] == 0 and inproc[1] == program[1] > 0
        assert inproc[2] == program[2] == [0, user]  # main(argv) changed neither
        assert frozen and timeout == want


def _interpreted(kernel, *args):
    """``kernel``'s Python source run as Python, as hwsim._jit runs a small call."""
    from hwsim import _jit

    _jit._INTERPRETING.on = True
    try:
        return kernel.py_func(*args)
    finally:
        _jit._INTERPRETING.on = False


def compare_kernels() -> None:
    """In a fresh process (no kernel built yet, so the kernels they call are interpreted too)."""
    from hwsim import dram, schedule
    from hwsim.config import preset

    cfg = preset("vcu1525")  # the banked DRAM model
    rng = np.random.default_rng(7)
    d = cfg.dram
    model = dram.DramModel(cfg)
    cases = []
    for merge, wide in ((True, False), (False, False), (False, True), (True, False)):
        # dram.dma "burst", "entry" and "wide" (4 entries a request where contiguous)
        addr = rng.integers(0, 1 << 20, 12) * 64
        rows = rng.integers(0, 40, 12)
        nbytes = rng.integers(0, 600, 12)
        stride = np.where(rng.random(12) < 0.5, nbytes, nbytes + 256)
        beat = np.where(wide & (stride == nbytes), 4, 1)
        cases.append((addr, rows, nbytes, stride, d.channels, d.banks, *model._shifts,
                      float(model.channel_bytes_per_cycle), cfg.dram_latency_cycles,
                      float(model.miss_cycles), model.max_outstanding, dram.DMA_BURST_BYTES,
                      d.request_ports, merge, beat))
    dma_kernel, schedule_kernel = dram._dma_kernel, schedule._schedule  # before any is built
    closed = np.full(d.channels * d.banks, -1)
    py = [_interpreted(dma_kernel, *args[:-2], closed.copy(), *args[-2:]) for args in cases]
    n = 300
    unit = rng.integers(0, 4, n)
    duration = rng.integers(1, 50, n)
    wait = np.zeros(n, np.int64)
    signal = np.zeros(n, np.int64)
    for i in range(n - 1):  # semaphore 0 from unit 0 to unit 1, semaphore 1 back
        if (unit[i], unit[i + 1]) in ((0, 1), (1, 0)):
            signal[i] |= 1 << int(unit[i])
            wait[i + 1] |= 1 << int(unit[i])
    made = [int(np.count_nonzero((signal >> s) & 1)) for s in range(schedule.N_SEMS)]
    sem_base = np.concatenate(([0], np.cumsum(made))).astype(np.int64)
    args = (unit, duration, wait, signal, np.zeros(n, np.bool_), 2, 8, sem_base)
    py_sched = _interpreted(schedule_kernel, *args)
    assert "numba" not in sys.modules  # all of it ran as Python
    for case, want in zip(cases, py, strict=True):
        got = dma_kernel.dispatcher()(*case[:-2], closed.copy(), *case[-2:])
        assert want[0].sum() > 0
        for x, y in zip(want, got, strict=True):
            assert np.array_equal(x, y)
    got = schedule_kernel.dispatcher()(*args)
    assert py_sched[4] == 0 and (py_sched[1] >= 0).any()  # no error; some waited on a token
    for x, y in zip(py_sched, got, strict=True):
        assert np.array_equal(x, y)


def test_schedule_and_dma_kernels_interpreted_equal_compiled():
    r = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "equal", r.stdout + r.stderr


if __name__ == "__main__":
    compare_kernels()
    print("equal")
