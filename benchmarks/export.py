"""Latency of defended TF-Serving exports vs the undefended export (issue 9).

Every defense the registry offers is exported with ``export_defended`` for the MNIST
LeNet-5 reference victim, loaded back with ``tf.saved_model.load`` (as TF Serving does),
and timed through its ``serving_default`` signature for a batch of 1 and of 256 real MNIST
test images. The undefended export is timed in the same rounds, interleaved with the
defended ones, so the ratios compare like with like on a shared machine.

Targets: output layers and APGP <= 1.2x the undefended export at batch 256; APMSA's ratio
is reported as measured (it runs a boundary walk of several forward/backward passes).

Latency is timed in blocks of calls; the table gives the best block and the median block per
export (the target is judged on the best block, the timeit convention on a shared machine).

Usage: ``cd benchmarks && python export.py [--quick]`` -> results/export.json (+ .md)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import SAVED, setup_keras_home, write_result

setup_keras_home()

import numpy as np  # noqa: E402

TARGET_RATIO = 1.2
BATCHES = (1, 256)
# Each timing block lasts about this long (calls per block calibrated per export and batch at
# warm-up): long enough to average out timer noise, short enough that many blocks fit between
# the bursts of other work on a shared machine.
BLOCK_SECONDS = 0.1
MAX_CALLS = 500
# APGP's latency does not depend on how long it trained: one epoch on a few thousand images
# gives the exported graph its real shape at a fraction of the time.
APGP_TRAIN = {"epochs": 1}
APGP_TRAIN_SAMPLES = 2000
# (registry name, parameters, kind): the kinds are what the targets are stated for.
CANDIDATES = [
    ("gaussian", {}, "output"), ("reverse_sigmoid", {}, "output"), ("rounding", {}, "output"),
    ("topk", {}, "output"), ("label", {}, "output"), ("mad", {}, "output"),
    ("apgp_all", APGP_TRAIN, "apgp"), ("apgp_top1", APGP_TRAIN, "apgp"),
    ("apmsa_fgsm", {}, "apmsa"), ("apmsa_pgd", {}, "apmsa"), ("apmsa_cw", {}, "apmsa"),
]


def victim_path() -> Path:
    local = SAVED / "lenet5_mnist.h5"
    if local.is_file():
        return local
    fallback = SAVED.parents[2] / "main" / "saved_models" / "lenet5_mnist.h5"
    if fallback.is_file():
        return fallback
    sys.exit(f"reference victim not found: {local} (train it with 'tfmodelsec train --out {local}')")


def build_defenses(victim, names, x_train):
    """Defenses the registry can make for ``victim``; what it cannot make is recorded, not hidden."""
    try:
        from tfmodelsec.defenses import make_defense
    except ImportError as exc:
        return {}, {name: f"registry unavailable ({exc})" for name, _, _ in CANDIDATES if name in names}
    made, skipped = {}, {}
    for name, params, kind in CANDIDATES:
        if name not in names:
            continue
        try:
            made[name] = (make_defense(name, victim, x=x_train, seed=0, **params), kind)
        except Exception as exc:  # record why, measure the rest
            skipped[name] = f"{type(exc).__name__}: {str(exc)[:160]}"
    return made, skipped


def time_block(fn, x, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(inputs=x)["probabilities"].numpy()
    return (time.perf_counter() - t0) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds, two defenses: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 30; quick 3)")
    parser.add_argument("--defenses", default=None, help="comma-separated registry names (default: all)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 30)
    names = (args.defenses.split(",") if args.defenses else
             (["rounding", "apgp_all"] if args.quick else [n for n, _, _ in CANDIDATES]))

    import tensorflow as tf

    from tfmodelsec.data import load_dataset
    from tfmodelsec.export import check_export, export_defended
    from tfmodelsec.models import load_victim

    load_start = list(os.getloadavg())
    path = victim_path()
    victim = load_victim(path)
    data = load_dataset("mnist")
    x_all = data.x_test[: max(BATCHES)]
    defenses, skipped = build_defenses(victim, names, data.x_train[:APGP_TRAIN_SAMPLES])
    work = Path(tempfile.mkdtemp(prefix="tfms-export-bench-"))

    exports, meta = {}, {}
    for name, (defense, kind) in {"none": (None, "none"), **defenses}.items():
        t0 = time.perf_counter()
        version_dir = export_defended(victim, defense, work / name)
        export_s = time.perf_counter() - t0
        report = check_export(version_dir, victim, defense, seed=0)
        exports[name] = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        meta[name] = {"kind": kind, "class": type(defense).__name__ if defense is not None else None,
                      "export_seconds": round(export_s, 2), "check_ok": report.ok,
                      "check_problems": report.problems,
                      "size_bytes": sum(f.stat().st_size for f in version_dir.rglob("*") if f.is_file())}
        print(f"exported {name}: {export_s:.1f}s, check {'ok' if report.ok else report.problems}", flush=True)

    inputs = {b: tf.constant(x_all[:b]) for b in BATCHES}
    calls = {}
    for name, fn in exports.items():  # warm up every graph and batch shape, calibrate block sizes
        for b in BATCHES:
            time_block(fn, inputs[b], 2)
            per_call = min(time_block(fn, inputs[b], 3) for _ in range(3))
            calls[(name, b)] = int(np.clip(round(BLOCK_SECONDS / per_call), 1, MAX_CALLS))
    samples = {name: {b: [] for b in BATCHES} for name in exports}
    for r in range(rounds):
        for b in BATCHES:
            for name, fn in exports.items():  # interleaved: drift on a shared machine hits all alike
                samples[name][b].append(time_block(fn, inputs[b], calls[(name, b)]))
        print(f"round {r + 1}/{rounds}", flush=True)

    # Two summaries of the timing blocks: the median, and the best block (timeit's convention: on a
    # shared machine the fastest block is the one least disturbed by other processes). The target
    # is judged on the best-block ratio; both are written.
    base = {b: (float(np.median(samples["none"][b])), float(np.min(samples["none"][b]))) for b in BATCHES}
    rows = {}
    for name, by_batch in samples.items():
        row = {**meta[name], "calls_per_block": {str(b): calls[(name, b)] for b in BATCHES}}
        for b in BATCHES:
            med, best = float(np.median(by_batch[b])), float(np.min(by_batch[b]))
            row[f"ms_batch{b}_median"] = round(med * 1e3, 4)
            row[f"ms_batch{b}_best"] = round(best * 1e3, 4)
            row[f"ratio_batch{b}_median"] = round(med / base[b][0], 3)
            row[f"ratio_batch{b}_best"] = round(best / base[b][1], 3)
        if row["kind"] in ("output", "apgp"):
            row["target"] = f"ratio_batch256_best <= {TARGET_RATIO}"
            row["target_met"] = bool(row["ratio_batch256_best"] <= TARGET_RATIO)
        rows[name] = row

    lines = ["| defense | kind | ms/batch 1 (best, median) | ratio best (median) | ms/batch 256 (best, median) "
             "| ratio best (median) | target <= 1.2x @256 |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        target = {True: "met", False: "MISSED"}.get(row.get("target_met"), "reported")
        cells = []
        for b in BATCHES:
            cells.append(f"{row[f'ms_batch{b}_best']:.3f}, {row[f'ms_batch{b}_median']:.3f}")
            cells.append(f"{row[f'ratio_batch{b}_best']:.2f}x ({row[f'ratio_batch{b}_median']:.2f}x)")
        lines.append(f"| {name} | {row['kind']} | " + " | ".join(cells) + f" | {target} |")
    for name, why in skipped.items():
        lines.append(f"| {name} | - | not measured: {why} | | | | |")
    load = os.getloadavg()
    markdown = ("# Defended export latency (loaded SavedModel, serving_default)\n\n"
                f"Victim: `{path.name}`; {rounds} interleaved rounds of ~{BLOCK_SECONDS}s timing blocks per export "
                f"and batch size; ratios vs the undefended export in the same run. "
                f"Load average at the end: {load[0]:.1f} on {os.cpu_count()} CPUs (shared machine).\n\n"
                + "\n".join(lines) + "\n")
    print(markdown)
    write_result("export", {
        "victim": str(path.name), "rounds": rounds, "block_seconds": BLOCK_SECONDS, "batches": list(BATCHES),
        "quick": args.quick, "target_ratio_batch256": TARGET_RATIO, "target_judged_on": "best block",
        "load_average_start": load_start, "load_average_end": list(os.getloadavg()),
        "apgp_training": {**APGP_TRAIN, "samples": APGP_TRAIN_SAMPLES,
                          "note": "latency only; the graph is the same however long it trains"},
        "results": rows, "not_measured": skipped,
    }, markdown=markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
