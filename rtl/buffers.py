"""On-chip buffers: one Amaranth memory each, with the port signatures units use to reach them."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwsim import isa

__all__ = ["ADDR_BITS", "BufferMemory", "ReadPortSignature", "WritePortSignature"]

ADDR_BITS = dict(isa.Load.FIELDS)["sram_addr"]
"""Entry address bits of every buffer port: the ISA's buffer addresses (``sram_addr``)."""


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

    ``ram_style`` sets the memory's ``ram_style`` attribute, which the synthesis tool reads to
    choose the RAM primitive: ``"block"`` (block RAM: RAMB36E2/RAMB18E2 on UltraScale+),
    ``"ultra"`` (UltraRAM: URAM288; Yosys also accepts ``"huge"``), ``"distributed"`` (LUT
    RAM) or ``"registers"`` (flip-flops; Yosys also accepts ``"logic"``); Vivado also takes
    ``"mixed"`` and ``"auto"``. Default ``None`` sets no attribute and leaves the choice to the
    tool (Yosys ``synth_xilinx`` then never picks URAM288 unless run with ``-uram``).

    With ``banks`` = G > 1 the entries are interleaved over G banks, built as one memory of
    ``ceil(depth / G)`` rows of G entries with a lane write enable: entry ``e`` is lane
    ``e % G`` of row ``e // G``. A read of entry ``e`` returns that entry on ``rd.data`` and
    the whole row, the G entries ``e - e % G .. e - e % G + G - 1``, on ``row`` (the N:M sparse
    array reads one group of activations per access this way).

    Members
    -------
    rd : In(ReadPortSignature(ADDR_BITS, width))
        Synchronous read, latency 1 (:attr:`latency`); not transparent to a same-cycle write.
    rd1, ... : In(ReadPortSignature(ADDR_BITS, width))
        Further read ports when ``read_ports > 1``.
    wr : In(WritePortSignature(ADDR_BITS, width))
    row : Out(banks * width)
        With ``banks > 1``: the row of the last read on ``rd`` (latency 1, held like ``data``).

    Raises
    ------
    TypeError
        If ``width``, ``depth``, ``read_ports`` or ``banks`` is not a positive integer, or
        ``ram_style`` is neither ``None`` nor a non-empty string.
    ValueError
        If ``banks`` is not a power of two, or ``banks > 1`` with ``read_ports > 1``.
    """

    latency = 1

    def __init__(self, width: int, depth: int, read_ports: int = 1, banks: int = 1,
                 ram_style: str | None = None):
        for name, v in (("width", width), ("depth", depth), ("read_ports", read_ports),
                        ("banks", banks)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        if banks & (banks - 1):
            raise ValueError(f"banks must be a power of two, not {banks}")
        if banks > 1 and read_ports > 1:
            raise ValueError("a banked buffer has one read port")
        if ram_style is not None and (not isinstance(ram_style, str) or not ram_style):
            raise TypeError(f"ram_style must be None or a non-empty string, not {ram_style!r}")
        self.width, self.depth, self.read_ports, self.banks = width, depth, read_ports, banks
        self.ram_style = ram_style
        ports = {"rd": In(ReadPortSignature(ADDR_BITS, width))}
        ports.update({f"rd{i}": In(ReadPortSignature(ADDR_BITS, width))
                      for i in range(1, read_ports)})
        if banks > 1:
            ports["row"] = Out(banks * width)
        super().__init__({**ports, "wr": In(WritePortSignature(ADDR_BITS, width))})

    def rd_port(self, index: int):
        """Read port ``index``: ``rd``, ``rd1``, ...; negative indices count from the last."""
        index = range(self.read_ports)[index]
        return getattr(self, f"rd{index}" if index else "rd")

    def elaborate(self, platform):
        if self.banks > 1:
            return self._elaborate_banked()
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[],
                                         attrs=self._attrs())
        wr = mem.write_port()
        abits = max(1, (self.depth - 1).bit_length())
        m.d.comb += [wr.addr.eq(self.wr.addr[:abits]), wr.en.eq(self.wr.en),
                     wr.data.eq(self.wr.data)]
        for i in range(self.read_ports):
            user = self.rd_port(i)
            rd = mem.read_port()
            m.d.comb += [rd.addr.eq(user.addr[:abits]), rd.en.eq(user.en), user.data.eq(rd.data)]
        return m

    def _attrs(self) -> dict[str, str]:
        return {} if self.ram_style is None else {"ram_style": self.ram_style}

    def _elaborate_banked(self):
        m = Module()
        G, W = self.banks, self.width
        lb = G.bit_length() - 1
        rows = -(-self.depth // G)
        m.submodules.mem = mem = Memory(shape=unsigned(G * W), depth=rows, init=[],
                                         attrs=self._attrs())
        wr = mem.write_port(granularity=W)
        rd = mem.read_port()
        abits = max(1, (rows - 1).bit_length())
        lane = Signal(lb)
        m.d.comb += [
            wr.addr.eq(self.wr.addr[lb:lb + abits]), wr.data.eq(self.wr.data.replicate(G)),
            wr.en.eq(Mux(self.wr.en, Const(1, G) << self.wr.addr[:lb], 0)),
            rd.addr.eq(self.rd.addr[lb:lb + abits]), rd.en.eq(self.rd.en),
            self.row.eq(rd.data), self.rd.data.eq(rd.data.word_select(lane, W)),
        ]
        with m.If(self.rd.en):
            m.d.sync += lane.eq(self.rd.addr[:lb])
        return m

