"""Victims as users save them: input ranges (detected, given, from the data), flat-input and tabular victims."""

import json

import numpy as np
import pytest

from tfmodelsec.cli import main

QUIET = ["--quiet"]


# --------------------------------------------------------------------------- small victims built here


@pytest.fixture(scope="module")
def flat_mlp(digits, tmp_path_factory):
    """A flat-input MLP (Input(64) -> Dense(32) -> Dense(10)) on sklearn digits, saved as .h5."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(digits.x_train.reshape(-1, 64), digits.y_train, epochs=5, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("flat") / "flat.h5"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    """A 20-class, 12-feature standardised table in an .npz and an MLP trained on it (.h5)."""
    import keras

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 12)) * 1.5
    y = np.repeat(np.arange(20), 40)
    x = (centres[y] + rng.normal(size=(len(y), 12))).astype(np.float32)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    root = tmp_path_factory.mktemp("tab")
    np.savez(root / "table.npz", x_train=x[:640], y_train=y[:640], x_test=x[640:], y_test=y[640:])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(20, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x[:640], y[:640], epochs=10, batch_size=64, verbose=0)
    model.save(root / "tab.h5")
    return root


# --------------------------------------------------------------------------- input ranges


@pytest.mark.parametrize("text, expected", [("0,255", (0.0, 255.0)), (" -1 , 1 ", (-1.0, 1.0)), ("none", None),
                                            ("None", None), ("auto", "auto"), ((0, 1), (0.0, 1.0)), (None, None)],
                         ids=["pixels", "spaces", "none", "None", "auto", "tuple", "python-none"])
def test_parse_input_range(text, expected):
    from tfmodelsec.models import parse_input_range

    assert parse_input_range(text, allow_auto=True) == expected


@pytest.mark.parametrize("text", ["1,0", "0,0", "0", "a,b", "0,1,2", "0,inf", "auto"],
                         ids=["reversed", "empty", "one", "words", "three", "inf", "auto-not-allowed"])
def test_bad_input_range_names_the_argument(text):
    from tfmodelsec.models import parse_input_range

    with pytest.raises(ValueError, match="input_range.*Received"):
        parse_input_range(text)


def test_cli_input_range_errors_are_one_line(tmp_path, tiny_model, capsys):
    from tfmodelsec.models import save_model

    path = save_model(tiny_model, tmp_path / "m.h5")
    assert main(["info", str(path), "--input-range", "5,1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--input-range" in err and "'5,1'" in err
    assert main(["info", str(path), "--input-range", "none", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_range"] is None and info["input_range_source"].startswith("user")


@pytest.mark.parametrize("layer, expected", [("Rescaling(1/255)", (0.0, 255.0)),
                                             ("Rescaling(1/127.5, -1)", (0.0, 255.0)),
                                             ("Rescaling(2, -1)", (0.0, 1.0)), ("Normalization", None),
                                             ("Dense", (0.0, 1.0))],
                         ids=["unit", "symmetric", "from-unit", "normalization", "nothing"])
def test_range_is_read_from_the_first_layer(layer, expected):
    import keras

    from tfmodelsec.models import as_victim

    first = {"Rescaling(1/255)": keras.layers.Rescaling(1 / 255), "Rescaling(1/127.5, -1)":
             keras.layers.Rescaling(1 / 127.5, offset=-1), "Rescaling(2, -1)": keras.layers.Rescaling(2.0, -1.0),
             "Normalization": keras.layers.Normalization(mean=[0.0] * 4, variance=[1.0] * 4),
             "Dense": keras.layers.Dense(4)}[layer]
    model = keras.Sequential([keras.Input((4,)), first, keras.layers.Dense(3, activation="softmax")])
    victim = as_victim(model)
    assert victim.input_range == expected
    assert victim.range_origin == {"Dense": "assumed", "Normalization": "normalization"}.get(layer, "model")
    assert as_victim(model, input_range="0,9").input_range == (0.0, 9.0)  # given beats detected


def test_data_rescaled_to_the_victim_range_or_refused(tiny_model, capsys):
    from tfmodelsec.data import Dataset
    from tfmodelsec.models import align_data, as_victim

    rng = np.random.default_rng(0)
    unit = Dataset.from_arrays(rng.random((6, 4)), [0, 1, 2, 0, 1, 2], rng.random((3, 4)), [0, 1, 2],
                               value_range=(0, 1))
    victim, data = align_data(as_victim(tiny_model, input_range=(0, 255)), unit)
    np.testing.assert_allclose(data.x_train, unit.x_train * 255, rtol=1e-6)
    assert data.value_range == (0.0, 255.0) and "rescaling dataset" in capsys.readouterr().err
    features = Dataset.from_arrays(rng.normal(size=(6, 4)) * 3, [0, 1, 2, 0, 1, 2], rng.random((3, 4)), [0, 1, 2])
    with pytest.raises(ValueError, match="outside the victim's input range.*--input-range none"):
        align_data(as_victim(tiny_model, input_range=(0, 1)), features)
    victim, same = align_data(as_victim(tiny_model), features)  # nothing fixes the range: the data's (unbounded)
    assert victim.input_range is None and victim.range_origin == "data" and same.x_train is features.x_train


def test_assumed_range_picks_what_the_victim_classifies(digits_victim, digits, capsys):
    """A [0, 1] model audited on 0..255 data: the data is rescaled, since the victim does far better on it."""
    from dataclasses import replace

    from tfmodelsec.models import align_data, as_victim

    raw = replace(digits, x_train=digits.x_train * 255, x_test=digits.x_test * 255, value_range=(0.0, 255.0))
    victim, data = align_data(as_victim(digits_victim.model), raw)
    assert victim.input_range == (0.0, 1.0) and data.value_range == (0.0, 1.0)
    np.testing.assert_allclose(data.x_test, digits.x_test, atol=1e-6)
    assert "rescaled from [0, 255] to [0, 1]" in capsys.readouterr().err


def test_oracle_takes_unbounded_queries_and_names_the_range_origin(tiny_model):
    from tfmodelsec.errors import InvalidQueryError
    from tfmodelsec.models import as_victim
    from tfmodelsec.oracle import BlackBox

    x = np.array([[-5.0, 3.0, 40.0, 0.0]], np.float32)
    assert BlackBox(as_victim(tiny_model, input_range=None))(x).shape == (1, 3)
    with pytest.raises(InvalidQueryError, match="assumed"):
        BlackBox(tiny_model)(x)


def test_rescaling_victim_inverts_in_its_detected_range(digits_victim, tmp_path, capsys):
    """LeNet-5 behind Rescaling(1/255) takes 0..255 pixels: the range is detected and the inversion
    searches 0..255, where the victim is sure of what it finds (in [0, 1], the old default, it stays < 0.25)."""
    import keras

    from tfmodelsec.attacks.inversion import invert
    from tfmodelsec.models import as_victim

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, digits_victim.model(keras.layers.Rescaling(1 / 255)(inputs)))
    model.save(tmp_path / "raw.h5")
    assert main(["info", str(tmp_path / "raw.h5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_range"] == [0.0, 255.0] and "Rescaling" in info["input_range_source"]
    # confidence alone (no image priors, which on 8x8 digits hold "8" below 0.99 in any range)
    settings = dict(steps=100, loss="ce", lr=0.1, l2_weight=0.1, tv_weight=0.1, jitter=0, blur_sigma=0.0,
                    stop_confidence=0.995, verbose=0)
    result = invert(as_victim(model), **settings)
    assert result.confidence.min() >= 0.99 and result.value_range == (0.0, 255.0)
    assert 1.0 < result.images.max() <= 255.0 and result.images.min() >= 0.0


def test_zoo_models_for_raw_pixels_scale_them_and_old_chains_read_as_unit_range():
    """A zoo model built for 0..255 data puts a weightless Rescaling in front (same weight list, so chain
    checkpoints keep their layout); a chain manifest written before the field existed reads as [0, 1]."""
    from tfmodelsec.models import build_model
    from tfmodelsec.unlearning import ChainConfig

    plain, raw = build_model("mlp", (6,), 3), build_model("mlp", (6,), 3, input_range=(0, 255))
    assert [w.shape for w in plain.weights] == [w.shape for w in raw.weights]
    raw.set_weights(plain.get_weights())
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    np.testing.assert_allclose(raw(x * 255), plain(x), atol=1e-5)
    assert build_model("mlp", (6,), 3, input_range=None) is not None
    old = {"model": "mlp", "dataset": "d", "n_train": 10, "input_shape": [6], "num_classes": 3, "blocks": 2}
    assert ChainConfig.from_dict(old).input_range == (0.0, 1.0)
    assert ChainConfig.from_dict({**old, "input_range": [0, 255]}).to_dict()["input_range"] == [0.0, 255.0]


# --------------------------------------------------------------------------- a flat-input MLP


def test_flat_mlp_through_recover_invert_steal(flat_mlp, tmp_path, capsys):
    common = ["--dataset", "digits", *QUIET]
    assert main(["recover", str(flat_mlp), "--epochs", "10", "--out", str(tmp_path / "r"), *common]) == 0
    rec = json.loads((tmp_path / "r" / "recovery.json").read_text())
    assert np.load(tmp_path / "r" / "recovered.npy").shape == (10, 8, 8, 1)  # shown as the dataset's images
    assert rec["min_confidence"] >= 0.99 and rec["victim"]["image_shape"] == [8, 8, 1]
    assert main(["invert", str(flat_mlp), "--steps", "20", "--out", str(tmp_path / "i"), *common]) == 0
    assert np.load(tmp_path / "i" / "inverted.npy").shape == (10, 8, 8, 1)
    assert (tmp_path / "i" / "inversion.png").stat().st_size > 0
    assert main(["steal", str(flat_mlp), "--queries", "100", "--select", "random", "--epochs", "2",
                 "--active-share", "0", "--no-self-training", "--eval-samples", "200", "--out", str(tmp_path / "s"),
                 *common]) == 0
    row = json.loads((tmp_path / "s" / "steal.json").read_text())["rows"][0]
    assert row["oracle_queries"] == 100 and row["accuracy"] > 0.5
    err = capsys.readouterr().err
    assert err.count("reshaping dataset 'digits' samples (8, 8, 1) to (64,)") == 3  # said once per command


# --------------------------------------------------------------------------- a tabular victim


def test_tabular_victim_through_steal_defend_export(tabular, tmp_path, capsys):
    victim, data = str(tabular / "tab.h5"), ["--dataset", str(tabular / "table.npz")]
    assert main(["steal", victim, *data, "--queries", "150", "--select", "drmi", "--candidates", "300",
                 "--restarts", "2", "--epochs", "3", "--active-share", "0", "--no-self-training",
                 "--out", str(tmp_path / "s"), *QUIET]) == 0
    out = json.loads((tmp_path / "s" / "steal.json").read_text())
    assert out["victim"]["input_range"] is None and out["rows"][0]["accuracy"] > 0.5  # 20 classes: chance 5%
    assert main(["defend", victim, *data, "--defense", "apgp_top1", "--epochs", "1", "--out", str(tmp_path / "d"),
                 *QUIET]) == 0
    defended = json.loads((tmp_path / "d" / "defend.json").read_text())
    assert defended["label_kept"] == 1.0  # APGP-top1 keeps every label on feature vectors too
    assert main(["export", victim, *data, "--defense-path", str(tmp_path / "d" / "defense.keras"),
                 "--defense", "apgp_top1", "--out", str(tmp_path / "e")]) == 0  # checked against the in-process model
    meta = json.loads((tmp_path / "e" / "1" / "assets.extra" / "tfmodelsec_export.json").read_text())
    assert meta["victim"]["input_range"] is None and meta["victim"]["input_shape"] == [12]
    assert capsys.readouterr().out.rstrip().endswith("OK")


def test_tabular_chain_and_unlearn_with_the_mlp(tabular, tmp_path, capsys):
    data = ["--dataset", str(tabular / "table.npz")]
    assert main(["chain", *data, "--blocks", "4", "--out", str(tmp_path / "c"), *QUIET]) == 0  # auto: mlp
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["config"]["model"] == "mlp" and manifest["config"]["input_shape"] == [12]
    assert main(["unlearn", str(tmp_path / "c"), "--delete", "3,7", "--no-reference", "--out",
                 str(tmp_path / "u"), *QUIET]) == 0
    assert json.loads((tmp_path / "u" / "unlearn.json").read_text())["deleted"] == 2
    assert main(["chain", *data, "--model", "lenet5", "--blocks", "4", "--out", str(tmp_path / "x")]) == 2
    assert "'lenet5' takes images" in capsys.readouterr().err


def test_chain_default_blocks_fit_small_data_but_a_chosen_subset_does_not(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(6) % 3
    x = (rng.normal(size=(6, 4)) + 2 * y[:, None]).astype(np.float32)
    np.savez(tmp_path / "small.npz", x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
    data = ["--dataset", str(tmp_path / "small.npz")]
    assert main(["chain", *data, "--out", str(tmp_path / "c"), *QUIET]) == 0  # default 100 blocks > 6 records
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["config"]["blocks"] == 6
    assert "6 training records: 6 blocks (one record each) instead of the default 100" in capsys.readouterr().err
    assert main(["chain", *data, "--train-subset", "2000", "--out", str(tmp_path / "x"), *QUIET]) == 2
    err = capsys.readouterr().err
    assert "--train-subset must be in [1, 6]" in err and "has 6 training records). Received: 2000" in err
    assert main(["chain", *data, "--blocks", "50", "--out", str(tmp_path / "y"), *QUIET]) == 2  # chosen: refused
    assert "Received: blocks=50" in capsys.readouterr().err



def test_steal_refuses_more_eval_samples_than_the_data_has(tiny_model, tmp_path, capsys):
    from tfmodelsec.models import save_model

    save_model(tiny_model, tmp_path / "v.keras")
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.savez(tmp_path / "t.npz", x_train=x, y_train=np.arange(6) % 3, x_test=x[:3], y_test=np.arange(3))
    assert main(["steal", str(tmp_path / "v.keras"), "--dataset", str(tmp_path / "t.npz"), "--queries", "4",
                 "--eval-samples", "2000", "--out", str(tmp_path / "s"), *QUIET]) == 2  # was cut to 3, recorded 2000
    assert "--eval-samples must be in [1, 3]" in capsys.readouterr().err

# --------------------------------------------------------------------------- many classes


@pytest.mark.parametrize("classes", [2, 101])
def test_two_and_a_hundred_and_one_classes_through_defend_and_membership(classes, tmp_path):
    """Everything works for 2 and for 100+ classes: a tiny 8-feature victim per count, through two commands.

    (The 100-class tabular victim of benchmarks/realworld.py goes through every command.)
    """
    import keras

    rng = np.random.default_rng(classes)
    centres = rng.normal(size=(classes, 8)) * 3
    y = np.tile(rng.permutation(classes), 2 * max(2, 100 // classes))  # every class in both halves
    x = (centres[y] + rng.normal(size=(len(y), 8))).astype(np.float32)
    half = len(y) // 2
    np.savez(tmp_path / "t.npz", x_train=x[:half], y_train=y[:half], x_test=x[half:], y_test=y[half:])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(classes, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x[:half], y[:half], epochs=20, batch_size=32, verbose=0)
    model.save(tmp_path / "v.h5")
    victim, data = str(tmp_path / "v.h5"), ["--dataset", str(tmp_path / "t.npz"), *QUIET]
    assert main(["defend", victim, "--defense", "apgp_top1", "--epochs", "1", "--out", str(tmp_path / "d"), *data]) == 0
    defended = json.loads((tmp_path / "d" / "defend.json").read_text())
    assert defended["label_kept"] == 1.0 and defended["victim_accuracy"] > 1.5 / classes  # above chance
    assert main(["membership", victim, "--members", "first:40", "--attacks", "loss,confidence", "--population", "none",
                 "--out", str(tmp_path / "m"), *data]) == 0
    attacks = json.loads((tmp_path / "m" / "membership.json").read_text())["attacks"]
    assert set(attacks) == {"loss", "confidence"} and all(0.0 <= a["auc"] <= 1.0 for a in attacks.values())
