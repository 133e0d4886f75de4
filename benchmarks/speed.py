"""Speed: tfmodelsec beside ART 1.20 and a bare compiled loop, on the same work (issue 19).

One process, the committed victims (saved_models/lenet5_mnist.h5; lenet5_fashion_mnist.h5 and a
LeNet-5 overfit on Fashion-MNIST for membership), the same inputs for every column. Each row is
timed as interleaved repeats (the order alternates between rounds; a warm-up call per column,
which traces the compiled functions, is excluded) and reports the median wall time with its
spread, the median process CPU time (less sensitive to a shared machine's load), and ratios
computed round by round. Columns:

* tfmodelsec: the public API at its defaults unless the row says otherwise;
* ART 1.20: the same settings (batch size, steps, step size, iterations, epochs); for the
  evasion rows ART's batch size is swept first and its best one is used;
* floor: a bare ``tf.function`` loop written in ``_speed_measure.py`` doing the same arithmetic.

Rows (``--rows``, comma-separated; default all): fgsm, pgd, cw, inversion, stealing, lira,
apmsa, serving. ``--quick`` runs every row on small settings (smoke test, minutes).

    PYTHONPATH=. python benchmarks/speed.py                 # full table -> results/speed.json / .md
    PYTHONPATH=. python benchmarks/speed.py --quick         # smoke run  -> results/speed_quick.*
    PYTHONPATH=. python benchmarks/speed.py --rows pgd,apmsa --out speed_partial
    PYTHONPATH=. python benchmarks/speed.py --merge speed_partial    # its rows into results/speed.json
    PYTHONPATH=. python benchmarks/speed.py --readme        # README's Speed table from results/speed.json

Full settings: FGSM and PGD-40 on 10,000 MNIST test images, CW-100 on 2,000 (ART's CW on 20: it
takes ~50 s for 5 images under load); inversion 200 iterations each side, time to quality with
MIFace capped at 150 s; stealing 150 / 600 / 5,000 queries, 10 epochs; LiRA-16 on 2,000 records;
APMSA on 1,024 queries; serving 8 x 256 and 200 x 1 calls. ``--quick``: 1,000 / 500 / 200 images,
100 inversion iterations, 2 epochs, LiRA-4 on 500 records with 5 epochs.

Targets (issue 19): every row <= 1.0x ART on the same work; FGSM / PGD / CW <= 0.25x ART at ART's
best batch size; every row <= 1.2x the floor; APMSA-FGSM <= 20x a forward pass per query; MAD
<= 1.2x the undefended serving time at batch 256.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SAVED, command_line, setup_keras_home, write_result  # noqa: E402

setup_keras_home()

import numpy as np  # noqa: E402

import _speed_measure as floor  # noqa: E402
from _speed_measure import art_classifier, clean, interleaved, load_now, ratio, target  # noqa: E402

ROWS = ("fgsm", "pgd", "cw", "inversion", "stealing", "lira", "apmsa", "serving")
SEED = 0
EPS, PGD_STEPS, PGD_STEP = 0.3, 40, 0.01
CW_STEPS, CW_C, CW_LR = 100, 1.0, 0.01
OURS_BATCH = 1024  # evasion's default batch size
INV_QUALITY_BAR = 0.6  # mean Pearson correlation with the real class mean


# --- evasion and inversion rows ---------------------------------------------------------------
def _warm_slice(n, batch):
    """Enough samples to trace every batch shape a run over ``n`` samples meets."""
    return min(n, batch + n % batch) if n > batch else n


def _art_sweep(make, x, y1h, sizes, repeats, log):
    """ART's time per batch size on ``x``; returns (best size, {size: median seconds})."""
    fns = {bs: (lambda bs=bs: make(bs).generate(x, y=y1h)) for bs in sizes}
    warm = {bs: (lambda bs=bs: make(bs).generate(x[:2], y=y1h[:2])) for bs in sizes}
    stats, _ = interleaved(fns, repeats, warmups=warm, log=log)
    medians = {int(bs): round(s["median_s"], 3) for bs, s in stats.items()}
    return min(medians, key=medians.get), medians


def _success(model, adv, y):
    from tfmodelsec.attacks.evasion import attack_success

    return float(np.mean(attack_success(model, adv, y)))


def _evasion(ctx, key):
    from art.attacks.evasion import CarliniL2Method, FastGradientMethod, ProjectedGradientDescent

    from tfmodelsec.attacks.evasion import cw, fgsm, pgd

    args, model = ctx.args, ctx.victim.probability_model
    # images per row (CW: ours and the floor; ART's CW runs on a subset, below)
    n = {"fgsm": (1000, 10000), "pgd": (500, 10000), "cw": (200, 2000)}[key][0 if args.quick else 1]
    x = ctx.mnist.x_test[:n]
    y = ctx.victim.predict_labels(x)  # untargeted, away from the model's own labels
    y1h = np.eye(10, dtype=np.float32)[y]
    clf = ctx.get("art_clf", lambda: art_classifier(model))
    if key == "fgsm":
        label, work = "FGSM", f"eps {EPS}, {n:,} MNIST test images"
        ours = lambda xs, ys: fgsm(model, xs, ys, eps=EPS)  # noqa: E731
        art = lambda bs: FastGradientMethod(clf, eps=EPS, batch_size=bs)  # noqa: E731
        bare = floor.sign_gradient_loop(model, eps=EPS, step=EPS, steps=1)
    elif key == "pgd":
        label, work = f"PGD-{PGD_STEPS}", f"eps {EPS}, step {PGD_STEP}, no random start, {n:,} MNIST test images"
        ours = lambda xs, ys: pgd(model, xs, ys, eps=EPS, step_size=PGD_STEP, steps=PGD_STEPS,  # noqa: E731
                                  random_start=False)
        art = lambda bs, it=PGD_STEPS: ProjectedGradientDescent(  # noqa: E731
            clf, eps=EPS, eps_step=PGD_STEP, max_iter=it, num_random_init=0, batch_size=bs, verbose=False)
        bare = floor.sign_gradient_loop(model, eps=EPS, step=PGD_STEP, steps=PGD_STEPS)
    else:
        label, work = f"CW-{CW_STEPS}", f"L2, c {CW_C}, lr {CW_LR}, 1 binary-search step, {n:,} MNIST test images"
        ours = lambda xs, ys: cw(model, xs, ys, c=CW_C, steps=CW_STEPS, lr=CW_LR)  # noqa: E731
        art = lambda bs: CarliniL2Method(clf, confidence=0.0, learning_rate=CW_LR, binary_search_steps=1,  # noqa: E731
                                         max_iter=CW_STEPS, initial_const=CW_C, batch_size=bs, verbose=False)
        bare = floor.cw_loop(model, c=CW_C, lr=CW_LR, steps=CW_STEPS)
    floor_fn = lambda xs, ys: floor.batched(bare, xs, ys.astype(np.int32), batch_size=OURS_BATCH)  # noqa: E731

    # ART's batch size: swept once on a subset (PGD with 5 iterations: the time per step is what the
    # batch size changes). ART's CW computes ten class gradients per step and runs a line search in
    # NumPy (hours on 10,000 images), so it is compared on a subset.
    sweep_art = art
    if key == "cw":  # one batch of all m images: ART's fastest (swept: 10 images in 104 s, 20 in 74 s under load)
        m = 5 if args.quick else 20
        sizes, sweep_n = (m,), m
    else:
        m = n
        sweep_n = min(n, 2048)
        sizes = tuple(b for b in (128, 512, 2048) if b < sweep_n) + (sweep_n,) if sweep_n < 2048 else (128, 512, 2048)
        if key == "pgd":
            sweep_art = lambda bs: art(bs, 5)  # noqa: E731
    if len(sizes) > 1:
        best, sweep = _art_sweep(sweep_art, x[:sweep_n], y1h[:sweep_n], sizes, 1, f"{key} ART sweep")
    else:
        best, sweep = sizes[0], {}
    xa, ya, y1a = x[:m], y[:m], y1h[:m]
    fns = {"tfmodelsec": lambda: ours(xa, ya), "art": lambda: art(best).generate(xa, y=y1a),
           "floor": lambda: floor_fn(xa, ya)}
    w = _warm_slice(m, OURS_BATCH)
    art_warm = (lambda: art(best, 1).generate(x[:2], y=y1h[:2])) if key == "pgd" else \
        (lambda: art(best).generate(x[:2], y=y1h[:2])) if key == "fgsm" else None
    warm = {"tfmodelsec": lambda: ours(x[:w], y[:w]), "art": art_warm,
            "floor": lambda: floor_fn(x[:w], y[:w])}
    reps = args.repeats if key == "fgsm" else min(args.repeats, 2)
    stats, outs = interleaved(fns, reps, warmups=warm, log=key)
    success = {k: _success(model, outs[k], ya) for k in fns}
    row = {"key": key, "label": label, "work": work, "tfmodelsec": stats["tfmodelsec"], "art": stats["art"],
           "floor": stats["floor"], "vs_art": ratio(stats["tfmodelsec"], stats["art"]),
           "vs_floor": ratio(stats["tfmodelsec"], stats["floor"]),
           "settings": {"ours_batch": OURS_BATCH, "floor_batch": OURS_BATCH, "art_batch_best": best,
                        "art_batch_sweep_median_s": sweep, "art_sweep_images": sweep_n, "images": n},
           "success": success,
           "quality": "success " + " / ".join(f"{100 * success[k]:.2f}%" for k in ("tfmodelsec", "art", "floor"))}
    row["targets"] = [target("ours / ART (same work, ART's best batch) <= 1.0", row["vs_art"]["median"], 1.0),
                      target("ours / ART (ART's best batch) <= 0.25", row["vs_art"]["median"], 0.25),
                      target("ours / floor <= 1.2", row["vs_floor"]["median"], 1.2)]
    row["notes"] = [f"ART batch size swept over {list(sizes)} on {sweep_n} images (median s {sweep}); best {best}."
                    if sweep else f"ART in one batch of {best} images, no warm-up call (it runs eagerly)."]
    if key == "cw":
        # ours and the floor on all n images: the time and success a user gets
        fns_full = {"tfmodelsec": lambda: ours(x, y), "floor": lambda: floor_fn(x, y)}
        w = _warm_slice(n, OURS_BATCH)
        full, outs_full = interleaved(fns_full, reps, warmups={k: warm[k] for k in fns_full}, log="cw full")
        row["work"] = (f"L2, c {CW_C}, lr {CW_LR}, 1 binary-search step; ART and the ratios on the first {m} MNIST "
                       f"test images")
        row["full"] = {"images": n, "tfmodelsec": full["tfmodelsec"], "floor": full["floor"],
                       "vs_floor": ratio(full["tfmodelsec"], full["floor"]),
                       "success": {k: _success(model, outs_full[k], y) for k in fns_full}}
        for side in ("tfmodelsec", "floor"):
            row["full"][side] = {k: v for k, v in full[side].items() if not k.startswith("_")}
        row["notes"].append(
            f"On all {n:,} images: tfmodelsec {full['tfmodelsec']['median_s']:.1f} s, floor "
            f"{full['floor']['median_s']:.1f} s (ours/floor {row['full']['vs_floor']['median']:.2f}×), success "
            f"{100 * row['full']['success']['tfmodelsec']:.2f}% / {100 * row['full']['success']['floor']:.2f}%. "
            "ART's CW is a different optimiser (gradient descent with a line search, not Adam), so its success "
            "rate differs at the same settings.")
        row["targets"].append(target(f"ours / floor on {n:,} images <= 1.2", row["full"]["vs_floor"]["median"], 1.2))
    return row


def row_fgsm(ctx):
    return [_evasion(ctx, "fgsm")]


def row_pgd(ctx):
    return [_evasion(ctx, "pgd")]


def row_cw(ctx):
    return [_evasion(ctx, "cw")]


# --- inversion ----------------------------------------------------------------------------------

def _miface(clf, iterations, batch_size, x=None, classes=10):
    from art.attacks.inference.model_inversion import MIFace

    attack = MIFace(clf, max_iter=int(iterations), batch_size=int(batch_size), verbose=False)
    return attack.infer(x, np.arange(classes)).astype(np.float32)


def _pearson(images, means):
    from tfmodelsec.metrics import inversion_metrics

    return inversion_metrics(images, np.arange(len(images)), class_means=means)["mean_pearson"]


def row_inversion(ctx):
    from tfmodelsec.attacks.inversion import InversionConfig, invert
    from tfmodelsec.metrics import class_means

    args, victim = ctx.args, ctx.victim
    means = class_means(ctx.mnist.x_train, ctx.mnist.y_train, 10)
    steps = 100 if args.quick else 200  # MIFace: ~0.2 s CPU per iteration for 10 classes
    clf = ctx.get("art_clf_inv", lambda: art_classifier(victim.model))
    config = InversionConfig()
    bare, floor_note = floor.inversion_loop(victim, config, steps)
    ours = lambda: invert(victim, steps=steps, tol=0.0, seed=0, verbose=0).images  # noqa: E731
    # MIFace's batch size: 1 (its default: one class at a time) or all 10 classes at once
    sweep_iters = 20 if args.quick else 50
    best_bs, sweep = _art_batch(lambda bs: _miface(clf, sweep_iters, bs), (1, 10), "inversion ART sweep")
    fns = {"tfmodelsec": ours, "art": lambda: _miface(clf, steps, best_bs), "floor": bare}
    warm = {"tfmodelsec": lambda: invert(victim, steps=4, tol=0.0, seed=0, verbose=0),
            "art": lambda: _miface(clf, 2, best_bs)}
    stats, outs = interleaved(fns, args.repeats, warmups=warm, log="inversion")
    quality = {k: _pearson(outs[k], means) for k in fns}
    row = {"key": "inversion", "label": f"Inversion, {steps} iterations",
           "work": f"10 MNIST classes, {steps} iterations each side (ours: tol 0, no early stop; MIFace: "
                   f"max_iter {steps}, batch {best_bs})",
           "tfmodelsec": stats["tfmodelsec"], "art": stats["art"], "floor": stats["floor"],
           "vs_art": ratio(stats["tfmodelsec"], stats["art"]), "vs_floor": ratio(stats["tfmodelsec"], stats["floor"]),
           "pearson": quality, "settings": {"art_batch_sweep_median_s": sweep, "art_batch_best": best_bs},
           "quality": "mean Pearson " + " / ".join(f"{quality[k]:.2f}" for k in fns),
           "notes": [floor_note]}
    row["targets"] = [target("ours / ART <= 1.0", row["vs_art"]["median"], 1.0),
                      target("ours / floor <= 1.2", row["vs_floor"]["median"], 1.2)]
    return [row, _time_to_quality(ctx, victim, clf, means, best_bs)]


def _art_batch(run, sizes, log):
    stats, _ = interleaved({bs: (lambda bs=bs: run(bs)) for bs in sizes}, 1, log=log)
    medians = {int(bs): round(s["median_s"], 3) for bs, s in stats.items()}
    return min(medians, key=medians.get), medians


def _time_to_quality(ctx, victim, clf, means, miface_batch):
    """Ours: the fewest steps (of a ladder) reaching the bar, re-timed; MIFace: chunks to its best."""
    import time

    from tfmodelsec.attacks.inversion import invert

    args = ctx.args
    ladder = (50, 100) if args.quick else (100, 200, 300, 400, 600, 800, 1000)
    reached, tried = None, []
    for k in ladder:
        res = invert(victim, steps=k, seed=0, verbose=0)
        p = _pearson(res.images, means)
        tried.append({"steps": k, "seconds": round(res.seconds, 3), "mean_pearson": round(p, 4)})
        print(f"[inversion quality] {k} steps: Pearson {p:.3f} ({res.seconds:.2f}s)", flush=True)
        if p >= INV_QUALITY_BAR:
            reached = k
            break
    ours = None
    if reached is not None:
        ours, _ = interleaved({"tfmodelsec": lambda: invert(victim, steps=reached, seed=0, verbose=0)},
                              args.repeats, log="inversion to bar")
        ours = ours["tfmodelsec"]
    # MIFace from zeros in chunks, continuing from its own images; the time is the sum of the chunks
    # (a chunked run equals one long run while every class stays active: checked by counting rows)
    chunk = 50 if args.quick else 500
    max_iter = 200 if args.quick else 10000  # MIFace's default max_iter
    cap = 30 if args.quick else 150
    rows = [0]
    original = clf.class_gradient

    def counted(x, *a, **kw):
        rows[0] += len(x)
        return original(x, *a, **kw)

    clf.class_gradient = counted
    images, elapsed, curve = None, 0.0, []
    try:
        while sum(c["iterations"] for c in curve) < max_iter and elapsed < cap:
            t = time.perf_counter()
            images = _miface(clf, chunk, miface_batch, x=images)
            elapsed += time.perf_counter() - t
            p = _pearson(images, means)
            done = sum(c["iterations"] for c in curve) + chunk
            curve.append({"iterations": chunk, "cumulative_iterations": done, "cumulative_s": round(elapsed, 2),
                          "mean_pearson": round(p, 4)})
            print(f"[inversion MIFace] {done} iterations: Pearson {p:.3f} ({elapsed:.1f}s)", flush=True)
    finally:
        clf.class_gradient = original
    total_iters = curve[-1]["cumulative_iterations"]
    best = max(curve, key=lambda c: c["mean_pearson"])
    capped = total_iters < max_iter
    art = {"median_s": best["cumulative_s"], "min_s": best["cumulative_s"], "max_s": best["cumulative_s"],
           "runs_s": [best["cumulative_s"]]}
    row = {"key": "inversion", "label": "Inversion to quality",
           "work": f"ours: fewest steps reaching mean Pearson >= {INV_QUALITY_BAR} (ladder {list(ladder)}); MIFace: "
                   f"time to its own best Pearson over {total_iters} iterations (batch {miface_batch})",
           "tfmodelsec": ours, "art": art, "floor": None,
           "vs_art": None if ours is None else {"median": ours["median_s"] / art["median_s"],
                                                "min": ours["min_s"] / art["median_s"],
                                                "max": ours["max_s"] / art["median_s"]},
           "vs_floor": None, "ladder": tried, "miface_curve": curve,
           "miface_rows_per_iteration": rows[0] / max(total_iters, 1),
           "quality": (f"ours {'reached' if reached else 'did not reach'} {INV_QUALITY_BAR} "
                       f"{'at ' + str(reached) + ' steps' if reached else ''}; MIFace best Pearson "
                       f"{best['mean_pearson']:.2f} at {best['cumulative_iterations']} iterations"),
           "notes": [f"MIFace run end to end in {len(curve)} chunks of {chunk} iterations (each continuing from the "
                     f"last images); gradient rows per iteration {rows[0] / max(total_iters, 1):.1f} (10 = every class "
                     "active throughout, so the chunks equal one continuous run)."
                     + (f" Stopped by the {cap} s cap before its default {max_iter} iterations: its best is over "
                        f"the iterations run." if capped else "")]}
    row["targets"] = [target("ours / ART (time to each one's quality) <= 1.0",
                             None if row["vs_art"] is None else row["vs_art"]["median"], 1.0)]
    return row


# --- report -----------------------------------------------------------------------------------

def _secs(s: dict | None) -> str:
    if not s:
        return "-"
    return f"{s['median_s']:.3g} ({s['min_s']:.3g}–{s['max_s']:.3g})"


def _ratio(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['median']:.2f}× ({r['min']:.2f}–{r['max']:.2f})"


def _label(row: dict) -> str:
    """The row's label, marked where it was measured with --quick settings (merged into a full table)."""
    return row["label"] + (" (quick settings)" if row.get("quick") else "")


def merge(into: str, source: str) -> None:
    """Add the rows of results/SOURCE.json to results/INTO.json, replacing rows with the same key.

    Rows keep their own command, settings and ``quick`` flag; the tables mark quick rows.
    """
    target_path, source_path = RESULTS / f"{into}.json", RESULTS / f"{source}.json"
    payload, extra = json.loads(target_path.read_text()), json.loads(source_path.read_text())
    keys = {r["key"] for r in extra["rows"]}
    payload["rows"] = sorted([r for r in payload["rows"] if r["key"] not in keys] + extra["rows"],
                             key=lambda r: ROWS.index(r["key"]))
    payload.setdefault("merged", []).append({"from": source, "keys": sorted(keys), "command": extra["command"],
                                             "load_start": extra["load_start"], "load_end": extra["load_end"]})
    from tfmodelsec.utils import write_json

    write_json(target_path, payload)
    (RESULTS / f"{into}.md").write_text(markdown(payload))
    print(f"results/{into}.json: rows {sorted(keys)} from results/{source}.json")


def markdown(payload: dict) -> str:
    lines = ["# Speed: tfmodelsec vs ART 1.20 vs a bare compiled loop", "",
             f"Command: `{payload['command']}` (seed {payload['seed']}). Machine: {payload['machine']['cpu_count']} "
             "CPU cores, "
             f"TensorFlow {payload['machine']['tensorflow']}, no GPU; load average {payload['load_start']} at the "
             f"start, {payload['load_end']} at the end (the machine is shared). Seconds: median (min–max) of "
             f"interleaved repeats after a warm-up; ratios round by round, median (min–max).", "",
             "| Row | Work | tfmodelsec s | ART 1.20 s | floor s | ours / ART | ours / floor | quality |",
             "|---|---|---|---|---|---|---|---|"]
    for row in payload["rows"]:
        lines.append(f"| {_label(row)} | {row['work']} | {_secs(row.get('tfmodelsec'))} | {_secs(row.get('art'))} | "
                     f"{_secs(row.get('floor'))} | {_ratio(row.get('vs_art'))} | {_ratio(row.get('vs_floor'))} | "
                     f"{row.get('quality', '')} |")
    lines += ["", "## Targets", "", "| Row | Target | Value | Met |", "|---|---|---|---|"]
    for row in payload["rows"]:
        for t in row.get("targets", []):
            met = "n/a" if t["met"] is None else ("met" if t["met"] else "**missed**")
            lines.append(f"| {row['label']} | {t['target']} | {t['value']} | {met} |")
    notes = [(row["label"], n) for row in payload["rows"] for n in row.get("notes", [])]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {label}: {n}" for label, n in notes]
    for m in payload.get("merged", []):
        lines += ["", f"Rows {m['keys']} merged from `{m['command']}` (load average {m['load_start']} → "
                      f"{m['load_end']})."]
    lines += ["", f"Total {payload['seconds']:.0f} s.", ""]
    return "\n".join(lines)


README_START = "<!-- speed table: generated by `python benchmarks/speed.py --readme` from speed.json -->"
README_END = "<!-- end of speed table -->"


def _short(r: dict | None) -> str:
    return "-" if not r else f"{r['median']:.2f}×"


def _cpu(r: dict | None) -> str:
    return "-" if not r or r.get("cpu") is None else f"{r['cpu']:.2f}×"


def readme_table(payload: dict, name: str = "speed") -> str:
    """The README's Speed table: one line per row, seconds and ratios (medians), quality."""
    m = payload["machine"]
    merged = "".join(f"; rows {', '.join(x['keys'])} by `{x['command']}` (load {x['load_start']} → {x['load_end']})"
                     for x in payload.get("merged", []))
    lines = [README_START,
             f"Measured by `{payload['command']}` (seed {payload['seed']}; load average {payload['load_start']} → "
             f"{payload['load_end']}){merged}, on {m['cpu_count']} shared CPU cores, no GPU; medians of interleaved "
             f"repeats (spreads, settings, targets, notes: [{name}.md](benchmarks/results/{name}.md)). Floor: a bare "
             "compiled `tf.function` loop doing the same arithmetic. On a loaded machine the process-CPU-time ratio "
             "is the steadier one.", "",
             "| Row | tfmodelsec s | ART 1.20 s | floor s | ours / ART | ours / floor | ours / floor, CPU time | "
             "quality (ours / ART / floor) |",
             "|---|---|---|---|---|---|---|---|"]
    all_quick = all(row.get("quick") for row in payload["rows"])
    if all_quick:
        lines[1] += " Every row with `--quick` settings (small sizes: a smoke run, not the full table)."
    for row in payload["rows"]:
        secs = [f"{row[k]['median_s']:.3g}" if row.get(k) else "-" for k in ("tfmodelsec", "art", "floor")]
        quality = row.get("quality", "").split(";")[0]  # the first clause; the rest is in the .md
        lines.append(f"| {row['label'] if all_quick else _label(row)} | {' | '.join(secs)} | "
                     f"{_short(row.get('vs_art'))} | {_short(row.get('vs_floor'))} | {_cpu(row.get('vs_floor'))} | "
                     f"{quality} |")
    missed = [f"{row['label']}: {t['target']} ({t['value']})" for row in payload["rows"]
              for t in row.get("targets", []) if t["met"] is False]
    if missed:
        lines += ["", "Targets missed: " + "; ".join(missed) + "."]
    return "\n".join(lines + [README_END])


def update_readme(name: str) -> None:
    """Replace the README's Speed table with one generated from ``benchmarks/results/NAME.json``."""
    readme = RESULTS.parents[1] / "README.md"
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"README.md has no speed-table markers ({README_START!r} ... {README_END!r})")
    table = readme_table(json.loads((RESULTS / f"{name}.json").read_text()), name)
    head, rest = text.split(README_START, 1)
    readme.write_text(head + table + rest.split(README_END, 1)[1])
    print(f"README.md: speed table from benchmarks/results/{name}.json")


def _write(args, payload: dict, old_rows: list, start: float, *, done: bool) -> str:
    """Write results/<out>.json / .md; a partial run (--rows) keeps the other rows of the previous file."""
    from tfmodelsec.utils import machine_info

    out = {**payload, "load_end": load_now(), "seconds": round(time.perf_counter() - start, 1), "complete": done}
    if set(args.rows) != set(ROWS):
        keep = [r for r in old_rows if r.get("key") not in set(args.rows)]
        out["rows"] = sorted(keep + payload["rows"], key=lambda r: ROWS.index(r["key"]))
        out["merged_from_earlier_run"] = sorted({r["key"] for r in keep})
    md = markdown({**out, "command": command_line(), "machine": machine_info()})
    write_result(args.out, out, md)
    return md


# --- driver -----------------------------------------------------------------------------------

class Context:
    """What every row shares: arguments, the victim, data (loaded once, lazily)."""

    def __init__(self, args):
        self.args = args
        self._cache = {}

    def get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def victim(self):
        from tfmodelsec import load_victim

        return self.get("victim", lambda: load_victim(SAVED / "lenet5_mnist.h5"))

    @property
    def mnist(self):
        from tfmodelsec import load_dataset

        return self.get("mnist", lambda: load_dataset("mnist"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    p.add_argument("--quick", action="store_true", help="small settings everywhere (smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds per row (default 3; quick 2)")
    p.add_argument("--out", default=None, help="result name (default speed, or speed_quick with --quick)")
    p.add_argument("--merge", default=None, metavar="NAME",
                   help="measure nothing: add the rows of results/NAME.json to results/<out>.json")
    p.add_argument("--readme", action="store_true",
                   help="measure nothing: rewrite README.md's Speed table from results/<out>.json")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad:
        p.error(f"--rows: unknown row(s) {bad}; expected some of {list(ROWS)}")
    args.rows = rows
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1. Received: {args.repeats}")
    args.out = args.out or ("speed_quick" if args.quick else "speed")
    return args


def main(argv=None) -> int:
    import _speed_rows

    row_fns = {k: globals().get(f"row_{k}") or getattr(_speed_rows, f"row_{k}") for k in ROWS}

    args = parse_args(argv)
    if args.merge:
        merge(args.out, args.merge)
    if args.readme:
        update_readme(args.out)
    if args.merge or args.readme:
        return 0
    ctx = Context(args)
    payload = {"seed": SEED, "quick": args.quick, "repeats": args.repeats, "rows_run": args.rows,
               "load_start": load_now(), "rows": []}
    start = time.perf_counter()
    previous = RESULTS / f"{args.out}.json"
    old_rows = json.loads(previous.read_text()).get("rows", []) if previous.is_file() else []
    for key in args.rows:
        t = time.perf_counter()
        print(f"== {key} (load {load_now()})", flush=True)
        for row in row_fns[key](ctx):
            row.update({"seconds_to_measure": round(time.perf_counter() - t, 1), "load_after": load_now(),
                        "command": command_line(), "quick": args.quick})
            for side in ("tfmodelsec", "art", "floor"):
                row[side] = clean(row.get(side))
            payload["rows"].append(row)
            print(json.dumps({k: row.get(k) for k in ("label", "vs_art", "vs_floor", "quality", "targets")},
                             default=str), flush=True)
        # written after every row group, so that a failure later keeps what was measured
        md = _write(args, payload, old_rows, start, done=key == args.rows[-1])
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
