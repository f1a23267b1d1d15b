"""Timing of SCATTER modes 1 and 2 (the lazy optimizer step of a table's listed rows), as
``rtl.lookup.update.RowUpdateEngine`` runs mode 1.

A row update is a sequence of *accesses*, one per listed row in program order. An access reads
the row's gradient ``G`` and, in the same burst of requests, its master ``W`` and optimizer
state (``V``; Adam ``M`` and ``V``): ``R`` reads, ``G`` first. The lanes then look at ``G``: a
*dirty* row (not all zero) is updated, ``compute`` cycles, and written back (``W``, the state,
the fp16 row, the zeroed ``G``: ``Wn`` writes); a *clean* row costs the lanes one cycle (at
most ``compute``) and writes nothing. The engine holds accesses in ``window`` slots (access
``a`` in slot ``a mod window``) from admission until it *retires*: a clean access on its lane
cycle, a dirty one on the cycle its last write is acknowledged. From the command's start cycle
0:

- **admission**, in program order, from cycle 1: access ``a`` waits for its slot (access
  ``a - window`` retired on an earlier cycle). If an access held in a slot (admitted on an
  earlier cycle, not yet retired) has the same row, the access is **skipped**: no reads, the
  row is clean (whatever the held access does, it leaves ``G`` zero: a dirty one zeroes it
  before it retires, a clean one found it zero), so a repeat never reads a row a write in
  flight could still change. Otherwise the access issues its first read (``G``) and its other
  ``R - 1`` reads follow, in order, before the next admission. At most ``ports`` admissions or
  reads a cycle;
- **requests**: at most ``ports`` a cycle, writes first; a read is served by the tier's banked
  model and answered through ``ports`` response ports, a write acknowledged through ``ports``
  write-response ports (:mod:`hwsim.units.scatter_timing`'s rules, the same bench);
- **lanes**, in order: an access starts on the cycle after its admission (a skip) or after
  its last answer, and after the previous access, for ``compute`` cycles (dirty) or
  ``min(1, compute)`` (clean, skipped);
- **writes**, in order, from the cycle after the access's lane cycles: a dirty access issues
  its ``Wn`` writes when the tier takes them (``_after``); a clean one is passed over. At most
  ``ports`` writes or passes a cycle.

The command is done on the cycle after the last access retires, ``unit_cycles = last + 2``.
One kernel, stepped per cycle, serves both of hwsim's modes.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit
from .lookup_timing import _RESPONSE_SPAN, _after, _issue, _respond, _state

__all__ = ["first_access", "update_cycles", "update_run"]


def first_access(rows: np.ndarray) -> np.ndarray:
    """Which accesses are the first to their row in the command (timing mode's dirty rows:
    every later one finds the gradient row zeroed)."""
    rows = np.asarray(rows, np.int64).reshape(-1)
    first = np.zeros(len(rows), np.bool_)
    first[np.unique(rows, return_index=True)[1]] = True
    return first


def update_run(config, rows: np.ndarray, dirty: np.ndarray, h: int, tier: int,
               bases: tuple[int, ...]) -> tuple:
    """:func:`update_cycles` of the row update of ``rows`` (program order) whose accesses find
    their rows ``dirty`` (as the functional model decides them; :func:`first_access` in timing
    mode), rows of ``h`` elements, tables at ``bases`` (the fp16 table, the fp32 master, the
    gradient, then the state: one table for SGD with momentum, two for Adam) in
    ``config.lookup.tiers[tier]``."""
    from .lookup import row_compute_cycles
    from .lookup_timing import TierParams

    lk = config.lookup
    rows = np.asarray(rows, np.int64).reshape(-1)
    w16, w, g, *state = bases
    rb = 4 * h
    reads = np.stack([g + rows * rb, w + rows * rb, *(b + rows * rb for b in state)], 1)
    writes = np.stack([w + rows * rb, *(b + rows * rb for b in state), w16 + rows * 2 * h,
                       g + rows * rb], 1)
    wr_size = np.array([rb] * (1 + len(state)) + [2 * h, rb], np.int64)
    window = max(4, lk.rows_in_flight(reads.shape[1] * rb))
    p = TierParams(lk.tiers[tier], config.clock_mhz).args()
    return update_cycles(rows, reads.astype(np.int64), rb, writes.astype(np.int64), wr_size,
                         np.asarray(dirty, np.bool_).reshape(-1),
                         row_compute_cycles(h, lk.gather_lanes), lk.request_ports, window, p)


@njit(cache=True)
def update_cycles(rows, rd_addr, rd_size, wr_addr, wr_size, dirty, compute, ports, window,
                  p):  # pragma: no cover - compiled
    """The pipeline of the module docstring, a cycle at a time.

    Parameters
    ----------
    rows : int64 array
        Each access's row (the slots' match).
    rd_addr : int64 array (accesses, R)
        Each access's reads, ``G`` first, of ``rd_size`` bytes.
    wr_addr : int64 array (accesses, Wn)
        Each access's writes, of ``wr_size[k]`` bytes.
    dirty : bool array
        Whether an access that reads its row finds ``G`` not all zero.
    compute : float
        A dirty row's lane cycles.
    ports, window : int
    p : tuple
        :meth:`hwsim.units.lookup_timing.TierParams.args`.

    Returns
    -------
    (cycles, bytes_read, bytes_written, row_hits, row_misses, skipped, updated)
    """
    n = rows.shape[0]
    if n == 0:
        return 2, 0, 0, 0, 0, 0, 0
    R, Wn = rd_addr.shape[1], wr_addr.shape[1]
    state = _state(p)
    channels, outstanding = p[0], p[10]
    ring = np.full((channels, outstanding), -1, np.int64)
    cnt = np.zeros(channels, np.int64)
    rd_taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
    wr_taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
    admit = np.full(n, -1, np.int64)
    skip = np.zeros(n, np.bool_)
    answer = np.full(n, -1, np.int64)  # the last answer of the access's reads
    comp_end = np.full(n, -1, np.int64)
    retire = np.full(n, -1, np.int64)
    acked = np.full(n, -1, np.int64)  # the latest acknowledgement of the access's writes so far
    totals = np.zeros(4, np.int64)
    clean_cycles = min(1.0, compute)
    na, rk, nc, nw, wk = 0, 0, 0, 0, 0  # admission, its next read, lanes, writes, next write
    retired = 0
    acc_free = 0.0
    last = 0
    skipped, updated = 0, 0
    t = 0
    while retired < n:
        # the lanes take every access they can start within this cycle
        while nc < na and acc_free < t + 1:
            if admit[nc] >= t or (not skip[nc] and (answer[nc] < 0 or answer[nc] >= t)):
                break
            if not skip[nc] and nc == na - 1 and rk > 0:
                break  # its reads are not all out
            upd = dirty[nc] and not skip[nc]
            start = max(float(t), acc_free)
            acc_free = start + (compute if upd else clean_cycles)
            comp_end[nc] = math.ceil(acc_free - 1e-9) - 1
            if not upd:
                retire[nc] = comp_end[nc]
                retired += 1
                last = max(last, comp_end[nc])
            nc += 1
        if t >= 1:
            used = 0
            acts = 0
            while acts < ports and nw < nc and comp_end[nw] < t:
                if skip[nw] or not dirty[nw]:
                    nw += 1
                    acts += 1
                    continue
                if used >= ports or _after(wr_addr[nw, wk], wr_size[wk], p, ring, cnt) > t:
                    break
                fin, _ = _issue(wr_addr[nw, wk], wr_size[wk], True, t, p, state, ring, cnt,
                                totals)
                acked[nw] = max(acked[nw], _respond(fin, t, wr_taken, ports))
                used += 1
                acts += 1
                wk += 1
                if wk == Wn:
                    retire[nw] = acked[nw]
                    last = max(last, retire[nw])
                    retired += 1
                    updated += 1
                    nw += 1
                    wk = 0
            acts = 0
            while acts < ports and (rk > 0 or na < n):
                if rk > 0:  # the rest of the last admitted access's reads
                    a = na - 1
                    if used >= ports or _after(rd_addr[a, rk], rd_size, p, ring, cnt) > t:
                        break
                    fin, _ = _issue(rd_addr[a, rk], rd_size, False, t, p, state, ring, cnt,
                                    totals)
                    answer[a] = max(answer[a], _respond(fin, t, rd_taken, ports))
                    used += 1
                    acts += 1
                    rk = rk + 1 if rk + 1 < R else 0
                    continue
                a = na
                if a >= window and (retire[a - window] < 0 or retire[a - window] >= t):
                    break  # the slot is still held
                match = False
                for b in range(max(0, a - window + 1), a):
                    if rows[b] == rows[a] and (retire[b] < 0 or retire[b] >= t):
                        match = True
                if match:
                    skip[a] = True
                    skipped += 1
                else:
                    if used >= ports or _after(rd_addr[a, 0], rd_size, p, ring, cnt) > t:
                        break
                    fin, _ = _issue(rd_addr[a, 0], rd_size, False, t, p, state, ring, cnt,
                                    totals)
                    answer[a] = _respond(fin, t, rd_taken, ports)
                    used += 1
                    rk = 1 if R > 1 else 0
                admit[a] = t
                na += 1
                acts += 1
        t += 1
    return last + 2, totals[2], totals[3], totals[0], totals[1], skipped, updated
