"""Per-cycle model of the PE array: register-level Numba kernels and their closed forms.

The kernels step the same registers as ``rtl.systolic_array.SystolicArray`` and the feeder of
``rtl.array_unit.ArrayUnit``, one clock at a time, and return both the accumulator values and
the number of cycles the feed phase took (counted by running until the last operand has left
the array, not by formula). :func:`os_feed_cycles` and :func:`ws_stream_cycles` are the closed
forms that timing mode uses; tests check that both agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "os_feed_cycles",
    "os_tile_per_cycle",
    "ws_stream_cycles",
    "ws_tile_per_cycle",
]


def os_feed_cycles(k: int, rows: int, cols: int) -> int:
    """Feed-phase cycles of an output-stationary tile with ``k`` reduction steps.

    Step ``t`` is read on cycle ``t`` and reaches PE ``(i, j)`` on cycle ``t + 1 + i + j``; the
    last PE's last product lands on cycle ``k + rows + cols - 2``.
    """
    return k + rows + cols - 1


def ws_stream_cycles(m: int, rows: int, cols: int) -> int:
    """Stream-phase cycles of a weight-stationary tile of ``m`` activation rows (same skew as
    OS: row ``t`` of A enters on cycle ``t + 1``, its sum leaves column ``j`` after crossing
    all ``rows`` PEs)."""
    return m + rows + cols - 1


@njit(cache=True)
def os_tile_per_cycle(a_cols: np.ndarray, b_rows: np.ndarray, rows: int, cols: int):
    """Output-stationary int8 tile, register by register.

    Every operand register carries a valid tag next to its value, like the RTL's ``valid`` bit
    at the edge; the feed phase ends on the cycle after the last tagged operand has been used
    by PE ``(rows-1, cols-1)``. With ``k == 0`` the hardware still runs the empty pipeline for
    ``rows + cols - 1`` cycles.

    Parameters
    ----------
    a_cols : int8[k, rows]
        ACT entries: entry ``t`` is column ``t`` of the A tile.
    b_rows : int8[k, cols]
        WGT entries: entry ``t`` is row ``t`` of the B tile.

    Returns
    -------
    acc : int32[rows, cols]
        The tile's products summed in int32 with wrap-around, as the hardware does.
    cycles : int
        Feed-phase cycles.
    """
    k = a_cols.shape[0]
    a_reg = np.zeros((rows, cols), np.int64)
    b_reg = np.zeros((rows, cols), np.int64)
    a_tag = np.zeros((rows, cols), np.bool_)
    acc = np.zeros((rows, cols), np.int64)
    # skew line of row i: i registers, index 0 newest; same for column j
    a_skew = np.zeros((rows, max(rows, 1)), np.int64)
    a_skew_tag = np.zeros((rows, max(rows, 1)), np.bool_)
    b_skew = np.zeros((cols, max(cols, 1)), np.int64)
    a_in = np.zeros(rows, np.int64)
    b_in = np.zeros(cols, np.int64)
    a_edge = np.zeros(rows, np.int64)
    a_edge_tag = np.zeros(rows, np.bool_)
    b_edge = np.zeros(cols, np.int64)
    cycle = 0
    last_use = -1
    while True:
        t = cycle - 1  # the entry whose data is on the read ports this cycle
        valid = 0 <= t < k
        for i in range(rows):
            a_in[i] = a_cols[t, i] if valid else 0
        for j in range(cols):
            b_in[j] = b_rows[t, j] if valid else 0
        for i in range(rows):
            a_edge[i] = a_in[i] if i == 0 else a_skew[i, i - 1]
            a_edge_tag[i] = valid if i == 0 else a_skew_tag[i, i - 1]
        for j in range(cols):
            b_edge[j] = b_in[j] if j == 0 else b_skew[j, j - 1]
        if (a_edge_tag[rows - 1] if cols == 1 else a_tag[rows - 1, cols - 2]):
            last_use = cycle
        # PEs: compute from old registers (visit in reverse so neighbours are still old)
        for i in range(rows - 1, -1, -1):
            for j in range(cols - 1, -1, -1):
                a = a_edge[i] if j == 0 else a_reg[i, j - 1]
                tag = a_edge_tag[i] if j == 0 else a_tag[i, j - 1]
                b = b_edge[j] if i == 0 else b_reg[i - 1, j]
                acc[i, j] += a * b
                a_reg[i, j] = a
                a_tag[i, j] = tag
                b_reg[i, j] = b
        for i in range(1, rows):
            for s in range(i - 1, 0, -1):
                a_skew[i, s] = a_skew[i, s - 1]
                a_skew_tag[i, s] = a_skew_tag[i, s - 1]
            a_skew[i, 0] = a_in[i]
            a_skew_tag[i, 0] = valid
        for j in range(1, cols):
            for s in range(j - 1, 0, -1):
                b_skew[j, s] = b_skew[j, s - 1]
            b_skew[j, 0] = b_in[j]
        cycle += 1
        # done once every tagged operand has been consumed by the last PE
        if k > 0 and cycle > k and not _any_tag_in_flight(a_tag, a_skew_tag, rows, cols):
            break
        if k == 0 and cycle >= rows + cols - 1:
            break
    feed = last_use + 1 if k > 0 else rows + cols - 1
    out = np.empty((rows, cols), np.int32)
    for i in range(rows):
        for j in range(cols):
            v = acc[i, j] & 0xFFFFFFFF
            out[i, j] = v - (1 << 32) if v >= (1 << 31) else v
    return out, feed


@njit(cache=True)
def _any_tag_in_flight(a_tag, a_skew_tag, rows, cols):
    for i in range(rows):
        for j in range(cols - 1):
            if a_tag[i, j]:
                return True
        for s in range(i):
            if a_skew_tag[i, s]:
                return True
    return False


@njit(cache=True)
def ws_tile_per_cycle(a_rows: np.ndarray, w: np.ndarray, rows: int, cols: int):
    """Weight-stationary int8 tile, register by register.

    Parameters
    ----------
    a_rows : int8[m, rows]
        ACT entries: entry ``t`` is row ``t`` of A (one operand per array row).
    w : int8[rows, cols]
        The preloaded weights, PE ``(r, j)`` holding ``w[r, j]``.

    Returns
    -------
    out : int32[m, cols]
        ``a_rows @ w`` with int32 wrap-around.
    cycles : int
        Stream-phase cycles until the last partial sum has left the bottom row.
    """
    m = a_rows.shape[0]
    a_reg = np.zeros((rows, cols), np.int64)
    p_reg = np.zeros((rows, cols), np.int64)
    out = np.zeros((m, cols), np.int64)
    a_skew = np.zeros((rows, rows), np.int64)
    a_edge_in = np.zeros(rows, np.int64)
    a_edge = np.zeros(rows, np.int64)
    cycle = 0
    last = -1
    horizon = m + rows + cols + 2
    while cycle < horizon:
        t = cycle - 1
        for i in range(rows):
            a_edge_in[i] = a_rows[t, i] if 0 <= t < m else 0
        for i in range(rows):
            a_edge[i] = a_edge_in[i] if i == 0 else a_skew[i, i - 1]
        for i in range(rows - 1, -1, -1):
            for j in range(cols - 1, -1, -1):
                a = a_edge[i] if j == 0 else a_reg[i, j - 1]
                p_in = 0 if i == 0 else p_reg[i - 1, j]
                a_reg[i, j] = a
                p_reg[i, j] = p_in + a * w[i, j]
        # the sum of activation row s leaves column j of the bottom row on cycle
        # s + 1 + (rows - 1) + j; capture it
        for j in range(cols):
            s = cycle - 1 - (rows - 1) - j
            if 0 <= s < m:
                out[s, j] = p_reg[rows - 1, j]
                last = cycle
        for i in range(rows):
            for s2 in range(i - 1, 0, -1):
                a_skew[i, s2] = a_skew[i, s2 - 1]
            if i > 0:
                a_skew[i, 0] = a_edge_in[i]
        cycle += 1
    res = np.empty((m, cols), np.int32)
    for s in range(m):
        for j in range(cols):
            v = out[s, j] & 0xFFFFFFFF
            res[s, j] = v - (1 << 32) if v >= (1 << 31) else v
    return res, (last + 1 if m > 0 else rows + cols - 1)
