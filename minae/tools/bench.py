"""Benchmarks: minae against PyTorch eager and against the matmul bound.

What it teaches: how to time fairly. Contenders run interleaved (A, B, C, A,
B, C, ...) so that drifting machine load hits them all alike; each number is
the median of several one-epoch timings; every contender does the same work
(a shuffled epoch of Adam steps plus one validation pass) at the same thread
count. The "matmul bound" is the same step's matrix multiplies alone: no
implementation of this model can be faster than that.

About 300 lines: each contender (minae, the plain loop, the fused kernels,
PyTorch, the matmul bound) is written out in full, so that what is timed can
be read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minae._io import atomic_write_text
from minae.backend import resolve_backend
from minae.grid import ORIGINAL_HIDDEN, ORIGINAL_LRS, GridConfig, run_grid
from minae.model import Autoencoder
from minae.optim import Adam
from minae.train import fit, train_step


def plain_step(model, optimizer, xb, work=None):
    """The five-line loop of tutorial 8: every array allocated afresh, Adam over
    each parameter array in turn. The same math as train_step (same bits)."""
    loss, grads = model.loss(xb, check=False)
    optimizer.step(model.params, grads)
    return loss


def adam_settings():
    """The Adam every contender steps: the grid's (GridConfig's beta1, beta2,
    eps and form), at the grid's smallest learning rate."""
    grid = GridConfig()
    return dict(lr=min(grid.lrs), beta1=grid.beta1, beta2=grid.beta2, eps=grid.eps, form=grid.adam_form)


def pytorch(backend):
    """(torch, None) if PyTorch can run on ``backend``'s device, else (None, why not).

    The CuPy backend is compared with PyTorch on CUDA, which a CPU-only build
    of PyTorch does not have: then the comparison is skipped, not crashed.
    """
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed: the PyTorch comparison is skipped"
    if backend == "cupy" and not torch.cuda.is_available():
        return None, (f"PyTorch {torch.__version__} cannot use a CUDA GPU (torch.cuda.is_available() is "
                      "False): the PyTorch CUDA comparison is skipped")
    return torch, None


def torch_device(backend):
    """The PyTorch device that matches a minae backend."""
    return "cuda" if backend == "cupy" else "cpu"


def minae_epoch(hidden, x, x_val, backend, step="fit", batch_size=256, diagnostics=True):
    """A callable that trains one more epoch of minae and returns its seconds.

    step: "fit" (train_step: workspace and flat buffers), "plain" (plain_step)
    or "fused" (minae.kernels; CuPy only). diagnostics: fit's default, on.
    """
    be = resolve_backend(backend)
    x, x_val = be.asarray(x), be.asarray(x_val)
    model = Autoencoder(x.shape[1], hidden, seed=0, backend=be)
    adam = adam_settings()
    if step == "fused":
        from minae import kernels

        opt, step_fn = kernels.FusedAdam(**adam), kernels.train_step
    else:
        opt, step_fn = Adam(**adam), {"fit": train_step, "plain": plain_step}[step]
    epoch = [0]

    def run():
        epoch[0] += 1
        be.synchronize()
        start = time.perf_counter()
        fit(model, x, x_val, epochs=1, batch_size=batch_size, optimizer=opt, seed=epoch[0],
            progress=False, check_data=False, step=step_fn, diagnostics=diagnostics)
        be.synchronize()
        return time.perf_counter() - start

    return run


def torch_epoch(hidden, x, x_val, device="cpu", batch_size=256):
    """The same epoch in PyTorch eager: Linear+ReLU, BCEWithLogitsLoss, Adam."""
    import torch

    dev = torch.device(device)
    xt, xv = torch.from_numpy(x).to(dev), torch.from_numpy(x_val).to(dev)
    sizes = [x.shape[1], *hidden, x.shape[1]]
    layers = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(d_in, d_out), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1]).to(dev)
    adam = adam_settings()
    # PyTorch's Adam has one form, the textbook one; the Keras form puts eps
    # elsewhere, at the same cost per step, so the timings still compare.
    opt = torch.optim.Adam(net.parameters(), lr=adam["lr"], betas=(adam["beta1"], adam["beta2"]),
                           eps=adam["eps"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    n = len(xt)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def run():
        sync()
        start = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        total = torch.zeros((), device=dev)
        for i in range(0, n, batch_size):
            xb = xt[perm[i:i + batch_size]]
            loss = loss_fn(net(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(xb)
        with torch.no_grad():
            val = sum(loss_fn(net(xv[i:i + 1024]), xv[i:i + 1024]) * len(xv[i:i + 1024])
                      for i in range(0, len(xv), 1024)) / len(xv)
        float(total), float(val)   # read both, as minae does once per epoch
        sync()
        return time.perf_counter() - start

    return run


def matmul_epoch(hidden, n, d, backend, batch_size=256):
    """One epoch of just the step's matmuls (forward, dW, and dx but for layer 1)."""
    be = resolve_backend(backend)
    xp = be.xp
    rng = np.random.default_rng(0)
    sizes = [d, *hidden, d]
    W = [be.asarray(rng.standard_normal((a, b)), "float32") for a, b in zip(sizes[:-1], sizes[1:])]
    acts = [be.asarray(rng.standard_normal((batch_size, s)), "float32") for s in sizes]
    grads = [xp.empty_like(w) for w in W]
    douts = [be.asarray(rng.standard_normal((batch_size, s)), "float32") for s in sizes]
    steps = -(-n // batch_size)

    def run():
        be.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            for i, w in enumerate(W):
                xp.matmul(acts[i], w, out=acts[i + 1])
            for i in range(len(W) - 1, -1, -1):
                xp.matmul(acts[i].T, douts[i + 1], out=grads[i])
                if i > 0:
                    xp.matmul(douts[i + 1], W[i].T, out=douts[i])
        be.synchronize()
        return time.perf_counter() - start

    return run


def interleave(contenders, reps, warmup=1):
    """Run each contender ``warmup`` times, then ``reps`` rounds in turn."""
    for _ in range(warmup):
        for run in contenders.values():
            run()
    times = {name: [] for name in contenders}
    for _ in range(reps):
        for name, run in contenders.items():
            times[name].append(run())
    return times


def per_epoch(x, x_val, hidden_list, backend, threads, reps, log=print):
    """Median seconds per epoch of each contender, for each architecture."""
    torch, _ = pytorch(backend)
    device = torch_device(backend)
    if torch is not None and device == "cpu":
        torch.set_num_threads(threads)
    rows = []
    for hidden in hidden_list:
        contenders = {"minae": minae_epoch(hidden, x, x_val, backend),
                      "minae-no-diagnostics": minae_epoch(hidden, x, x_val, backend, diagnostics=False),
                      "minae-plain": minae_epoch(hidden, x, x_val, backend, step="plain"),
                      "matmul-bound": matmul_epoch(hidden, len(x), x.shape[1], backend)}
        if backend == "cupy":
            contenders["minae-fused"] = minae_epoch(hidden, x, x_val, backend, step="fused")
        if torch is not None:
            contenders["pytorch"] = torch_epoch(hidden, x, x_val, device)
        times = interleave(contenders, reps)
        medians = {k: statistics.median(v) for k, v in times.items()}
        row = {"hidden": list(hidden), "threads": threads, "median_s": medians, "all_s": times}
        if "pytorch" in medians:
            row["minae_over_pytorch"] = medians["minae"] / medians["pytorch"]
        row["minae_over_matmul"] = medians["minae"] / medians["matmul-bound"]
        row["diagnostics_cost"] = medians["minae"] / medians["minae-no-diagnostics"] - 1.0
        rows.append(row)
        log(format_epoch_row(row))
    return rows


def format_epoch_row(row):
    m = row["median_s"]
    text = (f"{','.join(map(str, row['hidden'])):>18} thr={row['threads']} minae {m['minae']:.3f}s "
            f"plain loop {m['minae-plain']:.3f}s matmul-bound {m['matmul-bound']:.3f}s")
    if "minae-fused" in m:
        text += f" fused {m['minae-fused']:.3f}s"
    if "pytorch" in m:
        text += f" pytorch {m['pytorch']:.3f}s  minae/pytorch {row['minae_over_pytorch']:.2f}"
    return text + (f"  minae/matmul {row['minae_over_matmul']:.2f}  diagnostics cost "
                   f"{100 * row['diagnostics_cost']:+.1f}%")


def grid_wall(ds, epochs, jobs, backend, hidden_list=ORIGINAL_HIDDEN, lrs=ORIGINAL_LRS, log=print,
              engines=("single", "stacked"), dask=False):
    """Wall time of minae's grid (each engine; with dask, also --scheduler local
    of ``jobs`` workers) vs PyTorch's nine models in a row; and, for the single
    engine, of the same grid run again, every run reused after its checkpoint is
    checked and evaluated again (minae.grid.reuse.load_checked)."""
    result = {"epochs": epochs, "jobs": jobs, "runs": len(hidden_list) * len(lrs), "engines": {}}
    contenders = {engine: {"engine": engine} for engine in engines}
    if dask:
        contenders["dask-local"] = {"engine": "single", "scheduler": "local"}
    for name, kwargs in contenders.items():
        with tempfile.TemporaryDirectory(prefix="minae-bench-") as out:
            config = GridConfig(datasets=(ds.name,), hidden=tuple(hidden_list), lrs=tuple(lrs), epochs=epochs,
                                backend=backend, jobs=jobs, out=out, fresh=True, plots=False, quiet=True,
                                **kwargs)
            start = time.perf_counter()
            run_grid(config, {ds.name: ds}, log=lambda msg: None)
            result["engines"][name] = time.perf_counter() - start
            if name == "single":
                start = time.perf_counter()
                again = run_grid(dataclasses.replace(config, fresh=False), {ds.name: ds},
                                 log=lambda msg: None)
                result["resume_s"] = time.perf_counter() - start
                if again.trained:   # then this would time training, not reuse
                    raise RuntimeError(f"the grid run again trained {again.trained} runs, not reusing them")
    if dask:
        result["dask_over_jobs"] = result["engines"]["dask-local"] / result["engines"]["single"]
    minae_s = result["minae_s"] = min(v for k, v in result["engines"].items() if k != "dask-local")
    result["best_engine"] = min(result["engines"], key=result["engines"].get)
    torch, _ = pytorch(backend)
    if torch is not None:
        device = torch_device(backend)
        if device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        start = time.perf_counter()
        for hidden in hidden_list:
            for _ in lrs:
                run = torch_epoch(hidden, ds.x_train, ds.x_val, device)
                for _ in range(epochs):
                    run()
        result["pytorch_s"] = time.perf_counter() - start
        result["minae_over_pytorch"] = minae_s / result["pytorch_s"]
    engines_text = ", ".join(f"engine {e} {s:.1f}s" for e, s in result["engines"].items())
    if "resume_s" in result:
        per_run = 1000 * result["resume_s"] / result["runs"]
        engines_text += (f"; the same grid again, every run reused and evaluated again "
                         f"{result['resume_s']:.2f}s ({per_run:.0f} ms a run)")
    if dask:
        engines_text += f" (dask-local / jobs {result['dask_over_jobs']:.3f})"
    log(f"grid of {result['runs']} runs x {epochs} epochs: minae ({jobs} jobs) {engines_text}"
        + (f"; pytorch one after another {result['pytorch_s']:.1f}s; best minae / pytorch "
           f"{result['minae_over_pytorch']:.2f}" if "pytorch_s" in result else ""))
    return result


def _tree_rss_kib(pid):
    """Resident memory (KiB) of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def peak_memory(argv, interval=0.05):
    """Run a command; return (peak summed RSS of its process tree in MiB, seconds, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(interval)
    return peak / 1024, time.perf_counter() - start, proc.returncode


def memory_of_grid(data_dir, dataset, epochs, jobs, log=print):
    """Peak memory of a whole grid run (training, report and figures)."""
    with tempfile.TemporaryDirectory(prefix="minae-mem-") as out:
        argv = [sys.executable, "-m", "minae.grid", "--datasets", dataset, "--epochs", str(epochs),
                "--jobs", str(jobs), "--out", out, "--quiet"] + (["--data-dir", data_dir] if data_dir else [])
        mib, seconds, code = peak_memory(argv)
    result = {"dataset": dataset, "epochs": epochs, "jobs": jobs, "peak_rss_mib": mib,
              "seconds": seconds, "exit_code": code}
    log(f"memory: grid on {dataset} ({epochs} epochs, {jobs} jobs, with figures): peak {mib:.0f} MiB "
        f"summed over all processes (exit {code})")
    return result


def write_json(path, payload):
    """Write atomically: a run stopped mid-write leaves the last whole file."""
    atomic_write_text(path, json.dumps(payload, indent=1))
