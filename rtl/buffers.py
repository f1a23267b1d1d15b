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
    """An SRAM of ``depth`` entries of ``width`` bits with one write port and ``read_ports``
    read ports (a simple dual-port block RAM each).

    Members
    -------
    rd : In(ReadPortSignature(16, width))
        Synchronous read, latency 1 (:attr:`latency`); not transparent to a same-cycle write.
    rd1, ... : In(ReadPortSignature(16, width))
        Further read ports when ``read_ports > 1``.
    wr : In(WritePortSignature(16, width))

    Raises
    ------
    TypeError
        If ``width`` or ``depth`` is not a positive integer.
    """

    latency = 1

    def __init__(self, width: int, depth: int, read_ports: int = 1):
        for name, v in (("width", width), ("depth", depth), ("read_ports", read_ports)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        self.width, self.depth, self.read_ports = width, depth, read_ports
        ports = {"rd": In(ReadPortSignature(16, width))}
        ports.update({f"rd{i}": In(ReadPortSignature(16, width)) for i in range(1, read_ports)})
        super().__init__({**ports, "wr": In(WritePortSignature(16, width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        wr = mem.write_port()
        abits = max(1, (self.depth - 1).bit_length())
        m.d.comb += [wr.addr.eq(self.wr.addr[:abits]), wr.en.eq(self.wr.en),
                     wr.data.eq(self.wr.data)]
        for i in range(self.read_ports):
            user = getattr(self, "rd" if i == 0 else f"rd{i}")
            rd = mem.read_port()
            m.d.comb += [rd.addr.eq(user.addr[:abits]), rd.en.eq(user.en), user.data.eq(rd.data)]
        return m
