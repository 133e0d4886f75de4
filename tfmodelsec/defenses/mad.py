"""MAD prediction poisoning (Orekondy et al., "Prediction Poisoning: Towards Defenses
Against DNN Model Stealing Attacks", ICLR 2020, https://arxiv.org/abs/1906.10908).

MAD answers ``y~`` instead of the victim's ``y`` so that the gradient an attacker's
model would take on ``y~`` points as far as possible (in angle) from the one it
would take on ``y``, within an L1 budget ``||y~ - y||_1 <= epsilon``. The attacker's
model is stood in for by a surrogate. As in the paper's implementation the
gradient is taken w.r.t. the surrogate's last (softmax) layer; there the
log-likelihood Jacobian is ``G^T y = [h; 1] (y - s)^T`` (``h`` the penultimate
features, ``s`` the surrogate's probabilities), so the normalised gradient is
``(y - s) / ||y - s||`` times a factor that does not depend on ``y``, and the
angular objective is computed exactly from ``s`` alone. The best of the ``K``
extreme points ``e_k`` is mixed with ``y`` up to the budget.
"""

from __future__ import annotations

import keras
from keras import ops

from tfmodelsec.defenses import _wrapping
from tfmodelsec.utils import check_positive

__all__ = ["MAD"]

_TINY = 1e-7


def _unit(v):
    return v / ops.maximum(ops.sqrt(ops.sum(ops.square(v), axis=-1, keepdims=True)), _TINY)


@keras.saving.register_keras_serializable(package="tfmodelsec")
class MAD(keras.layers.Layer):
    """Maximising Angular Deviation: wraps the victim, maps inputs -> poisoned probabilities.

    Args:
        victim: the model to defend (``keras.Model`` or Victim; logits get a softmax).
        surrogate: a probability (or logit) model with the victim's input shape and
            class count, standing in for the attacker's model.
        epsilon: L1 budget of the perturbation (in (0, 2]).
        preserve_argmax: MAD-argmax: shrink the move so the top label never changes.

    Raises:
        ValueError: a surrogate with another class count or input shape, a bad ``epsilon``.

    Example:
        >>> mad = MAD(victim, surrogate, epsilon=0.5)  # doctest: +SKIP
        >>> BlackBox(victim, defense=mad)(x)  # doctest: +SKIP
    """

    operates_on = "inputs"

    def __init__(self, victim, surrogate, epsilon: float = 1.0, preserve_argmax: bool = False, **kwargs):
        super().__init__(**kwargs)
        check_positive("epsilon", epsilon)
        if epsilon > 2:
            raise ValueError(f"`epsilon` must be in (0, 2] (an L1 distance between probabilities). "
                             f"Received: epsilon={epsilon!r}")
        self.victim = _wrapping.probability_model(victim, name="victim")
        self.surrogate = _wrapping.probability_model(surrogate, name="surrogate")
        k_v, k_s = _wrapping.output_classes(self.victim), _wrapping.output_classes(self.surrogate)
        if k_v != k_s:
            raise ValueError(f"`surrogate` must have the victim's class count ({k_v}). "
                             f"Received a surrogate with {k_s} classes")
        s_v, s_s = _wrapping.input_shape(self.victim), _wrapping.input_shape(self.surrogate)
        if s_v != s_s:
            raise ValueError(f"`surrogate` must take the victim's input shape {s_v}. Received input shape {s_s}")
        self.num_classes = k_v
        self.epsilon = float(epsilon)
        self.preserve_argmax = bool(preserve_argmax)

    def call(self, x, training=None):
        y = self.victim(x, training=False)
        s = self.surrogate(x, training=False)
        k = self.num_classes
        eye = ops.eye(k, dtype=y.dtype)
        u_y = _unit(y - s)  # (B, K)
        u_e = _unit(eye[None, :, :] - s[:, None, :])  # (B, K candidates, K)
        deviation = ops.sum(ops.square(u_e - u_y[:, None, :]), axis=-1)  # (B, K)
        best = ops.argmax(deviation, axis=-1)
        target = ops.take(eye, best, axis=0)
        l1 = ops.sum(ops.abs(target - y), axis=-1, keepdims=True)
        alpha = ops.minimum(1.0, self.epsilon / ops.maximum(l1, _TINY))
        if self.preserve_argmax:
            top = ops.max(y, axis=-1, keepdims=True)
            p_best = ops.take_along_axis(y, best[:, None], axis=-1)
            is_top = ops.equal(ops.argmax(y, axis=-1)[:, None], best[:, None])
            gap = top - p_best
            # (1-a) top > (1-a) p_best + a  <=>  a < gap / (1 + gap); a hair below keeps it strict
            limit = ops.maximum(gap / (1.0 + gap) - 1e-4, 0.0)
            alpha = ops.where(is_top, alpha, ops.minimum(alpha, limit))
        return (1.0 - alpha) * y + alpha * target

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "victim": _wrapping.serialize_model(self.victim),
                "surrogate": _wrapping.serialize_model(self.surrogate), "epsilon": self.epsilon,
                "preserve_argmax": self.preserve_argmax}
