"""The main job: the full autoencoder grid, ranked, plotted and reported.

    python scripts/grid.py                 # the original experiment
    python scripts/grid.py --quick         # about a minute
    python scripts/grid.py --help          # every flag

All the logic lives in minae.grid, where tests reach it.
"""

import sys

from minae.grid.cli import main

if __name__ == "__main__":
    sys.exit(main())
