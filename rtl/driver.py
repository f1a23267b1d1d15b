"""The host side of the kernel (:mod:`rtl.kernel`): a compiled :class:`~hwsim.program.Program`
and its input tensors in, the output tensors out, through the Vitis ``ap_ctrl_hs`` control
registers (:mod:`rtl.axilite`) and device memory.

One run (:meth:`KernelDriver.run`):

1. the device-memory images (:func:`memory_images`): the command words
   (:meth:`Program.binary`) at ``layout.program`` and the program's DRAM image
   (:meth:`Program.dram_image`) at ``layout.data``, the base its LOAD and STORE addresses are
   relative to;
2. the register writes (:func:`register_writes`): the arguments of
   :func:`rtl.kernel.kernel_args`, low word then high word, then ``ap_start``;
3. wait for ``ap_done``: polling the control register (it is clear-on-read, so the read that
   sees it also clears it), or the interrupt (GIE and IER's ``ap_done`` bit set before the
   start, ISR cleared after);
4. the status and cycle registers, and the DRAM image read back; the outputs are
   :meth:`Program.read_outputs` of it.

One data master only: the image is written unsplit at ``layout.data``, as a kernel of a
config with one DRAM channel reads it. A config with ``dram.channels > 1`` has a master per
channel (``m_axi_gmem_ch<c>``, :mod:`rtl.channels`), each addressed with its own channel's
addresses (:func:`hwsim.dram.channel_map`) but all offset by the one ``data`` argument; on a
board each channel is its own DDR4 bank at its own device addresses, so such a kernel needs a
base argument per channel before a driver can place each channel's share of the image.

The driver talks to the kernel only through a :class:`Transport`: four coroutines, 32-bit
register accesses on ``s_axi_control`` and byte accesses to device memory at device
addresses. :class:`CocotbTransport` is the simulation's (``cocotbext.axi``'s
``AxiLiteMaster`` and ``AxiRam``; ``tests/rtl/test_driver_cocotb.py``). A board transport is
not part of this module: none has been run, as no board is available. On an Alveo/VCU1525
card with XRT's Python binding it would be, **untested**, a compute unit opened for exclusive
register access (an ``ap_ctrl_hs`` kernel allows ``read_register``/``write_register`` only
then) and one buffer object holding both images::

    class XrtTransport:                          # a sketch: never run on a board
        def __init__(self, device, uuid, bo):
            self.cu = pyxrt.kernel(device, uuid, "satmem_kernel",
                                   pyxrt.kernel.cu_access_mode.exclusive)
            self.bo, self.base = bo, bo.address()
        async def write_reg(self, offset, value):
            self.cu.write_register(offset, value)
        async def read_reg(self, offset):
            return self.cu.read_register(offset)
        async def write_mem(self, addr, data):
            self.bo.write(data, addr - self.base)
            self.bo.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, len(data),
                         addr - self.base)
        async def read_mem(self, addr, nbytes):
            self.bo.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, nbytes,
                         addr - self.base)
            return bytes(self.bo.read(nbytes, addr - self.base))

with the layout :meth:`DeviceLayout.pack` ``(program, base=bo.address())`` (a buffer of
:meth:`DeviceLayout.size` bytes, 4 KiB aligned as XRT allocates) and
``asyncio.run(KernelDriver(XrtTransport(...)).run(program, values, layout))``. The driver polls
with back-to-back reads; a board transport may sleep in ``read_reg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from hwsim import isa
from hwsim.program import Program

from .axilite import CTRL, CYCLES, GIE, IER, ISR, STATUS, STATUS_BITS
from .kernel import MAX_WORDS, kernel_args

__all__ = ["AP_DONE", "AP_IDLE", "AP_START", "PAGE", "CocotbTransport", "DeviceLayout",
           "InterruptTransport", "KernelDriver", "KernelError", "KernelRun", "KernelTimeoutError",
           "Transport", "memory_images", "register_writes", "status_errors"]

AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
PAGE = 4096  # the data and tables bases' alignment (rtl.kernel)
_ADDR_LIMIT = 1 << 64


@runtime_checkable
class Transport(Protocol):
    """How the driver reaches one kernel. Every method is a coroutine, so a simulation can
    advance its clock inside them; a board transport may simply block.

    ``write_reg``/``read_reg``: one 32-bit access at a byte ``offset`` of ``s_axi_control``.
    ``write_mem``/``read_mem``: bytes at a device address, as the kernel's AXI4 masters see
    it (the program, data and tables bases are such addresses).
    """

    async def write_reg(self, offset: int, value: int) -> None: ...

    async def read_reg(self, offset: int) -> int: ...

    async def write_mem(self, addr: int, data: bytes) -> None: ...

    async def read_mem(self, addr: int, nbytes: int) -> bytes: ...


@runtime_checkable
class InterruptTransport(Transport, Protocol):
    """A :class:`Transport` that can also wait for the kernel's ``interrupt`` line:
    ``wait_interrupt()`` returns True once it is high, False when the transport's own time
    limit passed first."""

    async def wait_interrupt(self) -> bool: ...


class KernelError(RuntimeError):
    """The run ended with status bits set (:func:`status_errors`); ``run`` is its
    :class:`KernelRun`, outputs included (what the machine wrote before it stopped)."""

    def __init__(self, run: KernelRun):
        self.run = run
        super().__init__(f"the kernel ended the run with status {run.status:#x} "
                         f"({', '.join(run.errors)})")


class KernelTimeoutError(TimeoutError):
    """``ap_done`` did not come within the driver's (or the transport's) limit."""


def status_errors(status: int) -> tuple[str, ...]:
    """The names of the set bits of the status register (:data:`rtl.axilite.STATUS_BITS`);
    unnamed bits as ``"bit<i>"``."""
    named = {bit: name for name, bit in STATUS_BITS.items()}
    return tuple(named.get(i, f"bit{i}") for i in range(32) if status >> i & 1)


@dataclass(frozen=True)
class DeviceLayout:
    """Where one run's images lie in device memory.

    Parameters
    ----------
    program : int
        Device address of the first command word, a multiple of 16.
    data : int
        The base of the program's DRAM addresses, a multiple of 4 KiB; the DRAM image
        (``program.dram_bytes`` bytes) starts here.
    tables : int, optional
        The lookup engine's table base (a kernel with ``lookup``), a multiple of 4 KiB;
        default ``data`` (hwsim's one address space).

    Raises
    ------
    ValueError
        An address that is negative, beyond 64 bits or misaligned.
    """

    program: int
    data: int
    tables: int | None = None

    def __post_init__(self):
        for name, align in (("program", isa.WORD_BYTES), ("data", PAGE), ("tables", PAGE)):
            value = getattr(self, name)
            if value is None and name == "tables":
                continue
            if not isinstance(value, int) or not 0 <= value < _ADDR_LIMIT:
                raise ValueError(f"{name} must be a 64-bit device address, not {value!r}")
            if value % align:
                raise ValueError(f"{name} must be a multiple of {align}, not {value:#x}")

    @property
    def tables_base(self) -> int:
        return self.data if self.tables is None else self.tables

    @classmethod
    def pack(cls, program: Program, base: int = 0) -> DeviceLayout:
        """The command words at ``base`` (4 KiB aligned), the DRAM image from the next 4 KiB
        boundary after them: both in one buffer of :meth:`size` bytes."""
        if base % PAGE:
            raise ValueError(f"base must be a multiple of {PAGE}, not {base:#x}")
        end = base + len(program) * isa.WORD_BYTES
        return cls(program=base, data=-(-end // PAGE) * PAGE)

    def size(self, program: Program) -> int:
        """Bytes from the lowest to the end of the highest of the two images."""
        lo = min(self.program, self.data)
        return max(self.program + len(program) * isa.WORD_BYTES,
                   self.data + program.dram_bytes) - lo


def memory_images(program: Program, values: dict[str, np.ndarray],
                  layout: DeviceLayout) -> list[tuple[int, bytes]]:
    """``[(device address, bytes)]``: the command words and the DRAM image with the inputs
    ``values`` (every name of ``program.inputs``) in place.

    Raises
    ------
    ValueError
        Missing inputs, a tensor of the wrong shape, or images that overlap.
    """
    words = program.binary()
    dram = program.dram_image(values).tobytes()
    if words and dram and (layout.program < layout.data + len(dram)
                           and layout.data < layout.program + len(words)):
        raise ValueError(f"the program's {len(words)} bytes at {layout.program:#x} overlap "
                         f"its DRAM image's {len(dram)} at {layout.data:#x}")
    return [(layout.program, words), (layout.data, dram)]


def register_writes(layout: DeviceLayout, words: int, *, lookup: bool) -> list[tuple[int, int]]:
    """``[(offset, 32-bit value)]``: every argument of :func:`rtl.kernel.kernel_args`, low
    word then high word, then ``ap_start``.

    Raises
    ------
    ValueError
        ``words`` not below :data:`rtl.kernel.MAX_WORDS`.
    """
    if not 0 <= words < MAX_WORDS:
        raise ValueError(f"program_words must be below {MAX_WORDS}, not {words}")
    value = {"program": layout.program, "program_words": words, "data": layout.data,
             "tables": layout.tables_base}
    out = []
    for arg in kernel_args(lookup):
        v = value[arg.name]
        out += [(arg.offset, v & 0xFFFFFFFF), (arg.offset + 4, v >> 32)]
    return out + [(CTRL, AP_START)]


@dataclass(frozen=True)
class KernelRun:
    """What one run left: the outputs (by name, as :meth:`Program.read_outputs`), the status
    and cycle registers, the whole DRAM image read back and where it was."""

    outputs: dict[str, np.ndarray] = field(repr=False)
    status: int
    cycles: int
    dram: np.ndarray = field(repr=False)
    layout: DeviceLayout

    @property
    def errors(self) -> tuple[str, ...]:
        return status_errors(self.status)


class KernelDriver:
    """Runs programs on one kernel through a :class:`Transport`.

    Parameters
    ----------
    transport : Transport
        An :class:`InterruptTransport` when ``interrupt``.
    lookup : bool, default False
        The kernel was built with the lookup engine (it then has the ``tables`` argument).
    interrupt : bool, default False
        Wait on the interrupt line instead of polling the control register.
    max_polls : int, default 1_000_000
        Control-register reads before :class:`KernelTimeoutError` (polling).

    Raises
    ------
    TypeError
        A transport without the methods, or without ``wait_interrupt`` when ``interrupt``.
    """

    def __init__(self, transport: Transport, *, lookup: bool = False, interrupt: bool = False,
                 max_polls: int = 1_000_000):
        need = InterruptTransport if interrupt else Transport
        if not isinstance(transport, need):
            raise TypeError(f"transport must implement {need.__name__}, not {transport!r}")
        if not isinstance(max_polls, int) or max_polls < 1:
            raise ValueError(f"max_polls must be a positive integer, not {max_polls!r}")
        self.transport, self.lookup, self.interrupt = transport, lookup, interrupt
        self.max_polls = max_polls

    async def load(self, program: Program, values: dict[str, np.ndarray],
                   layout: DeviceLayout | None = None) -> DeviceLayout:
        """Write the images (:func:`memory_images`); returns the layout (default
        :meth:`DeviceLayout.pack` at 0)."""
        layout = layout if layout is not None else DeviceLayout.pack(program)
        for addr, data in memory_images(program, values, layout):
            if data:
                await self.transport.write_mem(addr, data)
        return layout

    async def start(self, program: Program, layout: DeviceLayout) -> None:
        """Write the arguments and ``ap_start``.

        Raises
        ------
        RuntimeError
            The kernel is not idle (a run is in progress).
        """
        t = self.transport
        # this read also clears an ap_done a previous run left unread
        if not await t.read_reg(CTRL) & AP_IDLE:
            raise RuntimeError("the kernel is not idle: a run is in progress")
        await t.write_reg(GIE, int(self.interrupt))
        await t.write_reg(IER, int(self.interrupt))  # the ap_done interrupt only
        isr = await t.read_reg(ISR)
        if isr:
            await t.write_reg(ISR, isr)  # toggle-on-write: clear what is set
        for offset, value in register_writes(layout, len(program), lookup=self.lookup):
            await t.write_reg(offset, value)

    async def wait(self) -> None:
        """Until ``ap_done``.

        Raises
        ------
        KernelTimeoutError
        """
        t = self.transport
        if self.interrupt:
            if not await t.wait_interrupt():
                raise KernelTimeoutError("no interrupt within the transport's limit")
            await t.write_reg(ISR, await t.read_reg(ISR))
            await t.read_reg(CTRL)  # clear ap_done (clear-on-read)
            return
        for _ in range(self.max_polls):
            if await t.read_reg(CTRL) & AP_DONE:
                return
        raise KernelTimeoutError(f"no ap_done in {self.max_polls} reads of the control register")

    async def results(self, program: Program, layout: DeviceLayout) -> KernelRun:
        """The status and cycle registers and the DRAM image, read back."""
        t = self.transport
        status = await t.read_reg(STATUS)
        cycles = await t.read_reg(CYCLES) | await t.read_reg(CYCLES + 4) << 32
        raw = await t.read_mem(layout.data, program.dram_bytes) if program.dram_bytes else b""
        dram = np.frombuffer(bytes(raw), np.uint8).copy()
        return KernelRun(program.read_outputs(dram), status, cycles, dram, layout)

    async def run(self, program: Program, values: dict[str, np.ndarray],
                  layout: DeviceLayout | None = None, *, check: bool = True) -> KernelRun:
        """Load, start, wait and read back one program.

        Raises
        ------
        KernelError
            With ``check``, a run that ended with status bits set.
        KernelTimeoutError
        """
        layout = await self.load(program, values, layout)
        await self.start(program, layout)
        await self.wait()
        out = await self.results(program, layout)
        if check and out.status:
            raise KernelError(out)
        return out


class CocotbTransport:
    """The transport of a cocotb simulation of the kernel.

    Parameters
    ----------
    control : cocotbext.axi.AxiLiteMaster
        On ``s_axi_control``.
    memory : cocotbext.axi.AxiRam (or any object with ``write(addr, data)`` and ``read(addr,
        n)``)
        The device memory behind the kernel's masters (the backdoor: no simulated time).
    interrupt, clock : cocotb handles, optional
        The ``interrupt`` port and ``ap_clk``, for :meth:`wait_interrupt`.
    max_cycles : int, default 1_000_000
        :meth:`wait_interrupt`'s limit.
    """

    def __init__(self, control, memory, interrupt=None, clock=None, max_cycles: int = 1_000_000):
        self.control, self.memory = control, memory
        self.irq, self.clock, self.max_cycles = interrupt, clock, max_cycles

    async def write_reg(self, offset: int, value: int) -> None:
        await self.control.write_dword(offset, value)

    async def read_reg(self, offset: int) -> int:
        return await self.control.read_dword(offset)

    async def write_mem(self, addr: int, data: bytes) -> None:
        self.memory.write(addr, data)

    async def read_mem(self, addr: int, nbytes: int) -> bytes:
        return self.memory.read(addr, nbytes)

    async def wait_interrupt(self) -> bool:
        if self.irq is None or self.clock is None:
            raise RuntimeError("wait_interrupt needs the interrupt and clock handles")
        from cocotb.triggers import RisingEdge  # only inside a simulation

        for _ in range(self.max_cycles):
            if self.irq.value.is_resolvable and int(self.irq.value):
                return True
            await RisingEdge(self.clock)
        return False
