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
from .sore import Sore
from .vector_unit import VectorUnit

__all__ = ["URAM_ENTRIES", "Accelerator", "buffer_ram_style"]

URAM_ENTRIES = 4096
"""Depth of one UltraScale+ URAM288 block (72 x 4096)."""


def buffer_ram_style(depth: int) -> str | None:
    """``"ultra"`` (URAM288) for a buffer of at least one URAM288's depth, else no attribute:
    Yosys and Vivado then put deep buffers in UltraRAM (rtl.synth.buffer_mapping_check: without
    the attribute Yosys maps them to BRAM36, which vcu1525's 10 MiB would overfill) and leave
    small ones (the test configs') to their own choice."""
    return "ultra" if depth >= URAM_ENTRIES else None


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

    Parameters
    ----------
    config : AcceleratorConfig
        ``dram.model`` must be ``"fixed"`` (the port's timing is the fixed-latency model's).
    pe_module : str, optional
        Build the array's cells as instances of this separately written PE module
        (:class:`~rtl.pe.PEInstance`; :func:`rtl.verilog.write_verilog` does). None: inline
        PEs, as Amaranth's simulator needs.

    Notes
    -----
    This datapath runs dense GEMM tiles (int8 or fp16 by ``config.array.dtype``, output- or
    weight-stationary per command) and N:M sparse tiles (output-stationary, compressed weights
    in WGT with their indices in IDX, the ACT buffer banked by the largest M so one read
    returns a group of activations), UPDATE on the vector unit (SGD, SGD with momentum; fp32
    words in the VEC buffer, hyper-parameters from SETREG registers), PRUNE on the SORE (N:M along
    K, from WGT to WGT + IDX), LOAD and STORE of ACT, WGT, ACC and IDX, SETREG and SYNC, with
    DMA-in, DMA-out, the array and the SORE running concurrently under the semaphores of
    :mod:`hwsim.schedule`. Buffer ports: ACT and WGT are written by DMA-in (WGT also by the SORE)
    and read by the array (or DMA-out, or the SORE); IDX is read by the array (or DMA-out);
    ACC is written by the array (or DMA-in) and has a second read port for DMA-out, so a tile
    is stored while the next one computes.
    Programs must not use one port from two units at once (hwsim rejects them).
    """

    def __init__(self, config: AcceleratorConfig, *, pe_module: str | None = None):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.pe_module = pe_module
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
        has_sore = bool(cfg.array.patterns)
        units = (isa.Unit.DMA_IN, isa.Unit.DMA_OUT, isa.Unit.ARRAY, isa.Unit.VECTOR) + \
            ((isa.Unit.SORE,) if has_sore else ())
        m.submodules.ctrl = ctrl = Controller(cfg.queue_depth, units, cfg.array.nm_patterns)
        m.submodules.dma_in = dma_in = DmaIn(cfg)
        m.submodules.dma_out = dma_out = DmaOut(cfg)
        m.submodules.gemm = gemm = ArrayUnit(cfg, pe_module=self.pe_module)
        eb = cfg.array.elem_bytes
        m.submodules.act = act = BufferMemory(R * 8 * eb, cfg.act_depth, banks=gemm.group,
                                              ram_style=buffer_ram_style(cfg.act_depth))
        m.submodules.wgt = wgt = BufferMemory(C * 8 * eb, cfg.wgt_depth,
                                              ram_style=buffer_ram_style(cfg.wgt_depth))
        m.submodules.acc = acc = BufferMemory(C * 32, cfg.acc_depth, read_ports=2,
                                              ram_style=buffer_ram_style(cfg.acc_depth))
        m.submodules.idx = idx = BufferMemory(C * 8, cfg.idx_depth,
                                              ram_style=buffer_ram_style(cfg.idx_depth))
        m.submodules.vec = vec = BufferMemory(32 * cfg.vector.lanes, cfg.vec_depth,
                                              ram_style=buffer_ram_style(cfg.vec_depth))
        m.submodules.vector = vu = VectorUnit(cfg)
        u = command_view(isa.Update, ctrl.head_vector)
        m.d.comb += [
            vu.start.eq(ctrl.start_vector), vu.w_addr.eq(u.w_addr), vu.g_addr.eq(u.g_addr),
            vu.v_addr.eq(u.v_addr), vu.out_addr.eq(u.out_addr), vu.count.eq(u.count),
            vu.optimizer.eq(u.optimizer),
            vu.lr.eq(ctrl.regs[u.hp_base]), vu.momentum.eq(ctrl.regs[u.hp_base + 1]),
            vu.weight_decay.eq(ctrl.regs[u.hp_base + 2]),
            ctrl.busy_vector.eq(vu.busy), ctrl.done_vector.eq(vu.done),
            # VEC: the vector unit while it runs, otherwise DMA-in writes and DMA-out reads
            vec.rd.addr.eq(Mux(vu.busy, vu.rd.addr, dma_out.rd.addr)),
            vec.rd.en.eq(Mux(vu.busy, vu.rd.en,
                             dma_out.rd.en & (dma_out.sel == isa.Buffer.VEC))),
            vu.rd.data.eq(vec.rd.data),
            vec.wr.addr.eq(Mux(vu.busy, vu.wr.addr, dma_in.wr.addr)),
            vec.wr.data.eq(Mux(vu.busy, vu.wr.data, dma_in.wr.data[:vec.width])),
            vec.wr.en.eq(Mux(vu.busy, vu.wr.en, dma_in.wr.en & (dma_in.sel == isa.Buffer.VEC))),
        ]
        if has_sore:
            m.submodules.sore = sore = Sore(cfg)
            p = command_view(isa.Prune, ctrl.head_sore)
            m.d.comb += [
                sore.start.eq(ctrl.start_sore), sore.src_addr.eq(p.src_addr),
                sore.dst_addr.eq(p.dst_addr), sore.idx_addr.eq(p.idx_addr),
                sore.rows.eq(p.rows), sore.n.eq(p.n), sore.log2m.eq(p.log2m),
                ctrl.busy_sore.eq(sore.busy), ctrl.done_sore.eq(sore.done),
            ]
            sore_busy = sore.busy
        else:
            sore_busy = 0

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
            gemm.dataflow.eq(g.dataflow), gemm.m.eq(g.m), gemm.sparse.eq(g.sparse),
            gemm.n.eq(g.n), gemm.log2m.eq(g.log2m), gemm.idx_addr.eq(g.idx_addr),
            ctrl.busy_array.eq(gemm.busy), ctrl.done_array.eq(gemm.done),
        ]

        # ACT and WGT: DMA-in writes; the array reads, unless DMA-out is storing that buffer.
        # The SORE reads and writes WGT while it prunes.
        for code, buf, user in ((isa.Buffer.ACT, act, gemm.act), (isa.Buffer.WGT, wgt, gemm.wgt)):
            out_reads = dma_out.busy & (dma_out.sel == code)
            w = buf.width
            rd_addr = Mux(out_reads, dma_out.rd.addr, user.addr)
            rd_en = Mux(out_reads, dma_out.rd.en, user.en)
            wr_addr, wr_data = dma_in.wr.addr, dma_in.wr.data[:w]
            wr_en = dma_in.wr.en & (dma_in.sel == code)
            if code == isa.Buffer.WGT and has_sore:
                rd_addr = Mux(sore_busy, sore.src.addr, rd_addr)
                rd_en = Mux(sore_busy, sore.src.en, rd_en)
                wr_addr = Mux(sore_busy, sore.dst.addr, wr_addr)
                wr_data = Mux(sore_busy, sore.dst.data, wr_data)
                wr_en = Mux(sore_busy, sore.dst.en, wr_en)
                m.d.comb += sore.src.data.eq(buf.rd.data)
            m.d.comb += [
                buf.rd.addr.eq(rd_addr), buf.rd.en.eq(rd_en), user.data.eq(buf.rd.data),
                buf.wr.addr.eq(wr_addr), buf.wr.data.eq(wr_data), buf.wr.en.eq(wr_en),
            ]
        # IDX: written by the SORE (or DMA-in, for pre-generated indices), read by DMA-out.
        idx_dma = dma_in.wr.en & (dma_in.sel == isa.Buffer.IDX)
        if has_sore:
            m.d.comb += [
                idx.wr.addr.eq(Mux(sore_busy, sore.idx.addr, dma_in.wr.addr)),
                idx.wr.data.eq(Mux(sore_busy, sore.idx.data, dma_in.wr.data[:idx.width])),
                idx.wr.en.eq(Mux(sore_busy, sore.idx.en, idx_dma)),
            ]
        else:
            m.d.comb += [idx.wr.addr.eq(dma_in.wr.addr), idx.wr.data.eq(dma_in.wr.data[:idx.width]),
                         idx.wr.en.eq(idx_dma)]
        # IDX reads: the array (sparse tiles), unless DMA-out is storing IDX.
        idx_out = dma_out.busy & (dma_out.sel == isa.Buffer.IDX)
        m.d.comb += [idx.rd.addr.eq(Mux(idx_out, dma_out.rd.addr, gemm.idx.addr)),
                     idx.rd.en.eq(Mux(idx_out, dma_out.rd.en, gemm.idx.en)),
                     gemm.idx.data.eq(idx.rd.data)]
        if gemm.group > 1:
            m.d.comb += gemm.act_row.eq(act.row)
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
            for code, buf in ((isa.Buffer.ACT, act), (isa.Buffer.WGT, wgt), (isa.Buffer.IDX, idx),
                              (isa.Buffer.VEC, vec)):
                with m.Case(code):
                    m.d.comb += dma_out.rd.data.eq(buf.rd.data)
            with m.Default():
                m.d.comb += dma_out.rd.data.eq(acc.rd1.data)
        return m
