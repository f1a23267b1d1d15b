"""Progress of the long commands on a terminal: tqdm bars on stderr, silent everywhere else.

Library functions (``sat_table``, ``memoryformer_report``, ``run_sweep``, the experiments, the
demo) take ``progress``: None (the default: they print nothing), a plain callable that
receives one line per finished unit of work, or a :class:`ProgressBar`, which is such a
callable that also draws a bar. They announce a loop's length with :func:`stage` (or wrap
the loop in :func:`track`), which does nothing for None or a plain callable, so the same
library code serves the CLI, the tests (``progress=lines.append``) and quiet callers.

The CLI builds its ``progress`` with :func:`progress_for`: a bar when stderr is a terminal,
nothing with ``--quiet`` or when stderr is a file or a pipe. ``SATMEM_PROGRESS=1`` forces the
bar on (``0`` forces it off), e.g. to see it through ``tee``; the tests force it with
``force=True`` and a ``StringIO``.

A bar's lines: ``progress(line)`` inside a stage prints the line above the bar and advances
it by one; outside a stage it only prints the line. A thread redraws the bar twice a second,
so its elapsed time moves during a unit that takes minutes.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["ENV", "LinePrinter", "ProgressBar", "enabled", "progress_for", "running", "stage",
           "track"]

ENV = "SATMEM_PROGRESS"
"""Environment variable: ``1`` draws progress bars even when stderr is not a terminal, ``0``
never draws them."""


def enabled(stream: IO | None = None, *, quiet: bool = False, force: bool | None = None
            ) -> bool:
    """Whether to draw progress on ``stream`` (default stderr): never when ``quiet``; else
    ``force`` when given, else :data:`ENV` when set to ``1`` or ``0``, else whether the
    stream is a terminal."""
    if quiet:
        return False
    if force is not None:
        return bool(force)
    env = os.environ.get(ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False


class LinePrinter:
    """A ``progress`` that prints each line to ``stream`` (default stderr) and draws nothing:
    for logs that are output in their own right (a sweep's one line per stored point)."""

    def __init__(self, stream: IO | None = None) -> None:
        self.stream = stream

    def __call__(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)


class ProgressBar:
    """A ``progress`` callable drawing one tqdm bar per stage on ``stream`` (default stderr).

    Parameters
    ----------
    stream : file, optional
    lines : bool
        Print each ``progress(line)`` above the bar (False: the bar's postfix shows the last
        line, nothing scrolls).
    """

    def __init__(self, stream: IO | None = None, *, lines: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.lines = lines
        self._bar: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # --- the callable protocol ---------------------------------------------------------------
    def __call__(self, line: str) -> None:
        """One unit of the open stage is done (``line`` says what); outside a stage, a note."""
        with self._lock:
            bar = self._bar
            if bar is None or self.lines:
                self._write(line)
            else:
                bar.set_postfix_str(_short(line), refresh=False)
            if bar is not None:
                self._advance(bar, 1)

    def note(self, line: str) -> None:
        """Print ``line`` above the bar without advancing it."""
        with self._lock:
            self._write(line)

    def stage(self, desc: str, total: int | None = None) -> None:
        """Close the open bar and open one for ``total`` units (None: a counter)."""
        from tqdm import tqdm

        with self._lock:
            self._close_bar()
            self._bar = tqdm(total=total, desc=desc, file=self.stream, leave=True,
                             dynamic_ncols=True, mininterval=0.2, smoothing=0.1,
                             bar_format=None if total else
                             "{desc}: {n_fmt} [{elapsed}, {rate_fmt}]{postfix}")
        self._start_ticker()

    def advance(self, n: int = 1, postfix: str | None = None) -> None:
        """Advance the open bar by ``n`` units, silently (no line)."""
        with self._lock:
            if self._bar is not None:
                if postfix is not None:
                    self._bar.set_postfix_str(_short(postfix), refresh=False)
                self._advance(self._bar, n)

    def track(self, iterable: Iterable, desc: str, total: int | None = None) -> Iterator:
        """Yield from ``iterable`` in a stage of ``total`` (default ``len(iterable)``) units,
        advancing after each item."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.stage(desc, total)
        for item in iterable:
            yield item
            self.advance()
        self.done()

    def done(self) -> None:
        """Close the open bar (it stays on screen)."""
        with self._lock:
            self._close_bar()

    def close(self) -> None:
        """Close the bar and stop the redraw thread."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=2)
        self._ticker = None
        self.done()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=self.stream)

    def _advance(self, bar, n: int) -> None:
        if bar.total is not None:
            n = max(0, min(n, bar.total - bar.n))  # a loop that says more lines than units
        bar.update(n)
        if bar.total is not None and bar.n >= bar.total:
            self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _start_ticker(self) -> None:
        if self._ticker is not None:
            return
        self._stop.clear()

        def tick() -> None:
            while not self._stop.wait(0.5):
                with self._lock:
                    if self._bar is not None:
                        self._bar.refresh()

        self._ticker = threading.Thread(target=tick, name="satmem-progress", daemon=True)
        self._ticker.start()


def _short(line: str, width: int = 60) -> str:
    line = " ".join(line.split())
    return line if len(line) <= width else line[:width - 1] + "…"


def progress_for(quiet: bool = False, *, log: bool = False, stream: IO | None = None,
                 force: bool | None = None) -> Callable[[str], None] | None:
    """The ``progress`` of a CLI command: a :class:`ProgressBar` when :func:`enabled`, else
    None, or with ``log`` a :class:`LinePrinter` (the command's lines are a log that pipes
    keep); None whenever ``quiet``."""
    if quiet:
        return None
    if enabled(stream, force=force):
        return ProgressBar(stream)
    return LinePrinter(stream) if log else None


def stage(progress, desc: str, total: int | None = None) -> None:
    """Announce a loop of ``total`` units to ``progress`` (nothing for None or a plain
    callable)."""
    fn = getattr(progress, "stage", None)
    if fn is not None:
        fn(desc, total)


def track(iterable: Iterable, progress, desc: str, total: int | None = None) -> Iterator:
    """``iterable``, advancing ``progress``'s bar after each item when it has one."""
    fn = getattr(progress, "track", None)
    return iter(iterable) if fn is None else fn(iterable, desc, total)


@contextmanager
def running(progress, desc: str, total: int | None = None) -> Iterator[None]:
    """A stage around a block whose units the block reports with ``progress.advance``; the bar
    is closed when the block ends, however it ends."""
    stage(progress, desc, total)
    try:
        yield
    finally:
        fn = getattr(progress, "done", None)
        if fn is not None:
            fn()
