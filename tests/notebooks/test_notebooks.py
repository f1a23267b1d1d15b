"""The notebooks under notebooks/: jupytext pairs in sync, executed through a Jupyter kernel.

Each notebook is a percent-format ``NAME.py`` (the source a diff reads) paired with
``NAME.ipynb`` (what Jupyter opens), committed without outputs. The tests check the pair is in
sync, then run the ``.ipynb`` top to bottom in an ipykernel kernel of this Python with
``SATMEM_NOTEBOOK_QUICK=1`` (each notebook's parameters cell shrinks its grid); the
notebooks' own asserts check their results, and every cell that shows a figure must have left
a PNG among its outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("*.py"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
SYNC = "run `.venv/bin/jupytext --sync notebooks/{name}.py` (the newer of the pair wins)"


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_every_notebook_is_a_py_ipynb_pair():
    assert SOURCES, "notebooks/ holds no notebooks"
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebook_pair_in_sync(path):
    source = jupytext.read(path)
    nb = nbformat.read(path.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(nb)
    assert source.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert _cells(nb) == _cells(source), SYNC.format(name=path.stem)
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    stored = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (
        c.outputs or c.execution_count is not None)]
    assert not stored, (f"{path.stem}.ipynb cells {stored} hold outputs: commit it without them "
                        "(`make notebooks` writes executed copies under runs/notebooks/)")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", ())]
    assert len(params) == 1 and "SATMEM_NOTEBOOK_QUICK" in params[0].source


def test_kernel_is_this_python():
    """The ``python3`` kernel the notebooks name starts this interpreter (the venv's): ipykernel
    installs its spec with ``python``, which jupyter_client replaces by ``sys.executable``."""
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    assert spec.language == "python"
    km = KernelManager(kernel_name=KERNEL)
    assert km.format_kernel_cmd()[0] == sys.executable


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_a_kernel(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SATMEM_NOTEBOOK_QUICK", "1")
    # the inline backend sends figures to the notebook as PNG (a caller's Agg would not)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=KERNEL, timeout=600,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / path.name)  # the executed notebook, to look at on failure
    plots = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "plt.show()" in
             c.source]
    assert plots, f"{path.stem} draws no figure"
    for i in plots:
        pngs = [o for o in nb.cells[i].outputs if "image/png" in o.get("data", {})]
        assert len(pngs) == 1, f"{path.stem} cell {i}: {len(pngs)} PNG outputs, expected 1"
        assert pngs[0]["data"]["image/png"].startswith("iVBORw0KGgo")  # base64 of the PNG magic
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
