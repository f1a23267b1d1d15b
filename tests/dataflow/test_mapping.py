"""dataflow.mapping: search space, estimate against hwsim.run, cache."""

import pytest

import hwsim
from dataflow import CompileOptions, MappingCache, MappingError, OpShape, compile, search
from dataflow.mapping import Mapping, estimate
from dataflow.workload import Op, Workload
from hwsim.config import preset


def one_gemm(m, n, k):
    return Workload((Op("g.fwd", "g", "gemm", "fwd", "linear", m=m, n=n, k=k),), "g", "dense",
                    None, False)


@pytest.mark.parametrize("preset_name, shape, low, high", [
    # small ops on tiny: the estimate's closed forms are tight
    *[("tiny", shape, 0.8, 1.02) for shape in
      [(16, 12, 40), (33, 8, 300), (7, 20, 9), (64, 64, 64)]],
    # vcu1525: DMA costs come from hwsim.dram.dma_cycles (the banked DRAM), as hwsim.run's
    *[("vcu1525", shape, 0.85, 1.02) for shape in
      [(256, 128, 300), (1000, 64, 576), (4096, 256, 64)]],
])
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_estimate_tightly_bounds_hwsim_cycles(preset_name, shape, low, high, dataflow):
    config = preset(preset_name)
    m, n, k = shape
    opts = CompileOptions(vector_ops=False, dataflows=(dataflow,))
    prog = compile(one_gemm(m, n, k), config, opts)
    run = hwsim.run(prog, config, "timing").stats.cycles
    est, _ = estimate(OpShape(m, n, k), prog.mappings["g.fwd"], config,
                      blocked=opts.tile_blocked)
    assert low * run <= est <= high * run


@pytest.mark.parametrize("shape", [(4, 128, 49152), (40, 96, 9000), (300, 64, 2500)])
def test_estimate_follows_the_pipeline_when_tile_sizes_alternate(shape):
    """A K remainder (and A loaded in the first n-block only) makes long and short tiles
    alternate: a long load then waits beside a short GEMM, which max(DMA-in, array) misses
    (AttMEMO's embedder, 4 x 128 x 49,152 with the wide DMA: 16% under); the pipeline sum
    (mapping._pipeline) follows hwsim.run."""
    config = preset("vcu1525")
    m, n, k = shape
    prog = compile(one_gemm(m, n, k), config, CompileOptions(vector_ops=False))
    run = hwsim.run(prog, config, "timing").stats.cycles
    est, _ = estimate(OpShape(m, n, k), prog.mappings["g.fwd"], config, blocked=True)
    assert 0.97 * run <= est <= 1.02 * run


def test_search_respects_buffer_halves_and_dataflows():
    config = preset("tiny")
    mp = search(OpShape(64, 64, 1000), config, dataflows=("os",))
    assert mp.dataflow == "os" and mp.kt <= config.act_depth // 2


def test_sparse_ws_tile_covers_m_over_n_array_rows():
    config = preset("vcu1525")
    mp = search(OpShape(3136, 64, 576, (2, 8)), config, dataflows=("ws",))
    assert mp.kt == 128


def test_mapping_cache_hits_in_memory_and_on_disk(tmp_path):
    config = preset("vcu1525")
    MappingCache.clear_memory()
    cache = MappingCache(tmp_path)
    op = OpShape(100, 200, 300)
    first = search(op, config, cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    assert search(op, config, cache=cache) == first and cache.hits == 1
    cache.save()
    MappingCache.clear_memory()
    cold = MappingCache(tmp_path)
    assert search(op, config, cache=cold) == first and cold.hits == 1


def test_unknown_objective_and_no_fit_errors():
    with pytest.raises(ValueError, match="objective"):
        search(OpShape(4, 4, 4), preset("tiny"), "speed")
    with pytest.raises(MappingError, match="'big'"):
        search(OpShape(9_000_000, 4, 9_000_000, name="big"), preset("vcu1525"))


def test_mapping_is_frozen_and_serialisable():
    mp = Mapping("os", "a", 32, 4, 1.0, 2.0)
    assert Mapping(**mp.to_dict()) == mp
