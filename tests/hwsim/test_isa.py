"""ISA: every command encodes to one 128-bit word and decodes back to itself."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim import isa


def _command_strategy(cls):
    kw = {name: st.integers(0, (1 << width) - 1) for name, width in cls.FIELDS}
    kw["wait"] = st.integers(0, 255)
    kw["signal"] = st.integers(0, 255)
    return st.builds(cls, **kw)


ALL = [isa.command_class(op) for op in isa.Opcode]


@given(st.one_of(*[_command_strategy(c) for c in ALL]))
def test_encode_decode_round_trip(cmd):
    word = isa.encode(cmd)
    assert 0 <= word < 1 << isa.WORD_BITS
    assert word & 0xF == cmd.OPCODE
    assert isa.decode(word) == cmd


@given(st.lists(st.one_of(*[_command_strategy(c) for c in ALL]), max_size=20))
def test_program_round_trip(cmds):
    blob = isa.encode_program(cmds)
    assert len(blob) == 16 * len(cmds)
    assert isa.decode_program(blob) == cmds


def test_every_opcode_fits_the_word():
    for cls in ALL:
        assert isa.HEADER_BITS + sum(w for _, w in cls.FIELDS) <= isa.WORD_BITS


def test_known_encoding_of_a_load():
    # opcode 1, wait 0b1, signal 0b10, buf 1, sram 3, dram 0x1234, rows 4, elems 4, stride 16
    cmd = isa.Load(buf=1, sram_addr=3, dram_addr=0x1234, rows=4, elems=4, stride=16, wait=1,
                   signal=2)
    expect = (1 | 1 << 4 | 2 << 12 | 1 << 20 | 3 << 23 | 0x1234 << 39 | 4 << 71 | 4 << 87
              | 16 << 99)
    assert isa.encode(cmd) == expect
    assert isa.field_offsets(isa.Load)["stride"] == (99, 24)


def test_out_of_range_field_message():
    with pytest.raises(isa.IsaError, match=r"Load.buf = 9 does not fit in 3 bits \(allowed 0..7\)"):
        isa.Load(buf=9, sram_addr=0, dram_addr=0, rows=0, elems=0, stride=0)
    with pytest.raises(isa.IsaError, match="Gemm.k must be an integer"):
        isa.Gemm(a_addr=0, b_addr=0, c_addr=0, idx_addr=0, k=1.5, m=0)


def test_bad_words_are_rejected():
    with pytest.raises(isa.IsaError, match="unknown opcode 15"):
        isa.decode(0xF)
    with pytest.raises(isa.IsaError, match="has bits set above bit"):
        isa.decode(int(isa.Opcode.SYNC) | 1 << 100)
    with pytest.raises(isa.IsaError, match="not a whole number of 16-byte commands"):
        isa.decode_program(b"\x00" * 17)
    with pytest.raises(isa.IsaError, match="command 1: unknown opcode 0"):
        isa.decode_program(isa.encode_program([isa.Sync()]) + b"\x00" * 16)


def test_units_of_commands():
    assert isa.Load.UNIT == isa.Unit.DMA_IN and isa.Store.UNIT == isa.Unit.DMA_OUT
    assert isa.Gemm.UNIT == isa.Unit.ARRAY and isa.Prune.UNIT == isa.Unit.SORE
    assert isa.Update.UNIT == isa.Unit.VECTOR
    assert {isa.Hash.UNIT, isa.Gather.UNIT, isa.Scatter.UNIT} == {isa.Unit.LOOKUP}
