"""Self-training of a stolen student on the attacker's unlabeled pool (no queries).

Pseudo-labels (Lee, "Pseudo-Label", ICML-W 2013) spread by label propagation in
pixel space (Zhu & Ghahramani 2002): in each round the student's most confident
pool predictions (confidence >= ``threshold``, at most a growing per-class quota)
and the queried samples (the victim's labels) become anchors; every pool image
takes the majority label of its ``neighbours`` nearest anchors (cosine), kept when
the vote reaches ``vote_share`` and (``agree``) the student predicts the same
class. The student is then fitted to these labels under random shifts and
rotations (labels from clean images, training on augmented ones, as in FixMatch's
weak/strong split) while the queried samples keep their victim answers in every
round's mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfmodelsec.utils import check_positive, check_probability, progbar

__all__ = ["SemiSupervised", "confident_anchors", "propagate_labels", "self_train"]

_EPS = 1e-7


@dataclass(frozen=True)
class SemiSupervised:
    """Self-training on the attacker's unlabeled pool (no queries).

    Args:
        rounds: pseudo-labelling rounds after the distillation stage.
        threshold: least student confidence for an anchor.
        neighbours: anchors voting on each pool image's label.
        vote_share: least share of the vote for a pseudo-label.
        agree: keep only pseudo-labels on which the vote and the student agree (two
            views whose errors differ: fewer wrong labels, at the cost of some hard images).
        pool_size: unlabeled samples considered (a seeded subset of the pool).
        epochs: epochs over the pseudo-labelled set per round.
        query_share: the queried samples are repeated to make up about this share of
            each round's training set, so their (trusted) answers are not swamped.
        learning_rate: Adam's rate during self-training (``None``: the distillation rate).
    """

    rounds: int = 3
    threshold: float = 0.9
    neighbours: int = 10
    vote_share: float = 0.8
    agree: bool = True
    pool_size: int = 8000
    epochs: int = 3
    query_share: float = 0.25
    learning_rate: float | None = None

    def __post_init__(self):
        check_positive("rounds", self.rounds, integer=True)
        check_probability("threshold", self.threshold)
        check_positive("neighbours", self.neighbours, integer=True)
        check_probability("vote_share", self.vote_share)
        check_positive("pool_size", self.pool_size, integer=True)
        check_positive("epochs", self.epochs, integer=True)
        check_probability("query_share", self.query_share)
        if self.learning_rate is not None:
            check_positive("learning_rate", self.learning_rate)


def packed_targets(targets, is_query: bool) -> np.ndarray:
    """Targets with a last column flagging victim answers (1) or pseudo-labels (0)."""
    flag = np.full((len(targets), 1), 1.0 if is_query else 0.0, np.float32)
    return np.concatenate([targets.astype(np.float32), flag], axis=1)


def repeat_rows(arrays, n, rng):
    """Repeat rows (whole copies, then a seeded remainder) until there are >= ``n``."""
    size = len(arrays[0])
    reps = max(1, n // size)
    idx = np.tile(np.arange(size), reps)
    if n > len(idx):
        idx = np.concatenate([idx, rng.choice(size, n - len(idx), replace=False)])
    return [a[idx] for a in arrays]


def confident_anchors(probs, threshold, quota):
    """Indices of the most confident predictions: >= threshold, <= quota per class."""
    conf, lab = probs.max(axis=1), probs.argmax(axis=1)
    keep = []
    for c in range(probs.shape[1]):
        idx = np.flatnonzero((lab == c) & (conf >= threshold))
        keep.append(idx[np.argsort(-conf[idx], kind="stable")][:quota])
    return np.concatenate(keep), lab


def propagate_labels(features, anchor_features, anchor_labels, num_classes, k, share, chunk=2048):
    """Majority label of each row's ``k`` nearest anchors (cosine) and the vote share it got."""
    import tensorflow as tf

    def unit(a):
        a = a.reshape(len(a), -1)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), _EPS)

    anchors = tf.constant(unit(anchor_features))
    k = min(int(k), len(anchor_labels))
    labels, shares = [], []
    for i in range(0, len(features), chunk):
        sim = tf.matmul(tf.constant(unit(features[i:i + chunk])), anchors, transpose_b=True)
        nn = tf.math.top_k(sim, k=k).indices.numpy()
        votes = np.eye(num_classes, dtype=np.float32)[anchor_labels[nn]].sum(axis=1)
        labels.append(votes.argmax(axis=1))
        shares.append(votes.max(axis=1) / k)
    labels, shares = np.concatenate(labels), np.concatenate(shares)
    return np.flatnonzero(shares >= share), labels


def self_train(distiller, pool, x_q, y_q, cfg: SemiSupervised, rng, *, batch_size: int = 128,
               verbose: int = 0):
    """Run ``cfg.rounds`` rounds on ``distiller`` (a compiled stealing distiller).

    Args:
        distiller: the Keras model whose ``student`` is trained (targets packed by
            :func:`packed_targets`).
        pool: unlabeled images; x_q / y_q: queried images and their packed answers.

    Returns:
        (pseudo-labels used per round, loss per epoch).
    """
    from tfmodelsec.models.train import fit_seeded

    net = distiller.student
    num_classes = y_q.shape[1] - 1
    sub = pool if len(pool) <= cfg.pool_size else pool[rng.choice(len(pool), cfg.pool_size, replace=False)]
    if cfg.learning_rate is not None:
        distiller.optimizer.learning_rate.assign(cfg.learning_rate)
    counts, losses = [], []
    bar = progbar(cfg.rounds, verbose=verbose, unit_name="round")
    for r in range(1, cfg.rounds + 1):
        probs = np.asarray(net.predict(sub, batch_size=1024, verbose=0))
        quota = int(np.ceil(len(sub) / num_classes * r / cfg.rounds))
        anchor, own = confident_anchors(probs, cfg.threshold, quota)
        keep, labels = propagate_labels(sub, np.concatenate([x_q, sub[anchor]]),
                                        np.concatenate([y_q[:, :-1].argmax(axis=1), own[anchor]]),
                                        num_classes, cfg.neighbours, cfg.vote_share)
        if cfg.agree:
            keep = keep[labels[keep] == own[keep]]
        keep = rng.permutation(keep)
        counts.append(len(keep))
        if len(keep):
            y_p = packed_targets(np.eye(num_classes, dtype=np.float32)[labels[keep]], False)
            n_q = int(np.ceil(len(keep) * cfg.query_share / max(1e-9, 1.0 - cfg.query_share)))
            xq_r, yq_r = repeat_rows([x_q, y_q], max(n_q, len(x_q)), rng)
            h = fit_seeded(distiller, np.concatenate([xq_r, sub[keep]]), np.concatenate([yq_r, y_p]),
                           epochs=cfg.epochs, batch_size=batch_size, rng=rng)
            losses += h["loss"]
        bar.update(r)
    return counts, losses
