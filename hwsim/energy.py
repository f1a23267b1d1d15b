"""The energy model, one for every output: energy = sum of actions x the config's energy table.

Units count *actions* (:meth:`hwsim.units.UnitModel.account`): MACs, SRAM and DRAM bytes, SORE
comparisons, vector operations, each filed under the component that spends it. This module
prices them with :class:`hwsim.config.EnergyTable` (picojoules per action) and adds static
power over the run's time. Every CLI output, report and sweep reads ``Stats.energy_pj``, which
comes from here.

Components: ``array`` (MACs, ``mac_int8``/``mac_fp16``), ``sore`` (``sore_compare``), ``vector`` and
``lookup`` (``vector_flop``: the same fp32 operations), ``tier_NAME`` (bytes of the lookup engine's
memory tier ``NAME`` at its energy per byte), ``sram`` (on-chip buffer traffic: ``sram_read_byte``,
``sram_write_byte``; ``hot_row_byte``, a byte read from or written to the lookup engine's hot-row
cache, ``lookup.hot_rows``), ``dram`` (``dram_byte``: DMA traffic and the traffic units stream
outside the DMA queues) and ``static`` (``static_mw`` over the run's cycles at ``clock_mhz``).

SRAM per buffer: ``sram`` is the total of its parts :data:`SRAM_COMPONENTS`, ``sram_act``,
``sram_wgt``, ``sram_acc``, ``sram_idx``, ``sram_vec`` (the buffers of :class:`hwsim.isa.Buffer`)
and ``sram_hot_rows`` (the lookup engine's hot-row cache). Units file their buffer traffic under
the part (:meth:`hwsim.units.Accounting.sram` names the buffer: the array reads ACT, WGT, IDX
and reads and writes ACC, the DMA writes or reads the buffer its command names, SORE reads its
source and writes WGT and IDX, the vector and lookup engines read and write VEC); the result
holds each part and ``sram`` = their sum, so a reader of ``energy["sram"]`` sees the same total
as before the split. The parts are *inside* ``sram``: the run's energy is :func:`total_pj`, the
sum over every component but the parts (``Stats.energy_total_pj``), never the sum of all values.
Flattened results (``ModelResult.totals``, the sweep store, the report tables) carry them as
``energy_sram_act_pj`` ... beside ``energy_sram_pj``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

from . import isa
from .config import AcceleratorConfig

__all__ = ["COMPONENTS", "HOT_ROW_BYTE", "HOT_ROWS", "SRAM_COMPONENTS", "SRAM_PARTS", "energy_pj",
           "is_part", "price", "sram_component", "total_pj"]

HOT_ROW_BYTE = "hot_row_byte"
"""The action of a byte read from or written to the lookup engine's hot-row cache."""

HOT_ROWS = "hot_rows"
"""The SRAM part of the lookup engine's hot-row cache (:func:`sram_component`)."""

SRAM_PARTS = (*(b.name.lower() for b in isa.Buffer), HOT_ROWS)
"""What the ``sram`` component is split by: the buffers of :class:`hwsim.isa.Buffer` in their
order (``act, wgt, acc, idx, vec``), then the lookup engine's hot-row cache."""

SRAM_COMPONENTS = tuple(f"sram_{p}" for p in SRAM_PARTS)
"""The parts of ``sram`` (``sram_act`` ... ``sram_hot_rows``), which sum to it."""

COMPONENTS = ("array", "sore", "vector", "lookup", "sram", *SRAM_COMPONENTS, "dram", "static")
"""Components in the order reports list them (every one is present in a result; the
:data:`SRAM_COMPONENTS` are parts of ``sram``, :func:`is_part`); a run that uses the lookup
engine's memory tiers adds one ``tier_NAME`` component per tier."""


def sram_component(buffer: int | str) -> str:
    """The ``sram`` part a buffer's traffic is filed under: ``sram_act`` for
    ``isa.Buffer.ACT`` (or its code 0), ``sram_hot_rows`` for :data:`HOT_ROWS`.

    Raises
    ------
    ValueError
        Neither a buffer code nor ``"hot_rows"``.
    """
    if isinstance(buffer, str):
        if buffer != HOT_ROWS:
            raise ValueError(f"buffer must be an isa.Buffer or {HOT_ROWS!r}, not {buffer!r}")
        return f"sram_{HOT_ROWS}"
    return f"sram_{isa.Buffer(int(buffer)).name.lower()}"


def is_part(component: str) -> bool:
    """Whether ``component`` is a part of another one (a :data:`SRAM_COMPONENTS` entry), so
    already counted in ``sram``."""
    return component in SRAM_COMPONENTS


def total_pj(energy: Mapping[str, float]) -> float:
    """The run's energy from a result of :func:`energy_pj`: every component but the parts."""
    return float(sum(v for k, v in energy.items() if not is_part(k)))


def price(action: str, config: AcceleratorConfig) -> float:
    """Picojoules of one ``action``: an :class:`hwsim.config.EnergyTable` field name, or
    ``tier_read:NAME`` / ``tier_write:NAME``, a byte read from or written to the lookup
    engine's memory tier ``NAME`` (its ``read_pj_per_byte`` / ``write_pj_per_byte``), or
    ``hot_row_byte``, a byte of the lookup engine's hot-row cache: priced as the ``"sram"`` tier
    preset's read byte (:func:`hwsim.tiers.tier_preset`: 1.6 pJ/bit, a store of 1 MB macros,
    the size class of a cache of thousands of 1 KiB rows; the small on-chip buffers'
    ``sram_read_byte`` would undercount it).

    Raises
    ------
    KeyError
        An action nothing prices.
    """
    if action.startswith(("tier_read:", "tier_write:")):
        kind, name = action.split(":", 1)
        tier = config.lookup.tier(name)
        return float(tier.read_pj_per_byte if kind == "tier_read" else tier.write_pj_per_byte)
    if action == HOT_ROW_BYTE:
        from .tiers import tier_preset

        return float(tier_preset("sram").read_pj_per_byte)
    table = config.energy
    if action not in {f.name for f in fields(table)} or action == "static_mw":
        raise KeyError(f"no energy price for action {action!r}")
    return float(getattr(table, action))


def energy_pj(actions: dict[str, dict[str, float]], cycles: int,
              config: AcceleratorConfig) -> dict[str, float]:
    """Energy per component, picojoules.

    Parameters
    ----------
    actions : dict
        ``actions[component][action]`` counts (:class:`hwsim.units.Accounting`).
    cycles : int
        The run's cycles (static energy).
    config : AcceleratorConfig

    Returns
    -------
    dict
        :data:`COMPONENTS` in order, then any ``tier_NAME``; ``sram`` includes its parts
        (:func:`total_pj` sums a result).
    """
    out = dict.fromkeys(COMPONENTS, 0.0)
    for component, counts in actions.items():
        out[component] = out.get(component, 0.0) + sum(
            n * price(a, config) for a, n in counts.items())
    # the parts' sum in their order, so sum(parts) == sram exactly (traffic filed under "sram"
    # itself, with no buffer named, stays in the total only)
    out["sram"] += sum(out[c] for c in SRAM_COMPONENTS)
    seconds = cycles / (config.clock_mhz * 1e6)
    out["static"] = config.energy.static_mw * 1e-3 * seconds * 1e12
    return out
