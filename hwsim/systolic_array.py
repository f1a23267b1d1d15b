"""Per-cycle model of the PE array: register-level Numba kernels and their closed forms.

The kernels step the same registers as ``rtl.array.SystolicArray`` (PEs of
``rtl.array.pe.PE``) and the feeder of ``rtl.array.ArrayUnit``, one clock at a time, and return
both the results and a cycle count taken from the run (OS: until the last operand has left the
array; WS: the cycle of the last ACC write of the unit's schedule, whose values are only right
if the schedule matches the pipeline). :func:`os_feed_cycles` and :func:`ws_stream_cycles` are
the closed forms that timing mode uses; tests check that both agree.

Datatypes: int8 operands accumulate in int32 with wrap-around; fp16 operands (``float16``
values or ``uint16`` bit patterns) accumulate in fp32 through :func:`hwsim.numerics.fp16_mac`,
one rounded MAC per PE per cycle in the order the registers deliver the operands, and the
results come back as ``float32`` (bit patterns preserved: view them as ``uint32``).
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .numerics import fp16_mac

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


def ws_stream_cycles(k: int, m: int, rows: int, cols: int) -> int:
    """Cycles after the start cycle, up to and including the last ACC write, of a
    weight-stationary tile with ``k`` preloaded weight rows and ``m`` activation rows.

    Weight rows are read on cycles ``1..k`` and shift in on ``2..k+1``; activation row ``t`` is
    read on cycle ``k+1+t``, enters array row ``i`` on ``k+2+t+i``, leaves the bottom of column
    ``j`` on ``k+2+t+rows+j``, and after the output de-skew (``cols-1-j`` registers) is written
    to ACC on cycle ``k+t+rows+cols+1``. The unit is done with the last write.
    """
    return k + m + rows + cols


def _operands(x: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """int8 values, or fp16 as float16 values / uint16 bit patterns -> (int64 array, is_fp)."""
    x = np.asarray(x)
    if x.dtype == np.int8:
        return x.astype(np.int64), False
    if x.dtype == np.float16:
        return x.view(np.uint16).astype(np.int64), True
    if x.dtype == np.uint16:
        return x.astype(np.int64), True
    raise TypeError(f"{name} must be int8, float16 or uint16 (fp16 bits), not {x.dtype}")


def _result(acc: np.ndarray, fp: bool) -> np.ndarray:
    if fp:
        return (acc & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    return ((acc & 0xFFFFFFFF) - ((acc & 0x80000000) << 1)).astype(np.int32)


def _pair(a, b, na: str, nb: str):
    a, fa = _operands(a, na)
    b, fb = _operands(b, nb)
    if fa != fb:
        raise TypeError(f"{na} and {nb} must both be int8 or both fp16")
    return a, b, fa


def os_tile_per_cycle(a_cols: np.ndarray, b_rows: np.ndarray, rows: int, cols: int):
    """Output-stationary tile, register by register.

    Every operand register carries a valid tag next to its value, like the RTL's ``valid`` bit
    at the edge; the feed phase ends on the cycle after the last tagged operand has been used
    by PE ``(rows-1, cols-1)``. With ``k == 0`` the hardware still runs the empty pipeline for
    ``rows + cols - 1`` cycles.

    Parameters
    ----------
    a_cols : int8 or fp16 [k, rows]
        ACT entries: entry ``t`` is column ``t`` of the A tile.
    b_rows : int8 or fp16 [k, cols]
        WGT entries: entry ``t`` is row ``t`` of the B tile.

    Returns
    -------
    acc : int32 or float32 [rows, cols]
        The tile's products summed as the hardware does (int32 wrap-around; fp32 RNE in order
        ``t = 0, 1, ...`` starting from +0).
    cycles : int
        Feed-phase cycles.
    """
    a, b, fp = _pair(a_cols, b_rows, "a_cols", "b_rows")
    acc, feed = _os_kernel(a, b, rows, cols, fp)
    return _result(acc, fp), feed


def ws_tile_per_cycle(a_rows: np.ndarray, w: np.ndarray, rows: int, cols: int, acc=None):
    """Weight-stationary tile, register by register, from the unit's start cycle.

    Parameters
    ----------
    a_rows : int8 or fp16 [m, rows]
        ACT entries: entry ``t`` is row ``t`` of A (one operand per array row; lanes
        ``i >= k`` are fed +0).
    w : int8 or fp16 [k, cols], ``k <= rows``
        WGT entries ``b_addr .. b_addr + k - 1``, preloaded so that PE ``(r, j)`` holds
        ``w[r, j]`` (rows ``k..rows-1`` hold zero).
    acc : int32 or float32 [m, cols], optional
        Accumulate mode: the old ACC entries, which enter the top of the columns as the
        initial partial sums (default +0).

    Returns
    -------
    out : int32 or float32 [m, cols]
        ``acc + a_rows[:, :k] @ w`` as the hardware sums it (from ``acc``, then ``r = 0, 1..``).
    cycles : int
        Cycles after the start cycle up to the last ACC write (:func:`ws_stream_cycles`).
    """
    a, wk, fp = _pair(a_rows, w, "a_rows", "w")
    if wk.shape[0] > rows:
        raise ValueError(f"{wk.shape[0]} weight rows exceed {rows} array rows")
    m = a.shape[0]
    if acc is None:
        c0 = np.zeros((m, cols), np.int64)
    else:
        c0 = np.asarray(acc)
        if c0.shape != (m, cols):
            raise ValueError(f"acc must have shape {(m, cols)}, not {c0.shape}")
        c0 = c0.view(np.uint32 if fp else np.int32).astype(np.int64)
    out, cycles = _ws_kernel(a, wk, c0, rows, cols, fp)
    return _result(out, fp), cycles


@njit(cache=True, inline="always")
def _mac(acc, a, b, fp):
    # fp16_mac is inlined here, and Numba's cache of this file's kernels does not see edits to
    # numerics.py: after changing the MAC, clear the cache (or NUMBA_CACHE_DIR) to rebuild them.
    if fp:
        return np.int64(fp16_mac(np.uint32(acc), np.uint16(a), np.uint16(b)))
    return acc + a * b


@njit(cache=True, inline="always")
def _shift_skew(skew, newest):
    """Advance the skew lines: line ``i`` is ``i`` registers, index 0 newest."""
    for i in range(1, skew.shape[0]):
        for s in range(i - 1, 0, -1):
            skew[i, s] = skew[i, s - 1]
        skew[i, 0] = newest[i]


@njit(cache=True, inline="always")
def _shift_deskew(o_skew, bottom):
    """Advance the output de-skew: column ``j`` waits ``cols - 1 - j`` registers."""
    cols = bottom.shape[0]
    for j in range(cols - 1):
        for s in range(cols - 2 - j, 0, -1):
            o_skew[j, s] = o_skew[j, s - 1]
        o_skew[j, 0] = bottom[j]


@njit(cache=True)
def _os_kernel(a_cols, b_rows, rows, cols, fp):
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
                acc[i, j] = _mac(acc[i, j], a, b, fp)
                a_reg[i, j] = a
                a_tag[i, j] = tag
                b_reg[i, j] = b
        for i in range(1, rows):
            for s in range(i - 1, 0, -1):
                a_skew_tag[i, s] = a_skew_tag[i, s - 1]
            a_skew_tag[i, 0] = valid
        _shift_skew(a_skew, a_in)
        _shift_skew(b_skew, b_in)
        cycle += 1
        # done once every tagged operand has been consumed by the last PE
        if k > 0 and cycle > k and not _any_tag_in_flight(a_tag, a_skew_tag, rows, cols):
            break
        if k == 0 and cycle >= rows + cols - 1:
            break
    feed = last_use + 1 if k > 0 else rows + cols - 1
    return acc, feed


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
def _ws_kernel(a_rows, w_rows, c0, rows, cols, fp):
    m = a_rows.shape[0]
    k = w_rows.shape[0]
    a_reg = np.zeros((rows, cols), np.int64)
    w_reg = np.zeros((rows, cols), np.int64)  # cleared on the start cycle
    acc = np.zeros((rows, cols), np.int64)
    a_skew = np.zeros((rows, max(rows, 1)), np.int64)
    o_skew = np.zeros((cols, max(cols, 1)), np.int64)  # output de-skew, index 0 newest
    p_skew = np.zeros((cols, max(cols, 1)), np.int64)  # top partial-sum skew
    p_in = np.zeros(cols, np.int64)
    p_edge = np.zeros(cols, np.int64)
    a_in = np.zeros(rows, np.int64)
    a_edge = np.zeros(rows, np.int64)
    w_in = np.zeros(cols, np.int64)
    row = np.zeros(cols, np.int64)
    out = np.zeros((m, cols), np.int64)
    done = k + m + rows + cols  # the unit's FSM ends on this cycle (start = cycle 0)
    last_write = -1
    for cycle in range(1, done + 1):
        # read ports: data of the read issued on the previous cycle
        rd = cycle - 1
        load = 1 <= rd <= k
        if load:
            for j in range(cols):
                w_in[j] = w_rows[k - rd, j]
        step = rd - k - 1
        valid = rd > k and step < m
        for i in range(rows):
            a_in[i] = a_rows[step, i] if valid and i < k else 0
        for i in range(rows):
            a_edge[i] = a_in[i] if i == 0 else a_skew[i, i - 1]
        for j in range(cols):
            p_in[j] = c0[step, j] if valid else 0
            p_edge[j] = p_in[j] if j == 0 else p_skew[j, j - 1]
        # de-skewed bottom row, as the ACC write sees it this cycle
        for j in range(cols):
            row[j] = acc[rows - 1, j] if j == cols - 1 else o_skew[j, cols - 2 - j]
        wr = cycle - (k + rows + cols + 1)
        if 0 <= wr < m:
            for j in range(cols):
                out[wr, j] = row[j]
            last_write = cycle
        # de-skew registers shift
        _shift_deskew(o_skew, acc[rows - 1])
        # PEs from old registers, bottom-right first
        for i in range(rows - 1, -1, -1):
            for j in range(cols - 1, -1, -1):
                a = a_edge[i] if j == 0 else a_reg[i, j - 1]
                psum = p_edge[j] if i == 0 else acc[i - 1, j]
                acc[i, j] = _mac(psum, a, w_reg[i, j], fp)
                a_reg[i, j] = a
                if load:
                    w_reg[i, j] = w_in[j] if i == 0 else w_reg[i - 1, j]
        _shift_skew(a_skew, a_in)
        _shift_skew(p_skew, p_in)
    return out, (last_write if m > 0 else done)
