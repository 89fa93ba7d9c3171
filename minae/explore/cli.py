"""``python -m minae.explore [RESULTS_DIR]`` (also ``minae-explore``): load a grid, serve, open the page."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from minae.errors import MinaeError
from minae.explore.explorer import Explorer
from minae.explore.server import LOOPBACK, ExplorerServer
from minae.grid.cli import QUICK
from minae.grid.config import GridConfig
from minae.grid.outputs import RESULTS_FILE


def default_results():
    """The full grid's folder if it holds results, else --quick's: where a grid run with
    its defaults left them."""
    for folder in (GridConfig.out, QUICK["out"]):
        if (Path(folder) / RESULTS_FILE).is_file():
            return folder
    return GridConfig.out


def build_parser(prog="minae-explore"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Explore a grid's models in the browser: draw and see every model's reconstruction, "
                    "walk their code spaces, look at their units, train a model live.")
    p.add_argument("results_dir", nargs="?",
                   help=f"the grid's --out folder, holding {RESULTS_FILE} (default: {GridConfig.out}, or "
                        f"{QUICK['out']} where only --quick has run)")
    p.add_argument("--data-dir", help="where the grid's data are, if not found as the grid found them")
    p.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    p.add_argument("--host", default=LOOPBACK[0],
                   help="address to serve on (default %(default)s: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="print the address; open no browser")
    return p


def main(argv=None, prog="minae-explore"):
    args = build_parser(prog).parse_args(argv)
    args.results_dir = args.results_dir or default_results()
    if not 0 <= args.port <= 65535:
        sys.exit(f"error: --port must be from 0 to 65535, got {args.port}")
    print(f"loading the grid in {args.results_dir} ...", flush=True)
    try:
        explorer = Explorer(args.results_dir, args.data_dir)
    except (OSError, ValueError, MinaeError) as exc:
        sys.exit(f"error: {exc}")
    try:
        server = ExplorerServer(explorer, args.host, args.port)
    except OSError as exc:   # an address this machine does not have, a port in use
        sys.exit(f"error: cannot serve on {args.host} port {args.port} ({exc.strerror or exc}); choose "
                 "another --host or --port")
    if args.host not in LOOPBACK:
        print(f"WARNING: serving on {args.host}: anyone who can reach this machine on port {server.port} can "
              "use the explorer and start trainings on it", file=sys.stderr)
    refused = [run for run in explorer.runs.values() if run.problem]
    print(f"{len(explorer.runs) - len(refused)} models loaded"
          + (f", {len(refused)} refused (the page says why)" if refused else "")
          + f". The explorer is at {server.url}  (Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
