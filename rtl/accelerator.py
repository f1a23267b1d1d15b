"""The accelerator top: controller, DMA engines, GEMM unit and buffers behind external ports."""

from __future__ import annotations

from amaranth import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hwsim import isa
from hwsim.config import AcceleratorConfig

from .array_unit import ArrayUnit
from .buffers import BufferMemory
from .controller import Controller, command_view
from .dma import DmaIn, DmaOut, mem_rd_req_layout, mem_wr_req_layout

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """The SAT accelerator built from an :class:`~hwsim.config.AcceleratorConfig`.

    Members
    -------
    cmd : In(stream.Signature(128))
        Binary ``hwsim.isa`` commands.
    mem_rd_req : Out(stream.Signature(mem_rd_req_layout()))
    mem_rd_rsp : In(stream.Signature(bus_bytes * 8))
    mem_wr_req : Out(stream.Signature(mem_wr_req_layout(bus_bytes)))
        External memory read and write channels (protocol in :mod:`rtl.dma`).
    retire : Out(8)
        Per-unit completion pulses (bit ``isa.Unit.X``; bit 0 for SYNC/SETREG).
    idle : Out(1)
        Nothing queued, running or offered.
    error : Out(1)
        Sticky: an unsupported command was seen.

    Notes
    -----
    This datapath runs int8 dense output-stationary GEMM tiles, LOAD and STORE of ACT, WGT and
    ACC, SETREG and SYNC, with DMA-in, DMA-out and the array running concurrently under the
    semaphores of :mod:`hwsim.schedule`. Buffer ports: ACT and WGT are written by DMA-in and read
    by the array (or DMA-out); ACC is written by the array (or DMA-in) and has a second read port
    for DMA-out, so a tile is stored while the next one computes. Programs must not use one port
    from two units at once (hwsim rejects them); the top gives the array priority.
    """

    def __init__(self, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        if config.array.dtype != "int8":
            raise ValueError(f"the RTL datapath is int8; config {config.name!r} has "
                             f"array.dtype={config.array.dtype!r}")
        if config.dram.model != "fixed":
            raise ValueError(f"the RTL memory port assumes dram.model='fixed'; config "
                             f"{config.name!r} has {config.dram.model!r}")
        self.config = config
        bus = config.dram.bus_bytes
        super().__init__({
            "cmd": In(stream.Signature(isa.WORD_BITS)),
            "mem_rd_req": Out(stream.Signature(mem_rd_req_layout())),
            "mem_rd_rsp": In(stream.Signature(bus * 8)),
            "mem_wr_req": Out(stream.Signature(mem_wr_req_layout(bus))),
            "retire": Out(8), "idle": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C = cfg.array.rows, cfg.array.cols
        m.submodules.ctrl = ctrl = Controller(cfg.queue_depth)
        m.submodules.dma_in = dma_in = DmaIn(cfg)
        m.submodules.dma_out = dma_out = DmaOut(cfg)
        m.submodules.gemm = gemm = ArrayUnit(cfg)
        m.submodules.act = act = BufferMemory(R * 8, cfg.act_depth)
        m.submodules.wgt = wgt = BufferMemory(C * 8, cfg.wgt_depth)
        m.submodules.acc = acc = BufferMemory(C * 32, cfg.acc_depth, read_ports=2)

        connect(m, wiring.flipped(self.cmd), ctrl.cmd)
        connect(m, dma_in.mem_rd_req, wiring.flipped(self.mem_rd_req))
        connect(m, wiring.flipped(self.mem_rd_rsp), dma_in.mem_rd_rsp)
        connect(m, dma_out.mem_wr_req, wiring.flipped(self.mem_wr_req))
        m.d.comb += [self.retire.eq(ctrl.retire), self.idle.eq(ctrl.idle),
                     self.error.eq(ctrl.error)]

        for dma, unit in ((dma_in, isa.Unit.DMA_IN), (dma_out, isa.Unit.DMA_OUT)):
            name = unit.name.lower()
            f = command_view(isa.Load, getattr(ctrl, f"head_{name}"))
            m.d.comb += [
                dma.start.eq(getattr(ctrl, f"start_{name}")),
                dma.buf.eq(f.buf), dma.sram_addr.eq(f.sram_addr), dma.dram_addr.eq(f.dram_addr),
                dma.rows.eq(f.rows), dma.elems.eq(f.elems), dma.stride.eq(f.stride),
                getattr(ctrl, f"busy_{name}").eq(dma.busy),
                getattr(ctrl, f"done_{name}").eq(dma.done),
            ]
        g = command_view(isa.Gemm, ctrl.head_array)
        m.d.comb += [
            gemm.start.eq(ctrl.start_array), gemm.a_addr.eq(g.a_addr), gemm.b_addr.eq(g.b_addr),
            gemm.c_addr.eq(g.c_addr), gemm.k.eq(g.k), gemm.accumulate.eq(g.accumulate),
            ctrl.busy_array.eq(gemm.busy), ctrl.done_array.eq(gemm.done),
        ]

        # ACT and WGT: DMA-in writes; the array reads, unless DMA-out is storing that buffer.
        for code, buf, user in ((isa.Buffer.ACT, act, gemm.act), (isa.Buffer.WGT, wgt, gemm.wgt)):
            out_reads = dma_out.busy & (dma_out.sel == code)
            w = buf.width
            m.d.comb += [
                buf.rd.addr.eq(Mux(out_reads, dma_out.rd.addr, user.addr)),
                buf.rd.en.eq(Mux(out_reads, dma_out.rd.en, user.en)),
                user.data.eq(buf.rd.data),
                buf.wr.addr.eq(dma_in.wr.addr), buf.wr.data.eq(dma_in.wr.data[:w]),
                buf.wr.en.eq(dma_in.wr.en & (dma_in.sel == code)),
            ]
        # ACC: the array writes (DMA-in may preload it); port 0 for the array's
        # read-modify-write, port 1 for DMA-out.
        m.d.comb += [
            acc.wr.addr.eq(Mux(gemm.busy, gemm.acc_wr.addr, dma_in.wr.addr)),
            acc.wr.data.eq(Mux(gemm.busy, gemm.acc_wr.data, dma_in.wr.data[:acc.width])),
            acc.wr.en.eq(Mux(gemm.busy, gemm.acc_wr.en,
                             dma_in.wr.en & (dma_in.sel == isa.Buffer.ACC))),
            acc.rd.addr.eq(gemm.acc_rd.addr), acc.rd.en.eq(gemm.acc_rd.en),
            gemm.acc_rd.data.eq(acc.rd.data),
            acc.rd1.addr.eq(dma_out.rd.addr), acc.rd1.en.eq(dma_out.rd.en & (dma_out.sel ==
                                                                              isa.Buffer.ACC)),
        ]
        with m.Switch(dma_out.sel):
            for code, buf in ((isa.Buffer.ACT, act), (isa.Buffer.WGT, wgt)):
                with m.Case(code):
                    m.d.comb += dma_out.rd.data.eq(buf.rd.data)
            with m.Default():
                m.d.comb += dma_out.rd.data.eq(acc.rd1.data)
        return m
