"""The DMA unit: strided transfers between the external memory channels and the buffers.

Two engines, one queue each: :class:`DmaIn` runs LOAD, :class:`DmaOut` STORE (the model is
:mod:`hwsim.units.dma`).

The external memory has separate read and write channels (as AXI4 does), so loads and stores
run concurrently without arbitration. Protocol, little-endian:

- read channel: a request ``{addr, nbytes}`` on ``mem_rd_req`` is answered, ``latency`` cycles
  after it is accepted and in request order, by one ``mem_rd_rsp`` beat whose low ``nbytes``
  bytes are memory ``[addr, addr + nbytes)`` and whose other bytes are zero;
- write channel: a request ``{addr, nbytes, wdata}`` on ``mem_wr_req`` stores the low
  ``nbytes`` bytes of ``wdata`` at ``addr``; there is no response.

A memory that needs ``s`` cycles for a request (its size over its bandwidth) holds ``ready`` low
for the first ``s - 1`` cycles the request is offered
(``hwsim.units.dma.dram_request_cycles``).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from hwsim import buffers, isa
from hwsim.config import AcceleratorConfig
from hwsim.units.dma import WIDE_BUFFERS, wide_entries

from .buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from .units import UnitComponent, check_config

__all__ = ["DmaIn", "DmaOut", "mem_rd_req_layout", "mem_wr_req_layout", "nbytes_bits"]


def nbytes_bits(bus_bytes: int) -> int:
    """Width of a request's ``nbytes`` on a bus of ``bus_bytes``: 8 bits up to 128 bytes, more
    for wider buses (9 for vcu1525's 256 bytes, whose VEC entry is a whole bus word)."""
    return max(8, bus_bytes.bit_length())


def mem_rd_req_layout(bus_bytes: int = 128) -> data.StructLayout:
    """Read request payload, LSB first: ``addr`` (32), ``nbytes`` (:func:`nbytes_bits`)."""
    return data.StructLayout({"addr": 32, "nbytes": nbytes_bits(bus_bytes)})


def mem_wr_req_layout(bus_bytes: int) -> data.StructLayout:
    """Write request payload, LSB first: ``addr`` (32), ``nbytes`` (:func:`nbytes_bits`),
    ``wdata`` (bus)."""
    return data.StructLayout({"addr": 32, "nbytes": nbytes_bits(bus_bytes),
                              "wdata": bus_bytes * 8})


_SEL_BITS = dict(isa.Load.FIELDS)["buf"]


class _DmaEngine(UnitComponent):
    """What :class:`DmaIn` and :class:`DmaOut` share: the transfer fields (``isa.Load`` and
    ``isa.Store`` have the same), ``sel``, and the registers of the command in flight."""

    def __init__(self, config: AcceleratorConfig, members: dict):
        super().__init__(config, {"sel": Out(_SEL_BITS), **members})

    def _latch(self, m: Module):
        """Registers holding the fields of the command in flight, loaded on ``start``:
        ``(sram, addr, rows, stride, nbytes)``; ``sel`` shows the buffer."""
        sel = Signal.like(self.buf)
        sram = Signal.like(self.sram_addr)
        addr = Signal.like(self.dram_addr)
        rows = Signal.like(self.rows)
        stride = Signal.like(self.stride)
        nbytes = Signal(nbytes_bits(self.config.dram.bus_bytes))
        esize = Signal(3)  # bytes per element of the addressed buffer
        with m.Switch(self.buf):
            with m.Case(isa.Buffer.ACT, isa.Buffer.WGT):
                m.d.comb += esize.eq(self.config.array.elem_bytes)
            with m.Case(isa.Buffer.IDX):
                m.d.comb += esize.eq(1)
            with m.Default():
                m.d.comb += esize.eq(4)
        with m.If(self.start):
            m.d.sync += [sel.eq(self.buf), sram.eq(self.sram_addr), addr.eq(self.dram_addr),
                         rows.eq(self.rows), stride.eq(self.stride),
                         nbytes.eq(self.elems * esize)]
        m.d.comb += self.sel.eq(sel)
        return sram, addr, rows, stride, nbytes


class DmaIn(_DmaEngine):
    """Executes LOAD commands (``isa.Unit.DMA_IN``): DRAM -> buffer ``buf``.

    Issues one read request per entry (address ``dram_addr + r * stride``) as fast as the read
    channel accepts them and writes each response to entry ``sram_addr + r``; done on the cycle
    the last response is written. With ``dram.dma == "wide"`` a LOAD that
    :func:`hwsim.units.dma.load_beats` gives ``k`` entries a request (whole, contiguous ACT,
    WGT or IDX entries at a buffer address that is a multiple of ``k``) asks for ``k`` entries
    a request (``k`` times the bytes, the last request the rest) and writes each response's
    entries in one cycle through ``wr.mask`` (the buffer banked for it,
    :func:`rtl.accelerator.buffer_shapes`).

    Parameters
    ----------
    config : AcceleratorConfig
        ``dram.bus_bytes`` sizes the data paths; ``array.dtype`` the elements of ACT and WGT.

    Members
    -------
    start, done, busy : :class:`~rtl.units.UnitComponent`'s
    buf, sram_addr, dram_addr, rows, elems, stride : In(width of the ``isa.Load`` field)
        The command's fields, sampled on ``start``.
    sel : Out(width of ``buf``)
        The buffer ``wr`` addresses (the top routes it).
    wr : Out(WritePortSignature(ADDR_BITS, bus_bytes * 8, lanes))
        ``lanes``: the largest ``k`` (``mask`` only with ``dram.dma == "wide"``).
    mem_rd_req : Out(stream.Signature(mem_rd_req_layout(bus_bytes)))
    mem_rd_rsp : In(stream.Signature(bus_bytes * 8))

    Latency
    -------
    With a memory taking ``s`` cycles per request and answering ``L`` cycles after accepting
    it, start-to-done is ``rows * s + L + 1`` cycles (2 when ``rows == 0``): :meth:`cycles`; a
    wide LOAD's requests each take their own ``s`` (:func:`hwsim.units.dma.dma_issue_cycles`).
    """

    UNIT = isa.Unit.DMA_IN

    def __init__(self, config: AcceleratorConfig):
        bus = check_config(config).dram.bus_bytes
        self.wide = {b: k for b in WIDE_BUFFERS if (k := wide_entries(b, config)) > 1}
        lanes = max(self.wide.values(), default=1)
        super().__init__(config, {
            "wr": Out(WritePortSignature(ADDR_BITS, bus * 8, lanes)),
            "mem_rd_req": Out(stream.Signature(mem_rd_req_layout(bus))),
            "mem_rd_rsp": In(stream.Signature(bus * 8)),
        })

    @staticmethod
    def cycles(rows: int, latency: int, slots: int = 1) -> int:
        return 2 if rows == 0 else rows * slots + latency + 1

    def elaborate(self, platform):
        m = Module()
        sram, addr, rows, stride, nbytes = self._latch(m)
        issued, received = Signal.like(rows), Signal.like(rows)
        n_req, n_rsp, req_bytes, step = self._requests(m, rows, issued, received, stride, nbytes)
        m.d.comb += [
            self.mem_rd_rsp.ready.eq(1),
            self.mem_rd_req.p.addr.eq(addr),
            self.mem_rd_req.p.nbytes.eq(req_bytes),
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
                    m.d.sync += [issued.eq(issued + n_req), addr.eq(addr + step)]
                with m.If(self.mem_rd_rsp.valid):
                    m.d.comb += self.wr.en.eq(1)
                    m.d.sync += received.eq(received + n_rsp)
                with m.If((rows == 0) | (self.mem_rd_rsp.valid & (received + n_rsp == rows))):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m

    def _requests(self, m, rows, issued, received, stride, nbytes):
        """``(entries of the next request, entries of the next response, the request's bytes,
        the address step)``: 1, 1, ``nbytes`` and ``stride`` in entry mode. With ``dram.dma ==
        "wide"`` a LOAD that :func:`hwsim.units.dma.load_beats` gives ``k`` entries a request
        asks for ``k`` contiguous entries (the last request the rest) and writes a response's
        entries in one cycle (``wr.mask``); any other LOAD is as in entry mode (``k`` = 1)."""
        if not self.wide:
            return 1, 1, nbytes, stride
        K = max(self.wide.values())
        kbits = K.bit_length()
        k = Signal(kbits)  # entries a request of the command in flight
        k_new = Signal(kbits)
        m.d.comb += k_new.eq(1)
        with m.Switch(self.buf):
            for b, kb in self.wide.items():
                with m.Case(b):
                    width = buffers.width(b, self.config)
                    full = ((self.elems == width)
                            & (self.stride == width * buffers.elem_bytes(b, self.config))
                            & (self.sram_addr[:kb.bit_length() - 1] == 0))
                    with m.If(full):
                        m.d.comb += k_new.eq(kb)
        with m.If(self.start):
            m.d.sync += k.eq(k_new)

        def take(done):
            """Entries the next request (or response) covers: ``k``, or the rest."""
            left = rows - done
            return Mux(left < k, left, k)[:kbits]

        n_req, n_rsp = take(issued), take(received)
        m.d.comb += self.wr.mask.eq((Const(1, K + 1) << n_rsp) - 1)
        return (n_req, n_rsp, Mux(k == 1, nbytes, n_req * nbytes),
                Mux(k == 1, stride, n_req * nbytes))


class DmaOut(_DmaEngine):
    """Executes STORE commands (``isa.Unit.DMA_OUT``): buffer ``buf`` -> DRAM.

    Reads entry ``sram_addr + r`` (one cycle of read latency) and offers it as a write request;
    done on the cycle the last write is accepted.

    Parameters
    ----------
    config : AcceleratorConfig
        As :class:`DmaIn`'s.

    Members
    -------
    start, done, busy, sel, command fields
        As :class:`DmaIn`'s (``isa.Store`` has ``isa.Load``'s fields).
    rd : Out(ReadPortSignature(ADDR_BITS, bus_bytes * 8))
        Reads the buffer ``sel`` addresses (only while ``busy``).
    mem_wr_req : Out(stream.Signature(mem_wr_req_layout(bus_bytes)))

    Latency
    -------
    ``rows * s + 2`` cycles start-to-done (2 when ``rows == 0``): :meth:`cycles`.
    """

    UNIT = isa.Unit.DMA_OUT

    def __init__(self, config: AcceleratorConfig):
        bus = check_config(config).dram.bus_bytes
        super().__init__(config, {
            "rd": Out(ReadPortSignature(ADDR_BITS, bus * 8)),
            "mem_wr_req": Out(stream.Signature(mem_wr_req_layout(bus))),
        })

    @staticmethod
    def cycles(rows: int, slots: int = 1) -> int:
        return 2 if rows == 0 else rows * slots + 2

    def elaborate(self, platform):
        m = Module()
        sram, addr, rows, stride, nbytes = self._latch(m)
        issued = Signal.like(rows)
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
