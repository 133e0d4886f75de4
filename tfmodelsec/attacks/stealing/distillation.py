"""Model stealing by distillation through a query-counting black box.

The attacker queries the victim's :class:`~tfmodelsec.oracle.BlackBox` once per
chosen sample and trains a local student to imitate the answers (Hinton et al.,
"Distilling the Knowledge in a Neural Network", 2015; the seed-002 lab). The
student is trained as a ``keras.Model`` whose ``compute_loss`` is overridden, the
pattern of Keras' ``Distiller``:

* ``"mse"`` - squared error between the victim's and the student's probabilities;
* ``"kl"`` - ``tau^2 KL(p_tau || q_tau)`` with both distributions softened by the
  temperature ``tau`` (``p_tau ~ p^(1/tau)``, the softmax of the victim's logits / tau),
  Hinton et al.'s form: the ``tau^2`` keeps the gradients' scale independent of ``tau``;
* ``"kl_seed"`` - the seed-002 lab's form, ``KL(p_tau || q)``: only the victim's answer is
  softened (``softmax(f / tau)``); the student's own probabilities ``q = softmax(g)`` are
  compared with it unsoftened and unscaled. The student learns the softened targets, so
  its probabilities are themselves soft (its argmax is what counts);
* ``"hard"`` - cross-entropy on the victim's top label.

Beyond the paper: ``active_queries`` spends part of the budget on the pool images
the student is least sure about (uncertainty sampling), and ``semi_supervised``
self-trains the student on the unlabeled pool without querying it
(:mod:`tfmodelsec.attacks.stealing.self_training`: pseudo-labels spread by label
propagation, consistency under augmentation).

Metrics (owner-side, through the victim directly; they spend no attacker queries):
accuracy on labelled test data, fidelity (agreement with the victim's labels) and
transferability (the share of FGSM examples crafted on the student, from test
samples the victim gets right, that the victim then misclassifies).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tfmodelsec.attacks.stealing.self_training import SemiSupervised, self_train
from tfmodelsec.attacks.stealing.self_training import packed_targets as _packed
from tfmodelsec.attacks.stealing.self_training import repeat_rows as _repeat_to
from tfmodelsec.utils import check_choice, check_nonnegative, check_positive

__all__ = ["LOSSES", "SemiSupervised", "StealResult", "evaluate_student", "steal"]

LOSSES = ("kl", "kl_seed", "mse", "hard")
# Tiny query sets (50 samples) still get this many samples per distillation epoch
# (the set is repeated), so "epochs" means a comparable amount of training at any budget.
_MIN_EPOCH_SAMPLES = 2048
# Pool samples scored for active queries (a seeded subset keeps the scoring cheap).
_ACTIVE_CANDIDATES = 20000
# log(0) guard for probabilities that underflow.
_EPS = 1e-7


@dataclass
class StealResult:
    """What :func:`steal` did; metric fields are ``None`` without ``eval_data``."""

    student: object = field(repr=False)
    loss: str
    temperature: float
    queries_used: int
    seconds: float
    accuracy: float | None = None
    fidelity: float | None = None
    transferability: float | None = None
    distill_accuracy: float | None = None  # after the distillation stage, before self-training
    distill_fidelity: float | None = None
    pseudo_labels: list = field(default_factory=list)  # pseudo-labels used per round
    history: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        keys = ("loss", "temperature", "queries_used", "seconds", "accuracy", "fidelity", "transferability",
                "distill_accuracy", "distill_fidelity", "pseudo_labels")
        return {k: getattr(self, k) for k in keys}


def _augmenter(shape, seed):
    import keras

    if len(shape) != 3:
        return None
    return keras.Sequential([
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
        keras.layers.RandomRotation(0.04, fill_mode="constant", seed=seed + 1),
    ], name="augment")


def _scale_for_replicas(loss):
    """``loss / num_replicas_in_sync``: what Keras' own losses do under ``tf.distribute``.

    The TF trainer sums the replicas' gradients and reports ``loss * replicas``
    (``keras/src/losses/loss.py``: ``scale_loss_for_distribution``, not public API), so
    an overridden ``compute_loss`` returning each replica's plain mean would give
    gradients and a reported loss ``replicas`` times too large.
    """
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss / float(replicas)


def _kl_loss(target, log_q, temperature: float, *, soften_student: bool):
    """Per-sample KL distillation loss from the victim's probabilities ``target``.

    ``softmax(log(target) / tau)`` is the victim's softened answer (``log p`` is its
    logits up to a constant). ``soften_student=True``: ``tau^2 KL(p_tau || q_tau)``
    (``"kl"``); ``False``: ``KL(p_tau || q)`` (``"kl_seed"``, the seed lab's formula).
    """
    from keras import ops

    t = temperature
    log_p_t = ops.log_softmax(ops.log(ops.clip(target, _EPS, 1.0)) / t, axis=-1)
    if not soften_student:
        return ops.sum(ops.exp(log_p_t) * (log_p_t - log_q), axis=-1)
    log_q_t = ops.log_softmax(log_q / t, axis=-1)
    return t * t * ops.sum(ops.exp(log_p_t) * (log_p_t - log_q_t), axis=-1)


def _distiller_class():
    import keras
    from keras import ops

    class Distiller(keras.Model):
        """Trains ``student`` on packed targets ``[probabilities..., is_query]``.

        Rows with ``is_query = 1`` hold the victim's answers and use the chosen loss;
        rows with 0 hold pseudo-labels (one-hot) and use cross-entropy.
        """

        def __init__(self, student, loss, temperature, augment):
            super().__init__()
            self.student = student
            self.kind = loss
            self.temperature = float(temperature)
            self.augment = augment

        def call(self, x, training=False):
            if training and self.augment is not None:
                x = self.augment(x, training=True)
            return self.student(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            target, is_query = y[:, :-1], y[:, -1]
            q = ops.clip(y_pred, _EPS, 1.0)
            log_q = ops.log(q)
            ce = -ops.sum(target * log_q, axis=-1)
            if self.kind == "mse":
                query_loss = ops.sum(ops.square(target - y_pred), axis=-1)
            elif self.kind == "hard":
                hard = ops.one_hot(ops.argmax(target, axis=-1), ops.shape(target)[-1])
                query_loss = -ops.sum(hard * log_q, axis=-1)
            else:
                query_loss = _kl_loss(target, log_q, self.temperature, soften_student=self.kind == "kl")
            per_sample = is_query * query_loss + (1.0 - is_query) * ce
            if sample_weight is not None:
                per_sample = per_sample * ops.reshape(sample_weight, ops.shape(per_sample))
            return _scale_for_replicas(ops.mean(per_sample))

    return Distiller


def _build_student(student, shape, num_classes, strategy, input_range=(0.0, 1.0), x=None):
    """A zoo name (``"auto"``: LeNet-5 for images, an MLP for feature vectors) is built behind a
    layer mapping the victim's input range onto [0, 1], or standardising unbounded inputs with the
    mean and variance of ``x`` (the attacker's own data), so 0..255 pixels or raw features train
    as well as [0, 1] images; a given model or callable is used as is."""
    import keras

    from tfmodelsec.models.zoo import build_model, with_input_scaling

    with strategy.scope():
        if isinstance(student, str):
            return with_input_scaling(build_model(student, shape, num_classes), input_range, x)
        if isinstance(student, keras.Model):
            return student
        if callable(student):
            return student()
    raise ValueError(f"`student` must be a zoo name, a keras.Model or a callable. Received: {student!r}")


def _answers(oracle, x):
    answers = np.asarray(oracle(x))
    if answers.ndim == 1:  # a label-only oracle: its answers become one-hot targets
        answers = np.eye(oracle.num_classes, dtype=np.float32)[answers]
    return answers / np.maximum(answers.sum(axis=1, keepdims=True), _EPS)  # top-k answers renormalised


def _active_round(oracle, student, pool, x_q, answers, n, rng):
    """Query the ``n`` pool samples of least margin between the student's top two classes."""
    cand = rng.choice(len(pool), min(len(pool), _ACTIVE_CANDIDATES), replace=False)
    probs = np.asarray(student.predict(pool[cand], batch_size=1024, verbose=0))
    top2 = np.sort(probs, axis=1)[:, -2:]
    pick = cand[np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[:n]]
    return np.concatenate([x_q, pool[pick]]), np.concatenate([answers, _answers(oracle, pool[pick])])


def evaluate_student(student, victim, x, y, *, transfer_eps: float = 0.3, transfer_samples: int = 1000,
                     batch_size: int = 1024) -> dict:
    """Accuracy, fidelity and FGSM transferability of ``student`` against ``victim``.

    Transferability: FGSM (L-inf, ``transfer_eps`` times the width of the victim's input
    range, or times each feature's spread in ``x`` for an unbounded range) on the student
    from the first ``transfer_samples`` test samples the victim classifies correctly; the
    share the victim then gets wrong. Uses the victim directly (owner-side evaluation).
    """
    from tfmodelsec.attacks.evasion import fgsm
    from tfmodelsec.models.io import as_victim

    victim = as_victim(victim)
    x, y = np.asarray(x, np.float32), np.asarray(y)
    pred_s = np.concatenate([np.asarray(student(x[i:i + batch_size], training=False)).argmax(1)
                             for i in range(0, len(x), batch_size)])
    pred_v = victim.predict_labels(x)
    out = {"accuracy": float(np.mean(pred_s == y)), "fidelity": float(np.mean(pred_s == pred_v)),
           "transferability": None}
    if transfer_samples and transfer_eps > 0:
        ok = np.flatnonzero(pred_v == y)[: int(transfer_samples)]
        if len(ok):
            if victim.input_range is not None:  # eps is a share of the range's width
                lo, hi = victim.input_range
                adv = fgsm(student, x[ok], y[ok], eps=float(transfer_eps) * (hi - lo), clip_min=lo, clip_max=hi)
            else:  # unbounded: a share of each feature's spread, the sign step of an unclipped FGSM
                step = fgsm(student, x[ok], y[ok], eps=1.0, clip_min=None, clip_max=None) - x[ok]
                adv = x[ok] + float(transfer_eps) * np.maximum(x.std(axis=0), 1e-6) * step
            out["transferability"] = float(np.mean(victim.predict_labels(adv) != y[ok]))
    return out


def steal(oracle, queries, *, student="auto", loss: str = "kl", temperature: float = 4.0, epochs: int = 30,
          batch_size: int = 64, learning_rate: float = 3e-3, unlabeled=None,
          semi_supervised: SemiSupervised | bool | None = None, active_queries: int = 0, active_rounds: int = 1,
          augment: bool = True, eval_data=None,
          transfer_eps: float = 0.3, seed: int = 0, strategy=None, verbose: int = 1) -> StealResult:
    """Steal ``oracle``'s model: query ``queries`` once, distill a student, optionally self-train.

    Args:
        oracle: a :class:`~tfmodelsec.oracle.BlackBox` (the only access to the victim).
        queries: samples to query, shaped like the victim's input; every one is counted.
        student: a zoo name (``"auto"``: LeNet-5 for images, an MLP for feature vectors; built
            behind a layer that maps the victim's input range onto [0, 1], or standardises
            unbounded inputs with the attacker's pool), a ``keras.Model`` with probability
            outputs (trained in place) or a zero-argument callable building one (under
            ``strategy.scope()``).
        loss: ``"kl"``, ``"kl_seed"``, ``"mse"`` or ``"hard"`` (see the module docstring).
        temperature: ``tau`` of the KL losses.
        epochs: distillation epochs (each sees >= 2048 samples; small sets are repeated).
        batch_size, learning_rate: Adam settings.
        unlabeled: the attacker's pool for self-training (never queried); ``None`` disables it.
        semi_supervised: a :class:`SemiSupervised` config, ``True`` for the defaults, or
            ``None``/``False`` for plain distillation. Needs ``unlabeled``.
        active_queries: after distilling on ``queries``, query this many more pool samples:
            those where the student's two most likely classes are closest (uncertainty
            sampling, Lewis & Gale 1994; ActiveThief, Pal et al. AAAI 2020), then distill
            again on all answers. Counted like the others; needs ``unlabeled``.
        active_rounds: split ``active_queries`` over this many query-then-distill rounds.
        augment: random shifts/rotations of the training images (query answers reused).
        eval_data: ``(x_test, y_test)`` to fill the metric fields (owner-side).
        transfer_eps: FGSM epsilon for transferability.
        seed: seeds the student, the batches, the augmentation and the pool subset.
        strategy: a ``tf.distribute.Strategy`` (default: the current one); ``batch_size``
            is the global batch. With ``augment=False`` a mirrored run takes the same steps
            as a single-device one (up to float32 reduction order); with augmentation the
            random shifts are drawn per replica batch, so the draws, and the runs, differ.
        verbose: 0 silent, 1 progress per stage.

    Returns:
        :class:`StealResult` with the trained student.

    Raises:
        ValueError: bad settings, queries not shaped like the victim's input, or more
            queries than the oracle has budget left (checked before any query is sent).

    Example:
        >>> oracle = BlackBox(victim, budget=150)  # doctest: +SKIP
        >>> res = steal(oracle, pool[select_queries(pool, 150, method="drmi")], unlabeled=pool)
    """
    import keras

    from tfmodelsec.attacks.stealing.selection import check_pool
    from tfmodelsec.models.train import fit_seeded
    from tfmodelsec.utils import resolve_strategy, set_seed

    loss = check_choice("loss", loss, LOSSES)
    check_positive("temperature", temperature)
    check_positive("epochs", epochs, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("learning_rate", learning_rate)
    check_nonnegative("transfer_eps", transfer_eps)
    if semi_supervised is True:
        semi_supervised = SemiSupervised()
    elif semi_supervised is False:
        semi_supervised = None
    if semi_supervised is not None and not isinstance(semi_supervised, SemiSupervised):
        raise ValueError(f"`semi_supervised` must be a SemiSupervised, True, False or None. "
                         f"Received: semi_supervised={semi_supervised!r}")
    if semi_supervised is not None and unlabeled is None:
        raise ValueError("`semi_supervised` needs the unlabeled pool: pass `unlabeled=`")
    if not isinstance(active_queries, (int, np.integer)) or isinstance(active_queries, bool) or active_queries < 0:
        raise ValueError(f"`active_queries` must be an int >= 0. Received: active_queries={active_queries!r}")
    check_positive("active_rounds", active_rounds, integer=True)
    if active_queries and unlabeled is None:
        raise ValueError("`active_queries` picks from the unlabeled pool: pass `unlabeled=`")
    shape = tuple(oracle.input_shape)
    x_q = check_pool(queries, input_shape=shape, name="queries")
    pool = None if unlabeled is None else check_pool(unlabeled, input_shape=shape, name="unlabeled")
    if active_queries and active_queries > len(pool):
        raise ValueError(f"`active_queries` must be <= the pool size ({len(pool)}). "
                         f"Received: active_queries={active_queries}")
    if oracle.remaining is not None and len(x_q) + active_queries > oracle.remaining:
        raise ValueError(f"`queries` holds {len(x_q)} samples (+ {active_queries} active) but the oracle's budget "
                         f"has {oracle.remaining} queries left (budget={oracle.budget}); nothing was queried")
    strategy = resolve_strategy(strategy)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()

    answers = _answers(oracle, x_q)
    y_q = _packed(answers, True)

    set_seed(seed)
    net = _build_student(student, shape, oracle.num_classes, strategy, oracle.input_range,
                         x_q if pool is None else pool)
    with strategy.scope():
        distiller = _distiller_class()(net, loss, temperature, _augmenter(shape, seed) if augment else None)
        distiller.compile(optimizer=keras.optimizers.Adam(learning_rate))
    fit_verbose = 2 if verbose > 1 else 0
    xs, ys = _repeat_to([x_q, y_q], _MIN_EPOCH_SAMPLES, rng)
    hist = fit_seeded(distiller, xs, ys, epochs=epochs, batch_size=batch_size, rng=rng, verbose=fit_verbose)
    history = {"distill_loss": hist["loss"]}
    sizes = [len(a) for a in np.array_split(np.arange(active_queries), active_rounds)] if active_queries else []
    for i, n_round in enumerate(s for s in sizes if s):
        x_q, answers = _active_round(oracle, net, pool, x_q, answers, n_round, rng)
        y_q = _packed(answers, True)
        xs, ys = _repeat_to([x_q, y_q], _MIN_EPOCH_SAMPLES, rng)
        hist = fit_seeded(distiller, xs, ys, epochs=epochs, batch_size=batch_size, rng=rng, verbose=fit_verbose)
        history[f"active_distill_loss_{i + 1}"] = hist["loss"]
    result = StealResult(net, loss, float(temperature), len(x_q), 0.0, history=history)
    if eval_data is not None:
        m = evaluate_student(net, oracle.victim, *eval_data, transfer_samples=0)
        result.distill_accuracy, result.distill_fidelity = m["accuracy"], m["fidelity"]

    if semi_supervised is not None:
        result.pseudo_labels, history["self_training_loss"] = self_train(
            distiller, pool, x_q, y_q, semi_supervised, rng, batch_size=max(int(batch_size), 128),
            verbose=verbose)
    result.seconds = time.perf_counter() - start
    if eval_data is not None:
        m = evaluate_student(net, oracle.victim, *eval_data, transfer_eps=transfer_eps)
        result.accuracy, result.fidelity, result.transferability = m["accuracy"], m["fidelity"], m["transferability"]
    return result

