"""The lookup engine's lane points: its hash, gather, scatter and row-update engines with few
lanes, built as for the config's table rows.

The lookup unit (:class:`rtl.lookup.unit.LookupUnit`) is four engines that grow with two
different lane counts: :class:`~rtl.lookup.hashing.HashEngine` (HASH, all four modes) with
``lookup.hash_lanes`` (``H``), and with ``lookup.gather_lanes`` (``G``) each of
:class:`~rtl.lookup.gather.GatherEngine` (GATHER modes 0 and 1),
:class:`~rtl.lookup.scatter.ScatterEngine` (SCATTER mode 0) and
:class:`~rtl.lookup.update.RowUpdateEngine` (SCATTER modes 1 and 2, the SGD-momentum and Adam
row updates).
They are synthesized apart, each at a few lane counts (the last three at the same ones), and
each fitted ``a + b x lanes`` and extrapolated to its own target (``vcu1525``: ``H = 16``,
``G = 256``). Sweeping the unit with ``H = G = n`` would give one slope that mixes a hash lane
with the others' lanes and no way to extrapolate to ``H != G``.

Everything else is held fixed across a sweep, since the engines' fixed logic depends on it:

- the gather, scatter and row-update engines keep the config's ``vector.lanes`` (``L``, 64
  for ``vcu1525``; their VEC ports, operand streams and entry packing are ``32 L`` bits).
  Every swept lane count must divide ``L`` (the RTL's rule), which 1, 2, 4, .. up to ``L`` do;
- the hash engine is built with ``vector.lanes`` 4 (:func:`_hash_config`), not the config's:
  Amaranth's export of its z ring's writer grows much faster than linearly with ``L`` (at 64 it
  had not finished after minutes on the machine this was written on). The ring takes any
  of the ``L`` words of an entry into any of its ``3 H max_tau`` words, so a hash lane's cost
  grows with ``L`` and the estimate at 4 is a lower bound for the config's;
- ``lookup.request_ports`` is set to 1, the only count the RTL builds;
- every engine's row buffer is sized for the same rows, ``h`` = 512 elements
  (MemoryFormer-tiny's), and for the window its RTL computes from ``lookup.inflight_kib``: the
  gather's rows are fp16, :data:`LOOKUP_ROW_BYTES` (1 KiB), and its slots
  ``lookup.rows_in_flight`` of them (``inflight_kib x 1024 // row_bytes``, at least 4:
  :func:`_row_buffer`); the scatter's rows are the fp32 gradient rows, twice as wide
  (:func:`_fp32_row_bytes`, 2 KiB), and its slots ``rows_in_flight`` of those
  (:func:`_scatter_buffer`); the row update reads three fp32 rows an access for SGD (``G``,
  ``W``, ``V``) and four for Adam (``G``, ``W``, ``M``, ``V``), so its widest window is SGD's,
  ``inflight_kib x 1024 // (3 x 2 KiB)``, at least 4, and its tags the least power of two, at
  least 16, whose quarter (its slots) holds that window (:func:`_update_tags`).
  :class:`~rtl.lookup.unit.LookupUnit` builds its engines with one ``row_bytes`` and one
  ``slots``: a unit that runs all four on these rows has
  ``row_bytes`` 2 KiB and ``slots`` 64, so its gather and scatter buffers are larger than the
  windows here use; the sizes here are what each engine's window needs;
- the hash engine takes chunks up to :data:`LOOKUP_MAX_TAU` elements (the default of
  :class:`~rtl.lookup.unit.LookupUnit`, which :class:`rtl.accelerator.Accelerator` builds).

The glue of :class:`~rtl.lookup.unit.LookupUnit` (the engines' VEC ports multiplexed onto one
pair, the table memory's read and write channels onto one each) is in no engine and not
counted (:func:`_glue_note`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from hwsim.config import AcceleratorConfig

from ..lookup.gather import GatherEngine
from ..lookup.hashing import HashEngine
from ..lookup.scatter import ScatterEngine
from ..lookup.update import RowUpdateEngine
from .designs import _check_lanes, _Design

__all__ = ["LOOKUP_MAX_TAU", "LOOKUP_ROW_BYTES"]

LOOKUP_ROW_BYTES = 1024
"""Table row the gather engine is built for, bytes: 512 fp16 elements (MemoryFormer-tiny's
``h``)."""

LOOKUP_MAX_TAU = 16
"""Widest hash chunk the hash engine is built for (:class:`~rtl.lookup.unit.LookupUnit`'s
default)."""


def _lookup_config(config: AcceleratorConfig, *, hash_lanes: int | None = None,
                   gather_lanes: int | None = None) -> AcceleratorConfig:
    """``config`` with one request port and, where given, ``hash_lanes`` or ``gather_lanes``."""
    changes: dict[str, int] = {"lookup__request_ports": 1}
    if hash_lanes is not None:
        changes["lookup__hash_lanes"] = hash_lanes
    if gather_lanes is not None:
        changes["lookup__gather_lanes"] = gather_lanes
    return config.replace(**changes)


def _row_buffer(config: AcceleratorConfig, row_bytes: int = LOOKUP_ROW_BYTES
                ) -> tuple[int, int]:
    """``(row_bytes, slots)`` of the gather engine's row buffer: rows of ``row_bytes``, as many
    slots as ``lookup.inflight_kib`` holds rows (``rows_in_flight``), at least 4."""
    return row_bytes, max(4, config.lookup.rows_in_flight(row_bytes))


def _fp32_row_bytes(row_bytes: int = LOOKUP_ROW_BYTES) -> int:
    """The fp32 rows (gradient, master, momentum) of the tables whose fp16 rows are
    ``row_bytes``: the same ``h`` elements, twice the bytes."""
    return 2 * row_bytes


def _scatter_buffer(config: AcceleratorConfig, row_bytes: int = LOOKUP_ROW_BYTES
                    ) -> tuple[int, int]:
    """``(row_bytes, slots)`` of the scatter engine: the fp32 gradient rows of the tables whose
    fp16 rows are ``row_bytes``, as many slots as ``lookup.inflight_kib`` holds of them (the
    window :meth:`~rtl.lookup.scatter.ScatterEngine.window` computes), at least 4."""
    return _row_buffer(config, _fp32_row_bytes(row_bytes))


def _update_tags(config: AcceleratorConfig, row_bytes: int = LOOKUP_ROW_BYTES
                 ) -> tuple[int, int, int]:
    """``(row_bytes, tags, window)`` of the row-update engine: fp32 rows as the scatter's, the
    wider of the windows its RTL and :func:`hwsim.units.update_timing.update_run` compute
    (``max(4, inflight_bytes // (r x row_bytes))``, ``r`` the rows read an access: SGD 3,
    Adam 4) and the least tag count the RTL takes (a power of two, at least 16) whose quarter,
    the engine's slots, holds that window."""
    rb = _fp32_row_bytes(row_bytes)
    window = max(max(4, config.lookup.rows_in_flight(r * rb)) for r in (3, 4))
    tags = 16
    while tags // 4 < window:
        tags *= 2
    return rb, tags, window


def _check_lookup_lanes(config: AcceleratorConfig, lanes: tuple[int, ...],
                        row_bytes: int = LOOKUP_ROW_BYTES,
                        gather_lanes: tuple[int, ...] | None = None) -> None:
    """Empty, or at least two distinct positive lane counts, each dividing ``vector.lanes``,
    and at least two gather lane counts (``gather_lanes``, by default those of ``lanes`` with a
    gather accumulator Yosys maps, :func:`_gather_lanes`; the scatter and row-update engines
    are swept at the same), of a config whose rows are fp16 (what the RTL builds); else
    ``ValueError``."""
    L = config.vector.lanes
    _check_lanes("lookup_lanes", lanes, L)
    if not lanes:
        return
    gl = _gather_lanes(lanes, row_bytes) if gather_lanes is None else tuple(gather_lanes)
    _check_lanes("gather_lanes", gl, L)
    bad = sorted({n for n in (*lanes, *gl) if L % n})
    if bad:
        raise ValueError(f"lookup_lanes must divide vector.lanes ({L}) (the RTL's rule), not "
                         f"{bad}")
    least = -(-row_bytes // (2 * _LUTRAM_SP_MAX_DEPTH))
    if len(set(gl)) < 2 or any(n < least for n in gl):
        raise ValueError(f"the gather engine needs at least two lane counts of {least} or more "
                         f"(at fewer lanes its accumulator of {row_bytes:,}-byte rows is deeper "
                         f"than Yosys 0.70 maps), not {gl!r}")
    if config.lookup.element != "fp16":
        raise ValueError(f"the RTL lookup engine reads fp16 rows, not {config.lookup.element}")


def _lookup_designs(config: AcceleratorConfig, lanes: tuple[int, ...],
                    row_bytes: int = LOOKUP_ROW_BYTES,
                    gather_lanes: tuple[int, ...] | None = None
                    ) -> tuple[list[_Design], str]:
    """The hash engine of ``config`` at each lane count of ``lanes``, the gather, scatter and
    row-update engines at each of ``gather_lanes``.

    Parameters
    ----------
    config : AcceleratorConfig
    lanes : tuple of int
        Lane counts, each a divisor of ``vector.lanes``: the hash engine is built with
        ``lookup.hash_lanes = n``; and the gather, scatter and row-update engines with
        ``lookup.gather_lanes = n`` unless ``gather_lanes`` is given.
    row_bytes : int
        The fp16 row the gather engine's buffer holds (:func:`_row_buffer`); the scatter and
        row-update engines hold the fp32 rows of as many elements (:func:`_scatter_buffer`,
        :func:`_update_tags`).
    gather_lanes : tuple of int, optional
        The gather, scatter and row-update engines' lane counts; default: those of ``lanes``
        whose gather accumulator Yosys maps (:func:`_gather_lanes`).

    Returns
    -------
    designs : list of _Design
        ``hash_{n}lane`` for each ``n``, then ``gather_{n}lane``, ``scatter_{n}lane`` and
        ``update_{n}lane``.
    note : str
        What the report says about the config's lookup engine and these builds (empty when
        ``lanes`` is).

    Raises
    ------
    ValueError
        As :func:`_check_lookup_lanes`.
    """
    _check_lookup_lanes(config, lanes, row_bytes, gather_lanes)
    if not lanes:
        return [], ""
    rb, slots = _row_buffer(config, row_bytes)
    srb, sslots = _scatter_buffer(config, row_bytes)
    urb, tags, window = _update_tags(config, row_bytes)
    gl = _gather_lanes(lanes, rb) if gather_lanes is None else tuple(sorted(set(gather_lanes)))
    hcfg = _hash_config(config, lanes)
    h = rb // 2
    designs = [
        _Design(f"hash_{n}lane", f"HashEngine({config.name} with lookup.hash_lanes={n}, "
                f"vector.lanes={hcfg.vector.lanes}, max_tau={LOOKUP_MAX_TAU}): z ring 3 x {n} "
                f"x {LOOKUP_MAX_TAU} words, {n} HashLane, {n} HashGradLane and their dz ring",
                None, lambda n=n: HashEngine(_lookup_config(hcfg, hash_lanes=n),
                                             max_tau=LOOKUP_MAX_TAU), "hash", n)
        for n in lanes
    ]
    designs += [
        _Design(f"gather_{n}lane", f"GatherEngine({config.name} with lookup.gather_lanes={n}, "
                f"request_ports=1): row buffer {slots} x {rb} B, accumulator {h} fp32, "
                f"mode 1's dY buffers 3 x {h} fp32",
                None, lambda n=n: GatherEngine(_lookup_config(config, gather_lanes=n),
                                               row_bytes=rb, slots=slots), "gather", n)
        for n in gl
    ]
    designs += [
        _Design(f"scatter_{n}lane", f"ScatterEngine({config.name} with lookup.gather_lanes="
                f"{n}, request_ports=1): {sslots} slots of {srb} B fp32 rows (row buffer and "
                f"result), dY buffers 3 x {h} fp32",
                None, lambda n=n: ScatterEngine(_lookup_config(config, gather_lanes=n),
                                                row_bytes=srb, slots=sslots), "scatter", n,
                rtlil=True)
        for n in gl
    ]
    designs += [
        _Design(f"update_{n}lane", f"RowUpdateEngine({config.name} with lookup.gather_lanes="
                f"{n}, request_ports=1): SGD and Adam, {tags} tags, {tags // 4} slots (window "
                f"{window}) of {urb} B fp32 G, W, M, V rows in and W, M, V, fp16 T rows out",
                None, lambda n=n: RowUpdateEngine(_lookup_config(config, gather_lanes=n),
                                                  row_bytes=urb, tags=tags), "update", n,
                rtlil=True, share=False)
        for n in gl
    ]
    return designs, _lookup_note(config, lanes, gl, rb, slots)


def _hash_config(config: AcceleratorConfig, lanes: tuple[int, ...]) -> AcceleratorConfig:
    """The config the hash engine is swept with: ``vector.lanes`` the least common multiple of
    ``lanes`` and 4 (or the config's ``vector.lanes`` if less than 4), the VEC buffer shrunk to
    16-bit addresses if need be.

    Not the config's own ``vector.lanes``: the z ring's write position of each word of an
    entry is a chain of multiplexers through the entry's earlier words, built as nested
    expressions in :class:`~rtl.lookup.hashing.HashEngine`, and Amaranth's export of it grows
    much faster than linearly with ``vector.lanes`` (at 64 it had not finished after minutes on
    the machine this was written on; 4 takes seconds).
    """
    from .designs import _vector_config

    return _vector_config(config, math.lcm(min(4, config.vector.lanes), *lanes))


_LUTRAM_SP_MAX_DEPTH = 256
"""Deepest single-port LUT RAM Yosys 0.70 maps for UltraScale(+): its ``lutrams_xcu.txt`` offers
a single-port option of 16 address bits that ``lutrams_xc5v_map.v`` does not have (it maps 5 to
9), so a deeper one fails with "invalid OPTION_ABITS/WIDTH combination"."""


def _gather_lanes(lanes: tuple[int, ...], row_bytes: int) -> tuple[int, ...]:
    """The lane counts of ``lanes`` whose gather accumulator (``row_bytes / (2 G)`` words of
    ``32 G`` bits, one address for its read and write: a single-port LUT RAM) Yosys can map:
    at most :data:`_LUTRAM_SP_MAX_DEPTH` deep."""
    return tuple(n for n in lanes if row_bytes // (2 * n) <= _LUTRAM_SP_MAX_DEPTH)


def _lookup_note(config: AcceleratorConfig, lanes: tuple[int, ...], gl: tuple[int, ...],
                 row_bytes: int, slots: int) -> str:
    """The report's note on how the lookup engine was built and what of the config the RTL
    (or the flow) cannot build."""
    L, lk = config.vector.lanes, config.lookup
    hl = _hash_config(config, lanes).vector.lanes
    srb, sslots = _scatter_buffer(config, row_bytes)
    urb, tags, window = _update_tags(config, row_bytes)
    h = row_bytes // 2
    text = (f"Lookup engine: the hash engine (`HashEngine`, HASH modes 0-3: a `HashLane` and a "
            f"`HashGradLane` a lane, chunks up to {LOOKUP_MAX_TAU}), the gather engine "
            f"(`GatherEngine`, GATHER modes 0 and 1, row buffer {slots} slots x {row_bytes:,} "
            f"B: rows of {h} fp16 elements, `lookup.inflight_kib` = {lk.inflight_kib} KiB of "
            f"them in flight), the scatter engine (`ScatterEngine`, SCATTER mode 0, {sslots} "
            f"slots x {srb:,} B: the fp32 gradient rows of the same {h} elements, "
            f"{lk.inflight_kib} KiB of them) and the row-update engine (`RowUpdateEngine`, "
            f"SCATTER modes 1 and 2, SGD with momentum and Adam: {tags} tags, so {tags // 4} "
            f"slots of up to four {srb:,}-B fp32 rows, the least the RTL takes, a power of two "
            "of at least 16 tags, that holds its wider window, SGD's of max(4, "
            f"{lk.inflight_kib} KiB / (3 x {urb:,} B)) = {window}) are synthesized apart, with "
            "one request port, and each fitted against its own lane count: the hash engine "
            "against `lookup.hash_lanes`, the other three against `lookup.gather_lanes`, at the "
            "same counts. The sizes are what each "
            "engine's window uses; `LookupUnit` builds its four engines with one row size and "
            f"one slot count, so a unit that runs all four on these rows ({srb:,}-B rows, "
            f"{max(slots, sslots, tags)} slots) has larger gather and scatter buffers than "
            "measured here. Its glue is not counted: the engines' VEC ports multiplexed onto "
            "one pair and the table memory's read channel (gather, scatter, row update) and "
            "write channel (scatter, row update) onto one each, mostly 2:1 multiplexers on the "
            f"table write's data ({8 * srb:,} bits at {srb:,}-B rows) and the VEC write entry "
            f"({32 * L:,} bits): about {(8 * srb + 32 * L) // 2:,} to {8 * srb + 32 * L:,} "
            "LUTs (half a LUT to a LUT a bit; analytical, not synthesized), which do not grow "
            "with lanes. The scatter and row-update engines are read by Yosys as Amaranth's "
            "RTLIL, not its Verilog: their results are written a lane at a time (a write "
            "enable per 32 G bits of a row), which Amaranth's Verilog export writes as one "
            f"partial write per lane ({srb // 4 // min(gl):,} of them into {8 * srb:,}-bit "
            f"words at {min(gl)} lanes), and Yosys 0.70's Verilog frontend does not get through "
            "that (on `vcu1525`'s scatter engine at 2 lanes it had not finished reading after "
            "20 minutes); the RTLIL (the "
            "same netlist: Amaranth's Verilog export is Yosys' `write_verilog` of it) reads in "
            "a second. The gather, scatter and row-update engines are built with "
            f"`vector.lanes` = {L}, the config's. The hash engine is built with `vector.lanes` "
            f"= {hl}, not "
            f"{L}: its z ring's write position of each of an entry's words is a chain of "
            "multiplexers through the earlier words (`rtl/lookup/hashing.py`), and Amaranth's "
            "Verilog export of it grows much faster than linearly with `vector.lanes` (at "
            f"{L} it had not finished after minutes). Its ring takes any of an entry's words "
            f"into any of its 3 x H x "
            f"{LOOKUP_MAX_TAU} words, so a hash lane at {L} vector lanes costs more LUTs than "
            f"measured here: the hash engine's estimate is a lower bound.")
    left = sorted(n for n in set(lanes) - set(gl) if n not in _gather_lanes((n,), row_bytes))
    if left:
        text += (f" Lane counts {', '.join(map(str, left))} of the gather, scatter and "
                 f"row-update engines are not synthesized: the gather's accumulator "
                 f"({row_bytes // 2:,} fp32 words over G lanes, deeper than "
                 f"{_LUTRAM_SP_MAX_DEPTH}) maps to a single-port LUT RAM that Yosys 0.70's "
                 "UltraScale library offers (`lutrams_xcu.txt`, 16 address bits) but its map "
                 "file lacks, and synthesis stops with \"invalid OPTION_ABITS/WIDTH "
                 "combination\"; the other two are swept at the gather's counts.")
    cant = []
    if lk.request_ports != 1:
        cant.append(f"`lookup.request_ports` = {lk.request_ports} (the RTL has one request "
                    "port; the estimate is of one)")
    for what, n in (("gather_lanes", lk.gather_lanes), ("hash_lanes", lk.hash_lanes)):
        if L % n:
            cant.append(f"`lookup.{what}` = {n}, which does not divide `vector.lanes` = {L} "
                        f"(the RTL's rule): {n} lanes are extrapolated from the fit as if the "
                        "RTL took them")
    if cant:
        text += (f" The RTL cannot build `{config.name}`'s lookup engine as configured: "
                 + "; ".join(cant) + ".")
    return text


_LIBMAP = re.compile(r"^mapping memory (\S+?)\.(\S+) via \$__XILINX_([A-Z]+)", re.M)
_KINDS = {"LUTRAM": "LUT RAM", "BLOCKRAM": "block RAM", "URAM": "URAM288"}


def _memory_mapping(log_path: Path) -> dict[str, str]:
    """What Yosys' ``memory_libmap`` mapped each memory of a design to (``LUT RAM``,
    ``block RAM`` or ``URAM288``), from its log; memories it left to flip-flops are not
    listed; empty if the log is gone."""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return {}
    return {mem: _KINDS.get(kind, kind) for _, mem, kind in _LIBMAP.findall(text)}
