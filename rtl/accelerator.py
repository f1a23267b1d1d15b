"""The accelerator top: controller, DMA, GEMM unit and buffers behind two external ports."""

from __future__ import annotations

from amaranth import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hwsim import isa
from hwsim.config import AcceleratorConfig

from .array_unit import ArrayUnit
from .buffers import BufferMemory
from .controller import Controller, command_view
from .dma import Dma, mem_req_layout

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """The SAT accelerator built from an :class:`~hwsim.config.AcceleratorConfig`.

    Members
    -------
    cmd : In(stream.Signature(128))
        Binary ``hwsim.isa`` commands, executed in order.
    mem_req : Out(stream.Signature(mem_req_layout(bus_bytes)))
    mem_rsp : In(stream.Signature(bus_bytes * 8))
        External memory port (see :func:`rtl.dma.mem_req_layout` for its protocol); the
        testbench or a memory controller serves it.
    retire : Out(1)
        One-cycle pulse per completed command (cocotb measures per-command cycles with it).
    idle : Out(1)
        No command in flight or offered.
    error : Out(1)
        Sticky: an unsupported or unsatisfiable command was seen.

    Notes
    -----
    This datapath runs int8 dense output-stationary GEMM tiles, LOAD/STORE of ACT, WGT and ACC,
    SETREG and SYNC. Every command's cycle count equals ``hwsim.timing.command_cycles``.
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
            "mem_req": Out(stream.Signature(mem_req_layout(bus))),
            "mem_rsp": In(stream.Signature(bus * 8)),
            "retire": Out(1), "idle": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C = cfg.array.rows, cfg.array.cols
        m.submodules.ctrl = ctrl = Controller()
        m.submodules.dma = dma = Dma(cfg)
        m.submodules.gemm = gemm = ArrayUnit(cfg)
        m.submodules.act = act = BufferMemory(R * 8, cfg.act_depth)
        m.submodules.wgt = wgt = BufferMemory(C * 8, cfg.wgt_depth)
        m.submodules.acc = acc = BufferMemory(C * 32, cfg.acc_depth)

        connect(m, wiring.flipped(self.cmd), ctrl.cmd)
        connect(m, dma.mem_req, wiring.flipped(self.mem_req))
        connect(m, wiring.flipped(self.mem_rsp), dma.mem_rsp)
        m.d.comb += [self.retire.eq(ctrl.retire), self.idle.eq(ctrl.idle),
                     self.error.eq(ctrl.error)]

        ld = command_view(isa.Load, ctrl.word)
        gm = command_view(isa.Gemm, ctrl.word)
        m.d.comb += [
            dma.start.eq(ctrl.start_load | ctrl.start_store), dma.is_store.eq(ctrl.start_store),
            dma.buf.eq(ld.buf), dma.sram_addr.eq(ld.sram_addr), dma.dram_addr.eq(ld.dram_addr),
            dma.rows.eq(ld.rows), dma.elems.eq(ld.elems), dma.stride.eq(ld.stride),
            gemm.start.eq(ctrl.start_gemm), gemm.a_addr.eq(gm.a_addr), gemm.b_addr.eq(gm.b_addr),
            gemm.c_addr.eq(gm.c_addr), gemm.k.eq(gm.k), gemm.accumulate.eq(gm.accumulate),
            ctrl.unit_done.eq(dma.done | gemm.done),
        ]

        # One unit runs at a time: route each buffer's ports to the GEMM unit while it is busy,
        # otherwise to the DMA (which drives enables only for its selected buffer).
        for code, buf, rd_user, wr_user in (
            (isa.Buffer.ACT, act, gemm.act, None),
            (isa.Buffer.WGT, wgt, gemm.wgt, None),
            (isa.Buffer.ACC, acc, gemm.acc_rd, gemm.acc_wr),
        ):
            mine = dma.sel == code
            w = buf.width
            m.d.comb += [
                buf.rd.addr.eq(Mux(gemm.busy, rd_user.addr, dma.rd.addr)),
                buf.rd.en.eq(Mux(gemm.busy, rd_user.en, dma.rd.en & mine)),
                rd_user.data.eq(buf.rd.data),
            ]
            if wr_user is None:
                m.d.comb += [buf.wr.addr.eq(dma.wr.addr), buf.wr.data.eq(dma.wr.data[:w]),
                             buf.wr.en.eq(dma.wr.en & mine)]
            else:
                m.d.comb += [
                    buf.wr.addr.eq(Mux(gemm.busy, wr_user.addr, dma.wr.addr)),
                    buf.wr.data.eq(Mux(gemm.busy, wr_user.data, dma.wr.data[:w])),
                    buf.wr.en.eq(Mux(gemm.busy, wr_user.en, dma.wr.en & mine)),
                ]
        with m.Switch(dma.sel):
            for code, buf in ((isa.Buffer.ACT, act), (isa.Buffer.WGT, wgt), (isa.Buffer.ACC, acc)):
                with m.Case(code):
                    m.d.comb += dma.rd.data.eq(buf.rd.data)
        return m
