"""Reading the small text files users hand satmem (configs, topologies, SCALE-Sim ``.cfg``
files, sweep specs) with bounds: a size limit, so ``/dev/zero`` or a wrong multi-GB file is
refused at once instead of read forever, and a text check (UTF-8, a byte-order mark allowed,
no NUL bytes)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MAX_TEXT_BYTES", "TextFileError", "read_text"]

MAX_TEXT_BYTES = 16 << 20
"""Largest input file read, bytes (16 MiB: configs, topologies and specs are a few KiB)."""


class TextFileError(ValueError):
    """A file that is not a readable text file of at most :data:`MAX_TEXT_BYTES`; the message
    says why in a few words (the caller names the file)."""


def read_text(path: str | Path, limit: int = MAX_TEXT_BYTES) -> str:
    """The text of ``path``: at most ``limit`` bytes of UTF-8 (a leading byte-order mark
    dropped).

    Raises
    ------
    TextFileError
        Unreadable (the OS error), larger than ``limit``, holding NUL bytes (binary), or not
        UTF-8.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise TextFileError(e.strerror or str(e)) from None
    if len(data) > limit:
        raise TextFileError(f"larger than {limit >> 20} MiB: not a text input")
    if b"\0" in data:
        raise TextFileError("not a text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TextFileError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
