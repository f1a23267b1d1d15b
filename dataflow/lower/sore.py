"""Lowering weight pruning: PRUNE rows on SORE (:mod:`hwsim.units.sore`).

A prune item of the plan (:mod:`dataflow.plan`: online pruning of Wᵀ before its GEMM, or
pre-generation of a sparse copy after an update) prunes a ``K x N`` weight N:M along K: one
PRUNE row per at most 65535 source rows (the ``rows`` field; whole groups), each carrying in
``xbytes`` its share of the DRAM traffic SORE streams outside the DMA queues (the dense weight
read, its compressed copy written back).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.program import COL

from .emitter import Emitter

if TYPE_CHECKING:
    from ..plan import Item

__all__ = ["emit_prune", "prune_steps"]

_PRUNE = int(isa.Opcode.PRUNE)
_SRC_BUF, _ROWS, _GROUPS, _N, _LOG2M, _AXIS, _XBYTES = (COL[k] for k in (
    "src_buf", "rows", "groups", "n", "log2m", "axis", "xbytes"))


def prune_steps(it: Item, config: AcceleratorConfig) -> list[tuple[int, int, int, int]]:
    """PRUNE rows ``(rows, n, log2m, xbytes)`` of a weight: ``xbytes`` is each row's share of
    the weight read from DRAM and its compressed copy written back (values and indices), the
    traffic SORE streams outside the DMA queues."""
    K, N, nn_, mm = it.prune
    C = config.array.cols
    eb = config.array.elem_bytes
    rows_total = K * -(-N // C)
    total = K * N * eb + K * N * nn_ // mm * (eb + 1)
    cap = ((1 << 16) - 1) // mm * mm
    log2m = int(math.log2(mm))
    out = []
    for s in range(0, rows_total, cap):
        r = min(cap, rows_total - s)
        out.append((r, nn_, log2m, total * (s + r) // rows_total - total * s // rows_total))
    return out


def emit_prune(em: Emitter, rows: int, n: int, log2m: int, xbytes: int) -> int:
    """One PRUNE row; ``xbytes``: DRAM bytes it streams outside the DMA queues. Returns its
    row."""
    r = em.new(_PRUNE)
    r[_SRC_BUF], r[_ROWS], r[_GROUPS], r[_N], r[_LOG2M], r[_AXIS], r[_XBYTES] = (
        isa.Buffer.WGT, rows, 1, n, log2m, 1, xbytes)
    return len(em.rows) - 1
