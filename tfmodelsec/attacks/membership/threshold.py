"""Membership signals computed from a model's output probabilities (higher = more likely a member).

The threshold attacks compare one number per record with a global threshold:

* ``loss``: minus the cross-entropy of the true label (Yeom et al. 2018,
  https://arxiv.org/abs/1709.01604);
* ``confidence``: the probability of the true label (Salem et al. 2019, https://arxiv.org/abs/1806.01246);
* ``entropy``: minus the prediction entropy (Salem et al. 2019);
* ``modified_entropy``: minus Song & Mittal's modified entropy, which uses the label
  (Song & Mittal 2021, https://arxiv.org/abs/2003.10595).

:func:`logit_confidence` is LiRA's logit-scaled confidence (Carlini et al. 2022) and
:func:`behaviour_features` the feature vector the shadow and proxy attack classifiers read.
All are vectorised NumPy over the whole batch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["THRESHOLD_SIGNALS", "threshold_scores", "logit_confidence", "behaviour_features"]

#: Smallest probability used inside a log: float32 softmax outputs reach ~1e-38, and
#: clipping at 1e-30 keeps log() finite without changing any ranking that float32 can express.
_TINY = 1e-30


def _prepare(probs, labels):
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    rows = np.arange(len(labels))
    return probs, labels, rows


def _rest(probs, idx):
    """sum_{j != idx} p_j, summed directly: sum(p) - p_idx cancels to 0 once p_idx ~ 1 - 1e-16."""
    mask = np.ones(probs.shape, bool)
    mask[np.arange(len(probs)), idx] = False
    return np.where(mask, probs, 0.0).sum(axis=1)


def _log_probs(probs):
    """log p_j with the top class computed as -log1p(rest / p_max).

    An overfit model's top probability rounds to 1.0 in float32 while the others still
    hold the information (1e-9, 1e-12...): this keeps log p_y ordered where log(1.0) = 0 ties.
    """
    probs = np.asarray(probs, np.float64)
    logp = np.log(np.maximum(probs, _TINY))
    top = probs.argmax(axis=1)
    rows = np.arange(len(probs))
    p_max = probs[rows, top]
    logp[rows, top] = -np.log1p(_rest(probs, top) / np.maximum(p_max, _TINY))
    return logp


def _loss(probs, labels):
    probs, labels, rows = _prepare(probs, labels)
    return _log_probs(probs)[rows, labels]  # = -cross-entropy


def _confidence(probs, labels):
    probs, labels, rows = _prepare(probs, labels)
    return probs[rows, labels]


def _entropy(probs, labels):
    probs = np.asarray(probs, np.float64)
    return np.sum(probs * _log_probs(probs), axis=1)  # = -entropy


def _modified_entropy(probs, labels):
    """Minus Mentr(p, y) = -(1-p_y) log p_y - sum_{j != y} p_j log(1 - p_j)."""
    probs, labels, rows = _prepare(probs, labels)
    # 1 - p_j lost to rounding when p_j ~ 1: the sum of the others is the exact complement.
    others = probs.sum(axis=1, keepdims=True) - probs
    top = probs.argmax(axis=1)
    others[rows, top] = _rest(probs, top)
    terms = probs * np.log(np.maximum(others, _TINY))
    terms[rows, labels] = 0.0
    mentr = -others[rows, labels] * _log_probs(probs)[rows, labels] - terms.sum(axis=1)
    return -mentr


#: Threshold attacks by name -> score function ``(probs, labels) -> scores``.
THRESHOLD_SIGNALS = {
    "loss": _loss,
    "confidence": _confidence,
    "entropy": _entropy,
    "modified_entropy": _modified_entropy,
}


def threshold_scores(signal: str, probs, labels) -> np.ndarray:
    """Membership scores for one threshold attack (see the module docstring)."""
    if signal not in THRESHOLD_SIGNALS:
        raise ValueError(f"`signal` must be one of {sorted(THRESHOLD_SIGNALS)}. Received: signal={signal!r}")
    return THRESHOLD_SIGNALS[signal](probs, labels)


def logit_confidence(probs, labels) -> np.ndarray:
    """phi(p) = log(p_y / (1 - p_y)), the logit-scaled confidence LiRA models as Gaussian.

    ``1 - p_y`` is computed as the sum of the other probabilities, which float32 still
    resolves when ``p_y`` itself has rounded to 1.0.
    """
    probs, labels, rows = _prepare(probs, labels)
    p_y = probs[rows, labels]
    rest = _rest(probs, labels)
    return np.log(np.maximum(p_y, _TINY)) - np.log(np.maximum(rest, _TINY))


def behaviour_features(probs, labels) -> np.ndarray:
    """Per-record features of a model's behaviour for the shadow / proxy attack classifiers.

    Columns: logit-scaled confidence, minus loss, minus entropy, minus modified entropy,
    correctness, and the three largest log-probabilities (label-free, as in Shokri et al.).
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    top = -np.sort(-probs, axis=1)[:, : min(3, probs.shape[1])]
    return np.column_stack([
        logit_confidence(probs, labels),
        _loss(probs, labels),
        _entropy(probs, labels),
        _modified_entropy(probs, labels),
        (probs.argmax(axis=1) == labels).astype(np.float64),
        np.log(np.maximum(top, _TINY)),
    ])
