"""The lookup unit: the queue ``isa.Unit.LOOKUP`` in gates (the model is
:mod:`hwsim.units.lookup`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from ..buffers import ADDR_BITS, ReadPortSignature, WritePortSignature
from ..decode import unit_view
from ..units import UnitComponent, check_config
from .gather import GatherEngine, lk_rd_req_layout, lk_rd_rsp_layout
from .hashing import HashEngine

__all__ = ["ROW_BYTES", "SLOTS", "LookupUnit", "tag_bits"]

ROW_BYTES = 64
"""Default widest table row of the RTL engine, bytes (32 fp16 elements)."""
SLOTS = 32
"""Default row-buffer slots."""


def tag_bits(slots: int = SLOTS) -> int:
    """Width of a row request's ``tag``."""
    return max(1, (slots - 1).bit_length())

_ENGINE_INPUTS = ("in_addr", "p_addr", "out_addr", "tokens", "chunks", "width", "tier")


class LookupUnit(UnitComponent):
    """HASH and GATHER of the lookup engine over the table memory port.

    Runs HASH modes 0 and 1 (:class:`~rtl.lookup.hashing.HashEngine`, chunks of 2 to
    ``max_tau`` elements) and GATHER mode 0 (:class:`~rtl.lookup.gather.GatherEngine`); every
    other lookup command is rejected (:meth:`accepts`; the controller's ``error``), as are
    gathers whose rows the engine cannot take (wider than ``row_bytes``, not a whole number of
    VEC entries, or a window beyond ``slots``). Not yet in gates: HASH modes 2 and 3, GATHER
    mode 1, SCATTER.

    Parameters
    ----------
    config : AcceleratorConfig
    row_bytes : int
        Widest table row (the memory answer's width and a row-buffer slot's).
    slots : int
        Row-buffer slots (rows in flight).

    Members
    -------
    rd, wr : Out(Read/WritePortSignature(ADDR_BITS, 32 * vector.lanes))
        VEC ports (the unit has them while it runs).
    base : In(32)
        Controller register ``table`` of the head command.
    lk_rd_req, lk_rd_rsp
        The table memory's read channels (:mod:`rtl.lookup.gather`).
    lk_busy : Out(1)
        High while a command runs: the memory model's time origin (hwsim times every lookup
        command from an idle memory, its start cycle 0 the cycle before ``lk_busy`` rises).
    """

    UNIT = isa.Unit.LOOKUP

    def __init__(self, config: AcceleratorConfig, *, row_bytes: int = ROW_BYTES,
                 slots: int = SLOTS, max_tau: int = 16):
        L = check_config(config).vector.lanes
        self.gather = GatherEngine(config, row_bytes=row_bytes, slots=slots)
        self.hash = HashEngine(config, max_tau=max_tau)
        super().__init__(config, {
            "base": In(32),
            "rd": Out(ReadPortSignature(ADDR_BITS, 32 * L)),
            "wr": Out(WritePortSignature(ADDR_BITS, 32 * L)),
            "lk_rd_req": Out(stream.Signature(lk_rd_req_layout(slots))),
            "lk_rd_rsp": In(stream.Signature(lk_rd_rsp_layout(slots, row_bytes))),
            "lk_busy": Out(1),
        })

    def accepts(self, word):
        """GATHER mode 0 with rows the engine takes, HASH modes 0 and 1 of chunks it takes."""
        c = unit_view(self.UNIT, word)
        gather = ((c.opcode == isa.Opcode.GATHER) & (c.mode == 0)
                  & self.gather.window_fits(c.width))
        return gather | ((c.opcode == isa.Opcode.HASH) & (c.mode < 2) & self.hash.takes(c.width))

    def register_inputs(self, word, regs):
        """Register ``table``: the table's byte address, or HASH's fp32 scale ``2/t``."""
        c = unit_view(self.UNIT, word)
        return {"base": regs[c.table]}

    def elaborate(self, platform):
        m = Module()
        m.submodules.gather = g = self.gather
        m.submodules.hash = h = self.hash
        hashing = self.opcode == isa.Opcode.HASH
        m.d.comb += [g.start.eq(self.start & ~hashing), h.start.eq(self.start & hashing),
                     g.base.eq(self.base), h.scale.eq(self.base), h.mode.eq(self.mode)]
        m.d.comb += [getattr(g, f).eq(getattr(self, f)) for f in _ENGINE_INPUTS]
        m.d.comb += [getattr(h, f).eq(getattr(self, f)) for f in _ENGINE_INPUTS if f != "tier"]
        # the VEC ports: the engine that runs, or starts (both read on their start cycle)
        use_hash = Signal()
        m.d.comb += use_hash.eq(h.busy | (self.start & hashing))
        for port, (gp, hp) in ((self.rd, (g.rd, h.rd)), (self.wr, (g.wr, h.wr))):
            m.d.comb += [port.addr.eq(Mux(use_hash, hp.addr, gp.addr)),
                         port.en.eq(Mux(use_hash, hp.en, gp.en))]
        m.d.comb += [self.wr.data.eq(Mux(use_hash, h.wr.data, g.wr.data)),
                     g.rd.data.eq(self.rd.data), h.rd.data.eq(self.rd.data)]
        wiring.connect(m, wiring.flipped(self.lk_rd_req), g.lk_rd_req)
        wiring.connect(m, g.lk_rd_rsp, wiring.flipped(self.lk_rd_rsp))
        m.d.comb += [self.busy.eq(g.busy | h.busy), self.done.eq(g.done | h.done),
                     self.lk_busy.eq(g.busy)]
        return m
