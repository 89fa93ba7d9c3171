# %% [markdown]
# # 5. A whole network by hand, and gradients that add at a fork
#
# Tutorials 2 to 4 derived three local rules: a dense layer's dW, db and dx,
# ReLU's mask, and the fused sigmoid + BCE gradient (p - x) / (N D). A network
# is those rules chained, last layer first. The smallest autoencoder minae
# builds, `Autoencoder(D, [H])`, is exactly
#
#     x (N, D) -> Dense(D, H) -> ReLU -> Dense(H, D) -> z (N, D) -> sigmoid + BCE against x
#
# so here it is forward and backward with nothing but NumPy, on a batch of
# N = 3 images of D = 6 pixels and H = 4 hidden units, and compared number
# for number with `model.loss`, the function every training loop in minae
# calls. (Tutorial 6 then checks `model.loss` against finite differences.)

# %%
import numpy as np
from _tutorial import expect

from minae import Autoencoder, Dense, ReLU, bce_with_logits, sigmoid
from minae.gradcheck import numerical_gradient, rel_error


def loss_and_grads_by_hand(x, W1, b1, W2, b2):
    """BCE of the autoencoder Dense -> ReLU -> Dense on x, and [dW1, db1, dW2, db2]."""
    n, d = x.shape
    # forward, keeping what the backward pass needs
    a = x @ W1 + b1                        # (N, H) pre-activations
    h = np.maximum(a, 0)                   # (N, H)
    z = h @ W2 + b2                        # (N, D) logits
    loss = np.mean(np.maximum(z, 0) - z * x + np.log1p(np.exp(-np.abs(z))))   # tutorial 4's form
    # backward: each line is one local rule, applied to the gradient arriving from above
    dz = (sigmoid(z) - x) / (n * d)        # sigmoid + BCE: (p - x) / (N D)       (tutorial 4)
    dW2, db2 = h.T @ dz, dz.sum(axis=0)    # second dense layer                   (tutorial 2)
    dh = dz @ W2.T                         # (N, H): what reaches the hidden layer
    da = dh * (a > 0)                      # ReLU lets it through where a > 0     (tutorial 3)
    dW1, db1 = x.T @ da, da.sum(axis=0)    # first dense layer; its dx is never needed
    return loss, [dW1, db1, dW2, db2]


def agrees_with_model(by_hand, by_model, tol=1e-12):
    """True when two (loss, grads) pairs agree to rounding: relative error below tol everywhere."""
    (loss_a, grads_a), (loss_b, grads_b) = by_hand, by_model
    return rel_error(loss_a, loss_b) < tol and all(rel_error(a, b) < tol for a, b in zip(grads_a, grads_b))


rng = np.random.default_rng(0)
model = Autoencoder(6, [4], seed=0, dtype="float64")
print(model.summary())
x = rng.uniform(size=(3, 6))                  # N = 3 images of D = 6 pixels in [0, 1]
by_hand = loss_and_grads_by_hand(x, *model.params)
loss, grads = model.loss(x)
by_model = (float(loss), [g.copy() for g in grads])   # copies: the next backward overwrites grads
print(f"loss by hand {by_hand[0]:.15f}, model.loss {by_model[0]:.15f}")
for name, a, b in zip(("dW1", "db1", "dW2", "db2"), by_hand[1], by_model[1]):
    print(f"{name} {str(a.shape):7} largest difference {np.max(np.abs(a - b)):.1e}")
expect(agrees_with_model(by_hand, by_model),
       "the hand-chained loss and all four gradients equal model.loss's (relative error < 1e-12)")

# %% [markdown]
# `model.loss` runs the same chain with minae's layers: `Autoencoder.forward`
# calls each `Dense.forward` and `ReLU.forward`, the loss is
# `bce_with_logits`, and `Autoencoder.backward` walks the layers in reverse,
# handing each `backward` the gradient the layer after it returned.
#
# ## A fork: one weight used twice
#
# A *tied* autoencoder decodes with the encoder's weights transposed,
# W2 = W1^T: one array W, used twice. The loss reaches W along two paths, and
# the chain rule adds them (CS231n: "gradients add up at forks"):
#
#     dL/dW = (gradient through the encoder's use) + (gradient through the decoder's use)^T
#           =          x^T @ da                  +            (h^T @ dz)^T
#
# Every row of a batch already uses b once, which is why db sums over rows
# (tutorial 2): that is the same rule. Below, two minae `Dense` layers share
# one array (the decoder's W is a transposed *view* of the encoder's W, so
# nudging one nudges the other), and finite differences on that one array
# say which gradient is right.

# %%
def tied_gradient_parts(enc, relu, dec, x):
    """Backward through encoder -> relu -> decoder whose W is tied; returns the gradient of the
    shared W through each use, (D, H) each, and its finite-difference gradient."""
    def tied_loss():
        return bce_with_logits(dec.forward(relu.forward(enc.forward(x))), x)

    _, dz = tied_loss()
    enc.backward(relu.backward(dec.backward(dz)))
    through_encoder = enc.dW.copy()     # what Dense computed for the first use
    through_decoder = dec.dW.T.copy()   # dec.dW is the gradient of W^T, (H, D): transpose it back
    return through_encoder, through_decoder, numerical_gradient(lambda: tied_loss()[0], enc.W)


def matches(analytic, numeric, tol=1e-7):
    """True when an analytic gradient matches finite differences (relative error below tol)."""
    return rel_error(analytic, numeric) < tol


enc, relu, dec = Dense(6, 4, rng=rng, dtype="float64"), ReLU(), Dense(4, 6, rng=rng, dtype="float64")
dec.W = enc.W.T                     # tied: the very same numbers, read transposed
through_encoder, through_decoder, numeric = tied_gradient_parts(enc, relu, dec, x)
for name, grad in (("encoder's use alone", through_encoder), ("decoder's use alone", through_decoder),
                   ("their sum", through_encoder + through_decoder)):
    print(f"{name:>20}: relative error against finite differences {rel_error(grad, numeric):.1e}")
expect(matches(through_encoder + through_decoder, numeric),
       "the tied weight's gradient is the sum of its two uses' gradients")
expect(not matches(through_encoder, numeric) and not matches(through_decoder, numeric),
       "either use alone is wrong: a fork's gradients must be added")

# %% [markdown]
# ## What tied weights would change in layers.py
#
# minae has no weight sharing, and `minae/layers.py` relies on that twice.
# `Dense.forward` keeps only its latest input (`self.x = x`), and
# `Dense.backward` *assigns* its gradients (`matmul(..., out=self.dW)`,
# `sum(..., out=self.db)`). Above, two layer objects shared an array and the
# sum was taken by hand. Call *one* layer object twice instead, as a network
# that reuses a layer does, and both habits break:

# %%
def reused_layer_gradients(shared, x, dy):
    """y = shared(shared(x)) with upstream gradient dy: the dW the layer ends up holding after
    backward through both uses, dW with each use's own input and the two added, and the
    finite-difference gradient of sum(y * dy)."""
    y1 = shared.forward(x)                   # the first use's output, kept by hand
    shared.forward(y1)                       # the second use: shared.x now holds y1
    dy1 = shared.backward(dy)                # backward through the second use sets dW
    shared.backward(dy1)                     # the first use's: it reads y1, not x, and replaces dW
    summed = x.T @ dy1 + y1.T @ dy           # each use with its own input, added
    numeric = numerical_gradient(lambda: np.sum(shared.forward(shared.forward(x)) * dy), shared.W)
    return shared.dW.copy(), summed, numeric


shared = Dense(4, 4, rng=rng, dtype="float64")
held, summed, numeric_shared = reused_layer_gradients(shared, rng.uniform(size=(3, 4)),
                                                      rng.standard_normal((3, 4)))
print(f"one Dense called twice: the dW it holds has relative error {rel_error(held, numeric_shared):.1e}; "
      f"each use with its own input, added: {rel_error(summed, numeric_shared):.1e}")
expect(not matches(held, numeric_shared) and matches(summed, numeric_shared),
       "a layer reused within one pass needs every input it saw and the sum of its uses' gradients")

# %% [markdown]
# So a layers.py with weight sharing would keep one input per call (a list,
# consumed last-in first-out by backward), write `dW += x^T @ dout` and
# `db += dout.sum(0)` instead of assigning, and need the gradients zeroed
# before every backward pass: the `zero_grad()` that frameworks with weight
# sharing ask you to call. minae assigns, so it has none to forget.
