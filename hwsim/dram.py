"""Off-chip DRAM timing: the ``fixed`` model of the RTL testbench and a banked model.

Both models take a list of requests in issue order (byte address, size, read or write) and return
the cycle each request was issued and the cycle it completed, in accelerator clock cycles
(``config.clock_mhz``), with cycle 0 the first cycle a request may issue.

``model == "fixed"`` (what :mod:`hwsim.timing` and the RTL DMA assume)
    A request occupies ``dram_request_cycles(size)`` issue slots (one while it fits a cycle's
    worth of peak bandwidth, proportionally more otherwise), requests issue back to back, and
    each completes ``config.dram_latency_cycles`` after its last issue slot::

        start[i]  = sum(slots[:i])
        finish[i] = start[i] + slots[i] - 1 + latency

    A LOAD of ``rows`` equal requests therefore takes ``cycles + 1`` unit cycles in
    :func:`hwsim.timing.unit_cycles` (the extra cycle is the DMA's start cycle).

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
    split at chunk boundaries into row-buffer accesses. The front end issues one request per
    cycle in order, with at most :data:`MAX_OUTSTANDING` requests in flight (a request issues
    no earlier than the cycle after request ``i - MAX_OUTSTANDING`` completed). Each access:

    - row hit: its column access may start once the row is open;
    - row miss (another row open, or none): the bank precharges and activates after its last
      data transfer, which costs ``row_miss_ns``; a closed bank costs the same as a conflict;
    - its data then occupies the channel's data bus for ``bytes / channel_bytes_per_cycle``
      cycles (fractional), in arrival order per channel (FCFS, no reordering);
    - the request completes ``latency`` cycles after its last data leaves the bus, rounded to
      the cycle: a lone single-cycle row hit completes ``latency`` after issue, as in the fixed
      model.

    Reads and writes are timed alike (no bus turnaround, no refresh, no tFAW); the accelerator
    side of the DMA is not a bottleneck (requests may be larger than ``dram.bus_bytes``).
    Sequential streams of large requests keep every channel's bus busy and reach near peak;
    small random requests are bound by the one-request-per-cycle issue and by row misses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .config import AcceleratorConfig

__all__ = [
    "INTERLEAVE_BYTES",
    "MAX_OUTSTANDING",
    "STREAM_REQUEST_BYTES",
    "DramModel",
    "DramResult",
    "stream_cycles",
]

INTERLEAVE_BYTES = 256
"""Channel interleaving granularity of the banked model, bytes (capped at ``dram.row_bytes``)."""

MAX_OUTSTANDING = 64
"""Requests the banked model's front end keeps in flight (our assumption: AXI-class DMA)."""

STREAM_REQUEST_BYTES = 4096
"""Default request size of :func:`stream_cycles`: one AXI4 burst may not cross 4 KiB."""


@njit(cache=True)
def _fixed_kernel(sizes, bytes_per_cycle, latency):  # pragma: no cover - compiled
    n = sizes.shape[0]
    start = np.empty(n, np.int64)
    finish = np.empty(n, np.int64)
    t = 0
    for i in range(n):
        # the same expression as hwsim.timing.dram_request_cycles
        slots = max(1, math.ceil(sizes[i] / bytes_per_cycle - 1e-9))
        start[i] = t
        finish[i] = t + slots - 1 + latency
        t += slots
    return start, finish


@njit(cache=True)
def _banked_kernel(addrs, sizes, channels, banks, row_bytes, gran, ch_bytes_per_cycle,
                   latency, miss_cycles, max_outstanding):  # pragma: no cover - compiled
    n = addrs.shape[0]
    start = np.empty(n, np.int64)
    finish = np.empty(n, np.int64)
    nb = channels * banks
    bus_free = np.zeros(channels, np.float64)
    open_row = np.full(nb, -1, np.int64)
    row_ready = np.zeros(nb, np.float64)
    last_data = np.zeros(nb, np.float64)
    chunks_per_row = row_bytes // gran
    hits = 0
    misses = 0
    t = -1
    for i in range(n):
        ti = t + 1
        if i >= max_outstanding and finish[i - max_outstanding] + 1 > ti:
            ti = finish[i - max_outstanding] + 1
        start[i] = ti
        t = ti
        tf = float(ti)
        a = addrs[i]
        end = a + sizes[i]
        done = tf
        while a < end:
            chunk = a // gran
            piece_end = min(end, (chunk + 1) * gran)
            ch = chunk % channels
            line = chunk // channels // chunks_per_row
            b = ch * banks + line % banks
            row = line // banks
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
            bus_end = bus_start + (piece_end - a) / ch_bytes_per_cycle
            bus_free[ch] = bus_end
            if bus_end > last_data[b]:
                last_data[b] = bus_end
            if bus_end > done:
                done = bus_end
            a = piece_end
        finish[i] = math.ceil(done - 1e-9) - 1 + latency
    return start, finish, hits, misses


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
        self.interleave_bytes = min(INTERLEAVE_BYTES, d.row_bytes)

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
        a = np.asarray(addrs, dtype=np.int64)
        d, g = self.config.dram, self.interleave_bytes
        chunk = a // g
        line = chunk // d.channels // (d.row_bytes // g)
        column = (chunk // d.channels % (d.row_bytes // g)) * g + a % g
        return chunk % d.channels, line % d.banks, line // d.banks, column

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
        # fresh writeable copies: read-only views would compile a second kernel signature
        a = np.array(addrs, dtype=np.int64)
        if a.ndim != 1:
            raise ValueError(f"addrs must be one-dimensional, not of shape {a.shape}")
        s = np.asarray(sizes, dtype=np.int64)
        if s.ndim and s.shape != a.shape:
            raise ValueError(f"sizes has shape {s.shape}, addrs {a.shape}: they must match")
        s = np.array(np.broadcast_to(s, a.shape))
        w = (np.zeros(a.shape, dtype=bool) if writes is None
             else np.asarray(writes, dtype=bool))
        if w.shape != a.shape:
            raise ValueError(f"writes has shape {w.shape}, addrs {a.shape}: they must match")
        if a.size and a.min() < 0:
            raise ValueError(f"addresses must be non-negative, got {a.min()}")
        if s.size and s.min() < 1:
            raise ValueError(f"request sizes must be positive, got {s.min()}")
        cfg = self.config
        if self.model == "fixed":
            start, finish = _fixed_kernel(s, float(cfg.dram_bytes_per_cycle),
                                          self.latency_cycles)
            hits = misses = 0
        else:
            d = cfg.dram
            start, finish, hits, misses = _banked_kernel(
                a, s, d.channels, d.banks, d.row_bytes, self.interleave_bytes,
                float(self.channel_bytes_per_cycle), self.latency_cycles, float(self.miss_cycles),
                MAX_OUTSTANDING)
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
