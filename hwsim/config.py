"""Accelerator configuration: frozen, hashable dataclasses, named presets, YAML in and out.

Every block of the machine reads its parameters from one :class:`AcceleratorConfig`. The
config's :meth:`AcceleratorConfig.key` (a content hash) is the cache key of sweeps and
mapping searches, so two equal configs always share results and a changed field never does.

A bad value raises :class:`ConfigError`, whose message names the field (dotted path) and the
allowed values; nothing is silently ignored or clamped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DATAFLOWS",
    "DATATYPES",
    "LOOKUP_ELEMENTS",
    "TIER_KINDS",
    "AcceleratorConfig",
    "ArrayConfig",
    "BufferConfig",
    "ConfigError",
    "DramConfig",
    "EnergyTable",
    "LookupConfig",
    "MemoryTier",
    "SoreConfig",
    "VectorConfig",
    "load_config",
    "preset",
    "preset_names",
]

DATAFLOWS = ("os", "ws")
DATATYPES = ("int8", "fp16")
DRAM_MODELS = ("fixed", "banked")
DMA_ISSUE = ("entry", "wide", "burst")
TIER_KINDS = ("sram", "hbm", "ddr", "cxl", "pmem")
LOOKUP_ELEMENTS = ("fp16", "int8")


class ConfigError(ValueError):
    """A configuration field has a value outside what is allowed.

    Parameters
    ----------
    field : str
        Dotted path of the field, e.g. ``"array.rows"``.
    value : object
        The offending value.
    allowed : str
        Human-readable description of the allowed values.
    """

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"config field {field!r} = {value!r} is not allowed: expected {allowed}")


def _positive_int(path: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(path, value, "a positive integer")


def _nonneg_number(path: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(path, value, "a non-negative number")


def _positive_number(path: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(path, value, "a positive number")


def _power_of_two(path: str, value: Any) -> None:
    _positive_int(path, value)
    if value & (value - 1):
        raise ConfigError(path, value, "a power of two")


def parse_nm(text: str, path: str = "pattern") -> tuple[int, int]:
    """Parse an ``"N:M"`` sparsity pattern into ``(n, m)``.

    Raises
    ------
    ConfigError
        If the text is not two positive integers ``N:M`` with ``N <= M`` and ``M`` a power of two.
    """
    allowed = "'N:M' with 1 <= N <= M and M a power of two, e.g. '2:8'"
    if not isinstance(text, str) or text.count(":") != 1:
        raise ConfigError(path, text, allowed)
    a, b = text.split(":")
    if not (a.strip().isdigit() and b.strip().isdigit()):
        raise ConfigError(path, text, allowed)
    n, m = int(a), int(b)
    if not (1 <= n <= m) or m & (m - 1):
        raise ConfigError(path, text, allowed)
    return n, m


@dataclass(frozen=True)
class ArrayConfig:
    """The PE array.

    Parameters
    ----------
    rows, cols : int
        PE array size R x C.
    dataflows : tuple of str
        Supported dataflows, a non-empty subset of ``("os", "ws")``.
    patterns : tuple of str
        Supported N:M sparse patterns, e.g. ``("2:4", "2:8", "1:8")``. Empty: dense only.
    dtype : str
        Operand datatype: ``"int8"`` (int32 accumulate) or ``"fp16"`` (fp32 accumulate).
    """

    rows: int = 4
    cols: int = 4
    dataflows: tuple[str, ...] = DATAFLOWS
    patterns: tuple[str, ...] = ("2:4", "2:8", "1:8")
    dtype: str = "int8"

    def validate(self, path: str = "array") -> None:
        _positive_int(f"{path}.rows", self.rows)
        _positive_int(f"{path}.cols", self.cols)
        if not self.dataflows or any(d not in DATAFLOWS for d in self.dataflows):
            raise ConfigError(f"{path}.dataflows", self.dataflows,
                              f"a non-empty subset of {DATAFLOWS}")
        for p in self.patterns:
            parse_nm(p, f"{path}.patterns")
        if self.dtype not in DATATYPES:
            raise ConfigError(f"{path}.dtype", self.dtype, f"one of {DATATYPES}")

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def elem_bytes(self) -> int:
        """Bytes of one operand element."""
        return 1 if self.dtype == "int8" else 2

    @property
    def acc_bytes(self) -> int:
        """Bytes of one accumulator element (int32 or fp32)."""
        return 4

    @property
    def nm_patterns(self) -> tuple[tuple[int, int], ...]:
        return tuple(parse_nm(p) for p in self.patterns)


@dataclass(frozen=True)
class BufferConfig:
    """On-chip SRAM buffers (each double-buffered when ``double_buffered``).

    Sizes are totals in KiB, both halves included.
    """

    act_kib: int = 1
    wgt_kib: int = 1
    acc_kib: int = 2
    double_buffered: bool = True
    idx_kib: int = 1
    vec_kib: int = 1

    def validate(self, path: str = "buffers") -> None:
        for name in ("act_kib", "wgt_kib", "acc_kib", "idx_kib", "vec_kib"):
            _positive_int(f"{path}.{name}", getattr(self, name))
        if not isinstance(self.double_buffered, bool):
            raise ConfigError(f"{path}.double_buffered", self.double_buffered, "true or false")


@dataclass(frozen=True)
class DramConfig:
    """Off-chip DRAM as seen by the DMA engines.

    Parameters
    ----------
    model : str
        ``"fixed"``: every request returns after ``latency_ns`` with one beat of ``bus_bytes``
        per cycle per channel (what the RTL testbench serves); ``"banked"``: channels, banks and
        row buffers (row hits are cheaper than misses).
    channels : int
    bandwidth_gbps : float
        Peak bandwidth per channel, GB/s.
    latency_ns : float
        Loaded access latency (row hit for the banked model).
    bus_bytes : int
        Bytes moved per beat on the accelerator side of the DMA (power of two).
    banks, row_bytes, row_miss_ns : int, int, float
        Banked model: banks per channel, row-buffer size and the extra cost of a row miss.
    request_ports : int
        Banked model: requests the DMA front end issues per cycle (its address ports, e.g. one
        AXI4 port per memory controller). 1 issues one request per cycle for the whole DRAM.
    dma : str
        How the DMA engines issue a LOAD or STORE. ``"entry"`` (the default, what
        ``rtl/dma.py`` builds): one request per buffer entry, one a cycle, at most
        :data:`hwsim.dram.DMA_IN_FLIGHT` in flight, each channel moving at most
        ``bus_bytes / channels`` bytes a cycle (its AXI4 port). ``"wide"`` (also built by
        ``rtl/dma.py``): as ``"entry"``, except that a LOAD of whole, contiguous ACT, WGT or IDX
        entries at an aligned buffer address asks for a bus word of ``bus_bytes`` (several
        entries) per request and writes them in one cycle (:func:`hwsim.units.dma.load_beats`).
        ``"burst"`` (banked model only): a DMA that merges contiguous entries into 4 KiB bursts
        on ``request_ports`` ports, not built in RTL: a design-space point.
    """

    model: str = "fixed"
    channels: int = 1
    bandwidth_gbps: float = 1.6
    latency_ns: float = 40.0
    bus_bytes: int = 16
    banks: int = 16
    row_bytes: int = 2048
    row_miss_ns: float = 30.0
    request_ports: int = 1
    dma: str = "entry"

    def validate(self, path: str = "dram") -> None:
        if self.model not in DRAM_MODELS:
            raise ConfigError(f"{path}.model", self.model, f"one of {DRAM_MODELS}")
        _positive_int(f"{path}.channels", self.channels)
        _positive_number(f"{path}.bandwidth_gbps", self.bandwidth_gbps)
        _nonneg_number(f"{path}.latency_ns", self.latency_ns)
        _power_of_two(f"{path}.bus_bytes", self.bus_bytes)
        _positive_int(f"{path}.banks", self.banks)
        _power_of_two(f"{path}.row_bytes", self.row_bytes)
        _nonneg_number(f"{path}.row_miss_ns", self.row_miss_ns)
        _positive_int(f"{path}.request_ports", self.request_ports)
        if self.dma not in DMA_ISSUE:
            raise ConfigError(f"{path}.dma", self.dma, f"one of {DMA_ISSUE}")


@dataclass(frozen=True)
class MemoryTier:
    """One level of the lookup engine's table memory: on-chip SRAM, HBM, DDR, CXL or PMEM.

    A tier is ``channels`` independent channels, each with ``banks`` banks of one open
    ``row_bytes`` row buffer, timed by :class:`hwsim.tiers.TierModel` (the banked model of
    :mod:`hwsim.dram`). :func:`hwsim.tiers.tier_preset` has sourced numbers for each kind; the
    defaults here are one DDR4-3200 channel.

    Parameters
    ----------
    name : str
        Unique within :attr:`LookupConfig.tiers`; :attr:`LookupConfig.placement` refers to it.
    kind : str
        One of :data:`TIER_KINDS`: ``"sram"``, ``"hbm"``, ``"ddr"``, ``"cxl"``, ``"pmem"``.
    capacity_gib : float
        Capacity over all channels, GiB (2^30 bytes); tables are placed by it.
    channels : int
        Independent channels (HBM: pseudo-channels; DDR5: 32-bit sub-channels).
    banks : int
        Banks per channel, each with its own row buffer.
    row_bytes : int
        Row-buffer (page) size per bank over the channel's width, a power of two. For SRAM a
        nominal value: ``row_miss_ns`` must be 0 there.
    interleave_bytes : int
        Channel interleaving granularity, a power of two from ``access_bytes`` to ``row_bytes``:
        consecutive chunks of this size rotate over the channels, so a table row of at most this
        size, aligned, is served by one channel from one DRAM row.
    access_bytes : int
        Access granularity, a power of two: every request moves whole aligned accesses (64 for
        DDR, HBM, CXL and SRAM lines, 256 for Optane-class persistent memory), so a 64-byte
        read from a 256-byte-granular tier moves 256 bytes.
    bandwidth_gbps : float
        Peak read bandwidth per channel, GB/s (10^9 bytes per second).
    write_bandwidth_gbps : float
        Peak write bandwidth per channel (persistent memory writes far slower than it reads).
    read_latency_ns, write_latency_ns : float
        From a request's last data leaving the channel's bus to its completion (a row hit's
        latency; a row miss adds ``row_miss_ns`` before the transfer).
    row_miss_ns : float
        Precharge and activate of a row miss (0 for SRAM).
    outstanding : int
        Requests in flight per channel (the controller's queue; Little's law: a channel needs
        ``bandwidth x latency`` bytes in flight to reach its peak).
    read_pj_per_byte, write_pj_per_byte : float
        Energy per byte moved, picojoules (the tier's device and interface; a byte read or
        written through the access granularity counts).
    """

    name: str = "ddr"
    kind: str = "ddr"
    capacity_gib: float = 32.0
    channels: int = 1
    banks: int = 16
    row_bytes: int = 8192
    interleave_bytes: int = 4096
    access_bytes: int = 64
    bandwidth_gbps: float = 25.6
    write_bandwidth_gbps: float = 25.6
    read_latency_ns: float = 65.0
    write_latency_ns: float = 65.0
    row_miss_ns: float = 27.5
    outstanding: int = 64
    read_pj_per_byte: float = 160.0
    write_pj_per_byte: float = 160.0

    def validate(self, path: str = "tier") -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{path}.name", self.name, "a non-empty string")
        if self.kind not in TIER_KINDS:
            raise ConfigError(f"{path}.kind", self.kind, f"one of {TIER_KINDS}")
        _positive_number(f"{path}.capacity_gib", self.capacity_gib)
        _positive_int(f"{path}.channels", self.channels)
        _positive_int(f"{path}.banks", self.banks)
        _power_of_two(f"{path}.row_bytes", self.row_bytes)
        _power_of_two(f"{path}.access_bytes", self.access_bytes)
        _power_of_two(f"{path}.interleave_bytes", self.interleave_bytes)
        if not self.access_bytes <= self.interleave_bytes <= self.row_bytes:
            raise ConfigError(
                f"{path}.interleave_bytes", self.interleave_bytes,
                f"a power of two from access_bytes ({self.access_bytes}) to row_bytes "
                f"({self.row_bytes})")
        _positive_number(f"{path}.bandwidth_gbps", self.bandwidth_gbps)
        _positive_number(f"{path}.write_bandwidth_gbps", self.write_bandwidth_gbps)
        _nonneg_number(f"{path}.read_latency_ns", self.read_latency_ns)
        _nonneg_number(f"{path}.write_latency_ns", self.write_latency_ns)
        _nonneg_number(f"{path}.row_miss_ns", self.row_miss_ns)
        if self.kind == "sram" and self.row_miss_ns != 0:
            raise ConfigError(f"{path}.row_miss_ns", self.row_miss_ns,
                              "0 for an sram tier (its row misses are free)")
        _positive_int(f"{path}.outstanding", self.outstanding)
        _nonneg_number(f"{path}.read_pj_per_byte", self.read_pj_per_byte)
        _nonneg_number(f"{path}.write_pj_per_byte", self.write_pj_per_byte)

    @property
    def capacity_bytes(self) -> int:
        """Capacity in bytes (``capacity_gib * 2^30``, rounded down)."""
        return int(self.capacity_gib * (1 << 30))

    @property
    def peak_gbps(self) -> float:
        """Peak read bandwidth over all channels, GB/s."""
        return self.channels * self.bandwidth_gbps

    @property
    def peak_write_gbps(self) -> float:
        """Peak write bandwidth over all channels, GB/s."""
        return self.channels * self.write_bandwidth_gbps


@dataclass(frozen=True)
class SoreConfig:
    """Sparse online reduction engine: ``lanes`` streaming top-N-of-M selectors."""

    lanes: int = 4

    def validate(self, path: str = "sore") -> None:
        _positive_int(f"{path}.lanes", self.lanes)


@dataclass(frozen=True)
class VectorConfig:
    """Weight-update vector engine: fp32 lanes (SGD with momentum, fp16 cast)."""

    lanes: int = 4

    def validate(self, path: str = "vector") -> None:
        _positive_int(f"{path}.lanes", self.lanes)


MAX_HOT_ROWS = 1 << 20
"""The largest ``lookup.hot_rows`` a config may ask for."""
MAX_ROW_BYTES = (1 << 16) - 1
"""The largest ``lookup.row_bytes``: a row request's length is 16 bits."""
MAX_SLOTS = 1 << 12
"""The largest ``lookup.slots`` (tags of 12 bits)."""


@dataclass(frozen=True)
class LookupConfig:
    """Big-memory lookup engine (MemoryFormer hashing, gathers; AttMEMO map fetches).

    Parameters
    ----------
    hash_lanes : int
        Chunk elements ``z_j`` the hash unit takes per cycle (sign bit, ``sigmoid(2|z_j|/t)``
        of :func:`hwsim.numerics.hw_sigmoid`, one product step each). A token needs ``d`` of
        them against ``K x h`` gathered elements, so a few lanes keep up with the gathers.
    gather_lanes : int
        fp32 accumulate lanes: table-row elements weighted and accumulated per cycle. Sized so
        that ``gather_lanes x element bytes x clock`` exceeds the tiers' bandwidth, the engine
        stays memory-bound (rows of 0.5-2 KB, DESIGN.md).
    tiers : tuple of MemoryTier
        The table memories, names unique.
    placement : tuple of str
        Tier names in the order tables fill them by capacity
        (:func:`hwsim.tiers.place_tables`); ``()`` means every tier in the order of ``tiers``
        (kept empty rather than filled in so that replacing ``tiers`` keeps the default).
    hot_rows : int
        Rows of an on-chip hot-row SRAM cache in front of the tiers (0: none), at most
        :data:`MAX_HOT_ROWS`. Row requests that hit it never reach a tier: fully associative,
        LRU, cold at each GATHER or SCATTER mode 0 (the row update bypasses it), write-through;
        :mod:`hwsim.units.lookup` states the model.
    element : str
        Table row element, ``"fp16"`` or ``"int8"`` (bytes per element: 2 or 1); a row of ``h``
        elements is ``h x element bytes``.
    request_ports : int
        Row requests the gather unit issues per cycle over all tiers (its address ports): with
        small rows this, not bandwidth, can bound the gathers.
    inflight_kib : int
        On-chip buffer for rows requested and not yet accumulated, KiB. Rows in flight are at
        most ``inflight_kib * 1024 // row bytes`` (:meth:`rows_in_flight`), and Little's law
        needs ``bandwidth x latency`` bytes in flight to reach a tier's peak.
    row_bytes : int
        Widest table row the engine's row buffers hold, bytes (``rtl.lookup``'s ``row_bytes``:
        a GATHER's ``width x element bytes``, a SCATTER's ``width x 4``); a multiple of 4, at
        most 65,535 (the row request's 16-bit length).
    slots : int
        Row-buffer slots (``rtl.lookup``'s ``slots``, its read tags): a GATHER's or SCATTER
        mode 0's row window (:meth:`row_window`) must fit them, a row update's window a quarter
        of them. A power of two, at least 16.
    max_tau : int
        Widest HASH chunk (``width``), 2 to 31 (a row index is a 32-bit word).
    min_dy_chunks : int
        Fewest chunks a token of GATHER mode 1 and SCATTER mode 0 (the commands that load dY
        through the VEC read port the row indices share): at least 2, what keeps dY's loads
        ahead of the lanes in the RTL.
    min_dy_entries : int
        Fewest VEC entries a row of GATHER mode 1 and SCATTER mode 0 (``width >=
        min_dy_entries x vector.lanes``), at least 2, for the same reason.
    rtl_limits : bool
        Whether hwsim refuses the lookup commands the RTL engine built from this config cannot
        run (:func:`hwsim.units.lookup.rtl_limit`): rows beyond ``row_bytes`` or not whole VEC
        entries, windows beyond ``slots``, chunks beyond ``max_tau``, dY commands below
        ``min_dy_chunks`` or ``min_dy_entries``. False (the default) models an engine sized for
        the program, as the presets' MemoryFormer studies need (rows of 1 KiB, windows of
        hundreds of rows); the RTL cosimulation's configs set it.

    ``row_bytes``, ``slots``, ``max_tau``, ``min_dy_chunks`` and ``min_dy_entries`` are the
    RTL's finite sizes: :class:`rtl.lookup.unit.LookupUnit` is built from them, and their
    defaults are what it is built with by default.
    """

    hash_lanes: int = 4
    gather_lanes: int = 4
    tiers: tuple[MemoryTier, ...] = (MemoryTier(),)
    placement: tuple[str, ...] = ()
    hot_rows: int = 0
    element: str = "fp16"
    request_ports: int = 1
    inflight_kib: int = 16
    row_bytes: int = 64
    slots: int = 32
    max_tau: int = 16
    min_dy_chunks: int = 2
    min_dy_entries: int = 2
    rtl_limits: bool = False

    def validate(self, path: str = "lookup") -> None:
        _positive_int(f"{path}.hash_lanes", self.hash_lanes)
        _positive_int(f"{path}.gather_lanes", self.gather_lanes)
        if not isinstance(self.tiers, tuple) or not self.tiers:
            raise ConfigError(f"{path}.tiers", self.tiers, "at least one memory tier")
        for i, t in enumerate(self.tiers):
            if not isinstance(t, MemoryTier):
                raise ConfigError(f"{path}.tiers[{i}]", t, "a memory tier mapping")
            t.validate(f"{path}.tiers[{i}]")
        names = [t.name for t in self.tiers]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise ConfigError(f"{path}.tiers[{i}].name", n,
                                  f"a name no other tier has (tiers: {names})")
        if not isinstance(self.placement, tuple) or any(
                p not in names for p in self.placement) or len(set(self.placement)) != len(
                self.placement):
            raise ConfigError(f"{path}.placement", self.placement,
                              f"distinct tier names from {tuple(names)}, or () for all in order")
        if isinstance(self.hot_rows, bool) or not isinstance(self.hot_rows, int) \
                or self.hot_rows < 0:
            raise ConfigError(f"{path}.hot_rows", self.hot_rows, "a non-negative integer")
        if self.hot_rows > MAX_HOT_ROWS:
            raise ConfigError(f"{path}.hot_rows", self.hot_rows,
                              f"at most {MAX_HOT_ROWS:,} rows (2**20: a fully associative "
                              "cache of 1 KiB rows would already be a 1 GiB SRAM)")
        if self.element not in LOOKUP_ELEMENTS:
            raise ConfigError(f"{path}.element", self.element, f"one of {LOOKUP_ELEMENTS}")
        _positive_int(f"{path}.request_ports", self.request_ports)
        _positive_int(f"{path}.inflight_kib", self.inflight_kib)
        _positive_int(f"{path}.row_bytes", self.row_bytes)
        if self.row_bytes % 4 or self.row_bytes > MAX_ROW_BYTES:
            raise ConfigError(f"{path}.row_bytes", self.row_bytes,
                              f"a multiple of 4 (whole fp32 words) of at most {MAX_ROW_BYTES} "
                              "(a row request's 16-bit length)")
        _positive_int(f"{path}.slots", self.slots)
        if self.slots < 16 or self.slots & (self.slots - 1) or self.slots > MAX_SLOTS:
            raise ConfigError(f"{path}.slots", self.slots,
                              f"a power of two from 16 to {MAX_SLOTS} (the row update's "
                              "tags, whose quarter are its slots)")
        _positive_int(f"{path}.max_tau", self.max_tau)
        if not 2 <= self.max_tau <= 31:
            raise ConfigError(f"{path}.max_tau", self.max_tau,
                              "2 to 31 (a chunk's code is one bit an element of a 32-bit row "
                              "index)")
        for name in ("min_dy_chunks", "min_dy_entries"):
            v = getattr(self, name)
            _positive_int(f"{path}.{name}", v)
            if v < 2:
                raise ConfigError(f"{path}.{name}", v, "at least 2 (what keeps dY's loads "
                                  "ahead of the lanes in the RTL)")
        if not isinstance(self.rtl_limits, bool):
            raise ConfigError(f"{path}.rtl_limits", self.rtl_limits, "true or false")

    @property
    def placement_order(self) -> tuple[str, ...]:
        """Tier names in placement order (``placement``, or every tier when it is empty)."""
        return self.placement or tuple(t.name for t in self.tiers)

    @property
    def element_bytes(self) -> int:
        """Bytes of one table element."""
        return 2 if self.element == "fp16" else 1

    def tier(self, name: str) -> MemoryTier:
        """The tier called ``name``.

        Raises
        ------
        KeyError
            If no tier has that name.
        """
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(f"no memory tier {name!r}; tiers: {[t.name for t in self.tiers]}")

    def rows_in_flight(self, row_bytes: int) -> int:
        """Row requests the in-flight buffer holds for rows of ``row_bytes`` (at least 1)."""
        return max(1, self.inflight_kib * 1024 // row_bytes)

    def row_window(self, row_bytes: int) -> int:
        """Rows a command of rows of ``row_bytes`` keeps in flight (its slots in the RTL):
        ``max(4, rows_in_flight(row_bytes))``."""
        return max(4, self.rows_in_flight(row_bytes))


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action, picojoules. Order-of-magnitude 16 nm-class figures (our assumption;
    replace with an Accelergy-style table for a specific process)."""

    mac_int8: float = 0.2
    mac_fp16: float = 1.0
    sram_read_byte: float = 0.6
    sram_write_byte: float = 0.8
    dram_byte: float = 20.0
    sore_compare: float = 0.05
    vector_flop: float = 1.5
    static_mw: float = 50.0

    def validate(self, path: str = "energy") -> None:
        for f in fields(self):
            _nonneg_number(f"{path}.{f.name}", getattr(self, f.name))


_SECTIONS = {
    "array": ArrayConfig,
    "buffers": BufferConfig,
    "dram": DramConfig,
    "sore": SoreConfig,
    "vector": VectorConfig,
    "lookup": LookupConfig,
    "energy": EnergyTable,
}


@dataclass(frozen=True)
class AcceleratorConfig:
    """The whole accelerator. Frozen and hashable; :meth:`key` is the sweep cache key.

    Parameters
    ----------
    name : str
        Free-form label (part of the hash).
    clock_mhz : float
        Clock frequency; converts DRAM nanoseconds and GB/s into cycles and bytes per cycle.
    queue_depth : int
        Commands each unit's queue holds between the controller's dispatch and the unit.
    array, buffers, dram, sore, vector, lookup, energy
        The sections; see their classes.

    Raises
    ------
    ConfigError
        On construction, if any field is outside its allowed values.
    """

    name: str = "custom"
    clock_mhz: float = 100.0
    queue_depth: int = 4
    array: ArrayConfig = field(default_factory=ArrayConfig)
    buffers: BufferConfig = field(default_factory=BufferConfig)
    dram: DramConfig = field(default_factory=DramConfig)
    sore: SoreConfig = field(default_factory=SoreConfig)
    vector: VectorConfig = field(default_factory=VectorConfig)
    lookup: LookupConfig = field(default_factory=LookupConfig)
    energy: EnergyTable = field(default_factory=EnergyTable)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError("name", self.name, "a string")
        _positive_number("clock_mhz", self.clock_mhz)
        if not isinstance(self.queue_depth, int) or isinstance(self.queue_depth, bool) \
                or not 1 <= self.queue_depth <= 64:
            raise ConfigError("queue_depth", self.queue_depth, "an integer from 1 to 64")
        for sec, cls in _SECTIONS.items():
            v = getattr(self, sec)
            if not isinstance(v, cls):
                raise ConfigError(sec, v, f"a {cls.__name__} mapping")
            v.validate(sec)
        entry = max(self.act_entry_bytes, self.wgt_entry_bytes, self.acc_entry_bytes,
                    self.vec_entry_bytes)
        if entry > self.dram.bus_bytes:
            raise ConfigError(
                "dram.bus_bytes", self.dram.bus_bytes,
                f"at least one buffer entry ({entry} bytes: array.cols x accumulator bytes)",
            )
        for name, depth in (("act_kib", self.act_depth), ("wgt_kib", self.wgt_depth),
                            ("acc_kib", self.acc_depth)):
            if depth < 2 * self.array.rows:
                raise ConfigError(
                    f"buffers.{name}", getattr(self.buffers, name),
                    f"room for at least {2 * self.array.rows} entries (two array tiles)",
                )
        for name, depth in (("act_kib", self.act_depth), ("wgt_kib", self.wgt_depth),
                            ("acc_kib", self.acc_depth), ("idx_kib", self.idx_depth),
                            ("vec_kib", self.vec_depth)):
            if depth > 1 << 16:
                raise ConfigError(
                    f"buffers.{name}", getattr(self.buffers, name),
                    f"at most {1 << 16} entries ({depth} here): the ISA's buffer addresses "
                    "are 16 bits",
                )

    # --- derived values -------------------------------------------------------------------
    @property
    def act_entry_bytes(self) -> int:
        """One activation-buffer entry: a column slice of R operands."""
        return self.array.rows * self.array.elem_bytes

    @property
    def wgt_entry_bytes(self) -> int:
        """One weight-buffer entry: a row slice of C operands."""
        return self.array.cols * self.array.elem_bytes

    @property
    def acc_entry_bytes(self) -> int:
        """One accumulator-buffer entry: C accumulators."""
        return self.array.cols * self.array.acc_bytes

    @property
    def idx_entry_bytes(self) -> int:
        """One index-buffer entry: an in-group index byte per column."""
        return self.array.cols

    @property
    def vec_entry_bytes(self) -> int:
        """One vector-scratch entry: an fp32 word per vector lane."""
        return 4 * self.vector.lanes

    def _depth(self, name: str) -> int:
        """Entries of buffer ``name``: its KiB over its entry's bytes."""
        return getattr(self.buffers, f"{name}_kib") * 1024 // getattr(self, f"{name}_entry_bytes")

    act_depth = property(lambda self: self._depth("act"), doc="Entries of the ACT buffer.")
    wgt_depth = property(lambda self: self._depth("wgt"), doc="Entries of the WGT buffer.")
    acc_depth = property(lambda self: self._depth("acc"), doc="Entries of the ACC buffer.")
    idx_depth = property(lambda self: self._depth("idx"), doc="Entries of the IDX buffer.")
    vec_depth = property(lambda self: self._depth("vec"), doc="Entries of the VEC buffer.")

    @property
    def dram_latency_cycles(self) -> int:
        """DRAM access latency in accelerator cycles (rounded up)."""
        return math.ceil(self.dram.latency_ns * self.clock_mhz / 1000.0 - 1e-9)

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Peak DRAM bytes per accelerator cycle over all channels."""
        return self.dram.channels * self.dram.bandwidth_gbps * 1000.0 / self.clock_mhz

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.array.pes

    def supports_pattern(self, pattern: str | tuple[int, int] | None) -> bool:
        if pattern is None:
            return True
        nm = parse_nm(pattern) if isinstance(pattern, str) else tuple(pattern)
        return nm in self.array.nm_patterns

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if dataclasses.is_dataclass(v):
                return {f.name: conv(getattr(v, f.name)) for f in fields(v)}
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            return v

        return conv(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any) -> AcceleratorConfig:
        """Build a config from a mapping (e.g. parsed YAML); unknown keys are errors.

        A mapping may name ``base: PRESET`` to start from a preset and override some fields.
        """
        if not isinstance(data, dict):
            raise ConfigError("<root>", type(data).__name__, "a mapping of config sections")
        data = dict(data)
        base = data.pop("base", None)
        if base is not None and not isinstance(base, str):
            raise ConfigError("base", base, f"a preset name {preset_names()}")
        start = preset(base).to_dict() if base is not None else cls().to_dict()
        return _build(cls, _merge(start, data, ""), "")

    @classmethod
    def from_yaml(cls, text: str) -> AcceleratorConfig:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError("<yaml>", "unparseable",
                              f"valid YAML ({e.__class__.__name__})") from None
        except RecursionError:
            raise ConfigError("<yaml>", "nested too deeply", "a config's few levels of "
                              "sections") from None
        return cls.from_dict(data)

    def key(self) -> str:
        """Content hash (sha256 of canonical JSON, 16 hex digits): the sweep cache key."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes: Any) -> AcceleratorConfig:
        """A copy with some top-level fields or ``section__field`` values changed."""
        top, nested = {}, {}
        for k, v in changes.items():
            if "__" in k:
                sec, f = k.split("__", 1)
                nested.setdefault(sec, {})[f] = v
            else:
                top[k] = v
        for sec, kv in nested.items():
            if sec not in _SECTIONS:
                raise ConfigError(sec, kv, f"one of {tuple(_SECTIONS)}")
            top[sec] = _build(_SECTIONS[sec], {**_asdict(getattr(self, sec)), **kv}, sec)
        return dataclasses.replace(self, **top)


def _asdict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _merge(base: dict, over: dict, path: str) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, f"{path}{k}.")
        else:
            out[k] = v
    return out


def _field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of dataclass ``cls``."""
    import typing

    return typing.get_type_hints(cls)


def _check_type(path: str, value: Any, hint: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` (parsed YAML) can be a field of type
    ``hint``: ``int`` (not a bool), ``float`` (an int or float, not a bool), ``bool``, ``str``,
    ``tuple[X, ...]`` (a list or tuple of such), or a section (a mapping, checked in turn). The
    dataclasses' own ``validate`` then checks ranges."""
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(path, value, "a list")
        for i, v in enumerate(value):
            _check_type(f"{path}[{i}]", v, args[0])
        return
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict | hint):
            raise ConfigError(path, value, f"a mapping of {hint.__name__} fields")
        return
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool),
          str: lambda v: isinstance(v, str)}.get(hint)
    if ok is not None and not ok(value):
        raise ConfigError(path, value, {int: "an integer", float: "a number", bool: "true or "
                                        "false", str: "a string"}[hint])


def _build(cls: type, data: Any, path: str) -> Any:
    """Recursively build dataclass ``cls`` from a mapping, naming bad fields by dotted path."""
    where = path or "<root>"
    if not isinstance(data, dict):
        raise ConfigError(where, data, f"a mapping for {cls.__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        p = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(p, data[unknown[0]], f"a field of {cls.__name__}: {sorted(known)}")
    kwargs = {}
    hints = _field_types(cls)
    for name, value in data.items():
        p = f"{path}.{name}" if path else name
        _check_type(p, value, hints[name])
        if name in _SECTIONS and cls is AcceleratorConfig:
            kwargs[name] = _build(_SECTIONS[name], value, p)
        elif cls is LookupConfig and name == "tiers":
            if not isinstance(value, list | tuple):
                raise ConfigError(p, value, "a list of memory tiers")
            kwargs[name] = tuple(t if isinstance(t, MemoryTier) else
                                 _build(MemoryTier, t, f"{p}[{i}]") for i, t in enumerate(value))
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    obj = cls(**kwargs)
    if cls is not AcceleratorConfig:
        obj.validate(path)
    return obj


# --- presets ------------------------------------------------------------------------------

def _tiny() -> AcceleratorConfig:
    """4x4 int8 SAT, small enough for RTL simulation; DRAM served by the testbench."""
    return AcceleratorConfig(
        name="tiny",
        clock_mhz=100.0,
        array=ArrayConfig(rows=4, cols=4, dtype="int8"),
        buffers=BufferConfig(act_kib=1, wgt_kib=1, acc_kib=2),
        dram=DramConfig(model="fixed", channels=1, bandwidth_gbps=1.6, latency_ns=40.0,
                        bus_bytes=16),
        sore=SoreConfig(lanes=4),
        vector=VectorConfig(lanes=4),
    )


def _vcu1525() -> AcceleratorConfig:
    """FPGA-scale SAT on a Xilinx VCU1525 (VU9P). Our assumptions, not the paper's numbers:

    - 32 x 32 fp16 PE array at 200 MHz: 1,024 fp16 MACs. A fp16 multiply plus fp32 add takes
      about 2-3 DSP48E2 with LUT logic on UltraScale+, so ~2,500-3,000 of the 6,840 DSPs.
    - Buffers: 4 MiB act, 4 MiB wgt, 2 MiB acc, 1 MiB N:M indices, 1 MiB vector scratch:
      12 MiB of the 33.75 MiB URAM, leaving URAM and most of the 9.5 MiB BRAM for DMA FIFOs,
      SORE and the vector engine.
    - Four DDR4-2400 channels at 19.2 GB/s (the card's), 16 banks, 2 KiB rows, ~90 ns latency.
    - SORE: 32 lanes (the paper's figure).
    - Vector engine: 64 fp32 lanes, the most ``rtl.vector`` builds (2,048-bit VEC entries).
      Each lane is the UPDATE datapath's three fp32 multipliers and three adders, at most ~15
      DSP48E2 with Xilinx's floating-point operators (3 per multiply, 2 per add), so ~960 DSPs:
      with the array's 1,024 (``reports/synth``), about 2,000 of the 6,840. The 1 MiB VEC is
      then 4,096 entries x 2,048 bits, 29 URAM288 blocks side by side (as many as 32 lanes'
      8,192 x 1,024 bits take).
      Training CNNs with batch norm streams every activation through the vector engine several
      times per step (statistics, normalise, their backward): at 32 lanes its busy cycles are
      half the array's in a ResNet-50 BDWP 2:8 step and a fifth of that step's critical path
      (``reports/sat``, sensitivity table); at 64 lanes a twelfth.
    - DMA bus: 256 bytes (``dram.bus_bytes``), one VEC entry per beat, the width of four 512-bit
      AXI ports of the DDR4 controllers; DMA timing follows the channels' bandwidth and banks.
      The DMA is the RTL's wide one (``dram.dma: wide``): one request a cycle, a LOAD of whole
      contiguous operand rows asking for four 64-byte entries (a bus word) a request, so
      loads move up to 256 bytes a cycle over the four AXI ports (the entry DMA: 64).
    - Lookup engine (MemoryFormer, AttMEMO): tables in 16 MiB of the URAM left beside the
      buffers (``uram``: 16 channels of 64-byte lines, one line per channel per 200 MHz cycle,
      12.8 GB/s each; row misses free; 1.6 pJ/bit, the top of the SRAM range, for FPGA
      routing), then the card's four 16 GiB DDR4-2400 DIMMs (``ddr``: the ``dram`` section's
      channels, banks, rows and latencies, 2 KiB channel interleave so a table row of up to
      2 KiB stays in one DRAM row; 20 pJ/bit, the low end of DDR's 20-40). 256 fp32 gather
      lanes: 512 bytes of fp16 rows per cycle, 102 GB/s at 200 MHz, above the DDR's 76.8 GB/s,
      so gathers stay memory-bound; about 1,300 DSP48E2 at ~5 per lane (a multiply and an
      add). 16 hash lanes (a token hashes ``d`` elements but gathers ``d x h / tau``). Four
      request ports, one per DDR4 controller, and 64 KiB for rows in flight (Little's law:
      76.8 GB/s x ~150 ns ~ 12 KB, with room for the URAM tier's rate).
    """
    return AcceleratorConfig(
        name="vcu1525",
        clock_mhz=200.0,
        array=ArrayConfig(rows=32, cols=32, dtype="fp16"),
        buffers=BufferConfig(act_kib=4096, wgt_kib=4096, acc_kib=2048, idx_kib=1024,
                             vec_kib=1024),
        dram=DramConfig(model="banked", channels=4, bandwidth_gbps=19.2, latency_ns=90.0,
                        bus_bytes=256, banks=16, row_bytes=2048, row_miss_ns=30.0,
                        request_ports=4, dma="wide"),
        sore=SoreConfig(lanes=32),
        vector=VectorConfig(lanes=64),
        lookup=LookupConfig(
            hash_lanes=16, gather_lanes=256, element="fp16", request_ports=4, inflight_kib=64,
            tiers=(
                MemoryTier(name="uram", kind="sram", capacity_gib=16 / 1024, channels=16, banks=1,
                           row_bytes=64, interleave_bytes=64, access_bytes=64,
                           bandwidth_gbps=12.8, write_bandwidth_gbps=12.8, read_latency_ns=10.0,
                           write_latency_ns=10.0, row_miss_ns=0.0, outstanding=8,
                           read_pj_per_byte=12.8, write_pj_per_byte=12.8),
                MemoryTier(name="ddr", kind="ddr", capacity_gib=64.0, channels=4, banks=16,
                           row_bytes=2048, interleave_bytes=2048, access_bytes=64,
                           bandwidth_gbps=19.2, write_bandwidth_gbps=19.2, read_latency_ns=90.0,
                           write_latency_ns=90.0, row_miss_ns=30.0, outstanding=64,
                           read_pj_per_byte=160.0, write_pj_per_byte=160.0),
            )),
        energy=EnergyTable(),
    )


def _small8() -> AcceleratorConfig:
    """8x8 int8 array: the second configuration the RTL is tested at."""
    return dataclasses.replace(_tiny(), name="small8", array=ArrayConfig(rows=8, cols=8),
                               dram=DramConfig(bus_bytes=32), buffers=BufferConfig(2, 2, 4))


_PRESETS = {"tiny": _tiny, "small8": _small8, "vcu1525": _vcu1525}


def preset_names() -> tuple[str, ...]:
    return tuple(_PRESETS)


def preset(name: str) -> AcceleratorConfig:
    """A named preset: ``tiny``, ``small8`` or ``vcu1525``.

    Raises
    ------
    ConfigError
        If the name is unknown.
    """
    if name not in _PRESETS:
        raise ConfigError("preset", name, f"one of {preset_names()}")
    return _PRESETS[name]()


def load_config(spec: str | Path | AcceleratorConfig) -> AcceleratorConfig:
    """A preset name, a YAML file path, or a config passed through.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable file, or bad field.
    """
    if isinstance(spec, AcceleratorConfig):
        return spec
    s = str(spec)
    if s in _PRESETS:
        return preset(s)
    p = Path(s)
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        from .textfile import TextFileError, read_text

        try:
            text = read_text(p)
        except TextFileError as e:
            raise ConfigError("config", s, f"a readable YAML file ({e})") from None
        return AcceleratorConfig.from_yaml(text)
    raise ConfigError("config", s, f"a preset {preset_names()} or a YAML file path")
