"""Progress that reads well anywhere (utils.Progress) and the command's quiet TensorFlow start-up (_quiet)."""

import io
import subprocess
import sys

import numpy as np
import pytest

from tfmodelsec import _quiet, utils

# What TensorFlow 2.21 wrote on stderr while imported here (and a device query without a driver).
TF_START_UP = b"""WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795467531.573043   22602 port.cc:153] oneDNN custom operations are on. You may see slightly \
different numerical results due to floating-point round-off errors.
I0000 00:00:1795467531.573485   22602 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will \
not be used.
I0000 00:00:1795467531.654095   22602 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use \
available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate flags.
E0000 00:00:1795467729.905226   26080 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed \
call to cuInit: UNKNOWN ERROR (303)
"""
OTHER = b"""Traceback (most recent call last):
W0000 00:00:1795467531.700000   22602 something.cc:10] a warning
F0000 00:00:1795467531.800000   22602 something.cc:11] Check failed: a fatal error
"""


def _filtered(level: int, data: bytes) -> bytes:
    return subprocess.run([sys.executable, "-I", "-S", "-c", _quiet._FILTER, str(level)], input=data,
                          capture_output=True, timeout=60, check=True).stdout


def test_start_up_filter_drops_tensorflows_notices_and_keeps_everything_else():
    assert _filtered(2, TF_START_UP + OTHER) == OTHER.replace(OTHER.splitlines(True)[1], b"")
    assert _filtered(1, TF_START_UP + OTHER) == OTHER  # the user's own level: warnings kept
    assert _filtered(3, OTHER) == OTHER.splitlines(True)[0] + OTHER.splitlines(True)[2]
    # an ERROR line about cuInit with a driver present is a real error: kept
    assert b"cuInit" in _filtered(2, TF_START_UP.splitlines(True)[-1])


@pytest.mark.parametrize("argv,env,level", [
    ([], {}, 2),
    (["demo", "--quick"], {"TF_CPP_MIN_LOG_LEVEL": "1"}, 1),
    (["--verbose", "demo"], {}, None),
    (["demo", "--verbose"], {}, None),
    (["demo", "--", "--verbose"], {}, 2),
    (["demo"], {"TF_CPP_MIN_LOG_LEVEL": "0"}, None),
], ids=["default", "users-level", "verbose", "verbose-after", "after-dashdash", "users-zero"])
def test_command_log_level(argv, env, level):
    assert _quiet.command_log_level(argv, env) == level


def test_only_the_command_is_quieted():
    assert _quiet.running_as_command(["/usr/local/bin/tfmodelsec", "demo"], [])
    assert _quiet.running_as_command(["-m"], ["python", "-u", "-m", "tfmodelsec", "demo"])
    assert not _quiet.running_as_command(["-m"], ["python", "-m", "pytest"])
    assert not _quiet.running_as_command(["script.py"], ["python", "script.py"])


def test_plain_progress_one_line_per_update_no_control_characters(monkeypatch):
    monkeypatch.setattr(utils, "PLAIN_PROGRESS_INTERVAL", 0.0)
    out = io.StringIO()
    bar = utils.Progress(3, unit_name="epoch", stream=out, title="apgp", stateful_metrics=["loss"])
    for i in range(3):
        bar.update(i + 1, [("loss", 1.0 / (i + 1)), ("acc", 0.5 + i / 10)])
    assert not bar.live  # a StringIO is not a terminal, whatever was imported before (ipykernel)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0].startswith("[apgp] epoch 1/3 (") and "ETA" in lines[0]
    assert lines[2].endswith("loss 0.3333 acc 0.6000") and "ETA" not in lines[2]  # acc averaged, loss as given


def test_plain_progress_is_throttled_but_always_shows_the_first_and_last(monkeypatch):
    monkeypatch.setattr(utils, "PLAIN_PROGRESS_INTERVAL", 3600.0)
    out = io.StringIO()
    bar = utils.Progress(100, unit_name="restart", stream=out)
    for i in range(100):
        bar.update(i + 1)
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == ["restart   1/100", "restart 100/100"]


def test_live_progress_redraws_one_line_and_silent_progress_writes_nothing(capsys):
    out = io.StringIO()
    bar = utils.Progress(2, stream=out, live=True)
    bar.update(1)
    bar.update(2)
    assert out.getvalue().startswith("\rstep 1/2") and out.getvalue().count("\n") == 1
    utils.progbar(5, verbose=0).update(5, [("loss", 1.0)])
    assert capsys.readouterr().out == ""


def test_keras_fit_inside_our_loops_follows_the_rule(tiny_model, capsys):
    """fit_seeded (distillation, Jacobian augmentation) reports per epoch through Progress, not Keras' bar."""
    import keras

    from tfmodelsec.models.train import fit_seeded

    model = keras.models.clone_model(tiny_model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((32, 4), dtype=np.float32)
    fit_seeded(model, x, np.zeros(32, np.int64), epochs=2, batch_size=8, rng=np.random.default_rng(0), verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out and "\b" not in out
    assert out.splitlines()[-1].startswith("epoch 2/2") and " loss " in out.splitlines()[-1]


def test_download_notice_is_silent_offline_and_plain_on_a_pipe(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(OSError), utils.keras_download_notice():  # offline: Keras announces, then fails
        print("Downloading data from https://example.org/mnist.npz")
        raise OSError("URL fetch failure")
    assert out.getvalue() == ""
    with utils.keras_download_notice():  # a download that starts: its line, no \r-bar, a closing line
        print("Downloading data from https://example.org/mnist.npz")
        sys.stdout.write("\b\b\r 1/10 [==>   ]")
        sys.stdout.write("\b\b\r10/10 [======]\n")
    assert out.getvalue().splitlines()[0] == "Downloading data from https://example.org/mnist.npz"
    assert out.getvalue().splitlines()[1].startswith("downloaded in ") and "\r" not in out.getvalue()
