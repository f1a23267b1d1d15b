"""The ``s_axi_control`` slave of the host-controlled kernel: an AXI4-Lite register file with
the Vitis ``ap_ctrl_hs`` control register (AMD UG1393/UG1700, the register map Vitis HLS
generates).

Register map (32-bit registers, byte addresses; COR clear on read, TOW toggle on write, COH
clear on handshake)::

    0x00  control   bit 0 ap_start (R/W/COH), bit 1 ap_done (R/COR), bit 2 ap_idle (R),
                    bit 3 ap_ready (R/COR), bit 7 auto_restart (R/W)
    0x04  GIE       bit 0 global interrupt enable (R/W)
    0x08  IER       bit 0 ap_done, bit 1 ap_ready interrupt enable (R/W)
    0x0C  ISR       bit 0 ap_done, bit 1 ap_ready interrupt status (R/TOW)
    0x10  args      64 bits each, low word then high word (R/W), ``ARG_STRIDE`` apart: up
                    to :data:`MAX_ARGS` (126) below 0x400
    0x400 status    read only (:data:`STATUS_BITS`)
    0x408 cycles    64 bits, low word then high word (read only): the last run's cycles

The arguments come first and as many as a kernel has (a config of ``N`` DRAM channels has one
base per channel, :func:`rtl.kernel.kernel_args`); the two read-only registers sit above the
whole argument window, so their offsets are the same for every kernel. Vitis only fixes 0x00
to 0x0C and the arguments from 0x10; kernel.xml lists the arguments, not these two.

``interrupt`` is ``GIE & (ISR[0] | ISR[1])``; an ISR bit is set when its event happens while
its IER bit is set.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ADDR_BITS", "ARG_BASE", "ARG_STRIDE", "CTRL", "CYCLES", "GIE", "IER", "ISR",
           "MAX_ARGS", "STATUS", "STATUS_BITS", "AxiLiteControl", "axilite_slave_members"]

ADDR_BITS = 12  # the 4 KiB range kernel.xml declares for s_axi_control
CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
ARG_BASE, ARG_STRIDE = 0x10, 0x08
STATUS, CYCLES = 0x400, 0x408
MAX_ARGS = (STATUS - ARG_BASE) // ARG_STRIDE  # 126: every argument decodes below 0x400
STATUS_BITS = {"command_error": 0, "axi_error": 1, "fetch_error": 2, "bad_argument": 3}
"""Bits of the status register: a command the machine does not run was dropped (the
controller's flag, sticky until reset); an AXI response other than OKAY on a data master
(sticky until reset); the same on the command fetcher's master (this run); an argument the
kernel refused, so the run did nothing (this run; :mod:`rtl.kernel` says which)."""


def axilite_slave_members(prefix: str = "s_axi_control",
                          addr_bits: int = ADDR_BITS) -> dict[str, wiring.Member]:
    """The signature members of an AXI4-Lite slave with 32-bit data, flat and named
    ``<prefix>_<signal>`` (what ``cocotbext.axi.AxiLiteBus.from_prefix`` and Vivado's interface
    inference expect). No ``AxPROT`` (ignored by the slave, optional in the protocol's use
    here)."""
    sigs = [("awaddr", In, addr_bits), ("awvalid", In, 1), ("awready", Out, 1),
            ("wdata", In, 32), ("wstrb", In, 4), ("wvalid", In, 1), ("wready", Out, 1),
            ("bresp", Out, 2), ("bvalid", Out, 1), ("bready", In, 1),
            ("araddr", In, addr_bits), ("arvalid", In, 1), ("arready", Out, 1),
            ("rdata", Out, 32), ("rresp", Out, 2), ("rvalid", Out, 1), ("rready", In, 1)]
    return {f"{prefix}_{name}": flow(width) for name, flow, width in sigs}


class AxiLiteControl(wiring.Component):
    """The control registers of an ``ap_ctrl_hs`` kernel behind an AXI4-Lite slave.

    Parameters
    ----------
    nargs : int
        Number of 64-bit arguments (at most :data:`MAX_ARGS`), at ``ARG_BASE + i *
        ARG_STRIDE``.

    Members
    -------
    s_axi_control_* : :func:`axilite_slave_members`
        The slave. One write in flight (AW, then W, then B) and one read (AR, then R): an
        access takes three cycles plus the master's. OKAY on every response; addresses
        outside the map read 0 and ignore writes.
    ap_start : Out(1)
        The control register's bit 0: the host started a run; held until ``ap_ready``.
    ap_done, ap_ready : In(1)
        One-cycle pulses from the kernel: the run finished and its arguments may change.
        ``ap_ready`` clears ``ap_start`` unless ``auto_restart`` is set.
    ap_idle : In(1)
        The kernel is not running.
    args : Out(64) each, ``arg0`` ..
        The argument registers.
    status : In(8)
        Read at :data:`STATUS`.
    cycles : In(64)
        Read at :data:`CYCLES`.
    interrupt : Out(1)
        Active high, registered.

    Raises
    ------
    ValueError
        If ``nargs`` is not an integer from 0 to :data:`MAX_ARGS`.
    """

    def __init__(self, nargs: int):
        if not isinstance(nargs, int) or isinstance(nargs, bool) or not 0 <= nargs <= MAX_ARGS:
            raise ValueError(f"nargs must be an integer from 0 to {MAX_ARGS}, not {nargs!r}")
        self.nargs = nargs
        super().__init__({
            **axilite_slave_members(),
            "ap_start": Out(1), "ap_done": In(1), "ap_ready": In(1), "ap_idle": In(1),
            **{f"arg{i}": Out(64) for i in range(nargs)},
            "status": In(8), "cycles": In(64), "interrupt": Out(1),
        })

    def bus(self, name: str):
        return getattr(self, f"s_axi_control_{name}")

    def elaborate(self, platform):
        m = Module()
        s = self.bus
        start, done, ready, restart = Signal(), Signal(), Signal(), Signal()
        gie, ier, isr = Signal(), Signal(2), Signal(2)
        m.d.comb += [self.ap_start.eq(start), self.interrupt.eq(gie & isr.any())]
        m.d.comb += [s("bresp").eq(0), s("rresp").eq(0)]

        # ---- writes: AW, then W, then B
        w_state = Signal(2)  # 0 address, 1 data, 2 response
        w_addr = Signal(8)  # bits [9:2]: every writable register is under 0x400
        w_high = Signal()  # the address is outside the writable part of the map
        m.d.comb += [s("awready").eq(w_state == 0), s("wready").eq(w_state == 1),
                     s("bvalid").eq(w_state == 2)]
        with m.If((w_state == 0) & s("awvalid")):
            m.d.sync += [w_addr.eq(s("awaddr")[2:10]), w_high.eq(s("awaddr")[10:] != 0),
                         w_state.eq(1)]
        w_hs = (w_state == 1) & s("wvalid")
        with m.If(w_hs):
            m.d.sync += w_state.eq(2)
        with m.If((w_state == 2) & s("bready")):
            m.d.sync += w_state.eq(0)

        def written(reg: int):
            return w_hs & ~w_high & (w_addr == reg >> 2)

        def merge(old, word_lanes: int = 4):
            """``old`` with the strobed bytes of the write data."""
            return Cat(*(Mux(s("wstrb")[i], s("wdata")[8 * i:8 * i + 8], old[8 * i:8 * i + 8])
                         for i in range(word_lanes)))

        wdata0 = s("wdata")[:8]
        strobe0 = s("wstrb")[0]
        args = [getattr(self, f"arg{i}") for i in range(self.nargs)]
        for i, arg in enumerate(args):
            for half in range(2):
                with m.If(written(ARG_BASE + i * ARG_STRIDE + 4 * half)):
                    m.d.sync += arg[32 * half:32 * half + 32].eq(
                        merge(arg[32 * half:32 * half + 32]))
        with m.If(written(GIE) & strobe0):
            m.d.sync += gie.eq(wdata0[0])
        with m.If(written(IER) & strobe0):
            m.d.sync += ier.eq(wdata0[:2])

        # ---- the control register's bits and the interrupt status
        with m.If(written(CTRL) & strobe0):
            m.d.sync += restart.eq(wdata0[7])
        with m.If(written(CTRL) & strobe0 & wdata0[0]):
            m.d.sync += start.eq(1)
        with m.Elif(self.ap_ready):
            m.d.sync += start.eq(restart)
        isr_next = Signal(2)
        m.d.comb += isr_next.eq(isr ^ Mux(written(ISR) & strobe0, wdata0[:2], 0))
        m.d.sync += isr.eq(isr_next | (ier & Cat(self.ap_done, self.ap_ready)))

        # ---- reads: AR, then R (the data registered on the AR handshake)
        r_valid, r_data = Signal(), Signal(32)
        m.d.comb += [s("arready").eq(~r_valid), s("rvalid").eq(r_valid),
                     s("rdata").eq(r_data)]
        with m.If(r_valid & s("rready")):
            m.d.sync += r_valid.eq(0)
        ar_hs = ~r_valid & s("arvalid")
        raddr = s("araddr")
        ctrl_read = ar_hs & (raddr[2:] == CTRL >> 2)
        with m.If(ar_hs):
            m.d.sync += r_valid.eq(1)
            regs = {CTRL: Cat(start, done, self.ap_idle, ready, 0, 0, 0, restart),
                    GIE: gie, IER: ier, ISR: isr, STATUS: self.status,
                    CYCLES: self.cycles[:32], CYCLES + 4: self.cycles[32:]}
            for i, arg in enumerate(args):
                regs[ARG_BASE + i * ARG_STRIDE] = arg[:32]
                regs[ARG_BASE + i * ARG_STRIDE + 4] = arg[32:]
            with m.Switch(raddr[2:]):
                for addr, value in regs.items():
                    with m.Case(addr >> 2):
                        m.d.sync += r_data.eq(value)
                with m.Default():
                    m.d.sync += r_data.eq(0)
        # ap_done and ap_ready are clear-on-read; an event on the read's cycle stays set
        with m.If(self.ap_done):
            m.d.sync += done.eq(1)
        with m.Elif(ctrl_read):
            m.d.sync += done.eq(0)
        with m.If(self.ap_ready):
            m.d.sync += ready.eq(1)
        with m.Elif(ctrl_read):
            m.d.sync += ready.eq(0)
        return m
