"""APMSA: Adversarial Perturbation against Model Stealing Attacks (Zhang et al., IEEE TIFS
18:1667-1679, 2023, https://doi.org/10.1109/TIFS.2023.3246766).

For each query ``x`` with label ``M = argmax f(x)``, APMSA moves ``x`` step by step
to *increase* ``CrossEntropy(f(x), M)`` (an untargeted evasion attack on itself),
keeps the last point whose label is still ``M``, stops when the label would flip
(or after ``steps``), and answers ``f(x_last)``. The label an honest user sees never
changes; the probability vectors an attacker trains on sit next to the decision
boundary and say little about the model's inside.

The walk moves in steps, so the last label-keeping point can sit up to a step before the
flip; ``refine`` bisects that last step (forward passes only) to bring the answer to the
boundary. :meth:`APMSA.walk` returns the points and whether each query's label flipped.

The whole loop for a batch runs in one ``tf.while_loop`` with a per-sample mask,
so the layer runs in ``BlackBox(defense=...)`` and in an exported SavedModel. The
step rules reuse :mod:`tfmodelsec.attacks.evasion` (``normalized_step``,
``project``, ``log_probabilities``):

* ``"fgsm"``: iterative sign-gradient steps of size ``eps / steps`` (a march to the
  edge of the L-inf ball, never beyond it);
* ``"pgd"``: sign (or L2) steps of ``step_size`` (default ``2.5 eps / steps``),
  projected onto the ``eps`` ball;
* ``"cw"``: L2-normalised steps down the Carlini-Wagner objective
  ``||x - x0||^2 + c * (z_M - max_{j != M} z_j)`` (log-probability margin), in the L2 ball.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfmodelsec.attacks.evasion import (
    NORMS,
    log_probabilities,
    normalized_step,
    project,
)
from tfmodelsec.defenses import _wrapping
from tfmodelsec.utils import check_choice, check_nonnegative, check_positive

__all__ = ["APMSA", "METHODS"]

METHODS = ("fgsm", "pgd", "cw")


def _rows(mask, like):
    """A per-sample bool mask shaped to broadcast against ``like`` in ``tf.where``."""
    return tf.reshape(mask, [-1] + [1] * (len(like.shape) - 1))


@keras.saving.register_keras_serializable(package="tfmodelsec")
class APMSA(keras.layers.Layer):
    """APMSA as a Keras layer wrapping the victim: inputs -> defended probabilities.

    ``operates_on = "inputs"`` makes ``BlackBox(victim, defense=layer)`` call it on the
    queries rather than on the victim's probabilities.

    Args:
        victim: the model to defend (``keras.Model`` or Victim; logits get a softmax).
        method: ``"fgsm"``, ``"pgd"`` or ``"cw"`` (see the module docstring).
        eps: radius of the ball the query may move in (``eps=0`` answers ``f(x)``).
        steps: most steps per query (>= 1).
        step_size: per-step size (default: ``eps/steps`` for fgsm, ``2.5 eps/steps`` for
            pgd and cw).
        norm: ``"linf"`` or ``"l2"`` for fgsm / pgd (cw is always L2).
        c: CW trade-off constant (> 0).
        clip_min, clip_max: the valid input range (``None``: unbounded on that side).
        refine: bisections of the last step for queries whose label flipped within the walk
            (``refine`` forward passes, no gradient): the answer comes from a point within
            ``1 / 2**refine`` of a step of the flip instead of up to a whole step before it.

    Defaults (eps 0.25, 5 steps, refine 4) reach the boundary on inputs in [0, 1]: on the committed
    LeNet-5/MNIST 99% of queries flip within the walk and the answers' top-2 margin falls from
    ~1.0 (undefended) to 0.12 (0.79 without ``refine``; the former defaults eps 0.1, 10 steps
    reached the flip for 46% of queries). ``benchmarks/speed.py`` measures this and the cost.

    Example:
        >>> defense = APMSA(victim, method="cw", eps=1.0, steps=10)  # doctest: +SKIP
        >>> BlackBox(victim, defense=defense)(x)  # doctest: +SKIP
    """

    operates_on = "inputs"

    def __init__(self, victim, method: str = "fgsm", eps: float = 0.25, steps: int = 5,
                 step_size: float | None = None, norm: str = "linf", c: float = 1.0,
                 clip_min: float | None = 0.0, clip_max: float | None = 1.0, refine: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.method = check_choice("method", method, METHODS)
        check_nonnegative("eps", eps)
        check_positive("steps", steps, integer=True)
        if step_size is not None:
            check_positive("step_size", step_size)
        self.norm = check_choice("norm", norm, NORMS)
        check_positive("c", c)
        if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
            raise ValueError(f"`refine` must be an int >= 0. Received: refine={refine!r}")
        if clip_min is not None and clip_max is not None and not clip_min < clip_max:
            raise ValueError(f"`clip_min` must be < `clip_max`. Received: clip_min={clip_min}, clip_max={clip_max}")
        self.victim = _wrapping.probability_model(victim, name="victim")
        self.num_classes = _wrapping.output_classes(self.victim)
        self.eps = float(eps)
        self.steps = int(steps)
        self.step_size = None if step_size is None else float(step_size)
        self.c = float(c)
        self.clip_min = None if clip_min is None else float(clip_min)
        self.clip_max = None if clip_max is None else float(clip_max)
        self.refine = int(refine)

    @property
    def effective_step_size(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return self.eps / self.steps * (1.0 if self.method == "fgsm" else 2.5)

    def _direction(self, x, x0, label=None):
        """Ascent direction for the rule of ``self.method`` at ``x``, ``f(x)`` and the label.

        ``label=None`` (the first step, at ``x0``) takes it from this same forward pass:
        one forward + backward gives ``f(x0)``, ``M`` and the first direction.
        """
        axes = list(range(1, len(x.shape)))
        with tf.GradientTape() as tape:
            tape.watch(x)
            logp = log_probabilities(self.victim, x)
            if label is None:
                label = tf.argmax(logp, axis=1, output_type=tf.int32)
            onehot = tf.one_hot(label, self.num_classes)
            if self.method == "cw":
                own = tf.reduce_sum(onehot * logp, axis=1)
                other = tf.reduce_max(logp - 1e9 * onehot, axis=1)
                # minimise ||x - x0||^2 + c * margin: ascend its negative
                objective = -(tf.reduce_sum(tf.square(x - x0), axis=axes) + self.c * (own - other))
            else:
                objective = -tf.reduce_sum(onehot * logp, axis=1)  # cross-entropy w.r.t. M
        grad = tape.gradient(objective, x)
        norm = "l2" if self.method == "cw" else self.norm
        return normalized_step(grad, norm), tf.exp(logp), label

    def walk(self, x):
        """The boundary walk: ``(answers, points, flipped)`` for a batch of queries.

        ``points`` are the last label-keeping points (``answers = f(points)``);
        ``flipped`` says whose label would flip one step (or, with ``refine``, one
        bisection interval) further. Cost: ``steps`` forward + backward passes, one
        forward pass to check the last step, and ``refine`` forward passes.
        """
        x0 = tf.convert_to_tensor(x, tf.float32)
        if self.eps == 0.0:
            probs0 = self.victim(x0, training=False)
            return probs0, x0, tf.zeros(tf.shape(x0)[:1], tf.bool)
        norm = "l2" if self.method == "cw" else self.norm
        step = tf.constant(self.effective_step_size, tf.float32)
        eps = tf.constant(self.eps, tf.float32)

        def advance(x_cur, direction):
            moved = project(x_cur + step * direction, x0, eps, norm)
            return tf.clip_by_value(moved, -np.inf if self.clip_min is None else self.clip_min,
                                    np.inf if self.clip_max is None else self.clip_max)

        def same_label(probs, label):
            return tf.equal(tf.argmax(probs, axis=1, output_type=tf.int32), label)

        direction, probs0, label = self._direction(x0, x0)
        # loop state: the last point known to keep M (and f there), the point to check next
        # (for a flipped sample: the first point past the flip), who is still walking
        active = tf.ones_like(label, dtype=tf.bool)
        flipped = tf.zeros_like(active)

        def body(i, x_keep, p_keep, x_cur, active, flipped):
            direction, probs = self._direction(x_cur, x0, label)[:2]
            keep = tf.logical_and(active, same_label(probs, label))
            flipped = tf.logical_or(flipped, tf.logical_and(active, tf.logical_not(keep)))
            x_keep = tf.where(_rows(keep, x_cur), x_cur, x_keep)
            p_keep = tf.where(keep[:, None], probs, p_keep)
            x_cur = tf.where(_rows(keep, x_cur), advance(x_cur, direction), x_cur)
            return i + 1, x_keep, p_keep, x_cur, keep, flipped

        _, x_keep, p_keep, x_cur, active, flipped = tf.while_loop(
            lambda i, *state: tf.logical_and(i < self.steps, tf.reduce_any(state[3])),
            body, (tf.constant(1), x0, probs0, advance(x0, direction), active, flipped),
        )

        def check_last():  # the last step's point: one forward pass, no gradient
            probs = self.victim(x_cur, training=False)
            keep = tf.logical_and(active, same_label(probs, label))
            return (tf.where(_rows(keep, x_cur), x_cur, x_keep), tf.where(keep[:, None], probs, p_keep),
                    tf.logical_or(flipped, tf.logical_and(active, tf.logical_not(keep))))

        x_keep, p_keep, flipped = tf.cond(tf.reduce_any(active), check_last, lambda: (x_keep, p_keep, flipped))
        if self.refine:
            x_keep, p_keep = tf.cond(tf.reduce_any(flipped),
                                     lambda: self._bisect(x_keep, p_keep, x_cur, flipped, label),
                                     lambda: (x_keep, p_keep))
        return p_keep, x_keep, flipped

    def _bisect(self, lo, p_lo, hi, flipped, label):
        """``refine`` halvings of the segment [last kept point, first flipped point] (forward passes only)."""
        for _ in range(self.refine):
            mid = (lo + hi) / 2.0
            probs = self.victim(mid, training=False)
            keep = tf.equal(tf.argmax(probs, axis=1, output_type=tf.int32), label)
            up = tf.logical_and(flipped, keep)
            down = tf.logical_and(flipped, tf.logical_not(keep))
            lo = tf.where(_rows(up, mid), mid, lo)
            p_lo = tf.where(up[:, None], probs, p_lo)
            hi = tf.where(_rows(down, mid), mid, hi)
        return lo, p_lo

    def call(self, x, training=None):
        return self.walk(x)[0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "victim": _wrapping.serialize_model(self.victim), "method": self.method,
                "eps": self.eps, "steps": self.steps, "step_size": self.step_size, "norm": self.norm,
                "c": self.c, "clip_min": self.clip_min, "clip_max": self.clip_max, "refine": self.refine}

    @classmethod
    def from_config(cls, config):
        # a layer saved before `refine` existed answered from its last whole step: it loads that way
        return super().from_config({"refine": 0, **config})
