# amaranth: UnusedElaboratable=no
"""The host-controlled kernel: :class:`~rtl.axi.AxiAccelerator` behind the Vitis RTL-kernel
interface (AMD UG1393/UG1700, ``ap_ctrl_hs``), with a command fetcher that streams the program
from device memory.

A host (XRT on an Alveo/VCU1525 card, or the cocotb bench of :mod:`rtl.cosim.kernel_bench`)
writes the program (:meth:`hwsim.program.Program.binary`: 16-byte little-endian
``hwsim.isa`` words) and the program's DRAM image into device memory, writes the arguments and
``ap_start`` through ``s_axi_control`` (:mod:`rtl.axilite`), and waits for ``ap_done`` or the
interrupt. The fetcher then reads the words over its own AXI4 master (``m_axi_cmd``) into the
controller's command input; ``ap_done`` rises once every word was accepted, every command
retired and every write's response came back.

Arguments (64-bit, :data:`rtl.axilite.ARG_BASE` on, ``ARG_STRIDE`` apart; :func:`kernel_args`):

- ``program``: device address of the first command word, a multiple of 16;
- ``program_words``: the number of 128-bit command words, below 2**28;
- ``data`` (one DRAM channel): the base the program's DRAM addresses (LOAD, STORE) are relative
  to, a multiple of 4 KiB (XRT buffers are 4 KiB aligned; the DMA bridge's 4 KiB page splits
  stay right);
- ``data0`` .. ``data{N-1}`` (``dram.channels = N > 1``): one base per channel master
  (``m_axi_ch<c>``, :mod:`rtl.channels`), each a multiple of 4 KiB. Channel ``c``'s master
  issues its channel addresses (:func:`hwsim.dram.channel_map`: byte ``a`` of the program's
  DRAM is byte ``(a // g // N) * g + a % g`` of channel ``a // g % N``, ``g`` the interleave)
  plus ``data<c>``: on a board each is its own buffer in its own memory bank, holding that
  channel's share of the DRAM image (:func:`rtl.driver.channel_images`);
- ``tables`` (with the lookup engine): the base of the lookup engine's table addresses, 4 KiB
  aligned (with one channel usually the ``data`` buffer: both masters see one address space in
  hwsim).

An argument outside these bounds runs nothing: ``ap_done`` rises the cycle after ``ap_start``
with the status register's ``bad_argument`` bit set.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hwsim import isa
from hwsim.config import AcceleratorConfig

from .axi import AXI_PREFIX, AxiAccelerator, AxiBridge, axi4_master_members
from .axilite import (
    ARG_BASE,
    ARG_STRIDE,
    MAX_ARGS,
    STATUS_BITS,
    AxiLiteControl,
    axilite_slave_members,
)
from .channels import channel_prefix
from .dma import mem_rd_req_layout
from .lookup.unit import ROW_BYTES, SLOTS

__all__ = ["FETCH_PREFIX", "GMEM_PREFIX", "KERNEL_ADDR_BITS", "KERNEL_NAME", "LOOKUP_PREFIX",
           "MAX_WORDS", "CommandFetcher", "KernelArg", "SatmemKernel", "data_args",
           "kernel_args"]

KERNEL_NAME = "satmem_kernel"
KERNEL_ADDR_BITS = 64  # Vitis: every AXI4 master of a kernel has 64-bit addresses
FETCH_PREFIX = "m_axi_cmd"
GMEM_PREFIX = "m_axi_gmem"
LOOKUP_PREFIX = "m_axi_lk"
WORD_BYTES = isa.WORD_BYTES
MAX_WORDS = 1 << 28  # 16-byte words the fetcher's 32-bit relative addresses reach


@dataclass(frozen=True)
class KernelArg:
    """One kernel argument: its name, register offset, the master whose addresses it bases
    (``None``: a scalar) and its C type as the host sees it."""

    name: str
    offset: int
    port: str | None
    ctype: str
    what: str

    @property
    def is_pointer(self) -> bool:
        return self.port is not None


def data_args(channels: int = 1) -> tuple[str, ...]:
    """The names of the DRAM base arguments: ``("data",)`` for one channel, ``("data0", ..,
    "data{channels-1}")`` for several (channel ``c``'s master is ``m_axi_ch<c>``)."""
    return ("data",) if channels == 1 else tuple(f"data{c}" for c in range(channels))


def kernel_args(lookup: bool, channels: int = 1) -> tuple[KernelArg, ...]:
    """The kernel's arguments in register order: ``program``, ``program_words``, the DRAM
    bases (:func:`data_args`), then with ``lookup`` ``tables``.

    Raises
    ------
    ValueError
        ``channels`` not a positive integer, or more arguments than the register map holds
        (:data:`rtl.axilite.MAX_ARGS`).
    """
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise ValueError(f"channels must be a positive integer, not {channels!r}")
    specs = [("program", FETCH_PREFIX, "void*", "device address of the command words"),
             ("program_words", None, "unsigned long", "number of 128-bit command words")]
    if channels == 1:
        specs.append(("data", GMEM_PREFIX, "void*", "base of the program's DRAM addresses"))
    else:
        specs += [(name, channel_prefix(c), "void*",
                   f"base of DRAM channel {c}'s addresses (its share of the DRAM image)")
                  for c, name in enumerate(data_args(channels))]
    if lookup:
        specs.append(("tables", LOOKUP_PREFIX, "void*", "base of the lookup tables' addresses"))
    if len(specs) > MAX_ARGS:
        raise ValueError(f"{len(specs)} kernel arguments ({channels} DRAM channels) do not fit "
                         f"the register map's {MAX_ARGS}")
    return tuple(KernelArg(n, ARG_BASE + i * ARG_STRIDE, p, t, w)
                 for i, (n, p, t, w) in enumerate(specs))


class CommandFetcher(wiring.Component):
    """Streams ``count`` 16-byte command words, from relative address 0 on, from a memory port
    of :mod:`rtl.dma`'s kind (an :class:`~rtl.axi.AxiBridge` of 16-byte data) into a command
    stream.

    Members
    -------
    start : In(1)
        Begin; ``count`` is sampled on this cycle. Ignored while ``busy``.
    count : In(28)
        Words to fetch (0: nothing, never busy).
    mem_rd_req : Out(stream.Signature(mem_rd_req_layout()))
    mem_rd_rsp : In(stream.Signature(128))
        One 16-byte read per word, at ``16 * i``, issued as fast as the port takes them (it
        keeps its own limit of reads in flight); the responses in order.
    cmd : Out(stream.Signature(isa.WORD_BITS))
        The words, in order; a response waits on the port until ``cmd`` takes it.
    busy : Out(1)
        From the cycle after ``start`` until the cycle after the last word was taken.
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "count": In(28),
            "mem_rd_req": Out(stream.Signature(mem_rd_req_layout())),
            "mem_rd_rsp": In(stream.Signature(isa.WORD_BITS)),
            "cmd": Out(stream.Signature(isa.WORD_BITS)), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        total, issued, taken = Signal(28), Signal(28), Signal(28)
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        req = self.mem_rd_req
        m.d.comb += [req.valid.eq(busy & (issued != total)),
                     req.p.addr.eq(issued << 4), req.p.nbytes.eq(WORD_BYTES)]
        with m.If(req.valid & req.ready):
            m.d.sync += issued.eq(issued + 1)
        m.d.comb += [self.cmd.valid.eq(self.mem_rd_rsp.valid),
                     self.cmd.payload.eq(self.mem_rd_rsp.payload),
                     self.mem_rd_rsp.ready.eq(self.cmd.ready)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += taken.eq(taken + 1)
            with m.If(taken + 1 == total):
                m.d.sync += busy.eq(0)
        with m.If(self.start & ~busy):
            m.d.sync += [total.eq(self.count), issued.eq(0), taken.eq(0),
                         busy.eq(self.count != 0)]
        return m


class SatmemKernel(wiring.Component):
    """The accelerator as a Vitis ``ap_ctrl_hs`` RTL kernel.

    Members
    -------
    ap_clk : In(1)
    ap_rst_n : In(1)
        Clock and active-low reset, synchronous to ``ap_clk``; the reset is registered once
        inside (UG1393: pipelined), so the kernel leaves reset one cycle after ``ap_rst_n``.
    interrupt : Out(1)
        Active high (:mod:`rtl.axilite`).
    s_axi_control_* : :func:`rtl.axilite.axilite_slave_members`
        Control registers (:mod:`rtl.axilite`), arguments :func:`kernel_args`.
    m_axi_cmd_* : :func:`rtl.axi.axi4_master_members`
        The command fetcher's AXI4 master: 128-bit data, 64-bit addresses, reads only (one
        single-beat INCR burst per command word, up to 16 in flight; its write channels stay
        idle).
    m_axi_gmem_* : with one DRAM channel, the DMA's AXI4 master (:class:`~rtl.axi.AxiBridge`),
        addresses widened to 64 bits and offset by ``data``.
    m_axi_ch<c>_* : with ``dram.channels = N > 1``, channel ``c``'s AXI4 master
        (:class:`~rtl.channels.ChannelBridge`, ``dram.bus_bytes / N`` data bytes), its channel
        addresses offset by ``data<c>``: one master per memory bank.
    m_axi_lk_* : with the lookup engine, its table memory's AXI4 master
        (:class:`rtl.lookup.axi.LookupAxiBridge`), addresses widened to 64 bits and offset by
        ``tables``.

    Parameters
    ----------
    config : AcceleratorConfig
    lookup : bool, default True
        Build the lookup engine (and ``m_axi_lk``, ``tables``); False: a SAT-only kernel.
    pe_module, row_bytes, slots
        As :class:`~rtl.axi.AxiAccelerator`'s.

    Raises
    ------
    ValueError
        Several DRAM channels the RTL cannot split (:func:`rtl.channels.check_channels`).

    Notes
    -----
    The run: ``ap_start`` in the idle state latches the arguments; if they are in bounds the
    fetcher starts, else the run ends at once (status ``bad_argument``). The run ends (one
    cycle of ``ap_done`` and ``ap_ready``, ``ap_idle`` again) on the first cycle on which the
    fetcher delivered every word, the accelerator and both bridges are idle, and as many
    commands retired as were fetched, or the controller dropped a command (status
    ``command_error``: a malformed program ends, it does not hang). A program whose semaphores
    never let a command issue (hwsim rejects such programs) does hang. The status register's
    error bits other than ``bad_argument`` are the bridges' and controller's sticky flags:
    they stay set until ``ap_rst_n``. The cycle register counts the run's cycles.
    """

    def __init__(self, config: AcceleratorConfig, *, lookup: bool = True,
                 pe_module: str | None = None, row_bytes: int = ROW_BYTES, slots: int = SLOTS):
        self.config, self.lookup = config, lookup
        self.core = AxiAccelerator(config, pe_module=pe_module, lookup=lookup,
                                   row_bytes=row_bytes, slots=slots)
        self.fetch_bridge = AxiBridge(WORD_BYTES)
        self.channels = config.dram.channels
        self.args = kernel_args(lookup, self.channels)
        # the core's masters: the DMA's (m_axi -> m_axi_gmem) or each channel's (m_axi_ch<c>,
        # kept), and the lookup engine's (m_axi_lk, kept); each with the argument basing it
        bases = {LOOKUP_PREFIX: "tables",
                 **dict(zip(self.core.prefixes, data_args(self.channels), strict=True))}
        self.masters = {}  # kernel member -> (inner component, inner member, base argument)
        for name in self.core.signature.members:
            prefix = next((p for p in bases if name.startswith(p + "_")), None)
            if prefix is None:
                continue
            ours = (f"{GMEM_PREFIX}_{name[len(AXI_PREFIX) + 1:]}" if prefix == AXI_PREFIX
                    else name)
            self.masters[ours] = (self.core, name, bases[prefix])
        for name in axi4_master_members(WORD_BYTES):
            self.masters[f"{FETCH_PREFIX}_{name[len(AXI_PREFIX) + 1:]}"] = (
                self.fetch_bridge, name, "program")
        members = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1),
                   **axilite_slave_members()}
        for ours, (inner, name, _) in self.masters.items():
            member = inner.signature.members[name]
            width = KERNEL_ADDR_BITS if name.endswith(("araddr", "awaddr")) else member.shape
            members[ours] = member.flow(width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # the design's own clock domain, from ap_clk, with the reset registered once
        m.domains.sync = ClockDomain("sync")
        m.domains.ap = ClockDomain("ap", reset_less=True)
        rst = Signal(init=1)
        m.d.ap += rst.eq(~self.ap_rst_n)
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ClockSignal("ap").eq(self.ap_clk),
                     ResetSignal("sync").eq(rst)]

        m.submodules.control = ctrl = AxiLiteControl(len(self.args))
        m.submodules.core = core = self.core
        m.submodules.fetch_axi = fbridge = self.fetch_bridge
        m.submodules.fetcher = fetcher = CommandFetcher()
        for name, member in axilite_slave_members().items():
            ours, theirs = getattr(self, name), getattr(ctrl, name)
            m.d.comb += ours.eq(theirs) if member.flow == Out else theirs.eq(ours)
        m.d.comb += self.interrupt.eq(ctrl.interrupt)

        connect(m, fetcher.mem_rd_req, fbridge.mem_rd_req)
        connect(m, fbridge.mem_rd_rsp, fetcher.mem_rd_rsp)
        m.d.comb += fbridge.mem_wr_req.valid.eq(0)
        connect(m, fetcher.cmd, core.cmd)

        # the arguments, latched on ap_start
        arg = {a.name: getattr(ctrl, f"arg{i}") for i, a in enumerate(self.args)}
        base = {a.name: Signal(64, name=f"{a.name}_q") for a in self.args if a.is_pointer}
        words = Signal(28)
        for ours, (inner, name, which) in self.masters.items():
            theirs = getattr(inner, name)
            if name.endswith(("araddr", "awaddr")):
                m.d.comb += getattr(self, ours).eq(base[which] + theirs)
            elif inner.signature.members[name].flow == Out:
                m.d.comb += getattr(self, ours).eq(theirs)
            else:
                m.d.comb += theirs.eq(getattr(self, ours))

        bad = (arg["program"][:4] != 0) | (arg["program_words"][28:] != 0)
        for name in base:  # every memory base but the program's: 4 KiB pages
            if name != "program":
                bad = bad | (arg[name][:12] != 0)
        bad_arg, cycles, retired = Signal(), Signal(64), Signal(28)
        m.d.comb += [ctrl.cycles.eq(cycles),
                     ctrl.status.eq((core.error << STATUS_BITS["command_error"])
                                    | (core.axi_error << STATUS_BITS["axi_error"])
                                    | (fbridge.error << STATUS_BITS["fetch_error"])
                                    | (bad_arg << STATUS_BITS["bad_argument"])),
                     fetcher.count.eq(arg["program_words"][:28])]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += ctrl.ap_idle.eq(1)
                with m.If(ctrl.ap_start):
                    m.d.sync += [bad_arg.eq(bad), cycles.eq(0), retired.eq(0),
                                 words.eq(arg["program_words"][:28])]
                    m.d.sync += [base[n].eq(arg[n]) for n in base]
                    with m.If(bad):
                        m.next = "DONE"
                    with m.Else():
                        m.d.comb += fetcher.start.eq(1)
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += [cycles.eq(cycles + 1),
                             retired.eq(retired + sum(core.retire[i]
                                                      for i in range(len(core.retire))))]
                finished = (~fetcher.busy & core.idle & fbridge.idle
                            & ((retired == words) | core.error))
                with m.If(finished):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [ctrl.ap_done.eq(1), ctrl.ap_ready.eq(1)]
                m.next = "IDLE"
        return m
