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
