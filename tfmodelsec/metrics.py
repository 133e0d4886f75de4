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


# --- membership inference ---
__all__ += ["membership_auc", "attacker_advantage", "tpr_at_fpr"]
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
