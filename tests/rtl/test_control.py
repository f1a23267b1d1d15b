# amaranth: UnusedElaboratable=no
"""Fast tier: the control unit (rtl/controller.py), the command decoding it and the units share
(rtl/decode.py) and the unit list the top is wired from (rtl.accelerator.UNITS), in Amaranth's
simulator against hwsim.isa."""

from __future__ import annotations

import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hwsim import isa
from hwsim.config import preset
from rtl.accelerator import UNITS
from rtl.controller import Controller
from rtl.decode import command_view, field_members, unit_commands, unit_opcodes
from rtl.units import UnitComponent
from tests.rtl.comb_bench import run_clocked

QUEUES = (isa.Unit.DMA_IN, isa.Unit.DMA_OUT, isa.Unit.ARRAY, isa.Unit.SORE, isa.Unit.VECTOR)


def _random_command(cls, rng):
    fields = {name: rng.randrange(1 << width) for name, width in cls.FIELDS}
    return cls(**fields, wait=rng.randrange(256), signal=rng.randrange(256))


def test_unit_opcodes_are_the_isa_registry_by_unit():
    seen = {}
    for unit in isa.Unit:
        for cls in unit_commands(unit):
            assert unit == cls.UNIT
            seen[cls.OPCODE] = unit
    assert seen == {op: cls.UNIT for op, cls in isa._REGISTRY.items()}
    assert unit_opcodes(isa.Unit.CONTROL) == (isa.Opcode.SETREG, isa.Opcode.SYNC)
    assert unit_opcodes(isa.Unit.LOOKUP) == (isa.Opcode.HASH, isa.Opcode.GATHER,
                                             isa.Opcode.SCATTER)


def test_command_views_read_every_field_of_isa_encoded_words():
    rng = random.Random(5)
    word = Signal(isa.WORD_BITS)
    cases = [_random_command(cls, rng) for cls in isa._REGISTRY.values() for _ in range(20)]
    views = {cls: command_view(cls, word) for cls in isa._REGISTRY.values()}

    async def bench(ctx):
        for cmd in cases:
            ctx.set(word, isa.encode(cmd))
            view = views[type(cmd)]
            assert ctx.get(view.opcode) == cmd.OPCODE
            for name in ("wait", "signal", *(n for n, _ in cmd.FIELDS)):
                assert ctx.get(view[name]) == getattr(cmd, name), (cmd, name)

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()


def test_unit_members_take_the_isa_field_widths():
    assert {n: m.shape for n, m in field_members(isa.Unit.ARRAY).items()} == \
        dict(isa.Gemm.FIELDS)
    assert list(field_members(isa.Unit.LOOKUP))[0] == "opcode"  # three commands on one queue
    with pytest.raises(ValueError, match=r"^'lanes' is not a field of unit SORE's commands"):
        field_members(isa.Unit.SORE, ["lanes"])


def test_every_queue_but_control_has_one_unit_in_the_top():
    assert [slot.unit for slot in UNITS] == [isa.Unit.SORE, isa.Unit.VECTOR, isa.Unit.LOOKUP,
                                            isa.Unit.DMA_OUT, isa.Unit.ARRAY, isa.Unit.DMA_IN]
    config = preset("tiny")
    for slot in UNITS:
        unit = slot.component(config)
        assert isinstance(unit, UnitComponent) and slot.unit == unit.UNIT
        assert slot.name == slot.unit.name.lower()


def test_controller_rejects_bad_units_and_depths():
    with pytest.raises(ValueError, match=r"^units must be distinct queues of hwsim.isa commands "
                                         r"other than CONTROL, not \['ARRAY', 'ARRAY'\]"):
        Controller([isa.Unit.ARRAY, isa.Unit.ARRAY])
    with pytest.raises(ValueError, match=r"units must be distinct queues.*'CONTROL'"):
        Controller([isa.Unit.CONTROL])
    with pytest.raises(ValueError, match=r"^accepts names units without a queue here: "
                                         r"\['SORE'\]"):
        Controller([isa.Unit.ARRAY], accepts={isa.Unit.SORE: lambda word: 1})
    with pytest.raises(TypeError, match=r"^queue_depth must be a positive integer, not 0"):
        Controller(QUEUES, queue_depth=0)


def _issue(commands):
    """Send ``commands`` one by one to a controller of :data:`QUEUES` (units never busy; the
    array refusing N:M tiles); per command: the queues whose ``start`` pulses the cycle after
    it is accepted, that queue's head, and ``error``. Then SETREG's register value."""
    dut = Controller(QUEUES, queue_depth=2,
                     accepts={isa.Unit.ARRAY: lambda word: ~command_view(isa.Gemm, word).sparse})
    seen = []

    async def bench(ctx):
        for cmd in commands:
            ctx.set(dut.cmd.payload, isa.encode(cmd))
            ctx.set(dut.cmd.valid, 1)
            while not ctx.get(dut.cmd.ready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.cmd.valid, 0)
            started = [u for u in QUEUES if ctx.get(dut.port(u, "start"))]
            heads = [ctx.get(dut.port(u, "head")) for u in started]
            seen.append((started, heads, ctx.get(dut.error)))
            for _ in range(3):
                await ctx.tick()
        seen.append(ctx.get(dut.regs[5]))

    run_clocked(dut, bench)
    return seen


def test_each_command_reaches_its_unit_queue_and_setreg_writes_its_register():
    cmds = [isa.Load(1, 2, 3, 4, 5, 6), isa.Store(0, 1, 2, 3, 4, 5), isa.Gemm(1, 2, 3, 4, 5, 6),
            isa.Prune(1, 0, 8, 0, 8, 1, 2, 3, axis=1), isa.Update(0, 8, 16, 24, 10),
            isa.SetReg(5, 0x3F800000), isa.Sync()]
    *seen, reg = _issue(cmds)
    for cmd, (started, heads, error) in zip(cmds, seen, strict=True):
        if cmd.UNIT == isa.Unit.CONTROL:
            assert started == [] and error == 0, cmd
        else:
            assert (started, heads, error) == ([cmd.UNIT], [isa.encode(cmd)], 0), cmd
    assert reg == 0x3F800000


@pytest.mark.parametrize("cmd", [isa.Hash(0, 0, 0, 0, 1, 1, 1),
                                 isa.Gemm(0, 0, 0, 0, 4, 0, sparse=1, n=2, log2m=2)],
                         ids=["lookup command, no queue", "refused by its unit"])
def test_command_no_unit_runs_sets_error_and_is_dropped(cmd):
    (started, _, error), _ = _issue([cmd])
    assert started == [] and error == 1


@pytest.mark.parametrize("patterns", [(), ("2:4",)])
def test_the_sore_is_built_only_with_nm_patterns(patterns):
    config = preset("tiny").replace(name="tiny_p", array__patterns=patterns)
    built = [slot.unit for slot in UNITS if slot.present(config)]
    assert built == [u for u in (isa.Unit.SORE, isa.Unit.VECTOR, isa.Unit.LOOKUP,
                                 isa.Unit.DMA_OUT, isa.Unit.ARRAY, isa.Unit.DMA_IN)
                     if u != isa.Unit.SORE or patterns]
