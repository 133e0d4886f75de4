"""Execute every lab notebook with QUICK=1 and check they are committed without outputs."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_seven_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 8)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_quick(path, tmp_path, monkeypatch):
    needs_mnist = "mnist" in path.read_text()
    if needs_mnist:
        from conftest import has_mnist

        if not has_mnist():
            pytest.skip("MNIST not available offline")
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError on the first failing cell


def test_residual_memory_figure_returns_a_figure():
    # the unlearning notebook displays it; a None would show nothing
    from matplotlib.figure import Figure

    from tfmodelsec.plotting import close, residual_memory_figure

    fig = residual_memory_figure([0.3, 0.2, 0.2], {"a": 0.1, "h": 2.0, "b": 0.19, "t0": 0}, epsilon=0.1)
    assert isinstance(fig, Figure)
    close(fig)
