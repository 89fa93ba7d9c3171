"""What decides a grid's results: its settings, each run's identity, the checks.

What it teaches: an experiment you can trust is one whose every result is
tied to the exact settings that produced it. Each run is identified by a key
hashed from its full settings (model, optimizer, the data's source and a
digest of its content); rerunning the same command finds a finished run by
that key, and any change, to a setting or to a pixel of the data, is a new
run. Every run's seed derives from (seed, dataset, hidden, lr).

``GridConfig`` holds the defaults (the original experiment) and validates
every value in one place; the command line (minae.grid.cli) takes its
defaults from it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass

from minae.backend import BACKENDS, DTYPES
from minae.checks import physical_memory, positive_int
from minae.checks import seed as check_seed
from minae.data.registry import SIDE, get_info
from minae.optim import FORMS, Adam, check_lr
from minae.train import fit

ORIGINAL_HIDDEN = ((32, 16, 32), (64, 32, 16, 32, 64), (128, 64, 32, 64, 128))
ORIGINAL_LRS = (0.1, 0.01, 0.001)
ORIGINAL_DATASETS = ("mnist", "fashion-mnist")
ENGINES = ("single", "stacked", "fused")
# The most runs one grid plans: the original grid is 18 runs, and 10,000 of its
# smallest runs take days; more is a slip (--seeds 12345 for --seed 12345) that
# would otherwise plan for minutes and train for years.
MAX_RUNS = 10_000
# Adam's own defaults are Keras' (minae.optim.Adam states them); the write-up's
# beta2 is the one setting where the grid's default differs from them.
KERAS_ADAM = {name: p.default for name, p in inspect.signature(Adam).parameters.items()
              if name in ("beta1", "beta2", "eps", "form")}
WRITE_UP_BETA2 = 0.99
# fit's defaults are the original experiment's 100 epochs of batch 256: stated there.
_FIT = inspect.signature(fit).parameters


@dataclass(frozen=True)
class GridConfig:
    """Everything that decides the grid's results, plus how to run it."""

    datasets: tuple = ORIGINAL_DATASETS
    hidden: tuple = ORIGINAL_HIDDEN
    lrs: tuple = ORIGINAL_LRS
    epochs: int = _FIT["epochs"].default
    batch_size: int = _FIT["batch_size"].default
    beta1: float = KERAS_ADAM["beta1"]
    beta2: float = WRITE_UP_BETA2    # as the write-up states; --keras: Adam's (Keras') own
    eps: float = KERAS_ADAM["eps"]
    adam_form: str = KERAS_ADAM["form"]
    seed: int = 0
    seeds: int = 1               # repeats of every configuration, each with its own seed
    dtype: str = "float32"
    backend: str = "numpy"
    data_dir: str | None = None
    require_full: bool = False
    limit_train: int | None = None
    limit_val: int | None = None
    val_fraction: float | None = None
    out: str = "results"
    jobs: int = 1
    scheduler: str | None = None     # a Dask scheduler address, "local", or None (this machine)
    scheduler_timeout: float = 10.0  # seconds to reach the scheduler
    fresh: bool = False
    plots: bool = True
    quiet: bool = False
    tensorboard: bool = False        # TensorBoard logs of every run under <out>/tensorboard/
    live: bool = False               # show the run in progress (minae.live), one run at a time
    # How runs are trained; every engine runs the layers of minae.layers:
    # "single" = each run alone with fit (the default); "stacked" = every
    # learning rate of an architecture in one stack (minae.sweep); "fused" =
    # fit with the loss and Adam as CUDA kernels (minae.kernels; CuPy only).
    engine: str = "single"

    def __post_init__(self):
        # Numbers normalised once, before anything hashes them: lrs=(1,) and (1.0,) or
        # an np.float64 are the same runs, with the same seeds and keys.
        def real(v):
            return float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else v

        def integral(v):
            return int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v

        # Only sequences are normalised; anything else stays as given for validate to name.
        normal = {"datasets": _tuple(self.datasets), "lrs": _tuple(self.lrs, real),
                  "hidden": _tuple(self.hidden, lambda spec: _tuple(spec, integral))}
        for name in ("beta1", "beta2", "eps", "scheduler_timeout"):
            normal[name] = real(getattr(self, name))
        for name in ("epochs", "batch_size", "seed", "seeds", "jobs", "limit_train", "limit_val"):
            normal[name] = integral(getattr(self, name))
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def validate(self):
        """Raise ValueError for any bad setting, naming its flag, before anything is trained.

        The one place the grid's values are checked (the CLI parses only types);
        each check is the library's own (positive_int, check_lr, Adam's).
        """
        for flag, value, example in (("--datasets", self.datasets, "('mnist', 'fashion-mnist')"),
                                     ("--hidden", self.hidden, "((32, 16, 32), (64, 32, 16, 32, 64))"),
                                     ("--lrs", self.lrs, "(0.1, 0.01)")):
            if not isinstance(value, tuple):
                raise ValueError(f"{flag}: give a list, e.g. {example}; got {value!r}")
        if not self.datasets:
            raise ValueError("--datasets: give at least one dataset")
        for name in self.datasets:
            _flag("--datasets", get_info, name)
        if not self.hidden:
            raise ValueError("--hidden: give at least one hidden-layer spec")
        for spec in self.hidden:
            if not isinstance(spec, tuple):
                raise ValueError(f"--hidden: each spec is a list of layer widths, e.g. (32, 16, 32); "
                                 f"got {spec!r}")
            if not spec:
                raise ValueError("--hidden: a spec is empty; write e.g. 128,64,32,64,128")
            for h in spec:
                _flag("--hidden", positive_int, h, "a layer width")
        if not self.lrs:
            raise ValueError("--lrs: give at least one learning rate")
        for lr in self.lrs:
            _flag("--lrs", check_lr, lr)
        if self.adam_form not in FORMS:
            raise ValueError(f"--adam-form: unknown Adam form {self.adam_form!r}; choose one of {FORMS}")
        Adam(self.lrs[0], self.beta1, self.beta2, self.eps, self.adam_form)   # names beta1, beta2, eps
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"--backend: unknown backend {self.backend!r}; choose one of {BACKENDS}")
        check_seed(self.seed, "--seed")
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size),
                            ("--jobs", self.jobs), ("--seeds", self.seeds)):
            _flag(flag, positive_int, value, "it")
        for flag, value in (("--limit-train", self.limit_train), ("--limit-val", self.limit_val)):
            if value is not None:   # None: the whole split
                _flag(flag, positive_int, value, "it")
        n_runs = len(self.datasets) * len(self.hidden) * len(self.lrs) * self.seeds
        if n_runs > MAX_RUNS:
            raise ValueError(f"this grid would be {n_runs:,} runs ({len(self.datasets)} x {len(self.hidden)} "
                             f"x {len(self.lrs)} x {self.seeds}: datasets x architectures x learning rates "
                             f"x --seeds), more than the {MAX_RUNS:,} one grid runs. --seeds is how many "
                             "times each setting trains (--seed is the grid's seed); split a larger grid "
                             "into several --out folders")
        if self.seeds > 1 and importlib.util.find_spec("scipy") is None:
            raise ValueError(f"--seeds {self.seeds} ranks by mean with confidence intervals, computed with "
                             "SciPy, which is not installed: pip install 'minae[stats]'")
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        if self.engine not in ENGINES:
            raise ValueError(f"--engine: unknown engine {self.engine!r}; choose one of {ENGINES}")
        if self.scheduler is not None and self.engine == "stacked":
            raise ValueError("--scheduler sends single runs to the cluster; the stacked engine trains "
                             "stacks in this process: use one or the other")
        if self.live and (self.jobs != 1 or self.scheduler is not None or self.engine == "stacked"):
            raise ValueError("--live shows the run in progress, one at a time: use it with --jobs 1, "
                             "without --scheduler, and not with the stacked engine")
        if self.tensorboard and importlib.util.find_spec("tensorboardX") is None:
            raise ValueError("--tensorboard writes its logs with tensorboardX, which is not installed: "
                             "pip install 'minae[tensorboard]'")
        if self.scheduler is not None and importlib.util.find_spec("distributed") is None:
            raise ValueError("--scheduler runs the grid on Dask's distributed scheduler, which is not "
                             "installed here: pip install 'minae[distributed]'")
        if not (isinstance(self.scheduler_timeout, float) and math.isfinite(self.scheduler_timeout)
                and self.scheduler_timeout > 0):
            raise ValueError(f"--scheduler-timeout must be a finite number of seconds > 0, "
                             f"got {self.scheduler_timeout!r}")
        if not isinstance(self.out, (str, os.PathLike)) or not str(self.out).strip():
            raise ValueError(f"--out must name a folder, got {self.out!r}; the default is {GridConfig.out}/")
        if self.scheduler is not None and not (isinstance(self.scheduler, str) and self.scheduler.strip()):
            raise ValueError("--scheduler must be a scheduler's address, such as tcp://host:8786, or "
                             f"'local'; got {self.scheduler!r}")
        for spec in self.hidden:
            check_memory(spec, self.batch_size, self.dtype)


def _tuple(value, each=lambda v: v):
    """A list or tuple (or NumPy array) as a tuple, ``each`` applied to its items; anything else
    (a string, a number) unchanged, for validate to refuse with its flag's name."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "tolist"):
        return value
    return tuple(each(v) for v in value)


def _flag(flag, check, *args):
    """Run a library check; its ValueError then names the flag."""
    try:
        return check(*args)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def run_memory_bytes(hidden, batch_size, dtype="float32", input_dim=SIDE * SIDE):
    """About how many bytes one run needs, as (for the weights, for one batch): the
    parameters, gradients, Adam's two moments and two scratch arrays (6 copies),
    and one batch's activations, gradients and loss buffers."""
    sizes = [input_dim, *hidden, input_dim]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    width = 8 if dtype == "float64" else 4
    return width * 6 * params, width * 4 * batch_size * sum(sizes)


def check_memory(hidden, batch_size, dtype="float32"):
    """Refuse a run that cannot fit in this machine's memory, before allocating it,
    naming the flag that asks for too much."""
    weights, batch = run_memory_bytes(hidden, batch_size, dtype)
    have = physical_memory()
    if have is not None and weights + batch > have:
        spec = ",".join(map(str, hidden))
        culprit = (f"--hidden {spec} needs about {weights / 2**30:,.0f} GiB for its weights"
                   if weights >= batch else
                   f"--batch-size {batch_size} needs about {batch / 2**30:,.0f} GiB for one batch's "
                   f"activations (with --hidden {spec})")
        raise ValueError(f"{culprit}, but this machine has {have / 2**30:,.0f} GiB; "
                         + ("choose narrower layers" if weights >= batch else "choose a smaller batch"))


def parse_hidden(text):
    """'128,64,32' -> (128, 64, 32), with a clear error for anything else."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"cannot read hidden-layer spec {text!r}: write widths separated by commas, "
                         "e.g. 128,64,32,64,128") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"hidden-layer spec {text!r} has a width below 1")
    return sizes


def run_seed(seed, dataset, hidden, lr, repeat=0):
    """A seed for one run, derived from the grid seed and the run's identity.

    repeat: which of ``--seeds N`` repeats (0 .. N-1); repeat 0 has the seed
    a grid without repeats always had, so its results and key do not change.
    """
    text = f"{seed}|{dataset}|{','.join(map(str, hidden))}|{lr!r}" + (f"|{repeat}" if repeat else "")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@dataclass(frozen=True)
class DataSummary:
    """What a run needs to know about its data (the arrays travel separately)."""

    name: str
    source: str
    location: str
    n_train: int
    n_val: int
    canonical: bool
    notes: tuple = ()
    digest: str = ""
    files: tuple = ()   # ((path, SHA-256 of its content), ...) of the files read

    @classmethod
    def of(cls, ds):
        return cls(ds.name, ds.source, ds.location, len(ds.x_train), len(ds.x_val), ds.canonical,
                   tuple(ds.notes), ds.digest, tuple(ds.files))


def run_settings(config, data, hidden, lr, backend, repeat=0):
    """The full settings of one run; their hash is the run's key.

    backend: the resolved backend name ("numpy" or "cupy", never "auto").
    repeat:  which repeat of ``--seeds``; only repeats after the first carry
             it, so a grid of one seed keeps the keys it always had.
    """
    settings = {
        "dataset": data.name, "hidden": list(hidden), "lr": lr, "epochs": config.epochs,
        "batch_size": config.batch_size, "beta1": config.beta1, "beta2": config.beta2,
        "eps": config.eps, "adam_form": config.adam_form, "grid_seed": config.seed,
        "seed": run_seed(config.seed, data.name, hidden, lr, repeat), "dtype": config.dtype,
        "backend": backend, "n_train": data.n_train, "n_val": data.n_val,
        "data_source": data.source, "data_sha256": data.digest,
        "limit_train": config.limit_train, "limit_val": config.limit_val,
        "val_fraction": config.val_fraction,
    }
    if repeat:
        settings["repeat"] = repeat
    return settings


def settings_key(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
