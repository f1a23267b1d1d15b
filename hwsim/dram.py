"""Off-chip DRAM timing: the ``fixed`` model of the RTL testbench and a banked model.

Both models take a list of requests in issue order (byte address, size, read or write) and return
the cycle each request was issued and the cycle it completed, in accelerator clock cycles
(``config.clock_mhz``), with cycle 0 the first cycle a request may issue.

``model == "fixed"`` (what :mod:`hwsim.units.dma` and the RTL DMA assume)
    A request occupies ``dram_request_cycles(size)`` issue slots (one while it fits a cycle's
    worth of peak bandwidth, proportionally more otherwise), requests issue back to back, and
    each completes ``config.dram_latency_cycles`` after its last issue slot::

        start[i]  = sum(slots[:i])
        finish[i] = start[i] + slots[i] - 1 + latency

    A LOAD of ``rows`` equal requests therefore takes ``cycles + 1`` unit cycles in
    :func:`hwsim.units.unit_cycles` (the extra cycle is the DMA's start cycle).

``model == "banked"``
    Channels, banks per channel and an open-page row buffer per bank. Addresses are mapped
    ``row : bank : column_hi : channel : column_lo`` from the most to the least significant
    bits, with ``column_lo`` an :data:`INTERLEAVE_BYTES` chunk (capped at the row size)::

        chunk   = addr // g                 g = min(INTERLEAVE_BYTES, row_bytes)
        channel = chunk % channels
        bank    = chunk // channels // (row_bytes // g) % banks
        row     = chunk // channels // (row_bytes // g) // banks

    so consecutive chunks rotate over the channels, a row of one bank holds ``row_bytes``
    of the stream and consecutive rows of a stream fall in consecutive banks. A request is
    split at chunk boundaries into row-buffer accesses. The front end issues up to
    ``dram.request_ports`` requests per cycle in order (its address ports: one AXI4 port per
    memory controller, say; any request on any port), with at most ``MAX_OUTSTANDING`` per port
    in flight (request ``i`` issues no earlier than the cycle after request ``i - P *
    MAX_OUTSTANDING`` completed, ``P`` the ports). Each access:

    - row hit: its column access may start once the row is open;
    - row miss (another row open, or none): the bank precharges and activates after its last
      data transfer, which costs ``row_miss_ns``; a closed bank costs the same as a conflict;
    - its data then occupies the channel's data bus for ``bytes / channel_bytes_per_cycle``
      cycles (fractional), in arrival order per channel (FCFS, no reordering);
    - the request completes ``latency`` cycles after its last data leaves the bus, rounded to
      the cycle: a lone single-cycle row hit completes ``latency`` after issue, as in the fixed
      model.

    Reads and writes are timed alike (no bus turnaround, no refresh, no tFAW).
    Sequential streams of large requests keep every channel's bus busy and reach near peak;
    small random requests are bound by the request ports' issue rate and by row misses.

DMA commands (:func:`dma_cycles`, what :func:`hwsim.run` uses)
    A LOAD or STORE becomes a request stream and its duration follows from the stream's timing
    in the configured model; the banked model carries its row buffers across commands in
    program order (the ordering rule is in :func:`dma_cycles`). How the stream is cut is
    ``dram.dma``:

    - ``"entry"`` (default; what ``rtl/dma.py`` and ``rtl/channels.py`` build): one request
      per buffer entry (at most ``dram.bus_bytes``), one issued a cycle, at most
      :data:`DMA_IN_FLIGHT` in flight; each channel's data moves at the smaller of its DRAM
      rate and its AXI4 port's ``bus_bytes / channels`` bytes a cycle. So a command of ``rows``
      entries takes at least ``rows`` cycles, whatever the DRAM's peak.
    - ``"wide"`` (also built by ``rtl/dma.py``): as ``"entry"``, but a LOAD of whole,
      contiguous ACT, WGT or IDX entries at an aligned buffer address asks for ``k`` entries
      (a bus word) a request and writes them in one cycle
      (:func:`hwsim.units.dma.load_beats`): on ``vcu1525`` four 64-byte operand entries, 256
      bytes a cycle over the four channels' ports.
    - ``"burst"`` (model only, not built in RTL): contiguous rows merged into bursts of at most
      :data:`DMA_BURST_BYTES`, a strided row one request, ``dram.request_ports`` requests a
      cycle: the accelerator side of the DMA is not a bottleneck.

The lookup engine's memory tiers (:mod:`hwsim.tiers`) run on the same banked kernels, with a
per-channel request-queue front end and separate read and write latencies and bandwidths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._jit import njit
from .config import AcceleratorConfig

__all__ = [
    "DMA_BURST_BYTES",
    "DMA_IN_FLIGHT",
    "INTERLEAVE_BYTES",
    "MAX_OUTSTANDING",
    "STREAM_REQUEST_BYTES",
    "DmaTiming",
    "DramModel",
    "DramResult",
    "address_map",
    "channel_interleave",
    "channel_map",
    "dma_bytes_per_cycle",
    "dma_cycles",
    "requests",
    "stream_cycles",
]

INTERLEAVE_BYTES = 256
"""Channel interleaving granularity of the banked model, bytes (capped at ``dram.row_bytes``)."""

MAX_OUTSTANDING = 64
"""Requests the banked model's front end keeps in flight per request port (our assumption:
AXI-class DMA)."""

STREAM_REQUEST_BYTES = 4096
"""Default request size of :func:`stream_cycles`: one AXI4 burst may not cross 4 KiB."""

DMA_BURST_BYTES = 4096
"""Largest request a ``dram.dma == "burst"`` DMA command issues, and the address boundary no
request crosses (AXI4)."""

DMA_IN_FLIGHT = 32
"""Requests a ``dram.dma == "entry"`` DMA engine keeps in flight at most: the RTL channel
splitter's read window (``rtl.axi.AxiAccelerator`` gives :class:`rtl.channels.ChannelSplitter`
``2 * max_reads`` = 32 reads; a test pins the two equal)."""


@njit(cache=True)
def _fixed_kernel(sizes, bytes_per_cycle, latency):  # pragma: no cover - compiled
    n = sizes.shape[0]
    start = np.empty(n, np.int64)
    finish = np.empty(n, np.int64)
    t = 0
    for i in range(n):
        # the same expression as hwsim.units.dma.dram_request_cycles
        slots = max(1, math.ceil(sizes[i] / bytes_per_cycle - 1e-9))
        start[i] = t
        finish[i] = t + slots - 1 + latency
        t += slots
    return start, finish


@njit(cache=True)
def _service(addr, size, tf, channels, banks, gran_shift, line_shift, ch_bytes_per_cycle,
             miss_cycles, bus_free, open_row, row_ready, last_data):  # pragma: no cover
    """Serve ``size`` bytes from ``addr`` of one request issued on cycle ``tf``: returns the
    time its last data leaves a channel's bus (fractional cycles), its row hits and misses.

    Unsigned arithmetic: Python's floor division of signed integers costs several times more.
    """
    a = np.uint64(addr)
    end = a + np.uint64(size)
    nch = np.uint64(channels)
    nbk = np.uint64(banks)
    gs = np.uint64(gran_shift)
    ls = np.uint64(line_shift)
    done = tf
    hits = 0
    misses = 0
    while a < end:
        chunk = a >> gs
        piece_end = min(end, (chunk + np.uint64(1)) << gs)
        ch = np.int64(chunk % nch)
        line = (chunk // nch) >> ls
        b = ch * banks + np.int64(line % nbk)
        row = np.int64(line // nbk)
        if open_row[b] == row:
            hits += 1
            t_col = max(tf, row_ready[b])
        else:
            misses += 1
            t_act = max(tf, last_data[b])
            row_ready[b] = t_act + miss_cycles
            open_row[b] = row
            t_col = row_ready[b]
        bus_start = max(t_col, bus_free[ch])
        bus_end = bus_start + np.float64(piece_end - a) / ch_bytes_per_cycle
        bus_free[ch] = bus_end
        if bus_end > last_data[b]:
            last_data[b] = bus_end
        if bus_end > done:
            done = bus_end
        a = piece_end
    return done, hits, misses


@njit(cache=True)
def _banked_kernel(addrs, sizes, writes, channels, banks, gran_shift, line_shift,
                   rd_bytes_per_cycle, wr_bytes_per_cycle, rd_latency, wr_latency, miss_cycles,
                   max_outstanding, ch_outstanding, ports):  # pragma: no cover - compiled
    """Issue and completion cycles, row hits and misses of requests in the given order.

    Two front ends. ``ch_outstanding == 0`` (:class:`DramModel`): up to ``ports`` requests
    issue per cycle, in order. ``ch_outstanding > 0`` (:mod:`hwsim.tiers`): request ``i``
    arrives on cycle ``i // ports`` and enters the queue of every channel it touches, each
    channel issuing in order with at most ``ch_outstanding`` in flight (a request waits for the
    ``ch_outstanding``-th previous request of each of its channels to complete), so a full
    channel does not hold up the others. Either way, ``max_outstanding > 0`` makes request
    ``i`` wait for request ``i - max_outstanding`` to complete. Write requests (``writes[i]``)
    move data at ``wr_bytes_per_cycle`` and complete ``wr_latency`` after it.
    """
    n = addrs.shape[0]
    start = np.empty(n, np.int64)
    finish = np.empty(n, np.int64)
    nb = channels * banks
    bus_free = np.zeros(channels, np.float64)
    open_row = np.full(nb, -1, np.int64)
    row_ready = np.zeros(nb, np.float64)
    last_data = np.zeros(nb, np.float64)
    # per channel: finish cycles of its last ch_outstanding requests, its last issue cycle
    ring = np.zeros((channels, max(ch_outstanding, 1)), np.int64)
    count = np.zeros(channels, np.int64)
    last_issue = np.zeros(channels, np.int64)
    hits = 0
    misses = 0
    t = -1
    used = ports  # requests issued on cycle t
    for i in range(n):
        first = 0
        touched = 0
        if ch_outstanding > 0:
            ti = i // ports
            first = addrs[i] >> gran_shift
            touched = min(((addrs[i] + sizes[i] - 1) >> gran_shift) - first + 1, channels)
            for k in range(touched):
                c = (first + k) % channels
                ti = max(ti, last_issue[c])
                if count[c] >= ch_outstanding:
                    ti = max(ti, ring[c, count[c] % ch_outstanding] + 1)
        else:
            ti = t + 1 if used == ports else t
        if max_outstanding > 0 and i >= max_outstanding and finish[i - max_outstanding] + 1 > ti:
            ti = finish[i - max_outstanding] + 1
        if ti != t:
            used = 0
        used += 1
        start[i] = ti
        t = ti
        w = writes[i]
        done, h, m = _service(addrs[i], sizes[i], float(ti), channels, banks, gran_shift,
                              line_shift, wr_bytes_per_cycle if w else rd_bytes_per_cycle,
                              miss_cycles, bus_free, open_row, row_ready, last_data)
        hits += h
        misses += m
        finish[i] = math.ceil(done - 1e-9) - 1 + (wr_latency if w else rd_latency)
        for k in range(touched):
            c = (first + k) % channels
            ring[c, count[c] % ch_outstanding] = finish[i]
            count[c] += 1
            last_issue[c] = ti
    return start, finish, hits, misses


def _dma_kernel_cost(addr, rows, nbytes, *rest) -> float:
    """Seconds ``_dma_kernel`` takes interpreted on a loaded 2-core machine (hwsim._jit): merged
    bursts about 0.5 us a byte, a request per entry (``merge`` false) about 7 us a row, and
    20 us a command."""
    per = 5e-7 * float((rows * nbytes).sum()) if rest[-2] else 7e-6 * float(rows.sum())
    return per + 2e-5 * addr.shape[0]


@njit(cache=True, cost=_dma_kernel_cost)
def _dma_kernel(addr, rows, nbytes, stride, channels, banks, gran_shift, line_shift,
                ch_bytes_per_cycle, latency, miss_cycles, max_outstanding, burst, ports,
                open_row, merge, beat):  # pragma: no cover - compiled
    """Transfer cycles, row hits and misses of DMA commands in order (see :func:`dma_cycles`);
    ``open_row`` (one entry per bank, -1 closed) is the row-buffer state, updated in place.
    ``merge``: contiguous rows become one stream of bursts; otherwise every ``beat[c]`` rows
    (contiguous when more than one) are a request."""
    n = addr.shape[0]
    transfer = np.zeros(n, np.int64)
    hits = np.zeros(n, np.int64)
    misses = np.zeros(n, np.int64)
    nb = channels * banks
    bus_free = np.zeros(channels, np.float64)
    row_ready = np.zeros(nb, np.float64)
    last_data = np.zeros(nb, np.float64)
    ring = np.zeros(max_outstanding, np.int64)  # finish cycles of the last requests
    for c in range(n):
        if rows[c] == 0:
            continue
        if nbytes[c] == 0:
            transfer[c] = rows[c]  # one issue slot per empty row, nothing reaches DRAM
            continue
        # the previous DMA command has drained: banks and buses idle, rows stay open
        bus_free[:] = 0.0
        row_ready[:] = 0.0
        last_data[:] = 0.0
        contiguous = merge and (stride[c] == nbytes[c] or rows[c] == 1)
        per = 1 if contiguous else beat[c]  # rows a range (a request unless merged)
        ranges = 1 if contiguous else (rows[c] + per - 1) // per
        t = -1
        used = ports  # requests issued on cycle t
        j = 0  # requests issued by this command
        slot = 0  # j % max_outstanding: the ring entry of request j - max_outstanding
        end_max = 0.0
        h = 0
        m = 0
        for r in range(ranges):
            a = addr[c] + r * per * stride[c]
            if contiguous:
                end = a + nbytes[c] * rows[c]
            else:
                end = a + nbytes[c] * min(per, rows[c] - r * per)
            while a < end:
                bend = min(end, (a | (burst - 1)) + 1)  # burst is a power of two
                ti = t + 1 if used == ports else t
                if j >= max_outstanding and ring[slot] + 1 > ti:
                    ti = ring[slot] + 1
                if ti != t:
                    used = 0
                used += 1
                t = ti
                done, dh, dm = _service(a, bend - a, float(ti), channels, banks, gran_shift,
                                        line_shift, ch_bytes_per_cycle, miss_cycles,
                                        bus_free, open_row, row_ready, last_data)
                h += dh
                m += dm
                ring[slot] = math.ceil(done - 1e-9) - 1 + latency
                j += 1
                slot += 1
                if slot == max_outstanding:
                    slot = 0
                if done > end_max:
                    end_max = done
                a = bend
        transfer[c] = math.ceil(end_max - 1e-9)
        hits[c] = h
        misses[c] = m
    return transfer, hits, misses


@dataclass(frozen=True)
class DramResult:
    """Timing of one batch of DRAM requests.

    Attributes
    ----------
    start : numpy.ndarray of int64
        Cycle on which each request issued (cycle 0: the first possible issue cycle).
    finish : numpy.ndarray of int64
        Cycle on which each request completed (its last data arrived, or was written).
    cycles : int
        ``max(finish) + 1``: cycles from the first issue through the last completion
        (0 for no requests).
    bytes_read, bytes_written : int
        Bytes moved by read and by write requests.
    row_hits, row_misses : int
        Row-buffer accesses that hit or missed (banked model; one access per
        interleave chunk a request touches). Both 0 for the fixed model.
    bandwidth_gbps : float
        Achieved bandwidth, ``(bytes_read + bytes_written) / cycles`` in GB/s (10^9 bytes).
    """

    start: np.ndarray
    finish: np.ndarray
    cycles: int
    bytes_read: int
    bytes_written: int
    row_hits: int
    row_misses: int
    bandwidth_gbps: float

    @property
    def nbytes(self) -> int:
        """All bytes moved."""
        return self.bytes_read + self.bytes_written


def requests(addrs, sizes, writes=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A request stream as fresh writeable arrays (read-only views would compile a second
    kernel signature): addresses, sizes (a scalar applies to all) and write flags.

    Raises
    ------
    ValueError
        If the arrays are not one-dimensional and of one length, an address is negative or a
        size is not positive.
    """
    a = np.array(addrs, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"addrs must be one-dimensional, not of shape {a.shape}")
    s = np.asarray(sizes, dtype=np.int64)
    if s.ndim and s.shape != a.shape:
        raise ValueError(f"sizes has shape {s.shape}, addrs {a.shape}: they must match")
    s = np.array(np.broadcast_to(s, a.shape))
    w = np.zeros(a.shape, dtype=bool) if writes is None else np.array(writes, dtype=bool)
    if w.shape != a.shape:
        raise ValueError(f"writes has shape {w.shape}, addrs {a.shape}: they must match")
    if a.size and a.min() < 0:
        raise ValueError(f"addresses must be non-negative, got {a.min()}")
    if s.size and s.min() < 1:
        raise ValueError(f"request sizes must be positive, got {s.min()}")
    return a, s, w


def address_map(addrs, channels: int, banks: int, row_bytes: int, interleave: int):
    """Channel, bank, row and byte column (in the row) of byte addresses under the banked
    address map ``row : bank : column_hi : channel : column_lo`` (module docstring)."""
    a = np.asarray(addrs, dtype=np.int64)
    chunk = a // interleave
    line = chunk // channels // (row_bytes // interleave)
    column = (chunk // channels % (row_bytes // interleave)) * interleave + a % interleave
    return chunk % channels, line % banks, line // banks, column


def channel_interleave(config: AcceleratorConfig) -> int:
    """Bytes of one channel's interleave chunk in ``config``'s DRAM address map:
    :data:`INTERLEAVE_BYTES` capped at ``dram.row_bytes`` (what :class:`DramModel` uses)."""
    return min(INTERLEAVE_BYTES, config.dram.row_bytes)


def channel_map(addrs, config: AcceleratorConfig) -> tuple[np.ndarray, np.ndarray]:
    """The DRAM channel of byte addresses and their address inside that channel.

    The channel is :func:`address_map`'s (``addr // g % channels``, ``g`` the
    :func:`channel_interleave`); the address inside the channel is the byte address with the
    channel's digit taken out, ``(addr // g // channels) * g + addr % g`` (``row : bank :
    column_hi : column_lo``): consecutive chunks of one channel are consecutive in it. This is
    how a top with one memory port per channel (``rtl.channels``) addresses its channels.
    """
    a = np.asarray(addrs, dtype=np.int64)
    g, n = channel_interleave(config), config.dram.channels
    chunk = a // g
    return chunk % n, chunk // n * g + a % g


class DramModel:
    """DRAM timing model of ``config.dram`` at ``config.clock_mhz`` (see the module docstring).

    Parameters
    ----------
    config : AcceleratorConfig
        Uses ``dram.model``, ``channels``, ``bandwidth_gbps``, ``latency_ns``, ``banks``,
        ``row_bytes``, ``row_miss_ns`` and ``clock_mhz``.

    Attributes
    ----------
    latency_cycles : int
        ``config.dram_latency_cycles``.
    miss_cycles : int
        ``row_miss_ns`` in cycles, rounded up (banked model).
    channel_bytes_per_cycle : float
        Peak bytes per cycle of one channel.
    interleave_bytes : int
        Channel interleaving granularity of the address map.
    max_outstanding : int
        Requests in flight at most: :data:`MAX_OUTSTANDING` per request port.
    """

    def __init__(self, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
        d = config.dram
        self.config = config
        self.model = d.model
        self.latency_cycles = config.dram_latency_cycles
        self.miss_cycles = math.ceil(d.row_miss_ns * config.clock_mhz / 1000.0 - 1e-9)
        self.channel_bytes_per_cycle = d.bandwidth_gbps * 1000.0 / config.clock_mhz
        self.interleave_bytes = channel_interleave(config)
        self.max_outstanding = MAX_OUTSTANDING * d.request_ports
        # chunk = addr >> gran_shift; line = chunk // channels >> line_shift (powers of two)
        self._shifts = (self.interleave_bytes.bit_length() - 1,
                        (d.row_bytes // self.interleave_bytes).bit_length() - 1)

    @property
    def peak_gbps(self) -> float:
        """Peak bandwidth over all channels, GB/s."""
        return self.config.dram.channels * self.config.dram.bandwidth_gbps

    def map(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Decompose byte addresses with the banked address map.

        Returns
        -------
        channel, bank, row, column : numpy.ndarray of int64
            ``column`` is the byte offset inside the row.
        """
        d = self.config.dram
        return address_map(addrs, d.channels, d.banks, d.row_bytes, self.interleave_bytes)

    def access(self, addrs, sizes, writes=None) -> DramResult:
        """Time requests issued in the given order.

        Parameters
        ----------
        addrs : array_like of int
            Byte address of each request (non-negative).
        sizes : array_like of int or int
            Bytes of each request (positive); a scalar applies to all.
        writes : array_like of bool, optional
            True for write requests; all reads when omitted.

        Returns
        -------
        DramResult

        Raises
        ------
        ValueError
            If the arrays are not one-dimensional and of one length, an address is negative or
            a size is not positive.
        """
        a, s, w = requests(addrs, sizes, writes)
        cfg = self.config
        if self.model == "fixed":
            start, finish = _fixed_kernel(s, float(cfg.dram_bytes_per_cycle),
                                          self.latency_cycles)
            hits = misses = 0
        else:
            d = cfg.dram
            bpc = float(self.channel_bytes_per_cycle)
            start, finish, hits, misses = _banked_kernel(
                a, s, w, d.channels, d.banks, *self._shifts, bpc, bpc, self.latency_cycles,
                self.latency_cycles, float(self.miss_cycles), self.max_outstanding, 0,
                d.request_ports)
        cycles = int(finish.max()) + 1 if a.size else 0
        written = int(s[w].sum())
        read = int(s.sum()) - written
        bw = (read + written) * cfg.clock_mhz / cycles / 1000.0 if cycles else 0.0
        return DramResult(start, finish, cycles, read, written, int(hits), int(misses), bw)


def stream_cycles(config: AcceleratorConfig, nbytes: int, stride: int | None = None, *,
                  request_bytes: int = STREAM_REQUEST_BYTES, write: bool = False) -> int:
    """Cycles to move ``nbytes`` from address 0 as requests of ``request_bytes``.

    Parameters
    ----------
    config : AcceleratorConfig
    nbytes : int
        Bytes to move (positive); the last request carries the remainder.
    stride : int, optional
        Distance between the start addresses of consecutive requests; ``None`` for a
        contiguous stream (``stride = request_bytes``).
    request_bytes : int
        Bytes per request (default :data:`STREAM_REQUEST_BYTES`).
    write : bool
        Time writes instead of reads.

    Returns
    -------
    int
        :attr:`DramResult.cycles` of the stream.

    Raises
    ------
    ValueError
        If ``nbytes``, ``request_bytes`` or ``stride`` is not a positive integer.
    """
    for name, v in (("nbytes", nbytes), ("request_bytes", request_bytes),
                    ("stride", 1 if stride is None else stride)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    step = request_bytes if stride is None else stride
    count = -(-nbytes // request_bytes)
    sizes = np.full(count, request_bytes, dtype=np.int64)
    sizes[-1] = nbytes - (count - 1) * request_bytes
    addrs = np.arange(count, dtype=np.int64) * step
    return DramModel(config).access(addrs, sizes, np.full(count, write)).cycles


def dma_bytes_per_cycle(config: AcceleratorConfig, entry_bytes: int, beat: int = 1) -> float:
    """Sustained bytes a cycle of one DMA command streaming contiguous buffer entries of
    ``entry_bytes``, ``beat`` a request (:func:`hwsim.units.dma.load_beats`), with no row
    misses: the DRAM's peak, and for the RTL's DMA (``dram.dma`` ``"entry"`` or ``"wide"`` on
    the banked model) at most one request a cycle and each channel's AXI4 port
    (``bus_bytes / channels`` bytes a cycle). For closed-form estimates; what :func:`hwsim.run`
    times is :func:`dma_cycles`."""
    d = config.dram
    peak = float(config.dram_bytes_per_cycle)
    if d.model != "banked" or d.dma == "burst":
        return peak
    return min(peak, float(beat * entry_bytes), float(d.bus_bytes))


@dataclass(frozen=True)
class DmaTiming:
    """Cycles of a sequence of DMA commands (:func:`dma_cycles`), one entry per command.

    Attributes
    ----------
    cycles : numpy.ndarray of int64
        ``unit_cycles`` of each command: from the DMA unit's start cycle to its done cycle,
        inclusive (what :func:`hwsim.schedule.schedule` takes as ``duration``).
    transfer : numpy.ndarray of int64
        Cycles from the first request's issue to the last data leaving the DRAM bus (the fixed
        model: the issue slots of :func:`hwsim.units.dma.dma_issue_cycles`).
    ideal : numpy.ndarray of int64
        ``ceil(bytes / config.dram_bytes_per_cycle)``: the transfer at peak bandwidth.
    row_hits, row_misses : numpy.ndarray of int64
        Row-buffer accesses that hit or missed (banked model; 0 for the fixed model).
    """

    cycles: np.ndarray
    transfer: np.ndarray
    ideal: np.ndarray
    row_hits: np.ndarray
    row_misses: np.ndarray


def dma_cycles(store, dram_addr, rows, nbytes, stride, config: AcceleratorConfig, *,
               beat=1) -> DmaTiming:
    """Durations of LOAD/STORE commands, in the order given, on ``config.dram``.

    Vectorised: one entry per command, arrays or scalars (broadcast). Commands are timed in the
    order given, which must be program order: the banked model carries its row buffers from
    each command to the next, so every caller gets the same cycles by passing the same DMA
    commands in the same order.

    ``model == "fixed"``: the closed forms of :func:`hwsim.units.unit_cycles` (what the RTL
    implements): a LOAD takes ``1 + dma_issue_cycles + latency``, a STORE
    ``2 + dma_issue_cycles``, an empty command 2.

    ``model == "banked"``: the command's request stream goes through the banked model of
    :class:`DramModel`. Its rows are ``nbytes`` at ``dram_addr + r * stride``. With
    ``dram.dma == "entry"`` (the RTL's DMA) every row is one request, one issued a cycle, at
    most :data:`DMA_IN_FLIGHT` in flight, and a channel moves at most ``bus_bytes / channels``
    bytes a cycle. With ``"burst"`` (``dram.request_ports`` requests issued per cycle, at most
    :data:`MAX_OUTSTANDING` per port in flight) the DMA merges rows that are contiguous
    (``stride == nbytes``) into one stream, and splits every stream into requests of at most
    :data:`DMA_BURST_BYTES` that do not cross a :data:`DMA_BURST_BYTES` boundary (AXI4
    bursts); a strided row is a request of its own. With ``transfer`` the
    cycles from its first issue to its last data leaving a channel's bus, a LOAD takes
    ``1 + transfer + latency`` (start cycle, requests, the last data's return), a STORE
    ``2 + transfer`` (start and done cycles; writes are posted), as in the fixed closed forms:
    with one channel, one bank, no row-miss cost and non-contiguous rows of at most a cycle's
    bandwidth the two models agree.

    **Ordering rule** (a modelling choice, documented): each command is timed alone on the DRAM
    (buses and banks idle at its first request), with the row buffers left open by every
    earlier command in program order, LOADs and STOREs alike. This is exact for one DMA unit:
    its commands run one after the other, each after the previous one's last data. It ignores
    the bus and bank contention between a LOAD and a STORE running at the same time on the two
    DMA units, and a STORE earlier in program order but later in time still counts as having
    opened its rows first.

    Parameters
    ----------
    store : array_like of bool
        True for STORE (DMA out), False for LOAD (DMA in).
    dram_addr, rows, nbytes, stride : array_like of int
        The command's fields, ``nbytes = elems * element bytes of its buffer``
        (:func:`hwsim.buffers.elem_bytes`).
    config : AcceleratorConfig
    beat : array_like of int, default 1
        Entries a request (``"entry"`` and ``"wide"``, the fixed model too): more than one only
        for rows stored contiguously (``stride == nbytes``), a LOAD of ``dram.dma == "wide"``
        (:func:`hwsim.units.dma.load_beats`); ``rows`` entries are then ``ceil(rows / beat)``
        requests. Ignored by ``"burst"``, which merges every contiguous command.

    Returns
    -------
    DmaTiming

    Raises
    ------
    ValueError
        If a field is negative or the arrays do not broadcast to one dimension.
    """
    arrays = np.broadcast_arrays(*(np.asarray(x, np.int64) for x in
                                   (store, dram_addr, rows, nbytes, stride, beat)))
    if arrays[0].ndim > 1:
        raise ValueError(f"DMA fields must be one-dimensional, not of shape {arrays[0].shape}")
    st, addr, rows, nbytes, stride, beat = (np.array(np.atleast_1d(x)) for x in arrays)
    for name, x in (("dram_addr", addr), ("rows", rows), ("nbytes", nbytes), ("stride", stride)):
        if x.size and x.min() < 0:
            raise ValueError(f"{name} must be non-negative, got {x.min()}")
    if beat.size and beat.min() < 1:
        raise ValueError(f"beat must be at least 1, got {beat.min()}")
    if ((beat > 1) & (stride != nbytes) & (rows > 1)).any():
        raise ValueError("a request of several entries needs them contiguous (stride == nbytes)")
    d = config.dram
    moved = rows * nbytes
    ideal = np.ceil(moved / config.dram_bytes_per_cycle - 1e-9).astype(np.int64)
    lat = config.dram_latency_cycles
    if d.model == "fixed":
        # hwsim.units.dma.dma_issue_cycles, vectorised
        per_channel = config.dram_bytes_per_cycle / d.channels

        def slots(n):
            return np.maximum(1, np.ceil(n / per_channel - 1e-9).astype(np.int64))
        full, tail = np.divmod(rows, beat)
        transfer = (-(-full // d.channels) * slots(beat * nbytes)
                    + np.where(tail > 0, slots(tail * nbytes), 0))
        hits = np.zeros(st.shape, np.int64)
        misses = np.zeros(st.shape, np.int64)
    else:
        model = DramModel(config)
        open_row = np.full(d.channels * d.banks, -1, np.int64)
        if d.dma != "burst":  # rtl/dma.py: a request (beat entries) a cycle, AXI4 per channel
            ch_rate = min(model.channel_bytes_per_cycle, d.bus_bytes / d.channels)
            window, ports, merge = DMA_IN_FLIGHT, 1, False
        else:
            ch_rate = model.channel_bytes_per_cycle
            window, ports, merge = model.max_outstanding, d.request_ports, True
        transfer, hits, misses = _dma_kernel(
            addr, rows, nbytes, stride, d.channels, d.banks, *model._shifts, float(ch_rate),
            lat, float(model.miss_cycles), window, DMA_BURST_BYTES, ports, open_row, merge,
            beat)
    cycles = np.where(st != 0, 2, 1 + lat) + transfer
    cycles = np.where(rows == 0, 2, cycles)
    transfer = np.where(rows == 0, 0, transfer)
    return DmaTiming(cycles, transfer, ideal, hits, misses)
