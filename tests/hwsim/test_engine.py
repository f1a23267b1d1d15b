"""hwsim.run on compiled GEMM programs: values, timing == functional, and program errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow import compile_gemm, simulate_gemm, sparse_operands
from hwsim import ProgramError, isa, preset, run
from hwsim.buffers import elem_bytes
from hwsim.dram import DramModel, dma_cycles
from hwsim.program import Program, TensorRef
from hwsim.units import unit_cycles
from hwsim.units.dma import load_beats

MIB = 1 << 20
CONFIGS = {
    "tiny": preset("tiny"),
    "small8": preset("small8"),
    # banked DRAM with 64-byte rows and two banks: small programs still miss rows
    "tiny-banked": preset("tiny").replace(dram__model="banked", dram__banks=2,
                                          dram__row_bytes=64),
    # the DMA that asks for a bus word of whole contiguous entries (rtl/dma.py builds it)
    "tiny-wide": preset("tiny").replace(dram__dma="wide"),
    "tiny-banked-wide": preset("tiny").replace(dram__model="banked", dram__banks=2,
                                               dram__row_bytes=64, dram__dma="wide"),
}


def _durations(prog, cfg):
    """Expected unit_cycles of every command: closed forms, DMA commands by dma_cycles."""
    dur = [unit_cycles(c, cfg) for c in prog.commands]
    idx = [i for i, c in enumerate(prog.commands) if isinstance(c, isa.Load | isa.Store)]
    cmds = [prog.commands[i] for i in idx]
    beats = [int(load_beats(isinstance(c, isa.Load), c.buf, c.sram_addr, c.elems, c.stride,
                            cfg)) for c in cmds]
    dma = dma_cycles([isinstance(c, isa.Store) for c in cmds], [c.dram_addr for c in cmds],
                     [c.rows for c in cmds], [c.elems * elem_bytes(c.buf, cfg) for c in cmds],
                     [c.stride for c in cmds], cfg, beat=beats)
    for i, d in zip(idx, dma.cycles.tolist(), strict=True):
        dur[i] = d
    return dur, dma


def _case(m, n, k, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (m, k)).astype(np.int8),
            rng.integers(-128, 128, (k, n)).astype(np.int8))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 600),
       dataflow=st.sampled_from(["os", "ws"]), config=st.sampled_from(list(CONFIGS)),
       pattern=st.sampled_from([None, (2, 4), (2, 8), (1, 8)]), seed=st.integers(0, 1000),
       blocked=st.booleans())
def test_gemm_program_values_and_timing_equal_functional(m, n, k, dataflow, config, pattern,
                                                         seed, blocked):
    cfg = CONFIGS[config]
    a, b = _case(m, n, k, seed)
    prog = compile_gemm(m, n, k, cfg, dataflow=dataflow, sparsity=pattern, blocked=blocked)
    if pattern is None:
        inputs = {"A": a, "B": b}
    else:
        ops = sparse_operands(a, b, *pattern,
                              ws_rows=cfg.array.rows if dataflow == "ws" else None)
        inputs = {t: ops[t] for t in ("A", "Bv", "Bi")}
        a, b = ops["A_dense"], ops["B"]
    func = run(prog, cfg, "functional", inputs=inputs)
    ref = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(func.outputs["C"], (ref + 2**31) % 2**32 - 2**31)
    timing = run(prog, cfg, "timing")
    assert timing.stats.cycles == func.stats.cycles
    assert timing.stats.retire_cycles == func.stats.retire_cycles
    assert timing.stats.accept_cycles == func.stats.accept_cycles
    dur, _ = _durations(prog, cfg)
    assert [e - s + 1 for s, e in zip(func.stats.start_cycles, func.stats.retire_cycles,
                                      strict=True)] == dur
    # overlap can only help: never slower than one command at a time, never faster than the
    # busiest unit
    serial = sum(1 + d for d in dur)
    assert max(func.stats.busy.values()) < func.stats.cycles <= serial


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("dma", ["entry", "wide"])
def test_vcu1525_banked_dram_timing_equals_functional(dataflow, dma):
    cfg = preset("vcu1525").replace(dram__dma=dma)
    prog = compile_gemm(40, 70, 50, cfg, dataflow=dataflow, blocked=True)
    rng = np.random.default_rng(0)
    a, b = rng.integers(-8, 8, (40, 50)), rng.integers(-8, 8, (50, 70))
    func = run(prog, cfg, "functional", inputs={"A": a, "B": b})
    np.testing.assert_array_equal(func.outputs["C"], a @ b)
    timing = run(prog, cfg, "timing")
    assert timing.stats.cycles == func.stats.cycles
    assert timing.stats.retire_cycles == func.stats.retire_cycles
    assert timing.stats.dram == func.stats.dram


def test_hand_computed_cycles_of_a_single_tile_tiny():
    # Accepted on cycles 0-3. LOAD A starts on 1 and takes 4 rows + latency 4 + 1 = 9 cycles
    # (ends 9); LOAD B starts on 10, ends 18 and signals; the GEMM sees the token on 19 and
    # takes k + 2R + C + 1 = 17 (ends 35); the STORE sees its token on 36 and takes 4 + 2 = 6.
    cfg = preset("tiny")
    stats = run(compile_gemm(4, 4, 4, cfg, dataflow="os"), cfg).stats
    assert stats.accept_cycles == [0, 1, 2, 3]
    assert stats.start_cycles == [1, 10, 19, 36]
    assert stats.retire_cycles == [9, 18, 35, 41]
    assert stats.cycles == 42
    assert stats.bytes["dram_read"] == 32 and stats.bytes["dram_write"] == 64
    # 96 bytes while a DMA unit was busy (cycles 1-18 and 36-41); 4-byte rows use a quarter
    # of each 16-byte slot: 3 cycles over the peak per LOAD
    assert stats.dram == {"row_hits": 0, "row_misses": 0, "bandwidth_gbps": 96 * 100 / 24 / 1000,
                          "peak_gbps": 1.6}
    assert stats.stalls["dram_latency"] == 2 * 4 and stats.stalls["dram_bandwidth"] == 6


def test_stats_account_every_cycle_and_energy():
    cfg = preset("tiny")
    s = simulate_gemm(13, 9, 21, cfg, dataflow="os")
    assert s.macs == 13 * 9 * 21
    assert s.utilisation == pytest.approx(s.macs / (s.cycles * 16))
    # every idle gap of a unit is attributed to one reason
    idle = sum(s.cycles - b for k, b in s.busy.items() if k in ("dma_in", "dma_out", "array"))
    gaps = s.stalls["dispatch"] + s.stalls["dependency"] + s.stalls["buffer_space"]
    assert 0 < gaps <= idle
    e = cfg.energy
    assert s.energy_pj["dram"] == pytest.approx(
        (s.bytes["dram_read"] + s.bytes["dram_write"]) * e.dram_byte)
    assert s.to_json().startswith("{")


def test_vcu1525_fp16_timing_runs():
    s = simulate_gemm(256, 256, 256, "vcu1525", dataflow="ws")
    assert 0.1 < s.utilisation < 1.0
    assert s.bytes["dram_read"] >= 256 * 256 * 2 * 2  # A and B in fp16 at least once


@pytest.mark.parametrize(("cmd", "field", "why"), [
    (isa.Load(isa.Buffer.ACT, 250, 0, 10, 4, 4), "rows", "overflow the ACT buffer of 256"),
    (isa.Load(5, 0, 0, 1, 4, 4), "buf", "buffer 5 is not one of"),
    (isa.Load(isa.Buffer.WGT, 0, 0, 1, 5, 4), "elems", "5 elements exceed the WGT entry of 4"),
    (isa.Gemm(a_addr=0, b_addr=0, c_addr=126, idx_addr=0, k=1, m=0), "c_addr",
     "overflow the ACC buffer of 128"),
    (isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=5, m=1, dataflow=1), "k",
     "5 preloaded weight rows exceed 4 array rows"),
    (isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=1, m=0, sparse=1, n=3, log2m=3), "n",
     "pattern 3:8 is not supported"),
    (isa.Prune(isa.Buffer.WGT, 0, 0, 0, 8, 1, 2, 3, axis=0), "axis", "axis 0"),
    (isa.Prune(isa.Buffer.WGT, 250, 0, 0, 8, 1, 2, 3, axis=1), "rows",
     "source entries 250..257 overflow the WGT buffer of 256"),
    (isa.Prune(isa.Buffer.WGT, 0, 0, 250, 32, 1, 2, 3, axis=1), "idx_addr",
     "index entries 250..257 overflow the IDX buffer of 256"),
    (isa.Update(0, 0, 0, 0, 4), "g_addr", "overlap w_addr entries 0..0"),
    (isa.Update(0, 1, 2, 3, 4, optimizer=2), "optimizer", "Adam (optimizer 2) is not "
     "implemented"),
    (isa.Gather(0, 0, 0, 0, 1, 1, 8, mode=2), "mode", "2 is not a GATHER mode"),
    (isa.Gather(0, 0, 0, 0, 1, 1, 8, tier=1), "tier", "tier 1 does not exist"),
])
def test_bad_commands_name_index_and_field(cmd, field, why):
    prog = Program([isa.Sync(), cmd], dram_bytes=64)
    with pytest.raises(ProgramError) as err:
        run(prog, preset("tiny"))
    assert err.value.index == 1 and err.value.field == field
    assert why in str(err.value)
    assert str(err.value).startswith(f"command 1 ({cmd.name}) field {field!r}")


@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_unsatisfiable_wait_is_an_error_not_a_hang(mode):
    prog = Program([isa.Sync(signal=0b1), isa.Sync(wait=0b1), isa.Sync(wait=0b10)], 64)
    with pytest.raises(ProgramError, match="command 2 .* semaphore 1 has no token from an "
                       "earlier command"):
        run(prog, preset("tiny"), mode, inputs={})


@pytest.mark.parametrize("mode", ["timing", "functional"])
def test_a_semaphore_holds_at_most_the_rtl_counters_tokens(mode):
    # 256 SYNCs signal semaphore 0 before anything waits on it: the 8-bit counter would wrap
    def prog(n):
        return Program([*(isa.Sync(signal=1) for _ in range(n)),
                        *(isa.Sync(wait=1) for _ in range(n))], 64)

    assert isa.SEMAPHORE_MAX == 255
    run(prog(255), preset("tiny"), mode, inputs={})  # 255 tokens held: allowed
    with pytest.raises(ProgramError, match="command 255 .* semaphore 0 would hold 256 tokens "
                       "on cycle .*counters hold 255"):
        run(prog(256), preset("tiny"), mode, inputs={})


def test_semaphores_are_point_to_point():
    load = isa.Load(isa.Buffer.ACT, 0, 0, 1, 1, 1, signal=1)
    store = isa.Store(isa.Buffer.ACC, 0, 0, 1, 1, 1, signal=1)
    with pytest.raises(ProgramError, match="command 1 .* semaphore 0 is already signalled by "
                       "another unit"):
        run(Program([load, store], 64), preset("tiny"))


def test_a_race_between_units_is_reported():
    # a GEMM reading ACT entries that a LOAD is still writing, with no semaphore between them
    load = isa.Load(isa.Buffer.ACT, 0, 0, 8, 4, 4)
    gemm = isa.Gemm(a_addr=4, b_addr=0, c_addr=0, idx_addr=0, k=4, m=0)
    with pytest.raises(ProgramError, match=r"command 1 \(GEMM\) field 'wait': races with "
                       r"command 0 \(LOAD\) on ACT entries 4..7"):
        run(Program([load, gemm], 64), preset("tiny"))
    # ordered by a token it is fine
    ok = run(Program([isa.Load(isa.Buffer.ACT, 0, 0, 8, 4, 4, signal=1),
                      isa.Gemm(a_addr=4, b_addr=0, c_addr=0, idx_addr=0, k=4, m=0, wait=1)],
                     64), preset("tiny"))
    assert ok.stats.start_cycles[1] == ok.stats.retire_cycles[0] + 1


def test_bad_mode_and_missing_inputs():
    cfg = preset("tiny")
    prog = compile_gemm(2, 2, 2, cfg)
    with pytest.raises(ValueError, match="mode must be one of"):
        run(prog, cfg, "fast")
    with pytest.raises(ValueError, match=r"program inputs \['B'\] were not given"):
        run(prog, cfg, "functional", inputs={"A": np.zeros((2, 2))})


def test_prune_program_equals_algorithms_compress():
    """LOAD a dense weight tile, PRUNE it 2:8 on the SORE, STORE values and indices."""
    import torch

    from algorithms.nm import compress

    cfg = preset("tiny")
    rng = np.random.default_rng(5)
    k, c = 16, cfg.array.cols
    w = rng.integers(-128, 128, (k, c)).astype(np.int8)
    w_ref = TensorRef(0, (k, c), "int8")
    vals = TensorRef(64, (k // 4, c), "int8")
    idx = TensorRef(128, (k // 4, c), "int8")
    prog = Program([
        isa.Load(isa.Buffer.WGT, 0, 0, k, c, c, signal=1),
        isa.Prune(isa.Buffer.WGT, 0, 32, 0, k, 1, 2, 3, axis=1, wait=1, signal=2),
        isa.Store(isa.Buffer.WGT, 32, 64, k // 4, c, c, wait=2, signal=4),
        isa.Store(isa.Buffer.IDX, 0, 128, k // 4, c, c, wait=4),
    ], 192, {"W": w_ref, "V": vals, "I": idx}, inputs=("W",), outputs=("V", "I"))
    res = run(prog, cfg, "functional", inputs={"W": w})
    ref_v, ref_i = compress(torch.from_numpy(w.astype(np.float32)), 2, 8, dim=0)
    np.testing.assert_array_equal(res.outputs["V"], ref_v.numpy().astype(np.int8))
    np.testing.assert_array_equal(res.outputs["I"], ref_i.numpy().astype(np.int8))
    from hwsim.units.sore import prune_cycles

    assert res.stats.busy["sore"] == prune_cycles(k, c, 2, 8, cfg.sore.lanes)
    assert res.stats.energy_pj["sore"] > 0


def test_update_program_equals_separately_rounded_torch_ops():
    """LOAD w, g, v into VEC, SETREG the hyper-parameters, UPDATE, STORE w, v and the fp16 copy."""
    import torch

    from hwsim.numerics import f32_bits

    cfg = preset("tiny")
    lanes = cfg.vector.lanes
    n = 10  # words: two full entries and a partial one
    e = -(-n // lanes)
    rng = np.random.default_rng(3)
    w, g, v = (rng.standard_normal((1, n)).astype(np.float32) for _ in range(3))
    lr, mu, wd = 0.05, 0.9, 1e-3
    refs = {name: TensorRef(64 * i, (1, n), "fp32") for i, name in enumerate("wgv")}
    refs["o"] = TensorRef(192, (1, n), "fp16")
    row = 4 * lanes
    cmds = [isa.SetReg(0, int(f32_bits(np.float32(lr)))),
            isa.SetReg(1, int(f32_bits(np.float32(mu)))),
            isa.SetReg(2, int(f32_bits(np.float32(wd))))]
    for i, name in enumerate("wgv"):
        cmds.append(isa.Load(isa.Buffer.VEC, 8 * i, refs[name].addr, e, lanes, row,
                             signal=1 if name == "v" else 0))
    cmds.append(isa.Update(0, 8, 16, 24, n, optimizer=1, hp_base=0, wait=1, signal=2))
    cmds.append(isa.Store(isa.Buffer.VEC, 0, refs["w"].addr, e, lanes, row, wait=2, signal=4))
    cmds.append(isa.Store(isa.Buffer.VEC, 16, refs["v"].addr, e, lanes, row, wait=4, signal=8))
    cmds.append(isa.Store(isa.Buffer.VEC, 24, refs["o"].addr, 2, lanes, row, wait=8))
    prog = Program(cmds, 256, refs, inputs=("w", "g", "v"), outputs=("w", "v", "o"))
    res = run(prog, cfg, "functional", inputs={"w": w, "g": g, "v": v})
    tw, tg, tv = (torch.from_numpy(x[0].copy()) for x in (w, g, v))
    g2 = torch.add(tg, torch.mul(tw, np.float32(wd)))
    v2 = torch.add(torch.mul(tv, np.float32(mu)), g2)
    w2 = torch.sub(tw, torch.mul(v2, np.float32(lr)))
    np.testing.assert_array_equal(res.outputs["w"][0].view(np.uint32), w2.numpy().view(np.uint32))
    np.testing.assert_array_equal(res.outputs["v"][0].view(np.uint32), v2.numpy().view(np.uint32))
    np.testing.assert_array_equal(res.outputs["o"][0], w2.numpy().astype(np.float16))
    from hwsim.units.vector import update_cycles

    assert res.stats.busy["vector"] == update_cycles(n, lanes, 1)
    assert res.stats.energy_pj["vector"] > 0


def test_sparse_program_checks_whole_groups():
    bad = isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=3, m=0, sparse=1, n=2, log2m=3)
    with pytest.raises(ProgramError, match="3 compressed steps are not a whole number of "
                       "groups of 2"):
        run(Program([bad], 64), preset("tiny"))


# --- banked DRAM in the engine ------------------------------------------------------------------

def _load_program(rows, elems, stride, buf=isa.Buffer.ACT):
    return Program([isa.Load(buf, 0, 0, rows, elems, stride)], dram_bytes=64)


def test_sequential_load_on_vcu1525_reaches_near_peak_bandwidth():
    cfg = preset("vcu1525").replace(dram__dma="burst")  # a burst DMA; the RTL's: test_dram
    # the whole 4 MiB ACT buffer from contiguous 64-byte entries, in two LOADs of 2 MiB
    half = 32768
    s = run(Program([isa.Load(isa.Buffer.ACT, h * half, h * 64 * half, half, 32, 64)
                     for h in (0, 1)], dram_bytes=64), cfg).stats
    assert s.bytes["dram_read"] == 4 * MIB
    assert s.dram["bandwidth_gbps"] >= 0.9 * s.dram["peak_gbps"]
    assert s.dram["row_misses"] == 4 * MIB // cfg.dram.row_bytes
    assert s.stalls["dram_latency"] == 2 * cfg.dram_latency_cycles


def test_strided_small_row_load_on_vcu1525_is_bound_by_the_dram_model():
    cfg = preset("vcu1525").replace(dram__dma="burst")
    seq = run(_load_program(16384, 32, 64), cfg).stats
    strided = run(_load_program(16384, 32, 4096), cfg).stats
    # the DRAM model's own figure for the same requests: 64 bytes every 4 KiB, one channel
    ref = DramModel(cfg).access(np.arange(16384) * 4096, 64)
    assert strided.cycles == 1 + (1 + ref.cycles)  # accept cycle, DMA start cycle
    assert (strided.dram["row_hits"], strided.dram["row_misses"]) == (ref.row_hits,
                                                                      ref.row_misses)
    assert strided.dram["bandwidth_gbps"] == pytest.approx(
        ref.nbytes * cfg.clock_mhz / 1000 / (ref.cycles + 1))
    assert strided.dram["bandwidth_gbps"] < 0.26 * strided.dram["peak_gbps"]  # one channel
    assert strided.cycles > 3.5 * seq.cycles
    assert strided.stalls["dram_bandwidth"] > 0.7 * strided.busy["dma_in"]  # 3/4 of peak lost


def test_banked_run_times_dma_commands_in_program_order():
    cfg = preset("vcu1525")
    prog = compile_gemm(200, 100, 300, cfg, dataflow="os")
    s = run(prog, cfg).stats
    dur, dma = _durations(prog, cfg)
    assert [e - b + 1 for b, e in zip(s.start_cycles, s.retire_cycles, strict=True)] == dur
    assert s.dram["row_hits"] == dma.row_hits.sum() > 0
    assert s.dram["row_misses"] == dma.row_misses.sum() > 0
    # the DMA units' busy cycles split into start/done cycles, latency, peak transfer and the
    # cycles lost to the DRAM (row misses, one channel, request issue rate)
    loads = sum(isinstance(c, isa.Load) for c in prog.commands)
    stores = len(dma.cycles) - loads
    assert s.busy["dma_in"] + s.busy["dma_out"] == loads + 2 * stores + \
        s.stalls["dram_latency"] + int(dma.ideal.sum()) + s.stalls["dram_bandwidth"]


def test_simulate_gemm_on_vcu1525_reflects_row_misses():
    cfg = preset("vcu1525")
    s = simulate_gemm(512, 512, 64, cfg, dataflow="os")
    free = simulate_gemm(512, 512, 64, cfg.replace(dram__row_miss_ns=0.0), dataflow="os")
    slow = simulate_gemm(512, 512, 64, cfg.replace(dram__row_miss_ns=300.0), dataflow="os")
    assert s.dram["row_misses"] > 0 and s.dram["row_hits"] > 0
    assert free.dram["row_misses"] == s.dram["row_misses"]
    assert free.cycles < s.cycles < slow.cycles
    assert s.stalls["dram_bandwidth"] > 0
    # the fixed model of the same channels knows no rows
    fixed = simulate_gemm(512, 512, 64, cfg.replace(dram__model="fixed"), dataflow="os")
    assert fixed.dram["row_hits"] == fixed.dram["row_misses"] == 0
