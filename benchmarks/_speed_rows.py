"""Rows of the speed table (benchmarks/speed.py) that train or serve: stealing, LiRA, APMSA, serving.

The evasion and inversion rows are in speed.py itself; timing and the floor in ``_speed_measure.py``.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

import _speed_measure as floor
from _speed_measure import art_classifier, clean, interleaved, ratio, target

STEAL_BATCH, STEAL_LR, STEAL_TAU = 64, 3e-3, 4.0
MIN_EPOCH_SAMPLES = 2048  # tfmodelsec's distillation repeats small query sets to this many per epoch
# the membership benchmark's victim / shadow recipe (LeNet-5 overfit on Fashion-MNIST)
RECIPE = dict(epochs=40, batch_size=128, learning_rate=5e-3, schedule="cosine")


# --- stealing -----------------------------------------------------------------------------------

def _student(seed):
    from tfmodelsec.models.zoo import build_model
    from tfmodelsec.utils import set_seed

    set_seed(seed)
    return build_model("lenet5", (28, 28, 1), 10)


def _floor_distill(victim, x_q, epochs, seed):
    """The bare loop: answers from a compiled forward pass, rows repeated as ours does, KL epochs."""
    rng = np.random.default_rng(seed)
    p = floor.batched(floor.forward(victim.probability_model), x_q, batch_size=1024)
    size = len(x_q)
    idx = np.tile(np.arange(size), max(1, MIN_EPOCH_SAMPLES // size))
    if len(idx) < MIN_EPOCH_SAMPLES:
        idx = np.concatenate([idx, rng.choice(size, MIN_EPOCH_SAMPLES - len(idx), replace=False)])
    xs, ps = x_q[idx], p[idx]
    student = _student(seed)
    epoch = floor.kl_distillation(student, temperature=STEAL_TAU, learning_rate=STEAL_LR, batch_size=STEAL_BATCH)
    for _ in range(epochs):
        order = rng.permutation(len(xs))
        epoch(tf_constant(xs[order]), tf_constant(ps[order]))
    return student


def tf_constant(a):
    import tensorflow as tf

    return tf.constant(a)


def _copycat(victim_clf, x_q, epochs, seed):
    """ART CopycatCNN, the same student, batch size and number of training samples."""
    import keras
    from art.attacks.extraction import CopycatCNN
    from art.estimators.classification import TensorFlowV2Classifier

    student = _student(seed)
    thief = TensorFlowV2Classifier(student, nb_classes=10, input_shape=(28, 28, 1), clip_values=(0.0, 1.0),
                                   loss_object=keras.losses.CategoricalCrossentropy(),
                                   optimizer=keras.optimizers.Adam(STEAL_LR))
    b = len(x_q)
    # ours trains max(2048, b) samples per epoch; ART's epoch is the b queries
    nb_epochs = max(1, round(epochs * max(MIN_EPOCH_SAMPLES, b) / b))
    attack = CopycatCNN(victim_clf, batch_size_fit=STEAL_BATCH, batch_size_query=min(b, 1024), nb_epochs=nb_epochs,
                        nb_stolen=b, use_probability=True)
    return attack.extract(x_q, thieved_classifier=thief).model


def row_stealing(ctx):
    from tfmodelsec.attacks.stealing import evaluate_student, steal
    from tfmodelsec.oracle import BlackBox

    args, victim, data = ctx.args, ctx.victim, ctx.mnist
    budgets = (150, 600) if args.quick else (150, 600, 5000)
    epochs = 2 if args.quick else 10
    test = (data.x_test[:2000], data.y_test[:2000]) if args.quick else (data.x_test, data.y_test)
    victim_clf = ctx.get("art_clf", lambda: art_classifier(victim.probability_model))
    rng = np.random.default_rng(0)

    def ours(x_q, e):
        return steal(BlackBox(victim, budget=len(x_q)), x_q, loss="kl", temperature=STEAL_TAU, epochs=e,
                     batch_size=STEAL_BATCH, learning_rate=STEAL_LR, augment=False, transfer_eps=0.0, seed=0,
                     verbose=0).student

    rows = []
    warm_q = data.x_train[:150]
    warm = {"tfmodelsec": lambda: ours(warm_q, 1), "art": lambda: _copycat(victim_clf, warm_q, 1, 0),
            "floor": lambda: _floor_distill(victim, warm_q, 1, 0)}
    for b in budgets:
        x_q = data.x_train[np.sort(rng.choice(len(data.x_train), b, replace=False))]
        fns = {"tfmodelsec": lambda x_q=x_q: ours(x_q, epochs),
               "art": lambda x_q=x_q: _copycat(victim_clf, x_q, epochs, 0),
               "floor": lambda x_q=x_q: _floor_distill(victim, x_q, epochs, 0)}
        stats, outs = interleaved(fns, args.repeats, warmups=warm if b == budgets[0] else {k: None for k in fns},
                                  log=f"stealing {b}")
        acc = {k: evaluate_student(outs[k], victim, *test, transfer_samples=0)["accuracy"] for k in fns}
        steps = epochs * int(np.ceil(max(MIN_EPOCH_SAMPLES, b) / STEAL_BATCH))
        row = {"key": "stealing", "label": f"Distillation, {b} queries",
               "work": f"plain KL (tau {STEAL_TAU:g}) vs CopycatCNN: {b} random MNIST queries, LeNet-5 student, "
                       f"batch {STEAL_BATCH}, {epochs} epochs of {max(MIN_EPOCH_SAMPLES, b)} samples (~{steps} steps)",
               **{k: stats[k] for k in fns}, "vs_art": ratio(stats["tfmodelsec"], stats["art"]),
               "vs_floor": ratio(stats["tfmodelsec"], stats["floor"]), "accuracy": acc,
               "quality": "accuracy " + " / ".join(f"{100 * acc[k]:.2f}%" for k in fns),
               "notes": ["CopycatCNN trains on the victim's probabilities with cross-entropy (no temperature), "
                         "epochs scaled to the same number of training samples; each run builds a fresh student, "
                         "so every column's time includes its tracing."] if b == budgets[0] else []}
        row["targets"] = [target("ours / ART <= 1.0", row["vs_art"]["median"], 1.0),
                          target("ours / floor <= 1.2", row["vs_floor"]["median"], 1.2)]
        rows.append(row)
    rows.append(_full_attack(ctx, budgets[:1] if args.quick else budgets, test))
    return rows


def _full_attack(ctx, budgets, test):
    from tfmodelsec.attacks.stealing import SemiSupervised
    from tfmodelsec.attacks.stealing.sweep import sweep

    quick = ctx.args.quick
    runs = []
    for b in budgets:
        t = time.perf_counter()
        row = sweep(ctx.victim, ctx.mnist.x_train, [b], methods=("drmi",), eval_data=test, active_share=0.5,
                    semi_supervised=SemiSupervised(pool_size=2000 if quick else 4000),
                    selection={"candidates": 1000 if quick else 2000, "restarts": 8}, verbose=0)[0]
        runs.append({"budget": b, "seconds": round(time.perf_counter() - t, 2), "accuracy": row["accuracy"],
                     "selection_seconds": row["selection_seconds"], "steal_seconds": round(row["seconds"], 2)})
        print(f"[stealing full] {b}: {runs[-1]}", flush=True)
    secs = [r["seconds"] for r in runs]
    return {"key": "stealing", "label": "Full stealing attack",
            "work": "½ DRMI + ½ uncertainty-sampled queries, then self-training (DRMI over "
                    f"{1000 if quick else 2000} candidates, self-training pool {2000 if quick else 4000}), budgets "
                    f"{list(budgets)}; one run each, end to end",
            "tfmodelsec": {"median_s": float(np.median(secs)), "min_s": min(secs), "max_s": max(secs), "runs_s": secs},
            "art": None, "floor": None, "vs_art": None, "vs_floor": None, "runs": runs,
            "quality": "accuracy " + " / ".join(f"{100 * r['accuracy']:.2f}% @{r['budget']}" for r in runs),
            "notes": ["no ART counterpart; seconds per budget: "
                      + ", ".join(f"{r['budget']}: {r['seconds']} s" for r in runs)],
            "targets": []}


# --- membership ---------------------------------------------------------------------------------

def _floor_shadows(victim, x, y, num_shadows, ids, seed, recipe):
    """Train the reference models ``ids`` of a LiRA run with the bare loop; their target probabilities."""
    import keras

    from tfmodelsec.utils import set_seed

    keep = np.argsort(np.random.default_rng(seed).uniform(size=(num_shadows, len(x))), axis=0) < num_shadows // 2
    fwd, probs = None, []
    for i in ids:
        rows = np.flatnonzero(keep[i])
        set_seed(seed + 1 + int(i))
        net = keras.models.clone_model(victim.model)
        steps = recipe["epochs"] * int(np.ceil(len(rows) / recipe["batch_size"]))
        lr = keras.optimizers.schedules.CosineDecay(recipe["learning_rate"], decay_steps=steps)
        epoch = floor.classifier_training(net, learning_rate=lr, batch_size=recipe["batch_size"])
        rng = np.random.default_rng(seed + 1 + int(i))
        for _ in range(recipe["epochs"]):
            order = rows[rng.permutation(len(rows))]
            epoch(tf_constant(x[order]), tf_constant(y[order].astype(np.int64)))
        fwd = floor.forward(net)
        probs.append(floor.batched(fwd, x, batch_size=1024))
    return np.stack(probs)


def row_lira(ctx):
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier

    from tfmodelsec.attacks.membership import ShadowTraining, membership_inference, membership_split
    from tfmodelsec.attacks.membership.lira import train_lira_shadows
    from tfmodelsec.data import load_dataset
    from tfmodelsec.metrics import tpr_at_fpr
    from tfmodelsec.models import as_victim, train_classifier

    args = ctx.args
    n, shadows = (500, 4) if args.quick else (2000, 16)
    recipe = {**RECIPE, "epochs": 5} if args.quick else RECIPE
    data = load_dataset("fashion_mnist")
    split = membership_split(data, f"first:{n}", population="train-rest")
    victim = as_victim(train_classifier("lenet5", split.members, **recipe, seed=0, verbose=0).model)
    training = ShadowTraining(**recipe)
    (xm, ym), (xn, yn) = split.members, split.non_members
    half = np.zeros(n, bool)
    half[np.random.default_rng(0).permutation(n)[: n // 2]] = True
    train_half, eval_half = np.flatnonzero(half), np.flatnonzero(~half)
    truth = np.concatenate([np.ones(len(eval_half)), np.zeros(len(eval_half))]).astype(int)

    t = time.perf_counter()
    lira = membership_inference(victim, split.members, split.non_members, attack="lira", num_shadows=shadows,
                                training=training, fixed_variance=True, seed=0, verbose=0)
    ours_s = time.perf_counter() - t
    ours_tpr = tpr_at_fpr(truth, lira.scores[np.concatenate([eval_half, n + eval_half])], 0.001)
    print(f"[lira] ours {shadows} shadows: {ours_s:.1f}s, TPR@0.1% {ours_tpr:.4f}", flush=True)

    est = BlackBoxClassifier(lambda x: victim.probabilities(x), victim.input_shape, 10, clip_values=(0.0, 1.0))
    x_eval = np.concatenate([xm[eval_half], xn[eval_half]])
    y_eval = np.concatenate([ym[eval_half], yn[eval_half]])
    t = time.perf_counter()
    attack = MembershipInferenceBlackBox(est, attack_model_type="rf")
    attack.fit(xm[train_half], ym[train_half], xn[train_half], yn[train_half])
    art_scores = np.asarray(attack.infer(x_eval, y_eval, probabilities=True), np.float64).reshape(len(x_eval), -1)
    art_s = time.perf_counter() - t
    art_tpr = tpr_at_fpr(truth, art_scores[:, -1], 0.001)
    print(f"[lira] ART black-box rf: {art_s:.1f}s, TPR@0.1% {art_tpr:.4f}", flush=True)

    # reference-model training, tfmodelsec vs the bare loop, on the same shadows (part 1 of k)
    x_t = np.concatenate([xm, xn])
    y_t = np.concatenate([ym, yn])
    parts = shadows // 2  # two shadows per part
    ids = [0, 1]
    fns = {"tfmodelsec": lambda: train_lira_shadows(victim, x_t, y_t, num_shadows=shadows, part=(1, parts),
                                                    training=training, seed=0, verbose=0).confidences,
           "floor": lambda: _floor_shadows(victim, x_t, y_t, shadows, ids, 0, recipe)}
    stats, _ = interleaved(fns, min(args.repeats, 2), warmups={k: None for k in fns}, log="lira shadows")
    one = {"median_s": ours_s, "min_s": ours_s, "max_s": ours_s, "runs_s": [round(ours_s, 2)]}
    art = {"median_s": art_s, "min_s": art_s, "max_s": art_s, "runs_s": [round(art_s, 2)]}
    tpr_ratio = ours_tpr / art_tpr if art_tpr > 0 else None  # None: ART found no member at 0.1% FPR
    rows = [{"key": "lira", "label": f"LiRA-{shadows} vs ART black-box",
             "work": f"Fashion-MNIST LeNet-5 overfit on {n:,} records; ours: {shadows} reference models + scoring "
                     f"(one run); ART: MembershipInferenceBlackBox (rf) fit on {len(train_half)}+{len(train_half)} "
                     f"labelled records + inference; TPR on the other {len(eval_half)}+{len(eval_half)}",
             "tfmodelsec": one, "art": art, "floor": None,
             "vs_art": {"median": ours_s / art_s, "min": ours_s / art_s, "max": ours_s / art_s}, "vs_floor": None,
             "tpr_at_fpr_0.001": {"tfmodelsec": ours_tpr, "art": art_tpr, "ratio": tpr_ratio},
             "quality": (f"TPR@0.1%FPR {100 * ours_tpr:.2f}% vs {100 * art_tpr:.2f}%"
                         + (f" ({tpr_ratio:.1f}×)" if tpr_ratio else "")),
             "notes": ["not the same work: LiRA trains reference models, ART's attack fits a classifier on labelled "
                       "members; the row says what each costs for its TPR. No target applies."],
             "targets": []},
            {"key": "lira", "label": "LiRA reference models (2)",
             "work": f"2 of the {shadows} reference models ({recipe['epochs']} epochs, batch {recipe['batch_size']}, "
                     "cosine Adam) + their predictions on the targets; fresh models each run (tracing included)",
             "tfmodelsec": stats["tfmodelsec"], "art": None, "floor": stats["floor"], "vs_art": None,
             "vs_floor": ratio(stats["tfmodelsec"], stats["floor"]), "quality": "",
             "targets": [target("ours / floor <= 1.2", ratio(stats["tfmodelsec"], stats["floor"])["median"], 1.2)]}]
    return rows


# --- APMSA and serving --------------------------------------------------------------------------

def _sweep_fn(fn, x, batch):
    def run():
        for i in range(0, len(x), batch):
            fn(x[i:i + batch]).numpy()
    return run


def closeness(layer, x, batch=250) -> dict:
    """How close APMSA's answers get: the share of queries whose next step would flip the label
    (the walk with one more step of the same size finds a flip), and the answers' top-2 margin."""
    from tfmodelsec.defenses import APMSA

    nxt = APMSA(layer.victim, method=layer.method, eps=layer.eps, steps=layer.steps + 1,
                step_size=layer.effective_step_size, norm=layer.norm, c=layer.c, clip_min=layer.clip_min,
                clip_max=layer.clip_max, refine=0)
    answers, flipped, flips_next = [], [], []
    for i in range(0, len(x), batch):
        a, _, f = layer.walk(x[i:i + batch])
        answers.append(a.numpy())
        flipped.append(f.numpy())
        flips_next.append(nxt.walk(x[i:i + batch])[2].numpy())
    answers = np.concatenate(answers)
    top2 = np.sort(answers, 1)[:, -2:]
    return {"next_step_flips": float(np.mean(np.concatenate(flips_next))),
            "flipped_within_walk": float(np.mean(np.concatenate(flipped))),
            "answer_top2_margin": float(np.mean(top2[:, 1] - top2[:, 0]))}


def row_apmsa(ctx):
    from tfmodelsec.defenses import APMSA, make_defense
    from tfmodelsec.oracle import defended_forward

    args, victim = ctx.args, ctx.victim
    model = victim.probability_model
    x256 = ctx.mnist.x_test[: 512 if args.quick else 1024]
    x1 = ctx.mnist.x_test[: 16 if args.quick else 64]
    x_close = ctx.mnist.x_test[: 250 if args.quick else 1000]
    plain = defended_forward(victim, None)
    p = model.predict(x_close, batch_size=250, verbose=0)
    undefended_margin = float(np.mean(np.diff(np.sort(p, 1)[:, -2:], axis=1)))
    # how close the answers get without the bisection, and with the layer's former defaults
    former = {"fgsm": {"eps": 0.1, "steps": 10, "refine": 0}}
    rows = []
    for method in ("fgsm", "pgd", "cw"):
        layer = make_defense(f"apmsa_{method}", victim)
        ours = defended_forward(victim, layer)
        bare = floor.apmsa_walk(model, method=method, eps=layer.eps, step=layer.effective_step_size,
                                steps=layer.steps, refine=layer.refine, c=layer.c)
        close = closeness(layer, x_close)
        no_refine = closeness(make_defense(f"apmsa_{method}", victim, refine=0), x_close)
        close_former = closeness(APMSA(model, method=method, **former[method]), x_close) if method in former else None
        for batch, x in ((256, x256), (1, x1)):
            fns = {"tfmodelsec": _sweep_fn(ours, x, batch), "forward": _sweep_fn(plain, x, batch),
                   "floor": _sweep_fn(bare, x, batch)}
            stats, _ = interleaved(fns, max(args.repeats, 5), log=f"apmsa {method} batch {batch}")
            cost = ratio(stats["tfmodelsec"], stats["forward"])
            quality = (f"{cost['median']:.1f}× a forward pass; label flips within the walk for "
                       f"{100 * close['flipped_within_walk']:.1f}% of queries; answer top-2 margin "
                       f"{close['answer_top2_margin']:.2f} (undefended {undefended_margin:.2f}, refine 0 "
                       f"{no_refine['answer_top2_margin']:.2f})")
            if close_former:
                quality += (f"; former layer defaults (eps 0.1, 10 steps): flips "
                            f"{100 * close_former['flipped_within_walk']:.1f}%, margin "
                            f"{close_former['answer_top2_margin']:.2f}")
            row = {"key": "apmsa", "label": f"APMSA-{method.upper()}, batch {batch}",
                   "work": f"{len(x)} MNIST queries in batches of {batch}; eps {layer.eps:g}, {layer.steps} steps, "
                           f"refine {layer.refine} (registry defaults); cost per query vs a plain forward pass",
                   "tfmodelsec": stats["tfmodelsec"], "art": None, "floor": stats["floor"],
                   "forward": clean(stats["forward"]),
                   "vs_art": None, "vs_floor": ratio(stats["tfmodelsec"], stats["floor"]),
                   "cost_per_query": cost, "closeness": close, "closeness_refine_0": no_refine,
                   "closeness_former_layer_defaults": close_former, "undefended_top2_margin": undefended_margin,
                   "quality": quality,
                   "targets": [target("ours / floor <= 1.2", ratio(stats["tfmodelsec"], stats["floor"])["median"],
                                      1.2)]}
            if method == "fgsm" and batch == 256:
                row["targets"].append(target("cost per query <= 20× a forward pass", cost["median"], 20.0))
            rows.append(row)
    return rows


def row_serving(ctx):
    import tensorflow as tf

    from tfmodelsec.defenses import make_defense
    from tfmodelsec.export import export_defended

    args, victim = ctx.args, ctx.victim
    model = victim.probability_model
    defenses = {"none": None, "mad": make_defense("mad", victim, seed=0),
                "apgp_top1": make_defense("apgp_top1", victim, x=ctx.mnist.x_train[:2000], seed=0, epochs=1)}
    served, bare = {}, {}
    with tempfile.TemporaryDirectory(prefix="tfms-speed-") as tmp:
        for name, layer in defenses.items():
            path = export_defended(victim, layer, f"{tmp}/{name}", version=1)
            sig = tf.saved_model.load(str(path)).signatures["serving_default"]
            served[name] = lambda x, _s=sig: _s(inputs=tf.constant(x))["probabilities"]
        bare["none"] = floor.forward(model)
        mad = defenses["mad"]
        bare["mad"] = floor.mad_forward(model, mad.surrogate, epsilon=mad.epsilon)
        apgp = defenses["apgp_top1"]
        bare["apgp_top1"] = tf.function(lambda x: apgp(model(x, training=False), training=False))
        rows = []
        for batch, calls in ((256, 4 if args.quick else 8), (1, 50 if args.quick else 200)):
            x = ctx.mnist.x_test[:batch]

            def block(fn, x=x, calls=calls):
                def run():
                    for _ in range(calls):
                        fn(x).numpy()
                return run

            fns = {**{f"served {k}": block(v) for k, v in served.items()},
                   **{f"floor {k}": block(v) for k, v in bare.items()}}
            stats, _ = interleaved(fns, 5 if args.quick else 15, log=f"serving batch {batch}")
            for name in ("mad", "apgp_top1"):
                over = ratio(stats[f"served {name}"], stats["served none"])
                bound = ratio(stats[f"floor {name}"], stats["floor none"])
                label = "MAD" if name == "mad" else "APGP-top1"
                row = {"key": "serving", "label": f"{label} serving, batch {batch}",
                       "work": f"exported SavedModel (serving_default), {calls} calls of batch {batch}; floor: the "
                               "same arithmetic in one in-process tf.function",
                       "tfmodelsec": stats[f"served {name}"], "art": None, "floor": stats[f"floor {name}"],
                       "undefended": {k: v for k, v in stats["served none"].items() if not k.startswith("_")},
                       "vs_art": None, "vs_floor": ratio(stats[f"served {name}"], stats[f"floor {name}"]),
                       "overhead_vs_undefended": over, "floor_overhead_vs_floor_undefended": bound,
                       "quality": (f"{over['median']:.2f}× undefended (floor: {bound['median']:.2f}× its own "
                                   "undefended)"),
                       "targets": [target("ours / floor <= 1.2",
                                          ratio(stats[f"served {name}"], stats[f"floor {name}"])["median"], 1.2)]}
                if name == "mad" and batch == 256:
                    row["targets"].append(target("MAD <= 1.2× undefended serving", over["median"], 1.2))
                    row["notes"] = ["MAD runs the surrogate (here an untrained LeNet-5, the registry default) beside "
                                    "the victim: its floor overhead is the bound for any implementation."]
                rows.append(row)
    return rows
