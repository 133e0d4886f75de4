"""Metrics shared by attacks and defenses (NumPy in, floats out)."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "agreement"]


def accuracy(pred_labels, labels) -> float:
    """Fraction of ``pred_labels`` equal to ``labels``."""
    pred_labels, labels = np.asarray(pred_labels), np.asarray(labels)
    if pred_labels.shape != labels.shape:
        raise ValueError(f"shapes differ: predictions {pred_labels.shape} vs labels {labels.shape}")
    return float(np.mean(pred_labels == labels)) if len(labels) else float("nan")


def agreement(a, b) -> float:
    """Fraction of positions where two label arrays agree (fidelity / consistency)."""
    return accuracy(a, b)


# --- model inversion ---

__all__ += ["total_variation", "class_means", "pearson_correlation", "ssim", "nearest_class_mean",
            "inversion_metrics"]


def total_variation(images) -> np.ndarray:
    """Per-image total variation ``(1/M) sum (x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2`` (M = pixels x channels)."""
    x = np.asarray(images, np.float64)
    if x.ndim != 4:
        raise ValueError(f"`images` must have shape (N, H, W, C). Received shape {x.shape}")
    dh = np.square(np.diff(x, axis=1)).sum(axis=(1, 2, 3))
    dw = np.square(np.diff(x, axis=2)).sum(axis=(1, 2, 3))
    return ((dh + dw) / np.prod(x.shape[1:])).astype(np.float32)


def class_means(x, y, num_classes: int) -> np.ndarray:
    """The "average image" of each class: mean of the real images of that class, ``(K, ...)``."""
    x, y = np.asarray(x, np.float32), np.asarray(y).reshape(-1)
    missing = [c for c in range(num_classes) if not np.any(y == c)]
    if missing:
        raise ValueError(f"`y` has no sample of classes {missing}; every class needs one for its mean")
    return np.stack([x[y == c].mean(axis=0) for c in range(num_classes)])


def pearson_correlation(a, b) -> np.ndarray:
    """Pixel-space Pearson correlation of each pair ``a[i]``, ``b[i]`` (a flat image gives 0)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1.0), 0.0).astype(np.float32)


def ssim(a, b, *, max_val: float = 1.0) -> np.ndarray:
    """Structural similarity (``tf.image.ssim``) per pair; the window shrinks to fit small images."""
    import tensorflow as tf

    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"`a` and `b` must both have shape (N, H, W, C). Received {a.shape} and {b.shape}")
    size = int(min(11, a.shape[1], a.shape[2]))
    return tf.image.ssim(tf.constant(a), tf.constant(b), max_val=max_val, filter_size=size).numpy()


def nearest_class_mean(images, means, *, metric: str = "correlation") -> np.ndarray:
    """Index of the class mean closest to each image: highest Pearson correlation, or least L2."""
    x = np.asarray(images, np.float32).reshape(len(images), -1)
    m = np.asarray(means, np.float32).reshape(len(means), -1)
    if metric == "euclidean":
        return ((x[:, None, :] - m[None, :, :]) ** 2).sum(-1).argmin(axis=1)
    if metric != "correlation":
        raise ValueError(f"`metric` must be 'correlation' or 'euclidean'. Received: metric={metric!r}")
    xs = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-12)
    ms = (m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-12)
    return (xs @ ms.T).argmax(axis=1)


def inversion_metrics(images, labels, *, confidence=None, class_means=None, independent=None,
                      max_val: float = 1.0) -> dict:
    """Recognisability of inverted images (or feature vectors).

    Args:
        images: ``(N, H, W, C)`` inversions, or ``(N, D)`` feature vectors. labels: their target classes.
        confidence: the victim's probability of each target (reported as given).
        class_means: ``(K, ...)`` real class averages (:func:`class_means`) of the images' shape;
            adds Pearson, SSIM (images), and the nearest class mean by correlation and by Euclidean
            distance. For feature vectors both the vectors and the means are first centred on the
            mean of the class means, so the profile every class shares does not count as likeness.
        independent: a classifier never used in the optimisation (a ``keras.Model`` or
            :class:`~tfmodelsec.Victim`); adds its accuracy on the images (reshaped to its input
            when it takes the same number of values in another shape).
        max_val: the images' value span, for SSIM (1 for [0, 1] images, 255 for 0..255).

    Returns:
        ``{"mean_tv", "per_class": [...], ...}`` with means over classes (no TV / SSIM for vectors).
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels).reshape(-1)
    vectors = images.ndim == 2
    per = [{"class": int(c)} for c in labels]
    out = {}
    tv = None if vectors else total_variation(images)
    if tv is not None:
        out["mean_tv"] = float(tv.mean())
    if confidence is not None:
        out["mean_confidence"] = float(np.mean(confidence))
    if class_means is not None:
        means = np.asarray(class_means, np.float32)
        seen = images
        if vectors:
            centre = means.mean(axis=0, keepdims=True)
            seen, means = images - centre, means - centre
        own = means[labels]
        pr = pearson_correlation(seen, own)
        ss = None if vectors else ssim(images, own, max_val=max_val)
        near_c = nearest_class_mean(seen, means, metric="correlation")
        near_e = nearest_class_mean(seen, means, metric="euclidean")
        for i, (row, p, nc, ne) in enumerate(zip(per, pr, near_c, near_e, strict=True)):
            row.update(pearson=float(p), nearest_mean=int(nc), nearest_mean_euclidean=int(ne))
            if ss is not None:
                row["ssim"] = float(ss[i])
        out.update(mean_pearson=float(pr.mean()), nearest_mean_correct=int(np.sum(near_c == labels)),
                   nearest_mean_euclidean_correct=int(np.sum(near_e == labels)))
        if ss is not None:
            out["mean_ssim"] = float(ss.mean())
    if independent is not None:
        from tfmodelsec.models.io import as_victim

        judge = as_victim(independent)
        x = images
        if tuple(x.shape[1:]) != tuple(judge.input_shape) and x[0].size == int(np.prod(judge.input_shape)):
            x = x.reshape(len(x), *judge.input_shape)
        pred = judge.predict_labels(x)
        for row, k in zip(per, pred, strict=True):
            row["independent_prediction"] = int(k)
        out["independent_accuracy"] = float(np.mean(pred == labels))
    if tv is not None:
        for row, t in zip(per, tv, strict=True):
            row["tv"] = float(t)
    out["per_class"] = per
    return out


# --- unlearning ---
def loss_threshold_auc(member_losses, nonmember_losses) -> float:
    """ROC AUC of the loss-threshold membership test (lower loss = "member").

    0.5 is chance: the members (e.g. deleted records after unlearning) are as
    unremarkable as records never seen (Yeom et al., CSF 2018).
    """
    member_losses = np.asarray(member_losses, float).ravel()
    nonmember_losses = np.asarray(nonmember_losses, float).ravel()
    if not len(member_losses) or not len(nonmember_losses):
        raise ValueError("`member_losses` and `nonmember_losses` must both be non-empty. Received "
                         f"{len(member_losses)} and {len(nonmember_losses)} values")
    is_member = np.r_[np.ones(len(member_losses)), np.zeros(len(nonmember_losses))]
    return membership_auc(is_member, -np.r_[member_losses, nonmember_losses])


# --- membership inference ---
__all__ += ["membership_auc", "attacker_advantage", "tpr_at_fpr", "bootstrap_intervals", "non_members_at_fpr"]
# ROC-based figures for membership scores (higher score = "more likely a member"). The ROC
# itself always comes from scikit-learn; these only read points off it.


def _membership_roc(is_member, scores):
    from sklearn.metrics import roc_curve

    is_member = np.asarray(is_member).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if is_member.shape != scores.shape:
        raise ValueError(f"`is_member` and `scores` differ in shape: {is_member.shape} vs {scores.shape}")
    if not (is_member.any() and (1 - is_member).any()):
        raise ValueError("`is_member` must hold both members (1) and non-members (0)")
    if not np.isfinite(scores).all():
        raise ValueError("`scores` holds NaN or infinite values")
    return roc_curve(is_member, scores)


def membership_auc(is_member, scores) -> float:
    """Area under the ROC curve of membership ``scores`` (scikit-learn ``roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    _membership_roc(is_member, scores)  # same validation
    return float(roc_auc_score(np.asarray(is_member).astype(int).ravel(), np.asarray(scores, np.float64).ravel()))


def attacker_advantage(is_member, scores) -> float:
    """max(TPR - FPR) over all thresholds (Yeom et al. 2018's membership advantage)."""
    fpr, tpr, _ = _membership_roc(is_member, scores)
    return float(np.max(tpr - fpr))


def tpr_at_fpr(is_member, scores, fpr: float) -> float:
    """Largest true-positive rate among thresholds whose false-positive rate is <= ``fpr``."""
    if not (isinstance(fpr, (int, float, np.floating)) and 0.0 <= float(fpr) <= 1.0):
        raise ValueError(f"`fpr` must be a number in [0, 1]. Received: fpr={fpr!r}")
    fprs, tprs, _ = _membership_roc(is_member, scores)
    return float(np.max(tprs[fprs <= float(fpr)]))  # (0, 0) is always on the curve


def non_members_at_fpr(n_non_members: int, fpr: float) -> int:
    """How many non-members a threshold at false-positive rate ``fpr`` may flag: ``floor(fpr * n)``.

    The TPR read at that FPR rests on these few records: with 2,500 non-members the 0.1% point
    is decided by 2 of them, with 5,000 by 5.
    """
    return int(np.floor(float(fpr) * int(n_non_members) + 1e-9))


def _grouped_roc(is_member, scores):
    """Sort once: (member flags in descending-score order, last index of each group of equal scores)."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    return is_member[order], ends


def _weighted_roc_stats(members, ends, w_in, w_out, n_in, n_out, fprs):
    """AUC and TPR@FPR of weighted ROCs, one per row of ``w_in`` / ``w_out`` (counts per sorted record).

    Matches ``roc_curve`` / ``roc_auc_score`` on the resampled data: ties form one ROC point and
    the trapezoid over the points is the Mann-Whitney AUC with ties counted one half.
    """
    tp = np.cumsum(w_in * members, axis=1)[:, ends] / n_in
    fp = np.cumsum(w_out * (1 - members), axis=1)[:, ends] / n_out
    zero = np.zeros((len(tp), 1))
    tp, fp = np.hstack([zero, tp]), np.hstack([zero, fp])
    auc = np.sum(np.diff(fp, axis=1) * (tp[:, 1:] + tp[:, :-1]) / 2.0, axis=1)
    tprs = {f: np.where(fp <= f + 1e-12, tp, 0.0).max(axis=1) for f in fprs}
    return auc, tprs


def bootstrap_intervals(is_member, scores, *, fprs=(0.001, 0.01), n_boot: int = 1000, level: float = 0.95,
                        seed: int = 0) -> dict:
    """Percentile bootstrap intervals for the AUC and the TPR at each FPR in ``fprs``.

    Members and non-members are resampled separately (with replacement, their counts kept), so
    every replicate has the original class sizes; each replicate's ROC is read like
    scikit-learn's ``roc_curve`` (the point estimates come from it: :func:`tpr_at_fpr`).

    Args:
        is_member: ``0/1`` truth. scores: higher = member.
        fprs: false-positive rates to read. n_boot: replicates. level: coverage (0.95).
        seed: seeds the resampling; same seed, same interval.

    Returns:
        ``{"auc": (lo, hi), "tpr_at_fpr_0.001": (lo, hi), ..., "n_boot": n_boot, "level": level}``.

    Example:
        >>> ci = bootstrap_intervals([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1], n_boot=200)
        >>> ci["auc"][0] <= 0.75 <= ci["auc"][1]
        True
    """
    _membership_roc(is_member, scores)  # same validation as the point estimates
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 10):
        raise ValueError(f"`n_boot` must be an integer >= 10. Received: n_boot={n_boot!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"`level` must be in (0, 1). Received: level={level!r}")
    is_member = np.asarray(is_member).astype(np.int64).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    members, ends = _grouped_roc(is_member, scores)
    idx_in, idx_out = np.flatnonzero(members == 1), np.flatnonzero(members == 0)
    n_in, n_out = len(idx_in), len(idx_out)
    rng = np.random.default_rng(seed)
    aucs, tprs = [], {f: [] for f in fprs}
    chunk = max(1, min(int(n_boot), 2_000_000 // len(scores)))  # bounds memory at ~16 MB per array
    for start in range(0, int(n_boot), chunk):
        b = min(chunk, int(n_boot) - start)
        w_in = np.zeros((b, len(scores)))
        w_out = np.zeros((b, len(scores)))
        w_in[:, idx_in] = rng.multinomial(n_in, np.full(n_in, 1.0 / n_in), size=b)
        w_out[:, idx_out] = rng.multinomial(n_out, np.full(n_out, 1.0 / n_out), size=b)
        auc, tpr = _weighted_roc_stats(members, ends, w_in, w_out, n_in, n_out, fprs)
        aucs.append(auc)
        for f in fprs:
            tprs[f].append(tpr[f])
    alpha = (1.0 - float(level)) / 2.0

    def interval(values):
        v = np.concatenate(values)
        return (float(np.quantile(v, alpha)), float(np.quantile(v, 1.0 - alpha)))

    out = {"auc": interval(aucs)}
    out.update({f"tpr_at_fpr_{f:g}": interval(tprs[f]) for f in fprs})
    out.update(n_boot=int(n_boot), level=float(level), seed=int(seed))
    return out
