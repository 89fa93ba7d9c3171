"""Benchmark the explorer: page load, and a drawn stroke to every model's picture on screen.

    python scripts/bench_explore.py                       # a fresh grid on the bundled sample
    python scripts/bench_explore.py results               # a grid you trained (its first dataset)
    python scripts/bench_explore.py results --screenshot docs/explore.png

Needs Chromium and chromedriver for the in-page timings (Debian: apt-get install
chromium chromium-driver); without them only the server is timed. Prints the
medians and writes bench-results/bench-explore.json. The logic lives in
minae.tools.explore_bench.
"""

import argparse
import tempfile

from minae.tools import bench, explore_bench


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", nargs="?", help="a grid's --out folder (default: train the nine original "
                   "models for one epoch on the bundled sample, in a temporary folder)")
    p.add_argument("--data-dir", help="where the grid's data are, if not found as the grid found them")
    p.add_argument("--strokes", type=int, default=10, help="strokes drawn (default %(default)s)")
    p.add_argument("--loads", type=int, default=5, help="page loads timed (default %(default)s)")
    p.add_argument("--trips", type=int, default=50, help="requests timed from Python (default %(default)s)")
    p.add_argument("--screenshot", metavar="PNG", help="also save the Draw view, a digit drawn, as a PNG")
    p.add_argument("--out", default="bench-results/bench-explore.json",
                   help="JSON output (default %(default)s)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="minae-bench-explore-") as scratch:
        results = args.results_dir or explore_bench.sample_results(scratch, limit_train=5000, limit_val=1000)
        print(f"# minae explorer benchmark on the grid in {args.results_dir or 'a fresh folder (sample)'}")
        payload = explore_bench.run(results, strokes=args.strokes, loads=args.loads, trips=args.trips,
                                    data_dir=args.data_dir)
        if args.screenshot:
            print(f"screenshot: {explore_bench.screenshot(results, args.screenshot, data_dir=args.data_dir)}")
    bench.write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
