import json
import os
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
    page = (tmp_path / "a" / "report.html").read_text()
    assert '<h2 id="section-victim">Victim</h2>' in page and "data:image/png;base64," in page
    assert "report.html" in capsys.readouterr().out


def test_audit_rejects_a_dataset_that_does_not_fit(tmp_path, tiny_model, capsys):
    path = save_model(tiny_model, tmp_path / "m.h5")
    assert main(["audit", str(path), "--dataset", "digits", "--out", str(tmp_path / "a")]) == 2
    assert "(8, 8, 1)" in capsys.readouterr().err


def test_help_lists_commands_and_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "info", "audit", "demo", "--verbose"):
        assert command in out
    with pytest.raises(SystemExit) as done:
        main(["train", "--epochs", "x"])
    assert done.value.code == 2


@pytest.mark.subprocess
def test_console_command_through_a_pipe_prints_its_own_plain_lines_only(tmp_path):
    """``python -m tfmodelsec`` into a pipe (a CI log): no TensorFlow start-up lines, no carriage
    returns or colour codes, progress as plain lines (the first and the last epoch at least)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-m", "tfmodelsec", "train", "--model", "mlp", "--dataset", "digits",
                          "--epochs", "3", "--out", str(tmp_path / "m.h5")], capture_output=True, timeout=300,
                         env=env)
    text = (run.stdout + run.stderr).decode()
    assert run.returncode == 0, text[-2000:]
    assert "\r" not in text and "\x1b" not in text
    for start_up_line in ("absl::InitializeLog", "oneDNN", "cuda", "cpu_feature_guard", "WARNING:"):
        assert start_up_line not in text, text[:2000]
    lines = run.stdout.decode().splitlines()
    assert lines[0].startswith("epoch 1/3") and any(line.startswith("epoch 3/3") for line in lines)
    assert lines[-1].startswith("saved ") and not run.stderr.strip()
