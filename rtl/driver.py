"""The host side of the kernel (:mod:`rtl.kernel`): a compiled :class:`~hwsim.program.Program`
and its input tensors in, the output tensors out, through the Vitis ``ap_ctrl_hs`` control
registers (:mod:`rtl.axilite`) and device memory.

One run (:meth:`KernelDriver.run`):

1. the device-memory images (:func:`memory_images`): the command words
   (:meth:`Program.binary`) at ``layout.program`` and the program's DRAM image
   (:meth:`Program.dram_image`) at ``layout.data``, the base its LOAD and STORE addresses are
   relative to; with ``dram.channels = N > 1`` the image split into one image per channel
   (:func:`channel_images`, by :func:`hwsim.dram.channel_map`), channel ``c``'s at
   ``layout.data[c]``, the base the kernel's ``m_axi_ch<c>`` adds to its channel addresses;
2. the register writes (:func:`register_writes`): the arguments of
   :func:`rtl.kernel.kernel_args` (``data`` or ``data0`` .. ``data{N-1}``), low word then high
   word, then ``ap_start``;
3. wait for ``ap_done``: polling the control register (it is clear-on-read, so the read that
   sees it also clears it), or the interrupt (GIE and IER's ``ap_done`` bit set before the
   start, ISR cleared after);
4. the status and cycle registers, and the DRAM image read back (each channel's buffer, put
   back together by :func:`join_channels`); the outputs are :meth:`Program.read_outputs` of it.

On a board each channel's buffer is its own XRT buffer in the memory bank its master is linked
to (``connectivity.cfg`` of :mod:`rtl.package`: ``data<c>`` on ``DDR[c]``); a
:class:`DeviceLayout` holds their device addresses. The lookup engine's master
(``m_axi_lk``) reads its tables at hwsim's addresses in one address space, which an image
interleaved over several channel buffers is not: the driver runs lookup programs on kernels of
one DRAM channel only.

The driver talks to the kernel only through a :class:`Transport`: four coroutines, 32-bit
register accesses on ``s_axi_control`` and byte accesses to device memory at device
addresses. :class:`CocotbTransport` is the simulation's (``cocotbext.axi``'s
``AxiLiteMaster`` and one ``AxiRam`` per memory bank; ``tests/rtl/test_driver_cocotb.py``). A
board transport is not part of this module: none has been run, as no board is available. On
an Alveo/VCU1525 card with XRT's Python binding it would be, **untested**, a compute unit
opened for exclusive register access (an ``ap_ctrl_hs`` kernel allows
``read_register``/``write_register`` only then) and a buffer object per image, each allocated
in the bank of its argument (``kernel.group_id(index)``), found by device address::

    class XrtTransport:                          # a sketch: never run on a board
        def __init__(self, device, uuid, bos):
            self.cu = pyxrt.kernel(device, uuid, "satmem_kernel",
                                   pyxrt.kernel.cu_access_mode.exclusive)
            self.bos = bos                       # the program's and each channel's buffer
        def _bo(self, addr):
            return next(bo for bo in self.bos if bo.address() <= addr < bo.address() + bo.size())
        async def write_reg(self, offset, value):
            self.cu.write_register(offset, value)
        async def read_reg(self, offset):
            return self.cu.read_register(offset)
        async def write_mem(self, addr, data):
            bo = self._bo(addr)
            bo.write(data, addr - bo.address())
            bo.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, len(data),
                    addr - bo.address())
        async def read_mem(self, addr, nbytes):
            bo = self._bo(addr)
            bo.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, nbytes,
                    addr - bo.address())
            return bytes(bo.read(nbytes, addr - bo.address()))

with buffers of :func:`image_sizes` bytes (4 KiB aligned, as XRT allocates), the layout
``DeviceLayout(program=bo_program.address(), data=tuple(bo.address() for bo in bo_channels))``
(one channel: ``DeviceLayout.pack(program, base=bo.address())`` in one buffer) and
``asyncio.run(KernelDriver(XrtTransport(...), config).run(program, values, layout))``. The
driver polls with back-to-back reads; a board transport may sleep in ``read_reg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.dram import channel_interleave, channel_map
from hwsim.program import Program

from .axilite import CTRL, CYCLES, GIE, IER, ISR, STATUS, STATUS_BITS
from .kernel import MAX_WORDS, data_args, kernel_args

__all__ = ["AP_DONE", "AP_IDLE", "AP_START", "PAGE", "CocotbTransport", "DeviceLayout",
           "InterruptTransport", "KernelDriver", "KernelError", "KernelRun", "KernelTimeoutError",
           "Transport", "channel_images", "image_sizes", "join_channels", "memory_images",
           "register_writes", "status_errors"]

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


def _channel_chunks(nbytes: int, config: AcceleratorConfig):
    """The image's interleave chunks (``g`` bytes each, the last one padded), the channel of
    each (:func:`hwsim.dram.channel_map` of its first byte) and ``g``; checks that each
    channel's chunks follow one another in it, so a channel's image is its chunks in order."""
    g = channel_interleave(config)
    chunks = -(-nbytes // g)
    ch, local = channel_map(np.arange(chunks, dtype=np.int64) * g, config)
    for c in range(config.dram.channels):
        mine = local[ch == c]
        assert (mine == np.arange(mine.size) * g).all(), "hwsim's channel map changed"
    return chunks, ch, g


def image_sizes(program: Program, config: AcceleratorConfig | None = None) -> dict[str, int]:
    """Bytes of each device-memory image of ``program``, by the kernel argument that points at
    it: ``program`` (the command words) and ``data``, or ``data0`` .. with several DRAM
    channels (their shares of the DRAM image, :func:`channel_images`). What a board host
    allocates (XRT rounds each buffer up to 4 KiB)."""
    sizes = {"program": len(program) * isa.WORD_BYTES}
    n = 1 if config is None else config.dram.channels
    if n == 1:
        return {**sizes, "data": program.dram_bytes}
    chunks, ch, g = _channel_chunks(program.dram_bytes, config)
    counts = np.bincount(ch, minlength=n)
    return {**sizes, **{name: int(counts[c]) * g for c, name in enumerate(data_args(n))}}


def channel_images(image: np.ndarray, config: AcceleratorConfig) -> list[np.ndarray]:
    """A DRAM image (bytes from address 0) split over ``config.dram.channels`` channels as
    hwsim's DRAM maps it (:func:`hwsim.dram.channel_map`: byte ``a`` is byte ``a // g // N * g +
    a % g`` of channel ``a // g % N``): one uint8 array per channel, a whole number of
    ``g``-byte chunks (the image's last chunk padded with zeros; a channel no byte maps to
    gets an empty array). One channel: the image itself."""
    image = np.asarray(image, np.uint8).reshape(-1)
    if config.dram.channels == 1:
        return [image.copy()]
    chunks, ch, g = _channel_chunks(image.size, config)
    rows = np.zeros(chunks * g, np.uint8)
    rows[:image.size] = image
    rows = rows.reshape(chunks, g)
    return [rows[ch == c].reshape(-1) for c in range(config.dram.channels)]


def join_channels(parts, config: AcceleratorConfig, nbytes: int) -> np.ndarray:
    """The first ``nbytes`` of the DRAM image from its channels' images (the inverse of
    :func:`channel_images`; each part at least as long as :func:`channel_images` makes it)."""
    if config.dram.channels == 1:
        return np.asarray(parts[0], np.uint8).reshape(-1)[:nbytes].copy()
    chunks, ch, g = _channel_chunks(nbytes, config)
    rows = np.empty((chunks, g), np.uint8)
    for c in range(config.dram.channels):
        mine = int((ch == c).sum())
        part = np.asarray(parts[c], np.uint8).reshape(-1)
        if part.size < mine * g:
            raise ValueError(f"channel {c}'s image has {part.size} bytes, the DRAM image's "
                             f"{nbytes} put {mine * g} there")
        rows[ch == c] = part[:mine * g].reshape(mine, g)
    return rows.reshape(-1)[:nbytes]


@dataclass(frozen=True)
class DeviceLayout:
    """Where one run's images lie in device memory.

    Parameters
    ----------
    program : int
        Device address of the first command word, a multiple of 16.
    data : int or tuple of int
        The base of the program's DRAM addresses, a multiple of 4 KiB; the DRAM image
        (``program.dram_bytes`` bytes) starts here. For a kernel of ``N > 1`` DRAM channels a
        tuple of ``N`` such bases, channel ``c``'s image (:func:`channel_images`) at
        ``data[c]`` (on a board: in channel ``c``'s memory bank).
    tables : int, optional
        The lookup engine's table base (a kernel with ``lookup``), a multiple of 4 KiB;
        default ``data`` (hwsim's one address space; one channel only).

    Raises
    ------
    ValueError
        An address that is negative, beyond 64 bits or misaligned; a tuple of fewer than two
        bases.
    """

    program: int
    data: int | tuple[int, ...]
    tables: int | None = None

    def __post_init__(self):
        if isinstance(self.data, tuple) and len(self.data) < 2:
            raise ValueError(f"data must be one base, or a tuple of one per DRAM channel (at "
                             f"least two), not {self.data!r}")
        named = [("program", self.program, isa.WORD_BYTES), ("tables", self.tables, PAGE)]
        if isinstance(self.data, tuple):
            named += [(f"data[{c}]", v, PAGE) for c, v in enumerate(self.data)]
        else:
            named.append(("data", self.data, PAGE))
        for name, value, align in named:
            if value is None and name == "tables":
                continue
            if not isinstance(value, int) or not 0 <= value < _ADDR_LIMIT:
                raise ValueError(f"{name} must be a 64-bit device address, not {value!r}")
            if value % align:
                raise ValueError(f"{name} must be a multiple of {align}, not {value:#x}")

    @property
    def bases(self) -> tuple[int, ...]:
        """The DRAM bases, one per channel (one with one channel)."""
        return self.data if isinstance(self.data, tuple) else (self.data,)

    @property
    def channels(self) -> int:
        return len(self.bases)

    @property
    def tables_base(self) -> int:
        """``tables``, by default ``data``.

        Raises
        ------
        ValueError
            No ``tables`` with several channels (no one address space to default to).
        """
        if self.tables is not None:
            return self.tables
        if self.channels > 1:
            raise ValueError("tables has no default with several DRAM channels: the lookup "
                             "engine's tables are in one address space, the DRAM image is "
                             "split over the channels")
        return self.data

    @classmethod
    def pack(cls, program: Program, base: int = 0,
             config: AcceleratorConfig | None = None) -> DeviceLayout:
        """The command words at ``base`` (4 KiB aligned), the DRAM image from the next 4 KiB
        boundary after them: all in one buffer of :meth:`size` bytes. With a ``config`` of
        several DRAM channels, each channel's image from the next 4 KiB boundary after the
        previous one (one memory behind every master: a simulation's, not a board's banks)."""
        if base % PAGE:
            raise ValueError(f"base must be a multiple of {PAGE}, not {base:#x}")
        at, bases = base, []
        for name, nbytes in image_sizes(program, config).items():
            if name != "program":
                bases.append(at)
            at = -(-(at + nbytes) // PAGE) * PAGE
        return cls(program=base, data=bases[0] if len(bases) == 1 else tuple(bases))

    def images(self, program: Program,
               config: AcceleratorConfig | None = None) -> list[tuple[str, int, int]]:
        """``[(argument, device address, bytes)]`` of the images (:func:`image_sizes`).

        Raises
        ------
        ValueError
            The layout's DRAM bases are not one per channel of ``config``.
        """
        n = 1 if config is None else config.dram.channels
        if n != self.channels:
            raise ValueError(f"the layout has {self.channels} DRAM base(s), the kernel's "
                             f"config {n} DRAM channel(s): one base per channel (pass the "
                             f"config for several)")
        sizes = image_sizes(program, config)
        return [(name, addr, sizes[name])
                for name, addr in zip(("program", *data_args(n)), (self.program, *self.bases),
                                      strict=True)]

    def size(self, program: Program, config: AcceleratorConfig | None = None) -> int:
        """Bytes from the lowest to the end of the highest of the images."""
        spans = [(addr, addr + n) for _, addr, n in self.images(program, config)]
        return max(e for _, e in spans) - min(a for a, _ in spans)


def memory_images(program: Program, values: dict[str, np.ndarray], layout: DeviceLayout,
                  config: AcceleratorConfig | None = None) -> list[tuple[int, bytes]]:
    """``[(device address, bytes)]``: the command words and the DRAM image with the inputs
    ``values`` (every name of ``program.inputs``) in place; with a ``config`` of several DRAM
    channels one image per channel (:func:`channel_images`) at its base.

    Raises
    ------
    ValueError
        Missing inputs, a tensor of the wrong shape, a layout without one base per channel,
        or images that overlap.
    """
    places = layout.images(program, config)
    dram = program.dram_image(values)
    parts = [dram] if config is None else channel_images(dram, config)
    out = [(layout.program, program.binary())]
    out += [(addr, part.tobytes()) for (_, addr, _), part in zip(places[1:], parts, strict=True)]
    spans = sorted((addr, addr + len(data), name)
                   for (name, _, _), (addr, data) in zip(places, out, strict=True) if data)
    for (a0, e0, n0), (a1, _, n1) in zip(spans, spans[1:], strict=False):
        if a1 < e0:
            raise ValueError(f"the {n0} image's {e0 - a0} bytes at {a0:#x} overlap the {n1} "
                             f"image at {a1:#x}")
    return out


def register_writes(layout: DeviceLayout, words: int, *, lookup: bool) -> list[tuple[int, int]]:
    """``[(offset, 32-bit value)]``: every argument of :func:`rtl.kernel.kernel_args` (for as
    many DRAM channels as the layout has bases), low word then high word, then ``ap_start``.

    Raises
    ------
    ValueError
        ``words`` not below :data:`rtl.kernel.MAX_WORDS`; ``lookup`` with several channels and
        no ``layout.tables``.
    """
    if not 0 <= words < MAX_WORDS:
        raise ValueError(f"program_words must be below {MAX_WORDS}, not {words}")
    value = {"program": layout.program, "program_words": words,
             **dict(zip(data_args(layout.channels), layout.bases, strict=True))}
    if lookup:
        value["tables"] = layout.tables_base
    out = []
    for arg in kernel_args(lookup, layout.channels):
        v = value[arg.name]
        out += [(arg.offset, v & 0xFFFFFFFF), (arg.offset + 4, v >> 32)]
    return out + [(CTRL, AP_START)]


@dataclass(frozen=True)
class KernelRun:
    """What one run left: the outputs (by name, as :meth:`Program.read_outputs`), the status
    and cycle registers, the whole DRAM image read back (its channels' images put back
    together) and where it was."""

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
    config : AcceleratorConfig, optional
        The kernel's config; needed (for its DRAM channels and their interleave) when
        ``dram.channels > 1``. None: a kernel of one DRAM channel.
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
    ValueError
        ``lookup`` with several DRAM channels (see the module docstring), or a bad
        ``max_polls``.
    """

    def __init__(self, transport: Transport, config: AcceleratorConfig | None = None, *,
                 lookup: bool = False, interrupt: bool = False, max_polls: int = 1_000_000):
        need = InterruptTransport if interrupt else Transport
        if not isinstance(transport, need):
            raise TypeError(f"transport must implement {need.__name__}, not {transport!r}")
        if config is not None and not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        if not isinstance(max_polls, int) or max_polls < 1:
            raise ValueError(f"max_polls must be a positive integer, not {max_polls!r}")
        if lookup and config is not None and config.dram.channels > 1:
            raise ValueError(f"the driver runs lookup programs on kernels of one DRAM channel "
                             f"only, not {config.dram.channels}: the lookup engine reads its "
                             f"tables in one address space, the DRAM image is split over the "
                             f"channels' buffers")
        self.transport, self.config, self.lookup = transport, config, lookup
        self.interrupt, self.max_polls = interrupt, max_polls

    async def load(self, program: Program, values: dict[str, np.ndarray],
                   layout: DeviceLayout | None = None) -> DeviceLayout:
        """Write the images (:func:`memory_images`); returns the layout (default
        :meth:`DeviceLayout.pack` at 0)."""
        layout = layout if layout is not None else DeviceLayout.pack(program,
                                                                     config=self.config)
        for addr, data in memory_images(program, values, layout, self.config):
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
        layout.images(program, self.config)  # one base per channel, before anything is written
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
        parts = []
        for _, addr, nbytes in layout.images(program, self.config)[1:]:
            raw = await t.read_mem(addr, nbytes) if nbytes else b""
            parts.append(np.frombuffer(bytes(raw), np.uint8))
        dram = (join_channels(parts, self.config, program.dram_bytes) if self.config is not None
                else parts[0].copy())
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
    memory : cocotbext.axi.AxiRam, or a sequence of ``(device address, AxiRam)``
        The device memory behind the kernel's masters (the backdoor: no simulated time): one
        memory at device address 0, or one per memory bank (a kernel of several DRAM channels:
        one ``AxiRam`` per channel master), each at its own device address, a multiple of its
        size (an ``AxiRam`` takes AXI addresses modulo its size, so a master's device
        addresses land at the same bytes). Any object with ``write(addr, data)``,
        ``read(addr, n)`` and ``size`` serves.
    interrupt, clock : cocotb handles, optional
        The ``interrupt`` port and ``ap_clk``, for :meth:`wait_interrupt`.
    max_cycles : int, default 1_000_000
        :meth:`wait_interrupt`'s limit.

    Raises
    ------
    ValueError
        A bank whose address is not a multiple of its size.
    """

    def __init__(self, control, memory, interrupt=None, clock=None, max_cycles: int = 1_000_000):
        banks = list(memory) if isinstance(memory, (list, tuple)) else [(0, memory)]
        for addr, ram in banks:
            if addr % ram.size:
                raise ValueError(f"a memory bank's device address must be a multiple of its "
                                 f"size ({ram.size:#x}), not {addr:#x}")
        self.control, self.banks = control, sorted(banks, key=lambda b: b[0])
        self.memory = self.banks[0][1]
        self.irq, self.clock, self.max_cycles = interrupt, clock, max_cycles

    def _bank(self, addr: int, nbytes: int):
        for base, ram in self.banks:
            if base <= addr and addr + nbytes <= base + ram.size:
                return ram, addr - base
        raise ValueError(f"no memory bank holds the {nbytes} bytes at device address {addr:#x}")

    async def write_reg(self, offset: int, value: int) -> None:
        await self.control.write_dword(offset, value)

    async def read_reg(self, offset: int) -> int:
        return await self.control.read_dword(offset)

    async def write_mem(self, addr: int, data: bytes) -> None:
        ram, at = self._bank(addr, len(data))
        ram.write(at, data)

    async def read_mem(self, addr: int, nbytes: int) -> bytes:
        ram, at = self._bank(addr, nbytes)
        return ram.read(at, nbytes)

    async def wait_interrupt(self) -> bool:
        if self.irq is None or self.clock is None:
            raise RuntimeError("wait_interrupt needs the interrupt and clock handles")
        from cocotb.triggers import RisingEdge  # only inside a simulation

        for _ in range(self.max_cycles):
            if self.irq.value.is_resolvable and int(self.irq.value):
                return True
            await RisingEdge(self.clock)
        return False
