"""The gradient checker itself: relative error, messages, finite differences."""

import numpy as np
import pytest

from minae.gradcheck import (
    GradcheckError,
    assert_close,
    away_from_kink,
    numerical_gradient,
    numerical_vjp,
    rel_error,
)


def test_rel_error_is_relative_and_floored():
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0
    assert rel_error([1.0], [1.1]) == pytest.approx(0.1 / 2.1)
    assert rel_error([0.0], [0.0]) == 0
    assert rel_error([1e-12], [0.0]) == pytest.approx(1e-4)   # floor 1e-8 in the denominator


def test_numerical_gradient_of_a_known_function(rng):
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    g = numerical_gradient(lambda: np.sum(np.sin(x) * x), x)
    assert rel_error(g, np.cos(x0) * x0 + np.sin(x0)) < 1e-8
    assert np.array_equal(x, x0)   # perturbations are undone


def test_numerical_vjp_uses_the_upstream_gradient(rng):
    a = rng.standard_normal((3, 3))
    x, dout = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    assert rel_error(numerical_vjp(lambda: x @ a, x, dout), dout @ a.T) < 1e-8


def test_assert_close_names_the_worst_element():
    with pytest.raises(GradcheckError, match=r"dW: relative error .* worst element \(1, 0\): "
                                             r"analytic 5, numerical 1"):
        assert_close(np.array([[1.0, 2.0], [5.0, 3.0]]), np.array([[1.0, 2.0], [1.0, 3.0]]), "dW")
    assert assert_close(np.ones(3), np.ones(3)) == 0


def test_away_from_kink_moves_only_near_zero_entries():
    out = away_from_kink(np.array([-0.05, 0.0, 0.02, 0.5, -2.0]))
    np.testing.assert_allclose(out, [-0.15, 0.1, 0.12, 0.5, -2.0])
