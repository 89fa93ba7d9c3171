"""The fused CUDA kernels: compiled with NVRTC everywhere, run against the Python math on a GPU."""

import ctypes
import glob
import importlib.util
import os

import numpy as np
import pytest

from minae import Adam, Autoencoder, fit, kernels
from minae.backend import cupy_available, resolve_backend
from minae.losses import bce_with_logits

needs_gpu = pytest.mark.skipif(not cupy_available(),
                               reason="CuPy with a usable CUDA GPU is not available here")

# ---------------------------------------------------------------------------
# Compiling without a GPU: NVRTC is a library, so the kernels' syntax and types
# are checked on any machine that has it (pip install nvidia-cuda-nvrtc).
# ---------------------------------------------------------------------------


def _nvrtc():
    spec = importlib.util.find_spec("nvidia")
    found = [path for loc in (spec.submodule_search_locations if spec else [])
             for path in glob.glob(os.path.join(loc, "**", "libnvrtc.so*"), recursive=True)]
    if not found:
        pytest.skip("NVRTC is not installed here (pip install nvidia-cuda-nvrtc); the CUDA kernels "
                    "cannot be compiled without it")
    return ctypes.CDLL(sorted(found)[0])


def nvrtc_compile(lib, source, options):
    """Compile CUDA C ``source`` to a cubin; returns (ok, log, cubin size)."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"minae.cu", 0, None, None) == 0
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    status = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    cubin = ctypes.c_size_t(0)
    if status == 0:
        assert lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin)) == 0
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return status == 0, log.value.decode(errors="replace"), cubin.value


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("ctype", ["float", "double"])
def test_every_kernel_compiles_with_nvrtc(arch, ctype):
    lib = _nvrtc()
    source = kernels.cuda_source(ctype)
    # -ftz=true: CuPy adds it to every kernel it compiles.
    ok, log, cubin = nvrtc_compile(lib, source, [f"--gpu-architecture={arch}", "-ftz=true",
                                                 *kernels.COMPILE_OPTIONS])
    assert ok, f"{ctype} kernels for {arch} do not compile:\n{log}"
    assert cubin > 0
    for name in kernels.KERNELS:
        assert f'extern "C" __global__ void {name}(' in source


def test_the_compile_check_fails_on_a_broken_kernel():
    lib = _nvrtc()
    broken = kernels.cuda_source("float").replace("EXP(-FABS(zi))", "EXP(-FABS(zj))")
    ok, log, _ = nvrtc_compile(lib, broken, ["--gpu-architecture=sm_80"])
    assert not ok and "zj" in log
    mistyped = kernels.cuda_source("double").replace("const T gi = g[i];", "T* gi = g[i];", 1)
    ok, log, _ = nvrtc_compile(lib, mistyped, ["--gpu-architecture=sm_90"])
    assert not ok, "assigning a value to a pointer should not compile"


def test_kernel_arithmetic_is_written_with_intrinsics_that_never_fuse():
    # A bare a * b + c may compile to one fused multiply-add (one rounding where
    # CuPy's separate kernels round twice); the intrinsics cannot be fused.
    source = kernels.cuda_source("float")
    body = source[source.index("extern"):]
    for line in body.splitlines():
        if "=" in line and ("[i] =" in line or line.strip().startswith("const T")):
            rhs = line.split("=", 1)[1]
            assert not any(f" {op} " in rhs for op in "+-*/"), f"bare arithmetic: {line.strip()}"
    assert "__fadd_rn" in source and "__dmul_rn" in kernels.cuda_source("double")


@pytest.mark.parametrize("bad", ["dtype", "size"])
def test_launch_refuses_arrays_the_kernel_would_misread(bad):
    # Checked before any CUDA call, so this runs without a GPU (NumPy arrays stand in).
    z = np.zeros((4, 5), np.float32)
    x = np.zeros((4, 5), np.float64) if bad == "dtype" else np.zeros((4, 4), np.float32)
    term, dz = np.empty_like(z), np.empty_like(z)
    with pytest.raises((TypeError, ValueError), match="argument 1 (is float64|has 16 elements)"):
        kernels._launch("minae_bce_logits", [z, x, term, dz], [20], z.size)


def test_cuda_source_refuses_other_types():
    with pytest.raises(ValueError, match="float' or 'double"):
        kernels.cuda_source("half")


# ---------------------------------------------------------------------------
# On a GPU: each kernel against the Python math it replaces.
# ---------------------------------------------------------------------------

@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_bce_gives_the_python_losses_bits_on_the_gpu(dtype, rng):
    gpu = resolve_backend("cupy")
    z = gpu.asarray(rng.normal(scale=6.0, size=(37, 50)), dtype)
    x = gpu.asarray(rng.uniform(size=(37, 50)), dtype)
    loss_py, dz_py = bce_with_logits(z, x)
    loss_k, dz_k = kernels.bce_with_logits(z, x)
    assert gpu.to_host(dz_k).tobytes() == gpu.to_host(dz_py).tobytes()
    assert float(loss_k) == float(loss_py)
    loss_np, dz_np = bce_with_logits(gpu.to_host(z).astype(np.float64), gpu.to_host(x).astype(np.float64))
    if dtype == "float64":   # CUDA's exp/log1p differ from the CPU's by an ulp or two
        np.testing.assert_allclose(gpu.to_host(dz_k), dz_np, rtol=1e-12, atol=1e-18)
        assert float(loss_k) == pytest.approx(float(loss_np), rel=1e-12)


@needs_gpu
@pytest.mark.parametrize("form", ["keras", "textbook"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_adam_gives_the_python_adams_bits_on_the_gpu(form, dtype, rng):
    gpu = resolve_backend("cupy")
    p0 = rng.normal(size=1000)
    grads = [gpu.asarray(rng.normal(size=1000), dtype) for _ in range(4)]
    p_py, p_k = gpu.asarray(p0, dtype), gpu.asarray(p0, dtype)
    opt_py = Adam(0.01, 0.9, 0.99, 1e-7, form)
    opt_k = kernels.FusedAdam(0.01, 0.9, 0.99, 1e-7, form)
    for g in grads:
        opt_py.step([p_py], [g])
        opt_k.step([p_k], [g])
    assert gpu.to_host(p_k).tobytes() == gpu.to_host(p_py).tobytes()
    assert gpu.to_host(opt_k.m[0]).tobytes() == gpu.to_host(opt_py.m[0]).tobytes()
    assert gpu.to_host(opt_k.v[0]).tobytes() == gpu.to_host(opt_py.v[0]).tobytes()


@needs_gpu
def test_fused_fit_matches_the_cpu_in_float64_and_keeps_nan(rng):
    gpu = resolve_backend("cupy")
    x, xv = rng.uniform(size=(100, 50)), rng.uniform(size=(30, 50))
    cpu_model = Autoencoder(50, [20, 6, 20], seed=1, dtype="float64")
    gpu_model = Autoencoder(50, [20, 6, 20], seed=1, dtype="float64", backend=gpu)
    h_cpu = fit(cpu_model, x, xv, epochs=3, batch_size=32, seed=2, progress=False)
    h_gpu = fit(gpu_model, x, xv, epochs=3, batch_size=32, seed=2, progress=False,
                optimizer=kernels.FusedAdam(), step=kernels.train_step)
    np.testing.assert_allclose(h_gpu.val_bce, h_cpu.val_bce, rtol=1e-10)
    broken = Autoencoder(50, [8], backend=gpu)
    broken.params[0][...] = float("nan")
    hist = fit(broken, gpu.asarray(x.astype(np.float32)), epochs=2, batch_size=32, progress=False,
               optimizer=kernels.FusedAdam(), step=kernels.train_step)
    assert hist.diverged_epoch == 1
