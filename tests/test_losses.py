"""BCE in both forms: values, float64 gradient checks, stability, bad input."""

import math
import warnings

import numpy as np
import pytest

from minae.gradcheck import assert_close, numerical_gradient
from minae.layers import sigmoid
from minae.losses import bce, bce_loss, bce_with_logits, bce_with_logits_loss


def test_all_zero_logits_give_ln2(rng):
    x = rng.uniform(size=(3, 5))
    loss, _ = bce_with_logits(np.zeros((3, 5)), x)
    assert float(loss) == pytest.approx(math.log(2), rel=1e-15)


def test_logits_form_equals_the_definition(rng):
    z, x = rng.standard_normal((4, 6)), rng.uniform(size=(4, 6))
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(x * np.log(p) + (1 - x) * np.log(1 - p))
    assert float(bce_with_logits_loss(z, x)) == pytest.approx(expected, rel=1e-13)
    assert float(bce_loss(p, x)) == pytest.approx(expected, rel=1e-12)


def test_logits_gradient_is_sigmoid_minus_target_over_count(rng):
    z, x = rng.standard_normal((4, 6)), rng.uniform(size=(4, 6))
    _, dz = bce_with_logits(z, x)
    np.testing.assert_allclose(dz, (sigmoid(z) - x) / 24, rtol=1e-15)


def test_logits_gradient_matches_finite_differences(rng):
    z, x = 2 * rng.standard_normal((5, 7)), rng.uniform(size=(5, 7))
    _, dz = bce_with_logits(z, x)
    assert_close(dz, numerical_gradient(lambda: bce_with_logits_loss(z, x), z), "dz")


def test_probability_gradient_matches_finite_differences(rng):
    p, x = rng.uniform(0.05, 0.95, size=(5, 7)), rng.uniform(size=(5, 7))
    _, dp = bce(p, x)
    assert_close(dp, numerical_gradient(lambda: bce_loss(p, x), p), "dp")


def test_probability_form_chained_through_sigmoid_equals_fused_gradient(rng):
    z, x = rng.standard_normal((3, 4)), rng.uniform(size=(3, 4))
    s = sigmoid(z)
    _, dp = bce(s, x)
    np.testing.assert_allclose(dp * s * (1 - s), bce_with_logits(z, x)[1], rtol=1e-10)


def test_probability_form_clips_and_has_zero_gradient_where_clipped():
    p = np.array([[0.0, 1.0, 0.5]])
    x = np.array([[1.0, 0.0, 1.0]])
    loss, dp = bce(p, x)
    assert float(loss) == pytest.approx(-(2 * math.log(1e-7) + math.log(0.5)) / 3, rel=1e-6)
    assert dp[0, 0] == 0 and dp[0, 1] == 0 and dp[0, 2] != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_stay_finite_without_warnings(dtype):
    z = np.array([[-1000.0, 1000.0, -1000.0, 1000.0]], dtype=dtype)
    x = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dz = bce_with_logits(z, x)
    # Right answers cost nothing; confidently wrong ones cost |z| each.
    assert float(loss) == pytest.approx(2000 / 4, rel=1e-6)
    assert np.all(np.isfinite(dz)) and dz.dtype == dtype


@pytest.mark.parametrize("fn", [bce_with_logits, bce], ids=["logits", "probabilities"])
def test_targets_outside_unit_interval_are_rejected(fn):
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\].*1\.5"):
        fn(np.full((1, 2), 0.5), np.array([[0.2, 1.5]]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_logits_or_targets_are_rejected(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        bce_with_logits(np.array([[0.0, bad]]), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        bce_with_logits(np.array([[0.0, 0.0]]), np.array([[0.0, bad]]))


def test_probabilities_outside_unit_interval_are_rejected():
    with pytest.raises(ValueError, match="probabilities must lie in"):
        bce(np.array([[1.2]]), np.array([[1.0]]))


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        bce_with_logits(np.zeros((2, 3)), np.zeros((3, 2)))


def test_one_set_of_targets_serves_a_stacks_predictions(rng):
    z = rng.normal(size=(3, 4, 5))
    x = rng.uniform(size=(4, 5))
    loss, dz = bce_with_logits(z, x)
    for k in range(3):
        own_loss, own_dz = bce_with_logits(z[k], x)
        assert float(loss[k]) == float(own_loss)
        np.testing.assert_array_equal(dz[k], own_dz)
    with pytest.raises(ValueError, match="they must match"):
        bce_with_logits(z, x[:3])
