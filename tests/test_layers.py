"""Layers: float64 gradient checks with random upstream gradients, and numerics."""

import warnings

import numpy as np
import pytest

from minae.gradcheck import GradcheckError, away_from_kink, check_layer
from minae.layers import INITIALISERS, Dense, ReLU, Sigmoid, init_weights, sigmoid


def test_dense_gradients_match_finite_differences(rng):
    layer = Dense(7, 4, rng=rng, dtype="float64")
    layer.b += rng.standard_normal(4)   # nonzero bias so db is really exercised
    errors = check_layer(layer, rng.standard_normal((5, 7)), rng=rng)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-6


def test_relu_gradient_matches_finite_differences(rng):
    x = away_from_kink(rng.standard_normal((6, 5)))
    assert check_layer(ReLU(), x, rng=rng)["x"] < 1e-6


def test_sigmoid_gradient_matches_finite_differences(rng):
    x = 3 * rng.standard_normal((6, 5))
    assert check_layer(Sigmoid(), x, rng=rng)["x"] < 1e-6


def test_every_layer_checks_out_on_a_stack_of_models(rng):
    """The same classes on (K, N, D): W (K, D_in, D_out), b (K, D_out), one model per slice."""
    K = 3
    layer = Dense(7, 4, rng=rng, dtype="float64")
    layer.W, layer.b = rng.standard_normal((K, 7, 4)), rng.standard_normal((K, 4))
    layer.dW, layer.db = np.zeros((K, 7, 4)), np.zeros((K, 4))
    x = rng.standard_normal((K, 5, 7))
    assert max(check_layer(layer, x, rng=rng).values()) < 1e-6
    y = layer.forward(x)
    for k in range(K):   # slice k is model k alone
        np.testing.assert_allclose(y[k], x[k] @ layer.W[k] + layer.b[k], rtol=1e-14)
    assert check_layer(ReLU(), away_from_kink(rng.standard_normal((K, 6, 5))), rng=rng)["x"] < 1e-6
    assert check_layer(Sigmoid(), 3 * rng.standard_normal((K, 6, 5)), rng=rng)["x"] < 1e-6


def test_out_buffers_change_where_results_go_not_their_bits(rng):
    x = rng.standard_normal((9, 7)).astype(np.float32)
    dout = rng.standard_normal((9, 4)).astype(np.float32)
    a, b = Dense(7, 4, rng=np.random.default_rng(0)), Dense(7, 4, rng=np.random.default_rng(0))
    y_buf, dx_buf = np.empty((9, 4), np.float32), np.empty((9, 7), np.float32)
    assert a.forward(x).tobytes() == b.forward(x, out=y_buf).tobytes()
    assert a.backward(dout).tobytes() == b.backward(dout, out=dx_buf).tobytes()
    assert a.dW.tobytes() == b.dW.tobytes() and a.db.tobytes() == b.db.tobytes()
    assert b.backward(dout, need_dx=False) is None
    relu, h = ReLU(), x.copy()
    expected = relu.forward(x)
    assert ReLU().forward(h, out=h) is h and h.tobytes() == expected.tobytes()   # in place
    z = np.concatenate([x.ravel(), [0.0, -0.0, np.inf, -np.inf, 1e30, -1e30]]).astype(np.float32)
    assert sigmoid(z).tobytes() == sigmoid(z, out=np.empty_like(z)).tobytes()
    with np.errstate(over="ignore"):
        reference = np.exp(np.minimum(z, 0)) / (1 + np.exp(-np.abs(z)))   # the two-exp form
    assert sigmoid(z).tobytes() == reference.tobytes()


class _ReLUWithoutMask(ReLU):
    def backward(self, dout, out=None):
        return dout   # forgets that the gradient is 0 where x <= 0


class _DenseMissingTranspose(Dense):
    def backward(self, dout, out=None, need_dx=True):
        super().backward(dout)
        self.dW = (dout.T @ self.x).T[:, ::-1].copy()   # wrong layout of dW
        return dout @ self.W.T


class _DenseIgnoringUpstream(Dense):
    def backward(self, dout, out=None, need_dx=True):
        ones = np.ones_like(dout)   # as if dout were all ones
        self.dW, self.db = self.x.T @ ones, ones.sum(0)
        return ones @ self.W.T


@pytest.mark.parametrize("broken", [
    lambda rng: _ReLUWithoutMask(),
    lambda rng: _DenseMissingTranspose(6, 4, rng=rng, dtype="float64"),
    lambda rng: _DenseIgnoringUpstream(6, 4, rng=rng, dtype="float64"),
], ids=["relu-no-mask", "dense-bad-transpose", "dense-ignores-upstream"])
def test_gradcheck_catches_broken_backward(broken, rng):
    x = away_from_kink(rng.standard_normal((5, 6)))
    with pytest.raises(GradcheckError, match="relative error"):
        check_layer(broken(rng), x, rng=rng)


def test_dense_forward_is_affine_and_keeps_shapes(rng):
    layer = Dense(3, 2, rng=rng, dtype="float64")
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(layer.forward(x), x @ layer.W + layer.b)
    dx = layer.backward(np.ones((4, 2)))
    assert dx.shape == (4, 3) and layer.dW.shape == (3, 2) and layer.db.shape == (2,)


def test_backward_leaves_upstream_gradient_untouched(rng):
    for layer, x in [(Dense(4, 3, rng=rng, dtype="float64"), rng.standard_normal((2, 4))),
                     (ReLU(), rng.standard_normal((2, 3))), (Sigmoid(), rng.standard_normal((2, 3)))]:
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        before = dout.copy()
        layer.backward(dout)
        np.testing.assert_array_equal(dout, before)


@pytest.mark.parametrize("layer", [Dense(2, 2), ReLU(), Sigmoid()], ids=["dense", "relu", "sigmoid"])
def test_backward_before_forward_is_a_clear_error(layer):
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 2)))


def test_sigmoid_is_finite_and_silent_for_huge_logits():
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype in (np.float32, np.float64):
            s = sigmoid(z.astype(dtype))
            assert s.dtype == dtype and np.all(np.isfinite(s))
            assert s[0] == 0.0 and s[2] == 0.5 and s[-1] == 1.0


def test_sigmoid_matches_the_definition_where_that_is_safe(rng):
    z = rng.uniform(-30, 30, size=100)
    np.testing.assert_allclose(sigmoid(z), 1 / (1 + np.exp(-z)), rtol=1e-14)


def test_glorot_uniform_matches_keras_limits_and_biases_start_at_zero(rng):
    layer = Dense(784, 128, rng=rng, dtype="float64")
    limit = np.sqrt(6 / (784 + 128))
    assert np.abs(layer.W).max() <= limit and np.abs(layer.W).max() > 0.99 * limit
    assert abs(layer.W.std() - limit / np.sqrt(3)) < 0.01 * limit
    assert not layer.b.any()


@pytest.mark.parametrize("name", sorted(INITIALISERS))
def test_every_initialiser_has_the_variance_it_promises(name, rng):
    w = init_weights(name, rng, 400, 200)
    target = 2 / 400 if name.startswith("he") else 2 / 600
    assert abs(w.var() / target - 1) < 0.05, (name, w.var(), target)
    if name.endswith("normal"):   # truncated at two (pre-correction) standard deviations
        assert np.abs(w).max() <= 2 * np.sqrt(target) / 0.87962566103423978


def test_unknown_initialiser_lists_the_known_ones(rng):
    with pytest.raises(ValueError, match="glorot_uniform"):
        Dense(3, 2, rng=rng, init="xavier")
