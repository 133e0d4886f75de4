import json
import zipfile

import keras
import numpy as np
import pytest

from tfmodelsec.errors import ModelLoadError, UnsafeModelError
from tfmodelsec.models import as_victim, build_model, load_victim, save_model, train_classifier
from tfmodelsec.models.zoo import MODELS


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"mlp_784_128_10"}))
@pytest.mark.parametrize("shape", [(28, 28, 1), (8, 8, 1), (32, 32, 3)], ids=["mnist", "digits", "cifar"])
def test_zoo_builds_any_shape(name, shape):
    if name == "resnet18" and shape == (28, 28, 1):
        pytest.skip("covered by the other shapes")
    model = build_model(name, shape, 7)
    out = model(np.zeros((2, *shape), np.float32))
    assert out.shape == (2, 7)
    np.testing.assert_allclose(np.sum(out, axis=1), 1.0, rtol=1e-5)


def test_lenet5_is_the_classic_layout():
    model = build_model("lenet5", (28, 28, 1), 10)
    dense_units = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    conv_filters = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert conv_filters == [6, 16] and dense_units == [120, 84, 10]


def test_mlp_is_784_128_10():
    model = build_model("mlp", (784,), 10)
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [128, 10]


def test_zoo_errors():
    with pytest.raises(ValueError, match="model='vgg'"):
        build_model("vgg", (28, 28, 1), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mlp", (4,), 1)


def test_train_is_seeded_and_learns(digits):
    small = digits.subset(n_train=400, n_test=200)
    a = train_classifier("mlp", small, epochs=3, batch_size=32, seed=3, verbose=0)
    b = train_classifier("mlp", small, epochs=3, batch_size=32, seed=3, verbose=0)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a.test_accuracy > 0.5  # 10 classes: chance is 0.1
    with pytest.raises(ValueError, match="epochs"):
        train_classifier("mlp", small, epochs=0, verbose=0)


# ---------------------------------------------------------------- loading untrusted files


def _lambda_model():
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_fit_seeded_in_one_call_visits_the_batches_of_one_fit_per_epoch():
    """One ``fit`` over every epoch's seeded batches = one ``fit(shuffle=False)`` per epoch on the same orders."""
    from tfmodelsec.models.train import fit_seeded

    rng = np.random.default_rng(0)
    x, y = rng.random((70, 5)).astype(np.float32), rng.integers(0, 3, 70)  # 70 = 4 batches of 16 + 6

    def model():
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
        m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        return m

    one_call = model()
    history = fit_seeded(one_call, x, y, epochs=3, batch_size=16, rng=np.random.default_rng(7))
    per_epoch, orders, losses = model(), np.random.default_rng(7), []
    for _ in range(3):
        order = orders.permutation(len(x))
        losses += per_epoch.fit(x[order], y[order], batch_size=16, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-6)
    for a, b in zip(one_call.get_weights(), per_epoch.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_roundtrip_and_detection(tmp_path, tiny_model, suffix):
    path = save_model(tiny_model, tmp_path / f"m{suffix}", metadata={"note": "x"})
    victim = load_victim(path)
    assert victim.input_shape == (4,) and victim.num_classes == 3
    assert victim.output_kind == "probabilities"
    assert json.loads(path.with_suffix(".json").read_text()) == {"note": "x"}
    x = np.random.default_rng(0).uniform(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(victim.probabilities(x), tiny_model(x), rtol=1e-6)


def test_logit_models_are_detected(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    victim = load_victim(save_model(model, tmp_path / "logits.h5"))
    assert victim.output_kind == "logits"
    probs = victim.probabilities(np.ones((2, 4), np.float32))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert (probs >= 0).all()


def test_savedmodel_directory(tmp_path, tiny_model):
    export = tmp_path / "sm"
    tiny_model.export(str(export), verbose=0)
    victim = load_victim(export)
    x = np.random.default_rng(1).uniform(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(victim.probabilities(x), tiny_model(x), rtol=1e-5)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_lambda_refused_under_safe_mode(tmp_path, suffix):
    path = tmp_path / f"lam{suffix}"
    _lambda_model().save(path)
    with pytest.raises(UnsafeModelError, match="Lambda.*safe_mode=False"):
        load_victim(path)
    victim = load_victim(path, safe_mode=False)  # explicit opt-in
    assert victim.num_classes == 3


def test_unknown_custom_layer_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="evil")
    class Evil(keras.layers.Layer):
        def call(self, x):
            return x

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(Evil()(inputs)))
    path = tmp_path / "evil.keras"
    model.save(path)
    with pytest.raises(UnsafeModelError, match="evil>Evil"):
        load_victim(path)


def test_bad_files(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_victim(tmp_path / "nope.h5")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(ModelLoadError, match="unknown model format"):
        load_victim(txt)
    good = save_model(tiny_model, tmp_path / "good.h5")
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(good.read_bytes()[:600])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_victim(truncated)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_victim(garbage)
    weights_only = tmp_path / "w.weights.h5"
    tiny_model.save_weights(weights_only)
    with pytest.raises(ModelLoadError, match="no model architecture"):
        load_victim(weights_only)
    not_model = tmp_path / "layer.keras"
    with zipfile.ZipFile(not_model, "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Dense", "config": {"units": 2}}))
    with pytest.raises(ModelLoadError, match="no Keras model"):
        load_victim(not_model)
    empty_dir = tmp_path / "dir"
    empty_dir.mkdir()
    with pytest.raises(ModelLoadError, match="not a SavedModel"):
        load_victim(empty_dir)


def test_not_a_classifier():
    inputs = keras.Input((4,))
    with pytest.raises(ModelLoadError, match="classifier output"):
        as_victim(keras.Model(inputs, keras.layers.Dense(1)(inputs)))


def test_input_shape_mismatch_names_both(digits, tiny_model):
    victim = as_victim(tiny_model)
    with pytest.raises(ValueError, match=r"\(4,\).*\(8, 8, 1\)"):
        victim.check_input_shape(digits.input_shape, what="dataset 'digits'")


def test_own_registered_layers_load_in_a_fresh_process(tmp_path):
    """A model holding a tfmodelsec layer loads without the user importing that layer first."""
    import subprocess
    import sys

    from tfmodelsec.unlearning import MajorityVote

    inputs = keras.Input((4,))
    probs = keras.layers.Dense(3, activation="softmax")(inputs)
    model = keras.Model(inputs, MajorityVote()([probs, probs]))
    path = save_model(model, tmp_path / "vote.h5")
    code = ("import sys; from tfmodelsec import load_victim; "
            "v = load_victim(sys.argv[1]); print(v.num_classes, 'tfmodelsec.unlearning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["3", "True"]
