"""Imported only by the forkserver of a local sweep cluster (:func:`reports.sweep._local_cluster`).

Importing it ignores SIGINT, so every Dask worker forked from that server starts with SIGINT
ignored: Ctrl-C in a terminal reaches the whole process group, and the sweep's client alone
stops the sweep and closes its workers, instead of each worker printing a traceback. Never
import it anywhere else: the importing process would ignore Ctrl-C.
"""

import signal

__all__: list[str] = []

signal.signal(signal.SIGINT, signal.SIG_IGN)
