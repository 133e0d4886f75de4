"""APGP: Accuracy-Preserving Generative Perturbation (Cheng & Cheng, ICASSP 2023,
https://doi.org/10.1109/ICASSP49357.2023.10095296).

A generator ``G_theta`` maps the victim's prediction to a new score vector ``q``
that is as far as possible from it (KL by default) while keeping the order of the
classes. With ``z = log p`` and ``r = argsort(z)`` (ascending) the scores are built
rank by rank:

    q_{r_i} = G(z)_{r_i}                                   for unconstrained ranks
    q_{r_i} = max(G(z)_{r_i}, max_{j<i} q_{r_j} + B(delta_i)) for the constrained ranks

with ``B(delta) > 0`` a learnable margin. ``variant="all"`` constrains every rank
(the full order of ``p`` is kept), ``top_k=K`` only the ``K`` largest (their order,
and all of them above the rest). The answer is ``softmax(q)``, so the argmax never
changes and Defender Accuracy is exactly the victim's. The cumulative maximum is
computed in closed form: ``q_i = c_i + max_{j<=i}(g_j - c_j)`` with ``c_i`` the
running sum of margins, which is differentiable and loop-free.

Training maximises the mean distance ``d(softmax(q), p)`` over the victim's outputs
on the owner's data with a custom ``tf.function`` step (optionally under a
``tf.distribute`` strategy); :class:`APGP` is the trained Keras layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from tfmodelsec.defenses.output import ProbabilityDefense
from tfmodelsec.utils import check_choice, check_positive, progbar, resolve_strategy

__all__ = ["APGP", "APGPResult", "train_apgp", "DISTANCES", "distance"]

DISTANCES = ("kl", "reverse_kl", "l1", "l2", "cosine")
_TINY = 1e-7
# log-probabilities are floored here before entering the generator (float32 softmax
# outputs reach ~1e-38; the generator only needs the order and rough scale).
_LOG_FLOOR = -30.0


def distance(q, p, kind: str = "kl"):  # noqa: D401 - also aliased as _distance
    """Per-row distance between probability rows ``q`` (defended) and ``p`` (victim)."""
    qc, pc = ops.clip(q, _TINY, 1.0), ops.clip(p, _TINY, 1.0)
    if kind == "kl":  # KL(p || q): information the answer no longer carries about p
        return ops.sum(p * (ops.log(pc) - ops.log(qc)), axis=-1)
    if kind == "reverse_kl":
        return ops.sum(q * (ops.log(qc) - ops.log(pc)), axis=-1)
    if kind == "l1":
        return ops.sum(ops.abs(q - p), axis=-1)
    if kind == "l2":
        return ops.sqrt(ops.sum(ops.square(q - p), axis=-1) + _TINY)
    if kind == "cosine":
        dot = ops.sum(q * p, axis=-1)
        norms = ops.sqrt(ops.sum(q * q, axis=-1) * ops.sum(p * p, axis=-1))
        return 1.0 - dot / ops.maximum(norms, _TINY)
    raise ValueError(f"`distance` must be one of {list(DISTANCES)}. Received: distance={kind!r}")


_distance = distance


@keras.saving.register_keras_serializable(package="tfmodelsec")
class APGP(ProbabilityDefense):
    """The APGP perturbation layer: holds the generator ``theta`` and the margins ``delta``.

    Args:
        num_classes: classes of the victim (>= 2).
        top_k: ``None`` keeps the full order (APGP-all); ``K`` in [1, num_classes - 1]
            keeps the order of the top-K only (APGP-top1 for ``K=1``).
        hidden: widths of the generator's hidden layers.
        span: the generator's raw scores lie in ``[-span, span]`` (tanh-bounded), so
            ``softmax(q)`` never underflows to ties for moderate class counts.
        min_margin, max_margin: bounds of ``B(delta)`` (sigmoid-scaled between them).
        distance: the training objective's distance (recorded with the layer).
        seed: initialiser seed.

    Example:
        >>> result = train_apgp(victim, x_train, top_k=1, epochs=5)  # doctest: +SKIP
        >>> BlackBox(victim, defense=result.layer)(x)  # doctest: +SKIP
    """

    def __init__(self, num_classes: int, top_k: int | None = None, hidden=(64, 64), span: float = 10.0,
                 min_margin: float = 0.01, max_margin: float = 4.0, distance: str = "kl",
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_positive("num_classes", num_classes, integer=True)
        if num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes!r}")
        if top_k is not None:
            check_positive("top_k", top_k, integer=True)
            if top_k > num_classes - 1:
                raise ValueError(f"`top_k` must be in [1, {num_classes - 1}] (num_classes - 1 keeps the full "
                                 f"order) or None. Received: top_k={top_k!r}")
        hidden = [int(h) for h in hidden]
        for h in hidden:
            check_positive("hidden", h, integer=True)
        check_positive("span", span)
        check_positive("min_margin", min_margin)
        if not max_margin > min_margin:
            raise ValueError(f"`max_margin` must be > min_margin={min_margin}. Received: max_margin={max_margin!r}")
        self.num_classes = int(num_classes)
        self.top_k = None if top_k is None else int(top_k)
        self.hidden = tuple(hidden)
        self.span = float(span)
        self.min_margin = float(min_margin)
        self.max_margin = float(max_margin)
        self.distance = check_choice("distance", distance, DISTANCES)
        self.seed = seed
        init = keras.initializers.GlorotUniform(seed=seed)
        self.hidden_layers = [keras.layers.Dense(h, activation="relu", kernel_initializer=init, name=f"g{i}")
                              for i, h in enumerate(self.hidden)]
        self.score_layer = keras.layers.Dense(self.num_classes, kernel_initializer=init, name="g_out")
        constrained = self.num_classes - 1 if self.top_k is None else self.top_k
        # rank i (ascending) is constrained when it is among the `constrained` largest
        self._constrained = np.arange(self.num_classes) >= self.num_classes - constrained

    @property
    def variant(self) -> str:
        return "all" if self.top_k is None else f"top{self.top_k}"

    def build(self, input_shape):
        classes = input_shape[-1]
        if classes is not None and int(classes) != self.num_classes:
            raise ValueError(f"APGP was built for num_classes={self.num_classes} but received inputs with "
                             f"{classes} classes")
        width = self.num_classes
        for layer in self.hidden_layers:
            layer.build((None, width))
            width = layer.units
        self.score_layer.build((None, width))
        self.delta = self.add_weight(shape=(self.num_classes,), initializer="zeros", name="delta")

    def margins(self):
        """``B(delta)`` per ascending rank (0 for unconstrained ranks)."""
        b = self.min_margin + (self.max_margin - self.min_margin) * ops.sigmoid(self.delta)
        return b * ops.convert_to_tensor(self._constrained.astype("float32"))

    def scores(self, p):
        """The generator's raw scores ``G(z)`` for probabilities ``p``."""
        z = ops.log(ops.clip(p, 1e-30, 1.0))
        z = ops.maximum(z - ops.max(z, axis=-1, keepdims=True), _LOG_FLOOR) / (-_LOG_FLOOR)
        h = z
        for layer in self.hidden_layers:
            h = layer(h)
        return self.span * ops.tanh(self.score_layer(h))

    def perturb(self, p):
        if p.shape[-1] is not None and int(p.shape[-1]) != self.num_classes:
            raise ValueError(f"APGP was built for num_classes={self.num_classes} but received inputs with "
                             f"{p.shape[-1]} classes")
        g = self.scores(p)
        order = ops.argsort(p, axis=-1)  # ascending ranks r_1 .. r_M
        g_sorted = ops.take_along_axis(g, order, axis=-1)
        c = ops.cumsum(self.margins())  # running margin, 0 over unconstrained ranks
        shifted = g_sorted - c  # (B, M)
        tri = ops.convert_to_tensor(np.tril(np.ones((self.num_classes,) * 2, dtype=bool)))
        # cummax_{j<=i}(g_j - c_j) as a masked max over the lower triangle
        running = ops.max(ops.where(tri[None], shifted[:, None, :], -1e9), axis=-1)
        constrained = ops.convert_to_tensor(self._constrained)
        q_sorted = ops.where(constrained[None], c + running, g_sorted)
        inverse = ops.argsort(order, axis=-1)
        q = ops.take_along_axis(q_sorted, inverse, axis=-1)
        return ops.softmax(q, axis=-1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "top_k": self.top_k,
                "hidden": list(self.hidden), "span": self.span, "min_margin": self.min_margin,
                "max_margin": self.max_margin, "distance": self.distance, "seed": self.seed}


@dataclass
class APGPResult:
    """A trained APGP layer and how training went."""

    layer: APGP
    distance_before: float
    distance_after: float
    history: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"variant": self.layer.variant, "distance": self.layer.distance,
                "distance_before": self.distance_before, "distance_after": self.distance_after,
                "history": list(self.history), "seconds": round(self.seconds, 2)}


def _victim_probabilities(victim, x):
    from tfmodelsec.models.io import Victim, as_victim

    if x is None:
        p = np.asarray(victim, np.float32)
        if p.ndim != 2 or p.shape[1] < 2:
            raise ValueError(f"without `x`, the first argument must be victim probabilities (N, K). "
                             f"Received shape {p.shape}")
        from tfmodelsec.defenses.output import check_probabilities

        check_probabilities(p, name="probabilities")
        return p
    if not isinstance(victim, Victim):
        victim = as_victim(victim)
    x = np.asarray(x, np.float32)
    victim.check_input_shape(x.shape[1:], what="`x`")
    return victim.probabilities(x)


def mean_distance(layer: APGP, p, *, kind: str | None = None, batch_size: int = 4096) -> float:
    """Mean ``d(layer(p), p)`` over rows of ``p``."""
    kind = kind or layer.distance
    total = 0.0
    for i in range(0, len(p), batch_size):
        pb = ops.convert_to_tensor(p[i:i + batch_size])
        total += float(ops.sum(_distance(layer(pb), pb, kind)))
    return total / len(p)


def train_apgp(victim, x=None, *, top_k: int | None = None, distance: str = "kl", epochs: int = 10,
               batch_size: int = 256, learning_rate: float = 1e-3, hidden=(64, 64), seed: int = 0,
               strategy=None, verbose: int = 1, **layer_kwargs) -> APGPResult:
    """Train an APGP layer on the victim's outputs.

    Args:
        victim: a Victim / keras.Model (with ``x``), or victim probabilities (N, K) with ``x=None``.
        x: the owner's inputs whose predictions the generator learns to perturb.
        top_k: ``None`` for APGP-all, ``K`` for APGP-topK.
        distance: one of :data:`DISTANCES` (maximised).
        epochs, batch_size, learning_rate: Adam training settings.
        seed: seeds the generator's initialisation and the shuffling.
        strategy: a ``tf.distribute.Strategy`` (default: the current one).
        verbose: 0 silences the progress bar.

    Returns:
        :class:`APGPResult` with the layer and the mean distance before / after training.
    """
    import tensorflow as tf

    from tfmodelsec.utils import Timer

    check_positive("epochs", epochs, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("learning_rate", learning_rate)
    kind = check_choice("distance", distance, DISTANCES)
    p = _victim_probabilities(victim, x)
    strategy = resolve_strategy(strategy)
    with strategy.scope():
        layer = APGP(p.shape[1], top_k=top_k, hidden=hidden, distance=kind, seed=seed, **layer_kwargs)
        layer.build((None, p.shape[1]))
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(layer.trainable_variables)
    before = mean_distance(layer, p, kind=kind)
    global_batch = int(batch_size)

    def step(pb):
        with tf.GradientTape() as tape:
            d = _distance(layer(pb), pb, kind)
            loss = -tf.reduce_sum(d) / global_batch  # maximise the mean distance
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply_gradients(zip(grads, layer.trainable_variables))
        return tf.reduce_sum(d)

    @tf.function(reduce_retracing=True)
    def distributed_step(pb):
        per_replica = strategy.run(step, args=(pb,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    data = tf.data.Dataset.from_tensor_slices(p).shuffle(len(p), seed=seed, reshuffle_each_iteration=True)
    data = strategy.experimental_distribute_dataset(data.batch(global_batch, drop_remainder=len(p) > global_batch))
    history = []
    bar = progbar(epochs, verbose=verbose, unit_name="epoch")
    with Timer() as timer:
        for epoch in range(epochs):
            total, seen = 0.0, 0
            for pb in data:
                total += float(distributed_step(pb))
                seen += global_batch
            history.append(total / min(seen, len(p)))
            bar.update(epoch + 1, values=[("distance", history[-1])])
    after = mean_distance(layer, p, kind=kind)
    return APGPResult(layer, before, after, history, timer.seconds)
