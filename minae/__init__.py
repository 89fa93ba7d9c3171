"""minae: autoencoders from scratch in NumPy/CuPy, every gradient by hand.

Read the modules in this order: backend, layers, losses, optim, model (and
checkpoint, its files), diagnostics, train, gradcheck; then sweep (the same
code on a stack of models) and kernels (the loss and Adam as optional fused
CUDA kernels); then figures and projection (every picture), live and
tensorboard (watching training), data, the grid experiment in minae.grid,
and the browser explorer in minae.explore (each package gives its own
reading order). checks holds the small argument checks they all share. The
math lives in layers, losses and optim alone: every way of training runs it.
minae.tools holds the benchmarks, outside the reading path.
"""

from minae.backend import Backend, cupy_available, get_namespace, resolve_backend
from minae.errors import BackendError, CheckpointError, DataError, DownloadError, MinaeError, WorkerError
from minae.layers import Dense, ReLU, Sigmoid, sigmoid
from minae.losses import bce, bce_loss, bce_with_logits, bce_with_logits_loss
from minae.model import Autoencoder
from minae.optim import SGD, Adam
from minae.train import History, StopTraining, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "Adam", "Autoencoder", "Backend", "BackendError", "CheckpointError", "DataError", "Dense",
    "DownloadError", "History", "MinaeError", "ReLU", "SGD", "Sigmoid", "StopTraining", "WorkerError",
    "bce", "bce_loss", "bce_with_logits", "bce_with_logits_loss", "cupy_available", "evaluate", "fit",
    "get_namespace", "resolve_backend", "sigmoid",
]
