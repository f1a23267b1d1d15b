"""The unit registry, the command table and the energy model (the architecture's contracts)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from hwsim import Program, isa, preset, run
from hwsim import engine as engine_module
from hwsim.energy import COMPONENTS, energy_pj, price
from hwsim.program import (
    ANNOTATIONS,
    COL,
    COLUMNS,
    commands_to_table,
    table_to_commands,
)
from hwsim.units import MODELS, REGISTRY, unit_cycles


def test_every_opcode_has_exactly_one_unit_model():
    for op in isa.Opcode:
        assert op in REGISTRY, op
    owners = [op for m in MODELS for op in m.opcodes]
    assert len(owners) == len(set(owners))  # no opcode has two homes
    assert {m.name for m in MODELS} == {"dma", "array", "sore", "vector", "lookup", "control"}
    # each command's queue is its ISA unit: the lookup unit's three opcodes share one queue
    lookup = REGISTRY[isa.Opcode.HASH]
    assert {isa.command_class(op).UNIT for op in lookup.opcodes} == {isa.Unit.LOOKUP}


def test_engine_never_branches_on_command_types():
    src = inspect.getsource(engine_module)
    for cls in ("Load", "Store", "Gemm", "Prune", "Update", "SetReg", "Sync"):
        assert f"isa.{cls}" not in src, cls


def test_table_columns_are_the_isa_fields_once_each():
    names = ["opcode", "wait", "signal"]
    for op in isa.Opcode:
        names += [n for n, _ in isa.command_class(op).FIELDS if n not in names]
    assert tuple(names) + ANNOTATIONS == COLUMNS
    assert len(set(COLUMNS)) == len(COLUMNS)


def test_command_table_round_trip_keeps_every_field():
    cmds = [
        isa.Load(isa.Buffer.WGT, 3, 0x1234, 7, 4, 64, wait=1, signal=2),
        isa.Gemm(1, 2, 3, 4, 5, 6, dataflow=1, sparse=1, accumulate=1, n=2, log2m=3),
        isa.Prune(isa.Buffer.WGT, 0, 8, 16, 32, 1, 2, 3, axis=1),
        isa.Update(1, 2, 3, 4, 100, optimizer=3, hp_base=4),
        isa.Hash(1, 2, 3, 4, 5, 6, 7, 1), isa.SetReg(5, 0xDEADBEEF), isa.Sync(wait=4),
    ]
    table = commands_to_table(cmds)
    assert table[1, COL["log2m"]] == 3 and table[2, COL["groups"]] == 1
    assert table_to_commands(table) == cmds
    assert isa.encode_program(table_to_commands(table)) == isa.encode_program(cmds)


def test_program_from_table_or_commands_runs_the_same():
    cmds = _small_program()
    a = run(Program(cmds, 256), preset("tiny")).stats
    b = run(Program(table=commands_to_table(cmds), dram_bytes=256), preset("tiny")).stats
    assert a.to_dict(per_command=True) == b.to_dict(per_command=True)


def _small_program():
    # LOAD A (4 entries of 4 int8), LOAD B (4 entries), GEMM OS k=4, STORE the 4x4 int32 tile
    return [isa.Load(isa.Buffer.ACT, 0, 0, 4, 4, 4),
            isa.Load(isa.Buffer.WGT, 0, 16, 4, 4, 4, signal=0b1),
            isa.Gemm(0, 0, 0, 0, 4, 0, wait=0b1, signal=0b10),
            isa.Store(isa.Buffer.ACC, 0, 64, 4, 4, 16, wait=0b10)]


def test_energy_of_a_hand_computed_program():
    """tiny: 16 B DRAM->ACT, 16 B DRAM->WGT, a 4x4x4 int8 tile, 64 B ACC->DRAM, priced by hand
    with the default energy table (pJ: MAC int8 0.2, SRAM read 0.6 / write 0.8 per byte, DRAM
    20 per byte, static 50 mW)."""
    cfg = preset("tiny")
    s = run(Program(_small_program(), 256), cfg).stats
    # LOAD 4 rows of 4 B: 1 start + 4 issue slots (16 B/cycle, one channel) + 4 latency = 9
    # cycles each, back to back: accepts 0,1; starts 1,10; GEMM waits for the token (cycle 19),
    # takes k + 2R + C + 1 = 17 cycles (19..35); STORE 4 rows: 2 + 4 = 6 cycles from 36 to 41.
    assert s.cycles == 42
    assert s.bytes == {"dram_read": 32, "dram_write": 64, "dram_other": 0,
                       # the tile reads 16 ACT + 16 WGT bytes, the store 64 ACC bytes
                       "sram_read": 96, "sram_write": 32 + 64}
    assert s.energy_pj["array"] == pytest.approx(64 * 0.2)
    assert s.energy_pj["sram"] == pytest.approx(96 * 0.6 + 96 * 0.8)
    assert s.energy_pj["dram"] == pytest.approx(96 * 20.0)
    assert s.energy_pj["static"] == pytest.approx(50e-3 * 42 / 100e6 * 1e12)
    assert s.energy_pj["sore"] == s.energy_pj["vector"] == 0.0
    assert tuple(s.energy_pj) == COMPONENTS


def test_energy_prices_come_from_the_config_table():
    cfg = preset("tiny").replace(energy__dram_byte=1.0, energy__mac_int8=0.0,
                                 energy__static_mw=0.0)
    s = run(Program(_small_program(), 256), cfg).stats
    assert s.energy_pj["dram"] == pytest.approx(96.0) and s.energy_pj["array"] == 0.0
    assert energy_pj({"array": {"mac_int8": 10}}, 0, cfg)["array"] == 0.0
    with pytest.raises(KeyError, match="static_mw"):
        price("static_mw", cfg)


def test_unit_cycles_dispatch_matches_each_units_closed_form():
    cfg = preset("tiny")
    R, C = cfg.array.rows, cfg.array.cols
    assert unit_cycles(isa.Gemm(0, 0, 0, 0, 7, 0), cfg) == 7 + 2 * R + C + 1
    assert unit_cycles(isa.Gemm(0, 0, 0, 0, 3, 9, dataflow=1), cfg) == 3 + 9 + R + C + 1
    assert unit_cycles(isa.Prune(isa.Buffer.WGT, 0, 0, 0, 8, 1, 2, 2, axis=1), cfg) == \
        8 * -(-C // cfg.sore.lanes) + 2 + 3
    assert unit_cycles(isa.Update(0, 4, 8, 12, 10, optimizer=1), cfg) == \
        3 * -(-10 // cfg.vector.lanes) + 10 - 3
    assert unit_cycles(isa.Sync(), cfg) == 1
    # 6 tokens x 5 chunks of 8 elements over 4 hash lanes: the first group's 32 words load in
    # 8 entries (from cycle 0, usable from cycle 9), then 8 groups of 8 elements, the fetch
    # register, the lane's 4 stages and the two entry writes
    assert unit_cycles(isa.Hash(0, 0, 0, 0, 6, 5, 8), cfg) == 31 // 4 + 8 * 8 + 1 + 4 + 4


def test_unchecked_fast_path_equals_checked_run():
    cfg = preset("small8")
    from dataflow.lower.gemm import compile_gemm

    prog = compile_gemm(40, 24, 36, cfg, dataflow="ws")
    a = run(prog, cfg).stats
    b = run(Program(table=prog.table.copy(), dram_bytes=prog.dram_bytes), cfg, check=False).stats
    assert a.to_dict(per_command=True) == b.to_dict(per_command=True)
    assert np.array_equal(a.schedule.end, b.schedule.end)
