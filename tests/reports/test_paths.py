"""Where satmem writes by default (``hwsim.paths``): never the current directory, never an
installed package; ``SATMEM_HOME`` and explicit paths win; Numba caches in the user's cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from hwsim import paths

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("algorithms", "hwsim", "dataflow", "rtl", "reports")


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def write_spec(where: Path, name: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    spec = where / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": name, "base": "tiny",
                                    "workloads": [{"gemm": [16, 16, 32]}]}))
    return spec


def test_checkout_defaults_are_the_repository_directories(monkeypatch):
    monkeypatch.delenv(paths.ENV_HOME, raising=False)
    assert paths.source_checkout() == REPO
    assert paths.runs_dir() == REPO / "runs"
    assert paths.report_dir("sat") == REPO / "reports" / "sat"
    assert paths.build_dir() == REPO / "build"
    assert paths.numba_cache_dir() == REPO / "build" / "numba-cache"


def test_satmem_home_holds_every_default(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ENV_HOME, str(tmp_path / "home"))
    assert paths.runs_dir() == tmp_path / "home" / "runs"
    assert paths.report_dir("memoryformer") == tmp_path / "home" / "reports" / "memoryformer"
    assert paths.build_dir() == tmp_path / "home" / "build"
    assert paths.numba_cache_dir() == tmp_path / "home" / "build" / "numba-cache"


def run_python(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", paths.ENV_HOME, "PYTHONPATH")}
    return {**env, **extra}


def test_sweep_under_satmem_home_writes_nothing_in_the_cwd(tmp_path):
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    spec = write_spec(tmp_path / "specs", "home-default")
    # the kernels compiled, not interpreted (hwsim._jit runs small calls as Python), so that
    # Numba writes its cache
    code = ("import sys; import hwsim._jit as j; j.PYTHON_BUDGET_S = 0.0; "
            "from reports.cli import main; "
            f"sys.exit(main(['sweep', {str(spec)!r}, '--workers', '0', '--quiet']))")
    r = run_python(code, clean_env(SATMEM_HOME=str(home)), cwd)
    assert r.returncode == 0, r.stderr
    db = home / "runs" / "sweep-home-default" / "results.duckdb"
    assert f"results: {db}" in r.stdout and db.is_file()
    assert not list(cwd.iterdir()) and not (REPO / "runs" / "sweep-home-default").exists()
    assert list((home / "build" / "numba-cache").rglob("*.nbi"))
    # an explicit --db wins over SATMEM_HOME
    code = code.replace("'--quiet'", f"'--quiet', '--db', {str(tmp_path / 'mine.duckdb')!r}")
    r = run_python(code, clean_env(SATMEM_HOME=str(home)), cwd)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mine.duckdb").is_file() and not list(cwd.iterdir())
    assert sorted(p.name for p in db.parent.iterdir()) == ["results.duckdb",
                                                           "results.duckdb.points.log"]


def test_installed_copy_writes_to_the_user_directories_only(tmp_path):
    """The packages copied as an install lays them out (no pyproject.toml above them): a sweep
    with default paths, run from another directory, writes its store under the user data
    directory and Numba's cache under the user cache directory, nothing else."""
    site, cwd, data, cache = (tmp_path / d for d in ("site", "cwd", "data", "cache"))
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    cwd.mkdir()
    spec = write_spec(tmp_path / "specs", "installed")
    before = tree(site)
    env = clean_env(XDG_DATA_HOME=str(data), XDG_CACHE_HOME=str(cache),
                    PYTHONDONTWRITEBYTECODE="1")
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import reports, hwsim.paths as p; "
            f"assert reports.__file__.startswith({str(site)!r}), reports.__file__; "
            "assert p.source_checkout() is None; import hwsim._jit as j; "
            "j.PYTHON_BUDGET_S = 0.0; from reports.cli import main; "
            f"sys.exit(main(['sweep', {str(spec)!r}, '--workers', '0', '--quiet']))")
    r = run_python(code, env, cwd)
    assert r.returncode == 0, r.stderr
    db = data / "satmem" / "runs" / "sweep-installed" / "results.duckdb"
    assert f"results: {db}" in r.stdout and db.is_file()
    assert not list(cwd.iterdir()) and tree(site) == before
    nbi = list((cache / "satmem" / "numba-cache").rglob("*.nbi"))
    assert nbi, "Numba cached nothing in the user cache directory"


def test_numba_cache_dir_is_set_before_numba_loads_unless_given(tmp_path):
    code = ("import os, hwsim, numba; "
            "print(os.environ['NUMBA_CACHE_DIR']); print(numba.config.CACHE_DIR)")
    r = run_python(code, clean_env(SATMEM_HOME=str(tmp_path)), tmp_path)
    want = str(tmp_path / "build" / "numba-cache")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [want, want]
    r = run_python(code, clean_env(SATMEM_HOME=str(tmp_path),
                                   NUMBA_CACHE_DIR=str(tmp_path / "mine")), tmp_path)
    assert r.stdout.splitlines() == [str(tmp_path / "mine")] * 2
    # numba imported first: hwsim still points its cache away from the package
    code = ("import numba, os, hwsim; print(numba.config.CACHE_DIR)")
    r = run_python(code, clean_env(SATMEM_HOME=str(tmp_path)), tmp_path)
    assert r.stdout.splitlines() == [want]
