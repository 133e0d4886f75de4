import json
import subprocess
import sys

import pytest

from tfmodelsec.cli import main
from tfmodelsec.models import save_model


def test_info_prints_details(tmp_path, tiny_model, capsys):
    path = save_model(tiny_model, tmp_path / "m.h5")
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_shape"] == [4] and info["num_classes"] == 3
    assert info["output_kind"] == "probabilities" and info["parameters"] == 15


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.h5" in err and "Traceback" not in err


def test_unsafe_model_message_names_the_opt_in(tmp_path, capsys):
    import keras

    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t + 1.0)(inputs)
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(tmp_path / "lam.h5")
    assert main(["info", str(tmp_path / "lam.h5")]) == 2
    assert "--unsafe" in capsys.readouterr().err


def test_train_and_audit_on_digits(tmp_path, capsys):
    model = tmp_path / "v.h5"
    assert main(["train", "--model", "mlp", "--dataset", "digits", "--epochs", "2",
                 "--out", str(model), "--quiet"]) == 0
    meta = json.loads(model.with_suffix(".json").read_text())
    assert 0.0 < meta["test_accuracy"] <= 1.0 and meta["dataset"] == "digits"
    assert main(["audit", str(model), "--dataset", "digits", "--out", str(tmp_path / "a"),
                 "--quick", "--sections", "victim", "--quiet"]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["victim"]["test_accuracy"] == pytest.approx(meta["test_accuracy"], abs=1e-6)
    assert (tmp_path / "a" / "report.md").read_text().startswith("# tfmodelsec audit report")
    assert (tmp_path / "a" / "confusion.png").stat().st_size > 0


def test_audit_rejects_a_dataset_that_does_not_fit(tmp_path, tiny_model, capsys):
    path = save_model(tiny_model, tmp_path / "m.h5")
    assert main(["audit", str(path), "--dataset", "digits", "--out", str(tmp_path / "a")]) == 2
    assert "(8, 8, 1)" in capsys.readouterr().err


@pytest.mark.subprocess
def test_console_script_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "tfmodelsec", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for command in ("train", "info", "audit", "demo"):
        assert command in out.stdout
    bad = subprocess.run([sys.executable, "-m", "tfmodelsec", "train", "--epochs", "x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
