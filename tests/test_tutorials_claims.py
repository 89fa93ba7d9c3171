"""Every claim a tutorial checks can fail: given a wrong input or a broken piece of code, it does.

A tutorial judges each expectation with a small function defined beside it
(``agrees_with_model``, ``matches``, ...) that takes what it judges as
arguments. ``definitions(n)`` loads tutorial n's imports, functions,
classes and UPPER_CASE constants without running its computations, so each
test below can call a claim with what a wrong version of the claim, or of
minae's code, would produce, and see it return False.
"""

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from minae import Adam, Autoencoder, Dense, ReLU, bce, bce_with_logits, sigmoid
from minae.data import load_sample
from minae.losses import PROB_EPS
from minae.train import train_step

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def definitions(number):
    """Tutorial ``number``'s imports, functions, classes and UPPER_CASE constants, as attributes;
    nothing else of it runs."""
    path = next(TUTORIALS.glob(f"{number:02d}_*.py"))
    tree = ast.parse(path.read_text(), str(path))

    def kept(node):
        if isinstance(node, ast.Assign):   # NAME = ... or A, B = ...: constants if all upper case
            names = [n for t in node.targets for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
            return all(isinstance(n, ast.Name) and n.id.isupper() for n in names)
        return isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))

    tree.body = [node for node in tree.body if kept(node)]
    namespace = {"__name__": path.stem}
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TUTORIALS))   # for `from _tutorial import ...`
        exec(compile(tree, str(path), "exec"), namespace)
    return SimpleNamespace(**namespace)


class ReLUWithoutMask(ReLU):
    """A broken ReLU: backward lets every gradient through."""

    def backward(self, dout, out=None):
        return dout


# -- 05: a network by hand, and forks ----------------------------------------------------------

def test_05_the_hand_chain_disagrees_with_a_model_whose_relu_forgets_its_mask():
    t = definitions(5)
    x = np.random.default_rng(0).uniform(size=(3, 6))
    model = Autoencoder(6, [4], seed=0, dtype="float64")
    by_hand = t.loss_and_grads_by_hand(x, *model.params)
    loss, grads = model.loss(x)
    assert t.agrees_with_model(by_hand, (float(loss), [g.copy() for g in grads]))
    model.relus[0] = ReLUWithoutMask()
    loss, grads = model.loss(x)
    assert not t.agrees_with_model(by_hand, (float(loss), [g.copy() for g in grads]))


def test_05_the_hand_chain_disagrees_with_a_loss_that_drops_one_over_n_d():
    t = definitions(5)
    x = np.random.default_rng(0).uniform(size=(3, 6))
    model = Autoencoder(6, [4], seed=0, dtype="float64")

    def bce_without_count(z, x, **kwargs):
        loss, dz = bce_with_logits(z, x, **kwargs)
        return loss, dz * x.size

    loss, grads = model.loss(x, bce=bce_without_count)
    assert not t.agrees_with_model(t.loss_and_grads_by_hand(x, *model.params),
                                   (float(loss), [g.copy() for g in grads]))


def test_05_a_tied_weight_fails_the_check_when_its_relu_is_broken():
    t = definitions(5)
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(3, 6))
    enc, dec = Dense(6, 4, rng=rng, dtype="float64"), Dense(4, 6, rng=rng, dtype="float64")
    dec.W = enc.W.T
    first, second, numeric = t.tied_gradient_parts(enc, ReLU(), dec, x)
    assert t.matches(first + second, numeric)
    first, second, numeric = t.tied_gradient_parts(enc, ReLUWithoutMask(), dec, x)
    assert not t.matches(first + second, numeric)


class AccumulatingDense(Dense):
    """Dense as tutorial 5 says a layers.py with weight sharing would need it: one input kept
    per call, consumed last-in first-out, and gradients added rather than assigned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inputs = []

    def forward(self, x, out=None):
        self.inputs.append(x)
        return x @ self.W + self.b

    def backward(self, dout, out=None, need_dx=True):
        x = self.inputs.pop()
        self.dW += x.T @ dout
        self.db += dout.sum(axis=0)
        return dout @ self.W.T


def test_05_the_reused_layer_claim_fails_for_a_layer_built_as_the_tutorial_prescribes():
    t = definitions(5)
    rng = np.random.default_rng(4)
    x, dy = rng.uniform(size=(3, 4)), rng.standard_normal((3, 4))
    held, summed, numeric = t.reused_layer_gradients(Dense(4, 4, rng=rng, dtype="float64"), x, dy)
    assert not t.matches(held, numeric) and t.matches(summed, numeric)
    held, summed, numeric = t.reused_layer_gradients(AccumulatingDense(4, 4, rng=rng, dtype="float64"), x, dy)
    assert t.matches(held, numeric), "keeping every input and adding the uses' gradients is enough"


# -- 03: a sigmoid that cannot overflow ----------------------------------------------------------

def test_03_the_precision_claim_fails_for_the_naive_formula():
    t = definitions(3)
    assert t.keeps_tiny_values(sigmoid) and not t.keeps_tiny_values(t.naive_sigmoid)
    naive_at_20 = t.naive_sigmoid(np.array([-20.0], dtype=np.float32))[0]
    # At x = -20 both formulas agree to 1e-6: a check there could not tell them apart.
    assert abs(naive_at_20 / np.exp(-20.0) - 1) < 1e-6


def test_03_the_overflow_claims_fail_for_large_positive_x_and_for_the_naive_formula():
    t = definitions(3)
    assert not t.overflows(t.naive_sigmoid, 89.0), "'|x| > 88 overflows' is false for positive x"
    assert t.overflows(t.naive_sigmoid, -1000.0) and not t.overflows(sigmoid, -1000.0)


# -- 04: binary cross-entropy from logits --------------------------------------------------------

def test_04_the_cancellation_claim_fails_for_the_abs_form_and_away_from_cancellation():
    t = definitions(4)
    assert t.float32_relative_error(t.direct_form, -20.0, 0.0) == 1.0
    assert t.float32_relative_error(t.abs_form, -20.0, 0.0) != 1.0, "the |z| form is no stand-in"
    assert t.float32_relative_error(t.direct_form, 2.0, 0.0) < 1e-6, "for z > 0 nothing cancels"


def test_04_the_cap_claim_fails_for_minus_ln_1e_minus_7_on_both_pixels():
    t = definitions(4)
    p = np.array([[4.2483545e-18, 1.0]], dtype=np.float32)    # sigmoid(-40), sigmoid(40) in float32
    x = np.array([[1.0, 0.0]], dtype=np.float32)
    clipped, _ = bce(p, x)
    low, high = np.float32(PROB_EPS), np.float32(1 - PROB_EPS)
    assert t.capped_at(clipped, [-np.log(np.float64(low)), -np.log(1 - np.float64(high))])
    assert not t.capped_at(clipped, [-np.log(PROB_EPS)] * 2), "the old text's 16.1 is not the cap"
    unclipped = float(np.mean(-np.log(np.maximum(1 - p, 1e-30)) * (1 - x) - np.log(p) * x))
    assert not t.capped_at(unclipped, [-np.log(np.float64(low)), -np.log(1 - np.float64(high))])


# -- 06: gradient checking -------------------------------------------------------------------------

def test_06_the_h_squared_claim_fails_for_one_sided_and_for_a_quotient_missing_its_2():
    t = definitions(6)
    assert t.shrinks_like_h_squared(t.centered)
    assert not t.shrinks_like_h_squared(t.one_sided)
    assert not t.shrinks_like_h_squared(lambda f, x, h: (f(x + h) - f(x - h)) / h)


def test_06_the_best_h_claim_fails_for_one_sided_differences():
    t = definitions(6)
    hs = 10.0 ** -np.arange(1, 13)
    predicted = (3 * t.EPS * np.sin(1.0) / np.cos(1.0)) ** (1 / 3)
    for difference, near in ((t.centered, True), (t.one_sided, False)):
        measured = hs[int(np.argmin([t.error_of(difference, h) for h in hs]))]
        assert bool(t.best_h_near(measured, predicted)) == near


def test_06_the_rounding_claim_fails_for_an_error_of_truncation_alone():
    t = definitions(6)
    hs = 10.0 ** -np.arange(1, 13)
    assert t.rounding_dominates([t.error_of(t.centered, h) for h in hs])
    assert not t.rounding_dominates(list(hs**2 / 6 * np.cos(1.0))), "without rounding the error keeps falling"


def test_06_the_burn_in_claim_fails_where_the_kink_is_gone_and_for_a_kink_in_live_units():
    t = definitions(6)
    assert t.kinks_kept_by_dead_units([t.burned_in(33)])
    assert not t.kinks_kept_by_dead_units([t.burned_in(10)]), "seed 10's burn-in moves it off the kink"
    model, x = t.small_model(0)
    x[1] = 0.0                     # row 1 of layer 1 is then b = 0, in units live on other rows
    assert not t.kinks_kept_by_dead_units([(model, x)])


def test_06_a_real_bug_is_not_explained_as_a_kink_or_rounding():
    t = definitions(6)
    assert t.all_explained({7: "kink", 24: "rounding"})
    _, x = t.small_model(0)
    assert t.diagnose(t.LossWithoutCount(10, [6, 3, 6], seed=0, dtype="float64"), x) == "unexplained"
    assert not t.all_explained({7: "kink", 0: "unexplained"}) and not t.all_explained({})


def test_06_the_recipe_claims_fail_on_buggy_models_and_the_bug_claim_on_correct_ones():
    t = definitions(6)
    for model_class in (t.LossWithoutCount, t.FirstLayerForgetsTranspose):
        buggy = [t.recipe_errors(seed, rows=10, model_class=model_class) for seed in range(3)]
        assert not t.passes_every_seed(buggy) and t.catches_every_seed(buggy)
    correct = [t.recipe_errors(seed, rows=10) for seed in range(3)]
    assert t.passes_every_seed(correct) and not t.catches_every_seed(correct)


def test_06_the_recipe_is_not_fit_for_checking_with_zero_biases():
    t = definitions(6)
    model, x = t.small_model(7)                       # seed 7 has a hidden kink at b = 0
    assert not t.fit_for_checking(model, x)
    assert t.fit_for_checking(t.with_positive_biases(model, 7), x)


class DenseAveragingDb(Dense):
    """A buggy Dense: db averages over the batch instead of summing."""

    def backward(self, dout, out=None, need_dx=True):
        dx = super().backward(dout, out, need_dx)
        self.db[...] = dout.mean(axis=0)
        return dx


def test_06_the_float32_claim_fails_for_a_buggy_layer():
    t = definitions(6)
    x = np.random.default_rng(2).standard_normal((5, 6))
    assert t.fails_only_in_float32(lambda dtype: Dense(6, 4, rng=np.random.default_rng(1), dtype=dtype), x)
    assert not t.fails_only_in_float32(
        lambda dtype: DenseAveragingDb(6, 4, rng=np.random.default_rng(1), dtype=dtype), x)


def test_06_the_kink_claims_fail_off_the_kink_and_the_bug_claim_for_a_relu_with_its_mask():
    t = definitions(6)
    x = t.away_from_kink(np.random.default_rng(0).standard_normal((3, 4)))
    on_kink = x.copy()
    on_kink[0, 0] = 0.0
    assert t.fails_check(ReLU(), on_kink) and not t.fails_check(ReLU(), x)
    assert t.fails_check(ReLUWithoutMask(), x), "'moved off the kink it passes' is false for a maskless ReLU"


# -- 07: Adam ---------------------------------------------------------------------------------------

def test_07_the_first_step_claims_fail_when_swapped_between_rmsprop_and_adam():
    t = definitions(7)
    rmsprop = t.descend("rmsprop", 0.01, t.AXIS, (1.0, 1.0), steps=1)
    adam = t.descend("adam", 0.01, t.AXIS, (1.0, 1.0), steps=1)
    ratio = 1 / np.sqrt(1 - t.B2)
    assert t.first_step_is(rmsprop, 0.01, ratio) and t.first_step_is(adam, 0.01, 1.0)
    assert not t.first_step_is(rmsprop, 0.01, 1.0), "the old text's 'about lr' for RMSProp"
    assert not t.first_step_is(adam, 0.01, ratio)


def bowl_finals(t, lrs=(("sgd", 0.019), ("momentum", 0.1), ("adam", 0.3))):
    """Tutorial 7's f after 100 steps, per (rule, bowl), each rule at the learning rate it picked."""
    turned = t.R @ t.AXIS @ t.R.T
    final = {}
    for rule, lr in lrs:
        final[rule, "axis-aligned"] = t.f_after(t.descend(rule, lr, t.AXIS, t.START), t.AXIS)
        final[rule, "turned"] = t.f_after(t.descend(rule, lr, turned, t.R @ t.START), turned)
    return final


def test_07_the_turned_bowl_claim_fails_for_adam_and_the_sgd_formula_for_momentum():
    t = definitions(7)
    final = bowl_finals(t)
    assert t.same_when_turned("sgd", final) and t.same_when_turned("momentum", final)
    assert not t.same_when_turned("adam", final)
    assert t.as_predicted(final["sgd", "axis-aligned"], t.sgd_prediction(0.019))
    assert not t.as_predicted(final["momentum", "axis-aligned"], t.sgd_prediction(0.1))


def test_07_the_race_claims_fail_turned_around_and_for_momentum_that_forgets_to_average():
    t = definitions(7)
    final = bowl_finals(t)
    assert t.beats(final, "momentum", "sgd", factor=10) and t.beats(final, "momentum", "adam")
    assert not t.beats(final, "adam", "momentum"), "on a bowl Adam is not 'the best of both'"
    assert t.beats(final, "adam", "sgd", bowls=("axis-aligned",))
    assert not t.beats(final, "sgd", "adam", bowls=("axis-aligned",))
    assert t.worse_when_turned("adam", final)
    assert not t.worse_when_turned("sgd", final) and not t.worse_when_turned("momentum", final)
    unaveraged = bowl_finals(t, [("sgd", 0.1)])                     # p -= lr * g at momentum's lr
    forgets = {**final, ("momentum", "axis-aligned"): unaveraged["sgd", "axis-aligned"],
               ("momentum", "turned"): unaveraged["sgd", "turned"]}
    assert not t.beats(forgets, "momentum", "sgd", factor=10) and not t.beats(forgets, "momentum", "adam")


def test_07_the_divergence_claim_fails_for_a_stable_learning_rate():
    t = definitions(7)
    start = t.f_after(np.array([t.START]), t.AXIS)
    assert t.ends_above(t.f_after(t.descend("sgd", 0.03, t.AXIS, t.START), t.AXIS), start)
    assert t.ends_above(float("inf"), start) and t.ends_above(float("nan"), start)
    assert not t.ends_above(t.f_after(t.descend("sgd", 0.019, t.AXIS, t.START), t.AXIS), start)


def test_07_the_hand_step_claim_fails_for_the_keras_form():
    t = definitions(7)
    lr, g = 0.1, 0.5
    m_hat, v_hat = (1 - t.B1) * g / (1 - t.B1), (1 - t.B2) * g**2 / (1 - t.B2)
    by_hand = 1.0 - lr * m_hat / (np.sqrt(v_hat) + t.EPS)
    for form, same in (("textbook", True), ("keras", False)):
        p = np.array([1.0])
        Adam(lr, t.B1, t.B2, t.EPS, form=form).step([p], [np.array([g])])
        assert t.same_step(p[0], by_hand) == same


def test_07_the_scale_claims_fail_for_lr_whatever_the_gradient_and_for_keras_with_plain_eps():
    t = definitions(7)
    gradients = (1e2, 1.0, 1e-8, 1e-10)
    steps = [t.first_adam_step(g) for g in gradients]
    assert t.first_step_is_lr_times(steps, gradients, lambda g: g / (g + t.EPS))
    assert not t.first_step_is_lr_times(steps, gradients, lambda g: 1.0), "'lr whatever the scale'"
    keras = t.first_adam_step(1e-4, "keras", 1e-3)
    assert not t.first_step_is_lr_times([keras], [1e-4], lambda g: g / (g + 1e-3))


def test_07_the_lr_within_1_percent_claim_fails_for_lr_everywhere_and_for_keras_default_eps():
    t = definitions(7)
    gradients = (1e2, 1.0, 1e-4, 1e-6, 1e-8, 1e-10)
    assert t.lr_only_where_g_is_large([t.first_adam_step(g) for g in gradients], gradients)
    assert not t.lr_only_where_g_is_large([0.1] * len(gradients), gradients), "'lr whatever the scale'"
    keras = [t.first_adam_step(g, "keras", 1e-7) for g in gradients]   # its epsilon is 3.2e-6 at step 1
    assert not t.lr_only_where_g_is_large(keras, gradients)


def test_07_the_batch_size_claim_fails_for_a_gradient_that_averages_rows():
    t = definitions(7)
    x = np.random.default_rng(0).uniform(size=(256, 784)).astype(np.float32)
    model = Autoencoder(784, [32, 16, 32], seed=0)
    size = {}
    for n in (64, 256):
        _, grads = model.loss(x[:n])
        size[n] = float(np.median(np.abs(grads[0][grads[0] != 0])))
    assert t.independent_of_batch_size(size[64], size[256])
    assert not t.independent_of_batch_size(size[64] / 64, size[256] / 256), "dW / N shrinks with N"



def test_07_the_autoencoder_claims_fail_for_untuned_sgd_and_for_sgd_with_scaled_gradients():
    t = definitions(7)
    adam, sgd_tuned, sgd_slow, sgd_scaled = 0.2239, 0.2307, 0.6869, 0.3761    # tutorial 7's full run
    assert t.within(sgd_tuned, adam, 0.1) and not t.within(sgd_slow, adam, 0.1)
    assert not t.within(sgd_scaled, sgd_tuned, 0.1) and t.within(0.2256, adam, 0.01)
    assert not t.within(float("nan"), sgd_tuned, 0.1), "a diverged run is not within anything"

# -- 08: training an autoencoder ---------------------------------------------------------------------

def test_08_the_bit_for_bit_claim_fails_for_one_weight_one_ulp_off_and_for_a_missing_layer():
    t = definitions(8)
    params = Autoencoder(6, [4], seed=0).params
    copies = [p.copy() for p in params]
    assert t.bit_for_bit(params, copies)
    copies[2].flat[0] = np.nextafter(copies[2].flat[0], np.float32(1))
    assert not t.bit_for_bit(params, copies)
    assert not t.bit_for_bit(params, params[:2]), "zip alone would stop at the shorter list"


def test_08_the_training_claims_fail_for_a_flat_curve_and_around_the_baseline_and_floor():
    t = definitions(8)
    floor, baseline = 0.0589, 0.2626
    assert t.falls([0.25, 0.12, 0.10]) and not t.falls([0.25, 0.3, 0.25]) and not t.falls([0.2, float("nan")])
    assert t.beats_baseline(0.10, baseline, floor)
    assert not t.beats_baseline(0.95 * baseline, baseline, floor), "beating it by 5% is not by 10%"
    assert not t.beats_baseline(floor - 1e-3, baseline, floor), "no BCE goes below the targets' entropy"


def test_08_the_floor_claim_fails_for_the_floor_a_student_expects_and_below_the_floor():
    t = definitions(8)
    start, floor, reached = 0.6926, 0.0589, 0.0592           # tutorial 8's overfit run, as printed
    assert t.closes_the_gap(reached, floor, start)
    assert not t.closes_the_gap(reached, 0.0, start), "measured against 0 the run looks unfinished"
    assert not t.closes_the_gap(floor - 1e-3, floor, start), "no BCE goes below the targets' entropy"


def test_08_the_entropy_is_the_bce_of_predicting_the_targets_and_zero_for_binary_ones():
    t = definitions(8)
    x = np.random.default_rng(0).uniform(size=(4, 6))
    p = np.clip(x, 1e-12, 1 - 1e-12)
    assert abs(t.entropy(x) - float(bce_with_logits(np.log(p) - np.log1p(-p), x)[0])) < 1e-9
    assert t.entropy(np.round(x)) == 0.0


def test_08_the_constant_output_claim_fails_away_from_the_mean_image():
    t = definitions(8)
    x = np.random.default_rng(1).uniform(size=(50, 6)).astype(np.float32)
    mean = x.mean(axis=0, dtype=np.float64)
    assert t.is_stationary(mean, x)
    assert not t.is_stationary(np.median(x, axis=0), x) and not t.is_stationary(mean + 1e-4, x)


def test_08_the_filter_claims_fail_for_weights_that_moved_everywhere_and_swapped_units():
    t = definitions(8)
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(20, 9)) * (np.arange(9) > 2)      # pixels 0-2 never inked
    w0 = rng.standard_normal((9, 4))
    w = w0 + np.where((np.arange(9) > 2)[:, None], 0.1, 0.0)
    assert t.unchanged_where_never_inked(w, w0, x)
    assert not t.unchanged_where_never_inked(w0 + 1e-7, w0, x)
    assert not t.unchanged_where_never_inked(w, w0, np.ones((3, 9))), "no never-inked pixel, no claim"
    assert t.moved_less(0.0076, 0.0178) and not t.moved_less(0.0178, 0.0076)
    assert t.mostly_pushed_down(np.array([0.86, 0.9]), np.array([0.5, 0.55]))
    assert not t.mostly_pushed_down(np.array([0.5, 0.55]), np.array([0.86, 0.9]))


# -- 09: the collapse, its mechanism and an intervention -----------------------------------------------

@pytest.fixture(scope="module")
def mnist_batch():
    return load_sample("mnist", limit_train=256, limit_val=10).x_train


def test_09_the_mechanism_claims_fail_when_the_first_layer_steps_by_lr_over_ink(mnist_batch):
    t = definitions(9)
    xb = mnist_batch
    g1, dw, z0, dz = t.one_step(Autoencoder(784, t.HIDDEN, seed=0), Adam(0.1, *t.BETAS), xb)
    ink = xb.sum(axis=1)
    assert t.moves_exactly_where_the_gradient_is_nonzero(dw, g1) and np.median(t.one_way(dw, xb)) > 0.8
    assert t.shifts_far(z0, dz, ink, 0.1) and t.dead_on(z0 + dz) >= 32
    model = Autoencoder(784, t.HIDDEN, seed=0)
    slowed = t.PerLayerAdam(model, [0.1 / ink.mean()] + [0.1] * 5)
    g1, dw, z0, dz = t.one_step(model, slowed, xb)
    assert not t.shifts_far(z0, dz, ink, 0.1) and t.dead_on(z0 + dz) < 32


def test_09_the_one_way_claim_fails_for_weights_moved_with_random_signs(mnist_batch):
    t = definitions(9)
    signs = np.random.default_rng(0).choice([-0.1, 0.1], size=(784, 128))
    assert np.median(t.one_way(signs, mnist_batch)) < 0.5
    assert np.median(t.one_way(np.abs(signs), mnist_batch)) == 1.0


def test_09_the_moves_claim_fails_for_a_step_that_moves_weights_with_zero_gradient():
    t = definitions(9)
    g = np.array([[0.0, 1.0], [2.0, 0.0]])
    assert t.moves_exactly_where_the_gradient_is_nonzero(-0.1 * np.sign(g), g)
    assert not t.moves_exactly_where_the_gradient_is_nonzero(-0.1 * np.sign(g) + 1e-3, g), "weight decay"


def run_record(dead_per_step, spread, knn):
    """(dead fractions of ReLU 1 and 2 after each step of epoch 1, the probe's numbers at the end)."""
    return np.array(dead_per_step), {"output_spread": spread, "knn_accuracy": knn}


def test_09_the_intervention_claims_fail_on_the_runs_they_would_be_wrong_about():
    t = definitions(9)
    hot = [run_record([[0.40, 0.50], [0.99, 0.97]], 0.054, 0.24),     # lr 0.1, seed 0 (it limps on)
           run_record([[0.36, 0.40], [0.99, 0.45]], 0.000, 0.11)]     # lr 0.1, seed 1 (collapsed)
    first = [run_record([[0.0, 0.2], [0.04, 1.0]], 0.000, 0.11)]
    each = [run_record([[0.0, 0.0], [0.01, 0.20]], 0.095, 0.69)]
    assert t.layer_dies(hot, 0) and t.layer_lives(first, 0) and t.layer_dies(first, 1)
    assert t.none_collapse(each) and t.layer_lives(each, 0)
    assert not t.none_collapse(hot) and not t.none_collapse(first) and not t.none_collapse(hot[:1])
    assert not t.layer_lives(hot, 0) and not t.layer_dies(each, 1) and not t.layer_dies(hot, 1)
    assert t.collapsed(hot[1][1]) and not t.collapsed(hot[0][1])


def test_09_the_same_weights_claim_fails_for_a_per_layer_adam_with_one_lr_off():
    t = definitions(9)
    x = np.random.default_rng(0).uniform(size=(3, 6)).astype(np.float32)
    plain, per_layer, off = (Autoencoder(6, [4], seed=0) for _ in range(3))
    assert t.same_weights(plain, per_layer) and not t.same_weights(plain, Autoencoder(6, [4], seed=1))
    train_step(plain, Adam(0.1, *t.BETAS), x)
    train_step(per_layer, t.PerLayerAdam(per_layer, [0.1, 0.1]), x)
    train_step(off, t.PerLayerAdam(off, [0.1, 0.01]), x)
    assert t.same_weights(plain, per_layer) and not t.same_weights(plain, off)
    assert not t.same_weights(plain, Autoencoder(6, [4, 4], seed=0)), "zip alone would stop at the shorter"


def ends(*vals):
    """Runs as results() gives them, with only each run's validation BCE at the end."""
    return [(None, {"val": v}) for v in vals]


def test_09_the_ends_lower_claim_fails_turned_around_and_when_one_seed_ends_higher():
    t = definitions(9)
    each, slow = ends(0.101, 0.103, 0.100), ends(0.112, 0.110, 0.111)
    assert t.ends_lower(each, slow) and not t.ends_lower(slow, each)
    assert not t.ends_lower(each, ends(0.112, 0.110, 0.099)), "lower on average is not lower on every seed"
    assert not t.ends_lower(ends(), ends()) and not t.ends_lower(each, slow[:2])


def test_09_the_mean_image_claims_fail_for_a_run_that_limps_on_and_for_a_real_digit():
    t = definitions(9)
    baseline, digit_gap = 0.2631, 0.21
    assert t.scores_the_baseline(0.2640, baseline)
    assert not t.scores_the_baseline(0.2400, baseline), "a limping run ends 9% below the baseline"
    assert t.much_closer(0.004, digit_gap)
    assert not t.much_closer(digit_gap, digit_gap) and not t.much_closer(digit_gap / 4, digit_gap)


def test_09_per_layer_adam_steps_each_layer_at_its_own_rate(mnist_batch):
    t = definitions(9)
    model = Autoencoder(784, t.HIDDEN, seed=0)
    before = [p.copy() for p in model.params]
    train_step(model, t.PerLayerAdam(model, [0.001] + [0.1] * 5), mnist_batch)
    first, second = (np.abs(model.params[i] - before[i]).max() for i in (0, 2))
    assert first <= 0.001 * 1.0001 and second > 0.05, "Adam's first step is at most lr per weight"


def test_09_most_collapse_fails_when_half_survive_or_when_codes_know_the_digit():
    t = definitions(9)
    collapsed = run_record([[0.9, 0.9]], 0.0, 0.11)
    limping = run_record([[0.9, 0.9]], 0.06, 0.3)
    healthy = run_record([[0.9, 0.9]], 0.1, 0.8)
    assert t.most_collapse([collapsed, collapsed, limping])
    assert not t.most_collapse([collapsed, limping]) and not t.most_collapse([collapsed, collapsed, healthy])


# -- 11: watching gradients --------------------------------------------------------------------------

def diagnostics(grad, ratio, dead, spread):
    """One entry of history.diagnostics, with ReLU 1's and W1's numbers only."""
    return {"grad_norm": [grad], "update_ratio": [ratio], "dead_fraction": [dead], "output_spread": spread}


def test_11_the_collapse_claim_fails_for_the_run_that_limps_on():
    t = definitions(11)
    healthy = [diagnostics(8.0e-3, 3.3e-3, 0.32, 0.110)]          # a run at lr 0.001
    limping = [diagnostics(1.45e-2, 2.1e-3, 0.99, 0.054)]         # a run at lr 0.1 that limps on
    # Lower than the healthy run's spread, so comparing spreads alone would call it a collapse.
    assert limping[-1]["output_spread"] < healthy[-1]["output_spread"]
    assert not t.one_output_image(limping) and t.one_output_image([diagnostics(0.0, 5e-3, 1.0, 0.0)])


def test_11_the_momentum_claims_fail_for_a_run_that_still_has_a_gradient():
    t = definitions(11)
    dying = [diagnostics(0.0, 2.3e-3 * 0.905 ** (20 * e), 1.0, 0.0) for e in range(3)]
    learning = [diagnostics(8e-3, r, 0.3, 0.1) for r in (4.8e-3, 4.7e-3, 4.9e-3)]
    assert t.moves_without_gradient(dying) and abs(t.per_step_decay(dying, 20) - 0.905) < 1e-9
    assert not t.moves_without_gradient(learning) and abs(t.per_step_decay(learning, 20) - 0.905) > 0.05
    frozen = [diagnostics(0.0, 0.0, 1.0, 0.0)] * 3
    assert not t.moves_without_gradient(frozen), "no update at all is not momentum"


def test_11_the_gradual_dying_claim_fails_for_a_collapse_and_for_a_run_that_never_loses_a_unit():
    t = definitions(11)
    gradual = [diagnostics(3e-3, 1.2e-2, d, 0.01) for d in (0.0, 0.02, 0.19, 0.26)]
    collapse = [diagnostics(3e-3, 1.2, d, 0.0) for d in (0.0, 0.36, 0.99, 1.0)]
    alive = [diagnostics(3e-3, 1.2e-2, 0.0, 0.01)] * 4
    assert t.dies_gradually(gradual[:2], gradual[2:])
    assert not t.dies_gradually(collapse[:2], collapse[2:]) and not t.dies_gradually(alive[:2], alive[2:])


def test_11_the_step_claims_fail_on_a_healthy_run():
    t = definitions(11)
    hot = [diagnostics(3e-3, 1.2, 0.36, 0.0), diagnostics(22.0, 0.75, 0.55, 0.03),
           diagnostics(0.06, 0.5, 0.99, 0.0)]
    healthy = [diagnostics(3e-3, 1.2e-2, 0.0, 0.005), diagnostics(9.6e-3, 1.1e-2, 0.0, 0.006),
               diagnostics(1.9e-2, 1.2e-2, 0.0, 0.007)]
    assert t.gradient_spikes(hot) and t.steps_to_dead(hot) == 3 and t.first_step_ratio(hot) > 1
    assert not t.gradient_spikes(healthy) and t.steps_to_dead(healthy, level=0.5) is None
    assert t.first_step_ratio(healthy) < 1
