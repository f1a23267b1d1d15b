"""AttMEMO's memo store: an append-only, memory-mapped file of (key, attention map) records,
and a Faiss nearest-neighbour index over the keys.

File layout (little endian)::

    header  64 bytes: b"SATMEMO1", u32 version=1, u32 key_dim, u32 map_ndim,
                      u32 map_shape[4] (unused dims 0), zero padding
    record  key float32[key_dim] | map float32[prod(map_shape)] | u32 crc32 of the two

Every record has the same size, so slot ``s`` starts at byte ``64 + s * stride`` whatever
happened to the bytes of the other slots. That is why the format needs no sync marker:
after a damaged record the scan goes on at the next slot, one CRC per record. (Bytes
inserted into or removed from the middle of the file would shift every later slot; no
crash, disk error or writer of this module does that.)

Damage. On open, every record's CRC is checked.

- A bad record with good ones after it (a flipped bit, a zeroed block) costs that record
  only: it is skipped, listed in ``skipped_records`` and reported with a
  :class:`MemoDBWarning`. It stays in the file; record ids count readable records only.
- Bad or partial bytes after the last good record are a torn append (a crash mid-write,
  or appends lost with ``durable=False``). A writer truncates them, with a warning; a
  reader leaves them alone, since they may be an append in flight.

Concurrency. At most one writer (``mode="a"``, the default) across processes: it holds an
exclusive ``flock`` on the file from open to :meth:`MemoDB.close`, so a second writer, in
this process or another, gets :class:`MemoDBLockedError` at once, or after waiting
``timeout`` seconds. The writer writes each record at its known end and cuts back a write
that failed, so a partial record never sits under the next one. Readers (``mode="r"``)
take no lock and never write: each sees, in order, every record whose append had returned
when it opened or last called :meth:`MemoDB.refresh`. This relies on POSIX semantics of a
local filesystem (not NFS).

Reads go through ``numpy.memmap`` (no copy until a map is turned into a tensor).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
import warnings
import weakref
import zlib
from pathlib import Path

import faiss
import numpy as np
import torch

__all__ = ["MemoDB", "MemoDBLockedError", "MemoDBWarning", "MemoIndex"]

MAGIC = b"SATMEMO1"
VERSION = 1
HEADER_SIZE = 64
_SCAN_BYTES = 1 << 20  # bytes read per pread while checking records
_writers: weakref.WeakSet[MemoDB] = weakref.WeakSet()  # open writers of this process


class MemoDBWarning(UserWarning):
    """A memo DB had damaged records (skipped) or a torn tail (removed by the writer)."""


class MemoDBLockedError(RuntimeError):
    """Another writer holds the memo DB."""


class MemoDB:
    """Append-only memory-mapped database of attention probability maps.

    Parameters
    ----------
    path : str or os.PathLike
        The file. A writer creates it if missing; otherwise it is opened and checked, and a
        writer removes a torn tail.
    key_dim : int
        Length of the embedding key of a record.
    map_shape : tuple of int
        Shape of one stored map, e.g. ``(heads, seq, seq)`` (at most 4 dims).
    durable : bool, default True
        ``fsync`` after every append (a crash then loses at most the record being written).
    mode : {"a", "r"}, default "a"
        ``"a"``: the writer, holding the file's exclusive lock until :meth:`close`.
        ``"r"``: a reader, without lock or writes; :meth:`refresh` reads later appends.
    timeout : float, default 0.0
        Seconds a writer waits for another writer to close before giving up.

    Attributes
    ----------
    skipped_records : tuple of int
        Slots (0-based positions in the file) of damaged records that were skipped.
    skipped_bytes : int
        Their size in bytes.
    recovered_bytes : int
        Bytes after the last good record at open (a reader: at its last refresh). A writer
        removed them; a reader left them, as they may be an append in progress.

    Raises
    ------
    ValueError
        If an existing file is not a memo DB or was written with another key size or map
        shape, or a parameter is invalid.
    MemoDBLockedError
        If ``mode="a"`` and another writer holds the file for longer than ``timeout``.
    FileNotFoundError
        If ``mode="r"`` and the file does not exist.

    Warns
    -----
    MemoDBWarning
        When damaged records are skipped or a writer removes a torn tail.
    """

    def __init__(
        self,
        path,
        key_dim: int,
        map_shape: tuple[int, ...],
        durable: bool = True,
        mode: str = "a",
        timeout: float = 0.0,
    ):
        self.path = Path(path)
        self.key_dim = int(key_dim)
        self.map_shape = tuple(int(s) for s in map_shape)
        if not 1 <= len(self.map_shape) <= 4 or self.key_dim < 1:
            raise ValueError(
                f"MemoDB: key_dim must be positive and map_shape have 1 to 4 dims, not "
                f"{key_dim!r}, {map_shape!r}"
            )
        if mode not in ("a", "r"):
            raise ValueError(f"MemoDB: mode must be 'a' (writer) or 'r' (reader), not {mode!r}")
        if not isinstance(timeout, int | float) or not timeout >= 0:
            raise ValueError(f"MemoDB: timeout must be seconds >= 0, not {timeout!r}")
        self.mode, self.durable = mode, durable
        self.map_size = int(np.prod(self.map_shape))
        self.record_dtype = np.dtype(
            [("key", "<f4", (self.key_dim,)), ("map", "<f4", (self.map_size,)), ("crc", "<u4")]
        )
        self.recovered_bytes = 0
        self._nslots = 0  # slots up to and including the last good record
        self._holes = np.zeros(0, np.int64)  # damaged slots among them, ascending
        self._hole_rank = self._holes  # readable records before each hole
        self._view = None
        self._pid = os.getpid()
        self._fd = self._open(float(timeout))
        self._close_fd = weakref.finalize(self, os.close, self._fd)
        try:
            self._check_header()
            self._scan()
        except BaseException:
            self.close()
            raise
        if mode == "a":
            _writers.add(self)

    def _open(self, timeout: float) -> int:
        if self.mode == "r":
            return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        # O_CREAT without O_TRUNC: a second writer must find the first one's lock, not
        # empty its file.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _lock(fd, timeout, self.path)
            if os.fstat(fd).st_size == 0:
                _pwrite_all(fd, self._header(), 0)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _header(self) -> bytes:
        dims = list(self.map_shape) + [0] * (4 - len(self.map_shape))
        raw = MAGIC + struct.pack("<7I", VERSION, self.key_dim, len(self.map_shape), *dims)
        return raw.ljust(HEADER_SIZE, b"\0")

    def _check_header(self) -> None:
        head = os.pread(self._fd, HEADER_SIZE, 0)
        if not head:
            raise ValueError(f"MemoDB: {self.path} is not a memo database (it is empty)")
        if len(head) < HEADER_SIZE or head[:8] != MAGIC:
            raise ValueError(f"MemoDB: {self.path} is not a memo database")
        if head == self._header():
            return
        version, key_dim, ndim, *dims = struct.unpack("<7I", head[8:36])
        if version != VERSION:
            raise ValueError(
                f"MemoDB: {self.path} has format version {version}; this reads version {VERSION}"
            )
        if (key_dim, tuple(dims[:ndim])) != (self.key_dim, self.map_shape):
            raise ValueError(
                f"MemoDB: {self.path} holds key_dim={key_dim}, map_shape={tuple(dims[:ndim])}, "
                f"not key_dim={self.key_dim}, map_shape={self.map_shape}"
            )
        raise ValueError(f"MemoDB: {self.path} has a damaged header")

    def _slot_ok(self, slot: int) -> bool:
        stride = self.record_dtype.itemsize
        raw = os.pread(self._fd, stride, HEADER_SIZE + slot * stride)
        return len(raw) == stride and _crc_ok(memoryview(raw), 0, stride)

    def _scan(self) -> int:
        """Check the slots after the last good record; return how many became readable."""
        stride = self.record_dtype.itemsize
        before = len(self)
        size = os.fstat(self._fd).st_size
        slots = max(0, (size - HEADER_SIZE) // stride)
        bad: list[int] = []  # bad slots since the last good one
        holes: list[int] = []
        slot = self._nslots
        while slot < slots:
            want = min(max(1, _SCAN_BYTES // stride), slots - slot)
            buf = memoryview(os.pread(self._fd, want * stride, HEADER_SIZE + slot * stride))
            got = len(buf) // stride  # fewer if a writer cut a torn tail meanwhile
            if not got:
                break
            for i in range(got):
                if not _crc_ok(buf, i * stride, stride):
                    bad.append(slot + i)
                    continue
                # A reader may have read a slot before the writer (re)wrote it and the
                # next slot after: read a bad slot again before calling it damaged.
                holes.extend(s for s in bad if not self._slot_ok(s))
                bad = []
                self._nslots = slot + i + 1
            slot += got
        if holes:
            self._holes = np.concatenate([self._holes, np.asarray(holes, np.int64)])
            self._hole_rank = self._holes - np.arange(len(self._holes))
            shown = ", ".join(map(str, holes[:10])) + (", ..." if len(holes) > 10 else "")
            warnings.warn(
                MemoDBWarning(
                    f"MemoDB: {self.path}: skipped {len(holes)} damaged record(s) at slot(s) "
                    f"{shown} ({len(holes) * stride} bytes); {len(self)} records readable"
                ),
                stacklevel=3,
            )
        end = HEADER_SIZE + self._nslots * stride
        self.recovered_bytes = max(0, size - end)
        if self.recovered_bytes and self.mode == "a":
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
            warnings.warn(
                MemoDBWarning(
                    f"MemoDB: {self.path}: removed a torn tail of {self.recovered_bytes} bytes "
                    f"after the last good record; {len(self)} records readable"
                ),
                stacklevel=3,
            )
        return len(self) - before

    def __len__(self) -> int:
        return self._nslots - len(self._holes)

    @property
    def skipped_records(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self._holes)

    @property
    def skipped_bytes(self) -> int:
        return len(self._holes) * self.record_dtype.itemsize

    def append(self, key, attention_map) -> int:
        """Append one record and return its id (0-based).

        Parameters
        ----------
        key : array-like
            ``(key_dim,)`` embedding.
        attention_map : array-like
            ``map_shape`` probabilities.

        Raises
        ------
        ValueError
            On wrong sizes, or if this MemoDB is a reader or closed.
        MemoDBLockedError
            In a process forked from the writer's (the lock belongs to the writer).
        """
        if os.getpid() != self._pid:
            raise MemoDBLockedError(
                f"MemoDB.append: this writer of {self.path} belongs to process {self._pid}; "
                f"open a MemoDB in process {os.getpid()} instead"
            )
        self._check_open("append")
        if self.mode != "a":
            raise ValueError(f"MemoDB.append: {self.path} is open read-only (mode='r')")
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
        end = HEADER_SIZE + self._nslots * self.record_dtype.itemsize
        try:
            _pwrite_all(self._fd, rec.tobytes(), end)
            if self.durable:
                os.fsync(self._fd)
        except BaseException:
            # Not acknowledged: leave no partial record behind.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, end)
            raise
        self._nslots += 1
        return len(self) - 1

    def refresh(self) -> int:
        """Read the records appended since open or the last refresh; return their number.

        For a reader. A writer already sees its own appends, and gets 0.
        """
        self._check_open("refresh")
        return self._scan() if self.mode == "r" else 0

    def close(self) -> None:
        """Close the file, releasing a writer's lock. Reads keep working; appends do not."""
        if self._fd is not None:
            self._close_fd()
            self._fd = None
            _writers.discard(self)

    def _leave_to_parent(self) -> None:
        # In a forked child: the inherited descriptor shares the parent's lock, which would
        # outlive the parent's close() while the child runs. Close the child's copy only
        # (flock(LOCK_UN) here would unlock the parent's writer).
        if self._fd is not None:
            self._close_fd.detach()
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> MemoDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self, what: str) -> None:
        if self._fd is None:
            raise ValueError(f"MemoDB.{what}: {self.path} is closed")

    def _records(self) -> np.memmap:
        if self._view is None or len(self._view) != self._nslots:
            self._view = np.memmap(
                self.path, self.record_dtype, "r", offset=HEADER_SIZE, shape=(self._nslots,)
            )
        return self._view

    def keys(self) -> np.ndarray:
        """All keys, ``(len, key_dim)`` float32.

        A read-only memory-mapped view; a copy if damaged records were skipped.
        """
        if not len(self):
            return np.zeros((0, self.key_dim), np.float32)
        keys = self._records()["key"]
        return np.delete(keys, self._holes, axis=0) if len(self._holes) else keys

    def get_map(self, i: int) -> torch.Tensor:
        """Map ``i`` as a float32 tensor of ``map_shape`` (copied out of the mapping)."""
        if not 0 <= i < len(self):
            raise IndexError(f"MemoDB: record {i} out of range for {len(self)} records")
        slot = int(i) + int(np.searchsorted(self._hole_rank, i, side="right"))
        return torch.from_numpy(np.array(self._records()[slot]["map"])).reshape(self.map_shape)


def _leave_writers_to_parent() -> None:
    for db in list(_writers):
        db._leave_to_parent()
    _writers.clear()


os.register_at_fork(after_in_child=_leave_writers_to_parent)


def _lock(fd: int, timeout: float, path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                waited = f" after waiting {timeout:g} s" if timeout else ""
                raise MemoDBLockedError(
                    f"MemoDB: {path} is open for writing elsewhere{waited} (one writer at a "
                    f"time); open it with mode='r' to read, or pass timeout= to wait"
                ) from None
            time.sleep(min(0.02, left))


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _crc(record) -> int:
    return zlib.crc32(record["key"].tobytes() + record["map"].tobytes()) & 0xFFFFFFFF


def _crc_ok(buf: memoryview, offset: int, stride: int) -> bool:
    body, crc = buf[offset : offset + stride - 4], buf[offset + stride - 4 : offset + stride]
    return zlib.crc32(body) == int.from_bytes(crc, "little")


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
