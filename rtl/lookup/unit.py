"""The lookup unit: the queue ``isa.Unit.LOOKUP`` in gates (the model is
:mod:`hwsim.units.lookup`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig, LookupConfig

from ..buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from ..decode import unit_view
from ..units import UnitComponent, check_config
from .gather import GatherEngine, lk_rd_req_layout, lk_rd_rsp_layout
from .hashing import HashEngine
from .scatter import ScatterEngine, lk_wr_req_layout, lk_wr_rsp_layout
from .update import RowUpdateEngine

__all__ = ["ROW_BYTES", "SLOTS", "LookupUnit", "tag_bits"]

ROW_BYTES = LookupConfig.row_bytes
"""Default widest table row of the RTL engine, bytes (32 fp16 elements): ``lookup.row_bytes``'s
default."""
SLOTS = LookupConfig.slots
"""Default row-buffer slots: ``lookup.slots``'s default."""


def tag_bits(slots: int = SLOTS) -> int:
    """Width of a row request's ``tag``."""
    return max(1, (slots - 1).bit_length())

_ENGINE_INPUTS = ("in_addr", "p_addr", "out_addr", "tokens", "chunks", "width", "tier")


class LookupUnit(UnitComponent):
    """HASH, GATHER and SCATTER of the lookup engine over the table memory port.

    Runs HASH, all four modes (:class:`~rtl.lookup.hashing.HashEngine`, chunks of 2 to
    ``max_tau`` elements), GATHER modes 0 and 1 (:class:`~rtl.lookup.gather.GatherEngine`),
    SCATTER mode 0 (:class:`~rtl.lookup.scatter.ScatterEngine`) and modes 1 and 2, the
    SGD-momentum and Adam row updates (:class:`~rtl.lookup.update.RowUpdateEngine`): every
    lookup command; rejected (:meth:`accepts`; the controller's ``error``) are gathers,
    scatters and row updates whose rows the engines cannot take (wider than ``row_bytes``, not
    a whole number of VEC entries, or a window beyond their slots).

    Parameters
    ----------
    config : AcceleratorConfig
        Its ``lookup`` section sizes the engine: ``row_bytes``, ``slots``, ``max_tau``,
        ``min_dy_chunks`` and ``min_dy_entries``, the limits hwsim enforces with
        ``lookup.rtl_limits`` (:func:`hwsim.units.lookup.rtl_limit` refuses exactly the
        commands :meth:`accepts` does not take).
    row_bytes : int, optional
        Widest table row (the memory answer's width and a row-buffer slot's); default
        ``lookup.row_bytes``.
    slots : int, optional
        Row-buffer slots (rows in flight); default ``lookup.slots``.
    max_tau : int, optional
        Widest hash chunk; default ``lookup.max_tau``.

    Members
    -------
    rd, wr : Out(Read/WritePortSignature(ADDR_BITS, 32 * vector.lanes))
        VEC ports (the unit has them while it runs).
    base : In(32)
        Controller register ``table`` of the head command.
    lk_rd_req, lk_rd_rsp
        The table memory's read channels (:mod:`rtl.lookup.gather`).
    lk_wr_req, lk_wr_rsp
        Its write channels and their acknowledgements (:mod:`rtl.lookup.scatter`).
    lk_busy : Out(1)
        High while a command runs: the memory model's time origin (hwsim times every lookup
        command from an idle memory, its start cycle 0 the cycle before ``lk_busy`` rises).
    """

    UNIT = isa.Unit.LOOKUP

    def __init__(self, config: AcceleratorConfig, *, row_bytes: int | None = None,
                 slots: int | None = None, max_tau: int | None = None):
        L = check_config(config).vector.lanes
        lk = config.lookup
        row_bytes = lk.row_bytes if row_bytes is None else row_bytes
        slots = lk.slots if slots is None else slots
        max_tau = lk.max_tau if max_tau is None else max_tau
        self.row_bytes, self.slots, self.max_tau = row_bytes, slots, max_tau
        self.gather = GatherEngine(config, row_bytes=row_bytes, slots=slots)
        self.hash = HashEngine(config, max_tau=max_tau)
        self.scatter = ScatterEngine(config, row_bytes=row_bytes, slots=slots)
        self.update = RowUpdateEngine(config, row_bytes=row_bytes, tags=slots)
        super().__init__(config, {
            "base": In(32), **{f"reg{i}": In(32) for i in range(1, 5)},
            **{f"hp{i}": In(32) for i in range(5)},
            "rd": Out(ReadPortSignature(ADDR_BITS, 32 * L)),
            "wr": Out(WritePortSignature(ADDR_BITS, 32 * L)),
            "lk_rd_req": Out(stream.Signature(lk_rd_req_layout(slots))),
            "lk_rd_rsp": In(stream.Signature(lk_rd_rsp_layout(slots, row_bytes))),
            "lk_wr_req": Out(stream.Signature(lk_wr_req_layout(slots, row_bytes))),
            "lk_wr_rsp": In(stream.Signature(lk_wr_rsp_layout(slots))),
            "lk_busy": Out(1),
        })

    def accepts(self, word):
        """GATHER and SCATTER (every mode) with rows the engines take, HASH (every mode) of
        chunks it takes."""
        c = unit_view(self.UNIT, word)
        gather = ((c.opcode == isa.Opcode.GATHER)
                  & self.gather.takes(c.width, c.chunks, c.mode))
        scatter = ((c.opcode == isa.Opcode.SCATTER) & (c.mode == 0)
                   & self.scatter.takes(c.width, c.chunks))
        update = ((c.opcode == isa.Opcode.SCATTER) & self.update.takes(c.width, c.mode)
                  & Mux(c.mode == 2, (c.table <= 11) & (c.p_addr <= 11),
                        (c.table <= 12) & (c.p_addr <= 13)))
        return (gather | scatter | update
                | ((c.opcode == isa.Opcode.HASH) & self.hash.takes(c.width)))

    def register_inputs(self, word, regs):
        """Register ``table``: the table's byte address, or HASH's fp32 scale ``2/t``; for the
        row update also ``table+1 ..`` (the master, gradient and state tables) and the
        hyper-parameters ``p_addr ..``."""
        c = unit_view(self.UNIT, word)
        return {"base": regs[c.table], **{f"reg{i}": regs[c.table + i] for i in range(1, 5)},
                **{f"hp{i}": regs[c.p_addr + i] for i in range(5)}}

    def elaborate(self, platform):
        m = Module()
        m.submodules.gather = g = self.gather
        m.submodules.hash = h = self.hash
        m.submodules.scatter = sc = self.scatter
        m.submodules.update = up = self.update
        hashing = self.opcode == isa.Opcode.HASH
        scattering = (self.opcode == isa.Opcode.SCATTER) & (self.mode == 0)
        updating = (self.opcode == isa.Opcode.SCATTER) & (self.mode != 0)
        m.d.comb += [g.start.eq(self.start & ~hashing & ~scattering & ~updating),
                     h.start.eq(self.start & hashing), sc.start.eq(self.start & scattering),
                     up.start.eq(self.start & updating), up.base0.eq(self.base),
                     *(getattr(up, f"base{i}").eq(getattr(self, f"reg{i}")) for i in range(1, 5)),
                     *(getattr(up, f"hp{i}").eq(getattr(self, f"hp{i}")) for i in range(5)),
                     *(getattr(up, f).eq(getattr(self, f))
                       for f in ("in_addr", "tokens", "chunks", "width", "tier", "mode")),
                     g.base.eq(self.base), sc.base.eq(self.base), h.scale.eq(self.base),
                     h.mode.eq(self.mode), g.mode.eq(self.mode)]
        for engine in (g, sc):
            m.d.comb += [getattr(engine, f).eq(getattr(self, f)) for f in _ENGINE_INPUTS]
        m.d.comb += [getattr(h, f).eq(getattr(self, f)) for f in _ENGINE_INPUTS if f != "tier"]
        # the VEC ports: the engine that runs, or starts (each reads on its start cycle)
        use_hash, use_scatter, use_update = Signal(), Signal(), Signal()
        m.d.comb += [use_hash.eq(h.busy | (self.start & hashing)),
                     use_scatter.eq(sc.busy | (self.start & scattering)),
                     use_update.eq(up.busy | (self.start & updating))]
        m.d.comb += [self.rd.addr.eq(Mux(use_hash, h.rd.addr, Mux(
                         use_scatter, sc.rd.addr, Mux(use_update, up.rd.addr, g.rd.addr)))),
                     self.rd.en.eq(Mux(use_hash, h.rd.en, Mux(
                         use_scatter, sc.rd.en, Mux(use_update, up.rd.en, g.rd.en)))),
                     self.wr.addr.eq(Mux(use_hash, h.wr.addr, g.wr.addr)),
                     self.wr.en.eq(Mux(use_hash, h.wr.en, g.wr.en)),
                     self.wr.data.eq(Mux(use_hash, h.wr.data, g.wr.data))]
        m.d.comb += [e.rd.data.eq(self.rd.data) for e in (g, h, sc, up)]
        # the table memory: the gather's, the scatter's or the row update's (one runs at a time)
        req, rsp = self.lk_rd_req, self.lk_rd_rsp
        m.d.comb += [req.valid.eq(Mux(sc.busy, sc.lk_rd_req.valid, Mux(
                         up.busy, up.lk_rd_req.valid, g.lk_rd_req.valid))),
                     req.p.eq(Mux(sc.busy, sc.lk_rd_req.p, Mux(
                         up.busy, up.lk_rd_req.p, g.lk_rd_req.p))),
                     rsp.ready.eq(1)]
        wreq, ack = self.lk_wr_req, self.lk_wr_rsp
        m.d.comb += [wreq.valid.eq(Mux(up.busy, up.lk_wr_req.valid, sc.lk_wr_req.valid)),
                     wreq.p.eq(Mux(up.busy, up.lk_wr_req.p, sc.lk_wr_req.p)), ack.ready.eq(1)]
        for e in (g, sc, up):
            m.d.comb += [e.lk_rd_req.ready.eq(req.ready & e.busy),
                         e.lk_rd_rsp.valid.eq(rsp.valid & e.busy), e.lk_rd_rsp.p.eq(rsp.p)]
        for e in (sc, up):
            m.d.comb += [e.lk_wr_req.ready.eq(wreq.ready & e.busy),
                         e.lk_wr_rsp.valid.eq(ack.valid & e.busy), e.lk_wr_rsp.p.eq(ack.p)]
        m.d.comb += [self.busy.eq(g.busy | h.busy | sc.busy | up.busy),
                     self.done.eq(g.done | h.done | sc.done | up.done),
                     self.lk_busy.eq(g.busy | sc.busy | up.busy)]
        return m
