"""The likelihood-ratio attack, LiRA (Carlini et al. 2022, https://arxiv.org/abs/2112.03570).

``N`` reference ("shadow") models are trained on random halves of a pool that holds the
target records (and, optionally, more attacker data), balanced so that every target is in
the training set of exactly ``N // 2`` of them. For each target, the logit-scaled
confidence phi = log(p_y / (1 - p_y)) of the models that trained on it ("in") and of those
that did not ("out") is fitted by a Gaussian; the victim's phi on the record is scored by

* online: log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2), the likelihood ratio;
* offline: (phi - mu_out) / s_out, which orders records exactly as the paper's one-sided
  test 1 - Pr[Z > phi], Z ~ N(mu_out, s_out^2), without its saturation at 1.

``fixed_variance=True`` uses one variance per side, estimated over all targets (the
paper's choice for few shadow models); with fewer than two in (or out) models per target
the per-target variance does not exist and the fixed variance is used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from tfmodelsec.attacks.mia_shadow import (ShadowTraining, logits_of, predict_probabilities, shadow_builder,
                                          softmax64, train_shadow)
from tfmodelsec.attacks.mia_threshold import logit_confidence
from tfmodelsec.utils import progbar

__all__ = ["LiraShadows", "train_lira_shadows", "lira_scores", "records_fingerprint"]

#: Smallest standard deviation of a fitted Gaussian (logit units): keeps the density finite
#: when all reference models agree to float precision.
_MIN_STD = 1e-6


def records_fingerprint(x, y) -> str:
    """A short hash of the target records, so shadows are only reused on the same targets."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x, np.float32).tobytes())
    digest.update(np.ascontiguousarray(y, np.int64).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class LiraShadows:
    """Trained LiRA reference models, reduced to what scoring needs.

    Attributes:
        keep: ``(N, n_targets)`` bool, target ``j`` in shadow ``i``'s training set.
        confidences: ``(N, n_targets)`` logit-scaled confidence of shadow ``i`` on target ``j``,
            from its float32 probabilities (what a black-box API returns).
        logit_confidences: the same from its pre-softmax outputs in float64 (``None`` if the
            shadow architecture has no softmax head to strip).
        fingerprint: :func:`records_fingerprint` of the targets.
        info: training details (sizes, accuracies, seconds).
    """

    keep: np.ndarray
    confidences: np.ndarray
    fingerprint: str
    logit_confidences: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def num_shadows(self) -> int:
        return int(self.keep.shape[0])


def train_lira_shadows(victim, x, y, *, num_shadows: int, population=None, training=None,
                       strategy=None, seed: int = 0, verbose: int = 1) -> LiraShadows:
    """Train ``num_shadows`` reference models on balanced random halves of targets + population."""
    training = training or ShadowTraining()
    x_pool, y_pool = x, y
    if population is not None:
        x_pool = np.concatenate([x, population[0]])
        y_pool = np.concatenate([y, population[1]])
    rng = np.random.default_rng(seed)
    # Column-wise ranks of uniform noise: each record lands in exactly num_shadows // 2 shadows.
    keep_pool = np.argsort(rng.uniform(size=(num_shadows, len(x_pool))), axis=0) < num_shadows // 2
    build = shadow_builder(victim, training)
    conf = np.zeros((num_shadows, len(x)))
    conf_logits = np.zeros((num_shadows, len(x)))
    acc_in, acc_out, sizes = [], [], []
    bar = progbar(num_shadows, verbose=verbose, unit_name="shadow")
    for i in range(num_shadows):
        rows = np.flatnonzero(keep_pool[i])
        model = train_shadow(build, x_pool[rows], y_pool[rows], training, seed=seed + 1 + i, strategy=strategy)
        probs = predict_probabilities(model, x)
        conf[i] = logit_confidence(probs, y)
        if conf_logits is not None:
            try:
                conf_logits[i] = logit_confidence(softmax64(logits_of(model, x)), y)
            except ValueError:  # a custom shadow architecture without a softmax head
                conf_logits = None
        correct = probs.argmax(1) == y
        acc_in.append(float(correct[keep_pool[i, : len(x)]].mean()))
        acc_out.append(float(correct[~keep_pool[i, : len(x)]].mean()))
        sizes.append(len(rows))
        bar.update(i + 1)
    info = {"num_shadows": num_shadows, "pool_size": len(x_pool), "shadow_train_size": float(np.mean(sizes)),
            "shadow_accuracy_in": float(np.mean(acc_in)), "shadow_accuracy_out": float(np.mean(acc_out))}
    return LiraShadows(keep_pool[:, : len(x)], conf, records_fingerprint(x, y), conf_logits, info)


def _gaussian(values, mask, fixed):
    """Per-target mean and std of ``values`` where ``mask``; global std if ``fixed``."""
    counts = mask.sum(axis=0)
    mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(counts, 1)
    if fixed or counts.min() < 2:
        std = np.full(values.shape[1], values[mask].std())
    else:
        sq = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0)
        std = np.sqrt(sq / counts)
    return mean, np.maximum(std, _MIN_STD)


def lira_scores(shadows: LiraShadows, victim_confidence, *, online: bool = True,
                fixed_variance: bool = False, logits: bool = False) -> tuple[np.ndarray, dict]:
    """LiRA membership scores for the victim's logit-scaled confidences (higher = member).

    ``logits`` selects the shadows' confidences computed from pre-softmax outputs; the
    victim's must then come from its logits too.
    """
    from scipy.stats import norm

    conf, keep = shadows.confidences, shadows.keep
    if logits:
        if shadows.logit_confidences is None:
            raise ValueError("`logits=True` but these LiRA shadows have no softmax head to read logits from")
        conf = shadows.logit_confidences
    victim_confidence = np.asarray(victim_confidence, np.float64)
    mu_out, s_out = _gaussian(conf, ~keep, fixed_variance)
    per_target = not fixed_variance and (~keep).sum(0).min() >= 2
    if not online:
        return (victim_confidence - mu_out) / s_out, {"per_target_variance": bool(per_target)}
    mu_in, s_in = _gaussian(conf, keep, fixed_variance)
    per_target = per_target and keep.sum(0).min() >= 2
    scores = norm.logpdf(victim_confidence, mu_in, s_in) - norm.logpdf(victim_confidence, mu_out, s_out)
    return scores, {"per_target_variance": bool(per_target)}
