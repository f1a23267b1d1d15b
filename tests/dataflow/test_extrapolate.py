"""Bounded work in timing mode (issue 18): a GEMM over the command budget is timed from truncated
programs and extrapolated over its loop nest (dataflow.extrapolate). Every test compares the
extrapolation with the full program's simulation, never with stored cycle numbers."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from dataflow.lower.emitter import Alloc
from dataflow.lower.gemm import (
    BudgetError,
    compile_gemm,
    gemm_blocks,
    gemm_loops,
    gemm_steps,
    gemm_tensors,
    gemm_tiling,
    simulate_gemm,
)
from dataflow.mapping import OpShape
from hwsim.config import load_config
from reports.cli import main

SPARSE = "2:8"  # a pattern both configs support


def _additive(s) -> dict:
    """The fields a longer loop adds to, flattened as ``Stats.extrapolated["bound"]`` names
    them."""
    out = {"cycles": s.cycles, "macs": s.macs}
    for group in ("busy", "stalls", "bytes"):
        out.update({f"{group}/{k}": v for k, v in getattr(s, group).items()})
    for part, rw in s.sram_bytes.items():
        out.update({f"sram_bytes/{part}/{k}": v for k, v in rw.items()})
    out.update({f"dram/{k}": s.dram[k] for k in ("row_hits", "row_misses")})
    out.update({f"energy_pj/{k}": v for k, v in s.energy_pj.items()})
    return out


def _both(m, n, k, config, **kw):
    """(extrapolated, fully simulated) statistics of one GEMM."""
    cfg = load_config(config)
    assert any(count > 16 for _, count in gemm_loops(
        OpShape(m, n, k, None), gemm_tiling(m, n, k, cfg, kw["dataflow"]), cfg))
    ext = simulate_gemm(m, n, k, cfg, extrapolate=True, **kw)
    full = simulate_gemm(m, n, k, cfg, extrapolate=False, max_commands=0, **kw)
    assert ext.extrapolated is not None and full.extrapolated is None
    assert ext.macs == full.macs
    return ext, full


def _assert_equal(ext, full):
    a, b = _additive(ext), _additive(full)
    assert a.keys() == b.keys()
    for key, want in b.items():
        if isinstance(want, float):
            assert a[key] == pytest.approx(want, rel=1e-9, abs=1e-6), key
        else:
            assert a[key] == want, key
    assert ext.utilisation == pytest.approx(full.utilisation, rel=1e-12)
    assert ext.dram["bandwidth_gbps"] == pytest.approx(full.dram["bandwidth_gbps"], rel=1e-12)


MAPPINGS = [(df, sp, mp) for df in ("os", "ws") for sp in (None, SPARSE)
            for mp in (None, "search")]


@pytest.mark.parametrize("dataflow, sparsity, mapping", MAPPINGS)
def test_extrapolation_on_the_fixed_dram_equals_the_full_simulation(dataflow, sparsity,
                                                                   mapping):
    ext, full = _both(150, 130, 40, "tiny", dataflow=dataflow, sparsity=sparsity,
                      mapping=mapping)
    x = ext.extrapolated
    assert x["exact"] and x["bound"] == {}
    # fewer iterations simulated than the loops have
    assert all(sim < count for count, sim, period in x["loops"].values())
    _assert_equal(ext, full)


@pytest.mark.parametrize("shape", [(300, 3000, 200), (256, 4096, 256)])
@pytest.mark.parametrize("dataflow, sparsity, mapping", MAPPINGS)
def test_extrapolation_on_banked_dram_is_within_its_bound(shape, dataflow, sparsity, mapping):
    """Banked DRAM: a tile's row hits depend on its addresses, so a steady start must hold in
    windows over the whole loop to be called exact; otherwise every additive field is within
    the bound the result states, and cycles within 0.1% on these one-long-loop GEMMs."""
    ext, full = _both(*shape, "vcu1525", dataflow=dataflow, sparsity=sparsity, mapping=mapping)
    x = ext.extrapolated
    if x["exact"]:
        _assert_equal(ext, full)
        return
    a, b = _additive(ext), _additive(full)
    for key, want in b.items():
        assert abs(a[key] - want) <= x["bound"].get(key, 0) + 1e-6 * abs(want), key
    assert abs(ext.cycles - full.cycles) <= 1e-3 * full.cycles


def test_a_short_loop_on_banked_dram_stays_within_the_bound():
    """A loop of 36 iterations without a steady state (the other, of 18, kept whole: cheaper
    than extrapolating both, which put cycles 2% off): every field within the stated bound."""
    ext, full = _both(1146, 576, 856, "vcu1525", dataflow="os", sparsity=SPARSE,
                      mapping="search")
    x = ext.extrapolated
    assert not x["exact"] and list(x["loops"]) == ["m"]
    a, b = _additive(ext), _additive(full)
    for key, want in b.items():
        assert abs(a[key] - want) <= x["bound"].get(key, 0) + 1e-6 * abs(want), key
    assert abs(ext.cycles - full.cycles) <= 0.05 * full.cycles


def test_every_iteration_selected_is_the_full_program():
    cfg = load_config("tiny")
    for df, sp in (("os", None), ("ws", (2, 8)), ("os", (1, 8))):
        shape = OpShape(37, 29, 70, sp)
        mp = gemm_tiling(37, 29, 70, cfg, df, sp)
        every = {name: list(range(count)) for name, count in gemm_loops(shape, mp, cfg)}
        full = compile_gemm(37, 29, 70, cfg, dataflow=df, sparsity=sp)
        picked = compile_gemm(37, 29, 70, cfg, dataflow=df, sparsity=sp, select=every)
        assert np.array_equal(full.table, picked.table)
        t = gemm_tensors(shape, df, cfg, Alloc())
        steps = sum(len(b) for b in gemm_blocks(shape, mp, cfg, t, {"n": [0, 7]}))
        assert steps == gemm_steps(shape, mp, cfg) * 2 // len(every["n"])


def test_the_issues_gemm_answers_with_one_line_saying_it_is_extrapolated(capsys):
    cfg = load_config("tiny")
    t0 = time.perf_counter()
    assert main(["simulate-gemm", "256", "1000000", "8", "--config", "tiny"]) == 0
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "extrapolated" in ln]
    assert len(lines) == 1 and "exact" in lines[0] and "250,000" in lines[0]
    assert seconds < 10  # about 0.1 s here; a loaded 2-core machine
    assert main(["simulate-gemm", "256", "1000000", "8", "--config", "tiny", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["extrapolated"]["exact"] and d["macs"] == 256 * 1_000_000 * 8
    # closed-form lower bounds: every MAC on a PE, every DMA byte at the DRAM's peak rate
    assert d["cycles"] >= d["macs"] / cfg.array.pes
    assert d["cycles"] >= (d["bytes"]["dram_read"] + d["bytes"]["dram_write"]) / \
        cfg.dram_bytes_per_cycle
    # every output element stored once, as int32; A read once per n-block (default ws/s)
    assert d["bytes"]["dram_write"] == 256 * 1_000_000 * 4
    assert d["utilisation"] == pytest.approx(d["macs"] / (d["cycles"] * cfg.array.pes))


def test_a_longer_gemm_is_the_shorter_plus_whole_iterations():
    """The extrapolated cycles of N and of 2N differ by N/C steady iterations, as the full
    simulations of a small GEMM do."""
    cfg = load_config("tiny")
    small = [simulate_gemm(64, n, 8, cfg, extrapolate=False).cycles for n in (400, 404)]
    big = [simulate_gemm(64, n, 8, cfg, extrapolate=True).cycles
           for n in (4_000_000, 4_000_004)]
    assert big[1] - big[0] == small[1] - small[0]


def test_extrapolation_refuses_what_it_cannot_give():
    with pytest.raises(BudgetError, match="--max-commands"):
        simulate_gemm(256, 1_000_000, 8, "tiny", extrapolate=False)
    with pytest.raises(BudgetError, match="no per-command trace"):
        simulate_gemm(256, 1_000_000, 8, "tiny", trace="/nonexistent/trace.csv")
    # functional mode keeps its MAC budget: values are never extrapolated
    with pytest.raises(BudgetError, match="--max-macs 0"):
        simulate_gemm(256, 1_000_000, 8, "tiny", mode="functional", max_macs=10**6)
    # a GEMM of short loops is simulated whole even when asked, with its schedule
    s = simulate_gemm(30, 30, 30, "tiny", extrapolate=True)
    assert s.extrapolated is None and len(s.retire_cycles) > 0
