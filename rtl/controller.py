"""Command controller: accepts binary ``hwsim.isa`` commands and dispatches them to unit queues.

The controller is the hardware of :mod:`hwsim.schedule`: one command accepted per cycle into the
queue of its unit (``isa.Unit``, from the ISA's opcode registry: :func:`rtl.decode.unit_opcodes`),
units issuing from their queue heads when idle and their ``wait`` semaphores are positive,
semaphores incremented by the ``signal`` masks on each unit's done cycle, and the control
unit's commands (SETREG, SYNC) executed as fences by the controller itself.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hwsim import isa

from .decode import REGISTERS, command_view, header_view, opcode_in, unit_opcodes

__all__ = ["RETIRE_BITS", "Controller"]

RETIRE_BITS = 8
"""Width of ``retire``: one bit per ``isa.Unit``."""
assert len(isa.Unit) <= RETIRE_BITS


class Controller(wiring.Component):
    """Decoupled command controller with per-unit queues and ``isa.NUM_SEMAPHORES`` counting
    semaphores.

    Parameters
    ----------
    units : tuple of isa.Unit
        The queues, one per unit behind the controller; commands of other units are rejected.
    queue_depth : int
        Commands each unit queue holds (``config.queue_depth``).
    accepts : dict, optional
        ``{unit: accepts(word) -> Value}``: which commands of its queue the unit runs
        (:meth:`rtl.units.UnitComponent.accepts`); the others are rejected. Default: all.

    Members
    -------
    cmd : In(stream.Signature(isa.WORD_BITS))
        Command words. ``ready`` is low while the target queue is full or a fence is pending.
    head_<unit> : Out(isa.WORD_BITS)
        The head of the unit's queue; the unit samples its fields on ``start_<unit>``.
    start_<unit> : Out(1)
        Issue the head command (pops it).
    busy_<unit>, done_<unit> : In(1)
        The unit is running a command; its done cycle.
    retire : Out(RETIRE_BITS)
        Bit ``isa.Unit.X`` is high on the cycle a command of unit X completes (bit
        ``isa.Unit.CONTROL``, 0: SYNC or SETREG). cocotb maps these to commands to compare
        with hwsim command by command.
    idle : Out(1)
        Nothing queued, running, or offered.
    error : Out(1)
        Sticky: a command no unit here runs was seen (and dropped): an opcode of an absent unit
        or none, or one its unit does not accept.
    regs : Out(ArrayLayout(value width, REGISTERS))
        SETREG registers.

    Latency
    -------
    A command accepted on cycle ``a`` can start on ``a + 1``; a done on cycle ``e`` releases its
    tokens and its unit on ``e + 1``; a fence retires on the first cycle everything is idle and
    its ``wait`` semaphores are positive.

    Raises
    ------
    TypeError
        If ``queue_depth`` is not a positive integer.
    ValueError
        If ``units`` names the control unit, a unit twice or a unit no command runs on, or
        ``accepts`` a unit not in ``units``.
    """

    def __init__(self, units, *, queue_depth: int = 4, accepts=None):
        if not isinstance(queue_depth, int) or isinstance(queue_depth, bool) or queue_depth < 1:
            raise TypeError(f"queue_depth must be a positive integer, not {queue_depth!r}")
        units = tuple(isa.Unit(u) for u in units)
        for u in units:
            if u == isa.Unit.CONTROL or not unit_opcodes(u) or units.count(u) > 1:
                raise ValueError(f"units must be distinct queues of hwsim.isa commands other "
                                 f"than CONTROL, not {[x.name for x in units]}")
        accepts = dict(accepts or {})
        if set(accepts) - set(units):
            raise ValueError(f"accepts names units without a queue here: "
                             f"{sorted(isa.Unit(u).name for u in set(accepts) - set(units))}")
        self.queue_depth = queue_depth
        self.units = units
        self.accepts = accepts
        reg_bits = dict(isa.SetReg.FIELDS)["value"]
        members = {
            "cmd": In(stream.Signature(isa.WORD_BITS)),
            "retire": Out(RETIRE_BITS), "idle": Out(1), "error": Out(1),
            "regs": Out(data.ArrayLayout(reg_bits, REGISTERS)),
        }
        for u in self.units:
            n = u.name.lower()
            members.update({f"head_{n}": Out(isa.WORD_BITS), f"start_{n}": Out(1),
                            f"busy_{n}": In(1), f"done_{n}": In(1)})
        super().__init__(members)

    def port(self, unit: isa.Unit, what: str):
        """The member ``<what>_<unit>`` (``what``: ``head``, ``start``, ``busy``, ``done``)."""
        return getattr(self, f"{what}_{isa.Unit(unit).name.lower()}")

    def elaborate(self, platform):
        m = Module()
        nsem = isa.NUM_SEMAPHORES
        fence_retire = Signal()  # a control command completes this cycle
        # every bit driven in one assignment: units this controller lacks stay low, and nothing
        # reads `retire` back (a block that reads what it writes loops forever in Icarus)
        present = {int(u): u for u in self.units}
        m.d.comb += self.retire.eq(Cat(*[
            fence_retire if b == isa.Unit.CONTROL else
            self.port(present[b], "done") if b in present else Const(0, 1)
            for b in range(RETIRE_BITS)]))
        sems = [Signal(range(isa.SEMAPHORE_MAX + 1), name=f"sem{i}") for i in range(nsem)]
        inc = [[] for _ in range(nsem)]
        dec = [[] for _ in range(nsem)]

        def waits_ok(wait):
            """No semaphore in the ``wait`` mask is zero."""
            return sum(wait[s] & (sems[s] == 0) for s in range(nsem)) == 0

        incoming = self.cmd.payload
        op_in = header_view(incoming).opcode

        fifos = {}
        all_empty = Signal()
        all_idle = Signal()
        empties, idles = [], []
        for u in self.units:
            name = u.name.lower()
            fifo = SyncFIFO(width=isa.WORD_BITS, depth=self.queue_depth)
            m.submodules[f"queue_{name}"] = fifo
            fifos[u] = fifo
            head = header_view(fifo.r_data)
            can = Signal(name=f"can_{name}")
            sems_ok = Signal(name=f"sems_ok_{name}")
            m.d.comb += sems_ok.eq(waits_ok(head.wait))
            m.d.comb += [
                self.port(u, "head").eq(fifo.r_data),
                can.eq(fifo.r_rdy & ~self.port(u, "busy") & sems_ok),
                self.port(u, "start").eq(can),
                fifo.r_en.eq(can),
                fifo.w_data.eq(incoming),
            ]
            # the signal mask of the running command, kept from its issue to its done
            sig = Signal(nsem, name=f"signal_{name}")
            with m.If(can):
                m.d.sync += sig.eq(head.signal)
            for s in range(nsem):
                dec[s].append(can & head.wait[s])
                inc[s].append(self.port(u, "done") & sig[s])
            empties.append(~fifo.r_rdy)
            idles.append(~self.port(u, "busy"))
        m.d.comb += [all_empty.eq(sum(e for e in empties) == len(empties)),
                     all_idle.eq(sum(i for i in idles) == len(idles))]

        # Control commands (SYNC, SETREG) wait in `word` until everything is idle.
        word = Signal(isa.WORD_BITS)
        control = header_view(word)
        setreg = command_view(isa.SetReg, word)
        fence_done = Signal()
        m.d.comb += fence_done.eq(all_empty & all_idle & waits_ok(control.wait))
        for s in range(nsem):
            dec[s].append(control.wait[s] & fence_retire)
            inc[s].append(control.signal[s] & fence_retire)

        with m.FSM():
            with m.State("RUN"):
                m.d.comb += self.idle.eq(all_empty & all_idle & ~self.cmd.valid)
                handled = Signal()
                for u in self.units:
                    hit = opcode_in(op_in, unit_opcodes(u))
                    if u in self.accepts:
                        hit = hit & self.accepts[u](incoming)
                    with m.If(hit):
                        m.d.comb += [handled.eq(1), self.cmd.ready.eq(fifos[u].w_rdy),
                                     fifos[u].w_en.eq(self.cmd.valid)]
                with m.If(opcode_in(op_in, unit_opcodes(isa.Unit.CONTROL))):
                    m.d.comb += [handled.eq(1), self.cmd.ready.eq(1)]
                    with m.If(self.cmd.valid):
                        m.d.sync += word.eq(incoming)
                        m.next = "FENCE"
                with m.If(~handled):
                    m.d.comb += self.cmd.ready.eq(1)
                    with m.If(self.cmd.valid):
                        m.d.sync += self.error.eq(1)
            with m.State("FENCE"), m.If(fence_done):
                m.d.comb += fence_retire.eq(1)
                with m.If(control.opcode == isa.SetReg.OPCODE):
                    m.d.sync += self.regs[setreg.reg].eq(setreg.value)
                m.next = "RUN"

        for s in range(nsem):
            m.d.sync += sems[s].eq(sems[s] + sum(inc[s]) - sum(dec[s]))
        return m
