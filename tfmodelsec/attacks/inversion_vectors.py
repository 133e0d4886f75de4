"""Model inversion of feature-vector (tabular) victims: the image priors' counterpart for ``(D,)`` inputs.

:func:`~tfmodelsec.attacks.inversion.invert` hands feature-vector victims here. Each class's
vector is searched in the unit box of :func:`~tfmodelsec.attacks._whitebox.unit_view` (each
feature between the bounds of the victim's range or, for an unbounded range, the data's
per-feature ``[min, max]``) by Adam on ``loss(victim(x), c) + l2_weight * mean((u - 1/2)^2)``:
the class loss of the image path, and an L2 pull toward the middle of each feature's box
(for standardised features, about their mean) in place of the image priors (total
variation, jitter, blur and multi-resolution have no meaning without a pixel grid). A
per-class mask stops a class once its vector stops moving or its confidence reaches
``stop_confidence``, as for images.

Recognisability is scored by :func:`tfmodelsec.metrics.inversion_metrics`: the Pearson
correlation with the real class mean (both centred on the mean of the class means) and
whether the nearest class mean is the target's.

Reference: Fredrikson et al., "Model Inversion Attacks that Exploit Confidence Information
and Basic Countermeasures", CCS 2015 (inversion of feature-vector models).
"""

from __future__ import annotations

import weakref

import numpy as np

from tfmodelsec.attacks._whitebox import scores_fn

__all__ = ["invert_vectors"]

_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8
# "noise" starts: the middle of each feature's box, moved by up to this share of it.
_NOISE_SCALE = 0.1
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _loop(victim, loss: str):
    import tensorflow as tf

    scores = scores_fn(victim)

    def run(u, active, steps_taken, y, l2_w, lr, steps, tol, stop_conf):
        onehot = tf.one_hot(y, victim.num_classes)

        def body(i, u, m, v, active, steps_taken):
            with tf.GradientTape() as tape:
                tape.watch(u)
                logp, prob = scores(u)
                if loss == "ce":
                    data_loss = -tf.reduce_sum(onehot * logp, 1)
                elif loss == "logit":
                    data_loss = -(tf.reduce_sum(onehot * logp, 1) - tf.reduce_mean(logp, 1))
                else:
                    data_loss = tf.reduce_sum(tf.square(prob - onehot), 1)
                total = tf.reduce_sum(data_loss + l2_w * tf.reduce_mean(tf.square(u - 0.5), 1))
            g = tape.gradient(total, u)
            t = tf.cast(i + 1, tf.float32)
            m2 = _ADAM_B1 * m + (1 - _ADAM_B1) * g
            v2 = _ADAM_B2 * v + (1 - _ADAM_B2) * tf.square(g)
            step = lr * (m2 / (1 - _ADAM_B1**t)) / (tf.sqrt(v2 / (1 - _ADAM_B2**t)) + _ADAM_EPS)
            u2 = tf.clip_by_value(u - step, 0.0, 1.0)
            keep = active[:, None]
            moved = tf.reduce_max(tf.abs(u2 - u), 1)
            u2, m2, v2 = (tf.where(keep, a, b) for a, b in ((u2, u), (m2, m), (v2, v)))
            steps_taken = steps_taken + tf.cast(active, tf.int32)
            conf = tf.reduce_sum(scores(u2)[1] * onehot, 1)
            done = tf.logical_or(moved < tol, conf >= stop_conf)
            return i + 1, u2, m2, v2, tf.logical_and(active, tf.logical_not(done)), steps_taken

        zeros = tf.zeros_like(u)
        _, u, _, _, active, steps_taken = tf.while_loop(
            lambda i, u, m, v, active, s: tf.logical_and(i < steps, tf.reduce_any(active)),
            body, (tf.constant(0), u, zeros, zeros, active, steps_taken))
        return u, steps_taken

    return tf.function(run, reduce_retracing=True)


def _initial(init: str, shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if init == "zeros":
        return np.zeros(shape, np.float32)
    if init == "mean":
        return np.full(shape, 0.5, np.float32)
    if init == "uniform":
        return rng.random(shape).astype(np.float32)
    return (0.5 + _NOISE_SCALE * (rng.random(shape) - 0.5)).astype(np.float32)


def invert_vectors(view, labels, config, *, seed: int = 0):
    """Invert the feature-vector victim ``view`` (a unit view) for ``labels``.

    Args:
        view: a Victim over ``[0, 1]^D`` (:func:`~tfmodelsec.attacks._whitebox.unit_view`).
        labels: int32 target classes. config: an ``InversionConfig`` (``loss``, ``init``,
            ``steps``, ``lr``, ``l2_weight``, ``tol``, ``stop_confidence``; the image priors are unused).
        seed: seeds the starting vectors.

    Returns:
        ``(u, steps_taken)``: the unit-space vectors ``(len(labels), D)`` and steps per class.
    """
    import tensorflow as tf

    per = _COMPILED.setdefault(view.model, {})
    if config.loss not in per:
        per[config.loss] = _loop(view, config.loss)
    n = len(labels)
    stop_conf = 2.0 if config.stop_confidence is None else float(config.stop_confidence)
    u, steps_taken = per[config.loss](
        tf.constant(_initial(config.init, (n, *view.input_shape), seed)), tf.ones([n], tf.bool),
        tf.zeros([n], tf.int32), tf.constant(labels), tf.constant(float(config.l2_weight)),
        tf.constant(float(config.lr)), tf.constant(int(config.steps)), tf.constant(float(config.tol)),
        tf.constant(stop_conf))
    return u.numpy(), steps_taken.numpy()
