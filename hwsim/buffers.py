"""The on-chip buffers' geometry: entries, operands per entry, element type (one place).

Every layer that addresses a buffer (the DMA, the units, the engine's functional state, the
compiler's traffic counts) reads its shape from here, so an element size is defined once.
"""

from __future__ import annotations

import numpy as np

from . import isa
from .config import AcceleratorConfig

__all__ = ["depth", "elem_bytes", "elem_bytes_of", "np_dtype", "width"]


def depth(buf: int, config: AcceleratorConfig) -> int:
    """Entries of buffer ``buf``."""
    return {isa.Buffer.ACT: config.act_depth, isa.Buffer.WGT: config.wgt_depth,
            isa.Buffer.ACC: config.acc_depth, isa.Buffer.IDX: config.idx_depth,
            isa.Buffer.VEC: config.vec_depth}[isa.Buffer(buf)]


def width(buf: int, config: AcceleratorConfig) -> int:
    """Elements per entry of buffer ``buf``: R operands (ACT), C operands, accumulators or
    indices (WGT, ACC, IDX), one fp32 word per vector lane (VEC)."""
    if buf == isa.Buffer.ACT:
        return config.array.rows
    if buf == isa.Buffer.VEC:
        return config.vector.lanes
    return config.array.cols


def elem_bytes(buf: int, config: AcceleratorConfig) -> int:
    """Bytes per element of buffer ``buf``: operands (ACT, WGT), 1 (IDX), 4 (ACC, VEC)."""
    if buf in (isa.Buffer.ACT, isa.Buffer.WGT):
        return config.array.elem_bytes
    if buf == isa.Buffer.IDX:
        return 1
    return 4


def elem_bytes_of(buf: np.ndarray, config: AcceleratorConfig) -> np.ndarray:
    """:func:`elem_bytes` of an array of buffer codes."""
    buf = np.asarray(buf)
    return np.where((buf == isa.Buffer.ACT) | (buf == isa.Buffer.WGT), config.array.elem_bytes,
                    np.where(buf == isa.Buffer.IDX, 1, 4)).astype(np.int64)


def np_dtype(buf: int, config: AcceleratorConfig) -> np.dtype:
    """The element type the functional model stores in buffer ``buf``."""
    int8 = config.array.dtype == "int8"
    if buf in (isa.Buffer.ACT, isa.Buffer.WGT):
        return np.dtype(np.int8 if int8 else np.float16)
    if buf == isa.Buffer.ACC:
        return np.dtype(np.int32 if int8 else np.float32)
    if buf == isa.Buffer.IDX:
        return np.dtype(np.uint8)
    return np.dtype(np.float32)
