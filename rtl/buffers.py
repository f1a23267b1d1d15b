"""On-chip buffers: one Amaranth memory each, with the port signatures units use to reach them."""

from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["BufferMemory", "ReadPortSignature", "WritePortSignature"]


class ReadPortSignature(wiring.Signature):
    """A synchronous read port as seen by its user: ``addr``/``en`` out, ``data`` in one cycle
    later (``data`` holds its value while ``en`` is low)."""

    def __init__(self, addr_width: int, data_width: int):
        super().__init__({"addr": Out(addr_width), "en": Out(1), "data": In(data_width)})


class WritePortSignature(wiring.Signature):
    """A write port as seen by its user: the entry at ``addr`` takes ``data`` when ``en``."""

    def __init__(self, addr_width: int, data_width: int):
        super().__init__({"addr": Out(addr_width), "en": Out(1), "data": Out(data_width)})


class BufferMemory(wiring.Component):
    """A single-read, single-write-port SRAM of ``depth`` entries of ``width`` bits.

    Members
    -------
    rd : In(ReadPortSignature(16, width))
        Synchronous read, latency 1 (:attr:`latency`); not transparent to a same-cycle write.
    wr : In(WritePortSignature(16, width))

    Raises
    ------
    TypeError
        If ``width`` or ``depth`` is not a positive integer.
    """

    latency = 1

    def __init__(self, width: int, depth: int):
        for name, v in (("width", width), ("depth", depth)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        self.width, self.depth = width, depth
        super().__init__({
            "rd": In(ReadPortSignature(16, width)),
            "wr": In(WritePortSignature(16, width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()
        abits = max(1, (self.depth - 1).bit_length())
        m.d.comb += [
            rd.addr.eq(self.rd.addr[:abits]), rd.en.eq(self.rd.en), self.rd.data.eq(rd.data),
            wr.addr.eq(self.wr.addr[:abits]), wr.en.eq(self.wr.en), wr.data.eq(self.wr.data),
        ]
        return m
