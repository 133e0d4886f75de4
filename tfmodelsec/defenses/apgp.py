"""APGP: Accuracy-Preserving Generative Perturbation (Cheng & Cheng, ICASSP 2023,
https://doi.org/10.1109/ICASSP49357.2023.10095296).

A generator ``G_theta`` maps the victim's prediction to a new score vector ``q``
that is as far as possible from it (KL by default) while keeping the order of the
classes. With ``z = log p`` and ``r = argsort(z)`` (ascending) the scores are built
rank by rank:

    q_{r_i} = G(z)_{r_i}                                    for unconstrained ranks
    q_{r_i} = max(G(z)_{r_i}, q_{r_{i-1}} + B(delta_i))     for the constrained ranks

with ``B(delta) > 0`` a learnable margin. ``variant="all"`` constrains every rank
(the full order of ``p`` is kept), ``top_k=K`` only the ``K`` largest (their order,
and all of them above the rest). The answer is ``softmax(q)``, so the argmax never
changes and Defender Accuracy is exactly the victim's. The recursion is evaluated as
``q_i = c_i + max_{j<=i}(g_j - c_j)`` (``c_i`` the running sum of margins, the running
maximum a doubling scan): differentiable, loop-free, O(M log M) per row.

Where this departs from the slide (seed 001) and why:

* The slide writes APGP-all as ``q_{r_i} = max(G_{r_i}, G_{r_{i-1}} + B(delta))``: the
  previous rank's *raw* score ``G``, not its constrained score ``q``. That does not keep the
  order: for ``G = (5, 0, 0)`` (ascending ranks) it gives ``q = (5, 5 + B, B)``, and the top
  class drops below the second. The slide's top-K form, ``max_{j<i} G_{r_j} + B``, only
  gives ``q_{r_i} >= q_{r_{i-1}}`` (ties are possible). Here each rank is lifted above the
  previous rank's *final* score (the rank-by-rank running maximum), which is what the
  stated constraint ``q_{r_i} > q_{r_{i-1}}`` needs; it equals the slide's formula
  whenever the generator's raw scores are already in order.
* ``B(delta)`` is ``min_margin + (max_margin - min_margin) * sigmoid(delta)`` per rank instead
  of the slide's ``exp(delta)``: ``exp`` is unbounded above (margins, hence the span of
  ``q``, can grow until ``softmax(q)`` underflows to exact ties) and tends to 0 below
  (gaps smaller than float32 resolves). The bounded form keeps every gap inside what
  float32 can represent.

Float32 and many classes: ``softmax(q)`` is strictly ordered only if the smallest answer
stays a normal float32 number (``exp(-87.3)``; TensorFlow flushes subnormals to zero on
CPU) and every gap survives rounding. The total span of ``q`` is at most
``2 * span + sum(B)``, so :class:`APGP` scales ``span`` and the margins down together
whenever that bound plus ``log(num_classes)`` would exceed :data:`LOG_RANGE` (80 nats),
and keeps each constrained gap at least :data:`MIN_GAP` (1e-4; scores below 80 carry a
rounding error below 1e-5). With the default span (10) and margins (4) nothing is scaled up
to 15 classes for APGP-all, and the full order is kept for up to
:func:`max_ordered_classes` (about 336,000 classes with the default settings); beyond
that, asking for the full order (or for that many ranks with ``top_k``) raises
``ValueError`` instead of answering ties. The argmax is kept at any class count.

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

__all__ = ["APGP", "DISTANCES", "APGPResult", "distance", "max_ordered_classes", "train_apgp"]

DISTANCES = ("kl", "reverse_kl", "l1", "l2", "cosine")
_TINY = 1e-7
# log-probabilities are floored here before entering the generator (float32 softmax
# outputs reach ~1e-38; the generator only needs the order and rough scale).
_LOG_FLOOR = -30.0
#: Nats the answer may span: the smallest softmax output is at least
#: exp(-(span of q) - log(num_classes)); float32's smallest normal number is exp(-87.3)
#: (subnormals are flushed to zero on CPU), and 80 leaves room for rounding.
LOG_RANGE = 80.0
#: Smallest gap between consecutive constrained scores: scores up to LOG_RANGE carry an
#: absolute rounding error below 1e-5 (ulp(64) = 7.6e-6), so a 1e-4 gap still orders
#: q - max(q), its exp and the normalised answer strictly.
MIN_GAP = 1e-4


def _score_budget(num_classes: int, constrained: int, span: float, min_margin: float, max_margin: float):
    """``(span, min_margin, max_margin)`` scaled so that ``softmax(q)`` stays strictly ordered in float32.

    The span of ``q`` is at most ``2 * span + constrained * max_margin``; when that plus
    ``log(num_classes)`` exceeds :data:`LOG_RANGE`, span and the margin bounds shrink by the
    same factor (the lower margin bound to at most half the upper one).
    """
    budget = LOG_RANGE - float(np.log(num_classes))
    need = 2.0 * span + constrained * max_margin
    if need <= budget:
        return span, min_margin, max_margin
    scale = budget / need
    return span * scale, min(min_margin, 0.5 * max_margin * scale), max_margin * scale


def max_ordered_classes(top_k: int | None = None, *, span: float = 10.0, max_margin: float = 4.0) -> int:
    """The largest class count whose order :class:`APGP` can keep strictly in float32.

    ``top_k=None`` (APGP-all) constrains ``num_classes - 1`` ranks; ``top_k=K`` constrains
    ``K`` ranks, so any class count works while ``K`` itself fits.
    """
    def fits(m):
        constrained = m - 1 if top_k is None else min(int(top_k), m - 1)
        return _score_budget(m, constrained, span, MIN_GAP, max_margin)[1] >= MIN_GAP

    lo, hi = 2, 2
    while fits(hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 40:  # top_k small: every class count fits
            return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def distance(q, p, kind: str = "kl"):
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


def _running_max(x):
    """``max_{j<=i} x_j`` along the last axis of a (batch, M) tensor, by doubling shifts.

    Hillis-Steele scan: ``ceil(log2 M)`` element-wise maxima, exact and differentiable
    (``keras.ops.associative_scan`` gives the same values but builds a far larger graph).
    """
    shift = 1
    while shift < x.shape[-1]:
        pad = ops.full_like(x[:, :shift], -1e9)
        x = ops.maximum(x, ops.concatenate([pad, x[:, :-shift]], axis=-1))
        shift *= 2
    return x


@keras.saving.register_keras_serializable(package="tfmodelsec")
class APGP(ProbabilityDefense):
    """The APGP perturbation layer: holds the generator ``theta`` and the margins ``delta``.

    Args:
        num_classes: classes of the victim (>= 2).
        top_k: ``None`` keeps the full order (APGP-all); ``K`` in [1, num_classes - 1]
            keeps the order of the top-K only (APGP-top1 for ``K=1``).
        hidden: widths of the generator's hidden layers.
        span: the generator's raw scores lie in ``[-span, span]`` (tanh-bounded).
        min_margin, max_margin: bounds of ``B(delta)`` (sigmoid-scaled between them).
            ``span`` and the margins are scaled down for many classes (see the module
            docstring); the values in use are ``effective_span`` / ``effective_margins``.
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
        if min_margin < MIN_GAP:
            raise ValueError(f"`min_margin` must be >= {MIN_GAP:g} (smaller gaps are lost to float32 rounding). "
                             f"Received: min_margin={min_margin!r}")
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
        self.effective_span, lo, hi = _score_budget(self.num_classes, constrained, self.span, self.min_margin,
                                                    self.max_margin)
        self.effective_margins = (lo, hi)
        if lo < MIN_GAP:
            what = "the full order" if self.top_k is None else f"the order of the top {self.top_k}"
            raise ValueError(
                f"APGP cannot keep {what} of num_classes={self.num_classes} strictly in float32: the gaps "
                f"would shrink to {lo:.2g} < {MIN_GAP:g} to keep the answer's span within {LOG_RANGE:g} nats. "
                f"Expected num_classes <= {max_ordered_classes(self.top_k, span=self.span, max_margin=self.max_margin)}"
                " for these settings, or a smaller top_k")

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
        lo, hi = self.effective_margins
        b = lo + (hi - lo) * ops.sigmoid(self.delta)
        return b * ops.convert_to_tensor(self._constrained.astype("float32"))

    def scores(self, p):
        """The generator's raw scores ``G(z)`` for probabilities ``p``."""
        z = ops.log(ops.clip(p, 1e-30, 1.0))
        z = ops.maximum(z - ops.max(z, axis=-1, keepdims=True), _LOG_FLOOR) / (-_LOG_FLOOR)
        h = z
        for layer in self.hidden_layers:
            h = layer(h)
        return self.effective_span * ops.tanh(self.score_layer(h))

    def perturb(self, p):
        if p.shape[-1] is not None and int(p.shape[-1]) != self.num_classes:
            raise ValueError(f"APGP was built for num_classes={self.num_classes} but received inputs with "
                             f"{p.shape[-1]} classes")
        g = self.scores(p)
        order = ops.argsort(p, axis=-1)  # ascending ranks r_1 .. r_M
        g_sorted = ops.take_along_axis(g, order, axis=-1)
        c = ops.cumsum(self.margins())  # running margin, 0 over unconstrained ranks
        # cummax_{j<=i}(g_j - c_j): q_i = max(g_i, q_{i-1} + B_i) unrolled
        running = _running_max(g_sorted - c)
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
        optimizer.apply_gradients(zip(grads, layer.trainable_variables, strict=True))
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
