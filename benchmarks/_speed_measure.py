"""How the speed table (benchmarks/speed.py) measures: interleaved timing, and the floor column.

Timing: every column of a row is called once to warm up (tracing excluded), then the columns
run in alternating order for ``repeats`` rounds; a row reports median (min-max) wall time,
the median process CPU time, and ratios computed round by round.

The floor: bare compiled ``tf.function`` loops, what a careful user would write by hand for one
fixed setting: the whole loop in one ``tf.function`` (no masks, no early-stop bookkeeping, no
checks, no Keras ``fit``), the model captured by closure. tfmodelsec's time over this time says
what our generality costs; they compute the same numbers as the library, so a ratio near 1 means
nothing is left to gain without changing the arithmetic.
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf


# --- timing ---------------------------------------------------------------------------------
def _clock(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def summary(wall, cpu=None) -> dict:
    wall = [float(w) for w in wall]
    out = {"median_s": float(np.median(wall)), "min_s": min(wall), "max_s": max(wall),
           "runs_s": [round(w, 4) for w in wall]}
    if cpu is not None:
        out["cpu_median_s"] = float(np.median(cpu))
    return out


def interleaved(fns: dict, repeats: int, *, warmups: dict | None = None, log: str = "") -> tuple[dict, dict]:
    """Time each callable ``repeats`` times in alternating order after one excluded warm-up each.

    ``warmups`` maps a name to a cheaper callable that traces the same shapes (``None``:
    no warm-up for that one). Returns ``(stats per name, last output per name)``.
    """
    warmups = warmups or {}
    outs = {}
    for name, fn in fns.items():
        warm = warmups.get(name, fn)
        if warm is not None:
            outs[name] = warm()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            w, c, outs[name] = _clock(fns[name])
            wall[name].append(w)
            cpu[name].append(c)
        if log:
            print(f"[{log}] round {r + 1}/{repeats}: " + ", ".join(f"{k} {wall[k][-1]:.2f}s" for k in names),
                  flush=True)
    stats = {k: summary(wall[k], cpu[k]) for k in names}
    for k in names:
        stats[k]["_wall"], stats[k]["_cpu"] = wall[k], cpu[k]
    return stats, outs


def ratio(a: dict, b: dict) -> dict | None:
    """Round-by-round ratio of two interleaved timings: median, min, max; and the CPU-time ratio."""
    if a is None or b is None:
        return None
    r = np.asarray(a["_wall"]) / np.asarray(b["_wall"])
    out = {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}
    if a.get("_cpu") and b.get("_cpu"):
        out["cpu"] = float(np.median(np.asarray(a["_cpu"]) / np.asarray(b["_cpu"])))
    return out


def clean(stats: dict | None) -> dict | None:
    return None if stats is None else {k: v for k, v in stats.items() if not k.startswith("_")}


def target(name: str, value, limit: float) -> dict:
    return {"target": name, "value": None if value is None else round(float(value), 3), "limit": limit,
            "met": None if value is None else bool(value <= limit)}


def load_now() -> float:
    return round(os.getloadavg()[0], 2)


def art_classifier(model, input_shape=(28, 28, 1), classes=10):
    """ART's TensorFlowV2Classifier around a probability model with inputs in [0, 1]."""
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(model=model, nb_classes=classes, input_shape=input_shape, clip_values=(0.0, 1.0),
                                  loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=False))


# --- the floor: bare compiled loops ---------------------------------------------------------

_LOG_EPS = 1e-12  # the log(0) guard tfmodelsec.attacks.evasion uses


def batched(fn, *arrays, batch_size: int):
    """Run ``fn`` over ``batch_size`` slices of ``arrays`` and concatenate (one host copy per batch)."""
    n = len(arrays[0])
    return np.concatenate([fn(*(tf.constant(a[i:i + batch_size]) for a in arrays)).numpy()
                           for i in range(0, n, batch_size)])


def sign_gradient_loop(model, *, eps: float, step: float, steps: int, lo: float = 0.0, hi: float = 1.0):
    """FGSM (``steps=1, step=eps``) / PGD without random start: ascend the CE of label ``y``."""

    @tf.function
    def run(x0, y):
        x = x0
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(x)
                p = tf.gather(model(x, training=False), y, batch_dims=1)
                loss = -tf.reduce_sum(tf.math.log(tf.maximum(p, _LOG_EPS)))
            g = tape.gradient(loss, x)
            x = tf.clip_by_value(x0 + tf.clip_by_value(x + step * tf.sign(g) - x0, -eps, eps), lo, hi)
        return x

    return run


def cw_loop(model, *, c: float, lr: float, steps: int, lo: float = 0.0, hi: float = 1.0):
    """CW-L2 with a fixed ``c``: Adam in tanh space, one forward + backward per step.

    The forward pass that gives the gradient at ``w`` also says whether ``x(w)`` is
    adversarial, so the best point is recorded from it; one forward pass after the loop
    checks the last iterate.
    """
    axes = [1, 2, 3]

    @tf.function
    def run(x0, y):
        span = hi - lo
        w = tf.atanh(2.0 * tf.clip_by_value((x0 - lo) / span, 1e-6, 1 - 1e-6) - 1.0)
        onehot = tf.one_hot(y, 10)

        def evaluate(w):
            x = lo + span * (tf.tanh(w) + 1.0) / 2.0
            z = tf.math.log(tf.maximum(model(x, training=False), _LOG_EPS))
            margin = tf.reduce_sum(onehot * z, 1) - tf.reduce_max(z - 1e9 * onehot, 1)
            return x, tf.reduce_sum(tf.square(x - x0), axes), margin

        def record(x, dist, margin, best, best_dist):
            better = tf.logical_and(margin <= 0.0, dist < best_dist)
            return tf.where(better[:, None, None, None], x, best), tf.where(better, dist, best_dist)

        m = tf.zeros_like(w)
        v = tf.zeros_like(w)
        best, best_dist = x0, tf.fill(tf.shape(y), np.inf)
        for i in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(w)
                x, dist, margin = evaluate(w)
                loss = tf.reduce_sum(dist + c * tf.maximum(margin, 0.0))
            g = tape.gradient(loss, w)
            best, best_dist = record(x, dist, margin, best, best_dist)
            t = tf.cast(i + 1, tf.float32)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * tf.square(g)
            w = w - lr * (m / (1 - 0.9 ** t)) / (tf.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        best, _ = record(*evaluate(w), best, best_dist)
        return best

    return run


def kl_distillation(student, *, temperature: float, learning_rate: float, batch_size: int):
    """One compiled epoch of ``tau^2 KL(p_tau || q_tau)`` distillation with Adam (batches in-graph)."""
    import keras

    opt = keras.optimizers.Adam(learning_rate)
    opt.build(student.trainable_variables)
    t = float(temperature)

    @tf.function
    def epoch(x, p):
        n = tf.shape(x)[0]
        for start in tf.range(0, n, batch_size):
            xb, pb = x[start:start + batch_size], p[start:start + batch_size]
            with tf.GradientTape() as tape:
                q = tf.clip_by_value(student(xb, training=True), 1e-7, 1.0)
                log_p = tf.nn.log_softmax(tf.math.log(tf.clip_by_value(pb, 1e-7, 1.0)) / t)
                log_q = tf.nn.log_softmax(tf.math.log(q) / t)
                loss = t * t * tf.reduce_mean(tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), -1))
            grads = tape.gradient(loss, student.trainable_variables)
            opt.apply_gradients(zip(grads, student.trainable_variables, strict=True))

    return epoch


def classifier_training(net, *, learning_rate, batch_size: int):
    """One compiled epoch of sparse-CE training with Adam (``learning_rate`` may be a schedule)."""
    import keras

    opt = keras.optimizers.Adam(learning_rate)
    opt.build(net.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def epoch(x, y):
        n = tf.shape(x)[0]
        for start in tf.range(0, n, batch_size):
            with tf.GradientTape() as tape:
                loss = loss_fn(y[start:start + batch_size], net(x[start:start + batch_size], training=True))
            opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables, strict=True))

    return epoch


def apmsa_walk(model, *, method: str, eps: float, step: float, steps: int, refine: int, c: float = 1.0,
               lo: float = 0.0, hi: float = 1.0):
    """APMSA's boundary walk unrolled: ``steps`` gradient steps, one check, ``refine`` halvings."""
    linf = method != "cw"

    def direction(x, x0, label):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logp = tf.math.log(tf.maximum(model(x, training=False), _LOG_EPS))
            if label is None:
                label = tf.argmax(logp, 1, output_type=tf.int32)
            onehot = tf.one_hot(label, 10)
            own = tf.reduce_sum(onehot * logp, 1)
            if linf:
                objective = -own
            else:
                other = tf.reduce_max(logp - 1e9 * onehot, 1)
                objective = -(tf.reduce_sum(tf.square(x - x0), [1, 2, 3]) + c * (own - other))
        g = tape.gradient(objective, x)
        if linf:
            return tf.sign(g), tf.exp(logp), label
        return g / (tf.sqrt(tf.reduce_sum(tf.square(g), [1, 2, 3], keepdims=True)) + 1e-12), tf.exp(logp), label

    def advance(x, x0, d):
        delta = x + step * d - x0
        if linf:
            delta = tf.clip_by_value(delta, -eps, eps)
        else:
            length = tf.sqrt(tf.reduce_sum(tf.square(delta), [1, 2, 3], keepdims=True))
            delta = delta * tf.minimum(1.0, eps / (length + 1e-12))
        return tf.clip_by_value(x0 + delta, lo, hi)

    @tf.function
    def run(x0):
        d, p_keep, label = direction(x0, x0, None)
        x_keep, x_cur = x0, advance(x0, x0, d)
        active = tf.ones_like(label, tf.bool)
        def step(x_keep, p_keep, x_cur, active):
            d, p, _ = direction(x_cur, x0, label)
            keep = tf.logical_and(active, tf.equal(tf.argmax(p, 1, output_type=tf.int32), label))
            return (tf.where(keep[:, None, None, None], x_cur, x_keep), tf.where(keep[:, None], p, p_keep),
                    tf.where(keep[:, None, None, None], advance(x_cur, x0, d), x_cur), keep)

        for _ in range(steps - 1):  # unrolled; a batch whose labels all flipped skips the rest
            x_keep, p_keep, x_cur, active = tf.cond(tf.reduce_any(active), lambda s=(x_keep, p_keep, x_cur, active):
                                                    step(*s), lambda s=(x_keep, p_keep, x_cur, active): s)
        p = model(x_cur, training=False)
        keep = tf.logical_and(active, tf.equal(tf.argmax(p, 1, output_type=tf.int32), label))
        x_keep = tf.where(keep[:, None, None, None], x_cur, x_keep)
        p_keep = tf.where(keep[:, None], p, p_keep)
        flipped = tf.logical_not(keep)
        lo_, hi_ = x_keep, x_cur
        for _ in range(refine):
            mid = (lo_ + hi_) / 2.0
            p = model(mid, training=False)
            ok = tf.equal(tf.argmax(p, 1, output_type=tf.int32), label)
            up, down = tf.logical_and(flipped, ok), tf.logical_and(flipped, tf.logical_not(ok))
            lo_ = tf.where(up[:, None, None, None], mid, lo_)
            p_keep = tf.where(up[:, None], p, p_keep)
            hi_ = tf.where(down[:, None, None, None], mid, hi_)
        return p_keep

    return run


def forward(model):
    return tf.function(lambda x: model(x, training=False))


def mad_forward(victim_model, surrogate_model, *, epsilon: float, num_classes: int = 10):
    """MAD (Orekondy et al. 2020) written inline: two forward passes and the closed-form target."""
    eye = tf.eye(num_classes)

    def unit(v):
        return v / tf.maximum(tf.norm(v, axis=-1, keepdims=True), 1e-7)

    @tf.function
    def run(x):
        y = victim_model(x, training=False)
        s = surrogate_model(x, training=False)
        dev = tf.reduce_sum(tf.square(unit(eye[None] - s[:, None]) - unit(y - s)[:, None]), -1)
        target = tf.gather(eye, tf.argmax(dev, -1))
        l1 = tf.reduce_sum(tf.abs(target - y), -1, keepdims=True)
        alpha = tf.minimum(1.0, epsilon / tf.maximum(l1, 1e-7))
        return (1.0 - alpha) * y + alpha * target

    return run


# The InversionConfig fields this floor reproduces; a field added later (another prior) is not in
# the floor, and the row says so instead of comparing different arithmetic silently.
_INVERSION_FIELDS = {"tv_weight", "l2_weight", "loss", "init", "steps", "lr", "jitter", "blur_sigma", "blur_every",
                     "scales", "tol", "stop_confidence"}


def inversion_loop(victim, config, steps: int, *, classes: int = 10, seed: int = 0):
    """TV-regularised inversion as tfmodelsec.attacks.inversion computes it, for ``steps`` steps.

    Logit-margin (or CE) loss on the jittered image, ``tv_weight`` TV, ``l2_weight`` decay,
    Adam, clipping, Gaussian blur every step, coarse-to-fine stages; no masks, no
    convergence test. Returns ``(callable -> images, note)``.
    """
    from dataclasses import fields

    h, w, c = victim.input_shape
    lo, hi = (float(v) for v in victim.input_range)
    extra = sorted({f.name for f in fields(config)} - _INVERSION_FIELDS)
    note = ("floor = the inversion arithmetic of tfmodelsec's InversionConfig defaults"
            + (f"; fields not reproduced by the floor: {extra}" if extra else "")
            + (f"; the floor blurs every step, not every {config.blur_every}" if config.blur_every > 1 else ""))
    jitter = round(0.1 * min(h, w)) if config.jitter is None else int(config.jitter)
    sizes = [(round(h * s), round(w * s)) for s in config.scales]
    sizes = [sz for sz in sizes if min(sz) >= min(8, h, w)] or [(h, w)]
    per_stage = [steps // len(sizes) + (1 if k < steps % len(sizes) else 0) for k in range(len(sizes))]
    r = np.arange(-2, 3, dtype=np.float64)
    k1 = np.exp(-(r ** 2) / (2 * max(config.blur_sigma, 1e-6) ** 2))
    k2 = np.outer(k1, k1) / np.outer(k1, k1).sum()
    kernel = tf.constant(np.tile(k2[:, :, None, None], (1, 1, c, 1)).astype(np.float32))
    blur = config.blur_every > 0 and config.blur_sigma > 0
    model, logits_out = victim.model, victim.output_kind == "logits"
    onehot = tf.one_hot(np.arange(classes), victim.num_classes)
    tv_w, l2_w, lr = float(config.tv_weight), float(config.l2_weight), float(config.lr)

    def log_probs(x):
        out = model(x, training=False)
        return tf.nn.log_softmax(out) if logits_out else tf.math.log(tf.maximum(out, 1e-30))

    def stage(size, n_steps, stage_seed):
        full = size == (h, w)

        @tf.function
        def run(x):
            m, v = tf.zeros_like(x), tf.zeros_like(x)
            for i in tf.range(n_steps):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    img = x if full else tf.image.resize(x, [h, w], "bilinear")
                    shift = tf.random.stateless_uniform([2], tf.stack([stage_seed, i]), -jitter, jitter + 1, tf.int32)
                    logp = log_probs(tf.roll(img, shift, [1, 2]))
                    own = tf.reduce_sum(onehot * logp, 1)
                    data = -(own - tf.reduce_mean(logp, 1)) if config.loss == "logit" else -own
                    dh = img[:, 1:] - img[:, :-1]
                    dw = img[:, :, 1:] - img[:, :, :-1]
                    tv = (tf.reduce_sum(tf.square(dh), [1, 2, 3])
                          + tf.reduce_sum(tf.square(dw), [1, 2, 3])) / (h * w * c)
                    total = tf.reduce_sum(data + tv_w * tv + l2_w * tf.reduce_mean(tf.square(img - lo), [1, 2, 3]))
                g = tape.gradient(total, x)
                t = tf.cast(i + 1, tf.float32)
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * tf.square(g)
                x = tf.clip_by_value(x - lr * (m / (1 - 0.9 ** t)) / (tf.sqrt(v / (1 - 0.999 ** t)) + 1e-8), lo, hi)
                if blur:
                    x = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")
            return x

        return run

    runs = [stage(size, n, seed * 1000 + k) for k, (size, n) in enumerate(zip(sizes, per_stage, strict=True))]
    start = (lo + 0.3 * (hi - lo) * np.random.default_rng(seed).random((classes, *sizes[0], c))).astype(np.float32)

    def invert():
        x = tf.constant(start)
        for k, run in enumerate(runs):
            if k > 0:
                x = tf.image.resize(x, sizes[k], "bilinear")
            x = run(x)
        if tuple(x.shape[1:3]) != (h, w):
            x = tf.image.resize(x, [h, w], "bilinear")
        return np.clip(x.numpy(), lo, hi)

    return invert, note
