"""Reading a VEC operand a word at a time: the lookup engine's operand streams."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal

from ..buffers import ADDR_BITS

__all__ = ["WordStream", "ceil_div", "floor_div", "modulo", "read_arbiter", "row_window"]


def floor_div(value, d: int):
    """``value // d`` for a constant ``d``: a shift when ``d`` is a power of two (Amaranth's
    ``//`` builds a divider, which also slows elaboration), else a divider."""
    return value >> (d.bit_length() - 1) if d & (d - 1) == 0 else value // d


def ceil_div(value, d: int):
    """``ceil(value / d)`` for a constant ``d`` (:func:`floor_div`)."""
    return floor_div(value + (d - 1), d)


def modulo(value, d: int):
    """``value % d`` for a constant ``d``: the low bits when ``d`` is a power of two."""
    if d == 1:
        return Const(0)
    return value[:d.bit_length() - 1] if d & (d - 1) == 0 else value % d


def row_window(inflight_bytes: int, row_bytes, slots: int):
    """The row window of a command (a Value): ``max(4, inflight_bytes // row_bytes)``
    (``hwsim.config.LookupConfig.rows_in_flight``, at least 4 as hwsim's pipeline takes it), by
    comparisons with constant multiples; ``slots + 1`` stands for any window beyond ``slots``."""
    w = Const(0, range(slots + 2))
    for k in range(1, slots + 2):
        w = Mux(row_bytes * k <= inflight_bytes, k, w)
    return Mux(w < 4, 4, w)


class WordStream:
    """The words of one VEC operand, in order, one a cycle at most, read ``L`` at a time.

    Entries are read into a two-entry FIFO that falls through: an entry is usable on the cycle
    its read returns (the VEC port's data), so a stream started with its first read on cycle 0
    has its first word on cycle 1. A stream asks for the port (``want``) while it has entries
    left and room for one more in the FIFO (counting the read in flight); :func:`read_arbiter`
    grants one stream a cycle. With ``L >= 2`` words an entry, a consumer taking one word a
    cycle needs the port every second cycle at most.

    Parameters
    ----------
    m : Module
    name : str
    lanes : int
        Words an entry (``vector.lanes``), at least 2.
    rd_data : Value
        The VEC read port's data.
    count_bits : int
        Width of the entry counter.

    Attributes
    ----------
    valid, word : Signal
        A word is available, and its value (combinational).
    pop : Signal
        Set by the consumer: take ``word`` this cycle (only when ``valid``).
    want, grant, addr : Signal
        The port request, the arbiter's grant, the entry the read would address.
    """

    def __init__(self, m: Module, name: str, lanes: int, rd_data, count_bits: int = 24):
        if lanes < 2:
            raise ValueError("a word stream needs at least two words an entry")
        self.m, self.lanes = m, lanes
        s = lambda shape, n: Signal(shape, name=f"{name}_{n}")  # noqa: E731
        self.addr = s(ADDR_BITS, "addr")  # next entry to read
        self.left = s(count_bits, "left")  # entries still to read
        self.buf = [s(32 * lanes, f"buf{i}") for i in range(2)]
        self.count = s(2, "count")  # entries held
        self.head = s(1, "head")  # which buffer holds the oldest entry
        self.at = s(range(lanes), "at")  # next word of the oldest entry
        self.inflight = s(1, "inflight")  # the read granted last cycle returns now
        self.valid, self.word = s(1, "valid"), s(32, "word")
        self.pop, self.want, self.grant = s(1, "pop"), s(1, "want"), s(1, "grant")
        oldest = Mux(self.count != 0, Mux(self.head, self.buf[1], self.buf[0]), rd_data)
        m.d.comb += [
            self.valid.eq((self.count != 0) | self.inflight),
            self.word.eq(oldest.word_select(self.at, 32)),
            self.want.eq((self.left != 0) & (self.count + self.inflight < 2)),
        ]
        ends = self.pop & (self.at == lanes - 1)  # the oldest entry's last word goes
        tail = self.head ^ self.count[0]
        with m.If(self.inflight):
            with m.If(tail):
                m.d.sync += self.buf[1].eq(rd_data)
            with m.Else():
                m.d.sync += self.buf[0].eq(rd_data)
        m.d.sync += self.count.eq(self.count + self.inflight - ends)
        with m.If(self.pop):
            m.d.sync += self.at.eq(Mux(ends, 0, self.at + 1))
        with m.If(ends & (self.count != 0)):
            m.d.sync += self.head.eq(~self.head)
        m.d.sync += self.inflight.eq(self.grant)
        with m.If(self.grant):
            m.d.sync += [self.addr.eq(self.addr + 1), self.left.eq(self.left - 1)]

    def begin(self, addr, entries, read_now):
        """Statements (sync) starting the stream at entry ``addr`` with ``entries`` to read;
        ``read_now``: the caller reads entry ``addr`` this cycle itself (so the stream starts
        one entry on, that read in flight)."""
        return [self.addr.eq(addr + read_now), self.left.eq(entries - read_now),
                self.count.eq(0), self.head.eq(0), self.at.eq(0),
                self.inflight.eq(read_now)]


def read_arbiter(m: Module, rd, streams, enable) -> None:
    """Drive the VEC read port ``rd`` for ``streams`` (a priority order) while ``enable``:
    the first stream that wants the port reads its next entry."""
    taken = 0
    for st in streams:
        m.d.comb += st.grant.eq(enable & st.want & ~taken)
        taken = taken | st.want
    with m.If(enable):
        for st in reversed(streams):
            with m.If(st.grant):
                m.d.comb += [rd.addr.eq(st.addr), rd.en.eq(1)]
