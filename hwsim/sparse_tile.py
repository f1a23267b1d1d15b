"""Per-cycle models of N:M sparse tiles (the index-driven activation select), OS and WS.

B is N:M sparse along the reduction and held compressed: WGT entry ``s`` is compressed row
``s`` (``N`` rows per group of ``M``), IDX entry ``s`` holds each column's in-group index of
that value (the format of ``algorithms.nm.compress``). A stays dense: ACT entry ``t`` is
column ``t`` of the A tile, as in a dense tile.

The hardware (``rtl.array.ArrayUnit`` with a banked ACT buffer, ``rtl.array.pe.PE``'s group
select) streams one compressed step per cycle. Step ``s`` belongs to group ``g = s // N``;
its ACT read returns the ``M`` entries ``a_addr + g*M .. a_addr + g*M + M - 1`` at once (the
ACT buffer is banked ``G`` ways, ``G`` the largest ``M`` of the config, and ``a_addr`` is a
multiple of ``M``), so row ``i`` of the array receives the whole group and passes it right,
skewed like a dense operand. The WGT value and the IDX entry of step ``s`` move down column
``j`` together; PE ``(i, j)`` multiplies the value by the group member its index selects,
``A[i, g*M + idx[s, j]]``. Every PE thus performs one useful MAC per cycle: a tile of ``K``
dense reduction steps takes ``K*N/M`` feed steps, and its cycles are the dense closed forms
with ``k`` the compressed step count (:func:`hwsim.systolic_array.os_feed_cycles`).

Weight-stationary: the ``k <= R`` compressed weight rows are preloaded with their indices
(PE ``(r, j)`` holds value and index of compressed row ``r``, group ``r // N``), and activation
rows stream. Activation row ``t`` of the tile spans ``E = M / N`` ACT entries,
``a_addr + t*E .. a_addr + t*E + E - 1`` (``E * R`` reduction operands, enough for the ``R / N``
groups of ``R`` compressed rows; ``a_addr`` a multiple of ``E``), read in one banked access;
array row ``r`` receives the M operands of its group, flat operands ``(r // N) * M ..
(r // N) * M + M - 1`` of the row, and PE ``(r, j)`` multiplies its weight by the one its
index selects. The schedule is that of a dense WS tile (:func:`hwsim.systolic_array.
ws_stream_cycles`).
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .systolic_array import (
    _mac,
    _operands,
    _result,
    _shift_deskew,
    _shift_skew,
    ws_stream_cycles,
)

__all__ = ["os_sparse_tile_per_cycle", "ws_sparse_tile_per_cycle"]


def os_sparse_tile_per_cycle(a_cols: np.ndarray, b_vals: np.ndarray, b_idx: np.ndarray,
                             n: int, m: int, rows: int, cols: int):
    """Output-stationary N:M sparse tile, register by register.

    Parameters
    ----------
    a_cols : int8 or fp16 [groups * m, rows]
        ACT entries of the tile's whole groups: entry ``t`` is column ``t`` of the dense A tile.
    b_vals : int8 or fp16 [k, cols], ``k = groups * n``
        WGT entries: the compressed values of B, ``n`` per group and column.
    b_idx : integer [k, cols]
        IDX entries: each value's index inside its group, in ``[0, m)``.
    n, m : int
        The pattern.

    Returns
    -------
    acc : int32 or float32 [rows, cols]
        ``sum_s A[:, (s // n) * m + idx[s]] * b_vals[s]`` as the hardware sums it (int32
        wrap-around; fp32 RNE in step order from +0).
    cycles : int
        Feed-phase cycles, counted from the run (equal to ``os_feed_cycles(k, rows, cols)``).

    Raises
    ------
    ValueError
        Shapes that do not fit the pattern, or an index outside ``[0, m)``.
    """
    a, fa = _operands(a_cols, "a_cols")
    b, fb = _operands(b_vals, "b_vals")
    if fa != fb:
        raise TypeError("a_cols and b_vals must both be int8 or both fp16")
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n <= m):
        raise ValueError(f"pattern {n}:{m} is not 1 <= N <= M")
    idx = np.asarray(b_idx).astype(np.int64)
    k = b.shape[0]
    if k % n:
        raise ValueError(f"{k} compressed steps are not a whole number of groups of {n}")
    if idx.shape != b.shape or b.shape[1] != cols:
        raise ValueError(f"b_vals and b_idx must both have shape ({k}, {cols})")
    if a.shape != (k // n * m, rows):
        raise ValueError(f"a_cols must hold the {k // n} groups' {k // n * m} entries of "
                         f"{rows} lanes, not shape {a.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"indices must lie in [0, {m})")
    acc, feed = _os_sparse_kernel(a, b, idx, n, m, rows, cols, fa)
    return _result(acc, fa), feed


@njit(cache=True)
def _os_sparse_kernel(a_cols, b_vals, b_idx, n, m, rows, cols, fp):
    k = b_vals.shape[0]
    # Operand registers hold what the RTL's hold, by reference: the a side carries a group
    # number (the M activations of that group; -1 = the zero group fed while idle), the b side
    # a step number (its value and index; -1 = zero).
    a_reg = np.full((rows, cols), -1, np.int64)
    b_reg = np.full((rows, cols), -1, np.int64)
    acc = np.zeros((rows, cols), np.int64)
    a_skew = np.full((rows, max(rows, 1)), -1, np.int64)
    b_skew = np.full((cols, max(cols, 1)), -1, np.int64)
    a_edge = np.zeros(rows, np.int64)
    b_edge = np.zeros(cols, np.int64)
    g_line = np.zeros(rows, np.int64)
    s_line = np.zeros(cols, np.int64)
    cycle = 0
    last_use = -1
    while True:
        t = cycle - 1  # the step whose data is on the read ports this cycle
        s_in = t if 0 <= t < k else -1
        g_in = t // n if s_in >= 0 else -1
        for i in range(rows):
            a_edge[i] = g_in if i == 0 else a_skew[i, i - 1]
        for j in range(cols):
            b_edge[j] = s_in if j == 0 else b_skew[j, j - 1]
        if (a_edge[rows - 1] if cols == 1 else a_reg[rows - 1, cols - 2]) >= 0:
            last_use = cycle
        for i in range(rows - 1, -1, -1):
            for j in range(cols - 1, -1, -1):
                g = a_edge[i] if j == 0 else a_reg[i, j - 1]
                s = b_edge[j] if i == 0 else b_reg[i - 1, j]
                av = 0
                bv = 0
                if s >= 0:
                    bv = b_vals[s, j]
                    if g >= 0:
                        av = a_cols[g * m + b_idx[s, j], i]
                acc[i, j] = _mac(acc[i, j], av, bv, fp)
                a_reg[i, j] = g
                b_reg[i, j] = s
        g_line[:] = g_in
        s_line[:] = s_in
        _shift_skew(a_skew, g_line)
        _shift_skew(b_skew, s_line)
        cycle += 1
        if k > 0 and cycle > k and not _in_flight(a_reg, a_skew, rows, cols):
            break
        if k == 0 and cycle >= rows + cols - 1:
            break
    feed = last_use + 1 if k > 0 else rows + cols - 1
    return acc, feed


@njit(cache=True)
def _in_flight(a_reg, a_skew, rows, cols):
    for i in range(rows):
        for j in range(cols - 1):
            if a_reg[i, j] >= 0:
                return True
        for q in range(i):
            if a_skew[i, q] >= 0:
                return True
    return False


def ws_sparse_tile_per_cycle(a_rows: np.ndarray, w_vals: np.ndarray, w_idx: np.ndarray,
                             n: int, m: int, rows: int, cols: int, acc=None):
    """Weight-stationary N:M sparse tile, register by register, from the unit's start cycle.

    Parameters
    ----------
    a_rows : int8 or fp16 [t, (m // n) * rows]
        Activation row ``t`` as its ``E = m // n`` ACT entries laid end to end (flat operand
        ``q * rows + i`` is lane ``i`` of entry ``q``).
    w_vals : int8 or fp16 [k, cols], ``k <= rows``, a multiple of ``n``
        WGT entries: compressed weight rows.
    w_idx : integer [k, cols]
        IDX entries: each weight's index inside its group, in ``[0, m)``.
    acc : int32 or float32 [t, cols], optional
        Accumulate mode: the old ACC entries entering the columns as partial sums.

    Returns
    -------
    out : int32 or float32 [t, cols]
        ``acc + sum_r a_rows[:, (r // n) * m + w_idx[r]] * w_vals[r]`` in the hardware's order
        (from ``acc``, then ``r = 0, 1, ...``).
    cycles : int
        Cycles after the start cycle up to the last ACC write (``ws_stream_cycles``).
    """
    a, fa = _operands(a_rows, "a_rows")
    w, fw = _operands(w_vals, "w_vals")
    if fa != fw:
        raise TypeError("a_rows and w_vals must both be int8 or both fp16")
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n <= m and m % n == 0):
        raise ValueError(f"pattern {n}:{m}: weight-stationary sparse tiles need N to divide M")
    k = w.shape[0]
    idx = np.asarray(w_idx).astype(np.int64)
    if k > rows or k % n or w.shape[1] != cols or idx.shape != w.shape:
        raise ValueError(f"w_vals and w_idx must have shape (k, {cols}) with k <= {rows} a "
                         f"multiple of {n}, not {w.shape} and {idx.shape}")
    if a.ndim != 2 or a.shape[1] != m // n * rows:
        raise ValueError(f"a_rows must have {m // n * rows} flat operands per row, not shape "
                         f"{a.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"indices must lie in [0, {m})")
    t = a.shape[0]
    if acc is None:
        c0 = np.zeros((t, cols), np.int64)
    else:
        c0 = np.asarray(acc)
        if c0.shape != (t, cols):
            raise ValueError(f"acc must have shape {(t, cols)}, not {c0.shape}")
        c0 = c0.view(np.uint32 if fa else np.int32).astype(np.int64)
    out, cycles = _ws_sparse_kernel(a, w, idx, c0, n, m, rows, cols, fa)
    assert t == 0 or cycles == ws_stream_cycles(k, t, rows, cols)
    return _result(out, fa), cycles


@njit(cache=True)
def _ws_sparse_kernel(a_rows, w_vals, w_idx, c0, n, m, rows, cols, fp):
    t_rows = a_rows.shape[0]
    k = w_vals.shape[0]
    # a side: the activation row number whose group the register holds (-1: zeros);
    # weight side: the compressed row number held stationary (-1: cleared)
    a_reg = np.full((rows, cols), -1, np.int64)
    w_reg = np.full((rows, cols), -1, np.int64)
    acc = np.zeros((rows, cols), np.int64)
    a_skew = np.full((rows, max(rows, 1)), -1, np.int64)
    o_skew = np.zeros((cols, max(cols, 1)), np.int64)
    p_skew = np.zeros((cols, max(cols, 1)), np.int64)
    p_in = np.zeros(cols, np.int64)
    p_edge = np.zeros(cols, np.int64)
    a_in = np.zeros(rows, np.int64)
    a_edge = np.zeros(rows, np.int64)
    row = np.zeros(cols, np.int64)
    out = np.zeros((t_rows, cols), np.int64)
    done = k + t_rows + rows + cols
    last_write = -1
    for cycle in range(1, done + 1):
        rd = cycle - 1
        load = 1 <= rd <= k
        w_in = k - rd  # the compressed row on the WGT/IDX read ports while loading
        step = rd - k - 1
        valid = rd > k and step < t_rows
        for i in range(rows):
            a_in[i] = step if valid and i < k else -1
        for i in range(rows):
            a_edge[i] = a_in[i] if i == 0 else a_skew[i, i - 1]
        for j in range(cols):
            p_in[j] = c0[step, j] if valid else 0
            p_edge[j] = p_in[j] if j == 0 else p_skew[j, j - 1]
        for j in range(cols):
            row[j] = acc[rows - 1, j] if j == cols - 1 else o_skew[j, cols - 2 - j]
        wr = cycle - (k + rows + cols + 1)
        if 0 <= wr < t_rows:
            for j in range(cols):
                out[wr, j] = row[j]
            last_write = cycle
        _shift_deskew(o_skew, acc[rows - 1])
        for i in range(rows - 1, -1, -1):
            # row i's group starts at flat operand (i // n) * m, computed once per row: a
            # runtime division per PE and cycle cost this kernel 10-20% of its speed
            base = i // n * m
            for j in range(cols - 1, -1, -1):
                ta = a_edge[i] if j == 0 else a_reg[i, j - 1]
                psum = p_edge[j] if i == 0 else acc[i - 1, j]
                r = w_reg[i, j]
                av = 0
                wv = 0
                if r >= 0:
                    wv = w_vals[r, j]
                    if ta >= 0:
                        av = a_rows[ta, base + w_idx[r, j]]
                acc[i, j] = _mac(psum, av, wv, fp)
                a_reg[i, j] = ta
                if load:
                    w_reg[i, j] = w_in if i == 0 else w_reg[i - 1, j]
        _shift_skew(a_skew, a_in)
        _shift_skew(p_skew, p_in)
    return out, (last_write if t_rows > 0 else done)
