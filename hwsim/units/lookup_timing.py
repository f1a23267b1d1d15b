"""Timing of the lookup engine's row pipeline over a memory tier, two ways that must agree.

Every GATHER and SCATTER is a sequence of *accesses* (one per token and chunk, or per row to
update), each a few row requests to the tier, then ``compute`` cycles on the accumulate lanes,
then a few write requests. The pipeline, from the command's start cycle 0:

- **requests** issue in program order, at most ``ports`` per cycle, from cycle 1; a request
  waits until every channel its access blocks touch has fewer than ``tier.outstanding``
  requests in flight (in-order issue: a full channel holds up the requests behind it) and,
  for a read, until fewer than ``window`` reads are in flight (the engine's row buffer of
  ``window`` slots: a slot is free again once the computation that consumed its row has
  ended). A pending write issues before a read that could go on the same cycle;
- each request is served by the tier's banked model (:func:`hwsim.dram._service`: row hits
  and misses, the channel's bus at its read or write bandwidth), after whole
  ``access_bytes`` blocks; a read completes ``read latency`` after its last data, a write is
  posted (the engine is done with it when its data has left the bus);
- read data returns through ``ports`` **response ports** (one per request port), a row each
  a cycle: a read completed on cycle ``c`` is answered on the first cycle from ``c`` with a
  port no earlier read's response has taken (reads that complete together, from different
  channels or short transfers, queue there);
- the accumulate lanes take accesses in order: access ``i`` computes from
  ``max(its last response + 1, the end of the previous access)`` for ``compute[i]`` cycles
  (:func:`hwsim.units.lookup.row_compute_cycles`: ``ceil(h / lanes)`` a row at a time, or a
  fraction when the lanes take several whole rows a cycle); it ends on cycle
  ``ceil(start + compute) - 1`` and its writes become ready the cycle after;
- a **read-after-write hazard**: an access whose row an earlier access ``dep[i]`` updates is
  *forwarded* when ``fwd[i]`` (the earlier access is still in the engine: the row comes from
  the accumulator, no read is issued); otherwise its reads wait until ``dep[i]``'s writes
  have completed (their latency included).

The command is done on the cycle after its last computation and its last write's data,
``unit_cycles = done + 1``. :func:`events` finds every time from the previous ones (timing
mode); :func:`per_cycle` steps the engine one clock at a time (functional mode); tests check
that they agree.

**Hot-row cache** (``lookup.hot_rows > 0``): :func:`events_hot` and :func:`per_cycle_hot` are the
same two kernels with the reads that hit an on-chip row cache served without a tier request
(:func:`events_hot` states the rules); :func:`lru_hits` says which reads hit (a fully associative
LRU cache, cold at the command's start, referenced in program order). Without a cache the
kernels above run unchanged (the RTL is checked against them).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit
from ..config import MemoryTier
from ..dram import _service

__all__ = ["TierParams", "events", "events_hot", "lru_hits", "per_cycle", "per_cycle_hot"]


class TierParams:
    """A tier's timing parameters in accelerator cycles (what the kernels take)."""

    def __init__(self, tier: MemoryTier, clock_mhz: float):
        self.channels, self.banks = tier.channels, tier.banks
        g = tier.interleave_bytes
        self.gran_shift = g.bit_length() - 1
        self.line_shift = (tier.row_bytes // g).bit_length() - 1
        self.rd_bpc = tier.bandwidth_gbps * 1000.0 / clock_mhz
        self.wr_bpc = tier.write_bandwidth_gbps * 1000.0 / clock_mhz
        self.rd_lat = math.ceil(tier.read_latency_ns * clock_mhz / 1000.0 - 1e-9)
        self.wr_lat = math.ceil(tier.write_latency_ns * clock_mhz / 1000.0 - 1e-9)
        self.miss = float(math.ceil(tier.row_miss_ns * clock_mhz / 1000.0 - 1e-9))
        self.access = tier.access_bytes
        self.outstanding = tier.outstanding

    def args(self):
        return (self.channels, self.banks, self.gran_shift, self.line_shift, self.rd_bpc,
                self.wr_bpc, self.rd_lat, self.wr_lat, self.miss, self.access, self.outstanding)


@njit(cache=True)
def _blocks(addr, size, access):  # pragma: no cover - compiled
    lo = addr & ~(access - 1)
    return lo, ((addr + size + access - 1) & ~(access - 1)) - lo


@njit(cache=True)
def _serve(addr, size, write, t, p, state):  # pragma: no cover - compiled
    """Serve one request issued on cycle ``t``: (completion cycle, last-data cycle, hits,
    misses, bytes moved)."""
    (channels, banks, gs, ls, rd_bpc, wr_bpc, rd_lat, wr_lat, miss, access, _) = p
    bus_free, open_row, row_ready, last_data = state
    lo, moved = _blocks(addr, size, access)
    done, h, m = _service(lo, moved, float(t), channels, banks, gs, ls,
                          wr_bpc if write else rd_bpc, miss, bus_free, open_row, row_ready,
                          last_data)
    data = math.ceil(done - 1e-9) - 1
    return data + (wr_lat if write else rd_lat), data, h, m, moved


@njit(cache=True)
def _after(addr, size, p, ring, cnt):  # pragma: no cover - compiled
    """The first cycle a request may issue for the outstanding limit of every channel its
    access blocks touch (0: no limit reached)."""
    lo, moved = _blocks(addr, size, p[9])
    first = lo >> p[2]
    touched = min(((lo + moved - 1) >> p[2]) - first + 1, p[0])
    t = 0
    for k in range(touched):
        c = (first + k) % p[0]
        if cnt[c] >= p[10]:
            t = max(t, ring[c, cnt[c] % p[10]] + 1)
    return t


@njit(cache=True)
def _record(addr, size, fin, p, ring, cnt):  # pragma: no cover - compiled
    lo, moved = _blocks(addr, size, p[9])
    first = lo >> p[2]
    touched = min(((lo + moved - 1) >> p[2]) - first + 1, p[0])
    for k in range(touched):
        c = (first + k) % p[0]
        ring[c, cnt[c] % p[10]] = fin
        cnt[c] += 1


@njit(cache=True)
def _issue(addr, size, write, t, p, state, ring, cnt, totals):  # pragma: no cover
    """Serve a request issued on cycle ``t``, record it against its channels' outstanding
    limit and add its row hits, misses and bytes to ``totals``: (completion, last data)."""
    fin, data, h, m, moved = _serve(addr, size, write, t, p, state)
    _record(addr, size, fin, p, ring, cnt)
    totals[0] += h
    totals[1] += m
    totals[3 if write else 2] += moved
    return fin, data


_RESPONSE_SPAN = 1 << 18
"""Cycles ahead of a read's issue its response may be booked on (a ring of that many slots)."""


@njit(cache=True)
def _respond(fin, t, taken, ports):  # pragma: no cover - compiled
    """Book the response of a read issued on cycle ``t`` and completed on ``fin``: the first
    cycle from ``fin`` on which one of the ``ports`` response ports is free. ``taken``: per
    slot of the ring, the cycle it holds and the responses booked on it."""
    c = fin
    while True:
        s = c & (_RESPONSE_SPAN - 1)
        if taken[s, 0] != c:
            taken[s, 0], taken[s, 1] = c, 0
        if taken[s, 1] < ports:
            break
        c += 1
    if c - t >= _RESPONSE_SPAN:
        raise ValueError("a read's response is booked too far ahead of its issue")
    taken[s, 1] += 1
    return c


@njit(cache=True)
def _wrote(fin, wi, wk, wr_ptr, wr_done):  # pragma: no cover - compiled
    """Advance past a write just issued: (next access with writes, its next write)."""
    wk += 1
    if wr_ptr[wi] + wk == wr_ptr[wi + 1]:
        wr_done[wi] = fin
        return wi + 1, 0
    return wi, wk


@njit(cache=True)
def _state(p):  # pragma: no cover - compiled
    nb = p[0] * p[1]
    return (np.zeros(p[0], np.float64), np.full(nb, -1, np.int64), np.zeros(nb, np.float64),
            np.zeros(nb, np.float64))


@njit(cache=True)
def events(rd_addr, rd_size, rd_ptr, wr_addr, wr_size, wr_ptr, compute, dep, fwd, ports,
           window, p):  # pragma: no cover - compiled
    """The pipeline's times found request by request (module docstring).

    Returns ``(cycles, bytes_read, bytes_written, hits, misses)``. ``window`` must be at least
    the largest number of reads of one access.
    """
    n = compute.shape[0]
    state = _state(p)
    channels, outstanding = p[0], p[10]
    ring = np.full((channels, outstanding), -1, np.int64)  # completions per channel
    cnt = np.zeros(channels, np.int64)
    consumed = np.zeros(max(rd_addr.shape[0], 1), np.int64)  # compute end of each read
    taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)  # response ports' cycles taken
    comp_end = np.full(n, -1, np.int64)
    wr_done = np.full(n, -1, np.int64)  # completion of an access's last write
    slot_t, slot_used = 0, ports  # issue slots: the cycle, requests used on it
    i, k = 0, 0  # the next read: access i, its request k
    data_ready = 0  # the latest completion of access i's reads so far
    wi, wk = 0, 0  # the next write: access wi, its request wk
    last = 0
    totals = np.zeros(4, np.int64)  # row hits, misses, bytes read, bytes written
    acc_free = 0.0  # when the accumulate lanes can take the next access (fractional cycles)
    while i < n or wi < n:
        while wi < i and wr_ptr[wi] + wk >= wr_ptr[wi + 1]:
            wi += 1
            wk = 0
        if i == n and wi >= i:
            break
        free = slot_t if slot_used < ports else slot_t + 1
        tw = -1
        if wi < i:
            j = wr_ptr[wi] + wk
            tw = max(comp_end[wi] + 1, free, _after(wr_addr[j], wr_size[j], p, ring, cnt))
        tr = -1
        if i < n and rd_ptr[i] + k < rd_ptr[i + 1]:
            hazard = dep[i] >= 0 and not fwd[i]
            if not (hazard and wr_done[dep[i]] < 0):
                r = rd_ptr[i] + k
                tr = max(1, free)
                if hazard:
                    tr = max(tr, wr_done[dep[i]] + 1)
                tr = max(tr, _after(rd_addr[r], rd_size[r], p, ring, cnt))
                if r >= window:
                    tr = max(tr, consumed[r - window] + 1)
        if i < n and rd_ptr[i] + k == rd_ptr[i + 1]:
            # every read of access i is out: schedule its computation
            start = max(float(data_ready + 1), acc_free)
            if dep[i] >= 0 and fwd[i]:
                start = max(start, float(comp_end[dep[i]] + 1))
            acc_free = start + compute[i]
            comp_end[i] = math.ceil(acc_free - 1e-9) - 1
            for r in range(rd_ptr[i], rd_ptr[i + 1]):
                consumed[r] = comp_end[i]
            last = max(last, comp_end[i])
            i += 1
            k = 0
            data_ready = 0
            continue
        if tw >= 0 and (tr < 0 or tw <= tr):
            j = wr_ptr[wi] + wk
            slot_t, slot_used = (tw, 1) if tw != slot_t else (slot_t, slot_used + 1)
            fin, data = _issue(wr_addr[j], wr_size[j], True, tw, p, state, ring, cnt, totals)
            last = max(last, data)
            wi, wk = _wrote(fin, wi, wk, wr_ptr, wr_done)
            continue
        r = rd_ptr[i] + k
        slot_t, slot_used = (tr, 1) if tr != slot_t else (slot_t, slot_used + 1)
        fin, _ = _issue(rd_addr[r], rd_size[r], False, tr, p, state, ring, cnt, totals)
        data_ready = max(data_ready, _respond(fin, tr, taken, ports))
        k += 1
    return last + 2, totals[2], totals[3], totals[0], totals[1]


@njit(cache=True)
def per_cycle(rd_addr, rd_size, rd_ptr, wr_addr, wr_size, wr_ptr, compute, dep, fwd, ports,
              window, p):  # pragma: no cover - compiled
    """The same pipeline stepped one clock at a time (the functional mode's schedule).

    Each cycle: the accumulate lanes start the next access when its reads are all out and
    back and the lanes are free; then up to ``ports`` requests issue, writes first, each when
    its constraints hold on this cycle.
    """
    n = compute.shape[0]
    state = _state(p)
    channels, outstanding = p[0], p[10]
    ring = np.full((channels, outstanding), -1, np.int64)
    cnt = np.zeros(channels, np.int64)
    rd_done = np.full(max(rd_addr.shape[0], 1), -1, np.int64)  # completion of each read
    consumed = np.full(max(rd_addr.shape[0], 1), -1, np.int64)  # compute end of each read
    taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)  # response ports' cycles taken
    comp_end = np.full(n, -1, np.int64)
    wr_done = np.full(n, -1, np.int64)
    ri, rk = 0, 0  # the next read to issue: access, request
    wi, wk = 0, 0  # the next write
    nc = 0  # the next access to compute
    last = 0
    totals = np.zeros(4, np.int64)  # row hits, misses, bytes read, bytes written
    acc_free = 0.0
    t = 0
    while True:
        while ri < n and rd_ptr[ri] + rk == rd_ptr[ri + 1]:
            ri += 1  # every read of this access is out (or it has none)
            rk = 0
        # the accumulate lanes take every access they can start within this cycle
        while nc < n and nc < ri and acc_free < t + 1:
            ok = True
            for r in range(rd_ptr[nc], rd_ptr[nc + 1]):
                if rd_done[r] >= t:
                    ok = False
            if dep[nc] >= 0 and fwd[nc] and comp_end[dep[nc]] >= t:
                ok = False
            if not ok:
                break
            start = max(float(t), acc_free)
            acc_free = start + compute[nc]
            comp_end[nc] = math.ceil(acc_free - 1e-9) - 1
            last = max(last, comp_end[nc])
            for r in range(rd_ptr[nc], rd_ptr[nc + 1]):
                consumed[r] = comp_end[nc]
            nc += 1
            while ri < n and rd_ptr[ri] + rk == rd_ptr[ri + 1]:
                ri += 1
                rk = 0
        while wi < nc and wr_ptr[wi] + wk == wr_ptr[wi + 1]:
            wi += 1
            wk = 0
        if nc == n and wi == n:
            break
        issued = 0
        while issued < ports and t >= 1:
            if wi < nc and comp_end[wi] < t:
                j = wr_ptr[wi] + wk
                if _after(wr_addr[j], wr_size[j], p, ring, cnt) <= t:
                    fin, data = _issue(wr_addr[j], wr_size[j], True, t, p, state, ring, cnt,
                                       totals)
                    last = max(last, data)
                    wi, wk = _wrote(fin, wi, wk, wr_ptr, wr_done)
                    while wi < nc and wr_ptr[wi] + wk == wr_ptr[wi + 1]:
                        wi += 1
                    issued += 1
                    continue
            if ri >= n:
                break
            if dep[ri] >= 0 and not fwd[ri] and (wr_done[dep[ri]] < 0 or
                                                 wr_done[dep[ri]] >= t):
                break
            r = rd_ptr[ri] + rk
            if _after(rd_addr[r], rd_size[r], p, ring, cnt) > t:
                break
            if r >= window and (consumed[r - window] < 0 or consumed[r - window] >= t):
                break
            fin, _ = _issue(rd_addr[r], rd_size[r], False, t, p, state, ring, cnt, totals)
            rd_done[r] = _respond(fin, t, taken, ports)
            rk += 1
            if rd_ptr[ri] + rk == rd_ptr[ri + 1]:
                ri += 1
                rk = 0
                while ri < n and rd_ptr[ri] + rk == rd_ptr[ri + 1]:
                    ri += 1
            issued += 1
        t += 1
    return last + 2, totals[2], totals[3], totals[0], totals[1]


# --- the hot-row cache (``lookup.hot_rows``) ---------------------------------------------------
#
# :func:`events` and :func:`per_cycle` above are the engine without a cache (the RTL is checked
# against them); :func:`events_hot` and :func:`per_cycle_hot` are the same pipeline with some reads
# served by an on-chip hot-row SRAM cache. With no read marked a hit they are the kernels above.


def lru_hits(rows: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """A fully associative LRU cache of ``capacity`` rows, cold, referenced by ``rows`` in order.

    Parameters
    ----------
    rows : numpy.ndarray
        Row indices (int), one reference each, in program order.
    capacity : int
        Rows the cache holds (0: no cache, every reference misses).

    Returns
    -------
    hit : numpy.ndarray of bool
        Whether each reference finds its row in the cache (a miss allocates it, evicting the
        least recently referenced row when the cache is full; a hit makes it the most recent).
    src : numpy.ndarray of int64
        For a hit, the index of the reference whose miss brought the row in (its fill); -1 for a
        miss.
    """
    rows = np.asarray(rows, np.int64)
    hit = np.zeros(len(rows), np.bool_)
    src = np.full(len(rows), -1, np.int64)
    if capacity > 0 and len(rows):
        _lru(rows, capacity, hit, src)
    return hit, src


@njit(cache=True)
def _lru(rows, capacity, hit, src):  # pragma: no cover - compiled
    # a doubly linked list of the cached rows in recency order (head: most recent) over slots,
    # and a dict row -> slot
    prev = np.full(capacity, -1, np.int64)
    nxt = np.full(capacity, -1, np.int64)
    tag = np.full(capacity, -1, np.int64)
    fill = np.full(capacity, -1, np.int64)
    where = dict()
    head, tail, used = -1, -1, 0
    for i in range(rows.shape[0]):
        r = rows[i]
        if r in where:
            s = where[r]
            hit[i] = True
            src[i] = fill[s]
            if s == head:
                continue
            # unlink, then push to the front
            nxt[prev[s]] = nxt[s]
            if nxt[s] >= 0:
                prev[nxt[s]] = prev[s]
            else:
                tail = prev[s]
        else:
            if used < capacity:
                s = used
                used += 1
            else:
                s = tail
                del where[tag[s]]
                tail = prev[s]
                if tail >= 0:
                    nxt[tail] = -1
                else:
                    head = -1
            tag[s], fill[s] = r, i
            where[r] = s
        prev[s], nxt[s] = -1, head
        if head >= 0:
            prev[head] = s
        head = s
        if tail < 0:
            tail = s
    return 0


@njit(cache=True)
def events_hot(rd_addr, rd_size, rd_ptr, wr_addr, wr_size, wr_ptr, compute, dep, fwd, ports,
               window, p, hit, src, hot_lat):  # pragma: no cover - compiled
    """:func:`events` with a hot-row cache in front of the tier.

    A read with ``hit[r]`` is served on chip: it takes an issue slot and a slot of the row
    window like any read, but no tier request (no channel, no outstanding limit); its data is
    ready ``hot_lat`` cycles after its issue, or when the response of read ``src[r]`` (the miss
    that fills its row, when ``src[r] >= 0``) is booked, whichever is later, and is answered
    through the response ports like any read. The cache is write-through: a read hit on a row an
    earlier access ``dep[i]`` writes (a SCATTER hazard not forwarded) waits only until that
    write has *issued* (the cache holds its value from then on), not until it completes.

    Returns ``(cycles, bytes_read, bytes_written, row_hits, row_misses, hot_hits)``.
    """
    n = compute.shape[0]
    state = _state(p)
    channels, outstanding = p[0], p[10]
    ring = np.full((channels, outstanding), -1, np.int64)
    cnt = np.zeros(channels, np.int64)
    nrd = max(rd_addr.shape[0], 1)
    consumed = np.zeros(nrd, np.int64)
    resp = np.full(nrd, -1, np.int64)  # the cycle each read is answered
    taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
    comp_end = np.full(n, -1, np.int64)
    wr_done = np.full(n, -1, np.int64)
    wr_iss = np.full(n, -1, np.int64)  # the issue cycle of an access's last write
    slot_t, slot_used = 0, ports
    i, k = 0, 0
    data_ready = 0
    wi, wk = 0, 0
    last = 0
    totals = np.zeros(4, np.int64)
    hot = 0
    acc_free = 0.0
    while i < n or wi < n:
        while wi < i and wr_ptr[wi] + wk >= wr_ptr[wi + 1]:
            wi += 1
            wk = 0
        if i == n and wi >= i:
            break
        free = slot_t if slot_used < ports else slot_t + 1
        tw = -1
        if wi < i:
            j = wr_ptr[wi] + wk
            tw = max(comp_end[wi] + 1, free, _after(wr_addr[j], wr_size[j], p, ring, cnt))
        tr = -1
        if i < n and rd_ptr[i] + k < rd_ptr[i + 1]:
            r = rd_ptr[i] + k
            hazard = dep[i] >= 0 and not fwd[i]
            gate = 0
            if hazard:
                gate = wr_iss[dep[i]] if hit[r] else wr_done[dep[i]]
            if not (hazard and gate < 0):
                tr = max(1, free)
                if hazard:
                    tr = max(tr, gate + 1)
                if not hit[r]:
                    tr = max(tr, _after(rd_addr[r], rd_size[r], p, ring, cnt))
                if r >= window:
                    tr = max(tr, consumed[r - window] + 1)
        if i < n and rd_ptr[i] + k == rd_ptr[i + 1]:
            start = max(float(data_ready + 1), acc_free)
            if dep[i] >= 0 and fwd[i]:
                start = max(start, float(comp_end[dep[i]] + 1))
            acc_free = start + compute[i]
            comp_end[i] = math.ceil(acc_free - 1e-9) - 1
            for r in range(rd_ptr[i], rd_ptr[i + 1]):
                consumed[r] = comp_end[i]
            last = max(last, comp_end[i])
            i += 1
            k = 0
            data_ready = 0
            continue
        if tw >= 0 and (tr < 0 or tw <= tr):
            j = wr_ptr[wi] + wk
            slot_t, slot_used = (tw, 1) if tw != slot_t else (slot_t, slot_used + 1)
            fin, data = _issue(wr_addr[j], wr_size[j], True, tw, p, state, ring, cnt, totals)
            last = max(last, data)
            if j + 1 == wr_ptr[wi + 1]:
                wr_iss[wi] = tw
            wi, wk = _wrote(fin, wi, wk, wr_ptr, wr_done)
            continue
        r = rd_ptr[i] + k
        slot_t, slot_used = (tr, 1) if tr != slot_t else (slot_t, slot_used + 1)
        if hit[r]:
            fin = tr + hot_lat
            if src[r] >= 0:
                fin = max(fin, resp[src[r]])
            hot += 1
        else:
            fin, _ = _issue(rd_addr[r], rd_size[r], False, tr, p, state, ring, cnt, totals)
        resp[r] = _respond(fin, tr, taken, ports)
        data_ready = max(data_ready, resp[r])
        k += 1
    return last + 2, totals[2], totals[3], totals[0], totals[1], hot


@njit(cache=True)
def per_cycle_hot(rd_addr, rd_size, rd_ptr, wr_addr, wr_size, wr_ptr, compute, dep, fwd, ports,
                  window, p, hit, src, hot_lat):  # pragma: no cover - compiled
    """:func:`per_cycle` with the hot-row cache of :func:`events_hot` (the same rules, stepped
    one clock at a time). Returns what :func:`events_hot` returns."""
    n = compute.shape[0]
    state = _state(p)
    channels, outstanding = p[0], p[10]
    ring = np.full((channels, outstanding), -1, np.int64)
    cnt = np.zeros(channels, np.int64)
    rd_done = np.full(max(rd_addr.shape[0], 1), -1, np.int64)
    consumed = np.full(max(rd_addr.shape[0], 1), -1, np.int64)
    taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
    comp_end = np.full(n, -1, np.int64)
    wr_done = np.full(n, -1, np.int64)
    wr_iss = np.full(n, -1, np.int64)
    ri, rk = 0, 0
    wi, wk = 0, 0
    nc = 0
    last = 0
    totals = np.zeros(4, np.int64)
    hot = 0
    acc_free = 0.0
    t = 0
    while True:
        while ri < n and rd_ptr[ri] + rk == rd_ptr[ri + 1]:
            ri += 1
            rk = 0
        while nc < n and nc < ri and acc_free < t + 1:
            ok = True
            for r in range(rd_ptr[nc], rd_ptr[nc + 1]):
                if rd_done[r] >= t:
                    ok = False
            if dep[nc] >= 0 and fwd[nc] and comp_end[dep[nc]] >= t:
                ok = False
            if not ok:
                break
            start = max(float(t), acc_free)
            acc_free = start + compute[nc]
            comp_end[nc] = math.ceil(acc_free - 1e-9) - 1
            last = max(last, comp_end[nc])
            for r in range(rd_ptr[nc], rd_ptr[nc + 1]):
                consumed[r] = comp_end[nc]
            nc += 1
            while ri < n and rd_ptr[ri] + rk == rd_ptr[ri + 1]:
                ri += 1
                rk = 0
        while wi < nc and wr_ptr[wi] + wk == wr_ptr[wi + 1]:
            wi += 1
            wk = 0
        if nc == n and wi == n:
            break
        issued = 0
        while issued < ports and t >= 1:
            if wi < nc and comp_end[wi] < t:
                j = wr_ptr[wi] + wk
                if _after(wr_addr[j], wr_size[j], p, ring, cnt) <= t:
                    fin, data = _issue(wr_addr[j], wr_size[j], True, t, p, state, ring, cnt,
                                       totals)
                    last = max(last, data)
                    if j + 1 == wr_ptr[wi + 1]:
                        wr_iss[wi] = t
                    wi, wk = _wrote(fin, wi, wk, wr_ptr, wr_done)
                    while wi < nc and wr_ptr[wi] + wk == wr_ptr[wi + 1]:
                        wi += 1
                    issued += 1
                    continue
            if ri >= n:
                break
            r = rd_ptr[ri] + rk
            if dep[ri] >= 0 and not fwd[ri]:
                gate = wr_iss[dep[ri]] if hit[r] else wr_done[dep[ri]]
                if gate < 0 or gate >= t:
                    break
            if not hit[r] and _after(rd_addr[r], rd_size[r], p, ring, cnt) > t:
                break
            if r >= window and (consumed[r - window] < 0 or consumed[r - window] >= t):
                break
            if hit[r]:
                fin = t + hot_lat
                if src[r] >= 0:
                    fin = max(fin, rd_done[src[r]])
                hot += 1
            else:
                fin, _ = _issue(rd_addr[r], rd_size[r], False, t, p, state, ring, cnt, totals)
            rd_done[r] = _respond(fin, t, taken, ports)
            rk += 1
            if rd_ptr[ri] + rk == rd_ptr[ri + 1]:
                ri += 1
                rk = 0
                while ri < n and rd_ptr[ri] + rk == rd_ptr[ri + 1]:
                    ri += 1
            issued += 1
        t += 1
    return last + 2, totals[2], totals[3], totals[0], totals[1], hot
