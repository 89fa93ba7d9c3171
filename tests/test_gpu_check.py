"""scripts/gpu_check.sh, tried here before a GPU is lent: it starts on a
machine like the device, and it keeps to its time.

The device's Python has numpy, scipy, matplotlib, tqdm, threadpoolctl and
pytest (and CuPy, PyTorch), but no pooch, dask, tensorboardX or
array-api-strict, and no internet: what the check needs beyond that comes as
wheels from scripts/gpu_prepare.sh. The first test builds such an environment
and runs the check's --preflight in it (the imports of every stage and the
collection of the GPU test files). The others run the check on this CPU with
GPU_CHECK_CPU_DRY_RUN=yes and a tiny stage timeout.
"""

import os
import re
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "gpu_check.sh"
PREPARE = REPO / "scripts" / "gpu_prepare.sh"
# What the device's Python holds of minae's needs, but CuPy and PyTorch, which
# the check imports only inside functions (the device README's package list).
DEVICE_HAS = ["numpy", "matplotlib", "tqdm", "threadpoolctl", "pytest", "scipy"]
DEVICE_LACKS = ["pooch", "dask", "tensorboardX"]
# What the device tool brings back of $OUT: at most 8 files, at most two
# folders down, each name in letters, digits, '.', '_' and '-'.
RETURNED_FILES, RETURNED_NAME = 8, re.compile(r"[A-Za-z0-9._-]+")


def _env(**extra):
    """This process's environment without any PYTHON* variable (gpu_check.sh sets
    its own PYTHONPATH), with this interpreter's folder first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(argv, env, timeout=300):
    return subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def _run_with_registry(argv, env):
    """Run a command that installs from the package registry; skip if it cannot be reached."""
    result = _run(argv, env, timeout=900)
    if result.returncode != 0:
        index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/")
        try:
            urllib.request.urlopen(index, timeout=15).close()
        except OSError as exc:
            pytest.skip(f"the package registry {index} cannot be reached ({exc}); this test installs "
                        f"packages from it. pip said: {result.stderr.strip()[-300:]}")
        pytest.fail(f"{' '.join(map(str, argv))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _gpu_here():
    if Path("/dev/nvidiactl").exists():
        return True
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_no_gpu = pytest.mark.skipif(_gpu_here(), reason="a GPU is here: the check's CPU dry run is refused")


def _assert_returnable(out):
    files = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= RETURNED_FILES, files
    for rel in files:
        assert len(rel.parts) <= 3 and all(RETURNED_NAME.fullmatch(part) for part in rel.parts), rel


def test_the_check_starts_with_only_what_the_device_has(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the venv (pip too: the check installs
    # its wheels with it); no .pyc compiling, which would take most of the time.
    _run_with_registry([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile",
                        "pip", *DEVICE_HAS], _env())
    lacks = _run([python, "-c", "import importlib.util as u, sys; "
                  "print(*[n for n in sys.argv[1:] if u.find_spec(n)])", *DEVICE_LACKS], _env())
    assert lacks.returncode == 0 and lacks.stdout.strip() == "", f"the venv is not like the device: {lacks}"

    carry = tmp_path / "carry"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"   # the wheels of this Python
    _run_with_registry(["bash", PREPARE, "--wheels-only"], _env(GPU_CARRY=carry, PYTHON_VERSION=version))
    assert list((carry / "wheels").glob("*.whl")), "gpu_prepare.sh wrote no wheels"

    venv_env = _env(GPU_CARRY=carry, OUT=tmp_path / "out", VIRTUAL_ENV=venv)
    venv_env["PATH"] = f"{venv / 'bin'}{os.pathsep}{venv_env['PATH']}"
    result = _run(["bash", CHECK, "--preflight"], venv_env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "imported minae minae.data minae.grid minae.kernels" in output
    listed = re.search(r"gpu_check: collecting (.+)", output).group(1).split()
    assert listed and all(f"{path}::" in output for path in listed), output
    _assert_returnable(tmp_path / "out")


@needs_no_gpu
def test_a_stage_that_times_out_fails_the_check_and_every_log_comes_back(tmp_path):
    out = tmp_path / "out"
    result = _run(["bash", CHECK], _env(OUT=out, GPU_CHECK_STAGE_TIMEOUT=1, GPU_CHECK_CPU_DRY_RUN="yes",
                                        GPU_CARRY=tmp_path / "no-carry"))
    assert result.returncode != 0, result.stdout + result.stderr
    for stage in ("tests", "bench", "grid"):   # every stage ran, though the one before it timed out
        assert f"stage {stage} TIMED OUT after 1 s" in (out / f"{stage}.log").read_text()
    summary = (out / "check.log").read_text()
    assert re.search(r"exit codes: tests 1(24|37), bench 1(24|37), grid 1(24|37)", summary), summary
    assert "CPU DRY RUN: no GPU was checked" in summary
    _assert_returnable(out)


def test_the_cpu_dry_run_is_refused_where_a_gpu_is_seen(tmp_path):
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = _env(OUT=tmp_path / "out", GPU_CHECK_CPU_DRY_RUN="yes")
    env["PATH"] = f"{fake.parent}{os.pathsep}{env['PATH']}"
    result = _run(["bash", CHECK], env)
    assert result.returncode == 1 and "refused on a machine with a GPU" in result.stderr, result
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["check.log"]   # no stage ran


@pytest.mark.parametrize("setting, error", [
    (dict(GPU_CHECK_CPU_DRY_RUN="1"), "must be unset, or yes"),
    (dict(GPU_CHECK_STAGE_TIMEOUT="1m"), "must be whole seconds > 0"),
    (dict(GPU_CHECK_STAGE_TIMEOUT="0"), "must be whole seconds > 0"),
])
def test_the_checks_settings_are_checked_before_anything_runs(tmp_path, setting, error):
    out = tmp_path / "out"
    result = _run(["bash", CHECK], _env(OUT=out, **setting))
    assert result.returncode == 1 and error in result.stderr, result
    assert [p.name for p in out.iterdir()] == ["check.log"]


@needs_no_gpu
def test_without_a_gpu_the_check_stops_before_its_stages_and_says_why(tmp_path):
    out = tmp_path / "out"
    result = _run(["bash", CHECK], _env(OUT=out, GPU_CARRY=tmp_path / "no-carry"))
    assert result.returncode == 1
    assert "CuPy or the GPU is unusable" in (out / "check.log").read_text()
    assert [p.name for p in out.iterdir()] == ["check.log"]
