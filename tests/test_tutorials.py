"""Every tutorial runs, headless and fast, and every expectation it states holds."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9][0-9]_*.py"))


def test_the_tutorials_are_numbered_one_to_ten():
    assert [int(p.name[:2]) for p in TUTORIALS] == list(range(1, 11))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_and_its_expectations_hold(path, tmp_path):
    env = dict(os.environ, MINAE_TUTORIAL_FAST="1", MINAE_TUTORIAL_FIGURES=str(tmp_path), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "  ok   " in done.stdout and "  FAIL " not in done.stdout, output[-3000:]


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_opens_as_a_notebook(path):
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install jupytext)")
    notebook = jupytext.read(path, fmt="py:percent")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and kinds.count("code") >= 2 and kinds.count("markdown") >= 2


def test_tutorial_10_runs_as_a_notebook_and_its_live_view_draws(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install jupytext)")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed: no kernel to run the notebook")
    path = next(p for p in TUTORIALS if p.name.startswith("10_"))
    notebook = jupytext.read(path, fmt="py:percent")
    monkeypatch.setenv("MINAE_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINAE_TUTORIAL_FIGURES", str(tmp_path))
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "  ok   " in text and "  FAIL " not in text, text[-3000:]
    live_figures = [o for o in outputs
                    if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    assert len(live_figures) >= 2, "the live view drew in place, once per run"
