"""Input recovery through a trainable front-end before a frozen victim."""

import numpy as np
import pytest


def test_victim_frozen_and_models_reload_safely(digits_victim, tmp_path):
    import keras

    from tfmodelsec.attacks.recovery import recover_inputs

    before = [w.copy() for w in digits_victim.model.get_weights()]
    result = recover_inputs(digits_victim, epochs=8, lr=0.1, seed=0, verbose=0)
    after = digits_victim.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # the copy inside the combined model was not trained either
    inner = result.combined_model.layers[-1]
    assert all(np.array_equal(a, b) for a, b in zip(before, inner.get_weights(), strict=True))
    assert not any(w.trainable for w in inner.weights)
    attack_path, combined_path = result.save(tmp_path)
    one_hot = np.eye(10, dtype=np.float32)
    for path, model in ((attack_path, result.attack_model), (combined_path, result.combined_model)):
        loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
        np.testing.assert_allclose(loaded.predict(one_hot, verbose=0), model.predict(one_hot, verbose=0),
                                   atol=1e-6)
    assert result.images.shape == (10, 8, 8, 1)
    assert result.images.min() >= 0.0 and result.images.max() <= 1.0
    # the attack works: most recovered inputs land in their class on this small victim
    assert np.mean(digits_victim.predict_labels(result.images) == np.arange(10)) >= 0.8
    assert result.confidence.shape == (10,)


def test_same_seed_same_images_and_target_subset(digits_victim):
    from tfmodelsec.attacks.recovery import recover_inputs

    a = recover_inputs(digits_victim, targets=[3, 7], epochs=2, seed=1, verbose=0)
    b = recover_inputs(digits_victim, targets=[3, 7], epochs=2, seed=1, verbose=0)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.targets.tolist() == [3, 7] and a.images.shape == (2, 8, 8, 1)


def test_outputs_inside_a_custom_input_range():
    import keras

    from tfmodelsec.attacks.recovery import recover_inputs
    from tfmodelsec.models import as_victim

    inputs = keras.Input((4, 4, 1))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    victim = as_victim(keras.Model(inputs, outputs), input_range=(-1.0, 1.0))
    result = recover_inputs(victim, epochs=3, lr=0.5, verbose=0)
    assert result.images.min() >= -1.0 and result.images.max() <= 1.0
    assert result.images.min() < 0.0  # the range really is used, not only [0, 1]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"targets": [10]}, "targets"), ({"targets": [-1]}, "targets"), ({"epochs": 0}, "epochs"),
     ({"lr": -0.1}, "lr")],
    ids=["class-too-big", "class-negative", "epochs-zero", "lr-negative"],
)
def test_bad_arguments(digits_victim, kwargs, match):
    from tfmodelsec.attacks.recovery import recover_inputs

    with pytest.raises(ValueError, match=match):
        recover_inputs(digits_victim, verbose=0, **kwargs)


def test_feature_vector_victim_and_unbounded_needs_bounds(tiny_model):
    from tfmodelsec.attacks.recovery import recover_inputs
    from tfmodelsec.models import as_victim

    result = recover_inputs(tiny_model, epochs=3, lr=0.5, verbose=0)  # 4 features, [0, 1] assumed
    assert result.images.shape == (3, 4) and result.image_shape is None
    assert result.images.min() >= 0.0 and result.images.max() <= 1.0
    with pytest.raises(ValueError, match="unbounded.*bounds"):
        recover_inputs(as_victim(tiny_model, input_range=None), verbose=0)
    boxed = recover_inputs(as_victim(tiny_model, input_range=None), epochs=3, lr=0.5, verbose=0,
                           bounds=([-2.0, -1.0, 0.0, 1.0], 3.0))
    assert np.all(boxed.images >= np.array([-2.0, -1.0, 0.0, 1.0])) and boxed.images.max() <= 3.0


def test_cli_recover_writes_files(digits_victim, tmp_path):
    from tfmodelsec.cli import main
    from tfmodelsec.models import save_model

    path = save_model(digits_victim.model, tmp_path / "victim.h5")
    out = tmp_path / "out"
    assert main(["recover", str(path), "--target", "9", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    for name in ("recovery.json", "recovered.npy", "recovered.png", "attack_model.h5", "combined_model.h5"):
        assert (out / name).is_file(), name
    assert np.load(out / "recovered.npy").shape == (1, 8, 8, 1)
    assert main(["recover", str(path), "--target", "12", "--out", str(out), "--quiet"]) == 2
