"""`--dataset PATH`, `--image-size`, `--label-column` on the command line (tiny files written here)."""

import json

import numpy as np
import pytest

from tfmodelsec.cli import build_parser, main
from tfmodelsec.models import save_model

DATA_COMMANDS = ("train", "audit", "invert", "steal", "membership", "defend", "evaluate", "export", "chain", "unlearn")


def _subparser(name):
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices[name]


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_every_data_command_takes_paths_and_options(command):
    text = " ".join(_subparser(command).format_help().split())
    assert "FILE.npz" in text and "FILE.csv" in text and "image folder" in text
    assert "--image-size H,W" in text and "--label-column NAME" in text


def test_audit_on_a_csv_with_its_label_column(tmp_path, tiny_model, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    rows = [f"{int(a.argmax())}," + ",".join(f"{v:.6f}" for v in r) for a, r in zip(x[:, :3], x, strict=True)]
    (tmp_path / "t.csv").write_text("target,f0,f1,f2,f3\n" + "\n".join(rows) + "\n")
    path = save_model(tiny_model, tmp_path / "m.h5")
    assert main(["audit", str(path), "--dataset", str(tmp_path / "t.csv"), "--label-column", "target",
                 "--out", str(tmp_path / "a"), "--quick", "--sections", "victim", "--quiet"]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert "warning" not in capsys.readouterr().err and "warnings" not in report
    assert report["victim"]["test_accuracy"] == 1.0 and report["victim"]["test_samples"] == 12  # 20% of 60
    assert main(["audit", str(path), "--dataset", str(tmp_path / "t.csv"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no label column 'label'" in err and "--label-column" in err


def test_train_on_an_image_folder_resized(tmp_path, capsys):
    import keras

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "img" / split / c).mkdir(parents=True)
            for i in range(3):
                keras.utils.save_img(tmp_path / "img" / split / c / f"{i}.png",
                                     rng.integers(0, 256, (9, 7, 3), dtype=np.uint8), scale=False)
    model = tmp_path / "v.h5"
    assert main(["train", "--model", "mlp", "--dataset", str(tmp_path / "img"), "--image-size", "4,5",
                 "--epochs", "1", "--out", str(model), "--quiet"]) == 0
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["dataset"] == str(tmp_path / "img") and meta["train_samples"] == 6
    capsys.readouterr()
    assert main(["info", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [4, 5, 3]
    assert main(["train", "--dataset", str(tmp_path / "img"), "--image-size", "4,x", "--out", str(model)]) == 2
    assert "--image-size must be H,W" in capsys.readouterr().err
