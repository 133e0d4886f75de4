"""Defenses against model stealing: APGP, APMSA and the evasion attacks beside ART.

    python benchmarks/defenses.py              # full run (writes results/defenses.json, .md, _tsne.png)
    python benchmarks/defenses.py --quick      # smoke run (small budgets, one seed, results/defenses_quick.*)

Targets (issue 6):
* APGP: Defender Acc change exactly 0.00; Stealer Acc under KL distillation at 1k and 5k
  queries lower than Gaussian noise and reverse sigmoid (at the same or better Defender Acc).
* APMSA: label kept for 100% of queries; Stealer Acc under Jacobian augmentation at 5k
  queries >= 2 points below No Defense; cost per answered query <= 20x a plain forward pass.
* FGSM and PGD-40 on 10k MNIST images vs ART's FastGradientMethod / ProjectedGradientDescent on
  the same Keras model: time ratio <= 0.5x ART, success rate within 1 point.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import RESULTS, SAVED, setup_keras_home, write_result

setup_keras_home()

import numpy as np

from tfmodelsec import load_dataset, load_victim
from tfmodelsec.defenses import make_defense
from tfmodelsec.defenses.evaluate import evaluate_defenses, format_change, tsne_plot

VICTIMS = [("mnist", "lenet5_mnist.h5"), ("fashion_mnist", "lenet5_fashion_mnist.h5")]
APGP_SET = ["none", "gaussian", "reverse_sigmoid", "apgp_all", "apgp_top1"]
APMSA_SET = ["none", "apmsa_fgsm", "apmsa_pgd", "apmsa_cw"]
EPS, PGD_STEPS, PGD_STEP_SIZE = 0.3, 40, 0.01


def _victim_path(name):
    path = SAVED / name
    if not path.exists():  # reference victims live on main until merged
        path = SAVED.parents[2] / "main" / "saved_models" / name
    return path


def apgp_part(args, seeds):
    rows = {}
    for dataset, file in VICTIMS:
        victim, data = load_victim(_victim_path(file)), load_dataset(dataset)
        per_seed = []
        for seed in seeds:
            defenses = {n: make_defense(n, victim, x=data.x_train, seed=seed) for n in APGP_SET}
            tsne = args.tsne_samples if seed == seeds[0] else 0
            report = evaluate_defenses(victim, defenses, data, attacks=["kl"], budgets=args.budgets, seed=seed,
                                       epochs=args.epochs, test_samples=args.test_samples, tsne_samples=tsne,
                                       tsne_defenses=["none", "gaussian", "apgp_top1"], verbose=1)
            if tsne:
                name = "defenses_quick_tsne.png" if args.quick else "defenses_tsne.png"
                tsne_plot(report, RESULTS / name, title=f"{dataset}: t-SNE of log outputs (seed {seed})")
            per_seed.append(report)
        rows[dataset] = per_seed
    return rows


def apmsa_part(args, seed):
    dataset, file = VICTIMS[0]
    victim, data = load_victim(_victim_path(file)), load_dataset(dataset)
    defenses = {n: make_defense(n, victim, seed=seed) for n in APMSA_SET}
    budget = max(args.budgets)
    return evaluate_defenses(victim, defenses, data, attacks=["jacobian"], budgets=[budget], seed=seed,
                             epochs=args.epochs, test_samples=args.test_samples, verbose=1)


def _art_classifier(model):
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(model=model, nb_classes=10, input_shape=(28, 28, 1), clip_values=(0.0, 1.0),
                                  loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=False))


def evasion_part(args):
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    from tfmodelsec.attacks.evasion import attack_success, fgsm, pgd

    victim = load_victim(_victim_path(VICTIMS[0][1]))
    data = load_dataset("mnist")
    x = data.x_test[: args.attack_samples]
    y = victim.predict_labels(x)  # untargeted, away from the model's own labels (ART's default)
    model = victim.probability_model
    art = _art_classifier(model)
    ours = {"fgsm": lambda: fgsm(model, x, y, eps=EPS),
            "pgd40": lambda: pgd(model, x, y, eps=EPS, step_size=PGD_STEP_SIZE, steps=PGD_STEPS,
                                 random_start=False)}
    theirs = {"fgsm": lambda: FastGradientMethod(art, eps=EPS, batch_size=1024).generate(x),
              "pgd40": lambda: ProjectedGradientDescent(art, eps=EPS, eps_step=PGD_STEP_SIZE, max_iter=PGD_STEPS,
                                                        num_random_init=0, batch_size=1024,
                                                        verbose=False).generate(x)}
    out = {}
    for key in ours:
        # one warm-up batch each (compiles our loop; ART runs eagerly but gets the same courtesy)
        (fgsm if key == "fgsm" else pgd)(model, x[:1024], y[:1024], eps=EPS, **(
            {} if key == "fgsm" else {"step_size": PGD_STEP_SIZE, "steps": 2, "random_start": False}))
        FastGradientMethod(art, eps=EPS, batch_size=1024).generate(x[:1024])
        timings = {}
        for lib, fn in (("tfmodelsec", ours[key]), ("art", theirs[key])):
            start = time.perf_counter()
            adv = fn()
            timings[lib] = {"seconds": time.perf_counter() - start,
                            "success": float(np.mean(attack_success(model, adv, y))),
                            "max_linf": float(np.abs(adv - x).max())}
        timings["time_ratio"] = timings["tfmodelsec"]["seconds"] / timings["art"]["seconds"]
        timings["success_gap_points"] = 100 * abs(timings["tfmodelsec"]["success"] - timings["art"]["success"])
        out[key] = timings
        print(f"[evasion] {key}: ours {timings['tfmodelsec']['seconds']:.1f}s "
              f"{timings['tfmodelsec']['success']:.4f} vs ART {timings['art']['seconds']:.1f}s "
              f"{timings['art']['success']:.4f}", flush=True)
    return out


def _mean_std(values):
    return float(np.mean(values)), float(np.std(values))


def summarize_apgp(rows, budgets):
    summary, md = {}, []
    for dataset, reports in rows.items():
        names = reports[0].defenses
        cols = [f"kl@{b}" for b in budgets]
        summary[dataset] = {}
        md += [f"### APGP vs output perturbations, {dataset} LeNet-5, KL distillation "
               f"({len(reports)} seed{'s' if len(reports) > 1 else ''}, mean)", "",
               "| Defense | Defender Acc | " + " | ".join(f"Stealer Acc @ {b}" for b in budgets) + " |",
               "|---|---|" + "---|" * len(budgets)]
        base_def = np.mean([r.defender["none"] for r in reports])
        for n in names:
            d = [r.defender[n] for r in reports]
            entry = {"defender_acc": _mean_std(d), "label_kept": float(np.mean([r.label_kept[n] for r in reports]))}
            cells = [n, format_change(np.mean(d), base_def)]
            for c in cols:
                s = [r.stealer[n][c] for r in reports]
                entry[c] = _mean_std(s)
                base = np.mean([r.stealer["none"][c] for r in reports])
                cells.append(format_change(np.mean(s), base) + (f" ±{100 * np.std(s):.2f}" if len(s) > 1 else ""))
            summary[dataset][n] = entry
            md.append("| " + " | ".join(cells) + " |")
        md.append("")
        s = summary[dataset]
        for variant in ("apgp_all", "apgp_top1"):
            s[variant]["defender_change_points"] = 100 * (s[variant]["defender_acc"][0] - s["none"]["defender_acc"][0])
            s[variant]["beats_gaussian_and_reverse_sigmoid"] = {
                c: bool(s[variant][c][0] < min(s["gaussian"][c][0], s["reverse_sigmoid"][c][0])) for c in cols}
    return summary, md


_PART_KEYS = {"apgp": ("apgp", "apgp_per_seed"), "apmsa": ("apmsa",), "evasion": ("evasion",)}
_PART_HEADINGS = {"apgp": "### APGP", "apmsa": "### APMSA", "evasion": "### FGSM"}


def _previous_parts(name, skip):
    """For each skipped part: its JSON keys and Markdown sections from the existing results file."""
    import json

    path = RESULTS / f"{name}.json"
    if not skip - {""} or not path.exists():
        return {}
    old = json.loads(path.read_text())
    md_path = RESULTS / f"{name}.md"
    sections = md_path.read_text().split("\n### ") if md_path.exists() else []
    parts = {"command": old.get("command")}
    for part in skip & set(_PART_KEYS):
        keys = {k: old[k] for k in _PART_KEYS[part] if k in old}
        if not keys:
            continue
        lines = []
        for sec in sections[1:]:
            if ("### " + sec).startswith(_PART_HEADINGS[part]):
                body = sec.split("\nTotal ")[0].rstrip("\n")
                lines += ("### " + body).splitlines() + [""]
        parts[part] = (keys, lines)
    return parts if len(parts) > 1 else {}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--attack-samples", type=int, default=10000)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: apgp,apmsa,evasion; a skipped "
                        "part keeps its figures from the existing results file (listed under carried_over)")
    args = parser.parse_args()
    args.budgets = [200, 500] if args.quick else [1000, 5000]
    args.test_samples = 2000 if args.quick else 10000
    args.tsne_samples = 300 if args.quick else 1000
    if args.quick:
        args.seeds, args.epochs, args.attack_samples = 1, 2, 1000
    skip = set(args.skip.split(","))
    RESULTS.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    payload, md = {"seeds": seeds, "budgets": args.budgets, "student_epochs": args.epochs,
                   "test_samples": args.test_samples, "load_average_start": os.getloadavg()}, [
        "# Defenses benchmark", ""]
    name = "defenses_quick" if args.quick else "defenses"
    previous = _previous_parts(name, skip)
    start = time.perf_counter()
    if "apgp" not in skip:
        rows = apgp_part(args, seeds)
        payload["apgp"], lines = summarize_apgp(rows, args.budgets)
        payload["apgp_per_seed"] = {d: [r.to_dict() for r in reps] for d, reps in rows.items()}
        for reps in payload["apgp_per_seed"].values():
            for r in reps:
                r.pop("tsne", None)
        md += lines
    elif "apgp" in previous:
        payload.update(previous["apgp"][0])
        md += previous["apgp"][1]
    if "apmsa" not in skip:
        report = apmsa_part(args, seeds[0])
        key = f"jacobian@{max(args.budgets)}"
        payload["apmsa"] = {**report.to_dict(), "stealer_change_points": {
            n: 100 * (report.stealer[n][key] - report.stealer["none"][key]) for n in report.defenses}}
        md += [f"### APMSA, mnist LeNet-5, Jacobian augmentation (soft answers), seed {seeds[0]}", "",
               report.to_markdown(), ""]
    elif "apmsa" in previous:
        payload.update(previous["apmsa"][0])
        md += previous["apmsa"][1]
    if "evasion" not in skip:
        payload["evasion"] = ev = evasion_part(args)
        md += [f"### FGSM / PGD-{PGD_STEPS} on {args.attack_samples} MNIST images vs ART 1.20 (eps {EPS})", "",
               "| attack | tfmodelsec s | ART s | time ratio | success ours | success ART |",
               "|---|---|---|---|---|---|"]
        for k, v in ev.items():
            md.append(f"| {k} | {v['tfmodelsec']['seconds']:.1f} | {v['art']['seconds']:.1f} | {v['time_ratio']:.2f}x"
                      f" | {100 * v['tfmodelsec']['success']:.2f} | {100 * v['art']['success']:.2f} |")
        md.append("")
    elif "evasion" in previous:
        payload.update(previous["evasion"][0])
        md += previous["evasion"][1]
    payload["seconds"] = round(time.perf_counter() - start, 1)
    payload["load_average_end"] = os.getloadavg()
    if previous:
        payload["carried_over"] = {part: previous["command"] for part in previous if part != "command"}
    md.append(f"Total {payload['seconds']:.0f} s on a shared 2-core CPU"
              + (f" (parts carried over from an earlier run: {', '.join(payload['carried_over'])})" if previous else "")
              + ".")
    write_result(name, payload, markdown="\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
