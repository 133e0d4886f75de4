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


# --- unlearning ---
def loss_threshold_auc(member_losses, nonmember_losses) -> float:
    """ROC AUC of the loss-threshold membership test (lower loss = "member").

    0.5 is chance: the members (e.g. deleted records after unlearning) are as
    unremarkable as records never seen (Yeom et al., CSF 2018).
    """
    from sklearn.metrics import roc_auc_score

    member_losses = np.asarray(member_losses, float).ravel()
    nonmember_losses = np.asarray(nonmember_losses, float).ravel()
    if not len(member_losses) or not len(nonmember_losses):
        raise ValueError("`member_losses` and `nonmember_losses` must both be non-empty. Received "
                         f"{len(member_losses)} and {len(nonmember_losses)} values")
    labels = np.r_[np.ones(len(member_losses)), np.zeros(len(nonmember_losses))]
    return float(roc_auc_score(labels, -np.r_[member_losses, nonmember_losses]))
