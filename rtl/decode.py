"""Command words in gates, decoded by the field layout of :mod:`hwsim.isa` and nothing else.

Every width, offset and opcode the RTL uses to read a command word comes from here, and this
module reads them from :mod:`hwsim.isa` (:func:`hwsim.isa.field_offsets`, each command class's
``OPCODE`` and ``UNIT``): a field added or moved there moves in the controller, in the units'
ports and in the top on the next elaboration.
"""

from __future__ import annotations

from functools import reduce

from amaranth import Const, Value, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In

from hwsim import isa

__all__ = [
    "REGISTERS",
    "command_layout",
    "command_view",
    "field_members",
    "header_view",
    "opcode_in",
    "unit_commands",
    "unit_layout",
    "unit_opcodes",
    "unit_view",
]

REGISTERS = 1 << dict(isa.SetReg.FIELDS)["reg"]
"""Controller registers SETREG addresses (``isa.SetReg.reg``'s width)."""


def unit_commands(unit: isa.Unit) -> tuple[type[isa.Command], ...]:
    """The command classes that execute on ``unit``'s queue, in opcode order (from the ISA's
    opcode registry; ``isa.Unit.CONTROL``: SETREG and SYNC)."""
    unit = isa.Unit(unit)
    return tuple(cls for _, cls in sorted(isa._REGISTRY.items()) if unit == cls.UNIT)


def unit_opcodes(unit: isa.Unit) -> tuple[isa.Opcode, ...]:
    """The opcodes of :func:`unit_commands`."""
    return tuple(cls.OPCODE for cls in unit_commands(unit))


def command_layout(cls: type[isa.Command]) -> data.FlexibleLayout:
    """The layout of a whole command word of ``cls``: the header (``opcode``, ``wait``,
    ``signal``) and its fields, each at the offset :func:`hwsim.isa.field_offsets` gives.
    ``isa.Command`` itself gives the header alone."""
    return data.FlexibleLayout(isa.WORD_BITS, {
        name: data.Field(unsigned(width), lsb)
        for name, (lsb, width) in isa.field_offsets(cls).items()})


def command_view(cls: type[isa.Command], word) -> data.View:
    """View a command word (:data:`hwsim.isa.WORD_BITS` bits) as ``cls``'s fields."""
    return data.View(command_layout(cls), word)


def header_view(word) -> data.View:
    """View a command word as its header: ``opcode``, ``wait``, ``signal``."""
    return command_view(isa.Command, word)


def unit_layout(unit: isa.Unit) -> data.FlexibleLayout:
    """The fields of every command of ``unit``'s queue in one layout (header included).

    Raises
    ------
    ValueError
        Two of the unit's commands place a field of one name differently, or the unit has no
        command.
    """
    commands = unit_commands(unit)
    if not commands:
        raise ValueError(f"no command of hwsim.isa executes on unit {isa.Unit(unit).name}")
    fields: dict[str, data.Field] = {}
    for cls in commands:
        for name, field in command_layout(cls):
            if fields.setdefault(name, field) != field:
                raise ValueError(f"the commands of unit {isa.Unit(unit).name} place field "
                                 f"{name!r} differently")
    return data.FlexibleLayout(isa.WORD_BITS, fields)


def unit_view(unit: isa.Unit, word) -> data.View:
    """View a command word of ``unit``'s queue (:func:`unit_layout`)."""
    return data.View(unit_layout(unit), word)


def field_members(unit: isa.Unit, names=None) -> dict:
    """Input members named and sized after the fields of ``unit``'s commands.

    Parameters
    ----------
    unit : isa.Unit
    names : iterable of str, optional
        The fields the component takes (default: every payload field, and ``opcode`` when the
        queue carries more than one command).

    Returns
    -------
    dict
        ``{name: In(width)}`` in the order of ``names`` (default: word order), for a
        component's signature.

    Raises
    ------
    ValueError
        A name that is not a field of the unit's commands.
    """
    layout = unit_layout(unit)
    widths = {name: field.width for name, field in sorted(layout, key=lambda f: f[1].offset)}
    header = set(isa.field_offsets(isa.Command))
    if names is None:
        multi = len(unit_commands(unit)) > 1
        names = [n for n in widths if n not in header or (n == "opcode" and multi)]
    members = {}
    for name in names:
        if name not in widths:
            raise ValueError(f"{name!r} is not a field of unit {isa.Unit(unit).name}'s commands "
                             f"(fields: {', '.join(widths)})")
        members[name] = In(widths[name])
    return members


def opcode_in(opcode: Value, opcodes) -> Value:
    """``opcode`` is one of ``opcodes`` (0 for none)."""
    hits = [opcode == op for op in opcodes]
    return reduce(lambda a, b: a | b, hits) if hits else Const(0)
