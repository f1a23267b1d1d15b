"""The energy model, one for every output: energy = sum of actions x the config's energy table.

Units count *actions* (:meth:`hwsim.units.UnitModel.account`): MACs, SRAM and DRAM bytes, SORE
comparisons, vector operations, each filed under the component that spends it. This module
prices them with :class:`hwsim.config.EnergyTable` (picojoules per action) and adds static
power over the run's time. Every CLI output, report and sweep reads ``Stats.energy_pj``, which
comes from here.

Components: ``array`` (MACs, ``mac_int8``/``mac_fp16``), ``sore`` (``sore_compare``), ``vector`` and
``lookup`` (``vector_flop``: the same fp32 operations), ``tier_NAME`` (bytes of the lookup engine's
memory tier ``NAME`` at its energy per byte), ``sram`` (``sram_read_byte``, ``sram_write_byte``;
``hot_row_byte``, a byte read from or written to the lookup engine's hot-row cache,
``lookup.hot_rows``),
``dram`` (``dram_byte``: DMA traffic and the traffic units stream outside the DMA queues) and
``static`` (``static_mw`` over the run's cycles at ``clock_mhz``).
"""

from __future__ import annotations

from dataclasses import fields

from .config import AcceleratorConfig

__all__ = ["COMPONENTS", "HOT_ROW_BYTE", "energy_pj", "price"]

HOT_ROW_BYTE = "hot_row_byte"
"""The action of a byte read from or written to the lookup engine's hot-row cache."""

COMPONENTS = ("array", "sore", "vector", "lookup", "sram", "dram", "static")
"""Components in the order reports list them (every one is present in a result); a run that
uses the lookup engine's memory tiers adds one ``tier_NAME`` component per tier."""


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
    """
    out = dict.fromkeys(COMPONENTS, 0.0)
    for component, counts in actions.items():
        out[component] = out.get(component, 0.0) + sum(
            n * price(a, config) for a, n in counts.items())
    seconds = cycles / (config.clock_mhz * 1e6)
    out["static"] = config.energy.static_mw * 1e-3 * seconds * 1e12
    return out
