"""TV-regularised model inversion of every class at once (white-box).

For each class ``c`` find ``x`` minimising ``loss(victim(x), c) + tv_weight * TV(x) +
l2_weight * mean(x^2)`` with ``x`` kept inside the victim's input range. All classes
are one batch optimised by Adam inside one compiled ``tf.while_loop``; a per-class
mask freezes a class once it converged (its image stopped moving, or its confidence
reached ``stop_confidence``).

Data-free image priors used (no training data is seen):
    * total variation (the seed lab's ``l_TV``) and an L2 decay pulling pixels to the
      range's low end (Mahendran & Vedaldi 2015);
    * jitter: the victim sees the image rolled by a random shift of up to ``jitter``
      pixels each step, so features must hold under translation (Mordvintsev et al. 2015);
    * Gaussian blur of the image every ``blur_every`` steps (Yosinski et al. 2015);
    * multi-resolution: optimise a coarse image first, then upsample and refine
      (``scales``, "octaves" in Mordvintsev et al. 2015);
    * input noise: the victim sees the image plus Gaussian noise (``noise`` x the input
      range), annealed to 0 over the first ``noise_anneal`` of each stage's steps, so the
      features found must survive perturbation (expectation over transformation, Athalye
      et al. 2018) rather than be a fragile, adversarial pattern.

The schedule adapts to the victim rather than to the dataset: at full resolution each
class's data term is weighted by a factor that grows x1.04 per step while the victim's
confidence in that class is below ``confidence_target`` and shrinks back towards 1
above it (a multiplier on the confidence constraint). Victims that the priors let reach
the target anyway (MNIST LeNet-5) are barely changed; harder ones (Fashion-MNIST LeNet-5:
least confident class 0.93 before) reach >= 0.99, without a per-dataset setting.

Limit (issue 16, defect 9; ``benchmarks/inversion.py --datasets``): on the Fashion-MNIST
LeNet-5 these priors make images the victim is sure of, but only about 7 of 10 are nearest
their own class mean (mean Pearson ~0.47, against ~10/10 and ~0.65 on MNIST): the victim's
evidence for trousers, coats or sandals is local texture, not the garment's silhouette.
Stronger input noise with a cross-entropy loss and a grey start (``loss="ce", init="mean",
noise=1.0, noise_anneal=1.0``) raised Pearson to ~0.61-0.63 there but stayed at 6-8/10 and cost
MNIST its 10/10 (8-9/10) and confidence 0.99 (0.985), so it is not the default.

References:
    Fredrikson et al., "Model Inversion Attacks that Exploit Confidence Information", CCS 2015.
    Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them", CVPR 2015.
    Yosinski et al., "Understanding Neural Networks Through Deep Visualization", ICML DL workshop 2015.
"""

from __future__ import annotations

import enum
import weakref
from dataclasses import asdict, dataclass, field

import numpy as np

from tfmodelsec.attacks._whitebox import check_classes, scores_fn, unit_view
from tfmodelsec.utils import Timer, check_choice, check_nonnegative, check_positive

__all__ = [
    "Init",
    "InversionConfig",
    "InversionResult",
    "Loss",
    "SweepResult",
    "invert",
    "tv_sweep",
]


class Loss(str, enum.Enum):
    CE = "ce"  # -log p_c
    LOGIT = "logit"  # -(z_c - mean_j z_j): does not saturate once p_c ~ 1
    MSE = "mse"  # ||p - onehot(c)||^2


class Init(str, enum.Enum):
    ZEROS = "zeros"  # the low end of the input range (black for images in [0, 1])
    UNIFORM = "uniform"  # uniform over the whole range
    NOISE = "noise"  # faint noise near the low end
    MEAN = "mean"  # the middle of the range (a flat grey image)


# Faint-noise init: 30% of the range keeps starts distinct without drowning the prior.
_NOISE_SCALE = 0.3
_GAUSS_RADIUS = 2
# Default jitter: a tenth of the image side (3 px on 28x28 MNIST, 1 px on 8x8 digits).
_AUTO_JITTER_FRACTION = 0.1
# Coarse stages smaller than this lose the digit's shape; they are skipped.
_MIN_STAGE_SIDE = 8
# Per-step growth of a class's data weight while its confidence is below the target:
# x1.04 per step (x50 within 100 steps) lifts the Fashion-MNIST LeNet-5's least confident
# class from 0.93 (fixed weight) to >= 0.993 (seeds 0, 1); x1.01 left it at 0.980. MNIST's
# LeNet-5 reaches the target without it and keeps 10/10 nearest-mean, Pearson 0.63-0.66.
_WEIGHT_GROWTH = 1.04
_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class InversionConfig:
    """Settings of :func:`invert` (validated on construction).

    Defaults were tuned on LeNet-5 / MNIST (benchmarks/inversion.py) without using data
    inside the optimisation.
    """

    tv_weight: float = 1.0
    l2_weight: float = 3.0
    loss: str = "logit"
    init: str = "noise"
    steps: int = 600
    lr: float = 0.05
    jitter: int | None = None
    blur_sigma: float = 0.7
    blur_every: int = 1
    scales: tuple = (0.5, 1.0)
    tol: float = 1e-5
    stop_confidence: float | None = None
    noise: float = 0.3
    noise_anneal: float = 0.7
    confidence_target: float | None = 0.995

    def __post_init__(self):
        check_nonnegative("tv_weight", self.tv_weight)
        check_nonnegative("l2_weight", self.l2_weight)
        object.__setattr__(self, "loss", check_choice("loss", self.loss, [m.value for m in Loss]))
        object.__setattr__(self, "init", check_choice("init", self.init, [m.value for m in Init]))
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)
        if self.jitter is not None:
            check_nonnegative("jitter", self.jitter)
        if self.jitter is not None and int(self.jitter) != self.jitter:
            raise ValueError(f"`jitter` must be an integer >= 0. Received: jitter={self.jitter!r}")
        check_nonnegative("blur_sigma", self.blur_sigma)
        check_nonnegative("blur_every", self.blur_every)
        check_nonnegative("tol", self.tol)
        scales = tuple(float(s) for s in np.atleast_1d(self.scales))
        if not scales or any(not 0 < s <= 1 for s in scales) or list(scales) != sorted(scales):
            raise ValueError(f"`scales` must be increasing fractions in (0, 1]. Received: scales={self.scales!r}")
        object.__setattr__(self, "scales", scales)
        if self.stop_confidence is not None and not 0 < self.stop_confidence <= 1:
            raise ValueError(f"`stop_confidence` must be in (0, 1] or None. Received: "
                             f"stop_confidence={self.stop_confidence!r}")
        check_nonnegative("noise", self.noise)
        if not 0 < self.noise_anneal <= 1:
            raise ValueError(f"`noise_anneal` must be in (0, 1]. Received: noise_anneal={self.noise_anneal!r}")
        if self.confidence_target is not None and not 0 < self.confidence_target < 1:
            raise ValueError(f"`confidence_target` must be in (0, 1) or None. Received: "
                             f"confidence_target={self.confidence_target!r}")


@dataclass
class InversionResult:
    """Inverted images and what the victim says about them.

    Attributes:
        images: the victim's inputs ``(N, *input_shape)``, float32 inside its input range (or the
            search bounds); :meth:`shown` reshapes them to ``image_shape`` for a flat victim.
        labels: the target class of each image.
        confidence: the victim's probability of the target class.
        predicted: the victim's predicted class.
        steps_taken: optimisation steps each class ran before its mask stopped it.
        tv: total variation of each image (the seed's normalised ``l_TV``), measured in the unit
            range (images mapped onto [0, 1]); 0 for feature vectors.
        image_shape: the shape the images are shown at (``None``: feature vectors).
        value_range: ``(low, high)`` of the search (the victim's range or the given bounds).
    """

    images: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    predicted: np.ndarray
    steps_taken: np.ndarray
    tv: np.ndarray
    config: InversionConfig
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    image_shape: tuple | None = None
    value_range: tuple = (0.0, 1.0)

    def shown(self) -> np.ndarray:
        """The images at ``image_shape`` (the victim's inputs as they are for feature vectors)."""
        return self.images if self.image_shape is None else self.images.reshape(len(self.images), *self.image_shape)

    def evaluate(self, class_means=None, *, independent=None) -> dict:
        """Add recognisability metrics (see :func:`tfmodelsec.metrics.inversion_metrics`).

        ``class_means`` may have the victim's input shape or the shown one.
        """
        from tfmodelsec.metrics import inversion_metrics

        shown = self.shown()
        if class_means is not None:
            class_means = np.asarray(class_means, np.float32).reshape(-1, *shown.shape[1:])
        self.metrics = inversion_metrics(shown, self.labels, confidence=self.confidence,
                                         class_means=class_means, independent=independent,
                                         max_val=float(self.value_range[1] - self.value_range[0]))
        return self.metrics

    def to_dict(self) -> dict:
        per_class = [
            {"class": int(c), "confidence": float(p), "predicted": int(k), "steps": int(s), "tv": float(t)}
            for c, p, k, s, t in zip(self.labels, self.confidence, self.predicted, self.steps_taken, self.tv,
                                     strict=True)
        ]
        # no per-class metrics before evaluate(): nothing to add then
        for row, extra in zip(per_class, self.metrics.get("per_class", []), strict=False):
            row.update({k: v for k, v in extra.items() if k != "class"})
        summary = {k: v for k, v in self.metrics.items() if k != "per_class"}
        return {"config": {**asdict(self.config), "scales": list(self.config.scales)},
                "seconds": round(self.seconds, 3), "min_confidence": float(np.min(self.confidence)),
                "success_rate": float(np.mean(self.predicted == self.labels)), **summary,
                "per_class": per_class}

    def plot(self, title: str | None = None):
        from tfmodelsec import plotting

        titles = [f"{c}: {p:.2f}" for c, p in zip(self.labels, self.confidence, strict=True)]
        if self.image_shape is None:
            return plotting.vector_rows(self.images, labels=titles, suptitle=title)
        return plotting.image_grid(_to_unit(self.shown()), titles=titles, suptitle=title)


def _to_unit(images):
    lo, hi = float(np.min(images, initial=0.0)), float(np.max(images, initial=1.0))
    return (images - lo) / max(hi - lo, 1e-12)


def _gaussian_kernel(sigma: float, channels: int):
    import tensorflow as tf

    r = np.arange(-_GAUSS_RADIUS, _GAUSS_RADIUS + 1, dtype=np.float64)
    k = np.exp(-(r**2) / (2 * max(sigma, 1e-6) ** 2))
    k2 = np.outer(k, k) / np.outer(k, k).sum()
    return tf.constant(np.tile(k2[:, :, None, None], (1, 1, channels, 1)).astype(np.float32))


def _total_variation(x):
    import tensorflow as tf

    dh = x[:, 1:, :, :] - x[:, :-1, :, :]
    dw = x[:, :, 1:, :] - x[:, :, :-1, :]
    size = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    return (tf.reduce_sum(tf.square(dh), [1, 2, 3]) + tf.reduce_sum(tf.square(dw), [1, 2, 3])) / size


def _inversion_loop(victim, loss: str, jitter: int, blur: bool, noisy: bool):
    """Compiled Adam loop over one resolution; numeric settings are tensors (no retrace per λ)."""
    import tensorflow as tf

    scores = scores_fn(victim)
    full_hw = list(victim.input_shape[:2])

    def run(x, active, steps_taken, y, tv_w, l2_w, lr, steps, lo, hi, kernel, blur_every, tol, stop_conf, seed,
            noise, noise_steps, conf_target, growth):
        onehot = tf.one_hot(y, victim.num_classes)

        def image(z):
            return z if z.shape[1] == full_hw[0] and z.shape[2] == full_hw[1] else \
                tf.image.resize(z, full_hw, "bilinear")

        def body(i, x, m, v, active, steps_taken, data_w):
            with tf.GradientTape() as tape:
                tape.watch(x)
                img = image(x)
                seen = img
                if jitter:  # a Python int: one trace per setting
                    shift = tf.random.stateless_uniform([2], tf.stack([seed, i]), -jitter, jitter + 1, tf.int32)
                    seen = tf.roll(img, shift, [1, 2])
                if noisy:  # a Python bool: one trace per setting
                    amp = noise * tf.maximum(0.0, 1.0 - tf.cast(i, tf.float32) / noise_steps)
                    seen = seen + amp * (hi - lo) * tf.random.stateless_normal(tf.shape(seen), tf.stack([seed, -1 - i]))
                logp, prob = scores(seen)
                if loss == "ce":
                    data_loss = -tf.reduce_sum(onehot * logp, 1)
                elif loss == "logit":  # log p_c - mean_j log p_j = z_c - mean_j z_j
                    data_loss = -(tf.reduce_sum(onehot * logp, 1) - tf.reduce_mean(logp, 1))
                else:
                    data_loss = tf.reduce_sum(tf.square(prob - onehot), 1)
                total = tf.reduce_sum(data_w * data_loss + tv_w * _total_variation(img)
                                      + l2_w * tf.reduce_mean(tf.square(img - lo), [1, 2, 3]))
            g = tape.gradient(total, x)
            t = tf.cast(i + 1, tf.float32)
            m2 = _ADAM_B1 * m + (1 - _ADAM_B1) * g
            v2 = _ADAM_B2 * v + (1 - _ADAM_B2) * tf.square(g)
            step = lr * (m2 / (1 - _ADAM_B1**t)) / (tf.sqrt(v2 / (1 - _ADAM_B2**t)) + _ADAM_EPS)
            x2 = tf.clip_by_value(x - step, lo, hi)
            if blur:
                x2 = tf.cond(tf.equal(tf.math.floormod(i, blur_every), 0),
                             lambda: tf.nn.depthwise_conv2d(x2, kernel, [1, 1, 1, 1], "SAME"), lambda: x2)
            keep = tf.reshape(active, [-1, 1, 1, 1])
            moved = tf.reduce_max(tf.abs(x2 - x), [1, 2, 3])
            x2, m2, v2 = (tf.where(keep, a, b) for a, b in ((x2, x), (m2, m), (v2, v)))
            steps_taken = steps_taken + tf.cast(active, tf.int32)
            # a class converged when its image stops moving, or reached stop_conf
            done = moved < tol
            conf = tf.reduce_sum(scores(image(x2))[1] * onehot, 1)
            done = tf.logical_or(done, conf >= stop_conf)
            # the multiplier on the confidence constraint: up while below the target, back towards 1 above it
            data_w = tf.where(conf < conf_target, data_w * growth, tf.maximum(1.0, data_w / growth))
            return i + 1, x2, m2, v2, tf.logical_and(active, tf.logical_not(done)), steps_taken, data_w

        zeros = tf.zeros_like(x)
        _, x, _, _, active, steps_taken, _ = tf.while_loop(
            lambda i, x, m, v, active, s, w: tf.logical_and(i < steps, tf.reduce_any(active)),
            body, (tf.constant(0), x, zeros, zeros, active, steps_taken, tf.ones([tf.shape(x)[0]])))
        return x, active, steps_taken

    return tf.function(run, reduce_retracing=True)


def _schedule(config: InversionConfig, steps: int, *, last: bool):
    """Stage tensors: noise amplitude, steps it anneals over, confidence target, data-weight growth.

    The data weight grows in the full-resolution stage only: coarse stages shape the image
    under the priors, and a victim that reaches the target there keeps its weight at 1.
    """
    import tensorflow as tf

    target = 2.0 if config.confidence_target is None else float(config.confidence_target)
    return (tf.constant(float(config.noise)), tf.constant(max(1.0, config.noise_anneal * steps)), tf.constant(target),
            tf.constant(_WEIGHT_GROWTH if last and config.confidence_target is not None else 1.0))


def _compiled(victim, key):
    per = _COMPILED.setdefault(victim.model, {})
    if key not in per:
        per[key] = _inversion_loop(victim, *key)
    return per[key]


def _initial(init: str, n: int, shape, lo: float, hi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if init == "zeros":
        return np.full((n, *shape), lo, np.float32)
    if init == "mean":
        return np.full((n, *shape), (lo + hi) / 2, np.float32)
    scale = 1.0 if init == "uniform" else _NOISE_SCALE
    return (lo + scale * (hi - lo) * rng.random((n, *shape))).astype(np.float32)


def invert(victim, *, classes=None, config: InversionConfig | None = None, seed: int = 0, verbose: int = 1,
           bounds=None, image_shape=None, **options) -> InversionResult:
    """Invert the victim: one image per class, all classes optimised as one batch.

    The search runs in the unit space of :func:`~tfmodelsec.attacks._whitebox.unit_view`, so
    a victim taking 0..255 pixels (a ``Rescaling`` layer) or a flat ``Input(784)`` is
    inverted as the image it sees; feature-vector victims go to
    :func:`~tfmodelsec.attacks.inversion_vectors.invert_vectors` (no image priors).

    Args:
        victim: a :class:`~tfmodelsec.Victim`, ``keras.Model`` or path.
        classes: class indices to invert (default: all classes).
        config: an :class:`InversionConfig`; or pass its fields as keywords, e.g.
            ``tv_weight=1.0, l2_weight=3.0, loss="logit", init="noise", steps=600, lr=0.05``,
            ``noise=0.3`` (0 disables the input noise), ``confidence_target=0.995`` (``None``
            keeps the data weight fixed).
        seed: seeds the initial images and the jitter (same seed, same images).
        verbose: 1 prints one line per resolution stage, 0 is quiet.
        bounds: ``(low, high)`` to search within (scalars or arrays of one input); default the
            victim's input range. Needed for an unbounded victim (see
            :func:`tfmodelsec.models.input_bounds`).
        image_shape: the image shape of a flat victim's input (default ``victim.image_shape``,
            set by :func:`~tfmodelsec.models.align_data`); ``None`` there: feature vectors.

    Returns:
        An :class:`InversionResult`; call ``.evaluate(class_means, independent=...)`` for
        recognisability metrics.

    Raises:
        ValueError: class out of range, negative weights, ``steps <= 0``, an unbounded victim
            without ``bounds``.

    Example:
        >>> result = invert("saved_models/lenet5_mnist.h5", tv_weight=1.0, steps=600)  # doctest: +SKIP
        >>> result.confidence.min() > 0.99  # doctest: +SKIP
        True
    """
    import tensorflow as tf

    if config is None:
        config = InversionConfig(**options)
    elif options:
        config = InversionConfig(**{**asdict(config), **options})
    from tfmodelsec.models.io import as_victim

    original = as_victim(victim)
    victim, to_input = unit_view(original, bounds=bounds, image_shape=image_shape)
    labels = check_classes("classes", classes, victim.num_classes)
    span = (float(to_input(np.zeros((1, *victim.input_shape))).min()),
            float(to_input(np.ones((1, *victim.input_shape))).max()))
    if len(victim.input_shape) != 3:
        return _invert_vectors(victim, to_input, labels, config, seed, span)
    lo, hi = (float(v) for v in victim.input_range)  # the unit view's [0, 1]
    h, w, c = victim.input_shape
    n = len(labels)
    jitter = round(_AUTO_JITTER_FRACTION * min(h, w)) if config.jitter is None else int(config.jitter)
    loop = _compiled(victim, (config.loss, jitter, config.blur_every > 0 and config.blur_sigma > 0, config.noise > 0))
    kernel = _gaussian_kernel(config.blur_sigma, c)
    sizes = [(round(h * s), round(w * s)) for s in config.scales]
    sizes = [sz for sz in sizes if min(sz) >= min(_MIN_STAGE_SIDE, h, w)] or [(h, w)]
    stages = len(sizes)
    per_stage = [config.steps // stages + (1 if k < config.steps % stages else 0) for k in range(stages)]
    x = tf.constant(_initial(config.init, n, (*sizes[0], c), lo, hi, seed))
    active = tf.ones([n], tf.bool)
    steps_taken = tf.zeros([n], tf.int32)
    stop_conf = 2.0 if config.stop_confidence is None else float(config.stop_confidence)
    with Timer() as timer:
        for k, (size, steps) in enumerate(zip(sizes, per_stage, strict=True)):
            if k > 0:
                x = tf.image.resize(x, size, "bilinear")
            if steps == 0:
                continue
            x, active, steps_taken = loop(
                x, active, steps_taken, tf.constant(labels), tf.constant(float(config.tv_weight)),
                tf.constant(float(config.l2_weight)), tf.constant(float(config.lr)), tf.constant(steps),
                tf.constant(lo), tf.constant(hi), kernel, tf.constant(max(int(config.blur_every), 1)),
                tf.constant(float(config.tol)), tf.constant(stop_conf), tf.constant(int(seed) * 1000 + k),
                *_schedule(config, steps, last=k == stages - 1))
            if verbose:
                still = int(tf.reduce_sum(tf.cast(active, tf.int32)))
                print(f"[invert] stage {k + 1}/{stages} {size[0]}x{size[1]}: {still} of {n} classes still active",
                      flush=True)
        images = x if tuple(x.shape[1:3]) == (h, w) else tf.image.resize(x, [h, w], "bilinear")
        images = np.clip(images.numpy(), lo, hi).astype(np.float32)
    probs = victim.probabilities(images)
    return InversionResult(to_input(images), labels, probs[np.arange(n), labels].astype(np.float32),
                           probs.argmax(1), steps_taken.numpy(), _total_variation(tf.constant(images)).numpy(),
                           config, timer.seconds, image_shape=tuple(victim.input_shape), value_range=span)


def _invert_vectors(view, to_input, labels, config, seed, span) -> InversionResult:
    from tfmodelsec.attacks.inversion_vectors import invert_vectors

    with Timer() as timer:
        u, steps_taken = invert_vectors(view, labels, config, seed=seed)
    probs = view.probabilities(u)
    n = len(labels)
    return InversionResult(to_input(u), labels, probs[np.arange(n), labels].astype(np.float32), probs.argmax(1),
                           steps_taken, np.zeros(n, np.float32), config, timer.seconds, value_range=span)


@dataclass
class SweepResult:
    """A λ sweep: one :class:`InversionResult` per TV weight."""

    tv_weights: list
    results: list

    def to_dict(self) -> dict:
        rows = []
        for lam, r in zip(self.tv_weights, self.results, strict=True):
            d = r.to_dict()
            rows.append({"tv_weight": lam, **{k: v for k, v in d.items() if k not in ("per_class", "config")}})
        return {"tv_weights": list(self.tv_weights), "trade_off": rows}

    def plot(self):
        """A grid: one column per class, one row per λ."""
        from tfmodelsec import plotting

        if self.results[0].image_shape is None:  # feature vectors: one heat-map row per class and λ
            labels = [f"λ={lam:g} {c}" for lam, r in zip(self.tv_weights, self.results, strict=True) for c in r.labels]
            return plotting.vector_rows(np.concatenate([r.images for r in self.results]), labels=labels,
                                        suptitle="model inversion: one row per class and λ")
        images = np.concatenate([_to_unit(r.shown()) for r in self.results])
        titles = [str(c) if i < len(self.results[0].labels) else "" for i, c in
                  enumerate(np.concatenate([r.labels for r in self.results]))]
        return plotting.image_grid(images, rows=len(self.results), titles=titles,
                                   row_labels=[f"λ={lam:g}" for lam in self.tv_weights],
                                   suptitle="TV-regularised inversion: one row per λ")


def tv_sweep(victim, tv_weights=(0.0, 0.1, 1.0, 10.0), *, classes=None, class_means=None, independent=None,
             seed: int = 0, verbose: int = 1, **options) -> SweepResult:
    """Run :func:`invert` for each TV weight; report confidence vs TV vs recognisability."""
    weights = [float(v) for v in np.atleast_1d(tv_weights)]
    for lam in weights:
        check_nonnegative("tv_weight", lam)
    results = []
    for lam in weights:
        r = invert(victim, classes=classes, seed=seed, verbose=0, **{**options, "tv_weight": lam})
        r.evaluate(class_means, independent=independent)
        if verbose:
            print(f"[sweep] tv_weight={lam:g}: min confidence {r.confidence.min():.3f}, mean TV {r.tv.mean():.4f}",
                  flush=True)
        results.append(r)
    return SweepResult(weights, results)

