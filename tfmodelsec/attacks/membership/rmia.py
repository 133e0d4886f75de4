"""RMIA: robust membership inference (Zarifzadeh, Liu, Shokri, ICML 2024, https://arxiv.org/abs/2312.03262).

For a target ``x`` and the victim ``theta``, RMIA compares the likelihood ratio of ``x`` with
those of population records ``z`` the victim did not train on::

    LR(x, z) = (Pr(x | theta) / Pr(x)) / (Pr(z | theta) / Pr(z))
    Score(x) = fraction of z with LR(x, z) > gamma

``Pr(. | theta)`` is the victim's probability of the record's label and ``Pr(.)`` its
average over reference models trained on random halves of the data:

* online: the mean over all reference models (for a target, half of them trained on it);
* offline: only the models that did not train on the record are available, and the mean
  over models that did is approximated from theirs: ``Pr(.) = ((1 + a) Pr_out(.) + (1 - a)) / 2``
  (the paper's offline rule; ``a = 1`` trusts ``Pr_out`` as is, ``a = 0`` assumes the in-models
  are certain). No reference model trains on a population record, so ``Pr(z)`` always takes
  this form.

Probabilities are read as ``sigmoid(phi)`` with phi LiRA's logit-scaled confidence, which
keeps the information float32 rounding removes from ``p_y`` near 1.

For one victim and one set of z, the score is a non-decreasing step function of
``Pr(x | theta) / Pr(x)``; records on the same step (the same count of z) are ordered by that
ratio through a tie-break below ``1 / |Z|``, so ``floor(score * |Z|)`` is the paper's count
and the ROC is not flattened by ties at low FPR.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rmia_scores", "tune_offline_a", "probability_from_confidence", "DEFAULT_A"]

#: The paper's and ML Privacy Meter's default for the offline approximation.
DEFAULT_A = 0.3
_A_GRID = np.round(np.arange(0.0, 1.01, 0.1), 2)


def probability_from_confidence(confidence) -> np.ndarray:
    """``p_y / (p_y + sum of the others) = sigmoid(phi)`` from logit-scaled confidences."""
    from scipy.special import expit

    return expit(np.asarray(confidence, np.float64))


def _signals(shadows, logits):
    if logits:
        if shadows.logit_confidences is None or shadows.population_logit_confidences is None:
            raise ValueError("`logits=True` but these reference models have no softmax head to read logits from")
        return shadows.logit_confidences, shadows.population_logit_confidences
    return shadows.confidences, shadows.population_confidences


def _pr_out(p_ref, out_mask):
    counts = out_mask.sum(axis=0)
    return np.where(out_mask, p_ref, 0.0).sum(axis=0) / np.maximum(counts, 1), counts


def _ratios(p_x, p_z, ref_x, keep, ref_z, online, a):
    if online:
        pr_x = ref_x.mean(axis=0)
    else:
        pr_out, _ = _pr_out(ref_x, ~keep)
        pr_x = ((1.0 + a) * pr_out + (1.0 - a)) / 2.0
    pr_z = ((1.0 + a) * ref_z.mean(axis=0) + (1.0 - a)) / 2.0
    tiny = np.finfo(np.float64).tiny
    return p_x / np.maximum(pr_x, tiny), p_z / np.maximum(pr_z, tiny)


def _score(ratio_x, ratio_z, gamma):
    thresholds = np.sort(gamma * ratio_z)
    count = np.searchsorted(thresholds, ratio_x, side="left")  # z with gamma * ratio_z < ratio_x
    # Tie-break in (0, 1/2) increasing in ratio_x: never lifts a record to the next count.
    tie = 0.25 + np.arctan(np.log(np.maximum(ratio_x, np.finfo(np.float64).tiny))) / (2.0 * np.pi)
    return (count + tie) / len(ratio_z), count


def tune_offline_a(shadows, *, num_references: int | None = None, logits: bool = False) -> tuple[float, dict]:
    """Pick ``a`` by attacking one reference model with the others (ML Privacy Meter's recipe).

    The last reference model plays the victim (its training set is known); offline RMIA with
    the first ``num_references`` of the others scores the targets each of them left out, for
    ``a`` in 0, 0.1, ..., 1; the ``a`` with the highest AUC is returned with the AUC per ``a``.
    """
    from tfmodelsec.metrics import membership_auc

    conf, conf_z = _signals(shadows, logits)
    total = shadows.num_shadows
    if total < 3:
        raise ValueError(f"a='auto' attacks one reference model with the others and needs at least 3. "
                         f"Received {total} reference models: pass a number for `a` (e.g. {DEFAULT_A})")
    pseudo = total - 1
    k = min(total - 1, num_references or total - 1)
    refs = np.arange(k)
    p = probability_from_confidence(conf)
    p_z = probability_from_confidence(conf_z)
    keep = shadows.keep[refs]
    usable = (~keep).any(axis=0)
    truth = shadows.keep[pseudo][usable].astype(int)
    if truth.all() or not truth.any():
        raise ValueError("a='auto' found no targets both in and out of the pseudo-victim among those its "
                         "reference models left out: pass a number for `a`")
    aucs = {}
    for a in _A_GRID:
        rx, rz = _ratios(p[pseudo][usable], p_z[pseudo], p[refs][:, usable], keep[:, usable], p_z[refs],
                         False, float(a))
        aucs[float(a)] = membership_auc(truth, _score(rx, rz, 1.0)[0])
    best = max(aucs, key=lambda v: (aucs[v], -v))
    return best, {"auc_by_a": aucs, "pseudo_victim": int(pseudo)}


def rmia_scores(shadows, victim_confidence, population_confidence, *, online: bool = True, a=DEFAULT_A,
                gamma: float = 1.0, num_references: int | None = None,
                logits: bool = False) -> tuple[np.ndarray, dict]:
    """RMIA membership scores (higher = member) from reference models and the victim's confidences.

    Args:
        shadows: :class:`~tfmodelsec.attacks.membership.lira.LiraShadows` trained with a
            population (their outputs on z).
        victim_confidence: the victim's logit-scaled confidence on the targets.
        population_confidence: the same on the population sample z (``shadows.population_ids``).
        online: use the reference models that trained on each target too.
        a: the offline approximation's parameter in [0, 1], or ``"auto"`` (:func:`tune_offline_a`).
        gamma: the likelihood-ratio threshold (> 0).
        num_references: use only the first this many reference models (default: all);
            the models come in complementary pairs, so an even number is balanced.
        logits: read the references' float64 logits (the victim's confidences must then
            come from its logits too).

    Returns:
        ``(scores, info)``.

    Raises:
        ValueError: no population outputs, fewer reference models than the variant needs,
            ``a`` / ``gamma`` out of range.

    Example:
        >>> scores, info = rmia_scores(shadows, phi_targets, phi_z, online=False, num_references=2)  # doctest: +SKIP
    """
    if not shadows.complete:
        raise ValueError(f"these reference models are one part of a split run ({shadows.num_shadows} of "
                         f"{shadows.total}): merge all parts first (merge_lira_shadows / `tfmodelsec merge`)")
    if shadows.population_confidences is None:
        raise ValueError("RMIA compares targets with population records z, but these reference models were "
                         "trained without a population: train them with `population=(x, y)` (CLI: --population "
                         "train-rest or test-rest)")
    total = shadows.num_shadows
    k = total if num_references is None else num_references
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= total):
        raise ValueError(f"`num_references` must be an integer in [1, {total}] (the reference models "
                         f"trained). Received: num_references={num_references!r}")
    if not (isinstance(gamma, (int, float, np.floating)) and np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"`gamma` must be a number > 0. Received: gamma={gamma!r}")
    info: dict = {"online": bool(online), "num_references": int(k), "gamma": float(gamma),
                  "population_size": int(len(shadows.population_ids))}
    if isinstance(a, str) and a == "auto":
        a, tuning = tune_offline_a(shadows, num_references=k, logits=logits)
        info["a_tuning"] = tuning
    if not (isinstance(a, (int, float, np.floating)) and 0.0 <= float(a) <= 1.0):
        raise ValueError(f"`a` must be a number in [0, 1] or 'auto'. Received: a={a!r}")
    info["a"] = float(a)
    conf, conf_z = _signals(shadows, logits)
    keep = shadows.keep[:k]
    if not online:
        uncovered = int((keep.all(axis=0)).sum())
        if uncovered:
            raise ValueError(f"offline RMIA needs, for every target, a reference model that did not train on it: "
                             f"with num_references={k}, {uncovered} targets have none; use num_references >= 2 "
                             "(models come in complementary pairs)")
    victim_confidence = np.asarray(victim_confidence, np.float64)
    population_confidence = np.asarray(population_confidence, np.float64)
    if victim_confidence.shape != (keep.shape[1],) or population_confidence.shape != (conf_z.shape[1],):
        raise ValueError(f"the victim's confidences must cover the {keep.shape[1]} targets and the "
                         f"{conf_z.shape[1]} population records the reference models were read on. Received "
                         f"{victim_confidence.shape} and {population_confidence.shape}")
    ratio_x, ratio_z = _ratios(probability_from_confidence(victim_confidence),
                               probability_from_confidence(population_confidence),
                               probability_from_confidence(conf[:k]), keep,
                               probability_from_confidence(conf_z[:k]), online, float(a))
    scores, count = _score(ratio_x, ratio_z, float(gamma))
    info["fraction_dominated_mean"] = float(np.mean(count / len(ratio_z)))
    return scores, info
