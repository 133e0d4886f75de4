"""The near-chance check: a victim shown data it was not trained on gets a warning, in the
command's output and at the top of the audit report."""

import json

import numpy as np
import pytest

from tfmodelsec.data import Dataset
from tfmodelsec.models import as_victim, check_fit, save_model
from tfmodelsec.models.fit import NEAR_CHANCE_MARGIN, FitCheck


def _tiny_data(labels_shift=0, n=60, seed=0):
    """4 features; the tiny model (3 * x[:, :3] softmax) predicts argmax(x[:, :3])."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, :3].argmax(1) + labels_shift) % 3
    return Dataset.from_arrays(x, y, x, y, name="tiny")


def test_fit_known_answers(tiny_model):
    victim = as_victim(tiny_model)
    right = check_fit(victim, _tiny_data())
    assert right.accuracy == 1.0 and not right.near_chance and right.warning is None
    wrong = check_fit(victim, _tiny_data(labels_shift=1))  # classes numbered differently
    assert wrong.accuracy == 0.0 and wrong.near_chance and right.records == 60
    assert "'tiny'" in wrong.warning and "is this the data it was trained on" in wrong.warning
    assert check_fit(victim, _tiny_data(), max_records=25).records == 25


@pytest.mark.parametrize("accuracy, chance, near", [(0.54, 0.5, True), (0.56, 0.5, False), (0.1065, 0.1, True),
                                                    (0.2, 0.1, False), (0.9, 0.9, True)],
                         ids=["binary-54", "binary-56", "mnist-on-fashion", "weak-10-class", "majority-only"])
def test_near_chance_threshold(accuracy, chance, near):
    assert NEAR_CHANCE_MARGIN == 0.1
    assert FitCheck(accuracy, chance, 100, "d").near_chance is near


def test_audit_report_and_cli_put_the_warning_on_top(tmp_path, tiny_model, capsys):
    from tfmodelsec.cli import main

    path = save_model(tiny_model, tmp_path / "m.h5")
    data = _tiny_data(labels_shift=1)
    np.savez(tmp_path / "wrong.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)
    assert main(["audit", str(path), "--dataset", str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "a"),
                 "--quick", "--sections", "victim", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "tfmodelsec audit: warning: the victim's accuracy on" in err and "0.00%" in err
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert list(report)[0] == "warnings" and "is this the data it was trained on" in report["warnings"][0]
    md = (tmp_path / "a" / "report.md").read_text().splitlines()
    assert md[0] == "# tfmodelsec audit report" and md[2].startswith("> **Warning:** the victim's accuracy")
    assert report["victim"]["test_accuracy"] == 0.0
