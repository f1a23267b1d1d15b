# amaranth: UnusedElaboratable=no
"""The lookup engine's RTL limits as config values (issue 18 item 5): ``lookup.row_bytes``,
``slots``, ``max_tau``, ``min_dy_chunks`` and ``min_dy_entries`` size ``rtl.lookup``, and with
``lookup.rtl_limits`` hwsim refuses exactly the commands the RTL unit does not accept."""

from __future__ import annotations

import dataclasses

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from dataflow.lower.lookup import LayerShape, compile_memory_layer
from hwsim import isa
from hwsim.config import ConfigError, LookupConfig
from hwsim.engine import ProgramError, run
from hwsim.program import Program
from hwsim.units.lookup import LookupModel
from reports.fidelity import lookup_test_config
from rtl.lookup.unit import ROW_BYTES, SLOTS, LookupUnit


def _config(**lookup):
    """``tiny`` as the RTL cosimulation runs it (1 KiB of rows in flight), limits enforced."""
    cfg = lookup_test_config("tiny")
    return cfg.replace(lookup=dataclasses.replace(cfg.lookup, rtl_limits=True, **lookup))


def _cmd(opcode, width, chunks=2, mode=0, tokens=2):
    return isa.command_class(opcode)(in_addr=0, p_addr=0, out_addr=0, table=1, tokens=tokens,
                                     chunks=chunks, width=width, tier=0, mode=mode)


def test_the_defaults_are_what_the_rtl_is_built_with():
    lk = LookupConfig()
    assert (lk.row_bytes, lk.slots, lk.max_tau, lk.min_dy_chunks, lk.min_dy_entries) == (
        ROW_BYTES, SLOTS, 16, 2, 2) == (64, 32, 16, 2, 2)
    assert lk.rtl_limits is False
    unit = LookupUnit(_config())
    assert (unit.row_bytes, unit.slots, unit.max_tau) == (64, 32, 16)


@pytest.mark.parametrize("field, value, message", [
    ("row_bytes", 0, "expected a positive integer"),
    ("row_bytes", 66, "expected a multiple of 4 (whole fp32 words) of at most 65535 (a row "
                      "request's 16-bit length)"),
    ("slots", 24, "expected a power of two from 16 to 4096 (the row update's tags, whose "
                  "quarter are its slots)"),
    ("slots", 8, "a power of two from 16"),
    ("max_tau", 1, "expected 2 to 31 (a chunk's code is one bit an element of a 32-bit row "
                   "index)"),
    ("max_tau", 32, "expected 2 to 31"),
    ("min_dy_chunks", 1, "expected at least 2 (what keeps dY's loads ahead of the lanes in "
                         "the RTL)"),
    ("min_dy_entries", 1, "expected at least 2"),
    ("rtl_limits", "yes", "expected true or false"),
])
def test_bad_limits_are_refused_by_name(field, value, message):
    with pytest.raises(ConfigError) as e:
        LookupConfig(**{field: value}).validate()
    assert e.value.field == f"lookup.{field}"
    assert message in str(e.value)


# (what, command, config changes, field, message); each passes once the named limit is raised
BEYOND = [
    ("row_bytes", _cmd(isa.Opcode.GATHER, 64), {"row_bytes": 128}, "width",
     "rows of 64 x 2 = 128 bytes exceed the engine's row buffer (lookup.row_bytes = 64)"),
    ("scatter row_bytes", _cmd(isa.Opcode.SCATTER, 32), {"row_bytes": 128}, "width",
     "rows of 32 x 4 = 128 bytes exceed the engine's row buffer (lookup.row_bytes = 64)"),
    ("slots", _cmd(isa.Opcode.GATHER, 4), {"slots": 128}, "width",
     "rows of 8 bytes keep 128 rows in flight (lookup.inflight_kib = 1), beyond the "
     "row-buffer 32 slots (lookup.slots = 32)"),
    ("update slots", _cmd(isa.Opcode.SCATTER, 8, mode=1), {"slots": 64}, "width",
     "rows of 32 bytes keep 10 rows in flight (lookup.inflight_kib = 1), beyond the row "
     "update's 8 slots (lookup.slots = 32)"),
    ("max_tau", _cmd(isa.Opcode.HASH, 17), {"max_tau": 17}, "width",
     "chunks of 17 elements are beyond the hash engine's 2..16 (lookup.max_tau = 16)"),
    ("min_dy_chunks", _cmd(isa.Opcode.GATHER, 16, chunks=1, mode=1), {}, "chunks",
     "1 chunks a token are fewer than the 2 that keep dY's loads ahead of the lanes "
     "(lookup.min_dy_chunks = 2)"),
    ("min_dy_entries", _cmd(isa.Opcode.SCATTER, 4), {}, "width",
     "rows of 4 elements are fewer than the 8 (2 VEC entries) that keep dY's loads ahead of "
     "the lanes (lookup.min_dy_entries = 2)"),
]


@pytest.mark.parametrize("what, cmd, raised, field, message", BEYOND,
                         ids=[b[0] for b in BEYOND])
def test_a_command_beyond_a_limit_is_refused_naming_command_field_and_limit(
        what, cmd, raised, field, message):
    cfg = _config()
    with pytest.raises(ProgramError) as e:
        run(Program([cmd], 1 << 16), cfg)
    assert str(e.value) == f"command 0 ({cmd.name}) field {field!r}: {message}"
    assert e.value.field == field
    # the model with the limits off, or with the limit raised, takes it
    assert LookupModel().check(cmd, cfg.replace(lookup__rtl_limits=False)) is None
    if raised:
        assert LookupModel().check(cmd, _config(**raised)) is None


def _accepts(unit: LookupUnit, cmds: list[isa.Command]) -> list[bool]:
    """What the RTL unit's command check (``accepts``, the controller's error on a refused
    command) says of each command, in Amaranth's simulator."""
    m = Module()
    word, ok = Signal(isa.WORD_BITS), Signal()
    m.d.comb += ok.eq(unit.accepts(word))
    out = []

    async def bench(ctx):
        for c in cmds:
            ctx.set(word, isa.encode(c))
            out.append(bool(ctx.get(ok)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return out


def _grid():
    for op, modes in ((isa.Opcode.GATHER, (0, 1)), (isa.Opcode.SCATTER, (0, 1, 2)),
                      (isa.Opcode.HASH, (0, 2))):
        for mode in modes:
            for width in (0, 1, 2, 4, 8, 12, 16, 17, 24, 32, 48, 64):
                for chunks in (1, 2):
                    yield _cmd(op, width, chunks=chunks, mode=mode, tokens=1)


# (Amaranth's Python simulator cannot compile the window's comparisons for more than 32 slots:
# more slots are checked on the unit's ports below)
@pytest.mark.parametrize("raised", [{}, {"row_bytes": 128, "max_tau": 20},
                                    {"min_dy_chunks": 3, "min_dy_entries": 3}],
                         ids=["defaults", "raised", "stricter_dy"])
def test_hwsim_refuses_exactly_what_the_rtl_built_from_the_config_refuses(raised):
    cfg = _config(**raised)
    unit = LookupUnit(cfg)  # sized by the config alone
    lk = cfg.lookup
    assert (unit.row_bytes, unit.slots, unit.max_tau) == (lk.row_bytes, lk.slots, lk.max_tau)
    assert unit.signature.members["lk_rd_rsp"].signature.members["payload"].shape.size \
        == 8 * lk.row_bytes + max(1, (lk.slots - 1).bit_length())
    cmds = list(_grid())
    model = LookupModel()
    hwsim = [model.check(c, cfg) is None for c in cmds]
    assert _accepts(unit, cmds) == hwsim
    assert any(hwsim) and not all(hwsim)


def test_more_slots_widen_the_units_tags():
    unit = LookupUnit(_config(slots=256))
    assert unit.slots == 256 and unit.update.tags == 256
    assert unit.signature.members["lk_rd_req"].signature.members["payload"].shape["tag"] \
        .shape == 8


def test_the_compiler_refuses_a_layer_beyond_the_limits_in_one_line():
    cfg = _config()
    with pytest.raises(ValueError) as e:
        compile_memory_layer(LayerShape(tokens=4, d=16, h=64, tau=4), cfg)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("a memory layer (d 16, h 64, tau 4): its GATHER mode 0 cannot run on "
                          "the RTL lookup engine of config 'tiny_lookup': rows of 64 x 2 = 128 "
                          "bytes exceed the engine's row buffer (lookup.row_bytes = 64)")
    assert msg.endswith("raise that field, or set lookup.rtl_limits to false to model an "
                        "engine sized for it")
    # raised, the layer compiles and hwsim runs it
    ok = _config(row_bytes=128)
    prog = compile_memory_layer(LayerShape(tokens=4, d=16, h=64, tau=4), ok)
    assert run(prog, ok).stats.cycles > 0
