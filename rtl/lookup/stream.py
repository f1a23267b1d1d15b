"""Reading a VEC operand a word at a time: the lookup engine's operand streams."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal

from ..buffers import ADDR_BITS

__all__ = ["TokenBuffers", "WordStream", "ceil_div", "floor_div", "modulo", "read_arbiter",
           "row_window"]


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


class TokenBuffers:
    """A per-token operand (dY: ``h`` words a token) loaded from VEC, an entry a read, into
    ``count`` token buffers, so that token ``t + count - 1`` loads while the lanes are on token
    ``t``: a requester for :func:`read_arbiter` (``want``, ``grant``, ``addr``).

    Parameters
    ----------
    m : Module
    name : str
    lanes : int
        Words a VEC entry.
    words : int
        Widest token (a buffer's words).
    rd_data : Value
        The VEC read port's data.
    tokens : Value
        The command's token count (held while it runs).
    enable : Value
        The loads may run.
    count : int
        Token buffers.

    Attributes
    ----------
    want, grant, addr : Signal
        The port request, the arbiter's grant, the entry the next read addresses.
    ready : Value
        The lanes' token has landed.
    row : Signal
        The lanes' token (``32 * words`` bits, word ``j`` the token's element ``j``).
    advance : Signal
        Set by the consumer: the lanes are done with their token.
    """

    def __init__(self, m: Module, name: str, lanes: int, words: int, rd_data, tokens, enable,
                 count: int = 3):
        s = lambda shape, n: Signal(shape, name=f"{name}_{n}")  # noqa: E731
        self.want, self.grant, self.addr = s(1, "want"), s(1, "grant"), s(ADDR_BITS, "addr")
        self.advance, self.row = s(1, "advance"), s(32 * words, "row")
        self.per_tok = s(range(words // lanes + 1), "per_tok")  # entries a token
        bufs = [s(32 * words, f"buf{i}") for i in range(count)]
        ld_tok, loaded, ct = (s(len(tokens), n) for n in ("ld_tok", "loaded", "ct"))
        ld_buf, c_buf = s(range(count), "ld_buf"), s(range(count), "c_buf")
        ld_ent = s(len(self.per_tok), "ld_ent")
        land, land_buf, land_ent, land_last = (s(1, "land"), s(range(count), "land_buf"),
                                               s(len(self.per_tok), "land_ent"),
                                               s(1, "land_last"))
        self._state = [ld_tok, loaded, ct, ld_buf, c_buf, ld_ent]
        self.ready = loaded > ct

        def ring_next(v):
            return Mux(v == count - 1, 0, v + 1)

        m.d.comb += self.want.eq(enable & (ld_tok != tokens) & (ld_tok < ct + count))
        with m.If(self.grant):
            last_ent = ld_ent == self.per_tok - 1
            m.d.sync += [self.addr.eq(self.addr + 1),
                         ld_ent.eq(Mux(last_ent, 0, ld_ent + 1)), ld_tok.eq(ld_tok + last_ent),
                         land_buf.eq(ld_buf), land_ent.eq(ld_ent), land_last.eq(last_ent)]
            with m.If(last_ent):
                m.d.sync += ld_buf.eq(ring_next(ld_buf))
        m.d.sync += land.eq(self.grant)
        with m.If(land):
            for i in range(count):
                with m.If(land_buf == i):
                    m.d.sync += bufs[i].word_select(land_ent, 32 * lanes).eq(rd_data)
            m.d.sync += loaded.eq(loaded + land_last)
        with m.If(self.advance):
            m.d.sync += [ct.eq(ct + 1), c_buf.eq(ring_next(c_buf))]
        for i in range(count):
            with m.If(c_buf == i):
                m.d.comb += self.row.eq(bufs[i])

    def begin(self, addr, per_tok):
        """Statements (sync) starting the loads at entry ``addr``, ``per_tok`` entries a
        token."""
        return [self.addr.eq(addr), self.per_tok.eq(per_tok)]

    def clear(self):
        """Statements (sync) returning to the idle state (at a command's end)."""
        return [v.eq(0) for v in self._state]
