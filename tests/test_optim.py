"""Adam (both forms) and SGD against steps computed by hand."""

import math

import numpy as np
import pytest

from minae.optim import SGD, Adam


def _run(opt, grads_per_step, p0=1.0):
    p = np.array([p0])
    for g in grads_per_step:
        opt.step([p], [np.array([g])])
    return p[0]


def test_textbook_adam_matches_two_hand_computed_steps():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    # step 1, g = 0.5: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25
    p1 = 1.0 - lr * 0.5 / (0.5 + eps)
    # step 2, g = -0.2: m = 0.045 - 0.02 = 0.025, v = 0.00024975 + 0.00004 = 0.00028975
    m_hat, v_hat = 0.025 / (1 - b1**2), 0.00028975 / (1 - b2**2)
    p2 = p1 - lr * m_hat / (math.sqrt(v_hat) + eps)
    opt = Adam(lr, b1, b2, eps, form="textbook")
    assert _run(opt, [0.5]) == pytest.approx(p1, rel=1e-15)
    assert _run(Adam(lr, b1, b2, eps, form="textbook"), [0.5, -0.2]) == pytest.approx(p2, rel=1e-14)


def test_keras_adam_matches_two_hand_computed_steps():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    # step 1: lr_t = lr * sqrt(1 - b2) / (1 - b1); eps is added to sqrt(v), not sqrt(v_hat)
    p1 = 1.0 - lr * math.sqrt(0.001) / 0.1 * 0.05 / (math.sqrt(0.00025) + eps)
    lr_t2 = lr * math.sqrt(1 - b2**2) / (1 - b1**2)
    p2 = p1 - lr_t2 * 0.025 / (math.sqrt(0.00028975) + eps)
    assert _run(Adam(lr, b1, b2, eps), [0.5]) == pytest.approx(p1, rel=1e-15)
    assert _run(Adam(lr, b1, b2, eps), [0.5, -0.2]) == pytest.approx(p2, rel=1e-14)


def test_keras_form_is_textbook_form_with_a_shrinking_epsilon(rng):
    grads = rng.standard_normal(20)
    b2, eps = 0.99, 1e-3
    equivalent = [eps / math.sqrt(1 - b2**t) for t in range(1, len(grads) + 1)]
    assert equivalent[0] == pytest.approx(10 * eps) and all(np.diff(equivalent) < 0)   # as optim.py says
    # Feed both forms the same state and compare one step at every t.
    keras = Adam(0.01, 0.9, b2, eps)
    p = np.zeros(1)
    for t, g in enumerate(grads, start=1):
        state = ([m.copy() for m in keras.m] if keras.m else None,
                 [v.copy() for v in keras.v] if keras.v else None)
        q = p.copy()
        keras.step([p], [np.array([g])])
        text = Adam(0.01, 0.9, b2, equivalent[t - 1], form="textbook")
        text.m, text.v, text.t = state[0], state[1], t - 1
        text.step([q], [np.array([g])])
        assert q[0] == pytest.approx(p[0], rel=1e-12, abs=1e-15)


def test_adam_updates_in_place_and_keeps_dtype():
    p = np.ones(3, dtype=np.float32)
    ref = p
    Adam(0.1).step([p], [np.full(3, 0.5, dtype=np.float32)])
    assert p is ref and p.dtype == np.float32 and np.all(p < 1)


def test_sgd_step():
    assert _run(SGD(0.1), [0.5, 0.5]) == pytest.approx(0.9)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0}, "learning rate"), ({"lr": -0.1}, "learning rate"), ({"lr": float("nan")}, "learning rate"),
    ({"beta1": 1.0}, "beta1"), ({"beta2": -0.1}, "beta2"), ({"beta2": 1.5}, "beta2"),
    ({"eps": 0}, "eps"), ({"form": "adamw"}, "form"),
])
def test_bad_adam_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam(**kwargs)


def test_adam_refuses_a_different_parameter_list():
    opt = Adam()
    opt.step([np.zeros(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="new optimizer"):
        opt.step([np.zeros(2), np.zeros(2)], [np.ones(2), np.ones(2)])


@pytest.mark.parametrize("form", ["keras", "textbook"])
def test_one_learning_rate_per_stacked_model_equals_separate_optimizers(form, rng):
    lrs = [0.1, 0.01, 0.001]
    p0 = rng.standard_normal((3, 50)).astype(np.float32)
    grads = [rng.standard_normal((3, 50)).astype(np.float32) for _ in range(3)]
    stacked, opt = p0.copy(), Adam(lrs, 0.9, 0.99, 1e-7, form)
    rows = [p0[k].copy() for k in range(3)]
    opts = [Adam(lr, 0.9, 0.99, 1e-7, form) for lr in lrs]
    for g in grads:
        opt.step([stacked], [g])
        for k in range(3):
            opts[k].step([rows[k]], [g[k]])
    for k in range(3):   # the very same bits as three separate optimizers
        assert stacked[k].tobytes() == rows[k].tobytes()
    sgd = np.ones((2, 4))
    SGD([0.5, 0.25]).step([sgd], [np.ones((2, 4))])
    np.testing.assert_array_equal(sgd, [[0.5] * 4, [0.75] * 4])
    with pytest.raises(ValueError, match="finite number > 0"):
        Adam([0.1, -1.0])


def test_adam_refuses_to_carry_its_moments_to_another_model_of_the_same_shape():
    opt = Adam()
    a, b = np.zeros(2), np.zeros(2)
    opt.step([a], [np.ones(2)])
    opt.step([a], [np.ones(2)])        # the same arrays again: fine
    with pytest.raises(ValueError, match="other arrays than the ones it was given"):
        opt.step([b], [np.ones(2)])


def test_numpy_scalars_are_accepted_wherever_python_numbers_are():
    opt = Adam(np.float32(0.01), np.float64(0.9), np.float32(0.999), np.float32(1e-7))
    assert (type(opt.lr), type(opt.beta1), type(opt.eps)) == (float, float, float)
    assert opt.eps == float(np.float32(1e-7))
    with pytest.raises(ValueError, match="eps must be a finite number"):
        Adam(eps=np.float64("nan"))


@pytest.mark.parametrize("form", ["keras", "textbook"])
def test_per_model_rates_on_a_stacks_flat_buffer_follow_its_model_index(form, rng):
    # A stack's flat buffer holds each parameter's K copies back to back; model_index
    # says whose each element is. Stepping it equals K separate optimizers, bit for bit.
    lrs = [0.1, 0.01, 0.001]
    sizes = [6, 2]                                       # two parameter blocks per model
    index = np.concatenate([np.repeat(np.arange(3), s) for s in sizes])
    p0 = rng.standard_normal(index.size).astype(np.float32)
    grads = [rng.standard_normal(index.size).astype(np.float32) for _ in range(3)]
    flat, opt = p0.copy(), Adam(lrs, 0.9, 0.99, 1e-7, form, models=index)
    own = [p0[index == k].copy() for k in range(3)]
    opts = [Adam(lr, 0.9, 0.99, 1e-7, form) for lr in lrs]
    for g in grads:
        opt.step([flat], [g])
        for k in range(3):
            opts[k].step([own[k]], [g[index == k]])
    for k in range(3):
        assert flat[index == k].tobytes() == own[k].tobytes()
    rates = opt._rates.on(flat)
    assert rates is opt._rates.on(flat) and rates.dtype == np.float64   # made once, kept on the device


def test_setting_the_learning_rate_takes_effect_on_the_next_step():
    p, q = np.zeros(3), np.zeros(3)
    slow, fast = Adam(0.1), Adam(0.1)
    slow.step([p], [np.ones(3)])
    fast.step([q], [np.ones(3)])
    slow.lr = 1e-9                  # as a schedule or a student would
    slow.step([p], [np.ones(3)])
    fast.step([q], [np.ones(3)])
    assert slow.lr == 1e-9 and abs(p[0] + 0.1) < 1e-5 and abs(q[0] + 0.2) < 1e-5   # eps: ~3e-7
