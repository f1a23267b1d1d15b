"""DMA engines: strided transfers between the external memory channels and the buffers.

The external memory has separate read and write channels (as AXI4 does), so loads and stores
run concurrently without arbitration. Protocol, little-endian:

- read channel: a request ``{addr, nbytes}`` on ``mem_rd_req`` is answered, ``latency`` cycles
  after it is accepted and in request order, by one ``mem_rd_rsp`` beat whose low ``nbytes``
  bytes are memory ``[addr, addr + nbytes)`` and whose other bytes are zero;
- write channel: a request ``{addr, nbytes, wdata}`` on ``mem_wr_req`` stores the low
  ``nbytes`` bytes of ``wdata`` at ``addr``; there is no response.

A memory that needs ``s`` cycles for a request (its size over its bandwidth) holds ``ready`` low
for the first ``s - 1`` cycles the request is offered (``hwsim.timing.dram_request_cycles``).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwsim.config import AcceleratorConfig
from hwsim.isa import Buffer

from .buffers import ReadPortSignature, WritePortSignature

__all__ = ["DmaIn", "DmaOut", "mem_rd_req_layout", "mem_wr_req_layout"]


def mem_rd_req_layout() -> data.StructLayout:
    """Read request payload, LSB first: ``addr`` (32), ``nbytes`` (8)."""
    return data.StructLayout({"addr": 32, "nbytes": 8})


def mem_wr_req_layout(bus_bytes: int) -> data.StructLayout:
    """Write request payload, LSB first: ``addr`` (32), ``nbytes`` (8), ``wdata`` (bus)."""
    return data.StructLayout({"addr": 32, "nbytes": 8, "wdata": bus_bytes * 8})


def _command_members() -> dict:
    return {"start": In(1), "buf": In(3), "sram_addr": In(16), "dram_addr": In(32),
            "rows": In(16), "elems": In(12), "stride": In(24),
            "done": Out(1), "busy": Out(1), "sel": Out(3)}


def _latch(m: Module, dma, config: AcceleratorConfig):
    """Registers holding the fields of the command in flight, loaded on ``start``."""
    sel, sram, addr = Signal(3), Signal(16), Signal(32)
    rows, stride, nbytes = Signal(16), Signal(24), Signal(8)
    esize = Signal(3)  # bytes per element of the addressed buffer
    with m.Switch(dma.buf):
        with m.Case(Buffer.ACT, Buffer.WGT):
            m.d.comb += esize.eq(config.array.elem_bytes)
        with m.Case(Buffer.IDX):
            m.d.comb += esize.eq(1)
        with m.Default():
            m.d.comb += esize.eq(4)
    with m.If(dma.start):
        m.d.sync += [sel.eq(dma.buf), sram.eq(dma.sram_addr), addr.eq(dma.dram_addr),
                     rows.eq(dma.rows), stride.eq(dma.stride), nbytes.eq(dma.elems * esize)]
    m.d.comb += dma.sel.eq(sel)
    return sel, sram, addr, rows, stride, nbytes


class DmaIn(wiring.Component):
    """Executes LOAD commands: DRAM -> buffer ``buf``.

    Issues one read request per entry (address ``dram_addr + r * stride``) as fast as the read
    channel accepts them and writes each response to entry ``sram_addr + r``; done on the cycle
    the last response is written.

    Members
    -------
    start : In(1); buf : In(3); sram_addr : In(16); dram_addr : In(32); rows : In(16);
    elems : In(12); stride : In(24)
        The command's fields, sampled on ``start``.
    done, busy : Out(1)
    sel : Out(3)
        The buffer ``wr`` addresses (the top routes it).
    wr : Out(WritePortSignature(16, bus_bytes * 8))
    mem_rd_req : Out(stream.Signature(mem_rd_req_layout()))
    mem_rd_rsp : In(stream.Signature(bus_bytes * 8))

    Latency
    -------
    With a memory taking ``s`` cycles per request and answering ``L`` cycles after accepting
    it, start-to-done is ``rows * s + L + 1`` cycles (2 when ``rows == 0``): :meth:`cycles`.
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        bus = config.dram.bus_bytes
        super().__init__({
            **_command_members(),
            "wr": Out(WritePortSignature(16, bus * 8)),
            "mem_rd_req": Out(stream.Signature(mem_rd_req_layout())),
            "mem_rd_rsp": In(stream.Signature(bus * 8)),
        })

    @staticmethod
    def cycles(rows: int, latency: int, slots: int = 1) -> int:
        return 2 if rows == 0 else rows * slots + latency + 1

    def elaborate(self, platform):
        m = Module()
        _, sram, addr, rows, stride, nbytes = _latch(m, self, self.config)
        issued, received = Signal(16), Signal(16)
        m.d.comb += [
            self.mem_rd_rsp.ready.eq(1),
            self.mem_rd_req.p.addr.eq(addr),
            self.mem_rd_req.p.nbytes.eq(nbytes),
            self.wr.addr.eq(sram + received),
            self.wr.data.eq(self.mem_rd_rsp.payload),
        ]
        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [issued.eq(0), received.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.mem_rd_req.valid.eq(issued != rows)]
                with m.If(self.mem_rd_req.valid & self.mem_rd_req.ready):
                    m.d.sync += [issued.eq(issued + 1), addr.eq(addr + stride)]
                with m.If(self.mem_rd_rsp.valid):
                    m.d.comb += self.wr.en.eq(1)
                    m.d.sync += received.eq(received + 1)
                with m.If((rows == 0) | (self.mem_rd_rsp.valid & (received + 1 == rows))):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m


class DmaOut(wiring.Component):
    """Executes STORE commands: buffer ``buf`` -> DRAM.

    Reads entry ``sram_addr + r`` (one cycle of read latency) and offers it as a write request;
    done on the cycle the last write is accepted.

    Members
    -------
    (command fields as :class:`DmaIn`)
    rd : Out(ReadPortSignature(16, bus_bytes * 8))
    mem_wr_req : Out(stream.Signature(mem_wr_req_layout(bus_bytes)))

    Latency
    -------
    ``rows * s + 2`` cycles start-to-done (2 when ``rows == 0``): :meth:`cycles`.
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        bus = config.dram.bus_bytes
        super().__init__({
            **_command_members(),
            "rd": Out(ReadPortSignature(16, bus * 8)),
            "mem_wr_req": Out(stream.Signature(mem_wr_req_layout(bus))),
        })

    @staticmethod
    def cycles(rows: int, slots: int = 1) -> int:
        return 2 if rows == 0 else rows * slots + 2

    def elaborate(self, platform):
        m = Module()
        _, sram, addr, rows, stride, nbytes = _latch(m, self, self.config)
        issued = Signal(16)
        m.d.comb += [
            self.mem_wr_req.p.addr.eq(addr),
            self.mem_wr_req.p.nbytes.eq(nbytes),
            self.mem_wr_req.p.wdata.eq(self.rd.data),
        ]
        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += issued.eq(0)
                m.next = "PRIME"
            with m.State("PRIME"):
                m.d.comb += [self.busy.eq(1), self.rd.addr.eq(sram), self.rd.en.eq(1)]
                with m.If(rows == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [self.busy.eq(1), self.mem_wr_req.valid.eq(1),
                             self.rd.addr.eq(sram + issued + 1),
                             self.rd.en.eq(self.mem_wr_req.ready)]
                with m.If(self.mem_wr_req.ready):
                    m.d.sync += [issued.eq(issued + 1), addr.eq(addr + stride)]
                    with m.If(issued + 1 == rows):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
        return m
