"""Train the reference victims with fixed seeds, and measure the BlackBox oracle's overhead.

    python benchmarks/victims.py            # trains, writes saved_models/*.h5 and results/victims.json
    python benchmarks/victims.py --reuse    # only re-measures accuracy/overhead of committed victims

Targets: LeNet-5 MNIST >= 99.0%, MLP 784-128-10 MNIST >= 97.5%, LeNet-5 Fashion-MNIST >= 90%;
oracle overhead on 10k MNIST queries <= 1.1x a direct model call.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from _common import SAVED, setup_keras_home, write_result

setup_keras_home()

import numpy as np  # noqa: E402

from tfmodelsec import BlackBox, load_dataset, load_victim, save_model, train_classifier  # noqa: E402

SEED = 0
VICTIMS = [
    # file, model, dataset, epochs, target
    ("lenet5_mnist.h5", "lenet5", "mnist", 20, 0.990),
    ("mlp_mnist.h5", "mlp", "mnist", 20, 0.975),
    ("lenet5_fashion_mnist.h5", "lenet5", "fashion_mnist", 25, 0.900),
]
OVERHEAD_QUERIES = 10_000
OVERHEAD_REPEATS = 5


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure_overhead(victim, x) -> dict:
    """BlackBox answering ``x`` vs calling the model directly (same batch size), best of N each.

    Two anchors: ``Model.predict`` (what a user calls), and the bare compiled forward
    pass (``tf.function`` over the model, no validation, no counting): the second
    isolates what validation and counting cost.
    """
    import tensorflow as tf

    oracle = BlackBox(victim, batch_size=1024)
    model = victim.model
    bare = tf.function(lambda b: model(b, training=False), reduce_retracing=True)

    def bare_call(batch):
        return np.concatenate([bare(batch[i:i + 1024]).numpy() for i in range(0, len(batch), 1024)])

    paths = {
        "predict": lambda: model.predict(x, batch_size=1024, verbose=0),
        "compiled_call": lambda: bare_call(x),
        "blackbox": lambda: oracle(x),
    }
    for run in paths.values():  # warm every path (tracing) before timing
        run()
    times = {name: [] for name in paths}
    outputs = {}
    for _ in range(OVERHEAD_REPEATS):
        for name, run in paths.items():
            t = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - t)
    np.testing.assert_allclose(outputs["blackbox"], outputs["predict"], rtol=1e-4, atol=1e-6)
    best = {name: min(values) for name, values in times.items()}
    return {
        "queries": len(x),
        "seconds": best,
        "ratio": best["blackbox"] / best["predict"],
        "ratio_vs_compiled_call": best["blackbox"] / best["compiled_call"],
        "target_ratio": 1.1,
        "note": f"best of {OVERHEAD_REPEATS} runs each, batch 1024; ratio = BlackBox / Model.predict; "
                "ratio_vs_compiled_call = BlackBox / bare tf.function forward (validation + counting cost)",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reuse", action="store_true", help="do not train; measure the committed files")
    parser.add_argument("--saved", default=None, metavar="DIR",
                        help="train into DIR instead of saved_models/ (a reproducibility check); "
                             "results then go to results/victims_retrain.json")
    args = parser.parse_args()
    saved = SAVED if args.saved is None else Path(args.saved)
    saved.mkdir(parents=True, exist_ok=True)
    result_name = "victims" if args.saved is None else "victims_retrain"
    rows = []
    for filename, model, dataset, epochs, target in VICTIMS:
        data = load_dataset(dataset)
        path = saved / filename
        seconds = None
        if not args.reuse:
            result = train_classifier(model, data, epochs=epochs, batch_size=128, schedule="cosine",
                                      seed=SEED, verbose=2)
            seconds = result.seconds
            save_model(result.model, path, metadata={"model": model, "dataset": dataset, "seed": SEED,
                                                      **result.to_dict()})
        if seconds is None:  # --reuse: the training time recorded when the file was made
            seconds = json.loads(path.with_suffix(".json").read_text()).get("seconds")
        victim = load_victim(path)
        acc = victim.accuracy(data.x_test, data.y_test)
        shown = str(path.relative_to(SAVED.parent)) if args.saved is None else str(path)
        rows.append({"file": shown, "model": model, "dataset": dataset,
                     "epochs": epochs, "schedule": "cosine", "seed": SEED, "test_accuracy": acc, "target": target,
                     "meets_target": acc >= target, "train_seconds": seconds,
                     "bytes": path.stat().st_size, "sha256": sha256(path)})
        print(f"{filename}: test accuracy {acc:.4f} (target {target})")
    mnist = load_dataset("mnist")
    overhead = measure_overhead(load_victim(saved / "lenet5_mnist.h5"), mnist.x_test[:OVERHEAD_QUERIES])
    print(f"oracle overhead: {overhead['ratio']:.3f}x predict, "
          f"{overhead['ratio_vs_compiled_call']:.3f}x bare compiled call")
    write_result(result_name, {"seed": SEED, "victims": rows, "oracle_overhead": overhead})
    lines = ["# Reference victims", "",
             "Trained by `python benchmarks/victims.py` (seed 0). Load with `tfmodelsec.load_victim(path)`.", "",
             "| file | model | dataset | epochs | test accuracy | bytes | sha256 |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['file'].split('/')[-1]} | {r['model']} | {r['dataset']} | {r['epochs']} | "
              f"{r['test_accuracy']:.2%} | {r['bytes']} | `{r['sha256']}` |" for r in rows]
    if args.saved is None:
        (SAVED / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
