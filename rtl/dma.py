"""DMA engine: strided transfers between the external memory port and the buffers."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwsim.config import AcceleratorConfig
from hwsim.isa import Buffer

from .buffers import ReadPortSignature, WritePortSignature

__all__ = ["Dma", "mem_req_layout"]


def mem_req_layout(bus_bytes: int) -> data.StructLayout:
    """Payload of a request on the external memory port (LSB first: addr, write, nbytes, wdata).

    A read returns, ``latency`` cycles after its request is accepted and in request order, one
    ``mem_rsp`` beat whose low ``nbytes`` bytes are memory ``[addr, addr + nbytes)`` and whose
    other bytes are zero. A write stores the low ``nbytes`` bytes of ``wdata`` at ``addr`` and
    has no response. Byte order is little-endian.
    """
    return data.StructLayout({"addr": 32, "write": 1, "nbytes": 8, "wdata": bus_bytes * 8})


class Dma(wiring.Component):
    """Executes LOAD and STORE commands, one at a time.

    LOAD issues one read request per cycle (address ``dram_addr + r * stride``) and writes each
    response to buffer entry ``sram_addr + r``; it is done on the cycle the last response is
    written. STORE reads entry ``sram_addr + r`` (one cycle) and issues it as a write request; it
    is done on the cycle the last write is accepted.

    Members
    -------
    start, is_store : In(1)
    buf : In(3), sram_addr : In(16), dram_addr : In(32), rows : In(16), elems : In(12),
    stride : In(24)
        The command's fields.
    done : Out(1)
    sel : Out(3)
        The buffer the ports below address (the top routes them).
    rd : Out(ReadPortSignature(16, bus)), wr : Out(WritePortSignature(16, bus))
    mem_req : Out(stream.Signature(mem_req_layout(bus_bytes)))
    mem_rsp : In(stream.Signature(bus_bytes * 8))

    Latency
    -------
    With a memory that accepts a request every cycle and answers after ``L`` cycles,
    start-to-done is ``rows + L + 1`` cycles for LOAD and ``rows + 2`` for STORE (2 when
    ``rows == 0``): :meth:`load_cycles`, :meth:`store_cycles`.
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        bus = config.dram.bus_bytes
        self.bus_bytes = bus
        super().__init__({
            "start": In(1), "is_store": In(1),
            "buf": In(3), "sram_addr": In(16), "dram_addr": In(32), "rows": In(16),
            "elems": In(12), "stride": In(24),
            "done": Out(1), "busy": Out(1), "sel": Out(3),
            "rd": Out(ReadPortSignature(16, bus * 8)),
            "wr": Out(WritePortSignature(16, bus * 8)),
            "mem_req": Out(stream.Signature(mem_req_layout(bus))),
            "mem_rsp": In(stream.Signature(bus * 8)),
        })

    @staticmethod
    def load_cycles(rows: int, latency: int) -> int:
        return 2 if rows == 0 else rows + latency + 1

    @staticmethod
    def store_cycles(rows: int) -> int:
        return 2 if rows == 0 else rows + 2

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        sel, sram, addr = Signal(3), Signal(16), Signal(32)
        rows, stride, nbytes = Signal(16), Signal(24), Signal(8)
        issued, received = Signal(16), Signal(16)

        esize = Signal(3)  # bytes per element of the selected buffer
        with m.Switch(self.buf):
            with m.Case(Buffer.ACT, Buffer.WGT):
                m.d.comb += esize.eq(cfg.array.elem_bytes)
            with m.Default():
                m.d.comb += esize.eq(4)

        m.d.comb += [
            self.sel.eq(sel),
            self.mem_rsp.ready.eq(1),
            self.mem_req.p.addr.eq(addr),
            self.mem_req.p.nbytes.eq(nbytes),
            self.mem_req.p.wdata.eq(self.rd.data),
            self.wr.addr.eq(sram + received),
            self.wr.data.eq(self.mem_rsp.payload),
        ]

        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [sel.eq(self.buf), sram.eq(self.sram_addr),
                             addr.eq(self.dram_addr), rows.eq(self.rows),
                             stride.eq(self.stride), nbytes.eq(self.elems * esize),
                             issued.eq(0), received.eq(0)]
                with m.If(self.is_store):
                    m.next = "PRIME"
                with m.Else():
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.busy.eq(1)
                m.d.comb += [self.mem_req.valid.eq(issued != rows), self.mem_req.p.write.eq(0)]
                with m.If(self.mem_req.valid & self.mem_req.ready):
                    m.d.sync += [issued.eq(issued + 1), addr.eq(addr + stride)]
                with m.If(self.mem_rsp.valid):
                    m.d.comb += self.wr.en.eq(1)
                    m.d.sync += received.eq(received + 1)
                last = (rows == 0) | (self.mem_rsp.valid & (received + 1 == rows))
                with m.If(last):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
            with m.State("PRIME"):
                m.d.comb += [self.busy.eq(1), self.rd.addr.eq(sram), self.rd.en.eq(1)]
                with m.If(rows == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "STORE"
            with m.State("STORE"):
                m.d.comb += [self.busy.eq(1), self.mem_req.valid.eq(1),
                             self.mem_req.p.write.eq(1),
                             self.rd.addr.eq(sram + issued + 1),
                             self.rd.en.eq(self.mem_req.ready)]
                with m.If(self.mem_req.ready):
                    m.d.sync += [issued.eq(issued + 1), addr.eq(addr + stride)]
                    with m.If(issued + 1 == rows):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
        return m
