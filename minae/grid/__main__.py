"""``python -m minae.grid`` works like ``python scripts/grid.py``."""

import sys

from minae.grid.cli import main

sys.exit(main(prog="python -m minae.grid"))
