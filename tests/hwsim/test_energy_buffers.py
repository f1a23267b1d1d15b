"""SRAM energy per buffer: each unit's bytes per buffer against its commands' definitions, and
the parts (``sram_act`` ... ``sram_vec``, ``sram_hot_rows``) summing exactly to the ``sram``
total on whole programs (a hand-written one, a small LM's training step, a MemoryFormer layer).
"""

from __future__ import annotations

import numpy as np
import pytest

from hwsim import Program, isa, preset, run
from hwsim.energy import (
    COMPONENTS,
    HOT_ROW_BYTE,
    SRAM_COMPONENTS,
    SRAM_PARTS,
    energy_pj,
    is_part,
    price,
    sram_component,
    total_pj,
)
from hwsim.program import COL
from hwsim.units import Accounting

B = isa.Buffer
TINY_LM = {"seq_len": 8, "n_layers": 1, "vocab_size": 64, "d_model": 32, "n_heads": 2}


def _bytes(stats) -> dict[str, tuple[int, int]]:
    """``(read, written)`` per SRAM part, leaving out the parts a run did not touch."""
    return {p: (rw["read"], rw["write"]) for p, rw in stats.sram_bytes.items()
            if rw["read"] or rw["write"]}


def _old_sram_pj(stats, config) -> float:
    """The ``sram`` component as it was priced before the split: every buffer byte at
    ``sram_read_byte`` / ``sram_write_byte``, the hot-row cache's at ``hot_row_byte``."""
    hot = stats.sram_bytes["hot_rows"]
    e = config.energy
    return ((stats.bytes["sram_read"] - hot["read"]) * e.sram_read_byte
            + (stats.bytes["sram_write"] - hot["write"]) * e.sram_write_byte
            + (hot["read"] + hot["write"]) * price(HOT_ROW_BYTE, config))


def _check_sums(stats, config) -> None:
    parts = [stats.energy_pj[c] for c in SRAM_COMPONENTS]
    assert sum(parts) == stats.energy_pj["sram"]  # exactly: sram is the parts' sum
    assert stats.energy_pj["sram"] == pytest.approx(_old_sram_pj(stats, config), rel=1e-12)
    assert stats.energy_sram_pj_by_buffer == dict(zip(SRAM_PARTS, parts, strict=True))
    for key in ("read", "write"):
        assert sum(rw[key] for rw in stats.sram_bytes.values()) == stats.bytes[f"sram_{key}"]
    # the run's energy counts sram once, not its parts again
    whole = sum(v for k, v in stats.energy_pj.items() if k not in SRAM_COMPONENTS)
    assert stats.energy_total_pj == pytest.approx(whole, rel=1e-15)


def test_components_name_every_buffer_then_the_hot_row_cache():
    assert SRAM_PARTS == ("act", "wgt", "acc", "idx", "vec", "hot_rows")
    assert SRAM_COMPONENTS == ("sram_act", "sram_wgt", "sram_acc", "sram_idx", "sram_vec",
                               "sram_hot_rows")
    assert COMPONENTS.index("sram") + 1 == COMPONENTS.index("sram_act")
    assert [sram_component(b) for b in B] == list(SRAM_COMPONENTS[:5])
    assert sram_component(2) == "sram_acc" and sram_component("hot_rows") == "sram_hot_rows"
    with pytest.raises(ValueError, match="buffer must be an isa.Buffer or 'hot_rows', not 'x'"):
        sram_component("x")
    assert is_part("sram_vec") and not is_part("sram") and not is_part("tier_sram")
    assert total_pj({"array": 1.0, "sram": 5.0, "sram_act": 2.0, "sram_vec": 3.0}) == 6.0


def test_energy_pj_adds_the_parts_into_sram_and_keeps_unfiled_sram_traffic():
    cfg = preset("tiny")
    e = cfg.energy
    out = energy_pj({"sram_act": {"sram_read_byte": 10}, "sram_acc": {"sram_write_byte": 4},
                     "sram_hot_rows": {HOT_ROW_BYTE: 2}}, 0, cfg)
    assert out["sram_act"] == 10 * e.sram_read_byte and out["sram_acc"] == 4 * e.sram_write_byte
    assert out["sram_hot_rows"] == 2 * price(HOT_ROW_BYTE, cfg)
    assert out["sram"] == out["sram_act"] + out["sram_wgt"] + out["sram_acc"] \
        + out["sram_idx"] + out["sram_vec"] + out["sram_hot_rows"]
    # traffic filed under "sram" itself (no buffer named) counts in the total only
    legacy = energy_pj({"sram": {"sram_read_byte": 10}}, 0, cfg)
    assert legacy["sram"] == 10 * e.sram_read_byte and legacy["sram_act"] == 0.0


def test_accounting_files_each_buffer_under_its_part():
    acc = Accounting()
    acc.sram(16, 0, B.ACT)
    acc.sram(0, 8, 1)
    acc.sram(3, 5, "hot_rows")
    assert acc.bytes["sram_read"] == 19 and acc.bytes["sram_write"] == 13
    assert acc.sram_bytes["act"] == [16, 0] and acc.sram_bytes["wgt"] == [0, 8]
    assert acc.sram_bytes["hot_rows"] == [3, 5] and acc.sram_bytes["vec"] == [0, 0]
    assert acc.actions["sram_act"] == {"sram_read_byte": 16, "sram_write_byte": 0}
    assert acc.actions["sram_hot_rows"] == {HOT_ROW_BYTE: 8}
    with pytest.raises(ValueError, match="not 'sram'"):
        acc.sram(1, 1, "sram")


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("dataflow", [isa.Dataflow.OS, isa.Dataflow.WS])
def test_gemm_tile_reads_act_wgt_idx_and_writes_acc_as_its_shape_says(dataflow, accumulate,
                                                                      sparse):
    """One tile on vcu1525 (32 x 32 fp16): OS k = 24 steps, WS k = 16 weight rows and m = 20
    activation rows; sparse 2:8 (n = 2, M = 8)."""
    cfg = preset("vcu1525")
    R, C, eb = cfg.array.rows, cfg.array.cols, cfg.array.elem_bytes
    assert (R, C, eb) == (32, 32, 2)
    os_ = dataflow == isa.Dataflow.OS
    k, m = (24, 0) if os_ else (16, 20)
    nm = {"n": 2, "log2m": 3} if sparse else {}
    cmd = isa.Gemm(0, 0, 0, 0, k, m, dataflow=int(dataflow), sparse=int(sparse),
                   accumulate=int(accumulate), **nm)
    s = run(Program([cmd], 64), cfg).stats
    steps = k if os_ else m  # ACT entries of R operands a dense tile streams
    # a sparse tile reads a whole banked row of the widest group (8) per step
    act = steps * (8 if sparse else 1) * R * eb
    out = (R if os_ else m) * C * 4  # int32/fp32 result entries
    want = {"act": (act, 0), "wgt": (k * C * eb, 0),
            "acc": (out if accumulate else 0, out)}
    if sparse:
        want["idx"] = (k * C, 0)  # one index byte per kept weight
    assert _bytes(s) == want
    assert s.energy_pj["sram_act"] == act * cfg.energy.sram_read_byte
    _check_sums(s, cfg)


def test_dma_moves_rows_of_the_buffer_its_command_names():
    cfg = preset("tiny")  # int8 operands, 1-byte indices, 4-byte ACC and VEC words
    prog = [isa.Load(B.ACT, 0, 0, 4, 4, 4), isa.Load(B.WGT, 0, 64, 3, 4, 4),
            isa.Load(B.IDX, 0, 128, 2, 4, 4), isa.Load(B.VEC, 0, 256, 5, 4, 16),
            isa.Store(B.ACC, 0, 512, 4, 4, 16), isa.Store(B.VEC, 8, 1024, 2, 4, 16),
            isa.Load(B.ACT, 4, 0, 2, 3, 4)]
    s = run(Program(prog, 2048), cfg).stats
    assert _bytes(s) == {"act": (0, 4 * 4 + 2 * 3), "wgt": (0, 3 * 4), "idx": (0, 2 * 4),
                         "vec": (2 * 4 * 4, 5 * 4 * 4), "acc": (4 * 4 * 4, 0)}
    _check_sums(s, cfg)


@pytest.mark.parametrize("src", [B.ACT, B.WGT])
def test_prune_reads_its_source_and_writes_values_to_wgt_and_indices_to_idx(src):
    cfg = preset("tiny")
    C, eb = cfg.array.cols, cfg.array.elem_bytes
    passes = -(-C // cfg.sore.lanes)
    # 16 entries along axis 1 at 2:8: 4 kept rows
    cmd = isa.Prune(int(src), 0, 16, 0, 16, 1, 2, 3, axis=1)
    s = run(Program([cmd], 64), cfg).stats
    read = 16 * passes * C * eb
    kept = 16 * 2 // 8
    want = {"wgt": (0, kept * C * eb), "idx": (0, kept * C)}
    name = src.name.lower()
    want[name] = (want.get(name, (0, 0))[0] + read, want.get(name, (0, 0))[1])
    assert _bytes(s) == want
    _check_sums(s, cfg)


@pytest.mark.parametrize(("optimizer", "operands"), [(0, 2), (1, 3)])
def test_update_reads_and_writes_only_vec(optimizer, operands):
    cfg = preset("tiny")
    L = cfg.vector.lanes
    count = 37  # words: 10 entries of 4 lanes, the fp16 copy in 5 entries
    cmd = isa.Update(0, 16, 32, 48, count, optimizer=optimizer)
    s = run(Program([cmd], 64), cfg).stats
    entries, half = -(-count // L), -(-count // (2 * L))
    assert _bytes(s) == {"vec": (entries * operands * L * 4,
                                 (entries * (operands - 1) + half) * L * 4)}
    _check_sums(s, cfg)


def test_lookup_operands_are_vec_and_cache_hits_the_hot_rows_part():
    from hwsim.units.lookup import _synthetic_rows
    from tests.hwsim.test_hot_rows import _config, _lru_reference

    T, K, h, tau = 64, 2, 40, 8
    hash_ = isa.Hash(0, 0, 0, 0, T, K, tau)
    gather = isa.Gather(0, 0, 0, 1, T, K, h)
    rows = _synthetic_rows([int(isa.Opcode.GATHER), T, K, h, 0, 0, 0], gather, 0)
    for hot in (0, 64):
        cfg = _config("ddr4", hot_rows=hot)
        s = run(Program([hash_], 64), cfg, check=False).stats
        # HASH reads tokens x d inputs, writes a row index and a weight per chunk (fp32 words)
        assert _bytes(s) == {"vec": (T * K * tau * 4, 2 * T * K * 4)}
        s = run(Program([gather], 64), cfg, check=False).stats
        vec = (2 * T * K * 4, T * h * 4)  # indices and weights in, the row sums out
        if hot == 0:
            assert _bytes(s) == {"vec": vec}
        else:
            hits = int(_lru_reference(rows, hot).sum())
            assert hits > 0
            assert _bytes(s) == {"vec": vec, "hot_rows": (hits * 2 * h, (T * K - hits) * 2 * h)}
            assert s.energy_pj["sram_hot_rows"] == pytest.approx(
                T * K * 2 * h * price(HOT_ROW_BYTE, cfg))
        _check_sums(s, cfg)


def test_hand_program_splits_its_sram_total():
    from tests.hwsim.test_units import _small_program

    cfg = preset("tiny")
    s = run(Program(_small_program(), 256), cfg).stats
    # LOADs write 16 B to ACT and WGT, the tile reads them and writes 64 B of ACC, the STORE
    # reads those 64 B
    assert _bytes(s) == {"act": (16, 16), "wgt": (16, 16), "acc": (64, 64)}
    e = cfg.energy
    assert s.energy_pj["sram_act"] == pytest.approx(16 * e.sram_read_byte + 16 * e.sram_write_byte)
    assert s.energy_pj["sram"] == pytest.approx(96 * 0.6 + 96 * 0.8)  # as before the split
    _check_sums(s, cfg)


def _table_bytes(table: np.ndarray, cfg) -> dict[str, tuple[int, int]]:
    """Per buffer, ``(read, written)`` bytes of a program without lookup commands, from the
    commands' definitions (:mod:`hwsim.isa`), independently of the unit models."""
    from hwsim.buffers import elem_bytes

    R, C, eb, L = cfg.array.rows, cfg.array.cols, cfg.array.elem_bytes, cfg.vector.lanes
    widest = max(p for _, p in cfg.array.nm_patterns)
    out = {b.name.lower(): [0, 0] for b in B}

    def add(buf, r=0, w=0):
        out[B(int(buf)).name.lower()][0] += int(r)
        out[B(int(buf)).name.lower()][1] += int(w)

    for row in table:
        f = {k: int(row[COL[k]]) for k in COL}
        op = isa.Opcode(f["opcode"])
        if op in (isa.Opcode.LOAD, isa.Opcode.STORE):
            moved = f["rows"] * f["elems"] * elem_bytes(f["buf"], cfg)
            add(f["buf"], *((moved, 0) if op == isa.Opcode.STORE else (0, moved)))
        elif op == isa.Opcode.GEMM:
            os_ = f["dataflow"] == isa.Dataflow.OS
            steps = (f["k"] if os_ else f["m"]) * (widest if f["sparse"] else 1)
            res = (R if os_ else f["m"]) * C * 4
            add(B.ACT, steps * R * eb)
            add(B.WGT, f["k"] * C * eb)
            add(B.IDX, f["k"] * C if f["sparse"] else 0)
            add(B.ACC, res if f["accumulate"] else 0, res)
        elif op == isa.Opcode.PRUNE:
            kept = f["rows"] * f["n"] >> f["log2m"]
            add(f["src_buf"], f["rows"] * -(-C // cfg.sore.lanes) * C * eb)
            add(B.WGT, 0, kept * C * eb)
            add(B.IDX, 0, kept * C)
        elif op == isa.Opcode.UPDATE and f["vperiod"] == 0:
            entries, ops = -(-f["count"] // L), 2 if f["optimizer"] == 0 else 3
            add(B.VEC, entries * ops * L * 4,
                (entries * (ops - 1) + -(-f["count"] // (2 * L))) * L * 4)
    return {k: tuple(v) for k, v in out.items() if any(v)}


def test_training_step_of_a_small_lm_splits_exactly_and_matches_its_commands():
    from dataflow.simulate import simulate_model
    from reports.figures import capture_runs

    cfg = preset("tiny")
    with capture_runs() as runs:
        res = simulate_model("pythia70m", "bdwp", "2:4", cfg, 1, **TINY_LM)
    (prog, st), (_, dense) = runs[0], runs[-1]
    for s in (st, dense):
        _check_sums(s, cfg)
    got = _bytes(st)
    assert set(got) >= {"act", "wgt", "acc", "idx", "vec"}  # a sparse step touches every one
    assert got == _table_bytes(prog.table, cfg)
    t = res.totals
    parts = [t[f"energy_{c}_pj"] for c in SRAM_COMPONENTS]
    assert sum(parts) == t["energy_sram_pj"] == st.energy_pj["sram"]
    assert t["energy_pj"] == st.energy_total_pj
    assert t["energy_pj"] == pytest.approx(sum(
        v for k, v in t.items() if k.startswith("energy_") and k.endswith("_pj")
        and k != "energy_pj" and not is_part(k[len("energy_"):-len("_pj")])), rel=1e-12)


def test_memoryformer_layer_program_splits_into_vec_and_hot_rows():
    import dataclasses

    from dataflow.lower.lookup import LayerShape, compile_memory_layer

    base = preset("tiny")
    for hot in (0, 256):
        cfg = dataclasses.replace(base, lookup=dataclasses.replace(base.lookup, hot_rows=hot))
        prog = compile_memory_layer(LayerShape(32, 16, 16, tau=4), cfg, phase="train")
        s = run(prog, cfg).stats
        _check_sums(s, cfg)
        got = _bytes(s)
        assert got["vec"][0] > 0 and got["vec"][1] > 0
        assert ("hot_rows" in got) == bool(hot)
        assert s.energy_pj["sram_vec"] > 0 and s.energy_pj["lookup"] > 0
