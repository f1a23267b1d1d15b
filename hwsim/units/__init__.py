"""The machine's units, one module each, and the registry that maps opcodes to them.

A unit model is the executable specification of one hardware block: the commands it accepts,
what they do to buffers and DRAM, how many cycles they take and what they cost. Every unit
implements :class:`UnitModel`; :data:`REGISTRY` maps each opcode to the model that executes
it. The engine (:func:`hwsim.run`) dispatches through the registry and never branches on
command types; the RTL controller and the compiler find a unit by the same name.

==========  ==============================  ===================================  ===========
unit        opcodes (queue)                 hwsim                                rtl
==========  ==============================  ===================================  ===========
dma         LOAD (DMA_IN), STORE (DMA_OUT)  :mod:`hwsim.units.dma`               rtl/dma.py
array       GEMM (ARRAY)                    :mod:`hwsim.units.array`             rtl/array
sore        PRUNE (SORE)                    :mod:`hwsim.units.sore`              rtl/sore.py
vector      UPDATE (VECTOR)                 :mod:`hwsim.units.vector`            rtl/vector
lookup      HASH, GATHER, SCATTER (LOOKUP)  :mod:`hwsim.units.lookup`            (next)
control     SETREG, SYNC (the controller)   :mod:`hwsim.units.control`           controller
==========  ==============================  ===================================  ===========

Adding a unit: a module here with a :class:`UnitModel` subclass, one line in :data:`MODELS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import isa
from ..config import AcceleratorConfig
from ..energy import HOT_ROW_BYTE, HOT_ROWS, SRAM_PARTS, sram_component
from ..program import COL, commands_to_table

__all__ = [
    "MODELS",
    "REGISTRY",
    "Access",
    "Accounting",
    "UnitModel",
    "UnitTiming",
    "model_of",
    "table_cycles",
    "unit_cycles",
]


class Access(NamedTuple):
    """A buffer range a command touches while it runs (for race and port checks).

    ``port``: ``"r"``/``"w"`` (or a named port such as ``"r_store"``); two commands running at
    the same time may not use one port of one buffer, nor touch overlapping entries where one
    of them writes.
    """

    buf: int
    port: str
    lo: int
    hi: int
    writes: bool


class UnitTiming(NamedTuple):
    """What :meth:`UnitModel.cycles` returns: per row its ``unit_cycles`` (start to done,
    inclusive), and whatever detail the unit's :meth:`UnitModel.account` needs again."""

    cycles: np.ndarray
    detail: Any = None


@dataclass
class Accounting:
    """What the units of one run add up: traffic, actions for energy, stall cycles, MACs.

    ``actions[component][action]`` counts priced by :func:`hwsim.energy.energy_pj` (action names
    are :class:`hwsim.config.EnergyTable` fields). ``sram_bytes[part]`` is ``[read, written]``
    bytes of each part of ``sram`` (:data:`hwsim.energy.SRAM_PARTS`: a buffer, ``act`` ...
    ``vec``, or ``hot_rows``); they sum to ``bytes["sram_read"]`` and ``bytes["sram_write"]``.
    """

    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("dram_read", "dram_write", "dram_other", "sram_read", "sram_write"), 0))
    actions: dict[str, dict[str, float]] = field(default_factory=dict)
    stalls: dict[str, int] = field(default_factory=dict)
    dram: dict[str, int] = field(default_factory=lambda: {"row_hits": 0, "row_misses": 0})
    macs: int = 0
    sram_bytes: dict[str, list[int]] = field(
        default_factory=lambda: {p: [0, 0] for p in SRAM_PARTS})

    def add(self, component: str, action: str, count: float) -> None:
        d = self.actions.setdefault(component, {})
        d[action] = d.get(action, 0) + count

    def sram(self, read: int, write: int, buffer: int | str) -> None:
        """On-chip buffer traffic of one buffer: counted in ``bytes`` (``sram_read``,
        ``sram_write``: every buffer's) and priced as SRAM actions filed under the buffer's part
        of ``sram`` (:func:`hwsim.energy.sram_component`).

        Parameters
        ----------
        read, write : int
            Bytes read from and written to the buffer.
        buffer : isa.Buffer or str
            The buffer (or its code), or ``"hot_rows"``: the lookup engine's hot-row cache,
            whose bytes are priced as ``hot_row_byte`` (:func:`hwsim.energy.price`).

        Raises
        ------
        ValueError
            ``buffer`` is neither a buffer nor ``"hot_rows"``.
        """
        component = sram_component(buffer)
        hot = component == sram_component(HOT_ROWS)
        self.bytes["sram_read"] += int(read)
        self.bytes["sram_write"] += int(write)
        rw = self.sram_bytes.setdefault(component[len("sram_"):], [0, 0])
        rw[0] += int(read)
        rw[1] += int(write)
        self.add(component, HOT_ROW_BYTE if hot else "sram_read_byte", int(read))
        self.add(component, HOT_ROW_BYTE if hot else "sram_write_byte", int(write))

    def stall(self, reason: str, cycles: int) -> None:
        self.stalls[reason] = self.stalls.get(reason, 0) + int(cycles)


class UnitModel:
    """The protocol of a unit model (subclass it; the defaults do nothing).

    Attributes
    ----------
    name : str
        The unit's name in every layer (``hwsim/units/<name>.py``, ``rtl/<name>``,
        ``dataflow/lower/<name>.py``, energy component).
    opcodes : tuple of isa.Opcode
        The commands it executes.
    address_fields : tuple of str
        Fields that neither :meth:`check` nor :meth:`footprint` reads: the engine checks one
        command of each distinct shape, these fields left out of the shape. By default the DRAM
        address fields (``dram_addr``, ``stride``: only LOAD and STORE have them, and their
        model reads them to time and execute, not to check); a model whose check reads one
        sets its own.
    """

    name: ClassVar[str]
    opcodes: ClassVar[tuple[isa.Opcode, ...]]
    address_fields: ClassVar[tuple[str, ...]] = ("dram_addr", "stride")

    def check(self, cmd: isa.Command, config: AcceleratorConfig) -> tuple[str, str] | None:
        """Why ``config``'s machine cannot run ``cmd``, as ``(field, reason)``; None if it can."""
        return None

    def execute(self, cmd: isa.Command, machine, config: AcceleratorConfig) -> int | None:
        """Functional mode: run ``cmd`` on ``machine`` (:class:`hwsim.engine.Machine`).

        Returns None, or the command's ``unit_cycles`` when they depend on the values (the
        lookup engine's row addresses); the engine then schedules with that duration."""

    def cycles(self, rows: np.ndarray, config: AcceleratorConfig) -> UnitTiming:
        """Closed-form ``unit_cycles`` of this unit's rows of a command table, in program
        order (vectorised over the rows)."""
        raise NotImplementedError

    def command_cycles(self, cmd: isa.Command, config: AcceleratorConfig) -> int:
        """``unit_cycles`` of one command on its own."""
        return int(self.cycles(commands_to_table([cmd]), config).cycles[0])

    def footprint(self, cmd: isa.Command, config: AcceleratorConfig) -> list[Access]:
        """Buffer ranges ``cmd`` touches while it runs."""
        return []

    def account(self, rows: np.ndarray, timing: UnitTiming, config: AcceleratorConfig,
                acc: Accounting) -> None:
        """Add the rows' traffic, energy actions, stall cycles and MACs to ``acc``."""


def _models() -> tuple[UnitModel, ...]:
    from .array import ArrayModel
    from .control import ControlModel
    from .dma import DmaModel
    from .lookup import LookupModel
    from .sore import SoreModel
    from .vector import VectorModel

    return (DmaModel(), ArrayModel(), SoreModel(), VectorModel(), LookupModel(), ControlModel())


MODELS: tuple[UnitModel, ...] = _models()
"""Every unit model, one instance each."""

REGISTRY: dict[isa.Opcode, UnitModel] = {op: m for m in MODELS for op in m.opcodes}
"""Opcode -> the unit model that executes it."""


def model_of(opcode: int) -> UnitModel | None:
    """The model executing ``opcode``, or None when no unit models it (yet)."""
    try:
        return REGISTRY.get(isa.Opcode(int(opcode)))
    except ValueError:
        return None


def table_cycles(table: np.ndarray, config: AcceleratorConfig
                 ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, UnitTiming]]]:
    """``unit_cycles`` of every row of a command table, dispatched to the unit models.

    Returns the durations and, per unit name, ``(row indices, UnitTiming)`` for
    :meth:`UnitModel.account`.

    Raises
    ------
    NotImplementedError
        A row whose opcode no unit models (names the row and opcode).
    """
    op = table[:, COL["opcode"]]
    dur = np.ones(len(table), np.int64)
    parts = {}
    covered = np.zeros(len(table), np.bool_)
    for m in MODELS:
        mask = np.isin(op, [int(o) for o in m.opcodes])
        covered |= mask
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        t = m.cycles(table[idx], config)
        dur[idx] = t.cycles
        parts[m.name] = (idx, t)
    if not covered.all():
        bad = int(np.argmin(covered))
        name = isa.Opcode(int(op[bad])).name if int(op[bad]) in isa.Opcode._value2member_map_ \
            else str(int(op[bad]))
        raise NotImplementedError(f"command {bad}: no unit models opcode {name} yet")
    return dur, parts


def unit_cycles(cmd: isa.Command, config: AcceleratorConfig) -> int:
    """Cycles from the unit's start of ``cmd`` to its done, inclusive (the RTL's contract).

    LOAD and STORE get the ``fixed`` DRAM model's closed forms (what the RTL testbench serves);
    in a program on a ``banked`` config :func:`hwsim.run` times them with the banked model.
    """
    m = model_of(cmd.OPCODE)
    if m is None:
        raise NotImplementedError(f"{cmd.name} has no timing model yet")
    return m.command_cycles(cmd, config)
