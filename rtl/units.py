"""What the top needs to know about a unit: the protocol its component keeps, and its entry.

A unit of the machine has one name in every layer (``hwsim/units/<name>.py``, ``rtl/<name>``,
``tests/rtl/test_<name>*.py``). In the RTL a unit is a :class:`UnitComponent` executing the
commands of one ``isa.Unit`` queue, and :data:`rtl.accelerator.UNITS` lists one
:class:`UnitSlot` per queue: the component and the buffer ports it drives. The controller's
queues, the command fields each unit receives and the buffer multiplexers are all built from
that list, so a new unit is one module and one entry there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from amaranth import Const, Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwsim import isa
from hwsim.config import AcceleratorConfig

from .decode import field_members

__all__ = ["BufferPort", "UnitComponent", "UnitSlot", "check_config", "from_start", "reads", "row",
           "selected", "selected_busy", "while_busy", "writes"]


def check_config(config) -> AcceleratorConfig:
    """``config``, checked to be an ``AcceleratorConfig`` (``TypeError`` otherwise)."""
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    return config


class UnitComponent(wiring.Component):
    """Base of the components the controller dispatches to: one per ``isa.Unit`` queue.

    Subclasses set :attr:`UNIT` and pass their own members; the base adds the members the top
    wires to the controller.

    Parameters
    ----------
    config : AcceleratorConfig
    members : dict
        The unit's other members (buffer ports, memory channels, ...).
    fields : iterable of str, optional
        The command fields the unit takes (:func:`rtl.decode.field_members`; default all).

    Members
    -------
    start : In(1)
        Begin the command on the field inputs (the head of the unit's queue).
    <field> : In(width)
        One per field in :attr:`fields`, named and sized as in ``hwsim.isa``; sampled on
        ``start``.
    done : Out(1)
        High for one cycle, the command's last.
    busy : Out(1)
        Running a command; the controller issues the next one the cycle after ``done``.

    Raises
    ------
    TypeError
        If ``config`` is not an ``AcceleratorConfig``.
    """

    UNIT: ClassVar[isa.Unit]

    def __init__(self, config: AcceleratorConfig, members: dict, *, fields=None):
        self.config = check_config(config)
        command = field_members(self.UNIT, fields)
        self.fields = tuple(command)
        super().__init__({"start": In(1), **command, **members,
                          "done": Out(1), "busy": Out(1)})

    def accepts(self, word) -> Value:
        """Whether the unit runs the command ``word`` of its queue; the controller rejects
        (``error``) and drops the others. Logic on ``word`` alone (default: every command)."""
        return Const(1)

    def register_inputs(self, word, regs) -> dict:
        """Members fed from controller registers while ``word`` heads the queue:
        ``{member: value}`` (default none)."""
        return {}

    def run_fsm(self, m: Module, latch, empty, finished) -> None:
        """The command FSM of a unit whose datapath runs by itself once started: on ``start``
        the ``latch`` statements load the command; it then runs (``busy``) until
        ``finished`` is high, which is the ``done`` cycle, or, when ``empty`` is high on
        ``start`` (nothing to do), is busy and done for one cycle."""
        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += latch
                with m.If(empty):
                    m.next = "EMPTY"
                with m.Else():
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.done.eq(finished)]
                with m.If(finished):
                    m.next = "IDLE"
            with m.State("EMPTY"):
                m.d.comb += [self.busy.eq(1), self.done.eq(1)]
                m.next = "IDLE"


def while_busy(unit: UnitComponent, buffer: isa.Buffer) -> Value:
    """The unit has the port while it runs."""
    return unit.busy


def from_start(unit: UnitComponent, buffer: isa.Buffer) -> Value:
    """The unit has the port while it runs and on its ``start`` cycle (it reads its first
    operand then)."""
    return unit.busy | unit.start


def selected(unit: UnitComponent, buffer: isa.Buffer) -> Value:
    """The unit (a DMA engine) addresses ``buffer`` (its ``sel``)."""
    return unit.sel == buffer


def selected_busy(unit: UnitComponent, buffer: isa.Buffer) -> Value:
    """The unit runs and addresses ``buffer``."""
    return unit.busy & (unit.sel == buffer)


@dataclass(frozen=True)
class BufferPort:
    """A buffer port a unit drives, and when it has it.

    Parameters
    ----------
    member : str
        The unit's member: a ``ReadPortSignature`` (``kind`` ``"read"``), a
        ``WritePortSignature`` (``"write"``) or the row input of a banked buffer (``"row"``,
        connected when the unit has the member).
    buffers : tuple of isa.Buffer
        The buffers it reaches. Several: the unit's ``sel`` picks the one a read returns, the
        last one answering any other ``sel``.
    kind : {"read", "write", "row"}
    when : callable, optional
        ``when(unit, buffer)``, the condition under which the unit has the buffer's port. The
        units of one port take it in :data:`rtl.accelerator.UNITS` order, the first whose
        ``when`` holds; a unit with no ``when`` has it otherwise (at most one per port). When
        every user of a port has a ``when``, the last one has it otherwise, its enable gated
        by its ``when``.
    read_port : int
        Which of the buffer's read ports (``-1``: its last).
    """

    member: str
    buffers: tuple[isa.Buffer, ...]
    kind: str
    when: Callable[[UnitComponent, isa.Buffer], Value] | None = None
    read_port: int = 0


def reads(member: str, *buffers: isa.Buffer, when=None, read_port: int = 0) -> BufferPort:
    """A read port of the unit on ``buffers`` (:class:`BufferPort`)."""
    return BufferPort(member, buffers, "read", when, read_port)


def writes(member: str, *buffers: isa.Buffer, when=None) -> BufferPort:
    """A write port of the unit on ``buffers`` (:class:`BufferPort`)."""
    return BufferPort(member, buffers, "write", when)


def row(member: str, buffer: isa.Buffer) -> BufferPort:
    """The unit's input of the whole row a banked ``buffer``'s read returns."""
    return BufferPort(member, (buffer,), "row")


def _always(config: AcceleratorConfig) -> bool:
    return True


@dataclass(frozen=True)
class UnitSlot:
    """One unit of the top: the queue it serves, its component and its buffer ports.

    Parameters
    ----------
    unit : isa.Unit
        The queue (its commands: ``rtl.decode.unit_commands``; its ``retire`` bit).
    component : callable
        ``component(config, **options)`` builds the :class:`UnitComponent`.
    ports : tuple of BufferPort
    options : tuple of str
        The top's options the component takes (e.g. ``"pe_module"``).
    present : callable
        ``present(config)``: whether ``config``'s machine has the unit (default: always).
        Commands of an absent unit are rejected.
    """

    unit: isa.Unit
    component: Callable[..., UnitComponent]
    ports: tuple[BufferPort, ...]
    options: tuple[str, ...] = ()
    present: Callable[[AcceleratorConfig], bool] = _always

    @property
    def name(self) -> str:
        """The queue's name: ``dma_in``, ``array``, ... (controller ports, submodules)."""
        return self.unit.name.lower()
