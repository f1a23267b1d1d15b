"""dataflow.lower.gemm: one GEMM lowering for compile_gemm and the compiler, exact in every
mapping, and the operand layouts of sparse programs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.nm import compress
from dataflow import CompileOptions, OpShape, compile, compile_gemm, gemm_tiling, sparse_operands
from dataflow.lower.gemm import SEM_IN_FREE
from dataflow.mapping import Mapping, _candidates, _fits
from dataflow.workload import Op, Workload
from hwsim import isa, preset, run


def _wrap32(x):
    return ((x + 2**31) % 2**32 - 2**31).astype(np.int32)


def _one_gemm(m, n, k, nm):
    sp = {} if nm is None else {"sparsity": nm, "sparse_operand": "B"}
    op = Op("g.fwd", "g", "gemm", "fwd", "linear", m=m, n=n, k=k, **sp)
    return Workload((op,), "g", "dense" if nm is None else "bdwp",
                    None if nm is None else "{}:{}".format(*nm), False)


def _mappings(m, n, k, nm, config):
    shape = OpShape(m, n, k, nm)
    return [mp for mp in _candidates(shape, config, config.array.dataflows)
            if _fits(shape, mp, config) is None]


@pytest.mark.parametrize("config_name", ["tiny", "small8"])
@pytest.mark.parametrize("nm", [None, (2, 4), (2, 8), (1, 8)])
@pytest.mark.parametrize("shape", [(9, 10, 27), (12, 7, 40), (5, 9, 64)])
def test_every_mapping_of_the_search_computes_exact_values(config_name, nm, shape):
    """os/a, os/b, ws/s, ws/a with every chunk the search tries, K not a whole number of
    groups included: the lowering a compiled model uses gives the exact product."""
    cfg = preset(config_name)
    m, n, k = shape
    rng = np.random.default_rng(sum(shape))
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    mappings = _mappings(m, n, k, nm, cfg)
    assert {(mp.dataflow, mp.order) for mp in mappings} >= {("os", "a"), ("ws", "s"),
                                                             ("ws", "a")}
    for mp in mappings:
        prog = compile_gemm(m, n, k, cfg, dataflow=mp.dataflow, sparsity=nm, mapping=mp)
        if nm is None:
            inputs, ref = {"A": a, "B": b}, a @ b
        else:
            ops = sparse_operands(a, b, *nm, ws_rows=cfg.array.rows if mp.dataflow == "ws"
                                  else None)
            inputs = {t: ops[t] for t in ("A", "Bv", "Bi")}
            ref = ops["A_dense"].astype(np.int64) @ ops["B"].astype(np.int64)
        fun = run(prog, cfg, "functional", inputs=inputs)
        np.testing.assert_array_equal(fun.outputs["C"], _wrap32(ref), err_msg=str(mp))
        assert run(prog, cfg, "timing").stats.cycles == fun.stats.cycles


@pytest.mark.parametrize(("config_name", "shape", "nm", "dataflow"), [
    ("tiny", (9, 10, 27), None, "os"),
    ("tiny", (40, 70, 50), None, "ws"),
    ("small8", (12, 7, 40), (2, 8), "os"),
    ("small8", (33, 20, 100), (2, 4), "ws"),
    ("vcu1525", (100, 64, 300), (1, 8), "ws"),
])
def test_compile_gemm_emits_what_the_compiler_emits_for_a_one_op_workload(config_name, shape,
                                                                         nm, dataflow):
    cfg = preset(config_name)
    prog = compile(_one_gemm(*shape, nm), cfg,
                   CompileOptions(vector_ops=False, dataflows=(dataflow,)))
    mp = prog.mappings["g.fwd"]
    one = compile_gemm(*shape, cfg, dataflow=dataflow, sparsity=nm, mapping=mp,
                       blocked=prog.options.tile_blocked)
    np.testing.assert_array_equal(one.table, prog.table)
    names = {"A": "A", "B": "B" if nm is None else "Bv", "Bi": "Bi", "C": "C"}
    for suffix, name in names.items():
        if name in one.tensors:
            assert one.tensors[name] == prog.tensors[f"g.fwd.{suffix}"]
    assert one.dram_bytes == prog.dram_bytes


def test_reference_tiling_streams_tiles_and_keeps_a_resident_when_k_fits():
    cfg = preset("tiny")
    assert gemm_tiling(64, 64, 100, cfg, "os") == Mapping("os", "a", 100, 4)
    assert gemm_tiling(64, 64, 1000, cfg, "os") == Mapping("os", "a", 128, 4)
    assert gemm_tiling(64, 64, 1000, cfg, "os", (2, 8)) == Mapping("os", "a", 128, 4)
    assert gemm_tiling(100, 64, 1000, cfg, "ws") == Mapping("ws", "s", 4, 64)
    assert gemm_tiling(100, 64, 1000, cfg, "ws", (2, 8)) == Mapping("ws", "s", 16, 32)
    # every GEMM but the last frees its ACT/WGT half for the load group two ahead
    prog = compile_gemm(8, 8, 300, cfg, dataflow="os")
    gemms = [c for c in prog.commands if isinstance(c, isa.Gemm)]
    loads = [c for c in prog.commands if isinstance(c, isa.Load)]
    assert [bool(g.signal >> SEM_IN_FREE & 1) for g in gemms] == [True] * (len(gemms) - 1) + \
        [False]
    assert sum(ld.wait >> SEM_IN_FREE & 1 for ld in loads) == len(gemms) - 2


def test_sparse_operands_match_algorithms_compress():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((64, 10)).astype(np.float32)  # no ties
    ops = sparse_operands(np.zeros((3, 64), np.float32), b, 2, 8)
    vals, idx = compress(torch.from_numpy(b), 2, 8, dim=0)
    np.testing.assert_array_equal(ops["Bv"], vals.numpy())
    np.testing.assert_array_equal(ops["Bi"], idx.numpy())


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_gemm_shape(bad):
    with pytest.raises(ValueError, match="GEMM dimension M must be a positive integer"):
        compile_gemm(bad, 4, 4, preset("tiny"))


def test_unsupported_pattern_dataflow_and_mapping_are_refused():
    cfg = preset("tiny")
    with pytest.raises(ValueError, match=r"pattern 1:4 is not supported by config 'tiny'"):
        compile_gemm(4, 4, 16, cfg, sparsity=(1, 4))
    with pytest.raises(ValueError, match="dataflow 'is' is not supported by config 'tiny'"):
        compile_gemm(4, 4, 16, cfg, dataflow="is")
    with pytest.raises(ValueError, match="mapping ws/s is not of dataflow 'os'"):
        compile_gemm(4, 4, 16, cfg, dataflow="os", mapping=Mapping("ws", "s", 4, 4))


def test_simulate_gemm_at_the_searched_mapping_is_that_mappings_program():
    """``mapping="search"`` runs the compile_gemm program of the mapping dataflow.search picks,
    in the tile-blocked layouts, as the compiler does; on vcu1525 it reuses B where the default
    tiling reloads it per m-block."""
    from dataflow import search, simulate_gemm

    cfg = preset("vcu1525")
    mp = search(OpShape(1024, 1024, 1024, (2, 4)), cfg, dataflows=("os",), blocked=True)
    s = simulate_gemm(1024, 1024, 1024, cfg, dataflow="os", sparsity="2:4", mapping="search")
    ref = run(compile_gemm(1024, 1024, 1024, cfg, dataflow="os", sparsity=(2, 4), mapping=mp,
                           blocked=True), cfg).stats
    assert s.cycles == ref.cycles
    default = simulate_gemm(1024, 1024, 1024, cfg, dataflow="os", sparsity="2:4")
    assert s.cycles < 0.7 * default.cycles
    with pytest.raises(ValueError, match="mapping must be a Mapping or 'search', not 'best'"):
        simulate_gemm(64, 64, 64, cfg, mapping="best")
