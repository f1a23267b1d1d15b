"""Command controller: accepts binary ``hwsim.isa`` commands and dispatches them to unit queues.

The controller is the hardware of :mod:`hwsim.schedule`: one command accepted per cycle into its
unit's queue, units issuing from their queue heads when idle and their ``wait`` semaphores are
positive, semaphores incremented by the ``signal`` masks on each unit's done cycle, and SYNC and
SETREG executed as fences by the controller itself.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
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


UNIT_OPCODES = {
    isa.Unit.DMA_IN: (isa.Opcode.LOAD,),
    isa.Unit.DMA_OUT: (isa.Opcode.STORE,),
    isa.Unit.ARRAY: (isa.Opcode.GEMM,),
    isa.Unit.SORE: (isa.Opcode.PRUNE,),
    isa.Unit.VECTOR: (isa.Opcode.UPDATE,),
}


class Controller(wiring.Component):
    """Decoupled command controller with per-unit queues and 8 counting semaphores.

    Parameters
    ----------
    queue_depth : int
        Commands each unit queue holds (``config.queue_depth``).
    units : tuple of isa.Unit
        The units behind this controller, each with the members below.
    patterns : tuple of (int, int)
        N:M patterns the SORE and the array accept. Rejected (``error``) rather than run: PRUNEs
        of another pattern, along axis 0, of a partial group, or from a buffer other than WGT
        (``hwsim.sore.check_prune`` rejects the same); N:M GEMMs of another pattern, of a
        partial group, or with ``a_addr`` not a multiple of M (OS) or of M/N (WS; N must divide
        M), as ``hwsim.engine`` checks. UPDATE with Adam is rejected too;
        UPDATEs whose operand ranges overlap are undefined here (``hwsim`` rejects them).

    Members
    -------
    cmd : In(stream.Signature(128))
        Command words. ``ready`` is low while the target queue is full or a fence is pending.
    head_<unit> : Out(128)
        The head of the unit's queue; the unit samples its fields on ``start_<unit>``.
    start_<unit> : Out(1)
        Issue the head command (pops it).
    busy_<unit>, done_<unit> : In(1)
        The unit is running a command; its done cycle.
    retire : Out(8)
        Bit ``isa.Unit.X`` is high on the cycle a command of unit X completes (bit 0: SYNC or
        SETREG). cocotb maps these to commands to compare with hwsim command by command.
    idle : Out(1)
        Nothing queued, running, or offered.
    error : Out(1)
        Sticky: an unknown or unsupported command was seen (and dropped).
    regs : Out(ArrayLayout(32, 16))
        SETREG registers.

    Latency
    -------
    A command accepted on cycle ``a`` can start on ``a + 1``; a done on cycle ``e`` releases its
    tokens and its unit on ``e + 1``; a fence retires on the first cycle everything is idle.
    """

    def __init__(self, queue_depth: int = 4, units=tuple(UNIT_OPCODES),
                 patterns: tuple[tuple[int, int], ...] = ()):
        if not isinstance(queue_depth, int) or isinstance(queue_depth, bool) or queue_depth < 1:
            raise TypeError(f"queue_depth must be a positive integer, not {queue_depth!r}")
        self.queue_depth = queue_depth
        self.units = tuple(isa.Unit(u) for u in units)
        self.patterns = tuple(patterns)
        members = {
            "cmd": In(stream.Signature(isa.WORD_BITS)),
            "retire": Out(8), "idle": Out(1), "error": Out(1),
            "regs": Out(data.ArrayLayout(32, 16)),
        }
        for u in self.units:
            n = u.name.lower()
            members.update({f"head_{n}": Out(isa.WORD_BITS), f"start_{n}": Out(1),
                            f"busy_{n}": In(1), f"done_{n}": In(1)})
        super().__init__(members)

    def _port(self, unit: isa.Unit, what: str):
        return getattr(self, f"{what}_{unit.name.lower()}")

    def elaborate(self, platform):
        m = Module()
        nsem = isa.NUM_SEMAPHORES
        fence_retire = Signal()  # a SYNC/SETREG completes this cycle
        # every bit driven in one assignment: units this controller lacks stay low, and nothing
        # reads `retire` back (a block that reads what it writes loops forever in Icarus)
        present = {int(u): u for u in self.units}
        m.d.comb += self.retire.eq(Cat(fence_retire, *[
            self._port(present[b], "done") if b in present else Const(0, 1)
            for b in range(1, 8)]))
        sems = [Signal(8, name=f"sem{i}") for i in range(nsem)]
        inc = [[] for _ in range(nsem)]
        dec = [[] for _ in range(nsem)]

        incoming = self.cmd.payload
        op_in = incoming[:4]
        gemm_in = command_view(isa.Gemm, incoming)
        prune_in = command_view(isa.Prune, incoming)
        update_in = command_view(isa.Update, incoming)
        prune_ok = Signal()
        pattern_ok = sum((prune_in.n == pn) & (prune_in.log2m == pm.bit_length() - 1)
                         for pn, pm in self.patterns) != 0 if self.patterns else 0
        m.d.comb += prune_ok.eq(
            pattern_ok & prune_in.axis & (prune_in.src_buf == isa.Buffer.WGT)
            & ((prune_in.rows & ((1 << prune_in.log2m) - 1)) == 0))

        # an N:M GEMM: a supported pattern, whole groups, and a_addr aligned for the banked
        # ACT read (OS: a multiple of M; WS: of M/N, with N dividing M), as hwsim.engine checks
        sparse_ok = Signal()
        gemm_pat = []
        os_ = gemm_in.dataflow == isa.Dataflow.OS
        for pn, pm in self.patterns:
            lm = pm.bit_length() - 1
            ok = (gemm_in.n == pn) & (gemm_in.log2m == lm)
            if pn > 1:
                ok = ok & (gemm_in.k % pn == 0)
            le = (pm // pn).bit_length() - 1
            ws_ok = Const(0) if pm % pn else gemm_in.a_addr[:le] == 0 if le else Const(1)
            os_ok = gemm_in.a_addr[:lm] == 0 if lm else Const(1)
            gemm_pat.append(ok & Mux(os_, os_ok, ws_ok))
        m.d.comb += sparse_ok.eq(sum(gemm_pat) != 0 if gemm_pat else 0)

        fifos = {}
        all_empty = Signal()
        all_idle = Signal()
        empties, idles = [], []
        for u in self.units:
            fifo = SyncFIFO(width=isa.WORD_BITS, depth=self.queue_depth)
            m.submodules[f"queue_{u.name.lower()}"] = fifo
            fifos[u] = fifo
            head = fifo.r_data
            wait = head[4:4 + nsem]
            can = Signal(name=f"can_{u.name.lower()}")
            sems_ok = Signal(name=f"sems_ok_{u.name.lower()}")
            m.d.comb += sems_ok.eq(
                sum(wait[s] & (sems[s] == 0) for s in range(nsem)) == 0)
            m.d.comb += [
                self._port(u, "head").eq(head),
                can.eq(fifo.r_rdy & ~self._port(u, "busy") & sems_ok),
                self._port(u, "start").eq(can),
                fifo.r_en.eq(can),
                fifo.w_data.eq(incoming),
            ]
            # the signal mask of the running command, kept from its issue to its done
            sig = Signal(nsem, name=f"signal_{u.name.lower()}")
            with m.If(can):
                m.d.sync += sig.eq(head[4 + nsem:isa.HEADER_BITS])
            for s in range(nsem):
                dec[s].append(can & wait[s])
                inc[s].append(self._port(u, "done") & sig[s])
            empties.append(~fifo.r_rdy)
            idles.append(~self._port(u, "busy"))
        m.d.comb += [all_empty.eq(sum(e for e in empties) == len(empties)),
                     all_idle.eq(sum(i for i in idles) == len(idles))]

        # Control commands (SYNC, SETREG) wait in `word` until everything is idle.
        word = Signal(isa.WORD_BITS)
        cwait = word[4:4 + nsem]
        csig = word[4 + nsem:isa.HEADER_BITS]
        setreg = command_view(isa.SetReg, word)
        fence_done = Signal()
        m.d.comb += fence_done.eq(
            all_empty & all_idle & (sum(cwait[s] & (sems[s] == 0) for s in range(nsem)) == 0))
        for s in range(nsem):
            dec[s].append(cwait[s] & fence_retire)
            inc[s].append(csig[s] & fence_retire)

        with m.FSM():
            with m.State("RUN"):
                m.d.comb += self.idle.eq(all_empty & all_idle & ~self.cmd.valid)
                handled = Signal()
                for u in self.units:
                    codes = UNIT_OPCODES[u]
                    hit = sum(op_in == c for c in codes) != 0
                    if u == isa.Unit.ARRAY:
                        # dense tiles in either dataflow; N:M tiles output-stationary
                        hit = hit & (~gemm_in.sparse | sparse_ok)
                    if u == isa.Unit.SORE:
                        hit = hit & prune_ok
                    if u == isa.Unit.VECTOR:
                        # Adam is not built; the three hyper-parameter registers must exist
                        hit = hit & (update_in.optimizer != 2) & (update_in.hp_base <= 13)
                    with m.If(hit):
                        m.d.comb += [handled.eq(1), self.cmd.ready.eq(fifos[u].w_rdy),
                                     fifos[u].w_en.eq(self.cmd.valid)]
                with m.If((op_in == isa.Opcode.SYNC) | (op_in == isa.Opcode.SETREG)):
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
                with m.If(word[:4] == isa.Opcode.SETREG):
                    m.d.sync += self.regs[setreg.reg].eq(setreg.value)
                m.next = "RUN"

        for s in range(nsem):
            m.d.sync += sems[s].eq(sems[s] + sum(inc[s]) - sum(dec[s]))
        return m
