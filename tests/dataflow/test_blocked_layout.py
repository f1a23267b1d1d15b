"""Tile-blocked DRAM layouts (``dataflow.lower.gemm``, ``CompileOptions.tile_blocked``): the same
values through hwsim's functional mode, every tile's LOAD and STORE one contiguous range, and
what that saves on the banked DRAM model."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.lower.gemm import BlockedRef, compile_gemm, sparse_operands
from hwsim import isa
from hwsim.config import preset
from hwsim.dram import dma_cycles
from hwsim.engine import run
from hwsim.program import COL


def _wrap32(x):
    return ((np.asarray(x, np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


@pytest.mark.parametrize("order", ["row", "col"])
def test_blocked_ref_round_trips_and_lays_panels_out_contiguously(order):
    ref = BlockedRef(64, (10, 11), "int32", order=order, block=4)
    v = np.arange(110, dtype=np.int32).reshape(10, 11)
    dram = np.zeros(64 + ref.nbytes + 8, np.uint8)
    ref.write(dram, v)
    np.testing.assert_array_equal(ref.read(dram), v)
    assert ref.nbytes == 10 * 11 * 4  # no padding
    stored = v if order == "row" else v.T
    flat = dram[64:64 + ref.nbytes].view(np.int32)
    rows = stored.shape[0]
    # panel 1 (columns 4..7 of the stored matrix) starts after panel 0's rows x 4 elements
    np.testing.assert_array_equal(flat[rows * 4:rows * 8].reshape(rows, 4), stored[:, 4:8])
    # the last, narrower panel
    w = stored.shape[1] - 8
    np.testing.assert_array_equal(flat[rows * 8:].reshape(rows, w), stored[:, 8:])


@pytest.mark.parametrize("config_name", ["tiny", "small8"])
@pytest.mark.parametrize("shape", [(20, 13, 40), (9, 30, 64), (33, 20, 100)])
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("nm", [None, (2, 4), (2, 8)])
def test_blocked_programs_compute_the_same_values(config_name, shape, dataflow, nm):
    cfg = preset(config_name)
    if nm is not None and nm not in cfg.array.nm_patterns:
        pytest.skip("pattern not in the config")
    m, n, k = shape
    rng = np.random.default_rng(sum(shape))
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    if nm is None:
        inputs, ref = {"A": a, "B": b}, a @ b
    else:
        ops = sparse_operands(a, b, *nm, ws_rows=cfg.array.rows if dataflow == "ws" else None)
        inputs = {t: ops[t] for t in ("A", "Bv", "Bi")}
        ref = ops["A_dense"].astype(np.int64) @ ops["B"].astype(np.int64)
    plain = compile_gemm(m, n, k, cfg, dataflow=dataflow, sparsity=nm)
    blk = compile_gemm(m, n, k, cfg, dataflow=dataflow, sparsity=nm, blocked=True)
    out = run(blk, cfg, "functional", inputs=inputs)
    np.testing.assert_array_equal(out.outputs["C"], _wrap32(ref))
    assert run(blk, cfg, "timing").stats.cycles == out.stats.cycles
    # the same commands but for DRAM addresses and strides
    keep = [c for c in range(plain.table.shape[1])
            if c not in (COL["dram_addr"], COL["stride"])]
    np.testing.assert_array_equal(plain.table[:, keep], blk.table[:, keep])


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("nm", [None, (2, 8)])
def test_every_tile_transfer_is_one_contiguous_range(dataflow, nm):
    cfg = preset("vcu1525")
    prog = compile_gemm(1000, 300, 700, cfg, dataflow=dataflow, sparsity=nm, blocked=True)
    t = prog.table
    dma = (t[:, 0] == isa.Opcode.LOAD) | (t[:, 0] == isa.Opcode.STORE)
    eb = np.where(t[dma, COL["buf"]] == isa.Buffer.IDX, 1,
                  np.where(t[dma, COL["buf"]] == isa.Buffer.ACC, 4, 2))
    nbytes = t[dma, COL["elems"]] * eb
    assert (t[dma, COL["stride"]] == nbytes).all()
    plain = compile_gemm(1000, 300, 700, cfg, dataflow=dataflow, sparsity=nm).table
    pdma = (plain[:, 0] == isa.Opcode.LOAD) | (plain[:, 0] == isa.Opcode.STORE)
    assert (plain[pdma, COL["stride"]] > nbytes).any()  # the row-major layouts were strided


def test_contiguous_store_of_an_output_tile_streams_at_the_bus_rate():
    """A 1,024 x 32 fp32 output tile of a GEMM with N = 256: row-major, 128-byte rows 1 KiB
    apart all fall in one DRAM channel of the four; blocked, it is one 128 KiB range.

    The RTL's DMA (``dram.dma == "entry"``) writes an entry a cycle: blocked, the rows rotate
    over the four 64-byte channel ports at one a cycle; strided, each row takes two beats of
    one port. A burst DMA (model only) would stream the range near the DRAM's peak."""
    cfg = preset("vcu1525")
    strided = int(dma_cycles(True, 0, 1024, 128, 1024, cfg).cycles[0])
    blocked = int(dma_cycles(True, 0, 1024, 128, 128, cfg).cycles[0])
    assert blocked == 2 + 1024 + 2  # start and done cycles, a row a cycle, the last row's beats
    assert strided >= 2 + 2 * 1024 and blocked * 1.9 < strided
    burst = cfg.replace(dram__dma="burst")
    strided = int(dma_cycles(True, 0, 1024, 128, 1024, burst).cycles[0])
    blocked = int(dma_cycles(True, 0, 1024, 128, 128, burst).cycles[0])
    ideal = 1024 * 128 / cfg.dram_bytes_per_cycle  # 341 cycles at 384 B a cycle
    assert strided > 3.5 * ideal
    assert blocked < 1.25 * ideal
    assert blocked * 3 < strided


@pytest.mark.parametrize("dma", ["entry", "burst"])
def test_blocked_layout_lowers_a_models_dma_time_on_vcu1525(dma):
    """The compiler's default (tile_blocked) against row-major tensors: the same commands, less
    DMA-in and DMA-out time. With the RTL's DMA (an entry a cycle) loads of 64-byte rows cost
    the same either way and only the 128-byte output rows gain (one port a row strided); a burst
    DMA gains on both."""
    import torch
    from torch import nn

    from dataflow.compiler import compile, simulate_program
    from dataflow.optimizations import CompileOptions
    from dataflow.workload import extract

    cfg = preset("vcu1525").replace(dram__dma=dma)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256))
    wl = extract(model, torch.zeros(2048, 256), method="bdwp", pattern="2:8")
    opts = CompileOptions(vector_ops=False)
    on = simulate_program(compile(wl, cfg, opts))
    off = simulate_program(compile(wl, cfg, opts.replace(tile_blocked=False)))
    assert on.busy["dma_in"] < (0.8 if dma == "burst" else 1.0) * off.busy["dma_in"]
    assert on.busy["dma_out"] < (0.5 if dma == "burst" else 0.55) * off.busy["dma_out"]
    assert on.cycles <= off.cycles
