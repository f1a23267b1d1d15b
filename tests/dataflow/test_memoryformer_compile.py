"""MemoryFormer compiled onto the machine: lookup ops become lookup-engine commands whose tier
traffic equals MemoryFormer's own count, next to the attention GEMMs on the array."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dataflow import CompileOptions, compile, extract, simulate_program
from dataflow.zoo import get_model
from hwsim import isa
from hwsim.config import LookupConfig, preset
from hwsim.program import COL
from hwsim.tiers import PlacementError, tier_preset
from hwsim.units.lookup import timing_rows

SEQ = 64


def _workload(training: bool):
    model, x = get_model("memoryformer_tiny", device="meta", seq_len=SEQ)
    return extract(model, x, method="dense", name="memoryformer_tiny", training=training)


def test_inference_gathers_336_kib_per_token_per_block_from_the_tiers():
    cfg = preset("vcu1525")
    prog = compile(_workload(False), cfg, CompileOptions())
    st = simulate_program(prog)
    # per block: Q, K, V gather 64 rows of 512 fp16 (64 KiB each), the FFN's first layer 64
    # rows of 640 (80 KiB), its second 64 rows of 512 (64 KiB): 336 KiB a token (REFERENCES)
    per_token_block = 3 * 64 * 512 * 2 + 64 * 640 * 2 + 64 * 512 * 2
    assert per_token_block == 344_064
    read = sum(v for k, v in st.bytes.items() if k.startswith("tier_") and k.endswith("_read"))
    assert read == SEQ * 6 * per_token_block
    assert not any(v for k, v in st.bytes.items() if k.startswith("tier_") and
                   k.endswith("_write"))
    cmds = prog.commands
    gathers = [c for c in cmds if isinstance(c, isa.Gather)]
    assert sum(c.tokens * c.chunks for c in gathers) == SEQ * 6 * 5 * 64
    assert any(isinstance(c, isa.Gemm) for c in cmds)  # attention and the classifier
    assert st.busy["lookup"] > 0 and st.energy_pj["lookup"] > 0


def test_training_step_scatters_and_updates_rows_in_the_tiers():
    cfg = preset("vcu1525")
    prog = compile(_workload(True), cfg, CompileOptions())
    st = simulate_program(prog)
    cmds = prog.commands
    scatters = [c for c in cmds if isinstance(c, isa.Scatter) and c.mode == 0]
    updates = [c for c in cmds if isinstance(c, isa.Scatter) and c.mode == 1]
    assert sum(c.tokens * c.chunks for c in scatters) == SEQ * 6 * 5 * 64
    assert len({c.width for c in updates}) == 2  # 512- and 640-wide tables
    writes = sum(v for k, v in st.bytes.items() if k.startswith("tier_") and
                 k.endswith("_write"))
    assert writes > 0 and st.cycles > 0


def test_tables_that_fit_no_tier_are_refused_naming_the_tiers():
    small = dataclasses.replace(preset("vcu1525"), lookup=LookupConfig(
        tiers=(tier_preset("hbm2e", capacity_gib=0.5),)))
    with pytest.raises(PlacementError, match="hbm"):
        compile(_workload(False), small, CompileOptions())


def test_adam_table_optimizer_adds_one_fp32_row_each_way_per_listed_row():
    """``CompileOptions(table_optimizer="adam")``: the table updates become SCATTER mode 2 with
    the moment tables' bases and Adam's registers set, one more fp32 table per memory layer is
    placed, and each program's row updates write the fp32 rows (SGD 3, Adam 4: M) and the fp16
    row of every updated row (the distinct rows of timing mode's rows, per command), rounded to
    the access granularity of the tier the update runs in; Adam also reads more (M)."""
    cfg = preset("vcu1525")
    wl = _workload(True)
    sgd = compile(wl, cfg, CompileOptions())
    adam = compile(wl, cfg, CompileOptions(table_optimizer="adam"))
    upd = [c for c in adam.commands if isinstance(c, isa.Scatter) and c.mode != 0]
    assert upd and {c.mode for c in upd} == {2}
    assert {c.table for c in upd} == {1} and {c.p_addr for c in upd} == {8}
    regs = {c.reg: c.value for c in adam.commands if isinstance(c, isa.SetReg)}
    lr_t = 1e-3 * (1 - 0.999) ** 0.5 / (1 - 0.9)  # step 1
    assert [regs[r] for r in range(8, 13)] == [
        int(np.float32(x).view(np.uint32)) for x in (lr_t, 1 - 0.9, 1 - 0.999, 1e-8, 0.0)]
    assert {c.reg for c in adam.commands if isinstance(c, isa.SetReg)} >= set(range(1, 6))
    st_sgd, st_adam = simulate_program(sgd), simulate_program(adam)
    extra = {}  # the row updates' writes: fp32 rows (SGD 3, Adam 4) and the fp16 row per
    # updated (distinct) row of each command; the two programs may block tokens differently
    for prog, sign, fp32_rows in ((adam, 1, 4), (sgd, -1, 3)):
        for i, c in enumerate(prog.commands):
            if not (isinstance(c, isa.Scatter) and c.mode != 0):
                continue
            tier = cfg.lookup.tiers[c.tier]
            row = -(-4 * c.width // tier.access_bytes) * tier.access_bytes
            row16 = -(-2 * c.width // tier.access_bytes) * tier.access_bytes
            distinct = len(np.unique(timing_rows(c, int(prog.table[i, COL["trows"]]))))
            extra[tier.name] = (extra.get(tier.name, 0)
                                + sign * distinct * (fp32_rows * row + row16))
    for tier in cfg.lookup.tiers:
        key = f"tier_{tier.name}_write"
        assert st_adam.bytes.get(key, 0) - st_sgd.bytes.get(key, 0) == extra.get(
            tier.name, 0), key
        key = f"tier_{tier.name}_read"  # and reads M for every access it does not skip
        if extra.get(tier.name, 0):
            assert st_adam.bytes.get(key, 0) > st_sgd.bytes.get(key, 0), key
    assert st_adam.energy_pj["lookup"] > st_sgd.energy_pj["lookup"]
    with pytest.raises(ValueError, match="table_optimizer must be one of"):
        CompileOptions(table_optimizer="adagrad")
