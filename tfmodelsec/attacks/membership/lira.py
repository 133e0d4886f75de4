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
from pathlib import Path

import numpy as np

from tfmodelsec.attacks.membership.shadow import (ShadowTraining, logits_of, predict_probabilities, shadow_builder,
                                          softmax64, train_shadow)
from tfmodelsec.attacks.membership.threshold import logit_confidence
from tfmodelsec.utils import progbar, read_npz, write_npz

__all__ = ["LiraShadows", "train_lira_shadows", "merge_lira_shadows", "lira_scores", "records_fingerprint"]

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
        fingerprint: :func:`records_fingerprint` of the targets.
        logit_confidences: the same from its pre-softmax outputs in float64 (``None`` if the
            shadow architecture has no softmax head to strip).
        info: training details (sizes, accuracies).
        shadow_ids: which of the ``total`` shadows these rows are (all of them unless this
            is one ``--part`` of a split run; see :func:`merge_lira_shadows`).
        total: shadows in the whole run.
        config: what the shadows depend on (targets, population, seed, training); parts
            merge only when it is identical.
        stats: per-shadow ``accuracy_in``, ``accuracy_out`` and ``train_size`` (for ``info``).
    """

    keep: np.ndarray
    confidences: np.ndarray
    fingerprint: str
    logit_confidences: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    shadow_ids: np.ndarray | None = None
    total: int | None = None
    config: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.shadow_ids is None:
            self.shadow_ids = np.arange(len(self.keep))
        self.shadow_ids = np.asarray(self.shadow_ids, np.int64)
        if self.total is None:
            self.total = len(self.keep)

    @property
    def num_shadows(self) -> int:
        return int(self.keep.shape[0])

    @property
    def complete(self) -> bool:
        """All ``total`` shadows, in order (not one part of a split run)."""
        return self.num_shadows == self.total and bool((self.shadow_ids == np.arange(self.total)).all())

    def save(self, path) -> Path:
        """Write to an ``.npz`` (arrays plus a JSON header; read back without pickle)."""
        arrays = {"keep": self.keep, "confidences": self.confidences, "shadow_ids": self.shadow_ids,
                  **{f"stat_{k}": np.asarray(v) for k, v in self.stats.items()}}
        if self.logit_confidences is not None:
            arrays["logit_confidences"] = self.logit_confidences
        header = {"format": _FORMAT, "version": 1, "fingerprint": self.fingerprint, "total": self.total,
                  "config": self.config, "info": self.info}
        return write_npz(path, header=header, compressed=True, **arrays)

    @classmethod
    def load(cls, path) -> "LiraShadows":
        """Read what :meth:`save` wrote; ``ValueError`` for any other file."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no LiRA shadows file at {str(path)!r} (written by `tfmodelsec membership` "
                                    "as lira_shadows.npz, or by `tfmodelsec merge`)")
        header, arrays = read_npz(path, format=_FORMAT, what="a LiRA shadows file")
        stats = {k[len("stat_"):]: v for k, v in arrays.items() if k.startswith("stat_")}
        return cls(arrays["keep"].astype(bool), arrays["confidences"], header["fingerprint"],
                   arrays.get("logit_confidences"), header["info"], arrays["shadow_ids"], header["total"],
                   header["config"], stats)


_FORMAT = "tfmodelsec-lira-shadows"


def _summary(stats: dict, pool_size: int, total: int) -> dict:
    return {"num_shadows": total, "pool_size": pool_size,
            "shadow_train_size": float(np.mean(stats["train_size"])),
            "shadow_accuracy_in": float(np.mean(stats["accuracy_in"])),
            "shadow_accuracy_out": float(np.mean(stats["accuracy_out"]))}


def _config(x, y, population, num_shadows, training, seed) -> dict:
    model = training.model if training.model is None or isinstance(training.model, str) else "custom"
    return {"targets": records_fingerprint(x, y), "num_shadows": int(num_shadows), "seed": int(seed),
            "population": None if population is None else records_fingerprint(*population),
            "training": {"model": model, "epochs": training.epochs, "batch_size": training.batch_size,
                         "learning_rate": training.learning_rate, "schedule": training.schedule}}


def train_lira_shadows(victim, x, y, *, num_shadows: int, population=None, training=None,
                       strategy=None, seed: int = 0, part: tuple[int, int] | None = None,
                       verbose: int = 1) -> LiraShadows:
    """Train ``num_shadows`` reference models on balanced random halves of targets + population.

    ``part=(i, n)`` trains only the shadows :func:`~tfmodelsec.distribute.part_range` gives
    part ``i`` of ``n`` (the in/out split and each shadow's seed depend on the shadow's
    index alone), for :func:`merge_lira_shadows` to join with the other parts.
    """
    from tfmodelsec.distribute import part_range

    training = training or ShadowTraining()
    x_pool, y_pool = x, y
    if population is not None:
        x_pool = np.concatenate([x, population[0]])
        y_pool = np.concatenate([y, population[1]])
    rng = np.random.default_rng(seed)
    # Column-wise ranks of uniform noise: each record lands in exactly num_shadows // 2 shadows.
    keep_pool = np.argsort(rng.uniform(size=(num_shadows, len(x_pool))), axis=0) < num_shadows // 2
    ids = np.asarray(part_range(num_shadows, part), np.int64)
    build = shadow_builder(victim, training)
    conf = np.zeros((len(ids), len(x)))
    conf_logits = np.zeros((len(ids), len(x)))
    stats = {"accuracy_in": [], "accuracy_out": [], "train_size": []}
    bar = progbar(len(ids), verbose=verbose, unit_name="shadow")
    for row, i in enumerate(ids):
        rows = np.flatnonzero(keep_pool[i])
        model = train_shadow(build, x_pool[rows], y_pool[rows], training, seed=seed + 1 + int(i), strategy=strategy)
        probs = predict_probabilities(model, x)
        conf[row] = logit_confidence(probs, y)
        if conf_logits is not None:
            try:
                conf_logits[row] = logit_confidence(softmax64(logits_of(model, x)), y)
            except ValueError:  # a custom shadow architecture without a softmax head
                conf_logits = None
        correct = probs.argmax(1) == y
        stats["accuracy_in"].append(float(correct[keep_pool[i, : len(x)]].mean()))
        stats["accuracy_out"].append(float(correct[~keep_pool[i, : len(x)]].mean()))
        stats["train_size"].append(len(rows))
        bar.update(row + 1)
    stats = {k: np.asarray(v) for k, v in stats.items()}
    info = _summary(stats, len(x_pool), num_shadows) if len(ids) else {}
    return LiraShadows(keep_pool[ids, : len(x)], conf, records_fingerprint(x, y), conf_logits, info, ids,
                       num_shadows, _config(x, y, population, num_shadows, training, seed), stats)


def merge_lira_shadows(parts) -> LiraShadows:
    """Join the parts of a split shadow run (``--part i/n``) into the unsplit result.

    Raises ``ValueError`` if the parts come from different runs (targets, population,
    seed, training) or a shadow is missing or given twice.
    """
    from tfmodelsec.distribute import check_coverage

    parts = list(parts)
    if not parts or not all(isinstance(p, LiraShadows) for p in parts):
        raise ValueError("`parts` must be a non-empty list of LiraShadows")
    first = parts[0]
    for p in parts[1:]:
        if p.config != first.config or p.fingerprint != first.fingerprint or p.total != first.total:
            raise ValueError("cannot merge LiRA shadows from different runs: targets, population, seed, "
                             f"shadow count or training differ ({first.config} vs {p.config})")
    order = check_coverage([p.shadow_ids for p in parts], first.total, what="shadows")

    def cat(arrays):
        return np.concatenate(arrays)[order]

    logit_parts = [p.logit_confidences for p in parts]
    logits = None if any(a is None for a in logit_parts) else cat(logit_parts)
    stats = {k: cat([p.stats[k] for p in parts]) for k in first.stats}
    pool_size = next((p.info["pool_size"] for p in parts if p.info), 0)
    return LiraShadows(cat([p.keep for p in parts]), cat([p.confidences for p in parts]), first.fingerprint,
                       logits, _summary(stats, pool_size, first.total), np.arange(first.total), first.total,
                       first.config, stats)


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

    if not shadows.complete:
        raise ValueError(f"these LiRA shadows are one part of a split run ({shadows.num_shadows} of "
                         f"{shadows.total}): merge all parts first (merge_lira_shadows / `tfmodelsec merge`)")
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
