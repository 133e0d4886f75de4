"""Study: which DRMI configuration selects queries worth more than random ones?

Issue 16, defect 8: with the former defaults (8 gray levels, 5,000 candidates, 8 random
starts, ``g`` = sum) DRMI-selected queries gave a *less* accurate student than random ones
under plain KL distillation (75.1 / 85.7 / 93.8% vs 81.1 / 94.4 / 97.0% at 50 / 150 / 600
queries), while the DRMI paper (He et al., USENIX Security 2021) reports DRMI better than
its baselines. This script runs, in one run and with the same seeds, student and training:

* ``random``: uniform picks from the pool (the anchor);
* ``former``: the former defaults (8 levels, 5,000 candidates, 8 starts, g = sum);
* ``paper``: the seed's formula at full resolution: R = 255, i.e. 256 gray levels, every
  candidate as a starting point (Algorithm 1), g = sum, Algorithm 3 on;
* ``paper_gmax``: the same with g = max in Algorithm 2 and without Algorithm 3 (its swaps
  minimise the summed MI and pull every start back to the g = sum sets);
* ``nmi`` / ``nmi_gmax``: normalised MI ``MI / sqrt(H(u) H(v))`` (plain MI is bounded by
  each image's entropy, so its minimum favours images with little ink);
* ``balanced`` / ``balanced_nmi`` / ``balanced_gmax``: the candidates clustered by KMeans
  on their own pixels (no labels) into as many clusters as the victim has classes (the
  length of its answers), the budget split in proportion to cluster size, DRMI inside each;
* ``gmax8``: ``paper_gmax`` at 8 gray levels (is the resolution or the aggregate what matters?).

Victim: saved_models/lenet5_mnist.h5; pool: the 60,000 MNIST training images (labels used
only for the class histograms reported); student LeNet-5 trained by plain KL distillation
(tau 4, 30 epochs of >= 2,048 samples, augmentation; no self-training, no active queries);
accuracy on the 10,000 MNIST test images. The DRMI variants at 256 levels search a seeded
subset of ``--candidates`` pool images (the MI matrix costs ~n^2/2 joint histograms).

Run: ``cd benchmarks && python drmi_study.py`` (``--quick`` for a smoke run; ``--variants``,
``--budgets``, ``--seeds`` to run a part). Writes results/drmi_study.json and .md after
every row, so a stopped run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SAVED, setup_keras_home, write_result

setup_keras_home()

import numpy as np  # noqa: E402

BUDGETS = (50, 150, 600)
CANDIDATES = 2000
FORMER_CANDIDATES = 5000
CLASSES = 10  # the victim's answers have 10 entries: the attacker knows the class count

VARIANTS = {
    "random": {"method": "random"},
    "former": {"method": "drmi", "levels": 8, "restarts": 8, "candidates": FORMER_CANDIDATES},
    "paper": {"method": "drmi", "levels": 256, "restarts": None},
    "paper_gmax": {"method": "drmi", "levels": 256, "restarts": None, "g": "max", "swaps": False},
    "nmi": {"method": "drmi", "levels": 256, "restarts": None, "normalize": True},
    "nmi_gmax": {"method": "drmi", "levels": 256, "restarts": None, "normalize": True, "g": "max", "swaps": False},
    "balanced": {"method": "drmi", "levels": 256, "restarts": None, "clusters": CLASSES},
    "balanced_nmi": {"method": "drmi", "levels": 256, "restarts": None, "clusters": CLASSES, "normalize": True},
    "balanced_gmax": {"method": "drmi", "levels": 256, "restarts": None, "clusters": CLASSES, "g": "max",
                      "swaps": False},
    "gmax8": {"method": "drmi", "levels": 8, "restarts": None, "g": "max", "swaps": False},
}
# What a full run measures (the others stay available through --variants): seed 0 at 50 / 150 queries
# (3,000 candidates) put nmi, nmi_gmax, balanced_nmi and balanced_gmax within noise of their neighbours.
DEFAULT_VARIANTS = ("random", "former", "paper", "paper_gmax", "balanced", "gmax8")


def _selection(name: str, candidates: int) -> dict:
    sel = dict(VARIANTS[name])
    if sel["method"] == "drmi":
        sel.setdefault("candidates", candidates)
    return sel


def summarize(rows, variants, budgets):
    """Mean / std over seeds per variant x budget, and the paired difference to random (same seed)."""
    out = []
    rnd = {(r["budget"], r["seed"]): r["accuracy"] for r in rows if r["variant"] == "random"}
    for v in variants:
        for b in budgets:
            acc = [r["accuracy"] for r in rows if r["variant"] == v and r["budget"] == b]
            if not acc:
                continue
            diff = [r["accuracy"] - rnd[(b, r["seed"])] for r in rows
                    if r["variant"] == v and r["budget"] == b and (b, r["seed"]) in rnd]
            out.append({"variant": v, "budget": b, "seeds": len(acc), "accuracy": float(np.mean(acc)),
                        "accuracy_std": float(np.std(acc)),
                        "minus_random": float(np.mean(diff)) if diff else None,
                        "minus_random_min": float(np.min(diff)) if diff else None,
                        "wins_vs_random": int(np.sum(np.asarray(diff) >= 0)) if diff else None})
    return out


def markdown(payload) -> str:
    summ = {(e["variant"], e["budget"]): e for e in payload["summary"]}
    budgets = payload["budgets"]
    lines = ["# DRMI study: which selection beats random queries? (LeNet-5 / MNIST, plain KL distillation)", "",
             payload["design"], "",
             "Accuracy, mean ± std over seeds; in brackets the mean paired difference to random (same seed) "
             "and how many seeds were at least as accurate as random.", "",
             "| variant | " + " | ".join(str(b) for b in budgets) + " | settings |",
             "|---|" + "---|" * (len(budgets) + 1)]
    for v in payload["variants"]:
        cells = []
        for b in budgets:
            e = summ.get((v, b))
            if e is None:
                cells.append("-")
                continue
            cell = f"{e['accuracy']:.2%} ± {e['accuracy_std']:.2%}"
            if v != "random" and e["minus_random"] is not None:
                cell += f" ({e['minus_random']:+.2%}; {e['wins_vs_random']}/{e['seeds']})"
            cells.append(cell)
        settings = ", ".join(f"{k}={val}" for k, val in payload["selection"][v].items() if k != "method")
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {settings or '-'} |")
    lines += ["", "## Class histogram of the picks (digits 0-9, seed 0; labels read for this table only)", "",
              "| variant | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for v in payload["variants"]:
        cells = []
        for b in budgets:
            r = next((r for r in payload["rows"] if r["variant"] == v and r["budget"] == b and r["seed"] == 0), None)
            cells.append("-" if r is None else " ".join(str(c) for c in r["class_histogram"]))
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "## Selection time (seconds, mean over seeds; MI matrices cached across variants and budgets)", "",
              "| variant | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for v in payload["variants"]:
        cells = []
        for b in budgets:
            t = [r["selection_seconds"] for r in payload["rows"] if r["variant"] == v and r["budget"] == b]
            cells.append("-" if not t else f"{np.mean(t):.1f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    if payload.get("mi_seconds"):
        lines += ["", "MI matrix (first computation, per seed): " + ", ".join(
            f"{k}: {v} s" for k, v in payload["mi_seconds"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, budget 50, 500 candidates, 3 epochs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", default=",".join(str(b) for b in BUDGETS))
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma list among {', '.join(VARIANTS)}")
    ap.add_argument("--variants-600", default="random,paper,paper_gmax",
                    help="the variants run at budget 600 (random always; default: random,paper,paper_gmax)")
    ap.add_argument("--candidates", type=int, default=CANDIDATES,
                    help=f"pool subset the 256-level variants search (default {CANDIDATES})")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--name", default="drmi_study", help="results/NAME.json (default drmi_study)")
    args = ap.parse_args(argv)

    from tfmodelsec.attacks.stealing import steal
    from tfmodelsec.attacks.stealing.drmi import mutual_information_matrix
    from tfmodelsec.attacks.stealing.selection import candidate_indices, select_queries
    from tfmodelsec.data import load_dataset
    from tfmodelsec.models import load_victim
    from tfmodelsec.oracle import BlackBox

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose among {list(VARIANTS)}")
    if "random" not in variants:
        variants.insert(0, "random")  # the anchor always runs in the same run
    variants_600 = [v for v in variants if v in {"random", *args.variants_600.split(",")}]
    budgets = [50] if args.quick else [int(b) for b in args.budgets.split(",")]
    seeds = range(1 if args.quick else args.seeds)
    candidates = 500 if args.quick else args.candidates
    epochs = 3 if args.quick else args.epochs
    name = args.name + ("_quick" if args.quick else "")
    start, load_start = time.perf_counter(), os.getloadavg()

    data = load_dataset("mnist")
    victim = load_victim(SAVED / "lenet5_mnist.h5")
    pool, eval_data = data.x_train, (data.x_test, data.y_test)
    cache = RESULTS.parent / "cache"
    selection = {v: _selection(v, candidates) for v in variants}
    if args.quick:
        for v in variants:
            if "candidates" in selection[v]:
                selection[v]["candidates"] = candidates
    rows, mi_seconds = [], {}

    def save(stage):
        payload = {
            "stage": stage, "seeds": len(seeds), "budgets": budgets, "variants": variants,
            "selection": selection, "variants_600": variants_600, "epochs": epochs, "quick": args.quick,
            "load_average_start": load_start, "load_average_now": os.getloadavg(),
            "design": (f"Victim lenet5_mnist.h5 (MNIST test accuracy {victim.accuracy(*eval_data):.2%}); pool: "
                       f"60,000 MNIST training images; student LeNet-5, plain KL distillation (tau 4, {epochs} "
                       f"epochs, augmentation), no self-training or active queries; accuracy on the 10,000 test "
                       f"images; {len(seeds)} seeds (seed = selection seed = training seed, so each variant and "
                       f"random share the student's initialisation); the 256-level variants search a seeded "
                       f"subset of {candidates} candidates, 'former' its own {FORMER_CANDIDATES}; "
                       f"2 CPU cores shared with other jobs."),
            "mi_seconds": mi_seconds, "summary": summarize(rows, variants, budgets), "rows": rows,
            "total_seconds": round(time.perf_counter() - start, 1),
        }
        write_result(name, payload, markdown(payload))

    for seed in seeds:  # each seed's MI matrices once, timed; every variant and budget reads the cache
        for levels, n_cand in sorted({(s["levels"], s["candidates"]) for s in selection.values()
                                      if s["method"] == "drmi"}):
            t = time.perf_counter()
            cand = candidate_indices(len(pool), 1, n_cand, seed)
            mutual_information_matrix(pool[cand], levels=levels, cache_dir=cache)
            mi_seconds[f"seed {seed}, {levels} levels, {len(cand)} candidates"] = round(time.perf_counter() - t, 1)
    for budget in budgets:  # budgets outermost: a stopped run holds complete small budgets
        for seed in seeds:
            for v in (variants if budget < 600 else variants_600):
                idx, info = select_queries(pool, budget, seed=seed, cache_dir=cache, return_info=True, **selection[v])
                oracle = BlackBox(victim, budget=budget)
                res = steal(oracle, pool[idx], loss="kl", epochs=epochs, eval_data=eval_data, transfer_eps=0.0,
                            seed=seed, verbose=0)
                rows.append({"variant": v, "budget": budget, "seed": seed, "accuracy": res.accuracy,
                             "fidelity": res.fidelity, "queries_used": oracle.queries_used,
                             "selection_seconds": round(info["seconds"], 2),
                             "train_seconds": round(res.seconds, 2), "selection_cost": info.get("cost"),
                             "load_average_1min": round(os.getloadavg()[0], 2),
                             "class_histogram": np.bincount(data.y_train[idx], minlength=10).tolist()})
                print(f"[drmi-study] seed {seed} budget {budget} {v:>14}: accuracy {res.accuracy:.4f} "
                      f"(selection {info['seconds']:.1f}s, training {res.seconds:.1f}s)", flush=True)
                save(f"budget {budget} seed {seed}")
    save("done")
    print(markdown({"design": "", **_reload(name)}))
    return 0


def _reload(name):
    import json

    return json.loads((RESULTS / f"{name}.json").read_text())


if __name__ == "__main__":
    sys.exit(main())
