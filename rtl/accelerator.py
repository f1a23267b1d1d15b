"""The accelerator top: the controller, the units of :data:`UNITS` and the buffers behind
external ports, wired from that list."""

from __future__ import annotations

from collections import defaultdict

from amaranth import Const, Module, Mux, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.units.dma import wide_entries

from .array import ArrayUnit, array_group
from .buffers import BufferMemory
from .controller import RETIRE_BITS, Controller
from .decode import unit_view
from .dma import DmaIn, DmaOut, mem_rd_req_layout, mem_wr_req_layout
from .lookup.gather import lk_rd_req_layout, lk_rd_rsp_layout
from .lookup.scatter import lk_wr_req_layout, lk_wr_rsp_layout
from .lookup.unit import ROW_BYTES, SLOTS, LookupUnit
from .sore import Sore
from .units import UnitSlot, from_start, reads, row, selected, selected_busy, while_busy, writes
from .vector import VectorUnit

__all__ = ["MEMORY_CHANNELS", "UNITS", "URAM_ENTRIES", "Accelerator", "buffer_ram_style",
           "buffer_shapes", "top_units"]

ACT, WGT, ACC, IDX, VEC = (isa.Buffer.ACT, isa.Buffer.WGT, isa.Buffer.ACC, isa.Buffer.IDX,
                           isa.Buffer.VEC)

UNITS: tuple[UnitSlot, ...] = (
    UnitSlot(isa.Unit.SORE, Sore, (reads("src", WGT, when=while_busy),
                                   writes("dst", WGT, when=while_busy),
                                   writes("idx", IDX, when=while_busy)), present=Sore.present),
    UnitSlot(isa.Unit.VECTOR, VectorUnit, (reads("rd", VEC, when=while_busy),
                                           writes("wr", VEC, when=while_busy))),
    UnitSlot(isa.Unit.LOOKUP, LookupUnit, (reads("rd", VEC, when=from_start),
                                           writes("wr", VEC, when=while_busy)),
             options=("row_bytes", "slots")),
    UnitSlot(isa.Unit.DMA_OUT, DmaOut, (reads("rd", ACT, WGT, IDX, VEC, ACC, when=selected_busy,
                                              read_port=-1),)),
    UnitSlot(isa.Unit.ARRAY, ArrayUnit, (reads("act", ACT), row("act_row", ACT),
                                         reads("wgt", WGT), reads("idx", IDX),
                                         reads("acc_rd", ACC),
                                         writes("acc_wr", ACC, when=while_busy)),
             options=("pe_module",)),
    UnitSlot(isa.Unit.DMA_IN, DmaIn, (writes("wr", ACT, WGT, ACC, IDX, VEC, when=selected),)),
)
"""The units of the machine, one entry per ``isa.Unit`` queue. The order is the priority on a
shared buffer port (:class:`~rtl.units.BufferPort`): the SORE and the vector unit own theirs
while they run, DMA-out reads the buffer it stores while it runs, the array reads ACT, WGT and
IDX otherwise (and owns ACC's write port while it runs), DMA-in writes the buffer it loads
otherwise. DMA-out reads each buffer through its last read port: ACC has a second one, so a
tile is stored while the next one computes."""

def top_units(config: AcceleratorConfig, lookup: bool = True) -> list[UnitSlot]:
    """The slots of :data:`UNITS` a top for ``config`` builds: the units the config has (the
    SORE only with N:M patterns), without the lookup unit when ``lookup`` is false."""
    return [slot for slot in UNITS if slot.present(config)
            and (lookup or slot.unit != isa.Unit.LOOKUP)]


URAM_ENTRIES = 4096
"""Depth of one UltraScale+ URAM288 block (72 x 4096)."""

MEMORY_CHANNELS = ("mem_rd_req", "mem_rd_rsp", "mem_wr_req", "lk_rd_req", "lk_rd_rsp",
                   "lk_wr_req", "lk_wr_rsp", "lk_busy")
"""The top's external memory channels; the unit with a member of that name drives each."""


def buffer_ram_style(depth: int) -> str | None:
    """``"ultra"`` (URAM288) for a buffer of at least one URAM288's depth, else no attribute:
    Yosys and Vivado then put deep buffers in UltraRAM (rtl.synth.buffer_mapping_check: without
    the attribute Yosys maps them to BRAM36, which vcu1525's 10 MiB would overfill) and leave
    small ones (the test configs') to their own choice."""
    return "ultra" if depth >= URAM_ENTRIES else None


def buffer_shapes(config: AcceleratorConfig) -> dict[isa.Buffer, dict]:
    """The on-chip buffers of ``config``'s machine, by ``isa.Buffer``, as
    :class:`~rtl.buffers.BufferMemory` arguments: ACT (R operands an entry, banked by the
    array's activation group), WGT (C operands), ACC (C int32/fp32, two read ports), IDX (C
    index bytes), VEC (``vector.lanes`` fp32 words); deep ones in UltraRAM
    (:func:`buffer_ram_style`). With ``dram.dma == "wide"`` ACT, WGT and IDX take
    :func:`hwsim.units.dma.wide_entries` entries a write (banked by that many)."""
    R, C, eb = config.array.rows, config.array.cols, config.array.elem_bytes
    group = array_group(config)
    k = {code: wide_entries(code, config) for code in (ACT, WGT, IDX)}
    shapes = {
        ACT: {"width": R * 8 * eb, "depth": config.act_depth, "banks": max(group, k[ACT]),
              "group": group, "write_lanes": k[ACT]},
        WGT: {"width": C * 8 * eb, "depth": config.wgt_depth, "banks": k[WGT],
              "write_lanes": k[WGT]},
        ACC: {"width": C * 32, "depth": config.acc_depth, "read_ports": 2},
        IDX: {"width": C * 8, "depth": config.idx_depth, "banks": k[IDX],
              "write_lanes": k[IDX]},
        VEC: {"width": 32 * config.vector.lanes, "depth": config.vec_depth},
    }
    return {code: {**shape, "ram_style": buffer_ram_style(shape["depth"])}
            for code, shape in shapes.items()}


class Accelerator(wiring.Component):
    """The SAT accelerator built from an :class:`~hwsim.config.AcceleratorConfig`.

    Members
    -------
    cmd : In(stream.Signature(isa.WORD_BITS))
        Binary ``hwsim.isa`` commands.
    mem_rd_req : Out(stream.Signature(mem_rd_req_layout(bus_bytes)))
    mem_rd_rsp : In(stream.Signature(bus_bytes * 8))
    mem_wr_req : Out(stream.Signature(mem_wr_req_layout(bus_bytes)))
        External memory read and write channels (protocol in :mod:`rtl.dma`).
    lk_rd_req : Out(stream.Signature(lk_rd_req_layout(slots)))
    lk_rd_rsp : In(stream.Signature(lk_rd_rsp_layout(slots, row_bytes)))
    lk_wr_req : Out(stream.Signature(lk_wr_req_layout(slots, row_bytes)))
    lk_wr_rsp : In(stream.Signature(lk_wr_rsp_layout(slots)))
    lk_busy : Out(1)
        The lookup engine's table memory (:mod:`rtl.lookup.gather`, :mod:`rtl.lookup.scatter`,
        :class:`~rtl.lookup.unit.LookupUnit`): a second port, not the DMA's, because the tables
        live in their own tiers (HBM, DDR, CXL, persistent memory: other controllers, other AXI
        ports on an FPGA) and row streams must not queue behind the array's tiles.
    retire : Out(RETIRE_BITS)
        Per-unit completion pulses (bit ``isa.Unit.X``; bit 0 for SYNC/SETREG).
    idle : Out(1)
        Nothing queued, running or offered.
    error : Out(1)
        Sticky: an unsupported command was seen.

    Parameters
    ----------
    config : AcceleratorConfig
        Any ``dram`` section: the port is one request per buffer entry (at most
        ``dram.bus_bytes``) at any byte address. The unit cycles equal hwsim's when the memory
        behind the port is ``dram.model = "fixed"``'s (the simple port's testbench); behind the
        AXI4 masters of :class:`~rtl.axi.AxiAccelerator` (one per DRAM channel,
        :mod:`rtl.channels`) a LOAD or STORE takes what the memory takes.
    row_bytes, slots : int
        The lookup engine's widest table row and row-buffer slots
        (:class:`~rtl.lookup.unit.LookupUnit`).
    lookup : bool
        Build the lookup engine and its table-memory port (``lk_*``). Without it (a SAT-only
        top: a smaller design, which the co-simulation builds for programs without lookup
        commands) lookup commands are refused (``error``).
    pe_module : str, optional
        Build the array's cells as instances of this separately written PE module
        (:class:`~rtl.array.PEInstance`; :func:`rtl.verilog.write_verilog` does). None: inline
        PEs, as Amaranth's simulator needs.

    Notes
    -----
    The top instantiates the :class:`~rtl.controller.Controller` with one queue per unit of
    :data:`UNITS` that the config has (the SORE only with N:M patterns), each unit's component
    (submodule named after its queue: ``dma_in``, ``array``, ...) and the buffers of
    :func:`buffer_shapes`; it feeds each unit the fields of its queue's head
    (:func:`rtl.decode.unit_view`) and its register inputs, multiplexes every buffer port
    between the units that use it (:data:`UNITS`) and connects the DMA engines to the memory
    channels. The units run concurrently under the semaphores of :mod:`hwsim.schedule`:
    LOAD and STORE of every buffer, dense and N:M GEMM tiles (int8 or fp16 by
    ``config.array.dtype``, output- or weight-stationary per command), PRUNE (N:M along K,
    from WGT to WGT + IDX), UPDATE (SGD, SGD with momentum; fp32 words in VEC), and SETREG and
    SYNC in the controller. Programs must not use one port from two units at once (hwsim
    rejects them).
    """

    def __init__(self, config: AcceleratorConfig, *, pe_module: str | None = None,
                 row_bytes: int = ROW_BYTES, slots: int = SLOTS, lookup: bool = True):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.pe_module = pe_module
        self.row_bytes, self.slots, self.lookup = row_bytes, slots, lookup
        self.config = config
        bus = config.dram.bus_bytes
        super().__init__({
            "cmd": In(stream.Signature(isa.WORD_BITS)),
            "mem_rd_req": Out(stream.Signature(mem_rd_req_layout(bus))),
            "mem_rd_rsp": In(stream.Signature(bus * 8)),
            "mem_wr_req": Out(stream.Signature(mem_wr_req_layout(bus))),
            **({"lk_rd_req": Out(stream.Signature(lk_rd_req_layout(slots))),
                "lk_rd_rsp": In(stream.Signature(lk_rd_rsp_layout(slots, row_bytes))),
                "lk_wr_req": Out(stream.Signature(lk_wr_req_layout(slots, row_bytes))),
                "lk_wr_rsp": In(stream.Signature(lk_wr_rsp_layout(slots))),
                "lk_busy": Out(1)} if lookup else {}),
            "retire": Out(RETIRE_BITS), "idle": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        options = {"pe_module": self.pe_module, "row_bytes": self.row_bytes,
                   "slots": self.slots}
        units = {slot: slot.component(cfg, **{o: options[o] for o in slot.options})
                 for slot in top_units(cfg, self.lookup)}
        m.submodules.ctrl = ctrl = Controller(
            [slot.unit for slot in units], queue_depth=cfg.queue_depth,
            accepts={slot.unit: unit.accepts for slot, unit in units.items()})
        buffers = {code: BufferMemory(**shape) for code, shape in buffer_shapes(cfg).items()}
        for code, buf in buffers.items():
            m.submodules[code.name.lower()] = buf

        for slot, unit in units.items():
            m.submodules[slot.name] = unit
            head = ctrl.port(slot.unit, "head")
            fields = unit_view(slot.unit, head)
            m.d.comb += [unit.start.eq(ctrl.port(slot.unit, "start")),
                         ctrl.port(slot.unit, "busy").eq(unit.busy),
                         ctrl.port(slot.unit, "done").eq(unit.done)]
            m.d.comb += [getattr(unit, name).eq(fields[name]) for name in unit.fields]
            m.d.comb += [getattr(unit, name).eq(value)
                         for name, value in unit.register_inputs(head, ctrl.regs).items()]
        _connect_buffers(m, units, buffers)

        connect(m, wiring.flipped(self.cmd), ctrl.cmd)
        for channel in MEMORY_CHANNELS:
            if channel not in self.signature.members:
                continue
            drivers = [u for u in units.values() if channel in u.signature.members]
            if len(drivers) != 1:
                raise ValueError(f"memory channel {channel} needs one unit, not "
                                 f"{[type(u).__name__ for u in drivers]} (several need an "
                                 f"arbiter)")
            ours, theirs = getattr(drivers[0], channel), getattr(self, channel)
            if isinstance(ours, Value):
                m.d.comb += theirs.eq(ours)
            else:
                connect(m, ours, wiring.flipped(theirs))
        m.d.comb += [self.retire.eq(ctrl.retire), self.idle.eq(ctrl.idle),
                     self.error.eq(ctrl.error)]
        return m


def _connect_buffers(m: Module, units: dict, buffers: dict) -> None:
    """Drive every buffer port from the units that use it (priority: :class:`BufferPort`) and
    return each read to its readers; a reader of several buffers gets the one its ``sel``
    addresses, the last of them for any other ``sel``."""
    users = defaultdict(list)  # (buffer, kind, read port) -> [(unit, BufferPort)], UNITS order
    many = []  # (read port member, its sel, {buffer: read data}): readers of several buffers
    for slot, unit in units.items():
        for port in slot.ports:
            if port.kind == "row" and port.member not in unit.signature.members:
                continue  # the unit reads no groups (a dense-only array)
            sources = {}
            for code in port.buffers:
                buf = buffers[code]
                index = range(buf.read_ports)[port.read_port] if port.kind == "read" else 0
                users[code, port.kind, index].append((unit, port))
                sources[code] = buf.rd_port(index).data if port.kind == "read" else None
            if port.kind == "read" and len(port.buffers) > 1:
                many.append((getattr(unit, port.member), unit.sel, sources))

    for (code, kind, index), clients in users.items():
        buf = buffers[code]
        if kind == "row":
            m.d.comb += [getattr(unit, port.member).eq(buf.row) for unit, port in clients]
            continue
        target = buf.rd_port(index) if kind == "read" else buf.wr
        owners = [c for c in clients if c[1].when is not None]
        default = [c for c in clients if c[1].when is None]
        if len(default) > 1:
            raise ValueError(f"{code.name} {kind} port {index}: more than one unit without a "
                             f"condition ({[type(u).__name__ for u, _ in default]})")
        *higher, (unit, port) = owners + default
        width, lanes = buf.width * buf.write_lanes, buf.write_lanes
        value = _port_signals(unit, port, kind, width, lanes)
        if port.when is not None:
            value["en"] = value["en"] & port.when(unit, code)
        for unit, port in reversed(higher):
            cond = port.when(unit, code)
            theirs = _port_signals(unit, port, kind, width, lanes)
            value = {name: Mux(cond, theirs[name], v) for name, v in value.items()}
        m.d.comb += [getattr(target, name).eq(v) for name, v in value.items()]
        if kind == "read":
            m.d.comb += [getattr(unit, port.member).data.eq(target.data)
                         for unit, port in clients if len(port.buffers) == 1]

    for bus, sel, sources in many:
        *cases, (_, last) = sources.items()
        with m.Switch(sel):
            for code, data in cases:
                with m.Case(code):
                    m.d.comb += bus.data.eq(data)
            with m.Default():
                m.d.comb += bus.data.eq(last)


def _port_signals(unit, port, kind: str, width: int, lanes: int = 1) -> dict:
    """What the unit drives on a buffer port: ``addr``, ``en`` and, writing, ``data`` (cut to
    the buffer's write ``width``) and, on a buffer written ``lanes`` entries at a time,
    ``mask``."""
    bus = getattr(unit, port.member)
    if kind == "write":
        out = {"addr": bus.addr, "en": bus.en, "data": bus.data[:width]}
        if lanes > 1:  # a wide buffer: writers of one entry write lane 0 alone
            out["mask"] = bus.mask if hasattr(bus, "mask") else Const(1, lanes)
        return out
    return {"addr": bus.addr, "en": bus.en}
