"""Victims and data no one here tuned for, audited with the real ``tfmodelsec`` commands, as a user would.

    python benchmarks/realworld.py                 # builds the victims in runs/realworld/, runs the matrix
    python benchmarks/realworld.py --reuse         # reuses built victims (same seed, same files)
    python benchmarks/realworld.py --victims flat_mlp,tabular --commands info,recover
    python benchmarks/realworld.py --victims legacy_h5 --commands steal --reuse --merge  # cells over the last matrix

Victims (each saved to files first, then only handled through the command line, in subprocesses):

* ``flat_mlp``: the input-recovery lab's ``Input(784) -> Dense(128) -> Dense(10)`` on MNIST
  (``--dataset mnist``: 28x28 images, reshaped for the flat input);
* ``rescaling_cnn``: a CNN whose first layer is ``Rescaling(1/255)``, trained on raw 0..255
  MNIST, audited on ``mnist_raw.npz`` (uint8 pixels, 0..255);
* ``tabular``: a Purchase-100-like membership target: 600 binary features, 100 classes, an MLP
  that overfits 2,000 training records; ``purchase.npz`` holds them (first 2,000 of ``x_train``),
  2,000 more records it never saw (the attacker's population) and 2,000 test records;
* ``image_folder``: 32x32 RGB PNGs in ``train/<class>/`` and ``test/<class>/`` (Fashion-MNIST
  items, padded and tinted with a random colour), and a CNN trained on them scaled to [0, 1]
  *outside* the model (no Rescaling layer: the range must come from the data);
* ``legacy_h5``: the owndata helper's legacy architecture (``tests/fixtures/make_legacy_h5.py``:
  tf.keras 2 Sequential with ``Rescaling(1/255)``, BatchNorm, Dropout; 8x8, 3 classes) trained
  with the ``tf_keras`` package on sklearn digits 0-2 as raw 0..255 pixels, saved by tf_keras as
  Keras 2 HDF5, audited on ``digits012_raw.npz``.

Commands per victim: info, recover, invert, steal (150 queries), membership (loss and confidence
thresholds), defend (APGP-top1), evaluate (no defense vs APGP-top1 at 150 queries, t-SNE),
export (the APGP-defended model, checked), chain + unlearn (the zoo's default model on the
victim's data). A cell passes when the command exits 0; its headline figure comes from the
JSON the command wrote.

Targets: every cell passes; flat_mlp recovery confidence >= 0.99 for all 10 classes;
rescaling_cnn inversions nearest their own class mean >= 9/10; tabular loss-attack AUC >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, setup_keras_home, write_result

setup_keras_home()

import numpy as np  # noqa: E402

SEED = 0
WORK = ROOT / "runs" / "realworld"
COMMANDS = ("info", "recover", "invert", "steal", "membership", "defend", "evaluate", "export", "chain", "unlearn")
# Purchase-100-like table: binary purchase profiles (prototype per class, bits flipped at random).
TAB_FEATURES, TAB_CLASSES, TAB_MEMBERS, TAB_FLIP, TAB_DENSITY = 600, 100, 2000, 0.4, 0.3
QUERIES = 150


# --------------------------------------------------------------------------- building the victims


def _keras_fit(model, x, y, epochs, lr=1e-3, batch_size=128):
    import keras

    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def build_flat_mlp(work: Path) -> dict:
    import keras

    from tfmodelsec import load_dataset

    data = load_dataset("mnist")
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name="flat_mlp")
    _keras_fit(model, data.x_train.reshape(-1, 784), data.y_train, epochs=5)
    model.save(work / "flat_mlp.h5")
    return {"model": "flat_mlp.h5", "dataset": "mnist", "members": "first:5000", "classes": 10, "n_train": 60000,
            "test_accuracy": _acc(model, data.x_test.reshape(-1, 784), data.y_test),
            "trained_on": "all 60,000 MNIST training images in [0, 1], flattened"}


def build_rescaling_cnn(work: Path) -> dict:
    import keras

    (x_tr, y_tr), (x_te, y_te) = keras.datasets.mnist.load_data()
    np.savez_compressed(work / "mnist_raw.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    keras.utils.set_random_seed(SEED)
    layers = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Rescaling(1 / 255),
                              layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(64, activation="relu"),
                              layers.Dense(10, activation="softmax")], name="rescaling_cnn")
    _keras_fit(model, x_tr[..., None].astype(np.float32), y_tr, epochs=3)
    model.save(work / "rescaling_cnn.keras")
    return {"model": "rescaling_cnn.keras", "dataset": "mnist_raw.npz", "members": "first:5000", "classes": 10,
            "n_train": 60000,
            "test_accuracy": _acc(model, x_te[..., None].astype(np.float32), y_te),
            "trained_on": "all 60,000 MNIST training images as raw 0..255 pixels"}


def build_tabular(work: Path) -> dict:
    import keras

    rng = np.random.default_rng(SEED)
    proto = rng.random((TAB_CLASSES, TAB_FEATURES)) < TAB_DENSITY

    def records(n):
        y = rng.integers(0, TAB_CLASSES, n)
        return (proto[y] ^ (rng.random((n, TAB_FEATURES)) < TAB_FLIP)).astype(np.uint8), y

    (x_m, y_m), (x_p, y_p), (x_t, y_t) = records(TAB_MEMBERS), records(TAB_MEMBERS), records(TAB_MEMBERS)
    np.savez_compressed(work / "purchase.npz", x_train=np.concatenate([x_m, x_p]), y_train=np.concatenate([y_m, y_p]),
                        x_test=x_t, y_test=y_t)
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((TAB_FEATURES,)), keras.layers.Dense(256, activation="tanh"),
                              keras.layers.Dense(TAB_CLASSES, activation="softmax")], name="purchase_mlp")
    _keras_fit(model, x_m.astype(np.float32), y_m, epochs=60, batch_size=64)
    model.save(work / "purchase_mlp.h5")
    return {"model": "purchase_mlp.h5", "dataset": "purchase.npz", "members": f"first:{TAB_MEMBERS}",
            "n_train": 2 * TAB_MEMBERS,
            "classes": TAB_CLASSES, "train_accuracy": _acc(model, x_m.astype(np.float32), y_m),
            "test_accuracy": _acc(model, x_t.astype(np.float32), y_t),
            "trained_on": f"the first {TAB_MEMBERS} records of purchase.npz's x_train, 60 epochs (overfit)"}


def build_image_folder(work: Path) -> dict:
    import keras

    (x_tr, y_tr), (x_te, y_te) = keras.datasets.fashion_mnist.load_data()
    rng = np.random.default_rng(SEED)
    root = work / "fashion_rgb"

    def write(split, x, y, per_class):
        keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
        for i in keep:
            ink, paper = rng.uniform(0.4, 1.0, 3), rng.uniform(0.0, 0.3, 3)
            gray = np.pad(x[i], 2).astype(np.float32)[..., None] / 255.0  # 32x32
            img = np.round(255 * (paper + gray * (ink - paper))).astype(np.uint8)
            folder = root / split / str(y[i])
            folder.mkdir(parents=True, exist_ok=True)
            keras.utils.save_img(folder / f"{i}.png", img, scale=False)

    write("train", x_tr, y_tr, 200)
    write("test", x_te, y_te, 50)
    from tfmodelsec import load_dataset

    data = load_dataset(str(root))
    keras.utils.set_random_seed(SEED)
    layers = keras.layers
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
                              layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")],
                             name="rgb_cnn")
    _keras_fit(model, data.x_train / 255.0, data.y_train, epochs=15, batch_size=64)  # scaled outside the model
    model.save(work / "rgb_cnn.h5")
    return {"model": "rgb_cnn.h5", "dataset": "fashion_rgb", "members": "first:1000", "classes": 10, "n_train": 2000,
            "test_accuracy": _acc(model, data.x_test / 255.0, data.y_test),
            "trained_on": "2,000 32x32 RGB PNGs read back by load_dataset, divided by 255 outside the model"}


_LEGACY_SCRIPT = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import tf_keras
from make_legacy_h5 import build
data = np.load(sys.argv[2])
tf_keras.utils.set_random_seed(0)
model = build()
model.compile(tf_keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(data["x_train"][..., None].astype("float32"), data["y_train"], epochs=40, batch_size=32, verbose=0)
model.save(sys.argv[3])
print(model.evaluate(data["x_test"][..., None].astype("float32"), data["y_test"], verbose=0)[1])
"""


def build_legacy_h5(work: Path) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    keep = digits.target < 3
    x = np.round(digits.images[keep] * (255 / 16)).astype(np.uint8)
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target[keep], test_size=0.25, random_state=SEED,
                                              stratify=digits.target[keep])
    np.savez(work / "digits012_raw.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    out = subprocess.run([sys.executable, "-c", _LEGACY_SCRIPT, str(ROOT / "tests" / "fixtures"),
                          str(work / "digits012_raw.npz"), str(work / "legacy_tf_keras.h5")],
                         capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError(f"tf_keras training failed: {out.stderr[-2000:]}")
    return {"model": "legacy_tf_keras.h5", "dataset": "digits012_raw.npz", "members": "first:200", "classes": 3,
            "n_train": int(len(x_tr)),
            "test_accuracy": float(out.stdout.strip().splitlines()[-1]),
            "trained_on": f"{len(x_tr)} sklearn digits 0-2 as raw 0..255 pixels, with tf_keras (Keras 2)"}


BUILDERS = {"flat_mlp": build_flat_mlp, "rescaling_cnn": build_rescaling_cnn, "tabular": build_tabular,
            "image_folder": build_image_folder, "legacy_h5": build_legacy_h5}


def _acc(model, x, y) -> float:
    return float(np.mean(model.predict(x, batch_size=1024, verbose=0).argmax(1) == y))


# --------------------------------------------------------------------------- running the commands


def _tfms(args, work: Path, timeout: int = 1500) -> tuple[dict, str]:
    """Run ``python -m tfmodelsec ARGS`` in ``work``; the cell's record and the command's stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "tfmodelsec", *args], cwd=work, env=env, capture_output=True,
                             text=True, timeout=timeout)
        rc, stdout, stderr = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired:
        rc, stdout, stderr = 124, "", f"timed out after {timeout}s"
    lines = [ln for ln in stderr.splitlines() if ln.startswith("tfmodelsec")]
    record = {"command": "tfmodelsec " + " ".join(args), "rc": rc, "seconds": round(time.perf_counter() - start, 1),
              "notes": [ln for ln in lines if ": note:" in ln or ": warning:" in ln],
              "error": next((ln for ln in lines if ": error:" in ln), None if rc == 0 else stderr[-400:])}
    return record, stdout


def _n_test(spec: dict, work: Path) -> int:
    """The victim's number of test records (``--eval-samples`` may not ask for more)."""
    if "n_test" not in spec:
        from tfmodelsec import load_dataset

        path = work / spec["dataset"]
        spec["n_test"] = len(load_dataset(str(path) if path.exists() else spec["dataset"]).x_test)
    return spec["n_test"]


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _membership(result: dict) -> dict:
    attacks = result["attacks"]
    return {a: {"auc": round(attacks[a]["auc"], 4), "tpr_at_0.1%_fpr": round(attacks[a]["tpr_at_fpr_0.001"], 4)}
            for a in attacks}


def run_victim(name: str, spec: dict, work: Path, commands) -> dict:
    """Every command of ``commands`` on one victim; ``{command: cell}``."""
    out = work / "out" / name
    victim, data, q = spec["model"], ["--dataset", spec["dataset"]], ["--quiet", "--seed", str(SEED)]
    cells = {}
    stdout = {}

    def cell(command, args, headline):
        if command not in commands:
            return
        record, stdout[command] = _tfms(args, work)
        try:
            record["headline"] = headline() if record["rc"] == 0 else None
        except (KeyError, IndexError, ValueError, TypeError, FileNotFoundError) as exc:
            record["headline"], record["error"] = None, f"result unreadable: {type(exc).__name__}: {exc}"
        record["pass"] = record["rc"] == 0 and record["error"] is None
        cells[command] = record
        status = "pass" if record["pass"] else f"FAIL ({record['error']})"
        print(f"[realworld] {name:14s} {command:10s} {status}  {record['seconds']:.0f}s  {record['headline']}",
              flush=True)

    def info():
        d = json.loads(stdout["info"])
        return {"input_range": d["input_range"], "source": d["input_range_source"], "input_shape": d["input_shape"]}

    def recover():
        r = _read(out / "recover" / "recovery.json")
        conf = np.asarray(r["confidence"])
        return {"min_confidence": round(float(conf.min()), 4),
                "classes_at_0.99": f"{int(np.sum(conf >= 0.99))}/{len(conf)}",
                "mean_pearson": round(r.get("mean_pearson", float("nan")), 3),
                "nearest_mean": f"{r.get('nearest_mean_correct')}/{len(conf)}",
                "shown_shape": list(np.load(out / "recover" / "recovered.npy").shape[1:])}

    def invert():
        r = _read(out / "invert" / "inversion.json")["runs"][0]
        n = len(r["per_class"])
        return {"mean_pearson_class_mean": round(r["mean_pearson"], 3),
                "nearest_mean": f"{r['nearest_mean_correct']}/{n}",
                "min_confidence": round(r["min_confidence"], 4),
                "shown_shape": list(np.load(out / "invert" / "inverted.npy").shape[1:])}

    def steal():
        row = _read(out / "steal" / "steal.json")["rows"][0]
        return {"accuracy": round(row["accuracy"], 4), "fidelity": round(row["fidelity"], 4),
                "queries": row["oracle_queries"], "student": "see steal.json"}

    def membership():
        return _membership(_read(out / "membership" / "membership.json"))

    def defend():
        d = _read(out / "defend" / "defend.json")
        return {"defender_accuracy": round(d["defender_accuracy"], 4),
                "victim_accuracy": round(d["victim_accuracy"], 4), "label_kept": d["label_kept"]}

    def evaluate():
        d = _read(out / "evaluate" / "defenses.json")
        key = f"kl@{QUERIES}"
        return {"stealer_none": round(d["stealer_acc"]["none"][key], 4),
                "stealer_apgp_top1": round(d["stealer_acc"]["apgp_top1"][key], 4),
                "defender_apgp_top1": round(d["defender_acc"]["apgp_top1"], 4)}

    def export():
        text = stdout["export"]
        if not text.rstrip().endswith("OK"):
            raise ValueError("the export check did not end with OK")
        return {"check": "OK", "signature": next((ln.strip() for ln in text.splitlines() if "[serve]" in ln), "")}

    def chain():
        m = _read(out / "chain" / "manifest.json")
        c = m["config"]
        return {"model": c["model"], "blocks": c["blocks"], "input_shape": c["input_shape"], "range": c["input_range"]}

    def unlearn():
        u = _read(out / "unlearn" / "unlearn.json")
        return {"blocks_retrained": u["blocks_retrained"], "top1_after": round(u["after"]["top1"], 4),
                "deleted_auc_before_after": [round(u["before"]["membership_auc"], 3),
                                             round(u["after"]["membership_auc"], 3)]}

    cell("info", ["info", victim, "--json"], info)
    cell("recover", ["recover", victim, *data, "--out", str(out / "recover"), *q], recover)
    cell("invert", ["invert", victim, *data, "--out", str(out / "invert"), *q], invert)
    cell("steal", ["steal", victim, *data, "--queries", str(QUERIES), "--candidates", "2000",
                   "--eval-samples", str(min(2000, _n_test(spec, work))), "--out", str(out / "steal"), *q], steal)
    cell("membership", ["membership", victim, *data, "--members", spec["members"], "--attacks", "loss,confidence",
                        "--population", "none", "--out", str(out / "membership"), *q], membership)
    cell("defend", ["defend", victim, *data, "--defense", "apgp_top1", "--epochs", "3", "--out", str(out / "defend"),
                    *q], defend)
    cell("evaluate", ["evaluate", victim, *data, "--defenses", "none,apgp_top1", "--attacks", "kl", "--queries",
                      str(QUERIES), "--epochs", "5", "--test-samples", "1000", "--tsne-samples", "200",
                      "--out", str(out / "evaluate"), *q], evaluate)
    cell("export", ["export", victim, *data, "--defense", "apgp_top1", "--defense-path",
                    str(out / "defend" / "defense.keras"), "--out", str(out / "export"), "--overwrite"], export)
    subset = ["--train-subset", "2000"] if spec.get("n_train", 0) > 2000 else []
    cell("chain", ["chain", *data, *subset, "--blocks", "10", "--out", str(out / "chain"), "--quiet"], chain)
    cell("unlearn", ["unlearn", str(out / "chain"), "--delete", "3,14,159", "--no-reference",
                     "--out", str(out / "unlearn"), "--quiet"], unlearn)
    return cells


# --------------------------------------------------------------------------- report


def _fmt(headline) -> str:
    if headline is None:
        return ""
    return "; ".join(f"{k} {v}" for k, v in headline.items() if k not in ("signature", "student", "source"))


def targets(matrix: dict) -> dict:
    """The brief's targets, read from the matrix (None where the cell did not run)."""
    def get(victim, command, key):
        return ((matrix.get(victim, {}).get("cells", {}).get(command) or {}).get("headline") or {}).get(key)

    conf = get("flat_mlp", "recover", "classes_at_0.99")
    near = get("rescaling_cnn", "invert", "nearest_mean")
    loss = (get("tabular", "membership", "loss") or {}).get("auc")
    cells = [c for v in matrix.values() for c in v["cells"].values()]
    return {
        "every_cell_passes": {"measured": f"{sum(c['pass'] for c in cells)}/{len(cells)}",
                              "met": bool(cells) and all(c["pass"] for c in cells)},
        "flat_mlp_recovery_confidence_0.99_all_classes": {
            "measured": conf, "met": None if conf is None else conf.split("/")[0] == conf.split("/")[1]},
        "rescaling_cnn_inversion_nearest_own_mean_9_of_10": {
            "measured": near, "met": None if near is None else int(near.split("/")[0]) >= 9},
        "tabular_loss_attack_auc_0.8": {"measured": loss, "met": None if loss is None else loss >= 0.8},
    }


def markdown(matrix: dict, goals: dict, payload: dict) -> str:
    commands = [c for c in COMMANDS if any(c in v["cells"] for v in matrix.values())]
    lines = ["# Real-world victims: every command on models and data no one here tuned for", "",
             f"Victims in this matrix: {', '.join(matrix)}. Seed {SEED}; total {payload['seconds']:.0f} s of runs "
             "(2 shared CPU cores, loaded by other work: times are noisy). Runs (each cell says which run measured "
             "it; `run` in realworld.json):", "",
             *[f"{i}. `{r['command']}` (victims {', '.join(r.get('victims') or [])}; load average start "
               f"{(r.get('load_average') or {}).get('start')}, end {(r.get('load_average') or {}).get('end')})"
               for i, r in enumerate(payload["runs"])], "",
             "| victim | " + " | ".join(commands) + " |", "|---|" + "---|" * len(commands)]
    for name, v in matrix.items():
        row = [name]
        for c in commands:
            cell = v["cells"].get(c)
            if cell is None:
                row.append("-")
                continue
            mark = "pass" if cell["pass"] else "**FAIL**"
            detail = _fmt(cell["headline"]) if cell["pass"] else (cell["error"] or "")[:160]
            run = f" run {cell['run']}" if "run" in cell else ""
            row.append(f"{mark} ({cell['seconds']:.0f}s{run}) {detail}".replace("|", "/"))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {k} | {g['measured']} | {g['met']} |" for k, g in goals.items()]
    lines += ["", "## Victims", ""]
    for name, v in matrix.items():
        spec = v["spec"]
        lines.append(f"- **{name}**: `{spec['model']}` on `{spec['dataset']}` ({spec['trained_on']}; test accuracy "
                     f"{spec['test_accuracy']:.4f}"
                     + (f", train accuracy {spec['train_accuracy']:.4f}" if "train_accuracy" in spec else "") + ")")
        notes = sorted({n for c in v["cells"].values() for n in c["notes"]})
        lines += [f"  - {n}" for n in notes]
    return "\n".join(lines) + "\n"


def merge(previous: dict, matrix: dict, run: dict) -> tuple[dict, list]:
    """``previous`` (an earlier realworld.json) with this run's cells put over it, and the list of runs.

    A victim this run did not touch keeps its earlier cells; a cell this run measured replaces the earlier
    one. Each cell says which run produced it (``run``: its index in ``runs``, each with its own command
    and load average), so a merged matrix never hides which command measured what.
    """
    runs = list(previous.get("runs") or [])
    if not runs and previous.get("matrix"):  # a file written before runs were recorded: one run
        runs = [{"command": previous.get("command"), "load_average": previous.get("load_average"),
                 "seconds": previous.get("seconds"), "victims": sorted(previous["matrix"])}]
        for v in previous["matrix"].values():
            for c in v["cells"].values():
                c.setdefault("run", 0)
    before = previous.get("matrix") or {}
    merged = {name: {"spec": v["spec"], "cells": dict(v["cells"])} for name, v in before.items()}
    for name, v in matrix.items():
        for c in v["cells"].values():
            c["run"] = len(runs)
        entry = merged.setdefault(name, {"spec": v["spec"], "cells": {}})
        entry["spec"] = v["spec"]
        entry["cells"].update(v["cells"])
    order = {c: i for i, c in enumerate(COMMANDS)}
    for v in merged.values():
        v["cells"] = dict(sorted(v["cells"].items(), key=lambda kv: order.get(kv[0], len(order))))
    return dict(sorted(merged.items(), key=lambda kv: list(BUILDERS).index(kv[0]))), [*runs, run]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(WORK), help=f"folder for the victims and outputs (default: {WORK})")
    parser.add_argument("--reuse", action="store_true", help="reuse victims already built in --work")
    parser.add_argument("--victims", default=",".join(BUILDERS), help="comma-separated subset")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="comma-separated subset")
    parser.add_argument("--merge", action="store_true",
                        help="put this run's cells over the existing results/realworld.json (each cell names its run)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = [v for v in args.victims.split(",") if v]
    commands = [c for c in args.commands.split(",") if c]
    load_start = os.getloadavg()
    start = time.perf_counter()
    specs_path = work / "victims.json"
    specs = json.loads(specs_path.read_text()) if args.reuse and specs_path.is_file() else {}
    for name in names:
        if name not in specs:
            t = time.perf_counter()
            specs[name] = {**BUILDERS[name](work), "build_seconds": round(time.perf_counter() - t, 1)}
            specs_path.write_text(json.dumps(specs, indent=2))
            print(f"[realworld] built {name}: {specs[name]}", flush=True)
    matrix = {name: {"spec": specs[name], "cells": run_victim(name, specs[name], work, commands)} for name in names}
    from _common import RESULTS, command_line

    run = {"command": command_line(), "victims": names, "commands": commands,
           "seconds": round(time.perf_counter() - start, 1),
           "load_average": {"start": [round(v, 2) for v in load_start],
                            "end": [round(v, 2) for v in os.getloadavg()]}}
    previous = {}
    if args.merge and (RESULTS / "realworld.json").is_file():
        previous = json.loads((RESULTS / "realworld.json").read_text())
    matrix, runs = merge(previous, matrix, run)
    goals = targets(matrix)
    payload = {"seed": SEED, "seconds": round(sum(r.get("seconds") or 0 for r in runs), 1),
               "load_average": run["load_average"], "runs": runs, "matrix": matrix, "targets": goals}
    payload["command"] = command_line()
    write_result("realworld", payload, markdown(matrix, goals, payload))
    print(markdown(matrix, goals, payload))
    return 0 if all(g["met"] is not False for g in goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
