"""AttMEMO's memo store: an append-only, memory-mapped file of (key, attention map) records,
and a Faiss nearest-neighbour index over the keys.

File layout (little endian)::

    header  64 bytes: b"SATMEMO1", u32 version=1, u32 key_dim, u32 map_ndim,
                      u32 map_shape[4] (unused dims 0), zero padding
    record  key float32[key_dim] | map float32[prod(map_shape)] | u32 crc32 of the two

Records are only ever appended. A crash mid-append leaves at most a partial or
unchecksummed last record; on open, records are verified in order and the file is
truncated after the last good one, so earlier entries are never affected. Reads go
through ``numpy.memmap`` (no copy until a map is turned into a tensor).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import faiss
import numpy as np
import torch

__all__ = ["MemoDB", "MemoIndex"]

MAGIC = b"SATMEMO1"
HEADER_SIZE = 64


class MemoDB:
    """Append-only memory-mapped database of attention probability maps.

    Parameters
    ----------
    path : str or os.PathLike
        The file; created if missing, otherwise opened, checked and recovered.
    key_dim : int
        Length of the embedding key of a record.
    map_shape : tuple of int
        Shape of one stored map, e.g. ``(heads, seq, seq)`` (at most 4 dims).
    durable : bool, default True
        ``fsync`` after every append (a crash then loses at most the record being written).

    Attributes
    ----------
    recovered_bytes : int
        Bytes of a damaged tail removed when the file was opened (0 for a clean file).

    Raises
    ------
    ValueError
        If an existing file is not a memo DB or was written with another key size or map
        shape.
    """

    def __init__(self, path, key_dim: int, map_shape: tuple[int, ...], durable: bool = True):
        self.path = Path(path)
        self.key_dim = int(key_dim)
        self.map_shape = tuple(int(s) for s in map_shape)
        if not 1 <= len(self.map_shape) <= 4 or self.key_dim < 1:
            raise ValueError(
                f"MemoDB: key_dim must be positive and map_shape have 1 to 4 dims, not "
                f"{key_dim!r}, {map_shape!r}"
            )
        self.durable = durable
        self.map_size = int(np.prod(self.map_shape))
        self.record_dtype = np.dtype(
            [("key", "<f4", (self.key_dim,)), ("map", "<f4", (self.map_size,)), ("crc", "<u4")]
        )
        self.recovered_bytes = 0
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "wb") as f:
                f.write(self._header())
                f.flush()
                os.fsync(f.fileno())
        self._check_header()
        self._count = self._recover()
        self._view = None

    def _header(self) -> bytes:
        dims = list(self.map_shape) + [0] * (4 - len(self.map_shape))
        raw = MAGIC + struct.pack("<7I", 1, self.key_dim, len(self.map_shape), *dims)
        return raw.ljust(HEADER_SIZE, b"\0")

    def _check_header(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE or head[:8] != MAGIC:
            raise ValueError(f"MemoDB: {self.path} is not a memo database")
        if head != self._header():
            version, key_dim, ndim, *dims = struct.unpack("<7I", head[8:36])
            raise ValueError(
                f"MemoDB: {self.path} holds key_dim={key_dim}, map_shape={tuple(dims[:ndim])}, "
                f"not key_dim={self.key_dim}, map_shape={self.map_shape}"
            )

    def _recover(self) -> int:
        size = self.path.stat().st_size
        stride = self.record_dtype.itemsize
        complete = (size - HEADER_SIZE) // stride
        good = 0
        if complete:
            records = np.memmap(
                self.path, self.record_dtype, "r", offset=HEADER_SIZE, shape=(complete,)
            )
            for i in range(complete):
                if _crc(records[i]) != int(records[i]["crc"]):
                    break
                good += 1
            del records
        keep = HEADER_SIZE + good * stride
        if keep != size:
            self.recovered_bytes = size - keep
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
        return good

    def __len__(self) -> int:
        return self._count

    def append(self, key, attention_map) -> int:
        """Append one record and return its id (0-based).

        Parameters
        ----------
        key : array-like
            ``(key_dim,)`` embedding.
        attention_map : array-like
            ``map_shape`` probabilities.
        """
        rec = np.zeros((), self.record_dtype)
        key = _as_numpy(key).reshape(-1)
        value = _as_numpy(attention_map).reshape(-1)
        if key.size != self.key_dim or value.size != self.map_size:
            raise ValueError(
                f"MemoDB.append: expected key ({self.key_dim},) and map {self.map_shape}, "
                f"got {key.size} and {value.size} elements"
            )
        rec["key"], rec["map"] = key, value
        rec["crc"] = _crc(rec)
        with open(self.path, "ab") as f:
            f.write(rec.tobytes())
            f.flush()
            if self.durable:
                os.fsync(f.fileno())
        self._count += 1
        self._view = None
        return self._count - 1

    def _records(self) -> np.memmap:
        if self._view is None or len(self._view) != self._count:
            self._view = np.memmap(
                self.path, self.record_dtype, "r", offset=HEADER_SIZE, shape=(self._count,)
            )
        return self._view

    def keys(self) -> np.ndarray:
        """All keys, ``(len, key_dim)`` float32 (a read-only memory-mapped view)."""
        if not self._count:
            return np.zeros((0, self.key_dim), np.float32)
        return self._records()["key"]

    def get_map(self, i: int) -> torch.Tensor:
        """Map ``i`` as a float32 tensor of ``map_shape`` (copied out of the mapping)."""
        if not 0 <= i < self._count:
            raise IndexError(f"MemoDB: record {i} out of range for {self._count} records")
        return torch.from_numpy(np.array(self._records()[i]["map"])).reshape(self.map_shape)


def _crc(record) -> int:
    return zlib.crc32(record["key"].tobytes() + record["map"].tobytes()) & 0xFFFFFFFF


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


class MemoIndex:
    """Inner-product nearest-neighbour index over unit-norm keys (Faiss).

    Below ``exact_below`` keys the index is exact (``IndexFlatIP``): an IVF index needs
    about 39 training points per list to place its centroids. Once it holds
    ``exact_below`` keys it is rebuilt as ``IndexIVFFlat`` with
    ``min(nlist, len // 39)`` lists, searched with ``nprobe`` lists; later keys are added
    to that index without retraining.

    Parameters
    ----------
    dim : int
    nlist : int, default 128
    nprobe : int, default 8
    exact_below : int, default 2048
    """

    def __init__(self, dim: int, nlist: int = 128, nprobe: int = 8, exact_below: int = 2048):
        self.dim, self.nlist, self.nprobe, self.exact_below = dim, nlist, nprobe, exact_below
        self._vectors: list[np.ndarray] = []
        self.index = faiss.IndexFlatIP(dim)
        self.approximate = False

    def __len__(self) -> int:
        return self.index.ntotal

    def add(self, vectors) -> None:
        """Add ``(B, dim)`` keys; ids continue from ``len(self)``."""
        v = _as_numpy(vectors).reshape(-1, self.dim)
        if not self.approximate:
            self._vectors.append(v)
            total = self.index.ntotal + len(v)
            if total >= self.exact_below:
                everything = np.concatenate(self._vectors)
                lists = max(1, min(self.nlist, total // 39))
                quantizer = faiss.IndexFlatIP(self.dim)
                index = faiss.IndexIVFFlat(quantizer, self.dim, lists, faiss.METRIC_INNER_PRODUCT)
                index.train(everything)
                index.add(everything)
                index.nprobe = min(self.nprobe, lists)
                self._quantizer, self.index, self.approximate = quantizer, index, True
                self._vectors = []
                return
        self.index.add(v)

    def search(self, queries) -> tuple[np.ndarray, np.ndarray]:
        """Nearest key of each query: ``(similarity (B,), id (B,))``; id -1 if empty."""
        q = _as_numpy(queries).reshape(-1, self.dim)
        if self.index.ntotal == 0:
            return np.full(len(q), -np.inf, np.float32), np.full(len(q), -1, np.int64)
        sims, ids = self.index.search(q, 1)
        return sims[:, 0], ids[:, 0]
