"""Every model file tfmodelsec writes loads with plain ``keras.saving.load_model`` after ``import tfmodelsec``.

The files are written here; a fresh interpreter that imports only ``keras`` and ``tfmodelsec``
loads each one under Keras' safe mode (the default) and predicts; the answers must match.
Files: a saved defense of every layer class, defended models (.keras and .h5), the SISA
ensemble ``tfmodelsec unlearn --method sisa`` writes (MajorityVote), a student as the stealing
code saves it (a zoo model through ``save_model``), and input recovery's attack and combined
models. Chain and SISA checkpoints are ``.npz`` weight files, not Keras files.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Run in the fresh interpreter: load every file with Keras alone (safe_mode left at its default),
# predict, and list the tfmodelsec classes Keras knows before and after importing every module.
_LOADER = r"""
import json, pkgutil, sys, importlib
from pathlib import Path
import numpy as np
import keras, tfmodelsec

def ours():
    return sorted(k for k in keras.saving.get_custom_objects() if k.startswith("tfmodelsec>"))

folder = Path(sys.argv[1])
x = np.load(folder / "x.npz")
out = {"registered_on_import": ours()}
for name, inputs in json.loads((folder / "inputs.json").read_text()).items():
    model = keras.saving.load_model(folder / name)
    out[name] = np.asarray(model(x[inputs])).tolist()
for m in pkgutil.walk_packages(tfmodelsec.__path__, "tfmodelsec."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
out["registered_by_all_modules"] = ours()
(folder / "loaded.json").write_text(json.dumps(out))
"""

# layers whose answers are random at inference: compared on shape and row sums only
_RANDOM = {"defense_gaussian.keras"}
# one defense per layer class (apgp_all, apmsa_pgd/cw, mad_argmax are the same classes)
_ONE_PER_CLASS = ("gaussian", "reverse_sigmoid", "rounding", "topk", "label", "mad", "apgp_top1", "apmsa_fgsm")


def _victim(name="victim", seed=0):
    """An 8x8x1 image classifier with fixed random weights (no training needed)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name=name)


@pytest.mark.subprocess
def test_every_file_tfmodelsec_writes_loads_with_plain_keras(tmp_path):
    import keras

    from tfmodelsec.attacks.recovery import recover_inputs
    from tfmodelsec.defenses import APGP, DEFENSES, defended_model, make_defense, save_defense
    from tfmodelsec.models import as_victim, build_model, save_model
    from tfmodelsec.unlearning import MajorityVote

    victim = as_victim(_victim())
    rng = np.random.default_rng(0)
    images = rng.random((16, 8, 8, 1), dtype=np.float32)
    x = {"images": images, "probs": victim.probabilities(images), "one_hot": np.eye(3, dtype=np.float32)}
    np.savez(tmp_path / "x.npz", **x)
    expected, inputs = {}, {}  # file name -> answers here, and which inputs to give it

    def keep(path, model, kind):
        expected[Path(path).name] = np.asarray(model(x[kind]))  # eager: no predict function to trace
        inputs[Path(path).name] = kind

    for name in _ONE_PER_CLASS:
        # APGP untrained (seeded weights): the same class and file as a trained one, seconds cheaper
        layer = APGP(3, top_k=1, seed=0) if name == "apgp_top1" else make_defense(name, victim, seed=0)
        path = save_defense(layer, tmp_path / f"defense_{name}.keras", num_classes=3)
        keep(path, layer, "images" if getattr(layer, "operates_on", "probabilities") == "inputs" else "probs")
        if name in ("apgp_top1", "mad"):  # whole defended models, in both formats
            model = defended_model(victim, layer)
            for suffix in (".keras", ".h5"):
                keep(save_model(model, tmp_path / f"defended_{name}{suffix}"), model, "images")
    image = keras.Input((8, 8, 1))
    vote = keras.Model(image, MajorityVote(name="vote")([_victim("shard_1", 1)(image), victim.model(image)]))
    keep(save_model(vote, tmp_path / "sisa_model.h5"), vote, "images")
    # a stolen student is a zoo model saved by save_model (`tfmodelsec steal`, the stealing sweep)
    student = build_model("mlp", (8, 8, 1), 3)
    keep(save_model(student, tmp_path / "student.h5"), student, "images")
    recovery = recover_inputs(victim, epochs=1, seed=0, verbose=0)
    attack_file, combined_file = recovery.save(tmp_path)
    keep(attack_file, recovery.attack_model, "one_hot")
    keep(combined_file, recovery.combined_model, "one_hot")
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))

    run = subprocess.run([sys.executable, "-c", _LOADER, str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads((tmp_path / "loaded.json").read_text())
    assert loaded["registered_on_import"] == loaded["registered_by_all_modules"]
    assert {"tfmodelsec>APGP", "tfmodelsec>APMSA", "tfmodelsec>MAD", "tfmodelsec>MajorityVote"} <= set(
        loaded["registered_on_import"])
    assert set(DEFENSES) - {"none"} >= set(_ONE_PER_CLASS)
    assert len(expected) == len(_ONE_PER_CLASS) + 4 + 1 + 1 + 2 and set(expected) <= set(loaded)
    for name, want in expected.items():
        got = np.asarray(loaded[name])
        assert got.shape == want.shape, name
        if name in _RANDOM:
            np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
        else:
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)


def test_plain_keras_without_tfmodelsec_fails_the_way_the_issue_said(tmp_path):
    """The control: the registration is what makes loading work (a fresh Keras registry)."""
    import keras

    from tfmodelsec.defenses import ReverseSigmoid, save_defense

    path = save_defense(ReverseSigmoid(), tmp_path / "d.keras", num_classes=3)
    saved = dict(keras.saving.get_custom_objects())
    try:
        keras.saving.get_custom_objects().clear()
        with pytest.raises(TypeError, match="ReverseSigmoid"):
            keras.saving.load_model(path)
    finally:
        keras.saving.get_custom_objects().update(saved)
    assert Path(path).is_file()
