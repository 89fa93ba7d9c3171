# %% [markdown]
# # 10. CPU and GPU: one switch, the same numbers
#
# minae's layers never import NumPy or CuPy directly for their math: they ask
# the arrays they are given which module they belong to
# (`minae.backend.get_namespace`). So the same `Dense.backward` runs on a CPU
# with NumPy and on a GPU with CuPy. You choose once, when making a model:
#
#     Autoencoder(784, [32, 16, 32], backend="numpy" | "cupy" | "auto")
#
# Weights are always drawn on the host from the seed and then copied to the
# device, so CPU and GPU runs start from the very same numbers.
#
# **Without a GPU** (most laptops, and the test machine), "auto" picks NumPy
# and says why, and every comparison below is NumPy against NumPy: it shows
# the mechanics, and trivially agrees. Only on a machine with CUDA and CuPy
# does it compare a CPU against a GPU.

# %%
import time

import numpy as np
from _tutorial import FAST, expect

from minae import Adam, Autoencoder, fit, resolve_backend
from minae.data import load_sample

backend = resolve_backend("auto")
print(f"auto chose {backend.name}: {backend.reason}")
if backend.name == "numpy":
    print("no GPU here: the 'device' model below is a second NumPy model, so this compares CPU with CPU")
cpu = Autoencoder(784, [32, 16, 32], seed=7, dtype="float64")
dev = Autoencoder(784, [32, 16, 32], seed=7, dtype="float64", backend=backend)
same = all(np.array_equal(a, backend.to_host(b)) for a, b in zip(cpu.params, dev.params))
expect(same, f"the {backend.name} model starts from exactly the CPU model's weights")

# %% [markdown]
# ## One training step on both, in float64
#
# In float64 the two agree to about 1e-12: the same math, only the order of
# additions inside the matrix multiplies differs. (In float32 they drift
# apart slowly for the same reason; neither is "wrong".)

# %%
data = load_sample("mnist", limit_train=512, limit_val=256)
x = data.x_train[:256].astype(np.float64)
loss_cpu, grads_cpu = cpu.loss(x)
loss_dev, grads_dev = dev.loss(backend.asarray(x))
Adam(0.001).step(cpu.params, grads_cpu)
Adam(0.001).step(dev.params, grads_dev)
worst = max(float(np.max(np.abs(a - backend.to_host(b)))) for a, b in zip(cpu.params, dev.params))
print(f"loss on CPU {float(loss_cpu):.12f}, on {backend.name} {float(loss_dev):.12f}; "
      f"largest weight difference after one step {worst:.1e}")
expect(worst < 1e-10, "after a step the weights still agree to better than 1e-10")

# %% [markdown]
# ## What changes on a GPU
#
# - The whole dataset is copied to the device once; batches are gathered there.
# - Work is queued asynchronously: `float(loss)` makes the CPU wait for the
#   GPU, so minae reads the loss once per epoch, not once per batch.
# - Timing needs a `synchronize()` before reading the clock
#   (`Backend.synchronize`), or you time only the queueing.

# %%
model = Autoencoder(784, [32, 16, 32], seed=0, backend=backend)
start = time.perf_counter()
history = fit(model, data.x_train, data.x_val, epochs=1 if FAST else 3, progress=False)
backend.synchronize()
print(f"{len(history.val_bce)} epoch(s) on {backend.name} in {time.perf_counter() - start:.2f} s, "
      f"validation BCE {history.val_bce[-1]:.4f}")
expect(np.isfinite(history.val_bce[-1]), "training runs the same way on this backend")
