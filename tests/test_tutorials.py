"""Every tutorial runs, headless, and every expectation it states holds.

The default run (``python -m pytest``) runs each tutorial in fast mode
(MINAE_TUTORIAL_FAST=1: less data, fewer epochs and seeds). The full runs,
what a reader gets from ``python tutorials/NN_name.py``, are marked slow:

    python -m pytest -m slow tests/test_tutorials.py

Each tutorial runs in a fresh interpreter against this checkout's minae
(PYTHONPATH starts with the repository root), never an installed copy.
tests/test_tutorials_claims.py shows that each claim can fail.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def tutorial_env(fast, figures):
    """The environment a tutorial runs in: this checkout's minae first, figures in a temporary folder."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, MINAE_TUTORIAL_FAST="1" if fast else "0", MINAE_TUTORIAL_FIGURES=str(figures),
                MPLBACKEND="Agg", PYTHONPATH=path)


def run_tutorial(path, tmp_path, fast, timeout):
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          env=tutorial_env(fast, tmp_path), cwd=tmp_path, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "  ok   " in done.stdout and "  FAIL " not in done.stdout, output[-3000:]


def test_the_tutorials_are_numbered_from_one_without_gaps():
    numbers = [int(p.name[:2]) for p in TUTORIALS]
    assert numbers == list(range(1, len(TUTORIALS) + 1)) and len(numbers) >= 11


def test_a_tutorial_runs_this_checkouts_minae(tmp_path):
    probe = tmp_path / "which_minae.py"
    probe.write_text("import minae\nprint(minae.__file__)\n")
    done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True,
                          env=tutorial_env(True, tmp_path), cwd=tmp_path, timeout=60)
    assert Path(done.stdout.strip()).resolve() == (ROOT / "minae" / "__init__.py").resolve(), done.stderr


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_and_its_expectations_hold(path, tmp_path):
    run_tutorial(path, tmp_path, fast=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_full_run_and_its_expectations_hold(path, tmp_path):
    run_tutorial(path, tmp_path, fast=False, timeout=1800)


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_opens_as_a_notebook(path):
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install jupytext)")
    notebook = jupytext.read(path, fmt="py:percent")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and kinds.count("code") >= 2 and kinds.count("markdown") >= 2


def test_tutorial_11_runs_as_a_notebook_and_its_live_view_draws(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install jupytext)")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed: no kernel to run the notebook")
    path = next(p for p in TUTORIALS if p.name.startswith("11_"))
    notebook = jupytext.read(path, fmt="py:percent")
    for name, value in tutorial_env(True, tmp_path).items():
        if name.startswith("MINAE_") or name == "PYTHONPATH":
            monkeypatch.setenv(name, value)   # the kernel inherits them
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "  ok   " in text and "  FAIL " not in text, text[-3000:]
    live_figures = [o for o in outputs
                    if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    assert len(live_figures) >= 2, "the live view drew in place, once per run"
