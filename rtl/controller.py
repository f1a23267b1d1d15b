"""Command controller: accepts binary ``hwsim.isa`` commands, decodes them and runs them."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwsim import isa

__all__ = ["Controller", "command_layout", "command_view"]


def command_layout(cls: type[isa.Command]) -> data.StructLayout:
    """The Amaranth layout of one command's word, built from ``hwsim.isa``'s fields."""
    fields = {"opcode": 4, "wait": isa.NUM_SEMAPHORES, "signal": isa.NUM_SEMAPHORES}
    fields.update(dict(cls.FIELDS))
    return data.StructLayout(fields)


def command_view(cls: type[isa.Command], word) -> data.View:
    """View the low bits of a 128-bit command word as ``cls``'s fields."""
    layout = command_layout(cls)
    return data.View(layout, word[:layout.size])


class Controller(wiring.Component):
    """In-order command controller.

    One command is in flight at a time: the controller accepts a word (``cmd`` handshake),
    starts its unit on the next cycle, and retires it on the cycle the unit reports done, then
    accepts the next word. SETREG and SYNC complete on their start cycle. Every command thus
    costs ``1 + unit_cycles`` cycles, which ``hwsim.timing`` reproduces. Serial issue trivially
    satisfies the semaphore order of any well-formed program; a command that waits on a
    semaphore with no pending signal can never issue, so it raises ``error`` and is skipped
    instead of hanging. Unknown opcodes also raise ``error``.

    Members
    -------
    cmd : In(stream.Signature(128))
        Command words (``hwsim.isa`` encoding).
    word : Out(128)
        The command in flight; units read their fields from it.
    start_load, start_store, start_gemm : Out(1)
        One-cycle start pulses.
    unit_done : In(1)
        The started unit's done pulse.
    retire : Out(1)
        High for one cycle as each command completes.
    idle : Out(1)
        No command in flight.
    error : Out(1)
        Sticky: an unsupported or unsatisfiable command was seen.
    regs : Out(ArrayLayout(32, 16))
        SETREG registers.
    """

    def __init__(self):
        super().__init__({
            "cmd": In(stream.Signature(isa.WORD_BITS)),
            "word": Out(isa.WORD_BITS),
            "start_load": Out(1), "start_store": Out(1), "start_gemm": Out(1),
            "unit_done": In(1),
            "retire": Out(1), "idle": Out(1), "error": Out(1),
            "regs": Out(data.ArrayLayout(32, 16)),
        })

    def elaborate(self, platform):
        m = Module()
        word = Signal(isa.WORD_BITS)
        m.d.comb += self.word.eq(word)
        op = word[:4]
        wait = word[4:4 + isa.NUM_SEMAPHORES]
        signal = word[4 + isa.NUM_SEMAPHORES:isa.HEADER_BITS]
        sems = [Signal(8, name=f"sem{i}") for i in range(isa.NUM_SEMAPHORES)]
        setreg = command_view(isa.SetReg, word)
        gemm = command_view(isa.Gemm, word)
        blocked = Signal()
        m.d.comb += blocked.eq(
            sum(((wait >> i) & 1) & (sems[i] == 0) for i in range(isa.NUM_SEMAPHORES)) != 0)

        def retire_now():
            m.d.comb += self.retire.eq(1)
            for i in range(isa.NUM_SEMAPHORES):
                m.d.sync += sems[i].eq(sems[i] - wait[i] + signal[i])
            m.next = "IDLE"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.cmd.ready.eq(1), self.idle.eq(~self.cmd.valid)]
                with m.If(self.cmd.valid):
                    m.d.sync += word.eq(self.cmd.payload)
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(blocked):
                    m.d.sync += self.error.eq(1)
                    m.d.comb += self.retire.eq(1)
                    m.next = "IDLE"
                with m.Else(), m.Switch(op):
                    with m.Case(isa.Opcode.LOAD):
                        m.d.comb += self.start_load.eq(1)
                        m.next = "WAIT"
                    with m.Case(isa.Opcode.STORE):
                        m.d.comb += self.start_store.eq(1)
                        m.next = "WAIT"
                    with m.Case(isa.Opcode.GEMM):
                        # This datapath runs dense output-stationary tiles only.
                        with m.If(gemm.dataflow | gemm.sparse):
                            m.d.sync += self.error.eq(1)
                            m.d.comb += self.retire.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.d.comb += self.start_gemm.eq(1)
                            m.next = "WAIT"
                    with m.Case(isa.Opcode.SETREG):
                        m.d.sync += self.regs[setreg.reg].eq(setreg.value)
                        retire_now()
                    with m.Case(isa.Opcode.SYNC):
                        retire_now()
                    with m.Default():
                        m.d.sync += self.error.eq(1)
                        m.d.comb += self.retire.eq(1)
                        m.next = "IDLE"
            with m.State("WAIT"), m.If(self.unit_done):
                retire_now()
        return m
