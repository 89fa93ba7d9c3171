# %% [markdown]
# # 6. Gradient checking done right
#
# A numerical gradient is only useful if it can tell a correct backward pass
# from a broken one. Five things decide that:
#
# 1. **Centered differences.** (f(x+h) - f(x-h)) / 2h has error O(h²); the
#    one-sided (f(x+h) - f(x)) / h only O(h).
# 2. **The step h.** Computing f rounds it, by about eps * |f| (eps = 2.2e-16
#    in float64); the difference quotient divides that by h, so its rounding
#    error is about eps * |f| / h. Smaller h: less truncation, more rounding.
# 3. **Relative error** |a - n| / max(|a| + |n|, floor): scale-free, with a
#    floor below which an element is judged by its absolute error, because
#    a gradient element near 0 carries the same absolute rounding noise as
#    any other and would otherwise show a large *relative* error.
# 4. **float64.** With h = 1e-5 the rounding error is ~1e-11 in float64 but
#    ~1e-2 in float32 (eps = 1.2e-7): correct code "fails".
# 5. **Stay off kinks**, including the ones hidden inside a model. ReLU has no
#    derivative at 0; a difference straddling it measures a slope of 1/2.
#
# `minae.gradcheck` is the library's checker, used by minae's own tests;
# everything below uses its pieces.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _tutorial import expect, save

from minae import Adam, Autoencoder, Dense, ReLU, bce_with_logits
from minae.gradcheck import (
    GradcheckError,
    away_from_kink,
    check_layer,
    check_model,
    numerical_gradient,
    rel_error,
)

EPS = np.finfo(np.float64).eps   # float64's relative rounding, 2.2e-16


def centered(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


def one_sided(f, x, h):
    return (f(x + h) - f(x)) / h


def error_of(difference, h):
    """|difference quotient - exact derivative| for f = sin at x = 1 (the derivative is cos 1)."""
    return abs(difference(np.sin, 1.0, h) - np.cos(1.0))


def shrinks_like_h_squared(difference, h=1e-2):
    """True when a 10x smaller h makes the error 50 to 200 times smaller (100x is O(h²))."""
    return 50 < error_of(difference, h) / error_of(difference, h / 10) < 200


for h in (1e-2, 1e-4, 1e-6):
    print(f"h={h:.0e}: centered error {error_of(centered, h):.1e}, "
          f"one-sided error {error_of(one_sided, h):.1e}")
expect(shrinks_like_h_squared(centered) and not shrinks_like_h_squared(one_sided),
       "the centered difference's error falls like h² (100x per 10x smaller h); the one-sided's like h")

# %% [markdown]
# ## The h trade-off
#
# The centered difference's truncation error is about h² |f'''| / 6; its
# rounding error about eps |f| / h. Their sum is smallest where they
# balance, near h = (3 eps |f| / |f'''|)^(1/3): about 1e-5 for sin at x = 1,
# and for most functions scaled like a loss. That is `minae.gradcheck`'s
# default h. Below it, shrinking h only adds rounding noise.

# %%
hs = 10.0 ** -np.arange(1, 13)
errors = [error_of(centered, h) for h in hs]
best_h = (3 * EPS * np.sin(1.0) / np.cos(1.0)) ** (1 / 3)          # f''' = -cos for f = sin
measured_best = hs[int(np.argmin(errors))]
for h, err in zip(hs, errors):
    print(f"h={h:.0e}: error {err:.1e}   (truncation ~{h * h / 6 * np.cos(1.0):.0e}, "
          f"rounding ~{EPS * np.sin(1.0) / h:.0e})")
print(f"predicted best h {best_h:.1e}; the measured best of these is {measured_best:.0e}")
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(hs, errors, "o-", label="measured error")
ax.loglog(hs, hs**2 / 6 * np.cos(1.0), "--", label="truncation h²|f'''|/6")
ax.loglog(hs, EPS * np.sin(1.0) / hs, ":", label="rounding eps|f|/h")
ax.set_xlabel("h")
ax.set_ylabel("error of the centered difference")
ax.set_ylim(1e-14, 1e-2)
ax.legend(fontsize=8)
save(fig, "06_h_tradeoff")


def best_h_near(measured, predicted):
    """True when the measured best h lies within a factor 10 of the predicted one."""
    return predicted / 10 <= measured <= predicted * 10


def rounding_dominates(errors):
    """True when the error at the last, smallest h is over 1000 times the smallest error."""
    return errors[-1] > 1000 * min(errors)


expect(best_h_near(measured_best, best_h), f"the error is smallest near h = {best_h:.0e}, as predicted")
expect(rounding_dominates(errors), "at h = 1e-12 rounding makes the error over 1000x the best")

# %% [markdown]
# ## A whole autoencoder, 40 times: correct code fails sometimes
#
# The library's `check_model(model, x)` compares every parameter's gradient
# from `model.loss` with finite differences and fails above a relative error
# of 1e-6. Run it on a small float64 autoencoder, 10 -> 6 -> 3 -> 6 -> 10, with
# 40 different seeds (weights and a batch of 4 inputs each), and correct code
# fails on some of them. Two reasons, both worth knowing:
#
# - **A hidden kink.** Biases start at 0 (as in Keras). If every unit of a
#   layer is dead for one image, the next layer's input row is all zeros and
#   its pre-activation is exactly b = 0 for that row: on the kink. The
#   numerical derivative with respect to that b straddles the kink and
#   measures half a slope; the analytic one says 0.
# - **Rounding on a tiny gradient.** The difference quotient's rounding
#   error, about eps * |f| / h = 2.2e-16 * 0.7 / 1e-5, is ~1e-11 whatever the
#   gradient's size; for a gradient element of 2e-6 that is a relative error
#   of 5e-6 > 1e-6.

# %%
H = 1e-5
TOL = 1e-6


def small_model(seed, rows=4):
    """The autoencoder and the batch of one seed: weights and inputs both drawn from it."""
    return Autoencoder(10, [6, 3, 6], seed=seed, dtype="float64"), \
        np.random.default_rng(seed).uniform(size=(rows, 10))


def pre_activations(model, x):
    """Every hidden layer's pre-activation x @ W + b on the batch: the numbers ReLU sees."""
    out, h = [], x
    for dense, relu in zip(model.dense, model.relus):
        a = dense.forward(h)
        out.append(a.copy())
        h = relu.forward(a)
    return out


def rounding_floor(loss):
    """The floor for a loss of this size: 100 times the rounding noise eps * |f| / h, over TOL."""
    return 100 * EPS * abs(float(loss)) / H / TOL


def errors_with_floor(model, x):
    """Relative error of each parameter's gradient (model.loss against finite differences), each
    element judged against at least rounding_floor: minae.gradcheck's numerical_gradient and rel_error."""
    loss, grads = model.loss(x)
    grads = [g.copy() for g in grads]   # the numerical gradient's calls overwrite model.grads
    return [rel_error(g, numerical_gradient(lambda: model.loss(x, check=False)[0], p, H),
                      floor=rounding_floor(loss)) for p, g in zip(model.params, grads)]


failures = {}
for seed in range(40):
    model, x = small_model(seed)
    try:
        check_model(model, x, h=H, tol=TOL)
    except GradcheckError as err:
        failures[seed] = str(err)
print(f"check_model with its defaults fails correct code on {len(failures)} of 40 seeds:")
for seed, message in failures.items():
    print(f"  seed {seed:2d}: {message}")

# %% [markdown]
# Which of the two is it? A kink shows as a pre-activation that is exactly 0;
# rounding as an error that vanishes once elements are judged against an
# absolute floor. The floor comes from the noise itself: an element passes
# when its error is under TOL of its size *or* under 100 times the rounding
# noise eps * |f| / h, i.e. rel_error with floor = 100 * noise / TOL.

# %%
model, x = small_model(0)
loss = float(model.loss(x)[0])
print(f"seed 0: loss {loss:.3f}, rounding noise eps*|f|/h = {EPS * loss / H:.1e}, "
      f"floor = 100 * noise / TOL = {rounding_floor(loss):.1e}")


def diagnose(model, x):
    """'kink' if some pre-activation is exactly 0, 'rounding' if the check passes with the floor,
    else 'unexplained'."""
    if any(np.any(a == 0) for a in pre_activations(model, x)):
        return "kink"
    return "rounding" if max(errors_with_floor(model, x)) < TOL else "unexplained"


diagnoses = {seed: diagnose(*small_model(seed)) for seed in failures}
print("diagnoses:", ", ".join(f"seed {s} {d}" for s, d in diagnoses.items()))
kink_seed = next(s for s, d in diagnoses.items() if d == "kink")
model, x = small_model(kink_seed)
for layer, a in enumerate(pre_activations(model, x), start=1):
    rows, units = np.nonzero(a == 0)
    if len(rows):
        print(f"seed {kink_seed}: pre-activation of hidden layer {layer} is exactly 0 for image {rows[0]}, "
              f"units {sorted(set(units.tolist()))}: layer {layer - 1}'s output for that image is all 0")
        break


def all_explained(diagnoses):
    """True when every failure is a kink or rounding, and there was at least one to explain."""
    return bool(diagnoses) and all(d in ("kink", "rounding") for d in diagnoses.values())


expect(all_explained(diagnoses),
       "every failure of correct code is a hidden kink or rounding on a tiny gradient")

# %% [markdown]
# ## The recipe: positive biases, an absolute floor
#
# Give every bias a value clear of 0. Positive ones (here 0.1 to 0.5) also
# keep units alive, and that matters: a check only sees gradients that are
# not zero, and a layer dead for every image zeroes every gradient before
# it, bugs included. Then verify what the check relies on: no pre-activation
# within 10 h of the kink (nudging one parameter by h moves a pre-activation
# by h times the input it multiplies, a few units at most here), and no
# hidden layer silent on the whole batch. Judge with the floor. Correct code
# then passes on every seed. (A check does not care whether the model is
# trained, so any bias values will do. A burn-in, a few training steps before
# checking, is the other common fix, but it can leave this kink: a unit dead
# for every image of the batch gets a zero gradient, so its bias stays
# exactly 0. Ten Adam steps on each kink seed's own batch show it.)

# %%
def burned_in(seed, steps=10):
    """small_model(seed) after `steps` Adam steps (lr 0.001) on its own batch, and the batch."""
    model, x = small_model(seed)
    optimizer = Adam(0.001)
    for _ in range(steps):
        optimizer.step(model.params, model.loss(x)[1])
    return model, x


def kinks_kept_by_dead_units(burned):
    """True when some model of `burned` (pairs of model and batch) has a pre-activation exactly 0,
    and every such one belongs to a unit positive for no image of the batch, whose bias is exactly 0."""
    at_kink = [(a, dense.b, np.nonzero(np.any(a == 0, axis=0))[0])
               for model, x in burned for a, dense in zip(pre_activations(model, x), model.dense)]
    return any(len(units) for _, _, units in at_kink) and \
        all(not np.any(a[:, units] > 0) and np.all(b[units] == 0) for a, b, units in at_kink)


kink_seeds = [s for s, d in diagnoses.items() if d == "kink"]
burned = [burned_in(seed) for seed in kink_seeds]
kept = [s for s, (m, xb) in zip(kink_seeds, burned) if any(np.any(a == 0) for a in pre_activations(m, xb))]
print(f"after a burn-in of 10 Adam steps the kink is still there on seeds {kept} of {kink_seeds}")
expect(kinks_kept_by_dead_units(burned),
       "a burn-in can leave the kink, each time in a unit dead for every image whose bias is still exactly 0")


def with_positive_biases(model, seed):
    """The model with each bias drawn from [0.1, 0.5]: clear of 0, keeping units alive."""
    rng = np.random.default_rng(seed + 1000)
    for dense in model.dense:
        dense.b[...] = rng.uniform(0.1, 0.5, dense.b.shape)
    return model


def fit_for_checking(model, x):
    """True when no pre-activation lies within 10 h of the kink and every hidden layer has a unit
    that is positive for some image."""
    pre = pre_activations(model, x)
    return all(np.min(np.abs(a)) > 10 * H for a in pre) and all(np.any(a > 0) for a in pre)


def recipe_errors(seed, rows=4, model_class=Autoencoder):
    """Max relative error over the parameters, with positive biases and the floor, and whether
    the model and batch are fit for checking."""
    _, x = small_model(seed, rows)
    model = with_positive_biases(model_class(10, [6, 3, 6], seed=seed, dtype="float64"), seed)
    return max(errors_with_floor(model, x)), fit_for_checking(model, x)


results = [recipe_errors(seed) for seed in range(40)]
passed = sum(err < TOL and fit for err, fit in results)
print(f"with the recipe: {passed} of 40 seeds pass; largest error {max(e for e, _ in results):.1e}")


def passes_every_seed(results):
    return all(err < TOL and fit for err, fit in results)


expect(passes_every_seed(results), "correct code passes on every seed 0-39, each one fit for checking")

# %% [markdown]
# ## Two model-level bugs the recipe catches on every seed
#
# A check that passes everything is no check. Two classic bugs:
#
# - **a dropped 1/(N*D)**: the loss is a mean, but its gradient is left as a
#   sum, `dz = sigmoid(z) - x`. Every gradient is N*D = 40 times too large;
#   training with Adam would barely notice (tutorial 7), the check does.
# - **`x @ dout` for `x.T @ dout`**, in the first layer, on a batch of N = 10
#   rows with D_in = 10 inputs: then the wrong product has W's shape (10, 6),
#   nothing complains, and only the numbers are wrong.


# %%
def bce_without_count(z, x, **kwargs):
    loss, dz = bce_with_logits(z, x, **kwargs)
    return loss, dz * (z.shape[-2] * z.shape[-1])        # the bug: the mean's 1/(N*D) is gone


class LossWithoutCount(Autoencoder):
    def loss(self, x, **kwargs):
        return super().loss(x, bce=bce_without_count, **kwargs)


class DenseForgetsTranspose(Dense):
    def backward(self, dout, out=None, need_dx=True):
        self.dW[...] = self.x @ dout                     # the bug: should be self.x.T @ dout
        self.db[...] = dout.sum(axis=0)
        return dout @ self.W.T if need_dx else None


class FirstLayerForgetsTranspose(Autoencoder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dense[0].__class__ = DenseForgetsTranspose  # the same layer and arrays, the buggy backward


def catches_every_seed(results):
    return all(err >= TOL and fit for err, fit in results)


for name, model_class in (("dropped 1/(N*D)", LossWithoutCount),
                          ("x @ dout for x.T @ dout", FirstLayerForgetsTranspose)):
    buggy = [recipe_errors(seed, rows=10, model_class=model_class) for seed in range(40)]
    print(f"{name:>24}: smallest error over the 40 seeds {min(e for e, _ in buggy):.1e}")
    expect(catches_every_seed(buggy), f"the bug '{name}' is caught on every seed")
correct = [recipe_errors(seed, rows=10) for seed in range(40)]
expect(passes_every_seed(correct), "and the correct model passes on the same N = 10 batches")

# %% [markdown]
# ## The same correct code in float32 "fails", and float64 shows it is rounding
#
# A float32 failure alone says nothing: a buggy layer fails too. What shows
# it is rounding is that the very same layer and inputs pass in float64.

# %%
def fails_only_in_float32(make_layer, x):
    """True when make_layer(dtype)'s backward fails check_layer in float32 but passes in float64."""
    try:
        check_layer(make_layer("float32"), x.astype(np.float32), rng=np.random.default_rng(0))
        return False
    except GradcheckError as err:
        print("float32:", err)
    try:
        print("float64: relative errors", check_layer(make_layer("float64"), x, rng=np.random.default_rng(0)))
        return True
    except GradcheckError:
        return False


x_layer = np.random.default_rng(2).standard_normal((5, 6))
expect(fails_only_in_float32(lambda dtype: Dense(6, 4, rng=np.random.default_rng(1), dtype=dtype), x_layer),
       "a correct Dense fails the check in float32 and passes it in float64: rounding, not a bug")

# %% [markdown]
# ## The kink: the same correct ReLU fails when an input sits at 0

# %%
rng = np.random.default_rng(0)


def fails_check(layer, x):
    """True when check_layer raises GradcheckError for this layer and input."""
    try:
        check_layer(layer, x, rng=np.random.default_rng(0))
        return False
    except GradcheckError as err:
        print(f"{type(layer).__name__}:", err)
        return True


x_kink = away_from_kink(rng.standard_normal((3, 4)))
x_kink[0, 0] = 0.0   # exactly on the kink
expect(fails_check(ReLU(), x_kink), "an input exactly at 0 makes a correct ReLU look wrong")
expect(not fails_check(ReLU(), away_from_kink(x_kink)), "moved off the kink it passes")

# %% [markdown]
# ## A real bug is caught: a ReLU that forgets its mask


# %%
class ReLUWithoutMask(ReLU):
    def backward(self, dout, out=None):
        return dout   # should be dout * mask


expect(fails_check(ReLUWithoutMask(), away_from_kink(rng.standard_normal((3, 4)))),
       "the missing mask is caught, with the worst element named")
print(f"for scale: rel_error(1, 1.001) = {rel_error(1.0, 1.001):.1e}; real bugs are this large or larger")
