"""Label-only membership inference: what an attacker learns when the victim answers labels only.

* ``gap`` (Yeom et al. 2018, https://arxiv.org/abs/1709.01604): "member" if the victim labels
  the record correctly; the trivial baseline, AUC = 1/2 + (train acc. - test acc.) / 2.
* ``label_augment`` and ``label_noise`` (Choquette-Choo, Tramer, Carlini, Papernot, ICML 2021,
  https://arxiv.org/abs/2007.14321): a model is more robust around its training records, so
  the score is the fraction of perturbed copies of the record the victim still labels
  correctly. Augmentation: image translations by up to ``shift`` pixels (edges repeated);
  for feature vectors, a fraction ``swap`` of the features replaced by another record's
  values. Noise: Gaussian noise of standard deviation ``noise`` times the input range's span
  (images) or each feature's standard deviation (feature vectors), clipped to the victim's
  input range.

Every query goes through :class:`~tfmodelsec.oracle.BlackBox` (counted, budgeted, any defense
applied), which may answer labels, top-k or probabilities: only the arg-max is used, so these
attacks work against the ``label`` defense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfmodelsec.utils import check_positive

__all__ = ["LABEL_ATTACKS", "LabelOnly", "label_only_scores"]

LABEL_ATTACKS = ("gap", "label_augment", "label_noise")
#: Records perturbed per oracle call (bounds memory: records x copies x input size floats).
_CHUNK = 512
_DEFAULT_NOISE = {"images": 0.1, "features": 0.5}


@dataclass(frozen=True)
class LabelOnly:
    """Settings of the label-only attacks.

    Args:
        queries: noisy copies per record (``label_noise``), and resampled copies per feature
            vector (``label_augment`` on feature vectors).
        shift: largest image translation in pixels (``label_augment`` on images):
            ``(2 * shift + 1) ** 2 - 1`` translated copies per record.
        noise: Gaussian noise scale (``None``: 0.1 of the range span for images, 0.5 of each
            feature's standard deviation for feature vectors).
        swap: fraction of features replaced per copy (``label_augment`` on feature vectors).
    """

    queries: int = 16
    shift: int = 1
    noise: float | None = None
    swap: float = 0.1

    def __post_init__(self):
        check_positive("queries", self.queries, integer=True)
        check_positive("shift", self.shift, integer=True)
        if self.noise is not None:
            check_positive("noise", self.noise)
        if not (isinstance(self.swap, (int, float)) and 0.0 < float(self.swap) <= 1.0):
            raise ValueError(f"`swap` must be in (0, 1]. Received: swap={self.swap!r}")


def _labels(oracle, x):
    out = np.asarray(oracle(x))
    return out if out.ndim == 1 else out.argmax(axis=1)


def _bounds(oracle):
    rng = getattr(oracle, "input_range", None)
    return (-np.inf, np.inf) if rng is None else (float(rng[0]), float(rng[1]))


def _shifted(x, shift):
    """All translations of images ``x`` by up to ``shift`` pixels, edges repeated: (copies, n, H, W, C)."""
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="edge")
    offsets = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1) if (dy, dx) != (0, 0)]
    return np.stack([padded[:, shift + dy:shift + dy + h, shift + dx:shift + dx + w] for dy, dx in offsets])


def _copies(kind, x, cfg, rng, lo, hi, scale, donors):
    """Perturbed copies ``(copies, n, ...)`` of the records ``x`` for one label-only attack."""
    images = x.ndim == 4
    if kind == "label_augment" and images:
        return _shifted(x, cfg.shift)
    if kind == "label_augment":  # feature vectors: resample a fraction of the features from other records
        out = np.repeat(x[None], cfg.queries, axis=0)
        mask = rng.uniform(size=out.shape) < cfg.swap
        donor = donors[rng.integers(0, len(donors), size=out.shape[:2])]
        return np.where(mask, donor, out)
    sigma = (cfg.noise if cfg.noise is not None else _DEFAULT_NOISE["images" if images else "features"]) * scale
    noisy = x[None] + rng.normal(size=(cfg.queries, *x.shape)) * sigma
    return np.clip(noisy, lo, hi)


def label_only_scores(oracle, x, y, *, attack: str, config: LabelOnly | None = None, donors=None,
                      seed: int = 0) -> tuple[np.ndarray, dict]:
    """Label-only membership scores for the records ``(x, y)`` (higher = member).

    Args:
        oracle: a :class:`~tfmodelsec.oracle.BlackBox` (any output: only labels are used).
        x, y: target records and their true labels.
        attack: one of :data:`LABEL_ATTACKS`.
        config: :class:`LabelOnly` settings.
        donors: records whose feature values ``label_augment`` and the feature scale of
            ``label_noise`` draw on (default: ``x``); their labels are never used.
        seed: seeds the perturbations.

    Returns:
        ``(scores, info)``: the fraction of the record and its copies labelled correctly,
        and ``info`` with the queries sent per record.
    """
    if attack not in LABEL_ATTACKS:
        raise ValueError(f"`attack` must be one of {LABEL_ATTACKS}. Received: attack={attack!r}")
    cfg = config or LabelOnly()
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    before = getattr(oracle, "queries_used", 0)
    correct = (_labels(oracle, x) == y).astype(np.float64)
    if attack == "gap":
        return correct, {"queries_per_record": 1, "victim_queries": int(oracle.queries_used - before)}
    lo, hi = _bounds(oracle)
    donors = x if donors is None else np.asarray(donors, np.float32)
    if x.ndim == 4:
        scale = (hi - lo) if np.isfinite(hi - lo) else float(donors.max() - donors.min())
    else:
        scale = donors.reshape(len(donors), -1).std(axis=0).reshape(x.shape[1:])
    rng = np.random.default_rng(seed)
    total = correct.copy()
    copies = 0
    for start in range(0, len(x), _CHUNK):
        sl = slice(start, start + _CHUNK)
        batch = _copies(attack, x[sl], cfg, rng, lo, hi, scale, donors).astype(np.float32)
        copies = len(batch)
        labels = _labels(oracle, batch.reshape(-1, *x.shape[1:])).reshape(copies, -1)
        total[sl] += (labels == y[sl][None]).sum(axis=0)
    info = {"queries_per_record": 1 + copies, "victim_queries": int(oracle.queries_used - before),
            "config": {"queries": cfg.queries, "shift": cfg.shift, "noise": cfg.noise, "swap": cfg.swap}}
    return total / (1 + copies), info
