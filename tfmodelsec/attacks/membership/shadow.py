"""Shadow models for membership inference: training config, Shokri's attack, the distilled proxy.

* Shadow-model attack (Shokri et al. 2017, https://arxiv.org/abs/1610.05820): ``k`` shadow
  models of the victim's architecture, each trained on its own disjoint slice of the
  attacker's labelled data; an attack classifier learns the shadows' behaviour on their
  training records ("in") versus held-out records ("out") and is then applied to the victim.
* Distilled-proxy attack (seed lab 002): with unlabelled public data only, distil a proxy
  from the victim's answers (KL divergence), learn the proxy's in/out behaviour on its
  distillation set versus unseen public records, classify the victim's behaviour on the
  target records with it.

Shadows are trained with :func:`tfmodelsec.models.train_classifier` (any ``tf.distribute``
strategy); the attack classifier is scikit-learn's histogram gradient boosting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tfmodelsec.attacks.membership.threshold import behaviour_features
from tfmodelsec.utils import check_choice, check_positive, progbar, resolve_strategy, set_seed

__all__ = ["ShadowTraining", "shadow_builder", "reference_architecture", "train_shadow", "predict_probabilities",
           "logits_of", "softmax64", "shadow_attack_scores", "proxy_attack_scores"]

#: Fewest records per shadow/proxy training set; below this the in/out behaviour is noise.
MIN_SHADOW_SIZE = 8


@dataclass(frozen=True)
class ShadowTraining:
    """How shadow, proxy and LiRA/RMIA reference models are trained (mimic the victim's recipe).

    Args:
        model: ``None`` for the victim's own architecture with fresh weights (an MLP of the
            victim's input size when that architecture cannot be rebuilt, e.g. a SavedModel
            victim), a zoo name (``"lenet5"``, ``"mlp"``...), or a zero-argument callable
            returning an uncompiled Keras model with softmax outputs.
        epochs: training epochs per shadow model.
        batch_size: batch size.
        learning_rate: Adam learning rate.
        schedule: ``"constant"`` or ``"cosine"`` learning rate (as in ``train_classifier``).
        at_once: LiRA/RMIA reference models trained together in one compiled graph
            (:mod:`.references`; same weights as one by one, to float tolerance); ``1`` trains
            them one by one with ``train_classifier``.
    """

    model: Any = None
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    schedule: str = "constant"
    at_once: int = 16

    def __post_init__(self):
        check_positive("epochs", self.epochs, integer=True)
        check_positive("batch_size", self.batch_size, integer=True)
        check_positive("learning_rate", self.learning_rate)
        check_positive("at_once", self.at_once, integer=True)
        check_choice("schedule", self.schedule, ("constant", "cosine"))
        if not (self.model is None or isinstance(self.model, str) or callable(self.model)):
            raise ValueError("`model` must be None, a zoo name or a callable returning a keras.Model. "
                             f"Received: model={self.model!r}")


#: The fallback reference architecture when the victim's own cannot be rebuilt.
FALLBACK_MODEL = "mlp"


def _zoo_builder(name, victim):
    from tfmodelsec.models.zoo import MODELS, build_model

    if name not in MODELS:
        raise ValueError(f"`model` (--shadow-model) must be one of {sorted(MODELS)}. Received: model={name!r}")
    try:
        build_model(name, victim.input_shape, victim.num_classes)
    except Exception as exc:  # e.g. a convolutional net asked to take feature vectors
        raise ValueError(f"shadow model {name!r} cannot take the victim's inputs of shape {victim.input_shape} "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); use "
                         f"{FALLBACK_MODEL!r} (an MLP of the victim's input size)") from None
    return lambda: build_model(name, victim.input_shape, victim.num_classes)


def _clone_builder(victim):
    """The victim's architecture with fresh weights, or ``None`` if it cannot be rebuilt and trained."""
    import keras

    def clone():
        net = keras.models.clone_model(victim.model)  # same layers, freshly initialised
        if victim.output_kind == "logits":
            inputs = keras.Input(victim.input_shape)
            net = keras.Model(inputs, keras.layers.Softmax()(net(inputs)))
        return net

    try:
        probe = clone()
    except Exception:  # subclassed models and other graphs clone_model cannot rebuild
        return None
    frozen = any(type(layer).__name__ == "TFSMLayer" for layer in probe._flatten_layers())
    if frozen or not probe.trainable_weights:  # a SavedModel victim: its clone would not train
        return None
    return clone


def reference_architecture(victim, training: ShadowTraining) -> tuple:
    """``(builder, description)``: how shadow / reference models are built for ``victim``."""
    spec = training.model
    if isinstance(spec, str):
        return _zoo_builder(spec, victim), spec
    if callable(spec):
        return spec, "custom"
    clone = _clone_builder(victim)
    if clone is not None:
        return clone, "victim architecture"
    return (_zoo_builder(FALLBACK_MODEL, victim),
            f"{FALLBACK_MODEL} of input {victim.input_shape} (the victim's architecture cannot be rebuilt)")


def shadow_builder(victim, training: ShadowTraining):
    """A zero-argument callable that builds a fresh, untrained shadow model."""
    return reference_architecture(victim, training)[0]


def _logit_head(model):
    """(features model, final Dense or None) such that logits = head(features(x))."""
    import keras

    last = model.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", None)
    if isinstance(last, keras.layers.Softmax) or (isinstance(last, keras.layers.Activation) and act == "softmax"):
        return keras.Model(model.inputs, last.input), None
    if isinstance(last, keras.layers.Dense) and act == "softmax":
        return keras.Model(model.inputs, last.input), last
    raise ValueError("`logits=True` needs a model whose last layer is a softmax Dense, Softmax or "
                     f"Activation('softmax') layer (or a victim that outputs logits). Received last layer "
                     f"{type(last).__name__} ({last.name!r})")


def logits_of(model, x) -> np.ndarray:
    """Pre-softmax outputs (float64) of a softmax-terminated Keras model."""
    features, dense = _logit_head(model)
    out = np.asarray(features.predict(np.asarray(x, np.float32), batch_size=1024, verbose=0), np.float64)
    if dense is not None:
        kernel, *bias = (np.asarray(w, np.float64) for w in dense.get_weights())
        out = out @ kernel + (bias[0] if bias else 0.0)
    return out


def softmax64(logits) -> np.ndarray:
    """Softmax in float64: probabilities down to ~1e-308 instead of float32's 1e-45 (and p = 1 exactly)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_probabilities(model, x, *, logits: bool = False) -> np.ndarray:
    """A model's probabilities; with ``logits`` recomputed in float64 from its pre-softmax outputs."""
    if logits:
        return softmax64(logits_of(model, x))
    return np.asarray(model.predict(np.asarray(x, np.float32), batch_size=1024, verbose=0), np.float64)


def train_shadow(build, x, y, training: ShadowTraining, *, seed, strategy=None):
    """Train one shadow on ``(x, y)`` with :func:`train_classifier`; returns the Keras model."""
    from tfmodelsec.models.train import train_classifier

    result = train_classifier(build, (x, y), epochs=training.epochs, batch_size=training.batch_size,
                              learning_rate=training.learning_rate, schedule=training.schedule,
                              seed=seed, strategy=strategy, evaluate=False, verbose=0)
    return result.model


def _attack_scores(features, is_in, targets, seed):
    """Fit the attack classifier on (features, is_in) and score ``targets`` (P[in]).

    scikit-learn's histogram gradient boosting runs OpenMP over all cores; on a machine whose
    cores are busy with other work its threads spin-wait on each other (measured: 21 s instead
    of 0.4 s for 240 rows on 2 loaded cores), so it runs on one thread: these tables hold at
    most a few hundred thousand rows of 8 features.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=int(seed) % (2**32))
        clf.fit(features, is_in)
        return clf.predict_proba(targets)[:, 1]


def _slices(n_population, parts, size, what):
    if size < MIN_SHADOW_SIZE:
        raise ValueError(
            f"`population` is too small for the {what}: it holds {n_population} records, which gives "
            f"{size} per training set; expected at least {MIN_SHADOW_SIZE * parts} records"
        )
    return [slice(i * size, (i + 1) * size) for i in range(parts)]


def shadow_attack_scores(victim, target_probs, target_y, population, *, num_shadows, shadow_size,
                         training, logits=False, strategy=None, seed=0, verbose=1):
    """Shokri et al.'s shadow-model attack; returns (scores, info dict).

    Each shadow ``i`` trains on ``shadow_size`` population records and holds out as many
    others; no record is used by two shadows.
    """
    x_pop, y_pop = population
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_pop))
    size = min(int(shadow_size), len(x_pop) // (2 * num_shadows))
    parts = _slices(len(x_pop), 2 * num_shadows, size, f"{num_shadows} shadow models")
    build = shadow_builder(victim, training)
    feats, is_in, accs = [], [], []
    bar = progbar(num_shadows, verbose=verbose, unit_name="shadow")
    for i in range(num_shadows):
        idx_in, idx_out = order[parts[2 * i]], order[parts[2 * i + 1]]
        model = train_shadow(build, x_pop[idx_in], y_pop[idx_in], training, seed=seed + 1 + i,
                             strategy=strategy)
        for idx, flag in ((idx_in, 1), (idx_out, 0)):
            probs = predict_probabilities(model, x_pop[idx], logits=logits)
            feats.append(behaviour_features(probs, y_pop[idx]))
            is_in.append(np.full(len(idx), flag))
            accs.append(float(np.mean(probs.argmax(1) == y_pop[idx])))
        bar.update(i + 1)
    scores = _attack_scores(np.concatenate(feats), np.concatenate(is_in), behaviour_features(target_probs, target_y),
                            seed)
    info = {"num_shadows": num_shadows, "shadow_size": size,
            "shadow_train_accuracy": float(np.mean(accs[0::2])),
            "shadow_test_accuracy": float(np.mean(accs[1::2]))}
    return scores, info


def _distil(build, x, soft, training, *, seed, strategy):
    """Fit a fresh proxy to the victim's probabilities with a KL-divergence loss (seed 002)."""
    import keras

    from tfmodelsec.models.train import fit_seeded

    strategy = resolve_strategy(strategy)
    set_seed(seed)
    lr = training.learning_rate
    if training.schedule == "cosine":
        steps = training.epochs * int(np.ceil(len(x) / training.batch_size))
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    with strategy.scope():
        proxy = build()
        proxy.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.KLDivergence())
    fit_seeded(proxy, np.asarray(x, np.float32), np.asarray(soft, np.float32), epochs=training.epochs,
               batch_size=training.batch_size, rng=np.random.default_rng(seed))
    return proxy


def proxy_attack_scores(victim, oracle, target_probs, target_y, population, *, proxy_size,
                        training, logits=False, strategy=None, seed=0, verbose=1):
    """The distilled-proxy attack; population labels are not used; returns (scores, info dict)."""
    x_pop = population[0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_pop))
    size = min(int(proxy_size), len(x_pop) // 2)
    part_in, part_out = _slices(len(x_pop), 2, size, "distilled proxy")
    x_in, x_out = x_pop[order[part_in]], x_pop[order[part_out]]
    bar = progbar(2, verbose=verbose, unit_name="stage")
    soft_in, soft_out = oracle(x_in), oracle(x_out)  # the attacker's only labels: the victim's answers
    proxy = _distil(shadow_builder(victim, training), x_in, soft_in, training, seed=seed + 1, strategy=strategy)
    bar.update(1)
    label_in, label_out = soft_in.argmax(1), soft_out.argmax(1)
    probs_in = predict_probabilities(proxy, x_in, logits=logits)
    probs_out = predict_probabilities(proxy, x_out, logits=logits)
    feats = np.concatenate([behaviour_features(probs_in, label_in), behaviour_features(probs_out, label_out)])
    is_in = np.concatenate([np.ones(size), np.zeros(size)])
    scores = _attack_scores(feats, is_in, behaviour_features(target_probs, target_y), seed)
    bar.update(2)
    info = {"proxy_size": size,
            "proxy_agreement_in": float(np.mean(probs_in.argmax(1) == label_in)),
            "proxy_agreement_out": float(np.mean(probs_out.argmax(1) == label_out)),
            "victim_queries": int(2 * size)}
    return scores, info
