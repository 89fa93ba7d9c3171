"""Tutorial 12 (the code space, the explorer's functions as static figures) runs headless
and fast, every expectation it states holds, and it opens as a notebook."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "12_explorer.py"


def test_tutorial_12_runs_and_its_expectations_hold(tmp_path):
    env = dict(os.environ, MINAE_TUTORIAL_FAST="1", MINAE_TUTORIAL_FIGURES=str(tmp_path), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(TUTORIAL)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert done.stdout.count("  ok   ") == 7 and "  FAIL " not in done.stdout, output[-3000:]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "12_code_plane.png", "12_interpolation.png", "12_plane_decoded.png"]


def test_tutorial_12_opens_as_a_notebook():
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (pip install jupytext)")
    notebook = jupytext.read(TUTORIAL, fmt="py:percent")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and kinds.count("code") >= 4 and kinds.count("markdown") >= 4
