"""The Autoencoder: end-to-end gradient check, contract, save/load, parity."""

import json

import numpy as np
import pytest

from minae import Autoencoder, CheckpointError
from minae.gradcheck import assert_close, check_model, numerical_gradient
from minae.optim import Adam


def _small_model(seed=3):
    return Autoencoder(8, [6, 3, 5], seed=seed, dtype="float64")


def test_every_parameter_gradient_matches_finite_differences(rng):
    model = _small_model()
    for layer in model.dense:   # nonzero biases so every db is exercised
        layer.b += 0.1 * rng.standard_normal(layer.b.shape)
    x = rng.uniform(size=(5, 8))
    errors = check_model(model, x)
    assert len(errors) == len(model.params) == 8
    assert max(errors) < 1e-6, errors


def test_params_and_grads_follow_the_layer_order(rng):
    model = Autoencoder(10, [4, 2, 4], dtype="float64")
    shapes = [(10, 4), (4,), (4, 2), (2,), (2, 4), (4,), (4, 10), (10,)]
    assert [p.shape for p in model.params] == shapes
    loss, grads = model.loss(rng.uniform(size=(3, 10)))
    assert loss.shape == () and [g.shape for g in grads] == shapes
    assert all(p is layer_p for p, layer_p in zip(model.params, [model.dense[0].W, model.dense[0].b,
                                                                  model.dense[1].W, model.dense[1].b,
                                                                  model.dense[2].W, model.dense[2].b,
                                                                  model.dense[3].W, model.dense[3].b]))


def test_parameters_and_gradients_are_views_into_one_flat_buffer(rng):
    model = Autoencoder(10, [4, 2, 4], dtype="float64")
    assert model.flat_params.shape == model.flat_grads.shape == (sum(p.size for p in model.params),)
    np.testing.assert_array_equal(model.flat_params, np.concatenate([p.ravel() for p in model.params]))
    model.flat_params[:] = 0.5                  # the layers see a write to the buffer...
    assert all((p == 0.5).all() for p in model.params)
    model.dense[1].W[...] = 2.0                 # ...and the buffer sees a write to a layer
    assert (model.flat_params == 2.0).sum() == model.dense[1].W.size
    _, grads = model.loss(rng.uniform(size=(3, 10)))
    np.testing.assert_array_equal(model.flat_grads, np.concatenate([g.ravel() for g in grads]))


def test_a_workspace_changes_no_bit_of_loss_or_gradients(rng):
    x = rng.uniform(size=(40, 12)).astype(np.float32)
    a, b = Autoencoder(12, [7, 3, 7], seed=2), Autoencoder(12, [7, 3, 7], seed=2)
    work = b.workspace(32)
    for rows in (x[:32], x[32:]):   # a full and a short batch
        loss_a, grads_a = a.loss(rows)
        loss_b, grads_b = b.loss(rows, work=work)
        assert loss_a.tobytes() == loss_b.tobytes()
        assert all(g.tobytes() == h.tobytes() for g, h in zip(grads_a, grads_b))
    with pytest.raises(ValueError, match="larger than the 32"):
        b.loss(rng.uniform(size=(33, 12)), work=work)


def test_a_stack_of_models_computes_each_models_own_numbers(rng):
    models = [Autoencoder(12, [7, 3, 7], seed=s, dtype="float64") for s in (1, 2, 3)]
    for m in models:
        for layer in m.dense:
            layer.b += 0.1 * rng.standard_normal(layer.b.shape)
    stack = Autoencoder.stack(models)
    assert stack.stack_size == 3 and stack.flat_params.shape == (3 * models[0].flat_params.size,)
    assert stack.params[0].shape == (3, 12, 7) and stack.params[1].shape == (3, 7)
    # Each block holds the K copies of one parameter back to back, so a batched
    # matmul reads W and writes dW in place, contiguous (a GPU copies strided operands).
    assert all(a.flags.c_contiguous for a in (*stack.params, *stack.grads))
    for k, m in enumerate(models):
        np.testing.assert_array_equal(stack.model_flat(stack.flat_params, k), m.flat_params)
        # model_index marks model k's elements: the same numbers, in block order.
        own = stack.flat_params[stack.model_index == k]
        np.testing.assert_array_equal(np.sort(own), np.sort(m.flat_params))
    x = rng.uniform(size=(3, 5, 12))
    losses, grads = stack.loss(x)
    assert losses.shape == (3,)
    for k, m in enumerate(models):
        loss, own = m.loss(x[k])
        assert float(losses[k]) == pytest.approx(float(loss), rel=1e-14)
        for g_stack, g in zip(grads, own):
            np.testing.assert_allclose(g_stack[k], g, rtol=1e-12, atol=1e-16)
    shared = rng.uniform(size=(4, 12))   # one input for all K broadcasts
    np.testing.assert_allclose(stack.predict(shared)[1], models[1].predict(shared), rtol=1e-13)
    stack.flat_params[stack.model_index == 2] += 1.0   # model 2's elements only
    stack.unstack_into(2, models[0])
    np.testing.assert_allclose(models[0].params[0], models[2].params[0] + 1.0)


def test_a_stacks_gradients_match_finite_differences(rng):
    stack = Autoencoder.stack([_small_model(seed) for seed in (3, 4)])
    x = rng.uniform(size=(2, 5, 8))
    _, grads = stack.loss(x)
    grads = [g.copy() for g in grads]
    for p, g in zip(stack.params, grads):
        numeric = numerical_gradient(lambda: stack.loss(x, check=False)[0].sum(), p)
        assert_close(g, numeric, tol=1e-6)


def test_a_stack_refuses_mixed_architectures():
    with pytest.raises(ValueError, match="share input_dim, hidden"):
        Autoencoder.stack([_small_model(), Autoencoder(8, [6, 3, 5])])
    with pytest.raises(ValueError, match="save the models of a stack one by one"):
        Autoencoder.stack([_small_model(), _small_model()]).save("never.npz")


def test_predict_is_in_unit_interval_and_encode_has_layer_widths(rng):
    model = Autoencoder(12, [7, 3, 7])
    x = rng.uniform(size=(4, 12)).astype(np.float32)
    out = model.predict(x)
    assert out.shape == (4, 12) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert [model.encode(x, layer=k).shape[1] for k in (1, 2, 3)] == [7, 3, 7]
    assert (model.encode(x, layer=1) >= 0).all()
    assert model.code_layer == 2
    with pytest.raises(ValueError, match="from 1 to 3"):
        model.encode(x, layer=4)


def test_decode_is_the_second_half_of_predict_bit_for_bit(rng):
    model = Autoencoder(12, [8, 3, 8], seed=2)
    x = rng.random((5, 12)).astype(np.float32)
    for layer in (1, 2, 3):
        assert np.array_equal(model.decode(model.encode(x, layer=layer), layer=layer), model.predict(x))
    assert model.decode(np.zeros((4, 3), np.float32)).shape == (4, 12)   # default: the code layer
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        model.decode(np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="layer must be"):
        model.decode(np.zeros((4, 8), np.float32), layer=4)


def test_parameter_count_is_every_weight_and_bias():
    model = Autoencoder(10, [4, 2, 4])
    assert model.n_params == 10 * 4 + 4 + 4 * 2 + 2 + 2 * 4 + 4 + 4 * 10 + 10 == model.flat_params.size
    assert "116 parameters" in repr(model)
    assert model.summary().splitlines()[-1].split()[-1] == "116"


def test_same_seed_gives_bitwise_identical_training(rng):
    x = rng.uniform(size=(32, 20)).astype(np.float32)

    def train():
        model, opt = Autoencoder(20, [8, 4, 8], seed=7), Adam(0.01)
        for _ in range(5):
            _, grads = model.loss(x)
            opt.step(model.params, grads)
        return model.params

    for a, b in zip(train(), train()):
        assert a.tobytes() == b.tobytes()
    w1, w2 = Autoencoder(20, [8], seed=1).params[0], Autoencoder(20, [8], seed=2).params[0]
    assert w1.tobytes() != w2.tobytes()


@pytest.mark.parametrize("hidden, match", [
    ([0, 4], "positive integer"), ([3.5], "positive integer"), ([-2], "positive integer"),
    ([], "at least one"), ("32,16", "list of layer widths"), ([True], "positive integer"),
])
def test_bad_hidden_sizes_are_rejected(hidden, match):
    with pytest.raises(ValueError, match=match):
        Autoencoder(10, hidden)


def test_a_model_larger_than_the_machine_names_its_layers_before_allocating():
    # NumPy's "Unable to allocate 584. GiB for an array with shape (784, 100000000)" named
    # a shape, not the argument.
    with pytest.raises(ValueError, match=r"input_dim 784 and hidden \[100000000\] make a model of 1,169 GiB "
                                         r"of weights .*choose narrower layers"):
        Autoencoder(784, [10**8])


def test_bad_constructor_arguments_are_rejected():
    with pytest.raises(ValueError, match="input_dim"):
        Autoencoder(0, [3])
    with pytest.raises(ValueError, match="dtype"):
        Autoencoder(5, [3], dtype="float16")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        Autoencoder(5, [3], backend="tpu")
    with pytest.raises(ValueError, match="unknown initialiser"):
        Autoencoder(5, [3], init="orthogonal")


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 7)), r"shape \(N, 6\)"), (np.zeros(6), r"shape \(N, 6\)"),
    (np.full((2, 6), np.nan), "NaN"), (np.full((2, 6), 255.0), r"\[0, 1\].*255"),
])
def test_bad_inputs_are_rejected(x, match):
    model = Autoencoder(6, [3])
    with pytest.raises(ValueError, match=match):
        model.loss(x)


def test_a_list_where_an_array_belongs_is_named_as_a_list(rng):
    model = Autoencoder(6, [3])
    with pytest.raises(ValueError, match=r"x must be an array of shape \(N, 6\), got a list; make it "
                                         r"one with numpy.asarray"):
        model.predict(rng.uniform(size=(2, 6)).tolist())   # was "got ()": the shape of nothing


def test_save_and_load_name_a_path_or_extra_they_cannot_use(tmp_path):
    with pytest.raises(TypeError, match=r"path must be a file path \(a str or pathlib.Path\), got 123"):
        Autoencoder.load(123)
    with pytest.raises(TypeError, match="extra must hold only what JSON can store"):
        Autoencoder(6, [3]).save(tmp_path / "m.npz", extra={"when": object()})
    assert not list(tmp_path.iterdir())


def test_metadata_nested_deeper_than_the_parser_goes_is_a_checkpoint_error(tmp_path):
    np.savez(tmp_path / "deep.npz", minae_meta=np.array("[" * 100_000 + "]" * 100_000))
    with pytest.raises(CheckpointError, match="its minae metadata is not valid JSON"):   # a RecursionError
        Autoencoder.load(tmp_path / "deep.npz")


def test_metadata_larger_than_any_minae_writes_is_refused_before_it_is_read(tmp_path):
    path = Autoencoder(4, [2]).save(tmp_path / "m.npz")
    with np.load(path) as f:
        stored = {k: f[k] for k in f.files}
    padded = str(stored["minae_meta"])[:-1] + ", " + " " * 300_000 + "}"   # valid JSON, 1.2 MB as UTF-32
    np.savez(path, **{**stored, "minae_meta": np.array(padded)})
    with pytest.raises(CheckpointError, match="metadata is <U300.* not one string of at most 1,048,576"):
        Autoencoder.load(path)


def test_save_and_load_round_trip(tmp_path, rng):
    model = Autoencoder(9, [5, 2, 5], seed=4)
    Adam(0.1).step(model.params, [rng.standard_normal(p.shape).astype(np.float32) for p in model.params])
    path = model.save(tmp_path / "sub" / "m.npz", extra={"lr": 0.1})
    loaded = Autoencoder.load(path)
    assert loaded.hidden == [5, 2, 5] and loaded.dtype == "float32" and loaded.extra == {"lr": 0.1}
    for a, b in zip(model.params, loaded.params):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_loading_something_else_is_a_clear_error(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="not a minae checkpoint"):
        Autoencoder.load(tmp_path / "text.npz")
    np.savez(tmp_path / "plain.npz", W1=np.zeros((2, 2)))
    with pytest.raises(CheckpointError, match="no minae_meta"):
        Autoencoder.load(tmp_path / "plain.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="not a minae checkpoint"):
        Autoencoder.load(tmp_path / "array.npy")
    meta = {"format": "minae-autoencoder", "version": 1, "input_dim": 4, "hidden": [2],
            "dtype": "float32", "seed": 0, "init": "glorot_uniform"}
    np.savez(tmp_path / "short.npz", minae_meta=np.array(json.dumps(meta)), W1=np.zeros((4, 2), np.float32))
    with pytest.raises(CheckpointError, match="b1 is missing"):
        Autoencoder.load(tmp_path / "short.npz")
    with pytest.raises(CheckpointError, match="not a zip archive") as error:
        Autoencoder.load(tmp_path / "text.npz")
    assert "pickle" not in str(error.value)


def _checkpoint_with(tmp_path, input_dim=4, meta_changes=None, **arrays):
    """A checkpoint of Autoencoder(input_dim, [2]) whose metadata or arrays are replaced."""
    model = Autoencoder(input_dim, [2])
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as f:
        stored = {k: f[k] for k in f.files}
    meta = json.loads(str(stored["minae_meta"]))
    meta.update(meta_changes or {})
    stored.update(minae_meta=np.array(json.dumps(meta)), **arrays)
    np.savez(path, **stored)
    return path


@pytest.mark.parametrize("meta_changes, arrays, match", [
    ({"hidden": [2_000_000]}, {}, r"W1 has shape \(4, 2\) but the metadata implies \(4, 2000000\)"),
    ({"hidden": [30_000_000]}, {}, "implies"),
    ({"hidden": "2"}, {}, "hidden must be a non-empty list"),
    ({"dtype": "int8"}, {}, "dtype must be one of"),
    ({"init": "zeros"}, {}, "unknown initialiser"),
    ({"seed": -1}, {}, "seed must be a non-negative integer"),
    ({}, {"W1": np.zeros((4, 2), np.complex64)}, "W1 is complex64 but the metadata says float32"),
    ({}, {"b2": np.full(4, np.nan, np.float32)}, "b2 holds NaN or infinite weights"),
    ({}, {"W9": np.zeros(2, np.float32)}, "arrays the metadata does not describe"),
])
def test_a_checkpoint_is_checked_against_its_metadata_before_anything_is_allocated(
        tmp_path, meta_changes, arrays, match):
    path = _checkpoint_with(tmp_path, meta_changes=meta_changes, **arrays)
    with pytest.raises(CheckpointError, match=match) as error:
        Autoencoder.load(path)
    assert str(path) in str(error.value)


def test_a_diverged_runs_checkpoint_loads_when_asked_to_with_its_nan_weights(tmp_path):
    path = _checkpoint_with(tmp_path, b2=np.full(4, np.nan, np.float32))
    model = Autoencoder.load(path, finite=False)
    assert np.isnan(model.params[3]).all() and np.isfinite(model.params[0]).all()


def test_loading_metadata_that_claims_two_million_units_stays_small(tmp_path):
    # Once, such a file made load allocate the model its metadata claimed and the
    # kernel killed the grid. Measured in a fresh process: peak resident memory.
    import subprocess
    import sys

    path = _checkpoint_with(tmp_path, 784, meta_changes={"hidden": [2_000_000]})   # 12.5 GB of W1, W2
    code = ("import resource, sys\nfrom minae import Autoencoder, CheckpointError\n"
            "try:\n    Autoencoder.load(sys.argv[1])\nexcept CheckpointError:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    peak_kib = int(subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                                  check=True).stdout)
    assert peak_kib < 1024 * 1024, f"loading peaked at {peak_kib / 1024:.0f} MiB"
    with pytest.raises(FileNotFoundError):
        Autoencoder.load(tmp_path / "nothing.npz")


def test_training_step_runs_on_every_backend_and_matches_numpy_in_float64(backend, rng):
    """NumPy-vs-backend parity: one forward, backward and Adam step in float64."""
    x = rng.uniform(size=(16, 30))
    ref = Autoencoder(30, [12, 4, 12], seed=5, dtype="float64")
    other = Autoencoder(30, [12, 4, 12], seed=5, dtype="float64", backend=backend)
    for a, b in zip(ref.params, other.params):   # identical initial weights everywhere
        assert np.array_equal(a, backend.to_host(b))
    loss_ref, grads_ref = ref.loss(x)
    loss_other, grads_other = other.loss(backend.asarray(x))
    assert float(loss_other) == pytest.approx(float(loss_ref), rel=1e-12)
    for g_ref, g in zip(grads_ref, grads_other):
        np.testing.assert_allclose(backend.to_host(g), g_ref, rtol=1e-10, atol=1e-14)
    Adam(0.01).step(ref.params, grads_ref)
    Adam(0.01).step(other.params, grads_other)
    for a, b in zip(ref.params, other.params):
        np.testing.assert_allclose(backend.to_host(b), a, rtol=1e-10, atol=1e-14)


def test_a_stack_counts_each_models_parameters():
    models = [Autoencoder(10, [4, 2, 4], seed=s) for s in (1, 2, 3)]
    stack = Autoencoder.stack(models)
    assert stack.n_params == models[0].n_params == 116 and stack.flat_params.size == 3 * 116
    assert "116 parameters" in repr(stack) and stack.summary().splitlines()[-1].split()[-1] == "116"


def test_a_models_layers_are_made_by_their_own_constructor(monkeypatch):
    # An attribute a student adds in Dense.__init__ reaches the model's layers too.
    from minae import layers

    original = layers.Dense.__init__

    def with_a_note(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.note = "made by Dense.__init__"

    monkeypatch.setattr(layers.Dense, "__init__", with_a_note)
    for model in (Autoencoder(6, [3]), Autoencoder.stack([Autoencoder(6, [3]), Autoencoder(6, [3])])):
        assert all(layer.note == "made by Dense.__init__" for layer in model.dense)
