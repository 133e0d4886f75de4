"""Output-perturbation defenses: Keras layers from probabilities to probabilities.

Each layer sits after the victim's softmax and changes what an outside caller sees,
so the same object runs in evaluation, in ``BlackBox(defense=...)`` and in an
exported graph. All use ``keras.ops`` only; randomness comes from a
``keras.random.SeedGenerator``; each is registered for (safe) saving and loading.

References:
    Lee et al., "Defending Against NN Model Stealing Attacks Using Deceptive
    Perturbations", IEEE S&P Workshops 2019 (reverse sigmoid); Gaussian noise on
    posteriors as in the seed's history (Lee et al. 2018); Tramer et al., "Stealing
    Machine Learning Models via Prediction APIs", USENIX Security 2016 (rounding,
    labels only); Orekondy et al. 2020 (MAD) lives in :mod:`tfmodelsec.defenses.mad`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tfmodelsec.utils import check_nonnegative, check_positive

__all__ = [
    "GaussianNoise",
    "HardLabel",
    "ProbabilityDefense",
    "ReverseSigmoid",
    "Rounding",
    "TopK",
    "check_probabilities",
    "renormalize",
]

# Rows are never divided by an exact 0.
_TINY = 1e-7
# float32's smallest normal number and largest number below 1: the reverse sigmoid's log-odds
# are computed on p clipped to [_FLOAT32_MIN, _BELOW_ONE] (a no-op for every normal float32 in
# (0, 1); CPU kernels flush subnormals to 0 anyway) so that exact 0 and 1 never reach log() and
# their gradients stay finite; exact 0 and 1 then take the formula's limits (logit = -inf / +inf).
_FLOAT32_MIN = float(np.finfo(np.float32).tiny)
_BELOW_ONE = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
# Eager inputs whose rows miss 1 by more than this are not probabilities (logits).
_SUM_TOLERANCE = 1e-3


def check_probabilities(inputs, *, name: str = "inputs") -> None:
    """Raise ``ValueError`` when a concrete batch is not rows of probabilities.

    Symbolic tensors (inside a ``tf.function`` or a functional model) are not
    checked; eager calls are, so a layer fed logits fails loudly in plain use.
    """
    if not hasattr(inputs, "numpy") and not isinstance(inputs, np.ndarray):
        return
    arr = np.asarray(inputs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[-1] < 2:
        raise ValueError(f"`{name}` must be probabilities of shape (batch, classes >= 2). "
                         f"Received shape {arr.shape}")
    if arr.size == 0:
        return
    sums = arr.sum(axis=1)
    if arr.min() < -_TINY or arr.max() > 1 + _TINY or np.abs(sums - 1).max() > _SUM_TOLERANCE:
        raise ValueError(
            f"`{name}` must be probabilities (each row >= 0, summing to 1); these look like logits: "
            f"values in [{arr.min():.3g}, {arr.max():.3g}], row sums in [{sums.min():.3g}, {sums.max():.3g}]. "
            "Apply a softmax first (Victim.probability_model does)"
        )


def renormalize(q):
    """Scale each row of a non-negative ``q`` to sum to 1 (uniform where a row is all 0)."""
    q = ops.maximum(q, 0.0)
    total = ops.sum(q, axis=-1, keepdims=True)
    uniform = ops.ones_like(q) / ops.cast(ops.shape(q)[-1], q.dtype)
    return ops.where(total > 0, q / ops.maximum(total, _TINY), uniform)


class ProbabilityDefense(keras.layers.Layer):
    """Base of the output defenses: probabilities ``(batch, K)`` in, probabilities out.

    ``operates_on = "probabilities"`` tells :func:`tfmodelsec.oracle.defended_forward`
    to call the layer on the victim's probabilities (APMSA and MAD say ``"inputs"``).
    """

    operates_on = "probabilities"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = False

    def build(self, input_shape):
        # remembered so save_defense knows the input width of a stand-alone layer
        self.built_classes = None if input_shape[-1] is None else int(input_shape[-1])

    def call(self, inputs, training=None):
        check_probabilities(inputs)
        return self.perturb(ops.convert_to_tensor(inputs, dtype="float32"))

    def perturb(self, p):  # pragma: no cover - every subclass overrides it
        raise TypeError(f"{type(self).__name__} is a ProbabilityDefense and must define perturb(p)")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tfmodelsec")
class GaussianNoise(ProbabilityDefense):
    """Add N(0, stddev^2) noise to each probability, clip at 0, renormalise.

    Unlike ``keras.layers.GaussianNoise`` this is active at inference: it is a
    defense, not a regulariser.

    Args:
        stddev: standard deviation of the noise (> 0).
        seed: seed of the layer's ``SeedGenerator``.

    Example:
        >>> GaussianNoise(0.05, seed=0)(np.array([[0.7, 0.2, 0.1]], "float32"))  # doctest: +SKIP
    """

    def __init__(self, stddev: float = 0.1, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_positive("stddev", stddev)
        self.stddev = float(stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def perturb(self, p):
        noise = keras.random.normal(ops.shape(p), stddev=self.stddev, seed=self.seed_generator, dtype=p.dtype)
        return renormalize(p + noise)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfmodelsec")
class ReverseSigmoid(ProbabilityDefense):
    """Reverse sigmoid perturbation (Lee et al. 2019).

    ``r(p) = beta * (sigmoid(gamma * logit(p)) - 1/2)`` is subtracted from ``p`` and
    the result renormalised: confident answers are flattened in a way that makes
    the cross-entropy gradient of a student point the wrong way.

    ``logit(p) = log(p) - log1p(-p)`` is computed without clipping ``p`` away from 0 and 1
    (float32 holds it for any ``p >= 1.2e-38``; a confident victim's wrong classes sit far
    below 1e-7, where a clip would change ``r`` by up to ``beta * 1e-3``); ``p = 0`` and
    ``p = 1`` give the formula's limits ``r = -beta/2`` and ``r = beta/2`` (float32 subnormals,
    below 1.2e-38, count as 0: TensorFlow's CPU kernels flush them).

    Args:
        beta: perturbation magnitude (> 0).
        gamma: convergence / sharpness of the sigmoid (> 0).
    """

    def __init__(self, beta: float = 0.7, gamma: float = 0.4, **kwargs):
        super().__init__(**kwargs)
        check_positive("beta", beta)
        check_positive("gamma", gamma)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def perturb(self, p):
        safe = ops.clip(p, _FLOAT32_MIN, _BELOW_ONE)
        finite = ops.log(safe) - ops.log1p(-safe)
        log_odds = ops.where(p <= 0.0, -np.inf, ops.where(p >= 1.0, np.inf, finite))
        r = self.beta * (ops.sigmoid(self.gamma * log_odds) - 0.5)
        return renormalize(p - r)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="tfmodelsec")
class Rounding(ProbabilityDefense):
    """Round each probability to ``decimals`` decimals (Tramer et al. 2016), then rescale to sum 1.

    A row rounded to all zeros (possible for ``decimals=0``) answers the one-hot argmax.

    Args:
        decimals: decimals kept (integer >= 0).
    """

    def __init__(self, decimals: int = 1, **kwargs):
        super().__init__(**kwargs)
        check_nonnegative("decimals", decimals)
        if not float(decimals).is_integer():
            raise ValueError(f"`decimals` must be an integer >= 0. Received: decimals={decimals!r}")
        self.decimals = int(decimals)

    def perturb(self, p):
        scale = 10.0 ** self.decimals
        rounded = ops.round(p * scale) / scale
        onehot = ops.one_hot(ops.argmax(p, axis=-1), ops.shape(p)[-1], dtype=p.dtype)
        total = ops.sum(rounded, axis=-1, keepdims=True)
        return ops.where(total > 0, rounded / ops.maximum(total, _TINY), onehot)

    def get_config(self):
        return {**super().get_config(), "decimals": self.decimals}


@keras.saving.register_keras_serializable(package="tfmodelsec")
class TopK(ProbabilityDefense):
    """Answer only the ``k`` largest probabilities (others 0), renormalised to sum 1.

    Args:
        k: classes kept (integer >= 1; at most the number of classes when called).
        renormalize: rescale the kept entries to sum 1 (default) or leave them as they are.
    """

    def __init__(self, k: int = 1, renormalize: bool = True, **kwargs):
        super().__init__(**kwargs)
        check_positive("k", k, integer=True)
        self.k = int(k)
        self.renormalize = bool(renormalize)

    def build(self, input_shape):
        super().build(input_shape)
        classes = input_shape[-1]
        if classes is not None and self.k > classes:
            raise ValueError(f"`k` must be <= the number of classes ({classes}). Received: k={self.k}")

    def perturb(self, p):
        values, _ = ops.top_k(p, k=self.k)
        kth = values[:, -1:]
        # ties at the k-th value may keep a few more than k entries; the order is intact
        kept = ops.where(p >= kth, p, ops.zeros_like(p))
        return renormalize(kept) if self.renormalize else kept

    def get_config(self):
        return {**super().get_config(), "k": self.k, "renormalize": self.renormalize}


@keras.saving.register_keras_serializable(package="tfmodelsec")
class HardLabel(ProbabilityDefense):
    """Answer the one-hot top label only (no confidence leaves the model)."""

    def perturb(self, p):
        return ops.one_hot(ops.argmax(p, axis=-1), ops.shape(p)[-1], dtype=p.dtype)
