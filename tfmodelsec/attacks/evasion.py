"""Evasion attacks: FGSM, PGD and Carlini-Wagner L2, batched and compiled.

Shared by APMSA (which moves queries toward the decision boundary) and by the
transferability metric of model stealing. Each attack runs its whole loop for a
batch inside one ``tf.function`` with a per-sample mask, so finished samples stop
moving and nothing loops over samples in Python.

References:
    Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015 (FGSM).
    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018 (PGD).
    Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", S&P 2017 (CW).
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from tfmodelsec.utils import check_choice, check_nonnegative, check_positive

__all__ = ["fgsm", "pgd", "cw", "attack_success", "log_probabilities", "normalized_step", "project",
           "NORMS"]

NORMS = ("linf", "l2")
# log(0) guard when a model's probabilities underflow.
_LOG_EPS = 1e-12
_L2_EPS = 1e-12

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probability_model(model):
    from tfmodelsec.models.io import Victim

    if isinstance(model, Victim):
        return model.probability_model
    return model


def log_probabilities(model, x):
    """``log softmax`` of ``model(x)`` for a probability-output model (graph-safe)."""
    return tf.math.log(tf.maximum(model(x, training=False), _LOG_EPS))


def normalized_step(grad, norm: str):
    """The steepest-ascent direction of unit ``norm`` for ``grad`` (per sample)."""
    if norm == "linf":
        return tf.sign(grad)
    axes = list(range(1, len(grad.shape)))
    return grad / (tf.sqrt(tf.reduce_sum(tf.square(grad), axis=axes, keepdims=True)) + _L2_EPS)


def project(x, x0, eps, norm: str):
    """Project ``x`` onto the ``norm`` ball of radius ``eps`` around ``x0``."""
    delta = x - x0
    if norm == "linf":
        return x0 + tf.clip_by_value(delta, -eps, eps)
    axes = list(range(1, len(delta.shape)))
    length = tf.sqrt(tf.reduce_sum(tf.square(delta), axis=axes, keepdims=True))
    return x0 + delta * tf.minimum(1.0, eps / (length + _L2_EPS))


def _broadcast_mask(mask, like):
    return tf.reshape(tf.cast(mask, like.dtype), [-1] + [1] * (len(like.shape) - 1))


def _gradient_ascent_fn(model, norm: str):
    """Compiled PGD loop: ``(x0, y, eps, step, steps, sign, start, clip_lo, clip_hi, early)``."""

    def run(x0, y, eps, step_size, steps, sign, start, clip_lo, clip_hi, early_stop):
        def loss_grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                nll = -tf.gather(log_probabilities(model, x), y, batch_dims=1)
            return tape.gradient(nll, x)

        def body(i, x, active):
            moved = project(x + sign * step_size * normalized_step(loss_grad(x), norm), x0, eps, norm)
            moved = tf.clip_by_value(moved, clip_lo, clip_hi)
            x = x + _broadcast_mask(active, x) * (moved - x)
            if early_stop:  # a Python bool: one trace per setting
                pred = tf.argmax(model(x, training=False), axis=1, output_type=tf.int32)
                # untargeted (sign=+1): done once the label left y; targeted: once it is y
                done = tf.where(sign > 0, tf.not_equal(pred, y), tf.equal(pred, y))
                active = tf.logical_and(active, tf.logical_not(done))
            return i + 1, x, active

        x = tf.clip_by_value(project(start, x0, eps, norm), clip_lo, clip_hi)
        active = tf.ones_like(y, dtype=tf.bool)
        _, x, _ = tf.while_loop(
            lambda i, x, active: tf.logical_and(i < steps, tf.reduce_any(active)),
            body, (tf.constant(0), x, active),
        )
        return x

    return tf.function(run, reduce_retracing=True)


def _compiled(model, key, factory):
    per_model = _COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model[key] = factory()
    return per_model[key]


def _open_range(clip_min, clip_max):
    """``None`` bounds (an unbounded victim range) become -inf / +inf: no clipping on that side."""
    return (-np.inf if clip_min is None else float(clip_min)), (np.inf if clip_max is None else float(clip_max))


def _prepare(model, x, y, clip_min, clip_max):
    model = _probability_model(model)
    x = np.asarray(x, np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"`x` must be a non-empty batch of samples. Received shape {x.shape}")
    if not clip_min < clip_max:
        raise ValueError(f"`clip_min` must be < `clip_max`. Received: clip_min={clip_min}, clip_max={clip_max}")
    if y is None:
        y = np.concatenate([np.argmax(model(x[i:i + 1024], training=False), axis=1)
                            for i in range(0, len(x), 1024)])
    y = np.asarray(y).astype(np.int32).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"`y` must have one label per sample: {len(y)} labels for {len(x)} samples")
    classes = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else None
    if classes is not None and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"`y` must be class indices in [0, {classes - 1}]. Received range [{y.min()}, {y.max()}]")
    return model, x, y


def pgd(model, x, y=None, *, eps: float, step_size: float | None = None, steps: int = 40,
        norm: str = "linf", random_start: bool = True, targeted: bool = False, early_stop: bool = False,
        clip_min: float = 0.0, clip_max: float = 1.0, seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Projected gradient descent on the cross-entropy (Madry et al. 2018).

    Args:
        model: a probability-output ``keras.Model`` or a :class:`~tfmodelsec.Victim`.
        x: inputs (N, ...). y: labels to move away from (untargeted) or toward
            (``targeted=True``); default: the model's own predictions.
        eps: radius of the ``norm`` ball (``eps=0`` returns ``x``).
        step_size: per-step size (default ``2.5 * eps / steps``, Madry et al.).
        steps: iterations. norm: ``"linf"`` or ``"l2"``.
        random_start: start from a uniform point in the ball (seeded).
        early_stop: freeze a sample once it is misclassified (targeted: once it is ``y``).
        clip_min, clip_max: valid input range; ``None`` leaves that side unbounded.

    Returns:
        Adversarial examples, same shape as ``x``, float32.

    Example:
        >>> x_adv = pgd(victim, x, eps=0.3, steps=40)  # doctest: +SKIP
    """
    check_nonnegative("eps", eps)
    check_positive("steps", steps, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    norm = check_choice("norm", norm, NORMS)
    if step_size is None:
        step_size = 2.5 * eps / steps
    check_nonnegative("step_size", step_size)
    clip_min, clip_max = _open_range(clip_min, clip_max)
    model, x, y = _prepare(model, x, y, clip_min, clip_max)
    if eps == 0:
        return x.copy()
    run = _compiled(model, ("pgd", norm), lambda: _gradient_ascent_fn(model, norm))
    rng = np.random.default_rng(seed)
    sign = tf.constant(-1.0 if targeted else 1.0)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        start = xb
        if random_start:
            noise = rng.uniform(-eps, eps, size=xb.shape).astype(np.float32)
            if norm == "l2":  # a random point inside the L2 ball
                flat = noise.reshape(len(xb), -1)
                flat /= np.linalg.norm(flat, axis=1, keepdims=True) + _L2_EPS
                flat *= eps * rng.uniform(size=(len(xb), 1)) ** (1.0 / flat.shape[1])
                noise = flat.reshape(xb.shape).astype(np.float32)
            start = xb + noise
        out.append(run(tf.constant(xb), tf.constant(y[i:i + batch_size]), tf.constant(float(eps)),
                       tf.constant(float(step_size)), tf.constant(int(steps)), sign, tf.constant(start),
                       tf.constant(float(clip_min)), tf.constant(float(clip_max)),
                       bool(early_stop)).numpy())
    return np.concatenate(out)


def fgsm(model, x, y=None, *, eps: float, norm: str = "linf", targeted: bool = False,
         clip_min: float = 0.0, clip_max: float = 1.0, batch_size: int = 1024) -> np.ndarray:
    """Fast gradient sign method: one step of size ``eps`` (Goodfellow et al. 2015).

    Same arguments as :func:`pgd`; ``eps=0`` returns ``x``. With ``norm="l2"`` it is the
    fast gradient method with an L2-normalised step.
    """
    return pgd(model, x, y, eps=eps, step_size=eps, steps=1, norm=norm, random_start=False,
               targeted=targeted, clip_min=clip_min, clip_max=clip_max, batch_size=batch_size)


def _cw_fn(model):
    """Compiled CW-L2 loop with a fixed trade-off constant; keeps the best success per sample.

    One forward + backward pass per step: the forward pass that gives the gradient at
    the current iterate also says whether it is adversarial and how far it moved, so the
    best point is recorded from it; one forward pass after the loop checks the last iterate.
    """

    def run(x0, y, c, lr, steps, kappa, sign, clip_lo, clip_hi):
        span = clip_hi - clip_lo
        # tanh-space variable: x = lo + span * (tanh(w) + 1) / 2 always lies in range
        unit = tf.clip_by_value((x0 - clip_lo) / span, 1e-6, 1 - 1e-6)
        w = tf.atanh(2.0 * unit - 1.0)
        num_classes = tf.shape(model(x0[:1], training=False))[1]
        onehot = tf.one_hot(y, num_classes)
        axes = list(range(1, len(x0.shape)))

        def evaluate(w_):
            """The iterate's image, its squared distance to x0 and its margin."""
            x = clip_lo + span * (tf.tanh(w_) + 1.0) / 2.0
            z = log_probabilities(model, x)  # log-probs differ from logits by a per-row constant
            own = tf.reduce_sum(onehot * z, axis=1)
            other = tf.reduce_max(z - 1e9 * onehot, axis=1)
            # untargeted: push own below the best other; targeted: push y above the rest
            margin = tf.where(sign > 0, own - other, other - own)
            return x, tf.reduce_sum(tf.square(x - x0), axis=axes), margin

        def record(x, dist, margin, best, best_dist):
            improved = tf.logical_and(margin <= -kappa, dist < best_dist)
            return tf.where(_broadcast_mask(improved, x) > 0, x, best), tf.where(improved, dist, best_dist)

        def body(i, w_, m, v, best, best_dist):
            with tf.GradientTape() as tape:
                tape.watch(w_)
                x, dist, margin = evaluate(w_)
                loss = tf.reduce_sum(dist + c * tf.maximum(margin, -kappa))
            g = tape.gradient(loss, w_)
            best, best_dist = record(x, dist, margin, best, best_dist)
            t = tf.cast(i + 1, tf.float32)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * tf.square(g)
            update = lr * (m / (1 - 0.9 ** t)) / (tf.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
            return i + 1, w_ - update, m, v, best, best_dist

        init = (tf.constant(0), w, tf.zeros_like(w), tf.zeros_like(w), x0,
                tf.fill(tf.shape(y), tf.constant(np.inf, tf.float32)))
        _, w, _, _, best, best_dist = tf.while_loop(lambda i, *_: i < steps, body, init)
        best, best_dist = record(*evaluate(w), best, best_dist)
        return best, tf.math.is_finite(best_dist)

    return tf.function(run, reduce_retracing=True)


def cw(model, x, y=None, *, c: float = 1.0, confidence: float = 0.0, steps: int = 100, lr: float = 0.01,
       targeted: bool = False, clip_min: float = 0.0, clip_max: float = 1.0,
       batch_size: int = 1024) -> np.ndarray:
    """Carlini-Wagner L2 with a fixed trade-off ``c`` (no binary search), Adam in tanh space.

    Returns the smallest successful perturbation found per sample; samples never
    made adversarial are returned unchanged.
    """
    check_positive("c", c)
    check_nonnegative("confidence", confidence)
    check_positive("steps", steps, integer=True)
    check_positive("lr", lr)
    if clip_min is None or clip_max is None:
        raise ValueError("`clip_min` and `clip_max` must be finite for cw (its tanh change of variable needs a box): "
                         f"pass the data's range. Received: clip_min={clip_min}, clip_max={clip_max}")
    model, x, y = _prepare(model, x, y, clip_min, clip_max)
    run = _compiled(model, ("cw",), lambda: _cw_fn(model))
    sign = tf.constant(-1.0 if targeted else 1.0)
    out = []
    for i in range(0, len(x), batch_size):
        best, _ = run(tf.constant(x[i:i + batch_size]), tf.constant(y[i:i + batch_size]), tf.constant(float(c)),
                      tf.constant(float(lr)), tf.constant(int(steps)), tf.constant(float(confidence)), sign,
                      tf.constant(float(clip_min)), tf.constant(float(clip_max)))
        out.append(best.numpy())
    return np.concatenate(out)


def attack_success(model, x_adv, y, *, targeted: bool = False, batch_size: int = 1024) -> np.ndarray:
    """Per-sample success: label != y (untargeted) or label == y (targeted)."""
    model = _probability_model(model)
    x_adv = np.asarray(x_adv, np.float32)
    pred = np.concatenate([np.argmax(model(x_adv[i:i + batch_size], training=False), axis=1)
                           for i in range(0, len(x_adv), batch_size)])
    return pred == np.asarray(y) if targeted else pred != np.asarray(y)
