"""Where satmem writes by default: results, reports, simulator builds and Numba's cache.

Everything has one root, chosen in this order:

1. ``$SATMEM_HOME`` when set: ``runs/``, ``reports/<name>/`` and ``build/`` under it.
2. The source checkout, when satmem runs from one (an editable install: the directory above
   the packages holds satmem's ``pyproject.toml``): the same three under the checkout, where
   ``make demo`` and ``make test`` have always written (``runs/`` and ``build/`` are ignored by
   git; ``reports/sat/`` and ``reports/memoryformer/`` are the committed reports).
3. Otherwise (an installed satmem) the user's directories (``platformdirs``): results and
   reports under the user data directory (``~/.local/share/satmem`` on Linux), builds and the
   Numba cache under the user cache directory (``~/.cache/satmem``). Never the current
   directory, never the installed package.

An explicit ``--out``, ``--db`` or ``--build`` (or the functions' path arguments) always wins,
and ``NUMBA_CACHE_DIR``, when set, is left alone. This module imports nothing of ours, and
importing it runs :func:`configure_numba_cache`: ``hwsim/__init__.py`` imports it first, before
any module that imports Numba.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = [
    "ENV_HOME",
    "build_dir",
    "configure_numba_cache",
    "numba_cache_dir",
    "report_dir",
    "runs_dir",
    "source_checkout",
]

ENV_HOME = "SATMEM_HOME"
_APP = "satmem"


def source_checkout() -> Path | None:
    """The repository root when the packages are imported from satmem's source checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if f'name = "{_APP}"' in text else None


def _home() -> Path | None:
    value = os.environ.get(ENV_HOME, "").strip()
    return Path(value).expanduser().absolute() if value else None


def _data_root() -> Path:
    root = _home() or source_checkout()
    if root is not None:
        return root
    import platformdirs

    return Path(platformdirs.user_data_dir(_APP, appauthor=False))


def runs_dir() -> Path:
    """Default parent of sweep stores, demo reports and experiment results (``.../runs``)."""
    return _data_root() / "runs"


def report_dir(name: str) -> Path:
    """Default directory of the report ``name`` (``sat``, ``memoryformer``): ``reports/NAME``."""
    return _data_root() / "reports" / name


def build_dir() -> Path:
    """Default root of simulator builds and synthesis runs (``.../build``, or the user cache)."""
    root = _home() or source_checkout()
    if root is not None:
        return root / "build"
    import platformdirs

    return Path(platformdirs.user_cache_dir(_APP, appauthor=False))


def numba_cache_dir() -> Path:
    """Where Numba caches compiled kernels unless ``NUMBA_CACHE_DIR`` says otherwise."""
    return build_dir() / "numba-cache"


def configure_numba_cache() -> None:
    """Point Numba's cache at :func:`numba_cache_dir` unless ``NUMBA_CACHE_DIR`` is set.

    Called by ``hwsim/__init__.py`` before anything imports Numba, so that an installed,
    read-only package still caches (Numba's default is the package's ``__pycache__``). The
    variable is set in ``os.environ`` so that Dask workers and cocotb runs inherit it.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    path = str(numba_cache_dir())
    os.environ["NUMBA_CACHE_DIR"] = path
    numba = sys.modules.get("numba")
    if numba is not None:  # imported before hwsim: its config was read already
        numba.config.CACHE_DIR = path


configure_numba_cache()
