"""The lookup engine's lane points: its hash and gather engines with few lanes, built as for the
config's table rows.

The lookup unit (:class:`rtl.lookup.unit.LookupUnit`) is two engines that grow with two
different lane counts: :class:`~rtl.lookup.hashing.HashEngine` with ``lookup.hash_lanes``
(``H``) and :class:`~rtl.lookup.gather.GatherEngine` with ``lookup.gather_lanes`` (``G``). They
are synthesized apart, each at a few lane counts, and each fitted ``a + b x lanes`` and
extrapolated to its own target (``vcu1525``: ``H = 16``, ``G = 256``). Sweeping the unit with
``H = G = n`` would give one slope that mixes a hash lane with a gather lane and no way to
extrapolate to ``H != G``.

Everything else is held fixed across a sweep, since the engines' fixed logic depends on it:

- the gather engine keeps the config's ``vector.lanes`` (``L``, 64 for ``vcu1525``; its VEC
  ports, operand streams and entry packing are ``32 L`` bits). Every swept lane count must
  divide ``L`` (the RTL's rule), which 1, 2, 4, .. up to ``L`` do;
- the hash engine is built with ``vector.lanes`` 4 (:func:`_hash_config`), not the config's:
  Amaranth's export of its z ring's writer grows much faster than linearly with ``L`` (at 64 it
  had not finished after minutes on the machine this was written on). The ring takes any
  of the ``L`` words of an entry into any of its ``3 H max_tau`` words, so a hash lane's cost
  grows with ``L`` and the estimate at 4 is a lower bound for the config's;
- ``lookup.request_ports`` is set to 1, the only count the RTL builds;
- the gather engine's row buffer is sized for the target: rows of :data:`LOOKUP_ROW_BYTES`
  (1 KiB: 512 fp16 elements, MemoryFormer-tiny's ``h``) and ``lookup.rows_in_flight`` of them
  (``inflight_kib x 1024 // row_bytes``, at least 4) as slots;
- the hash engine takes chunks up to :data:`LOOKUP_MAX_TAU` elements (the default of
  :class:`~rtl.lookup.unit.LookupUnit`, which :class:`rtl.accelerator.Accelerator` builds).

The glue of :class:`~rtl.lookup.unit.LookupUnit` (the two engines' VEC ports multiplexed onto
one) is in neither engine and not counted.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from hwsim.config import AcceleratorConfig

from ..lookup.gather import GatherEngine
from ..lookup.hashing import HashEngine
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


def _check_lookup_lanes(config: AcceleratorConfig, lanes: tuple[int, ...],
                        row_bytes: int = LOOKUP_ROW_BYTES,
                        gather_lanes: tuple[int, ...] | None = None) -> None:
    """Empty, or at least two distinct positive lane counts, each dividing ``vector.lanes``,
    and at least two gather lane counts (``gather_lanes``, by default those of ``lanes`` with a
    gather accumulator Yosys maps, :func:`_gather_lanes`), of a config whose rows are fp16
    (what the RTL builds); else ``ValueError``."""
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
    """The hash engine of ``config`` at each lane count of ``lanes``, the gather engine at
    each of ``gather_lanes``.

    Parameters
    ----------
    config : AcceleratorConfig
    lanes : tuple of int
        Lane counts, each a divisor of ``vector.lanes``: the hash engine is built with
        ``lookup.hash_lanes = n``; and the gather engine with ``lookup.gather_lanes = n``
        unless ``gather_lanes`` is given.
    row_bytes : int
        The row the gather engine's buffer holds (:func:`_row_buffer`).
    gather_lanes : tuple of int, optional
        The gather engine's lane counts; default: those of ``lanes`` whose accumulator Yosys
        maps (:func:`_gather_lanes`).

    Returns
    -------
    designs : list of _Design
        ``hash_{n}lane`` for each ``n``, then ``gather_{n}lane``.
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
    gl = _gather_lanes(lanes, rb) if gather_lanes is None else tuple(sorted(set(gather_lanes)))
    hcfg = _hash_config(config, lanes)
    designs = [
        _Design(f"hash_{n}lane", f"HashEngine({config.name} with lookup.hash_lanes={n}, "
                f"vector.lanes={hcfg.vector.lanes}, max_tau={LOOKUP_MAX_TAU}): z ring 3 x {n} "
                f"x {LOOKUP_MAX_TAU} words, {n} HashLane", None,
                lambda n=n: HashEngine(_lookup_config(hcfg, hash_lanes=n),
                                       max_tau=LOOKUP_MAX_TAU), "hash", n)
        for n in lanes
    ]
    designs += [
        _Design(f"gather_{n}lane", f"GatherEngine({config.name} with lookup.gather_lanes={n}, "
                f"request_ports=1): row buffer {slots} x {rb} B, accumulator {rb // 2} fp32",
                None, lambda n=n: GatherEngine(_lookup_config(config, gather_lanes=n),
                                               row_bytes=rb, slots=slots), "gather", n)
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
    text = (f"Lookup engine: the hash engine (`HashEngine`, chunks up to {LOOKUP_MAX_TAU}) and "
            f"the gather engine (`GatherEngine`, row buffer {slots} slots x {row_bytes:,} B: "
            f"rows of {row_bytes // 2} fp16 elements, `lookup.inflight_kib` = {lk.inflight_kib} "
            "KiB of them in flight) are synthesized apart, with one request port, and each "
            "fitted against its own lane count; the `LookupUnit` glue that puts both on one "
            f"VEC port pair is not counted. The gather engine is built with `vector.lanes` = "
            f"{L}, the config's. The hash engine is built with `vector.lanes` = {hl}, not "
            f"{L}: its z ring's write position of each of an entry's words is a chain of "
            "multiplexers through the earlier words (`rtl/lookup/hashing.py`), and Amaranth's "
            "Verilog export of it grows much faster than linearly with `vector.lanes` (at "
            f"{L} it had not finished after minutes). Its ring takes any of an entry's words "
            f"into any of its 3 x H x "
            f"{LOOKUP_MAX_TAU} words, so a hash lane at {L} vector lanes costs more LUTs than "
            f"measured here: the hash engine's estimate is a lower bound.")
    left = sorted(n for n in set(lanes) - set(gl) if n not in _gather_lanes((n,), row_bytes))
    if left:
        text += (f" Gather lane counts {', '.join(map(str, left))} are not synthesized: their "
                 f"accumulator ({row_bytes // 2:,} fp32 words over G lanes, deeper than "
                 f"{_LUTRAM_SP_MAX_DEPTH}) maps to a single-port LUT RAM that Yosys 0.70's "
                 "UltraScale library offers (`lutrams_xcu.txt`, 16 address bits) but its map "
                 "file lacks, and synthesis stops with \"invalid OPTION_ABITS/WIDTH "
                 "combination\".")
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
