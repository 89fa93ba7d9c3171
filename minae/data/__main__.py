"""``python -m minae.data``: pre-fetch datasets and say where each would load from."""

import argparse
import sys

from minae.data import DATASETS, cache_root, download, where
from minae.errors import MinaeError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minae.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="download and verify datasets into the user cache")
    get.add_argument("names", nargs="+", choices=list(DATASETS))
    get.add_argument("--timeout", type=float, default=30.0, help="seconds before a stalled mirror is skipped")
    show = sub.add_parser("where", help="say where each dataset would be loaded from")
    show.add_argument("names", nargs="*", help=f"default: all of {', '.join(DATASETS)}")
    show.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            for name in args.names:
                folder = download(name, cache_root() / name, timeout=args.timeout, progress=True)
                print(f"{name}: verified in {folder}")
        else:
            for name in args.names or DATASETS:
                print(where(name, args.data_dir))
    except (MinaeError, ValueError, OSError) as exc:   # each names the dataset or the file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
