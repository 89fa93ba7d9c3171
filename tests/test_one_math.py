"""The teaching code is the code that trains.

A student who edits Dense.backward, ReLU, the BCE gradient or Adam's update
must see every training path change: ``fit`` with its defaults, the grid's
default engine, and the stacked engine. Each test below edits one function
the way a student would, by swapping in the code of a wrong version (its
``__code__``, so every caller that already holds the function sees the edit),
and checks that all three paths give other numbers; once restored, they give
the original bits again.
"""

import dataclasses
import json

import numpy as np
import pytest

from minae import Adam, Autoencoder, fit, layers, losses, optim
from minae.data import load_sample
from minae.grid import GridConfig, run_grid

# --- wrong versions, as a student might write them ---------------------------
# Each reads its names from the module the original lives in (its globals).


def dense_backward_with_a_mean_for_db(self, dout, out=None, need_dx=True):
    xp = get_namespace(dout)  # noqa: F821 -- resolved in minae.layers
    xp.matmul(self.x.mT, dout, out=self.dW)
    xp.mean(dout, axis=-2, out=self.db)   # bug: the mean, not the sum, over the batch
    if not need_dx:
        return None
    return xp.matmul(dout, self.W.mT, out=out)


def relu_forward_leaky(self, x, out=None):
    xp = get_namespace(x)  # noqa: F821
    self.out = xp.maximum(x, 0.01 * x, out=out)   # bug: a leaky ReLU where a ReLU was asked for
    return self.out


def relu_backward_without_mask(self, dout, out=None):
    xp = get_namespace(dout)  # noqa: F821
    return xp.multiply(dout, 1.0, out=out)        # bug: the mask is forgotten


def bce_gradient_without_sigmoid(z, x, *, check=True, work=None):
    xp = get_namespace(z)  # noqa: F821
    loss = xp.mean(bce_with_logits_terms(z, x), axis=(-2, -1))  # noqa: F821
    dz = xp.subtract(z, x)                        # bug: z - x instead of sigmoid(z) - x
    dz /= z.shape[-2] * z.shape[-1]
    return loss, dz


def adam_update_without_bias_correction(self, p, g, m, v, scratch):
    xp = get_namespace(p)  # noqa: F821
    m *= self.beta1
    m += (1.0 - self.beta1) * g
    v *= self.beta2
    v += (1.0 - self.beta2) * (g * g)
    lr = per_model(self._rates.on(p), p, self._rates.models)  # noqa: F821
    p -= lr * m / (xp.sqrt(v) + self.eps)   # bug: no 1 - beta**t


EDITS = {
    "Dense.backward": (layers.Dense.backward, dense_backward_with_a_mean_for_db),
    "ReLU.forward": (layers.ReLU.forward, relu_forward_leaky),
    "ReLU.backward": (layers.ReLU.backward, relu_backward_without_mask),
    "bce_with_logits": (losses.bce_with_logits, bce_gradient_without_sigmoid),
    "Adam.update": (optim.Adam.update, adam_update_without_bias_correction),
}


@pytest.fixture(scope="module")
def data():
    ds = load_sample("mnist")
    return dataclasses.replace(ds, x_train=ds.x_train[:300], y_train=ds.y_train[:300],
                               x_val=ds.x_val[:100], y_val=ds.y_val[:100])


def train_everywhere(ds, tmp_path):
    """Bytes of what each training path computes: fit, the grid (default engine), the stacked engine."""
    model = Autoencoder(784, [16, 8, 16], seed=3)
    fit(model, ds.x_train, ds.x_val, epochs=2, batch_size=64, progress=False)
    out = {"fit": b"".join(p.tobytes() for p in model.params)}
    for engine in ("single", "stacked"):
        config = GridConfig(datasets=("mnist",), hidden=((16, 8, 16),), lrs=(0.01, 0.001), epochs=2,
                            batch_size=64, jobs=1, out=str(tmp_path / engine), fresh=True, plots=False,
                            quiet=True, engine=engine)
        assert engine == "stacked" or GridConfig().engine == engine   # "single" is the default
        run_grid(config, {"mnist": ds}, log=lambda msg: None, report=False)
        records = json.loads((tmp_path / engine / "results.json").read_text())
        out[engine] = json.dumps([r["history"] for r in records]).encode()
    return out


@pytest.fixture(scope="module")
def before(data, tmp_path_factory):
    """What every path computes with the math as it is: computed once for all edits."""
    return train_everywhere(data, tmp_path_factory.mktemp("before"))


@pytest.mark.parametrize("name", list(EDITS))
def test_editing_the_math_changes_every_training_path(name, data, before, tmp_path, monkeypatch):
    original, wrong = EDITS[name]
    with monkeypatch.context() as m:
        m.setattr(original, "__code__", wrong.__code__)
        with np.errstate(all="ignore"):
            edited = train_everywhere(data, tmp_path / "edited")
    for path in before:
        assert edited[path] != before[path], f"editing {name} did not change {path}"
    assert train_everywhere(data, tmp_path / "after") == before, f"restoring {name} did not restore the bits"


def test_fit_and_the_plain_loop_give_the_same_bits(data):
    """fit's workspace and flat buffers change how the math runs, not a bit of what it computes."""
    x = data.x_train
    plain, opt = Autoencoder(784, [16, 8, 16], seed=1), Adam(0.01, form="textbook")
    rng = np.random.default_rng(5)
    for _ in range(2):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 64):
            _, grads = plain.loss(x[order[i:i + 64]])
            opt.step(plain.params, grads)
    fast = Autoencoder(784, [16, 8, 16], seed=1)
    fit(fast, x, epochs=2, batch_size=64, seed=5, optimizer=Adam(0.01, form="textbook"), progress=False)
    for a, b in zip(plain.params, fast.params):
        assert a.tobytes() == b.tobytes()
