"""The command line of the grid: ``python scripts/grid.py`` (or ``python -m minae.grid``):
flags -> GridConfig -> ``run_grid``, which trains, ranks and reports.

Presets are resolved here, in one place: an explicit flag always wins over
``--keras`` or ``--quick``, which win over the defaults (GridConfig's, the
write-up's settings). Every value is checked by GridConfig.validate.

Exit codes: 0 every run finished (ok, collapsed or diverged are results of
training); 1 the grid finished but some runs failed (named in a summary
line; the rest are reported); 2 a bad flag, bad data or an error that
stopped the grid; 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (its terminal closed; finished
runs are kept).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import warnings

from tqdm.auto import tqdm

from minae.backend import BACKENDS, cupy_available
from minae.data.registry import DATASETS
from minae.errors import STOP_SIGNALS, MinaeError, Terminated
from minae.grid.config import ENGINES, KERAS_ADAM, GridConfig, parse_hidden
from minae.grid.schedule import run_grid
from minae.optim import FORMS

PROG = "python scripts/grid.py"
EXIT_OK, EXIT_FAILED_RUNS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130   # a signal N: 128 + N
# The flags that decide results take their defaults from GridConfig: one source.
DEFAULTS = {name: getattr(GridConfig(), name) for name in (
    "datasets", "hidden", "lrs", "epochs", "batch_size", "beta1", "beta2", "eps", "adam_form", "seed",
    "seeds", "limit_train", "limit_val", "out")}
# The original notebooks ran Keras' Adam: where its defaults differ from the grid's
# (only beta2: the write-up says 0.99), --keras takes them.
KERAS = {name: value for name, value in dict(beta1=KERAS_ADAM["beta1"], beta2=KERAS_ADAM["beta2"],
                                             eps=KERAS_ADAM["eps"], adam_form=KERAS_ADAM["form"]).items()
         if value != DEFAULTS[name]}
# A first look in under a minute, in a folder of its own so that it never
# replaces the report of a full grid.
QUICK = dict(epochs=10, limit_train=5000, limit_val=1000, out=f"{DEFAULTS['out']}-quick")


def usable_cores():
    """Cores this process may run on (respects CPU affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def _hidden(text):
    try:
        return parse_hidden(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train every (dataset, hidden layers, learning rate) autoencoder, rank them by "
                    "validation BCE, and write a report with figures. With no flags: the original "
                    "experiment (MNIST and Fashion-MNIST, 3 depths x 3 learning rates, 100 epochs).",
        epilog="Exit codes: 0 every run finished; 1 some runs failed (the summary names them); 2 an "
               "error stopped the grid; 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (finished runs are kept).")
    g = p.add_argument_group("the experiment")
    g.add_argument("--datasets", nargs="+", metavar="NAME",
                   help=f"default: {' '.join(DEFAULTS['datasets'])} (known: {', '.join(DATASETS)})")
    g.add_argument("--hidden", nargs="+", type=_hidden, metavar="SPEC",
                   help="hidden widths, e.g. 128,64,32,64,128 (default: "
                        + " ".join(_spec(h) for h in DEFAULTS["hidden"]) + ")")
    g.add_argument("--lrs", nargs="+", type=float, metavar="LR",
                   help=f"default: {' '.join(map(str, DEFAULTS['lrs']))}")
    g.add_argument("--epochs", type=int, help=f"default {DEFAULTS['epochs']}")
    g.add_argument("--batch-size", type=int, help=f"default {DEFAULTS['batch_size']}")
    g.add_argument("--beta1", type=float, help=f"Adam beta1 (default {DEFAULTS['beta1']})")
    g.add_argument("--beta2", type=float, help=f"Adam beta2 (default {DEFAULTS['beta2']}, as the write-up; "
                   f"--keras: {KERAS_ADAM['beta2']})")
    g.add_argument("--eps", type=float, help=f"Adam epsilon (default {DEFAULTS['eps']:g}, Keras')")
    g.add_argument("--adam-form", choices=FORMS, help=f"where eps enters (default {DEFAULTS['adam_form']})")
    g.add_argument("--seed", type=int,
                   help=f"grid seed; each run's seed derives from it (default {DEFAULTS['seed']})")
    g.add_argument("--seeds", type=int, metavar="N",
                   help=f"train every configuration N times, each with its own seed, and rank by the mean "
                        f"with 95%% confidence intervals (default {DEFAULTS['seeds']})")
    g.add_argument("--keras", action="store_true",
                   help="the original notebooks' Keras Adam: sets " + _settings(KERAS)
                        + " (its other settings, " + _settings({k: DEFAULTS[k] for k in (
                            "beta1", "eps", "adam_form") if k not in KERAS}) + ", are the defaults already)")
    g.add_argument("--quick", action="store_true",
                   help=f"a fast preset: {QUICK['epochs']} epochs on {QUICK['limit_train']} train / "
                        f"{QUICK['limit_val']} val images (under a minute), written to {QUICK['out']}/ "
                        "unless --out is given")
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", help="folder with the IDX files (or <dir>/<name>/); see README, Data")
    d.add_argument("--require-full", action="store_true", help="fail instead of using the bundled sample")
    d.add_argument("--limit-train", type=int, help="train on a seeded subset of N images")
    d.add_argument("--limit-val", type=int, help="validate on a seeded subset of N images")
    d.add_argument("--val-fraction", type=float,
                   help="carve validation out of the training split instead of the official test split")
    r = p.add_argument_group("running")
    r.add_argument("--backend", choices=BACKENDS, default=GridConfig().backend,
                   help=f"default {GridConfig().backend}")
    r.add_argument("--jobs", type=int,
                   help="parallel worker processes (default: number of cores on numpy, 1 on cupy)")
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="run every run as a task on a Dask cluster: a scheduler address such as "
                        "tcp://host:8786, or 'local' for a LocalCluster of --jobs workers (needs "
                        "pip install 'minae[distributed]')")
    r.add_argument("--scheduler-timeout", type=float, default=GridConfig().scheduler_timeout,
                   metavar="SECONDS", help="how long to try to reach the scheduler (default %(default)s)")
    r.add_argument("--engine", choices=ENGINES, default=GridConfig().engine,
                   help="how runs are trained, all with minae's layers: single (each run alone, the "
                        "default), stacked (all learning rates of an architecture at once), fused (the "
                        "loss and Adam as CUDA kernels; needs --backend cupy)")
    r.add_argument("--out", help=f"output folder (default {DEFAULTS['out']}/, with --quick {QUICK['out']}/)")
    r.add_argument("--fresh", action="store_true", help="retrain even runs already finished in --out")
    r.add_argument("--no-plots", action="store_true", help="skip the figures")
    r.add_argument("--live", action="store_true",
                   help="show each run in progress in a window (with --jobs 1; see minae.live)")
    r.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard logs of every run to <out>/tensorboard/ (needs "
                        "pip install 'minae[tensorboard]'); view: tensorboard --logdir <out>/tensorboard")
    r.add_argument("--quiet", action="store_true",
                   help="no progress bars or log lines; notes (a report replaced, a saved run trained "
                        "again and why, a stale lock taken over) still show")
    return p


def _settings(values):
    return ", ".join(f"{k.replace('_', '-')} {v}" for k, v in values.items())


def config_from_args(args, notes=None):
    """Resolve presets and defaults into a validated GridConfig.

    notes: an optional list that collects sentences worth telling the user
    (values given twice, dropped).
    """
    values = dict(DEFAULTS)
    if args.quick:
        values.update(QUICK)
    if args.keras:
        values.update(KERAS)
    for name in DEFAULTS:
        given = getattr(args, name)
        if given is not None:
            values[name] = tuple(given) if isinstance(given, list) else given
    one_layer_each = args.hidden and len(args.hidden) > 1 and all(len(spec) == 1 for spec in args.hidden)
    if one_layer_each and notes is not None:
        # "--hidden 128 64" reads as two models of one layer each: often meant as 128,64.
        notes.append(f"note: --hidden {' '.join(_spec(h) for h in args.hidden)} names {len(args.hidden)} "
                     "architectures of one hidden layer each; the widths of one architecture are separated "
                     f"by commas ({','.join(_spec(h) for h in args.hidden)})")
    for name in ("datasets", "hidden", "lrs"):   # the same run twice would be ranked twice
        unique = tuple(dict.fromkeys(values[name]))
        if len(unique) < len(values[name]) and notes is not None:
            twice = sorted({v for v in values[name] if values[name].count(v) > 1}, key=str)
            notes.append(f"note: --{name} names {', '.join(map(_spec, twice))} more than once; "
                         "each is trained once")
        values[name] = unique
    jobs = args.jobs
    if jobs is None:
        # Worker processes pay on the CPU; one process feeds a GPU best.
        on_cpu = args.backend == "numpy" or (args.backend == "auto" and not cupy_available())
        jobs = usable_cores() if on_cpu and not args.live else 1   # --live: one run at a time
    quiet = args.quiet or not sys.stderr.isatty()
    config = GridConfig(**values, backend=args.backend, data_dir=args.data_dir,
                        require_full=args.require_full, val_fraction=args.val_fraction, jobs=jobs,
                        fresh=args.fresh, plots=not args.no_plots, quiet=quiet, engine=args.engine,
                        scheduler=args.scheduler, scheduler_timeout=args.scheduler_timeout,
                        tensorboard=args.tensorboard, live=args.live)
    config.validate()
    return config


def _spec(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def main(argv=None, prog=PROG):
    parser = build_parser(prog)
    args = parser.parse_args(_negative_numbers_as_values(parser, sys.argv[1:] if argv is None else argv))
    notes = []
    try:
        config = config_from_args(args, notes)
    except ValueError as exc:
        parser.error(str(exc))
    say = _notes_only if args.quiet else tqdm.write
    for note in notes:
        print(note, file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = f"{prog} " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    previous = {s: signal.signal(s, _terminate) for s in _stop_signals()}
    shown = warnings.showwarning
    # A warning is one line of its own text, never a line of minae's source.
    warnings.showwarning = lambda message, category, *rest, **kw: print(
        f"{category.__name__}: {message}", file=sys.stderr)
    try:
        result = run_grid(config, log=say, command=command.strip())
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        try:   # after SIGHUP the terminal may be gone: the runs are saved all the same
            print(f"\n{what}: finished runs are saved in {config.out}/runs; run the same command "
                  "again to train only what is missing", file=sys.stderr)
        except OSError:
            pass
        return 128 + exc.signum if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except (MinaeError, ValueError, OSError, MemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        warnings.showwarning = shown
    failed = [r for r in result.records if r["status"] == "failed"]
    if failed:
        print(f"error: {len(failed)} of {len(result.records)} runs failed ("
              + "; ".join(f"{r['dataset']} {_spec(tuple(r['hidden']))} lr={r['lr']:g}" for r in failed[:5])
              + (" ..." if len(failed) > 5 else "") + f"); their errors are in {config.out}/REPORT.md. "
              "Run the same command again to retry only them", file=sys.stderr)
        return EXIT_FAILED_RUNS
    return EXIT_OK


def _notes_only(message):
    """The log under --quiet: only the notes, the things the grid did that nobody asked for."""
    if message.startswith("note:"):
        tqdm.write(message)


def _negative_numbers_as_values(parser, argv):
    """argv, with a negative number given to a numeric flag made a value.

    argparse knows '-1' and '-.5' as numbers but takes '-1e-7' or '-inf' for an
    unknown flag, so `--eps -1e-7` said "expected one argument" instead of why
    -1e-7 is refused. A leading space makes such a token a value; int() and
    float() ignore it. Values of other flags (a folder named '-1') are left alone.
    """
    # argparse keeps its actions only in this attribute (no public accessor).
    numeric = {s for a in parser._actions if a.type in (int, float) for s in a.option_strings}
    out, flag = [], None
    for token in argv:
        if token.startswith("-") and not _is_number(token):
            flag = token.split("=", 1)[0]
        elif flag in numeric and token.startswith("-"):
            token = " " + token
        out.append(token)
    return out


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _stop_signals():
    """SIGTERM, and SIGHUP (the terminal closed), end the grid like Ctrl-C; a SIGHUP
    that nohup made the grid ignore stays ignored."""
    return tuple(s for s in STOP_SIGNALS if s == signal.SIGTERM or signal.getsignal(s) != signal.SIG_IGN)


def _terminate(signum, frame):
    raise Terminated(signum)


if __name__ == "__main__":
    sys.exit(main())
