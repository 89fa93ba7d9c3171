"""The README's Python example runs as written, and its commands name real things."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_quickstart_is_two_commands_and_ci_runs_the_second():
    quick = README[README.index("## Quickstart"):README.index("\n## ", README.index("## Quickstart") + 5)]
    commands = [line.strip() for line in quick.splitlines() if line.startswith("    ")]
    assert commands == ['pip install -e . && python scripts/grid.py',
                        'pip install -e ".[dev]" && python -m pytest']
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_every_script_and_tutorial_named_exists():
    for name in set(re.findall(r"(?:scripts|tutorials)/[\w.]+\.(?:py|sh)", README)):
        assert (ROOT / name).is_file(), name
