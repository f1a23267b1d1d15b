"""Memory tiers of the lookup engine: sourced presets, a timing model, a closed form, placement.

A tier (:class:`hwsim.config.MemoryTier`) is on-chip SRAM, HBM, DDR, CXL-attached DRAM or
persistent memory, described by one set of fields, so every kind shares this module's protocol:
:class:`TierModel` times a request stream, :func:`gather_time` is the closed form of a row
gather, :func:`place_tables` fills the tiers with tables by capacity.

Timing model (:class:`TierModel`)
    The banked DRAM model of :mod:`hwsim.dram` (its kernels, not a copy): ``channels``
    channels of ``banks`` banks with an open-page row buffer each; addresses map
    ``row : bank : column_hi : channel : column_lo`` with ``interleave_bytes`` chunks rotating
    over the channels. What a tier adds:

    - **access granularity**: a request covers the whole aligned ``access_bytes`` blocks it
      touches; a 64-byte read from a 256-byte-granular tier moves (and is timed and charged
      for) 256 bytes;
    - **per-channel request queues**: request ``i`` arrives on cycle ``i // ports`` (the
      requester's address ports, by default one per channel) and enters the queue of every
      channel it touches; each channel issues its requests in order with at most
      ``outstanding`` in flight (a request waits for the ``outstanding``-th previous request
      of each of its channels to complete), and a full channel holds up only its own requests.
      ``max_in_flight`` optionally bounds all requests in flight as well (the requester's row
      buffer: request ``i`` waits for request ``i - max_in_flight``);
    - **reads and writes differ**: a write occupies its channel's bus at
      ``write_bandwidth_gbps`` and completes ``write_latency_ns`` after its last data; a read at
      ``bandwidth_gbps`` and ``read_latency_ns``;
    - row hits and misses as in :mod:`hwsim.dram`: a miss precharges and activates after the
      bank's last transfer (``row_miss_ns``), the channel's bus serves its requests in order.

    An unloaded random read of ``b`` bytes therefore takes ``row_miss_ns + b' / bandwidth +
    read_latency_ns`` with ``b'`` the bytes moved, cycles rounded up at the accelerator clock.

Closed form (:func:`gather_time`)
    ``N`` random rows of ``R`` bytes (``R'`` moved) spanning ``k`` channels each, ``Q``
    requests in flight per channel, ``C`` channels::

        time = max(N R' / (C bw),                       peak bandwidth
                   N k L / (Q C),  L = miss + R' / (k bw) + latency,   Little's law
                   N p (miss + R' / (p bw)) / (C banks),               bank occupancy, p chunks
                   N / (ports f))                                       request issue

    The simulation approaches it from above: it adds row-buffer conflicts between requests
    that land in one bank, the uneven spread of random rows over channels, cycle rounding and
    the last request's latency.

Placement (:func:`place_tables`)
    Tables in the given order go, first fit, into the tiers in ``lookup.placement_order``,
    each aligned to its tier's ``row_bytes``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import ConfigError, LookupConfig, MemoryTier
from .dram import DramResult, _banked_kernel, address_map, requests

__all__ = [
    "TIER_PRESETS",
    "GatherEstimate",
    "Placement",
    "PlacementError",
    "TierModel",
    "TierResult",
    "gather_time",
    "place_tables",
    "tier_preset",
]

GIB = 1 << 30


def _sram() -> MemoryTier:
    """On-chip SRAM holding hot tables (ASIC-class, 1 GHz): 32 MiB in 16 channels of 64-byte
    lines, one line per channel per nanosecond (64 GB/s each, 1 TB/s in all), 2 ns, row misses
    free (row and interleave: one line). Energy 1.6 pJ/bit, the top of the 0.16-1.6 pJ/bit
    SRAM range (Horowitz, ISSCC 2014: the low end is an 8 KB array, the top a 1 MB one, the
    size of the macros a 32 MiB store is built from). Latency and widths: our assumption."""
    return MemoryTier(
        name="sram", kind="sram", capacity_gib=32 / 1024, channels=16, banks=1, row_bytes=64,
        interleave_bytes=64, access_bytes=64, bandwidth_gbps=64.0, write_bandwidth_gbps=64.0,
        read_latency_ns=2.0, write_latency_ns=2.0, row_miss_ns=0.0, outstanding=8,
        read_pj_per_byte=12.8, write_pj_per_byte=12.8)


def _hbm2e() -> MemoryTier:
    """One HBM2e stack: 16 pseudo-channels of 64 bits at 3.2 Gb/s per pin, 25.6 GB/s each,
    409.6 GB/s per stack (REFERENCES.md: about 400-460 GB/s per stack), 16 GiB (8-high).
    3.97 pJ/bit (HBM2, REFERENCES.md). Our assumptions: 16 banks and a 1 KiB page per
    pseudo-channel, 64-byte accesses, 1 KiB interleave (a row of up to 1 KiB stays in one page);
    28 ns precharge plus activate and 90 ns from the data to the requester, so an unloaded
    random 64-byte read takes about 120 ns (REFERENCES.md gives no HBM latency)."""
    return MemoryTier(
        name="hbm2e", kind="hbm", capacity_gib=16.0, channels=16, banks=16, row_bytes=1024,
        interleave_bytes=1024, access_bytes=64, bandwidth_gbps=25.6, write_bandwidth_gbps=25.6,
        read_latency_ns=90.0, write_latency_ns=90.0, row_miss_ns=28.0, outstanding=64,
        read_pj_per_byte=8 * 3.97, write_pj_per_byte=8 * 3.97)


def _ddr4() -> MemoryTier:
    """DDR4-3200, eight channels (one server socket, our assumption) of 25.6 GB/s (REFERENCES.md),
    a 32 GiB DIMM each. JEDEC-class timing: 16 banks (4 groups of 4), an 8 KiB row per rank of
    x8 devices, tRP + tRCD = 2 x 13.75 ns at 22-22-22. With 65 ns from the data to the
    requester an unloaded random 64-byte read takes 27.5 + 2.5 + 65 = 95 ns, inside the
    80-100 ns loaded latency of REFERENCES.md. 20 pJ/bit, the low end of DDR's 20-40 pJ/bit
    (REFERENCES.md). 4 KiB interleave: our assumption."""
    return MemoryTier(
        name="ddr4", kind="ddr", capacity_gib=256.0, channels=8, banks=16, row_bytes=8192,
        interleave_bytes=4096, access_bytes=64, bandwidth_gbps=25.6, write_bandwidth_gbps=25.6,
        read_latency_ns=65.0, write_latency_ns=65.0, row_miss_ns=27.5, outstanding=64,
        read_pj_per_byte=160.0, write_pj_per_byte=160.0)


def _ddr5() -> MemoryTier:
    """DDR5-4800, **our assumption from public JEDEC-class figures** (REFERENCES.md has none):
    a DIMM channel is two independent 32-bit sub-channels of 19.2 GB/s, each with 32 banks (8
    groups of 4) and a 4 KiB row (four x8 devices of 1 KiB pages), BL16 64-byte accesses;
    tRP + tRCD = 2 x 16.67 ns at 40-40-40; 70 ns from the data to the requester, so an
    unloaded random 64-byte read takes about 107 ns. Eight DIMM channels (16 sub-channels,
    307 GB/s), 32 GiB DIMMs. 15 pJ/bit (below DDR4's 20 for the lower I/O voltage)."""
    return MemoryTier(
        name="ddr5", kind="ddr", capacity_gib=256.0, channels=16, banks=32, row_bytes=4096,
        interleave_bytes=4096, access_bytes=64, bandwidth_gbps=19.2, write_bandwidth_gbps=19.2,
        read_latency_ns=70.0, write_latency_ns=70.0, row_miss_ns=100.0 / 3.0, outstanding=64,
        read_pj_per_byte=120.0, write_pj_per_byte=120.0)


def _cxl() -> MemoryTier:
    """CXL-attached DRAM: this module's DDR4-3200 channel behind a CXL controller, with
    CXL-DMSim's measurements of a CXL ASIC (REFERENCES.md): 2.18x DDR latency and 82-83% of
    its bandwidth. Per channel 0.825 x 25.6 = 21.12 GB/s; an unloaded random 64-byte read
    2.18 x 95 = 207.1 ns (27.5 + 3.0 + 176.6), i.e. 112 ns more than local DDR4: between
    Pond's +70-90 ns and the +150-250 ns of REFERENCES.md. Our assumptions: two DDR4 channels
    per device (a x16 link), 128 GiB, 25 pJ/bit (DDR's 20 plus the link)."""
    ddr = _ddr4()
    bw = 0.825 * ddr.bandwidth_gbps
    ddr_random = ddr.row_miss_ns + 64 / ddr.bandwidth_gbps + ddr.read_latency_ns
    lat = 2.18 * ddr_random - ddr.row_miss_ns - 64 / bw
    return dataclasses.replace(
        ddr, name="cxl", kind="cxl", capacity_gib=128.0, channels=2, bandwidth_gbps=bw,
        write_bandwidth_gbps=bw, read_latency_ns=lat, write_latency_ns=lat,
        read_pj_per_byte=200.0, write_pj_per_byte=200.0)


def _pmem() -> MemoryTier:
    """Optane-class persistent memory (FAST 2020 measurements, REFERENCES.md): 256-byte access
    granularity, 6.6 GB/s read and 2.3 GB/s write per DIMM, about 305 ns random read. Six
    256 GiB DIMMs (one socket), interleaved at 4 KiB. The model's 305 ns random read is
    136 ns of media access (a "row miss"), 38.8 ns for 256 bytes at 6.6 GB/s and 130 ns to the
    requester; reads that hit an open 4 KiB buffer save the 136 ns (about the 169 ns
    sequential read latency of the same study). Our assumptions: 16 independent media banks
    per DIMM and the 4 KiB buffer; writes complete 90 ns after their data (posted to the
    module's power-fail-protected queue; the media's slowness shows in the write bandwidth);
    30 pJ/bit to read and three times that to write (no figure in REFERENCES.md)."""
    return MemoryTier(
        name="pmem", kind="pmem", capacity_gib=1536.0, channels=6, banks=16, row_bytes=4096,
        interleave_bytes=4096, access_bytes=256, bandwidth_gbps=6.6, write_bandwidth_gbps=2.3,
        read_latency_ns=130.0, write_latency_ns=90.0, row_miss_ns=305.0 - 130.0 - 256 / 6.6,
        outstanding=32, read_pj_per_byte=240.0, write_pj_per_byte=720.0)


_PRESETS = {"sram": _sram, "hbm2e": _hbm2e, "ddr4": _ddr4, "ddr5": _ddr5, "cxl": _cxl,
            "pmem": _pmem}
TIER_PRESETS = tuple(_PRESETS)
"""Names :func:`tier_preset` knows."""


def tier_preset(name: str, /, **changes) -> MemoryTier:
    """A memory tier with sourced numbers: ``"sram"``, ``"hbm2e"``, ``"ddr4"``, ``"ddr5"``,
    ``"cxl"`` or ``"pmem"`` (each builder's docstring in this module gives its sources).

    Parameters
    ----------
    name : str
    **changes
        Fields to change, e.g. ``channels=4`` or ``name="far"``.

    Raises
    ------
    ConfigError
        On an unknown name, an unknown field or a bad value.
    """
    if name not in _PRESETS:
        raise ConfigError("tier", name, f"one of {TIER_PRESETS}")
    tier = _PRESETS[name]()
    known = {f.name for f in dataclasses.fields(MemoryTier)}
    for k in changes:
        if k not in known:
            raise ConfigError(f"tier.{k}", changes[k], f"a field of MemoryTier: {sorted(known)}")
    tier = dataclasses.replace(tier, **changes)
    tier.validate(f"tier[{name!r}]")
    return tier


# --- timing model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierResult(DramResult):
    """Timing of one request stream on a tier (:meth:`TierModel.access`): the fields of
    :class:`hwsim.dram.DramResult` (per-request ``start`` and ``finish`` cycles from the first
    request's arrival, ``cycles``, bytes moved in whole ``access_bytes`` blocks, row hits and
    misses, ``bandwidth_gbps`` over ``cycles``), and:

    Attributes
    ----------
    requested_bytes : int
        Bytes the requests asked for.
    energy_pj : float
        ``bytes_read x read_pj_per_byte + bytes_written x write_pj_per_byte``.
    """

    requested_bytes: int = 0
    energy_pj: float = 0.0

    @property
    def useful_gbps(self) -> float:
        """Requested bytes per second over ``cycles``, GB/s."""
        return self.bandwidth_gbps * self.requested_bytes / self.nbytes if self.nbytes else 0.0


def _cycles(ns: float, clock_mhz: float) -> int:
    return math.ceil(ns * clock_mhz / 1000.0 - 1e-9)


class TierModel:
    """Timing of a request stream on one memory tier at the accelerator clock (module docstring).

    Parameters
    ----------
    tier : MemoryTier
    clock_mhz : float
        Accelerator clock: nanoseconds and GB/s become cycles and bytes per cycle.
    ports : int, optional
        Requests arriving per cycle (the requester's address ports); default ``tier.channels``.
    max_in_flight : int
        Requests in flight over all channels at most (0: no limit beyond the channels').

    Attributes
    ----------
    read_bytes_per_cycle, write_bytes_per_cycle : float
        Peak bytes per cycle of one channel.
    read_latency_cycles, write_latency_cycles, miss_cycles : int
        ``read_latency_ns``, ``write_latency_ns``, ``row_miss_ns`` in cycles, rounded up.

    Raises
    ------
    ValueError
        On a non-positive clock, ports or a negative ``max_in_flight``.
    """

    def __init__(self, tier: MemoryTier, clock_mhz: float, *, ports: int | None = None,
                 max_in_flight: int = 0):
        if not isinstance(tier, MemoryTier):
            raise TypeError(f"tier must be a MemoryTier, not {type(tier).__name__}")
        tier.validate("tier")
        if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, int | float) \
                or not clock_mhz > 0:
            raise ValueError(f"clock_mhz must be a positive number, not {clock_mhz!r}")
        ports = tier.channels if ports is None else ports
        if isinstance(ports, bool) or not isinstance(ports, int) or ports < 1:
            raise ValueError(f"ports must be a positive integer, not {ports!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
                or max_in_flight < 0:
            raise ValueError(f"max_in_flight must be a non-negative integer, not "
                             f"{max_in_flight!r}")
        self.tier, self.clock_mhz = tier, float(clock_mhz)
        self.ports, self.max_in_flight = ports, max_in_flight
        self.read_bytes_per_cycle = tier.bandwidth_gbps * 1000.0 / clock_mhz
        self.write_bytes_per_cycle = tier.write_bandwidth_gbps * 1000.0 / clock_mhz
        self.read_latency_cycles = _cycles(tier.read_latency_ns, clock_mhz)
        self.write_latency_cycles = _cycles(tier.write_latency_ns, clock_mhz)
        self.miss_cycles = _cycles(tier.row_miss_ns, clock_mhz)
        g = tier.interleave_bytes
        self._shifts = (g.bit_length() - 1, (tier.row_bytes // g).bit_length() - 1)

    def map(self, addrs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Channel, bank, row and byte column (in the row) of byte addresses."""
        t = self.tier
        return address_map(addrs, t.channels, t.banks, t.row_bytes, t.interleave_bytes)

    def access(self, addrs, sizes, writes=None) -> TierResult:
        """Time requests arriving in the given order (``addrs``, ``sizes``, ``writes`` as
        :meth:`hwsim.dram.DramModel.access`).

        Returns
        -------
        TierResult

        Raises
        ------
        ValueError
            On arrays of different shapes or not one-dimensional, a negative address or a
            non-positive size.
        """
        a, s, w = requests(addrs, sizes, writes)
        t = self.tier
        # whole aligned access blocks
        gran = t.access_bytes
        lo = a & ~np.int64(gran - 1)
        moved = ((a + s + gran - 1) & ~np.int64(gran - 1)) - lo
        start, finish, hits, misses = _banked_kernel(
            lo, moved, w, t.channels, t.banks, *self._shifts, float(self.read_bytes_per_cycle),
            float(self.write_bytes_per_cycle), self.read_latency_cycles,
            self.write_latency_cycles, float(self.miss_cycles), self.max_in_flight,
            t.outstanding, self.ports)
        cycles = int(finish.max()) + 1 if a.size else 0
        written = int(moved[w].sum())
        read = int(moved.sum()) - written
        bw = (read + written) * self.clock_mhz / cycles / 1000.0 if cycles else 0.0
        energy = read * t.read_pj_per_byte + written * t.write_pj_per_byte
        return TierResult(start, finish, cycles, read, written, int(hits), int(misses), bw,
                          requested_bytes=int(s.sum()), energy_pj=energy)


# --- closed form -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatherEstimate:
    """Closed-form time of a gather of random rows (:func:`gather_time`), nanoseconds.

    Attributes
    ----------
    rows : int
    moved_bytes : int
        Bytes moved per row (whole ``access_bytes`` blocks).
    peak_ns, latency_ns, bank_ns, issue_ns : float
        The time each bound alone allows: peak bandwidth, requests in flight x latency
        (Little's law), bank occupancy by row misses, request issue (0 without a clock).
    """

    rows: int
    moved_bytes: int
    peak_ns: float
    latency_ns: float
    bank_ns: float
    issue_ns: float

    @property
    def ns(self) -> float:
        """The binding bound: the largest of the four."""
        return max(self.peak_ns, self.latency_ns, self.bank_ns, self.issue_ns)

    @property
    def bound(self) -> str:
        """Which bound binds: ``"peak"``, ``"latency"``, ``"bank"`` or ``"issue"``."""
        times = {"peak": self.peak_ns, "latency": self.latency_ns, "bank": self.bank_ns,
                 "issue": self.issue_ns}
        return max(times, key=times.__getitem__)

    @property
    def gbps(self) -> float:
        """Bytes moved per nanosecond (GB/s) at :attr:`ns`."""
        return self.rows * self.moved_bytes / self.ns if self.rows else 0.0


def gather_time(tier: MemoryTier, rows: int, row_bytes: int, *, outstanding: int | None = None,
                ports: int | None = None, clock_mhz: float | None = None) -> GatherEstimate:
    """Closed-form time of reading ``rows`` random rows of ``row_bytes`` from ``tier``.

    Rows start on ``access_bytes`` boundaries (a row moves ``R' = ceil(R / access_bytes)``
    blocks) and on interleave-chunk boundaries (it spans ``p = ceil(R' / interleave_bytes)``
    chunks on ``k = min(p, channels)`` channels); every chunk is a row miss (a table much
    larger than the row buffers). With ``C`` channels of ``bw`` bytes per ns and ``Q``
    requests in flight per channel, the time is the largest of ``N R' / (C bw)`` (peak
    bandwidth), ``N k L / (Q C)`` with ``L = miss + R' / (k bw) + read latency`` (each request
    holds a slot on each of its ``k`` channels for ``L``), ``N p (miss + R' / (p bw)) /
    (C banks)`` (bank occupancy) and ``N / (ports x clock)`` (issue).

    Parameters
    ----------
    tier : MemoryTier
    rows : int
        ``N``, non-negative.
    row_bytes : int
        ``R``, positive.
    outstanding : int, optional
        ``Q``; default ``tier.outstanding``.
    ports : int, optional
        Requests issued per cycle; default ``tier.channels``. Used only with ``clock_mhz``.
    clock_mhz : float, optional
        Requester clock; without it the issue bound is 0.

    Returns
    -------
    GatherEstimate

    Raises
    ------
    ValueError
        On a negative ``rows`` or a non-positive ``row_bytes``, ``outstanding``, ``ports`` or
        ``clock_mhz``.
    """
    q = tier.outstanding if outstanding is None else outstanding
    ports = tier.channels if ports is None else ports
    for name, v, low in (("rows", rows, 0), ("row_bytes", row_bytes, 1), ("outstanding", q, 1),
                         ("ports", ports, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            kind = "non-negative" if low == 0 else "positive"
            raise ValueError(f"{name} must be a {kind} integer, not {v!r}")
    if clock_mhz is not None and not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be positive, not {clock_mhz!r}")
    c, bw = tier.channels, tier.bandwidth_gbps
    moved = -(-row_bytes // tier.access_bytes) * tier.access_bytes
    p = -(-moved // tier.interleave_bytes)
    k = min(p, c)
    latency = tier.row_miss_ns + moved / (k * bw) + tier.read_latency_ns
    peak = rows * moved / (c * bw)
    little = rows * k * latency / (q * c)
    bank = rows * p * (tier.row_miss_ns + moved / (p * bw)) / (c * tier.banks)
    issue = rows / ports * 1000.0 / clock_mhz if clock_mhz is not None else 0.0
    return GatherEstimate(int(rows), int(moved), peak, little, bank, issue)


# --- placement ---------------------------------------------------------------------------------


class PlacementError(ValueError):
    """A table fits in no tier's free capacity (the message names the table, the tiers and
    their free bytes)."""


@dataclass(frozen=True)
class Placement:
    """Where :func:`place_tables` put each table.

    Attributes
    ----------
    tiers : tuple of str
        Tier name of each table.
    offsets : tuple of int
        Byte offset of each table in its tier (a multiple of the tier's ``row_bytes``).
    used : tuple of (str, int)
        Bytes taken in each tier of the placement order, alignment included.
    """

    tiers: tuple[str, ...]
    offsets: tuple[int, ...]
    used: tuple[tuple[str, int], ...]

    def tables_in(self, tier: str) -> tuple[int, ...]:
        """Indices of the tables placed in ``tier``."""
        return tuple(i for i, t in enumerate(self.tiers) if t == tier)


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} B"


def place_tables(sizes: Sequence[int], lookup: LookupConfig) -> Placement:
    """Place tables of ``sizes`` bytes, in order, first fit into ``lookup.placement_order``.

    Each table goes into the first tier (in placement order) with room for it, at the next
    multiple of that tier's ``row_bytes`` (so a table row of a power-of-two size up to
    ``row_bytes`` never straddles two DRAM rows). The hot-row cache (``lookup.hot_rows``) is
    not a tier and holds no table: it keeps copies of rows a command reads, from whichever tier
    holds them, and takes no capacity here (:mod:`hwsim.units.lookup`).

    Parameters
    ----------
    sizes : sequence of int
        Bytes of each table (non-negative).
    lookup : LookupConfig

    Returns
    -------
    Placement

    Raises
    ------
    PlacementError
        If a table fits in no tier; the message names it, its size and each tier's free space.
    ValueError
        If a size is not a non-negative integer.
    """
    if not isinstance(lookup, LookupConfig):
        raise TypeError(f"lookup must be a LookupConfig, not {type(lookup).__name__}")
    order = [lookup.tier(n) for n in lookup.placement_order]
    used = {t.name: 0 for t in order}
    tiers, offsets = [], []
    for i, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
            raise ValueError(f"table {i}: size must be a non-negative integer, not {size!r}")
        for t in order:
            at = -(-used[t.name] // t.row_bytes) * t.row_bytes
            if at + size <= t.capacity_bytes:
                tiers.append(t.name)
                offsets.append(at)
                used[t.name] = at + int(size)
                break
        else:
            free = ", ".join(f"{t.name} {_size(t.capacity_bytes - used[t.name])} of "
                             f"{_size(t.capacity_bytes)}" for t in order)
            raise PlacementError(f"table {i} ({_size(int(size))}, {int(size)} bytes) fits in no "
                                 f"tier: free space {free}")
    return Placement(tuple(tiers), tuple(offsets), tuple(used.items()))
