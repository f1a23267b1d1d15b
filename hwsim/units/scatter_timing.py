"""Timing of SCATTER mode 0 (the read-modify-write of ``p * dY`` into fp32 gradient rows), as
``rtl.lookup.scatter.ScatterEngine`` runs it.

A SCATTER is a sequence of *accesses* (one per token and chunk, in program order), each the
read of one row, ``compute`` cycles on the accumulate lanes and the write of the row back. The
engine holds accesses in ``window`` *slots* (access ``a`` in slot ``a mod window``), each with
the row read back (the row buffer) and the row computed (the result buffer), from the access's
admission until its write is acknowledged. From the command's start cycle 0:

- **admission**, in program order, at most ``ports`` accesses a cycle, from cycle 1 (then
  shifted, with all that follows, by :func:`hwsim.units.lookup.dy_preload`: token 0's dY
  loads first; :func:`scatter_run` adds it): access
  ``a`` waits for its slot (the acknowledgement of access ``a - window``'s write, on an earlier
  cycle). Then, with ``dep`` the previous access to the same row:

  - ``dep``'s write not yet issued (on an earlier cycle): **forwarded**. No read: the access
    computes from ``dep``'s result (still in ``dep``'s slot, which no later access can take
    before this one has computed);
  - ``dep``'s write issued but not yet acknowledged: the access waits (a **read-after-write
    hazard**: the tier could still return the row's old value);
  - otherwise (no ``dep``, or its write acknowledged): a **read**, when a request port is free
    this cycle and the tier takes it (``_after``: its channel's outstanding-request limit);
- **requests**: at most ``ports`` a cycle, writes first. A read is served by the tier's banked
  model (:func:`hwsim.units.lookup_timing._issue`) and answered through ``ports`` response ports
  (a row each a cycle); a write is acknowledged through ``ports`` write-response ports, on the
  first cycle from its completion (latency included) with a free port;
- **compute**, in order: access ``a`` starts on the cycle after its answer (forwarded: after
  ``dep``'s computation, which in-order computing gives) and the end of the previous access,
  for ``compute[a]`` cycles;
- **writes**, in order, from the cycle after the access's computation ends, when the tier takes
  them (``_after``).

The command is done on the cycle after its last computation and its last acknowledgement,
``unit_cycles = last + 2``. One kernel, stepped per cycle, serves both of hwsim's modes (the RTL
is checked against it).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit
from .lookup_timing import _RESPONSE_SPAN, _after, _issue, _respond, _state

__all__ = ["previous_access", "scatter_cycles", "scatter_run"]


def previous_access(rows: np.ndarray) -> np.ndarray:
    """For each access, the previous access to the same row (``-1`` for the first)."""
    rows = np.asarray(rows, np.int64)
    dep = np.full(len(rows), -1, np.int64)
    order = np.argsort(rows, kind="stable")
    same = rows[order][1:] == rows[order][:-1]
    dep[order[1:][same]] = order[:-1][same]
    return dep


def scatter_run(config, rows: np.ndarray, h: int, tier: int, base: int = 0) -> tuple:
    """:func:`scatter_cycles` of a SCATTER of fp32 rows of ``h`` elements at ``rows`` (program
    order) of the table at byte address ``base`` on ``config.lookup.tiers[tier]``: the window,
    compute cycles and tier parameters as the lookup unit takes them."""
    from .lookup import dy_preload, row_compute_cycles
    from .lookup_timing import TierParams

    lk = config.lookup
    rows = np.asarray(rows, np.int64).reshape(-1)
    rb = 4 * h
    compute = np.full(len(rows), row_compute_cycles(h, lk.gather_lanes), np.float64)
    p = TierParams(lk.tiers[tier], config.clock_mhz).args()
    cycles, *rest = scatter_cycles(base + rows * rb, rb, previous_access(rows), compute,
                                   lk.request_ports, max(lk.rows_in_flight(rb), 4), p)
    if len(rows):  # admission waits for token 0's dY (an idle start: the rest shifts with it)
        cycles += dy_preload(len(rows), h, config.vector.lanes, 2)
    return (cycles, *rest)


@njit(cache=True)
def scatter_cycles(addr, row_bytes, dep, compute, ports, window, p):  # pragma: no cover
    """The pipeline of the module docstring, a cycle at a time.

    Parameters
    ----------
    addr : int64 array
        Each access's row address.
    row_bytes : int
    dep : int64 array
        :func:`previous_access`.
    compute : float64 array
        Each access's lane cycles.
    ports, window : int
    p : tuple
        :meth:`hwsim.units.lookup_timing.TierParams.args`.

    Returns
    -------
    (cycles, bytes_read, bytes_written, row_hits, row_misses, forwarded, waited)
        ``forwarded``: accesses computed from a held slot's result; ``waited``: accesses whose
        admission waited for a write's acknowledgement (the read-after-write hazard).
    """
    n = addr.shape[0]
    state = _state(p)
    channels, outstanding = p[0], p[10]
    ring = np.full((channels, outstanding), -1, np.int64)
    cnt = np.zeros(channels, np.int64)
    rd_taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
    wr_taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
    admit = np.full(n, -1, np.int64)
    fwd = np.zeros(n, np.bool_)
    answer = np.full(n, -1, np.int64)
    comp_end = np.full(n, -1, np.int64)
    wr_iss = np.full(n, -1, np.int64)
    ack = np.full(n, -1, np.int64)
    totals = np.zeros(4, np.int64)
    na, nc, nw = 0, 0, 0  # next access to admit, to compute, to write
    acc_free = 0.0
    last = 0
    forwarded, waited, last_wait = 0, 0, -1
    t = 0
    while nw < n:
        # the lanes take every access they can start within this cycle
        while nc < na and acc_free < t + 1:
            if admit[nc] >= t:
                break
            if fwd[nc]:
                if comp_end[dep[nc]] >= t:
                    break
            elif answer[nc] >= t:
                break
            start = max(float(t), acc_free)
            acc_free = start + compute[nc]
            comp_end[nc] = math.ceil(acc_free - 1e-9) - 1
            last = max(last, comp_end[nc])
            nc += 1
        if t >= 1:
            used = 0
            while used < ports and nw < nc and comp_end[nw] < t:
                if _after(addr[nw], row_bytes, p, ring, cnt) > t:
                    break
                fin, _ = _issue(addr[nw], row_bytes, True, t, p, state, ring, cnt, totals)
                ack[nw] = _respond(fin, t, wr_taken, ports)
                wr_iss[nw] = t
                last = max(last, ack[nw])
                nw += 1
                used += 1
            admitted = 0
            while admitted < ports and na < n:
                a = na
                if a >= window and (ack[a - window] < 0 or ack[a - window] >= t):
                    break  # the slot is still held
                d = dep[a]
                if d >= 0 and (wr_iss[d] < 0 or wr_iss[d] >= t):
                    fwd[a] = True
                    forwarded += 1
                elif d >= 0 and ack[d] >= t:
                    if last_wait != a:  # written, not acknowledged
                        waited += 1
                        last_wait = a
                    break
                else:
                    if used >= ports or _after(addr[a], row_bytes, p, ring, cnt) > t:
                        break
                    fin, _ = _issue(addr[a], row_bytes, False, t, p, state, ring, cnt, totals)
                    answer[a] = _respond(fin, t, rd_taken, ports)
                    used += 1
                admit[a] = t
                na += 1
                admitted += 1
        t += 1
    if n == 0:
        return 2, 0, 0, 0, 0, 0, 0
    return last + 2, totals[2], totals[3], totals[0], totals[1], forwarded, waited
