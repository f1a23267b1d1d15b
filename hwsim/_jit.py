"""Numba kernels compiled (or loaded from the cache) on first call, not on import.

``from ._jit import njit`` stands where ``from numba import njit`` stood: the decorator takes the
same arguments and returns a :class:`LazyKernel`, which imports Numba and builds the real
dispatcher the first time the kernel is called (or typed by another kernel). Importing hwsim,
and a small GEMM or topology run in timing mode, then never pay for importing Numba and for
its first call in a process (about 0.3 s together on a busy 2-core machine with warm caches,
after what :func:`load_numba` avoids; 0.6 s before).

When a kernel's dispatcher is built, every lazy kernel and :func:`lazy_global` of its module is
replaced in the module's namespace by the real object (recursively through the kernels it
calls), so Numba sees real dispatchers (``inline="always"`` keeps working) and the cache files
are the ones an eager ``@njit(cache=True)`` writes. A kernel referenced from outside hwsim (a
test's own ``@njit`` function) is typed through :attr:`LazyKernel._numba_type_`.

``cost``: an estimate, from the call's arguments, of the seconds the kernel's Python function
takes interpreted. Until the first kernel of the process is built, a call whose cost fits in
what is left of :data:`PYTHON_BUDGET_S` runs the Python function as plain Python (the same
code, the same results) instead of loading Numba: a small GEMM or topology in timing mode then
never loads Numba, and a large one pays at most the budget before it does. Only the timing
path's kernels (the controller's schedule, the banked DRAM model of DMA commands) give one.

Loading Numba (:func:`load_numba`, at the first build; then the first call) cost a process
about 0.6 s on a busy 2-core machine even from a warm cache, and half of that went to things
no hwsim kernel uses:

- SciPy: Numba imports it to check its version, and ``numba.np.arraymath`` imports
  ``scipy.linalg`` (0.1-0.2 s) only to know whether ``np.correlate`` and ``np.convolve`` of floats
  may call BLAS. Numba is imported with SciPy hidden (unless SciPy was imported already), so
  in this process those two run as loops in compiled code; ``np.dot``, ``@`` and
  ``np.linalg`` still import SciPy when a kernel that uses them is compiled.
- The cyclic garbage collector: Numba's import and its first compile or cache load make about
  100,000 long-lived objects (types, templates, registries), rescanned by every full collection
  of the process and by the ones at its exit. They are made with the collector paused, then
  moved to the permanent generation (``gc.freeze``): the collector never scans them again. A
  cycle unreachable at that moment is never freed (a one-time leak, bounded by the garbage of
  that moment).
"""

from __future__ import annotations

import functools
import gc
import importlib
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

__all__ = ["PYTHON_BUDGET_S", "LazyKernel", "lazy_global", "load_numba", "njit"]

PYTHON_BUDGET_S = 0.25
"""Estimated seconds of kernels interpreted in a process before Numba is loaded instead (a little
under what loading Numba and its first call cost on a busy 2-core machine, about 0.3 s: a run
that outgrows it pays at most about twice what the better choice would have cost)."""

_LOCK = threading.RLock()
_INTERPRETING = threading.local()  # inside an interpreted call: the kernels it calls are too
_STATE = {"spent": 0.0, "built": False, "called": False}


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off for the block (as it was after), and every object alive
    at its end moved to the permanent generation (module docstring)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def load_numba() -> None:
    """Import Numba and the registries its first compile or cache load imports, without SciPy
    and with the collector paused (module docstring). Does nothing once they are imported."""
    if "numba.np.arraymath" in sys.modules:
        return
    hide = "scipy" not in sys.modules
    with _LOCK, _collector_paused():
        if hide:  # None in sys.modules: ``import scipy`` raises ImportError, which Numba expects
            sys.modules["scipy"] = None
        try:
            import numba.np.arraymath  # noqa: F401  (its BLAS probe runs with SciPy hidden)
        finally:
            if hide and "scipy" in sys.modules and sys.modules["scipy"] is None:
                del sys.modules["scipy"]


class _LazyGlobal:
    """A module-level name bound to ``module.attr`` when the first kernel of its module is
    built (a Numba intrinsic, which only compiled code can call)."""

    def __init__(self, module: str, attr: str):
        self.module, self.attr = module, attr

    def resolve(self) -> Any:
        return getattr(importlib.import_module(self.module), self.attr)

    def __call__(self, *args, **kwargs):  # pragma: no cover - only reached outside Numba
        return self.resolve()(*args, **kwargs)


def lazy_global(module: str, attr: str) -> Any:
    """``module.attr``, imported when the first kernel of the caller's module is built."""
    return _LazyGlobal(module, attr)


def _materialize(namespace: dict) -> None:
    """Replace every lazy kernel and lazy global of a module namespace by the real object, and
    bind the names its ``_JIT_GLOBALS`` lists (values its module ``__getattr__`` builds on first
    use) so that its kernels see them as globals."""
    for name in namespace.get("_JIT_GLOBALS", ()):
        if name not in namespace:
            namespace["__getattr__"](name)
    for name, value in list(namespace.items()):
        if isinstance(value, LazyKernel):
            namespace[name] = value.dispatcher()
        elif isinstance(value, _LazyGlobal):
            real = value.resolve()
            namespace[name] = real.dispatcher() if isinstance(real, LazyKernel) else real


class LazyKernel:
    """A ``numba.njit`` kernel built on first use (module docstring).

    Parameters
    ----------
    py_func : callable
        The kernel's Python source function.
    options : dict
        ``numba.njit`` keyword arguments (``cache=True``, ``inline="always"``).
    cost : callable, optional
        Called with the call's arguments: estimated seconds of ``py_func`` interpreted
        (module docstring).
    """

    def __init__(self, py_func: Callable, options: dict[str, Any],
                 cost: Callable[..., float] | None = None):
        self.py_func = py_func
        self._options = options
        self._cost = cost
        self._dispatcher = None
        functools.update_wrapper(self, py_func)

    def dispatcher(self):
        """The real Numba dispatcher (Numba imported and the module's kernels bound)."""
        if self._dispatcher is None:
            load_numba()
            with _LOCK:
                if self._dispatcher is None:
                    from numba import njit as numba_njit

                    self._dispatcher = numba_njit(**self._options)(self.py_func)
                    _STATE["built"] = True
                    _materialize(self.py_func.__globals__)
        return self._dispatcher

    def _interpret(self, args) -> bool:
        """Whether this call runs as Python: it fits the budget and no kernel is built yet."""
        if self._cost is None or _STATE["built"]:
            return False
        cost = float(self._cost(*args))
        with _LOCK:
            if _STATE["spent"] + cost > PYTHON_BUDGET_S:
                return False
            _STATE["spent"] += cost
        return True

    def __call__(self, *args, **kwargs):
        if self._dispatcher is None:
            if getattr(_INTERPRETING, "on", False):
                return self.py_func(*args, **kwargs)
            if self._interpret(args):
                _INTERPRETING.on = True
                try:
                    return self.py_func(*args, **kwargs)
                finally:
                    _INTERPRETING.on = False
        if not _STATE["called"]:  # the process's first call loads Numba's registries
            with _collector_paused():
                out = self.dispatcher()(*args, **kwargs)
            _STATE["called"] = True
            return out
        return self.dispatcher()(*args, **kwargs)

    @property
    def _numba_type_(self):  # how Numba types a reference to this kernel from other code
        return self.dispatcher()._numba_type_

    def __getattr__(self, name: str):  # signatures, stats, inspect_*: the dispatcher's
        if name.startswith("__") or name in ("py_func", "_options", "_cost", "_dispatcher"):
            raise AttributeError(name)
        return getattr(self.dispatcher(), name)

    def __reduce__(self):  # pickled by reference, like a module-level function
        return _kernel_by_name, (self.py_func.__module__, self.py_func.__qualname__)

    def __repr__(self) -> str:
        state = "built" if self._dispatcher is not None else "not built yet"
        name = f"{self.py_func.__module__}.{self.py_func.__qualname__}"
        return f"<lazy numba kernel {name} ({state})>"


def _kernel_by_name(module: str, qualname: str):
    return getattr(importlib.import_module(module), qualname)


def njit(*args, cost: Callable[..., float] | None = None, **options):
    """``numba.njit`` with the build deferred to the first call (module docstring)."""
    if args and callable(args[0]) and len(args) == 1 and not options:
        return LazyKernel(args[0], {})
    if args:
        raise TypeError("njit takes keyword options only (signatures are not supported lazily)")
    return lambda func: LazyKernel(func, options, cost)
