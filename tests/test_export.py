"""Defended TF-Serving export: signature, loaded == in-process, no raw output, bad input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tfmodelsec.errors import ModelLoadError  # noqa: E402
from tfmodelsec.export import check_export, describe_signatures, export_defended, resolve_version_dir, serving_example  # noqa: E402
from tfmodelsec.models import as_victim  # noqa: E402
from tfmodelsec.oracle import defended_forward  # noqa: E402

SHAPE = (8, 8, 1)
CLASSES = 10


# --------------------------------------------------------------------------- test-only defenses
# One of each kind the export must carry: a probability layer with weights, a random layer
# with a SeedGenerator, and an input-side layer (like APMSA) that wraps the victim and loops.


class Sharpen(keras.layers.Layer):
    """Probabilities -> softmax(w * log p + b): weights that must travel in the SavedModel."""

    def build(self, input_shape):
        n = input_shape[-1]
        self.w = self.add_weight(shape=(), initializer=keras.initializers.Constant(0.5), name="w")
        self.b = self.add_weight(shape=(n,), initializer="zeros", name="b")

    def call(self, p, training=False):
        return keras.ops.softmax(self.w * keras.ops.log(p + 1e-12) + self.b)


class NoisyProbs(keras.layers.Layer):
    """Probabilities -> softmax(log p + sigma * N(0, 1)), seeded."""

    def __init__(self, sigma=1.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.sigma = sigma
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, p, training=False):
        noise = keras.random.normal(keras.ops.shape(p), stddev=self.sigma, seed=self.seed_generator)
        return keras.ops.softmax(keras.ops.log(p + 1e-12) + noise)


class BoundaryWalk(keras.layers.Layer):
    """Inputs -> probabilities: step each input up the loss while its label holds (APMSA-like)."""

    operates_on = "inputs"

    def __init__(self, model, eps=0.003, steps=5, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.eps = eps
        self.steps = steps

    def call(self, x, training=False):
        p0 = self.model(x, training=False)
        label = tf.argmax(p0, axis=-1)
        onehot = tf.one_hot(label, tf.shape(p0)[-1])

        def body(i, x_cur, x_keep):
            with tf.GradientTape() as tape:
                tape.watch(x_cur)
                loss = keras.losses.categorical_crossentropy(onehot, self.model(x_cur, training=False))
            step = tf.clip_by_value(x_cur + self.eps * tf.sign(tape.gradient(loss, x_cur)), 0.0, 1.0)
            same = tf.equal(tf.argmax(self.model(step, training=False), axis=-1), label)
            mask = tf.reshape(tf.cast(same, x.dtype), [-1] + [1] * (len(x.shape) - 1))
            return i + 1, step, mask * step + (1.0 - mask) * x_keep

        _, _, kept = tf.while_loop(lambda i, *_: i < self.steps, body, [tf.constant(0), x, x])
        return self.model(kept, training=False)


@pytest.fixture(scope="module")
def victim():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE, name="inputs"), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    return as_victim(model)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).uniform(0, 1, (6, *SHAPE)).astype(np.float32)


def make_defense(kind, victim):
    if kind == "none":
        return None
    if kind == "weights":
        layer = Sharpen()
        layer.build((None, CLASSES))
        layer.b.assign(np.linspace(-1, 1, CLASSES).astype(np.float32))
        return layer
    if kind == "random":
        return NoisyProbs(sigma=1.0, seed=3)
    return BoundaryWalk(victim.probability_model)


KINDS = ["none", "weights", "random", "inputs"]


@pytest.fixture(scope="module")
def exports(victim, tmp_path_factory):
    """One export per kind, shared (exports cost a second each on 2 cores)."""
    out = {}
    for kind in KINDS:
        defense = make_defense(kind, victim)
        path = export_defended(victim, defense, tmp_path_factory.mktemp(kind) / "model")
        out[kind] = (defense, path)
    return out


# --------------------------------------------------------------------------- helpers


def restorable_functions(loaded):
    """Every callable a client of the SavedModel could reach: signatures and restored functions."""
    found, seen, stack = [], set(), [("root", loaded)]
    while stack:
        name, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (tf.types.experimental.GenericFunction, tf.types.experimental.ConcreteFunction)):
            found.append((name, obj))
        children = obj._trackable_children() if hasattr(obj, "_trackable_children") else {}
        stack.extend((f"{name}.{k}", v) for k, v in children.items())
    found.extend((f"signatures[{k!r}]", fn) for k, fn in loaded.signatures.items())
    return found


def outputs_of(fn, x):
    out = fn(inputs=tf.constant(x)) if isinstance(fn, tf.types.experimental.ConcreteFunction) else fn(x)
    return [np.asarray(t) for t in tf.nest.flatten(out)]


def leaks_raw(loaded, x, raw) -> list:
    leaks = []
    for name, fn in restorable_functions(loaded):
        for arr in outputs_of(fn, x):
            if arr.shape == raw.shape and np.allclose(arr, raw, atol=1e-6):
                leaks.append(name)
    return leaks


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_signature_is_what_tf_serving_calls(exports, kind):
    _, path = exports[kind]
    assert path.name == "1" and (path / "saved_model.pb").is_file()
    sigs = describe_signatures(path)
    assert list(sigs) == ["serve"]
    sig = sigs["serve"]["serving_default"]
    assert sig["method"] == "tensorflow/serving/predict"
    assert sig["inputs"] == {"inputs": {"dtype": "float32", "shape": [None, *SHAPE]}}
    assert sig["outputs"] == {"label": {"dtype": "int64", "shape": [None]},
                              "probabilities": {"dtype": "float32", "shape": [None, CLASSES]}}


@pytest.mark.parametrize("kind", ["none", "weights", "inputs"], ids=["none", "weights", "inputs"])
def test_loaded_equals_in_process(exports, victim, x, kind):
    defense, path = exports[kind]
    out = tf.saved_model.load(str(path)).signatures["serving_default"](inputs=tf.constant(x))
    expected = defended_forward(victim, defense)(x).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out["label"].numpy(), expected.argmax(axis=1))
    report = check_export(path, victim, defense)
    assert report.ok, report.summary()
    assert report.deterministic and report.max_abs_diff <= 1e-5 and report.label_agreement == 1.0


def test_random_defense_same_seed_state_same_answer(victim, x, tmp_path):
    defense = make_defense("random", victim)
    path = export_defended(victim, defense, tmp_path / "m")
    loaded = tf.saved_model.load(str(path)).signatures["serving_default"]
    # the SeedGenerator state travels with the export: first answers match exactly
    first = loaded(inputs=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(first, defended_forward(victim, defense)(x).numpy(), atol=1e-5)
    again = loaded(inputs=tf.constant(x))["probabilities"].numpy()
    assert not np.allclose(first, again), "the exported noise must change between requests"
    report = check_export(path, victim, defense)
    assert report.ok and report.deterministic is False, report.summary()


def test_random_check_detects_wrong_distribution(exports, victim):
    _, path = exports["random"]
    report = check_export(path, victim, NoisyProbs(sigma=0.1, seed=3))
    assert not report.ok and "distribution" in report.problems[0]


def test_check_detects_a_different_defense(exports, victim):
    _, path = exports["weights"]
    report = check_export(path, victim, None)
    assert not report.ok and report.max_abs_diff > 1e-3
    assert any("made with defense Sharpen but is compared with none" in p for p in report.problems)


@pytest.mark.parametrize("kind", ["weights", "random", "inputs"], ids=["weights", "random", "inputs"])
def test_no_function_returns_raw_victim_output(exports, victim, x, kind):
    _, path = exports[kind]
    loaded = tf.saved_model.load(str(path))
    names = [n for n, _ in restorable_functions(loaded)]
    assert any("serving_default" in n for n in names)
    assert leaks_raw(loaded, x, victim.probabilities(x)) == []


def test_leak_check_can_fail(exports, victim, x, tmp_path):
    """The check above would see a leak: an archive with a raw endpoint is caught."""
    defense, _ = exports["weights"]
    archive = keras.export.ExportArchive()
    archive.track(victim.model)
    spec = [tf.TensorSpec((None, *SHAPE), tf.float32, name="inputs")]
    archive.add_endpoint("serving_default", lambda inputs: {"p": defense(victim.model(inputs))}, spec)
    archive.add_endpoint("raw", lambda inputs: {"p": victim.model(inputs)}, spec)
    archive.write_out(str(tmp_path / "leaky"), verbose=False)
    assert leaks_raw(tf.saved_model.load(str(tmp_path / "leaky")), x, victim.probabilities(x))


def test_input_defense_keeps_victim_label_and_moves_answer(exports, victim, x):
    _, path = exports["inputs"]
    out = tf.saved_model.load(str(path)).signatures["serving_default"](inputs=tf.constant(x))
    raw = victim.probabilities(x)
    np.testing.assert_array_equal(out["label"].numpy(), raw.argmax(axis=1))
    assert np.abs(out["probabilities"].numpy() - raw).max() > 1e-3


def test_metadata_names_defense(exports):
    _, path = exports["weights"]
    meta = json.loads((path / "assets.extra" / "tfmodelsec_export.json").read_text())
    assert meta["defense"]["class"] == "Sharpen" and meta["input"]["shape"] == [None, *SHAPE]


def test_overwrite_replaces_only_its_version(victim, tmp_path):
    base = tmp_path / "m"
    export_defended(victim, None, base, version=1)
    v2 = export_defended(victim, None, base, version=2)
    (v2 / "marker.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_defended(victim, make_defense("weights", victim), base, version=1)
    meta = json.loads((base / "1" / "assets.extra" / "tfmodelsec_export.json").read_text())
    assert meta["defense"]["class"] == "none"
    export_defended(victim, make_defense("weights", victim), base, version=1, overwrite=True)
    meta = json.loads((base / "1" / "assets.extra" / "tfmodelsec_export.json").read_text())
    assert meta["defense"]["class"] == "Sharpen"
    assert (v2 / "marker.txt").read_text() == "keep"
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no staging leftovers
    assert resolve_version_dir(base) == base / "2"


def test_failed_export_leaves_old_version(victim, tmp_path):
    base = tmp_path / "m"
    export_defended(victim, None, base)
    with pytest.raises(ValueError, match="defense"):
        export_defended(victim, _five_class_layer(), base, overwrite=True)
    assert (base / "1" / "saved_model.pb").is_file()


def _five_class_layer():
    layer = Sharpen()
    layer.build((None, 5))
    return layer


@pytest.mark.parametrize("version", [0, -1, "1", True, 1.5], ids=["zero", "neg", "str", "bool", "float"])
def test_bad_version(victim, tmp_path, version):
    with pytest.raises(ValueError, match="version"):
        export_defended(victim, None, tmp_path / "m", version=version)


def test_bad_inputs(victim, tmp_path):
    with pytest.raises(ValueError, match="export_dir"):
        export_defended(victim, None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="export_dir"):
        export_defended(victim, None, tmp_path / "file")
    with pytest.raises(ValueError, match="defense"):
        export_defended(victim, _five_class_layer(), tmp_path / "a")
    declared = NoisyProbs()
    declared.num_classes = 3
    with pytest.raises(ValueError, match="num_classes=3"):
        export_defended(victim, declared, tmp_path / "b")
    with pytest.raises(ValueError, match="Keras layer"):
        export_defended(victim, lambda p: p, tmp_path / "c")
    with pytest.raises(ValueError, match="input_signature"):
        export_defended(victim, None, tmp_path / "d", input_signature=keras.InputSpec(shape=(None, 4)))
    path = export_defended(victim, None, tmp_path / "e")
    with pytest.raises(ValueError, match="itself a SavedModel"):
        export_defended(victim, None, path)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_fixed_batch_signature(victim, tmp_path):
    spec = keras.InputSpec(shape=(3, *SHAPE), dtype="float32")
    path = export_defended(victim, make_defense("weights", victim), tmp_path / "m", input_signature=spec)
    assert describe_signatures(path)["serve"]["serving_default"]["inputs"]["inputs"]["shape"] == [3, *SHAPE]
    assert check_export(path).sample_shape == [3, *SHAPE]


def test_check_export_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="export not found"):
        check_export(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no SavedModel"):
        check_export(tmp_path)


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def victim_file(victim, tmp_path_factory):
    from tfmodelsec.models import save_model

    return save_model(victim.model, tmp_path_factory.mktemp("v") / "victim.h5")


def test_cli_export_and_check(victim_file, tmp_path, capsys):
    from tfmodelsec.cli import main

    out = tmp_path / "served"
    assert main(["export", str(victim_file), "--defense", "none", "--out", str(out), "--version", "3"]) == 0
    text = capsys.readouterr()
    assert "raw outputs" in text.err and "serving_default(inputs: float32[None, 8, 8, 1])" in text.out
    assert (out / "3" / "saved_model.pb").is_file()
    report = tmp_path / "check.json"
    assert main(["export", "--check", str(out), "--report", str(report)]) == 0
    assert "OK" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["ok"] and data["version"] == 3 and not data["compared"]
    assert main(["export", "--check", str(out), str(victim_file), "--defense", "none"]) == 0
    assert "labels agree 100.0%" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--defense", "none", "--version", "3"], "already exists"),
    (["--defense", "none", "--param", "k=1"], "takes no --defense-path"),
    (["--defense", "none", "--param", "novalue"], "KEY=VALUE"),
    (["--out", "{out}"], "--defense is required"),
    (["--defense", "none"], "--out is required"),
    (["--defense", "none", "--version", "0"], "version"),
    (["--defense", "nonsense"], "'nonsense'"),
], ids=["exists", "none-params", "bad-param", "no-defense", "no-out", "version0", "unknown"])
def test_cli_user_errors(victim_file, tmp_path, capsys, argv, message):
    from tfmodelsec.cli import main

    out = tmp_path / "served"
    export_defended(as_victim(str(victim_file)), None, out, version=3)
    argv = [a.replace("{out}", str(out)) for a in argv]
    if "--out" not in argv and message != "--out is required":
        argv += ["--out", str(out)]
    assert main(["export", str(victim_file), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_cli_check_errors(tmp_path, capsys):
    from tfmodelsec.cli import main

    assert main(["export", "--check", str(tmp_path / "missing")]) == 2
    assert "export not found" in capsys.readouterr().err
    assert main(["export", "--check", str(tmp_path), "--defense", "none"]) == 2
    assert "needs VICTIM" in capsys.readouterr().err
    assert main(["export"]) == 2
    assert "VICTIM is required" in capsys.readouterr().err


# --------------------------------------------------------------------------- README's serving example
# The README's TF Serving request/response blocks come from a real export of the suite's tiny model
# (4 features, 3 classes, fixed weights) with rounding; this test re-creates them and compares.
# Regenerate after a deliberate change: TFMS_UPDATE_README=1 pytest tests/test_export.py -k readme

README = Path(__file__).resolve().parents[1] / "README.md"


def _registry():
    return pytest.importorskip("tfmodelsec.defenses.registry", reason="defenses registry not in this build")
README_X = [[0.9, 0.1, 0.2, 0.0], [0.1, 0.1, 0.8, 0.3]]


def _render(obj, indent=0) -> str:
    pad = " " * indent
    if isinstance(obj, dict):
        inner = ",\n".join(f'{pad}  "{k}": {_render(v, indent + 2).lstrip()}' for k, v in obj.items())
        return f"{pad}{{\n{inner}\n{pad}}}"
    if isinstance(obj, list) and obj and isinstance(obj[0], (list, dict)):
        inner = ",\n".join(_render(v, indent + 2) if isinstance(v, list) else f"{pad}  {json.dumps(v)}"
                           for v in obj)
        return f"{pad}[\n{inner}\n{pad}]"
    return pad + json.dumps(obj)


def _assert_same(got, expected, where="$"):
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), f"{where}: keys {got} vs {expected}"
        for k in expected:
            _assert_same(got[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: length differs"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _assert_same(g, e, f"{where}[{i}]")
    else:
        assert got == pytest.approx(expected, abs=1e-6), f"{where}: {got} vs {expected}"


def test_readme_serving_example_matches_a_real_export(tiny_model, tmp_path):
    make_defense = _registry().make_defense

    victim = as_victim(tiny_model)
    path = export_defended(victim, make_defense("rounding", victim, decimals=1), tmp_path / "toy")
    sig = describe_signatures(path)["serve"]["serving_default"]
    text = README.read_text()
    update = bool(os.environ.get("TFMS_UPDATE_README"))
    for fmt in ("row", "columnar"):
        request, response = serving_example(path, README_X, format=fmt)
        # the example's structure is the signature's: input shape per instance, named outputs
        rows = request["instances" if fmt == "row" else "inputs"]
        assert [None, *np.shape(rows)[1:]] == sig["inputs"]["inputs"]["shape"]
        answers = response["predictions"] if fmt == "row" else [response["outputs"]]
        for answer in answers:
            assert sorted(answer) == sorted(sig["outputs"])
        for marker, expected in ((f"serving-{fmt}-request", request), (f"serving-{fmt}-response", response)):
            match = re.search(rf"<!-- {marker} -->\s*```json\n(.*?)```", text, re.S)
            assert match, f"README.md lacks the <!-- {marker} --> json block"
            if update:
                text = text[: match.start(1)] + _render(expected) + "\n" + text[match.end(1):]
            else:
                _assert_same(json.loads(match.group(1)), expected)
    if update:
        README.write_text(text)


# --------------------------------------------------------------------------- the real defenses
# Every defense of the registry, exported for the suite's digits LeNet-5 and read back.

REGISTRY = ["gaussian", "reverse_sigmoid", "rounding", "topk", "label", "mad", "mad_argmax",
            "apgp_all", "apgp_top1", "apmsa_fgsm", "apmsa_pgd", "apmsa_cw"]
# Small settings keep the file fast; the exported graph is the same as with the defaults.
REGISTRY_PARAMS = {"apgp_all": {"epochs": 1}, "apgp_top1": {"epochs": 1},
                   "apmsa_fgsm": {"steps": 5}, "apmsa_pgd": {"steps": 5},
                   # the registry's CW step suits 28x28 inputs; on 8x8 digits it flips every query at once
                   "apmsa_cw": {"steps": 5, "step_size": 0.25}}


@pytest.fixture(scope="module")
def registry_exports(digits_victim, digits, tmp_path_factory):
    make_defense = _registry().make_defense

    out = {}
    for name in REGISTRY:
        defense = make_defense(name, digits_victim, x=digits.x_train[:256], seed=0, **REGISTRY_PARAMS.get(name, {}))
        out[name] = (defense, export_defended(digits_victim, defense, tmp_path_factory.mktemp(name) / "m"))
    return out


@pytest.mark.parametrize("name", REGISTRY, ids=REGISTRY)
def test_registry_defense_exports(registry_exports, digits_victim, digits, name):
    defense, path = registry_exports[name]
    sig = describe_signatures(path)["serve"]["serving_default"]
    assert sorted(sig["inputs"]) == ["inputs"] and sorted(sig["outputs"]) == ["label", "probabilities"]
    assert sig["inputs"]["inputs"]["shape"] == [None, 8, 8, 1]
    report = check_export(path, digits_victim, defense)  # 1e-5, or by distribution if random
    assert report.ok, report.summary()
    x = digits.x_test[:16]
    loaded = tf.saved_model.load(str(path))
    assert leaks_raw(loaded, x, digits_victim.probabilities(x)) == []
    answer = loaded.signatures["serving_default"](inputs=tf.constant(x))
    if name.startswith(("apgp", "apmsa", "mad_argmax", "rounding", "topk", "label", "reverse")):
        # these keep the argmax by construction (rounding/top-k/label up to exact ties)
        np.testing.assert_array_equal(answer["label"].numpy(), digits_victim.predict_labels(x))
    if report.deterministic:
        np.testing.assert_allclose(answer["probabilities"].numpy(),
                                   defended_forward(digits_victim, defense)(x).numpy(), atol=1e-5)


def test_victim_loaded_from_a_savedmodel_exports_without_leaking(exports, x, tmp_path):
    """A victim that is itself a SavedModel (e.g. an undefended export) is re-exported defended."""
    from tfmodelsec.models import load_victim

    victim = load_victim(exports["none"][1])
    defense = make_defense("weights", victim)
    path = export_defended(victim, defense, tmp_path / "m")
    assert check_export(path, victim, defense).ok
    assert leaks_raw(tf.saved_model.load(str(path)), x, victim.probabilities(x)) == []


def test_cli_exports_a_saved_apgp_and_trains_one(digits_victim, digits, tmp_path, capsys):
    from tfmodelsec.cli import main
    from tfmodelsec.models import save_model

    registry = _registry()
    victim_path = save_model(digits_victim.model, tmp_path / "digits.h5")
    layer = registry.make_defense("apgp_all", digits_victim, x=digits.x_train[:256], epochs=1, seed=0)
    saved = registry.save_defense(layer, tmp_path / "apgp.keras")
    out = tmp_path / "served"
    assert main(["export", str(victim_path), "--defense", "apgp_all", "--defense-path", str(saved),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "defense: APGP" in text and "OK" in text
    x = digits.x_test[:32]
    answer = tf.saved_model.load(str(out / "1")).signatures["serving_default"](inputs=tf.constant(x))
    np.testing.assert_array_equal(answer["label"].numpy(), digits_victim.predict_labels(x))
    assert main(["export", str(victim_path), "--defense", "apgp_top1", "--out", str(out)]) == 2
    assert "--defense-path" in capsys.readouterr().err
    assert main(["export", str(victim_path), "--defense", "apgp_top1", "--dataset", "digits", "--param", "epochs=1",
                 "--out", str(out), "--version", "2"]) == 0
    assert "OK" in capsys.readouterr().out and (out / "2" / "saved_model.pb").is_file()
