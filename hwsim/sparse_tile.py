"""Per-cycle model of an N:M sparse output-stationary tile (the index-driven activation select).

B is N:M sparse along the reduction and held compressed: WGT entry ``s`` is compressed row
``s`` (``N`` rows per group of ``M``), IDX entry ``s`` holds each column's in-group index of
that value (the format of ``algorithms.nm.compress``). A stays dense: ACT entry ``t`` is
column ``t`` of the A tile, as in a dense tile.

The hardware (``rtl.array_unit.ArrayUnit`` with a banked ACT buffer, ``rtl.pe.PE``'s group
select) streams one compressed step per cycle. Step ``s`` belongs to group ``g = s // N``;
its ACT read returns the ``M`` entries ``a_addr + g*M .. a_addr + g*M + M - 1`` at once (the
ACT buffer is banked ``G`` ways, ``G`` the largest ``M`` of the config, and ``a_addr`` is a
multiple of ``M``), so row ``i`` of the array receives the whole group and passes it right,
skewed like a dense operand. The WGT value and the IDX entry of step ``s`` move down column
``j`` together; PE ``(i, j)`` multiplies the value by the group member its index selects,
``A[i, g*M + idx[s, j]]``. Every PE thus performs one useful MAC per cycle: a tile of ``K``
dense reduction steps takes ``K*N/M`` feed steps, and its cycles are the dense closed forms
with ``k`` the compressed step count (:func:`hwsim.systolic_array.os_feed_cycles`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .systolic_array import _mac, _operands, _result

__all__ = ["os_sparse_tile_per_cycle"]


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
        for i in range(1, rows):
            for q in range(i - 1, 0, -1):
                a_skew[i, q] = a_skew[i, q - 1]
            a_skew[i, 0] = g_in
        for j in range(1, cols):
            for q in range(j - 1, 0, -1):
                b_skew[j, q] = b_skew[j, q - 1]
            b_skew[j, 0] = s_in
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
