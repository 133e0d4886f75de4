"""The likelihood-ratio attack, LiRA (Carlini et al. 2022, https://arxiv.org/abs/2112.03570).

``N`` reference ("shadow") models are trained on random halves of the target records, in
complementary pairs (model ``2i + 1`` trains on exactly the records model ``2i`` leaves out),
so that every target is in the training set of exactly ``N / 2`` of them (``N`` even) and any
even number of leading models is balanced too (RMIA with 2 reference models uses the first
pair). For each target, the logit-scaled confidence phi = log(p_y / (1 - p_y)) of the models
that trained on it ("in") and of those that did not ("out") is fitted by a Gaussian; the
victim's phi on the record is scored by

* online: log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2), the likelihood ratio;
* offline: (phi - mu_out) / s_out, which orders records exactly as the paper's one-sided
  test 1 - Pr[Z > phi], Z ~ N(mu_out, s_out^2), without its saturation at 1.

``fixed_variance=True`` uses one variance per side, estimated over all targets (the
paper's choice for few shadow models); with fewer than two in (or out) models per target
the per-target variance does not exist and the fixed variance is used.

The same reference models serve RMIA (:mod:`.rmia`): given a ``population``, their
confidences on a seeded sample of it (records no reference model trains on) are kept too.
Models are trained ``training.at_once`` at a time (:mod:`.references`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfmodelsec.attacks.membership.references import predict_signals, train_models
from tfmodelsec.attacks.membership.shadow import ShadowTraining, reference_architecture
from tfmodelsec.utils import read_npz, write_npz

__all__ = ["LiraShadows", "train_lira_shadows", "merge_lira_shadows", "lira_scores", "records_fingerprint",
           "row_keys", "check_disjoint", "DEFAULT_POPULATION_SIZE"]

#: Smallest standard deviation of a fitted Gaussian (logit units): keeps the density finite
#: when all reference models agree to float precision.
_MIN_STD = 1e-6
#: Population records (RMIA's z) the reference models are read on: RMIA's score moves in steps
#: of 1 / |Z|, and 5,000 keep it finer than a 0.1% FPR step while costing one prediction pass.
DEFAULT_POPULATION_SIZE = 5000


def records_fingerprint(x, y) -> str:
    """A short hash of the target records, so shadows are only reused on the same targets."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x, np.float32).tobytes())
    digest.update(np.ascontiguousarray(y, np.int64).tobytes())
    return digest.hexdigest()[:16]


def row_keys(x) -> np.ndarray:
    """One hashable key per record (its float32 bytes), for exact-duplicate checks."""
    flat = np.ascontiguousarray(np.asarray(x, np.float32).reshape(len(x), -1))
    return flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()


def check_disjoint(name_a, x_a, name_b, x_b, *, fix: str) -> None:
    """``ValueError`` naming both arguments if a record of ``x_a`` also appears in ``x_b``."""
    both = np.intersect1d(row_keys(x_a), row_keys(x_b))
    if len(both):
        raise ValueError(f"`{name_a}` and `{name_b}` overlap: {len(both)} records appear in both; {fix}")


@dataclass
class LiraShadows:
    """Trained LiRA / RMIA reference models, reduced to what scoring needs.

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
        population_ids: indices of RMIA's population sample z in the ``population`` the
            models were trained with (``None`` without a population); no model trained on z.
        population_confidences, population_logit_confidences: ``(N, len(population_ids))``,
            as ``confidences`` / ``logit_confidences`` on z.
        population_fingerprint: :func:`records_fingerprint` of that whole population.
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
    population_ids: np.ndarray | None = None
    population_confidences: np.ndarray | None = None
    population_logit_confidences: np.ndarray | None = None
    population_fingerprint: str | None = None

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
        for key in ("logit_confidences", "population_ids", "population_confidences",
                    "population_logit_confidences"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        header = {"format": _FORMAT, "version": 2, "fingerprint": self.fingerprint, "total": self.total,
                  "config": self.config, "info": self.info, "population_fingerprint": self.population_fingerprint}
        return write_npz(path, header=header, compressed=True, **arrays)

    @classmethod
    def load(cls, path) -> LiraShadows:
        """Read what :meth:`save` wrote (versions 1 and 2); ``ValueError`` for any other file."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no LiRA shadows file at {str(path)!r} (written by `tfmodelsec membership` "
                                    "as lira_shadows.npz, or by `tfmodelsec merge`)")
        header, arrays = read_npz(path, format=_FORMAT, what="a LiRA shadows file")
        stats = {k[len("stat_"):]: v for k, v in arrays.items() if k.startswith("stat_")}
        return cls(arrays["keep"].astype(bool), arrays["confidences"], header["fingerprint"],
                   arrays.get("logit_confidences"), header["info"], arrays["shadow_ids"], header["total"],
                   header["config"], stats, arrays.get("population_ids"), arrays.get("population_confidences"),
                   arrays.get("population_logit_confidences"), header.get("population_fingerprint"))


_FORMAT = "tfmodelsec-lira-shadows"


def _summary(stats: dict, pool_size: int, total: int, architecture: str | None = None) -> dict:
    out = {"num_shadows": total, "pool_size": pool_size,
           "shadow_train_size": float(np.mean(stats["train_size"])),
           "shadow_accuracy_in": float(np.mean(stats["accuracy_in"])),
           "shadow_accuracy_out": float(np.mean(stats["accuracy_out"]))}
    if architecture is not None:
        out["reference_model"] = architecture
    return out


def _config(x, y, population, population_size, num_shadows, training, seed) -> dict:
    model = training.model if training.model is None or isinstance(training.model, str) else "custom"
    return {"targets": records_fingerprint(x, y), "num_shadows": int(num_shadows), "seed": int(seed),
            "population": None if population is None else records_fingerprint(*population),
            "population_size": None if population is None else int(population_size),
            "training": {"model": model, "epochs": training.epochs, "batch_size": training.batch_size,
                         "learning_rate": training.learning_rate, "schedule": training.schedule}}


def _keep_matrix(num_shadows: int, n: int, seed: int) -> np.ndarray:
    """Complementary pairs of random halves: rows ``2i`` and ``2i + 1`` split the ``n`` records."""
    rng = np.random.default_rng(seed)
    keep = np.zeros((num_shadows, n), bool)
    for i in range(0, num_shadows, 2):
        keep[i, rng.permutation(n)[: n // 2]] = True
        if i + 1 < num_shadows:
            keep[i + 1] = ~keep[i]
    return keep


def population_sample(population, size: int | None, seed: int) -> np.ndarray:
    """Seeded indices of RMIA's z: ``size`` records of ``population`` (all of them if fewer)."""
    n = len(population[0])
    size = DEFAULT_POPULATION_SIZE if size is None else int(size)
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([int(seed), 1]).choice(n, size=size, replace=False))


def train_lira_shadows(victim, x, y, *, num_shadows: int, population=None, population_size: int | None = None,
                       training=None, strategy=None, seed: int = 0, part: tuple[int, int] | None = None,
                       verbose: int = 1) -> LiraShadows:
    """Train ``num_shadows`` reference models on complementary random halves of the targets ``(x, y)``.

    Args:
        victim: the :class:`~tfmodelsec.models.io.Victim` whose architecture (or an MLP of
            its input size, see :class:`ShadowTraining`) the models take.
        x, y: the target records (members and non-members).
        num_shadows: reference models (LiRA needs >= 2; an even number keeps every target
            in exactly half of them).
        population: ``(x, y)`` attacker records disjoint from the targets: a seeded sample
            of ``population_size`` of them (RMIA's z, default
            :data:`DEFAULT_POPULATION_SIZE`) is read by every model; none is trained on.
        training: :class:`ShadowTraining`; strategy: ``tf.distribute`` strategy.
        seed: the halves, the z sample and each model's seed (``seed + 1 + i``).
        part: ``(i, n)`` trains only the shadows :func:`~tfmodelsec.distribute.part_range`
            gives part ``i`` of ``n`` (the halves and each model's seed depend on the
            model's index alone), for :func:`merge_lira_shadows` to join.
        verbose: 0 silences progress.
    """
    from tfmodelsec.distribute import part_range

    training = training or ShadowTraining()
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
    keep = _keep_matrix(num_shadows, len(x), seed)
    ids = np.asarray(part_range(num_shadows, part), np.int64)
    z_ids = z = None
    if population is not None:
        check_disjoint("population", population[0], "targets", x,
                       fix="remove the targets from the population (its records must be known non-members)")
        z_ids = population_sample(population, population_size, seed)
        z = (np.asarray(population[0][z_ids], np.float32), np.asarray(population[1][z_ids], np.int64))
    build, architecture = reference_architecture(victim, training)
    models = train_models(build, x, y, [np.flatnonzero(keep[i]) for i in ids], [seed + 1 + int(i) for i in ids],
                          training, at_once=training.at_once, strategy=strategy, verbose=verbose)
    on_targets = predict_signals(models, x, y) if len(ids) else None
    on_z = predict_signals(models, *z) if len(ids) and z is not None else None
    correct = on_targets["correct"] if on_targets else np.zeros((0, len(x)), bool)
    stats = {"accuracy_in": np.array([correct[r][keep[i]].mean() for r, i in enumerate(ids)]),
             "accuracy_out": np.array([correct[r][~keep[i]].mean() for r, i in enumerate(ids)]),
             "train_size": np.array([keep[i].sum() for i in ids])}
    info = _summary(stats, len(x), num_shadows, architecture) if len(ids) else {}
    empty = np.zeros((0, len(x)))
    return LiraShadows(
        keep[ids], on_targets["confidences"] if on_targets else empty, records_fingerprint(x, y),
        on_targets["logit_confidences"] if on_targets else empty, info, ids, num_shadows,
        _config(x, y, population, len(z_ids) if z_ids is not None else None, num_shadows, training, seed), stats,
        z_ids, None if z is None else (on_z["confidences"] if on_z else np.zeros((0, len(z_ids)))),
        None if z is None else (on_z["logit_confidences"] if on_z else np.zeros((0, len(z_ids)))),
        None if population is None else records_fingerprint(*population))


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

    def cat(key):
        arrays = [getattr(p, key) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)[order]

    stats = {k: np.concatenate([p.stats[k] for p in parts])[order] for k in first.stats}
    info = next((p.info for p in parts if p.info), {})
    return LiraShadows(cat("keep"), cat("confidences"), first.fingerprint, cat("logit_confidences"),
                       _summary(stats, info.get("pool_size", 0), first.total, info.get("reference_model")),
                       np.arange(first.total), first.total, first.config, stats, first.population_ids,
                       cat("population_confidences"), cat("population_logit_confidences"),
                       first.population_fingerprint)


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
