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
    """A write port as seen by its user: the entry at ``addr`` takes ``data`` when ``en``.

    With ``lanes`` = k > 1 it also has ``mask`` (k bits) and ``data`` is k entries wide:
    entry ``addr + j`` takes entry ``j`` of ``data`` for every bit ``j`` set in ``mask``
    (``addr`` a multiple of k unless ``mask`` is 1)."""

    def __init__(self, addr_width: int, data_width: int, lanes: int = 1):
        members = {"addr": Out(addr_width), "en": Out(1), "data": Out(data_width)}
        if lanes > 1:
            members["mask"] = Out(lanes)
        super().__init__(members)


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
    its group, the ``group`` entries ``e - e % group ..`` (default: the whole row), on ``row``
    (the N:M sparse array reads one group of activations per access this way).

    With ``write_lanes`` = k > 1 (a divisor of ``banks``) the write port takes k entries a
    cycle (:class:`WritePortSignature` with ``lanes=k``): the DMA's wide LOADs
    (``hwsim.units.dma.load_beats``); writers of one entry set ``mask`` to 1.

    Members
    -------
    rd : In(ReadPortSignature(ADDR_BITS, width))
        Synchronous read, latency 1 (:attr:`latency`); not transparent to a same-cycle write.
    rd1, ... : In(ReadPortSignature(ADDR_BITS, width))
        Further read ports when ``read_ports > 1``.
    wr : In(WritePortSignature(ADDR_BITS, write_lanes * width, write_lanes))
    row : Out(group * width)
        With ``group > 1``: the group of the last read on ``rd`` (latency 1, held like
        ``data``).

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
                 ram_style: str | None = None, *, group: int | None = None,
                 write_lanes: int = 1):
        group = banks if group is None else group
        for name, v in (("width", width), ("depth", depth), ("read_ports", read_ports),
                        ("banks", banks), ("group", group), ("write_lanes", write_lanes)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        for name, v in (("banks", banks), ("group", group), ("write_lanes", write_lanes)):
            if v & (v - 1):
                raise ValueError(f"{name} must be a power of two, not {v}")
        if banks % group or banks % write_lanes:
            raise ValueError(f"group ({group}) and write_lanes ({write_lanes}) must divide "
                             f"banks ({banks})")
        if banks > 1 and read_ports > 1:
            raise ValueError("a banked buffer has one read port")
        if ram_style is not None and (not isinstance(ram_style, str) or not ram_style):
            raise TypeError(f"ram_style must be None or a non-empty string, not {ram_style!r}")
        self.width, self.depth, self.read_ports, self.banks = width, depth, read_ports, banks
        self.group, self.write_lanes = group, write_lanes
        self.ram_style = ram_style
        ports = {"rd": In(ReadPortSignature(ADDR_BITS, width))}
        ports.update({f"rd{i}": In(ReadPortSignature(ADDR_BITS, width))
                      for i in range(1, read_ports)})
        if group > 1:
            ports["row"] = Out(group * width)
        super().__init__({**ports, "wr": In(WritePortSignature(
            ADDR_BITS, write_lanes * width, write_lanes))})

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
        G, W, K = self.banks, self.width, self.write_lanes
        lb, lk, lg = G.bit_length() - 1, K.bit_length() - 1, self.group.bit_length() - 1
        rows = -(-self.depth // G)
        m.submodules.mem = mem = Memory(shape=unsigned(G * W), depth=rows, init=[],
                                         attrs=self._attrs())
        wr = mem.write_port(granularity=W)
        rd = mem.read_port()
        abits = max(1, (rows - 1).bit_length())
        lane = Signal(lb)
        if K > 1:  # k entries at an aligned address, or one entry anywhere (mask 1)
            mask = self.wr.mask
            data = Mux(self.wr.addr[:lk] == 0, self.wr.data.replicate(G // K),
                       self.wr.data[:W].replicate(G))
        else:
            mask, data = Const(1, 1), self.wr.data.replicate(G)
        m.d.comb += [
            wr.addr.eq(self.wr.addr[lb:lb + abits]), wr.data.eq(data),
            wr.en.eq(Mux(self.wr.en, (mask << self.wr.addr[:lb])[:G], 0)),
            rd.addr.eq(self.rd.addr[lb:lb + abits]), rd.en.eq(self.rd.en),
            self.rd.data.eq(rd.data.word_select(lane, W)),
        ]
        if self.group > 1:
            m.d.comb += self.row.eq(rd.data.word_select(lane[lg:], self.group * W)
                                    if self.group < G else rd.data)
        with m.If(self.rd.en):
            m.d.sync += lane.eq(self.rd.addr[:lb])
        return m

