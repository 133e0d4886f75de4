"""Membership inference: was this record in the model's training set, and how sure can one be?

One entry point, :func:`membership_inference`, runs any of the attacks below on a victim
and a set of target records whose membership is known to the auditor, and returns a
:class:`MembershipResult` (per-record scores, AUC, attacker advantage, TPR at low FPR with
bootstrap intervals, log-log ROC). Scores are oriented so that higher means "more likely a member".

Attacks (``attack=``):
    ``loss``, ``confidence``, ``entropy``, ``modified_entropy``: global-threshold attacks
    (:mod:`.threshold`); ``shadow``: Shokri et al. 2017 and
    ``proxy``: the distilled proxy of seed lab 002 (:mod:`.shadow`);
    ``lira``: Carlini et al. 2022, online or offline (:mod:`.lira`);
    ``rmia``: Zarifzadeh et al. 2024, online or offline (:mod:`.rmia`), on the same
    reference models as LiRA; ``gap``, ``label_augment``, ``label_noise``: label-only
    attacks (:mod:`.label_only`).

The victim is only queried through :class:`tfmodelsec.oracle.BlackBox` (pass one to
attack a defended or budgeted victim). Its architecture, with fresh weights, is the
default for shadow and reference models (an MLP of its input size when it cannot be rebuilt).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tfmodelsec.attacks.membership.label_only import (
    LABEL_ATTACKS,
    LabelOnly,
    label_only_scores,
)
from tfmodelsec.attacks.membership.lira import (
    LiraShadows,
    check_disjoint,
    lira_scores,
    records_fingerprint,
    train_lira_shadows,
)
from tfmodelsec.attacks.membership.rmia import DEFAULT_A, rmia_scores
from tfmodelsec.attacks.membership.shadow import (
    ShadowTraining,
    predict_probabilities,
    proxy_attack_scores,
    shadow_attack_scores,
    softmax64,
)
from tfmodelsec.attacks.membership.threshold import (
    THRESHOLD_SIGNALS,
    logit_confidence,
    threshold_scores,
)
from tfmodelsec.utils import check_choice, check_positive, check_probability

__all__ = ["ATTACKS", "REPORT_FPRS", "MembershipResult", "membership_inference", "results_table"]

ATTACKS = (*THRESHOLD_SIGNALS, "shadow", "proxy", "lira", "rmia", *LABEL_ATTACKS)
#: The two low false-positive rates every report quotes (Carlini et al. 2022 argue for these).
REPORT_FPRS = (0.001, 0.01)
_DEFAULT_SHADOWS = {"shadow": 4, "lira": 16, "rmia": 16}
#: Bootstrap replicates behind every reported interval.
BOOTSTRAP_REPLICATES = 1000


@dataclass
class MembershipResult:
    """Per-record membership scores of one attack and the metrics read off their ROC.

    Attributes:
        attack: the attack's name (``"lira_offline"`` for offline LiRA, ``"rmia_offline"``...).
        scores: float64 ``(n_members + n_non_members,)``, members first; higher = member.
        is_member: int ``0/1`` truth in the same order.
        params: the attack's settings; info: what it measured on the way.
        threshold: for threshold attacks given a ``population``, the score threshold above
            which at most ``calibration_fpr`` of the population (known non-members) lies.
        shadows: LiRA/RMIA reference models (reusable for the other LiRA/RMIA variants).
    """

    attack: str
    scores: np.ndarray
    is_member: np.ndarray
    params: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    seconds: float = 0.0
    threshold: float | None = None
    shadows: LiraShadows | None = field(default=None, repr=False)
    _intervals: dict | None = field(default=None, repr=False)

    def roc_curve(self):
        """``(fpr, tpr, thresholds)`` from ``sklearn.metrics.roc_curve``."""
        from sklearn.metrics import roc_curve

        return roc_curve(self.is_member, self.scores)

    def get_auc(self) -> float:
        from tfmodelsec.metrics import membership_auc

        return membership_auc(self.is_member, self.scores)

    def get_attacker_advantage(self) -> float:
        from tfmodelsec.metrics import attacker_advantage

        return attacker_advantage(self.is_member, self.scores)

    def tpr_at_fpr(self, fpr: float) -> float:
        from tfmodelsec.metrics import tpr_at_fpr

        return tpr_at_fpr(self.is_member, self.scores, fpr)

    def intervals(self, *, n_boot: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> dict:
        """Bootstrap 95% intervals of the AUC and the TPR at each :data:`REPORT_FPRS` (cached)."""
        from tfmodelsec.metrics import bootstrap_intervals

        if self._intervals is None or self._intervals["n_boot"] != n_boot or self._intervals["seed"] != seed:
            self._intervals = bootstrap_intervals(self.is_member, self.scores, fprs=REPORT_FPRS, n_boot=n_boot,
                                                  seed=seed)
        return self._intervals

    def non_members_at_fpr(self) -> dict:
        """How many non-members each reported FPR allows to be flagged (what the point rests on)."""
        from tfmodelsec.metrics import non_members_at_fpr

        n = int((1 - self.is_member).sum())
        return {f"{f:g}": non_members_at_fpr(n, f) for f in REPORT_FPRS}

    @property
    def member_scores(self) -> np.ndarray:
        return self.scores[self.is_member == 1]

    @property
    def non_member_scores(self) -> np.ndarray:
        return self.scores[self.is_member == 0]

    def calibrated(self) -> dict | None:
        """TPR and FPR on the targets at the population-calibrated threshold, if any."""
        if self.threshold is None:
            return None
        flagged = self.scores > self.threshold  # strict: ties at the threshold (e.g. p = 1.0) stay out
        return {"threshold": float(self.threshold), "tpr": float(flagged[self.is_member == 1].mean()),
                "fpr": float(flagged[self.is_member == 0].mean())}

    def metrics(self) -> dict:
        out = {"auc": self.get_auc(), "advantage": self.get_attacker_advantage()}
        out.update({f"tpr_at_fpr_{f:g}": self.tpr_at_fpr(f) for f in REPORT_FPRS})
        return out

    def summary(self) -> str:
        m, ci = self.metrics(), self.intervals()
        lo, hi = ci["tpr_at_fpr_0.001"]
        return (f"{self.attack}: AUC {m['auc']:.3f}, advantage {m['advantage']:.3f}, "
                f"TPR {m['tpr_at_fpr_0.001']:.2%} [{lo:.2%}, {hi:.2%}] @ 0.1% FPR, "
                f"{m['tpr_at_fpr_0.01']:.2%} @ 1% FPR")

    def to_dict(self) -> dict:
        ci = self.intervals()
        return {"attack": self.attack, **self.metrics(), "members": int(self.is_member.sum()),
                "non_members": int((1 - self.is_member).sum()),
                "intervals": {k: list(v) for k, v in ci.items() if isinstance(v, tuple)},
                "bootstrap": {"n_boot": ci["n_boot"], "level": ci["level"], "seed": ci["seed"]},
                "non_members_at_fpr": self.non_members_at_fpr(), "seconds": round(self.seconds, 3),
                "calibrated": self.calibrated(), "params": self.params, "info": self.info}

    def plot(self, *, title: str | None = None):
        """Log-log ROC curve as a ``matplotlib.figure.Figure``."""
        from tfmodelsec.plotting import roc_figure

        fpr, tpr, _ = self.roc_curve()
        return roc_figure({f"{self.attack} (AUC {self.get_auc():.3f})": (fpr, tpr)},
                          title=title if title is not None else self.attack)


def _check_records(name, records, victim, *, allow_empty=False):
    if not (isinstance(records, (tuple, list)) and len(records) == 2):
        raise ValueError(f"`{name}` must be a pair (x, y) of arrays. Received: {type(records).__name__}")
    x, y = np.asarray(records[0], np.float32), np.asarray(records[1])
    if len(x) == 0 and not allow_empty:
        raise ValueError(f"`{name}` is empty; expected at least one record")
    if tuple(x.shape[1:]) != tuple(victim.input_shape):
        raise ValueError(f"`{name}` records have shape {tuple(x.shape[1:])}; the victim expects "
                         f"{tuple(victim.input_shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"`{name}` labels must be a 1-D array of {len(x)} class ids. Received shape {y.shape}")
    if len(y) and (not np.issubdtype(y.dtype, np.number) or np.any(y != np.round(y))
                   or y.min() < 0 or y.max() >= victim.num_classes):
        raise ValueError(f"`{name}` labels must be class ids in [0, {victim.num_classes - 1}] (the victim's "
                         f"classes). Received values in [{y.min()}, {y.max()}]")
    return x, y.astype(np.int64)


_LABEL_HINT = ("use a label-only attack (gap, label_augment, label_noise) or a BlackBox answering "
               "'probabilities'")


def _oracle_for(victim, attack, logits):
    from tfmodelsec.oracle import BlackBox

    if logits and isinstance(victim, BlackBox):
        raise ValueError("`logits=True` reads the model's pre-softmax outputs, which a BlackBox does not "
                         "give: pass the victim itself. Received: a BlackBox")
    if attack in LABEL_ATTACKS:
        if logits:
            raise ValueError(f"attack={attack!r} reads labels only; `logits=True` does not apply")
        return victim if isinstance(victim, BlackBox) else BlackBox(victim, output="label")
    oracle = victim if isinstance(victim, BlackBox) else BlackBox(victim)
    if oracle.output == "label":
        raise ValueError(f"attack={attack!r} needs scores, but `victim` answers labels (a BlackBox with "
                         f"output='label'): {_LABEL_HINT}")
    return oracle


def _check_not_one_hot(probs, attack):
    """A score attack on one-hot answers (the ``label`` defense) would read correctness only."""
    probs = np.asarray(probs)
    if len(probs) > 1 and np.all(probs.max(axis=1) == 1.0) and np.all((probs == 0) | (probs == 1)):
        raise ValueError(f"attack={attack!r} needs scores, but `victim` answers one-hot labels (e.g. the "
                         f"'label' defense): {_LABEL_HINT}")


def _resolve_shadows(attack, num_shadows):
    if num_shadows is None:
        num_shadows = _DEFAULT_SHADOWS.get(attack, 0)
    if attack in _DEFAULT_SHADOWS:
        check_positive("num_shadows", num_shadows, integer=True)
        num_shadows = int(num_shadows)
    if attack in ("lira", "rmia") and num_shadows < 2:
        raise ValueError(f"{'LiRA' if attack == 'lira' else 'RMIA'} needs at least 2 reference models (a "
                         f"complementary pair: one trained with and one without every target). "
                         f"Received: num_shadows={num_shadows}; pass num_shadows >= 2")
    return num_shadows


def membership_inference(victim, members, non_members, *, attack: str = "loss", population=None,
                         num_shadows: int | None = None, online: bool = True, fixed_variance: bool = False,
                         training: ShadowTraining | None = None, shadow_size: int | None = None,
                         calibration_fpr: float = 0.01, shadows: LiraShadows | None = None,
                         logits: bool = False, population_size: int | None = None, rmia_a=DEFAULT_A,
                         rmia_gamma: float = 1.0, num_references: int | None = None,
                         label_only: LabelOnly | None = None, strategy=None, seed: int = 0,
                         verbose: int = 1) -> MembershipResult:
    """Run one membership-inference attack against ``victim`` on known members / non-members.

    Args:
        victim: a Victim, keras.Model, model path, or a :class:`~tfmodelsec.oracle.BlackBox`
            (e.g. one with a defense; label-only attacks accept one answering labels).
        members: ``(x, y)`` records the victim was trained on.
        non_members: ``(x, y)`` records it was not trained on (disjoint from ``members``).
        attack: one of :data:`ATTACKS`.
        population: ``(x, y)`` attacker data from the same distribution, not in the victim's
            training set and disjoint from the targets: required by ``shadow``, ``proxy``
            (whose labels it ignores) and ``rmia`` (its z); threshold calibration for the
            threshold attacks; ``lira`` reads its reference models on it for a later RMIA.
        num_shadows: shadow / reference models (``shadow``: 4, ``lira`` / ``rmia``: 16).
        online: LiRA / RMIA online (models trained with and without each target) or offline.
        fixed_variance: LiRA with one global variance per side instead of per record.
        training: :class:`ShadowTraining` (architecture, epochs...) for shadows and the proxy.
        shadow_size: training records per Shokri shadow / proxy (default: ``len(members)``).
        calibration_fpr: FPR at which threshold attacks set their threshold on ``population``.
        shadows: LiRA/RMIA reference models from an earlier result on the same targets (reused).
        logits: score from the victim's (and shadows') pre-softmax outputs, with the softmax
            redone in float64, instead of the float32 probabilities a black-box API returns:
            an overfit model's float32 probabilities saturate at exactly 1 and 0 for its most
            confident records, which then all tie. Needs the model itself, not a BlackBox.
        population_size: population records RMIA compares with (z; default 5,000 or all).
        rmia_a: RMIA's offline parameter ``a`` in [0, 1] or ``"auto"``; rmia_gamma: its threshold.
        num_references: RMIA uses the first this many reference models (default: all).
        label_only: :class:`~tfmodelsec.attacks.membership.label_only.LabelOnly` settings.
        strategy: ``tf.distribute.Strategy`` for shadow training.
        seed: seeds data splits and training; verbose: 0 silences progress.

    Returns:
        :class:`MembershipResult`.

    Raises:
        ValueError: bad records, overlapping members / non-members / population, fewer
            reference models than the attack needs, a victim answering labels to a score attack.

    Example:
        >>> r = membership_inference(victim, (x[:500], y[:500]), (xt[:500], yt[:500]), attack="loss")  # doctest: +SKIP
        >>> r.get_auc(), r.tpr_at_fpr(0.01)  # doctest: +SKIP
    """
    attack = check_choice("attack", attack, ATTACKS)
    oracle = _oracle_for(victim, attack, logits)
    vic = oracle.victim
    x_in, y_in = _check_records("members", members, vic)
    x_out, y_out = _check_records("non_members", non_members, vic)
    check_disjoint("members", x_in, "non_members", x_out, fix="expected disjoint sets")
    x, y = np.concatenate([x_in, x_out]), np.concatenate([y_in, y_out])
    if population is not None:
        population = _check_records("population", population, vic)
        check_disjoint("population", population[0], "members/non_members", x,
                       fix="remove the targets from the population (it must hold known non-members only)")
    if attack in ("shadow", "proxy", "rmia") and population is None:
        raise ValueError(f"attack={attack!r} needs attacker data: pass `population=(x, y)`. Received: None")
    num_shadows = _resolve_shadows(attack, num_shadows)
    check_probability("calibration_fpr", calibration_fpr)
    training = training or ShadowTraining()
    if not isinstance(training, ShadowTraining):
        raise ValueError(f"`training` must be a ShadowTraining. Received: {type(training).__name__}")
    shadow_size = len(x_in) if shadow_size is None else shadow_size
    check_positive("shadow_size", shadow_size, integer=True)
    is_member = np.concatenate([np.ones(len(x_in), np.int64), np.zeros(len(x_out), np.int64)])
    start, queries_before = time.perf_counter(), oracle.queries_used
    params = {"seed": seed, "logits": bool(logits)}
    if attack in LABEL_ATTACKS:
        scores, info = label_only_scores(oracle, x, y, attack=attack, config=label_only,
                                         donors=None if population is None else population[0], seed=seed)
        return MembershipResult(attack, np.asarray(scores, np.float64), is_member, params, info,
                                time.perf_counter() - start)

    def query(records):
        if not logits:
            probs = oracle(records)
            _check_not_one_hot(probs, attack)
            return probs
        out = vic.model.predict(records, batch_size=1024, verbose=0) if vic.output_kind == "logits" else None
        return softmax64(out) if out is not None else predict_probabilities(vic.model, records, logits=True)

    probs = query(x)
    info, threshold, kept = {}, None, None
    if attack in THRESHOLD_SIGNALS:
        scores = threshold_scores(attack, probs, y)
        if population is not None:
            ref = threshold_scores(attack, query(population[0]), population[1])
            threshold = float(np.quantile(ref, 1.0 - calibration_fpr))
            params["calibration_fpr"] = calibration_fpr
    elif attack == "shadow":
        scores, info = shadow_attack_scores(vic, probs, y, population, num_shadows=num_shadows,
                                            shadow_size=shadow_size, training=training, logits=logits,
                                            strategy=strategy, seed=seed, verbose=verbose)
    elif attack == "proxy":
        scores, info = proxy_attack_scores(vic, oracle, probs, y, population, proxy_size=shadow_size,
                                           training=training, logits=logits, strategy=strategy, seed=seed,
                                           verbose=verbose)
    else:
        kept = _lira_shadows(shadows, vic, x, y, num_shadows, population, population_size, training, strategy,
                             seed, verbose)
        num_shadows = kept.total
        phi = logit_confidence(probs, y)
        if attack == "lira":
            scores, info = lira_scores(kept, phi, online=online, fixed_variance=fixed_variance, logits=logits)
            params.update(online=online, fixed_variance=fixed_variance)
        else:
            z = _population_sample(kept, population)
            phi_z = logit_confidence(query(z[0]), z[1])
            scores, info = rmia_scores(kept, phi, phi_z, online=online, a=rmia_a, gamma=rmia_gamma,
                                       num_references=num_references, logits=logits)
            params.update(online=online, a=info["a"], gamma=float(rmia_gamma), num_references=info["num_references"])
        info = {**kept.info, **info, "victim_queries": int(oracle.queries_used - queries_before)}
        attack = attack if online else f"{attack}_offline"
    if attack not in THRESHOLD_SIGNALS:
        params.update(num_shadows=num_shadows if attack != "proxy" else None, epochs=training.epochs,
                      batch_size=training.batch_size, learning_rate=training.learning_rate,
                      schedule=training.schedule)
    return MembershipResult(attack, np.asarray(scores, np.float64), is_member, params, info,
                            time.perf_counter() - start, threshold, kept)


def _lira_shadows(shadows, vic, x, y, num_shadows, population, population_size, training, strategy, seed,
                  verbose):
    if shadows is None:
        return train_lira_shadows(vic, x, y, num_shadows=num_shadows, population=population,
                                  population_size=population_size, training=training, strategy=strategy,
                                  seed=seed, verbose=verbose)
    if not isinstance(shadows, LiraShadows) or shadows.fingerprint != records_fingerprint(x, y):
        raise ValueError("`shadows` must be the LiraShadows of an earlier LiRA/RMIA run on the same members and "
                         "non-members (in the same order)")
    return shadows


def _population_sample(shadows, population):
    """RMIA's z: the population records the reference models were read on."""
    if shadows.population_ids is None:
        raise ValueError("RMIA compares targets with population records z, but these reference models were "
                         "trained without a population: train them with `population=(x, y)`")
    if population is None or records_fingerprint(*population) != shadows.population_fingerprint:
        raise ValueError("RMIA needs the same `population` the reference models were trained with (their z "
                         "is a sample of it). Received: " + ("None" if population is None else "another population"))
    return population[0][shadows.population_ids], population[1][shadows.population_ids]


def results_table(results, *, intervals: bool = True) -> str:
    """A Markdown table: one row per :class:`MembershipResult`, with bootstrap 95% intervals."""
    head = "| attack | AUC | advantage | TPR @ 0.1% FPR | TPR @ 1% FPR | non-members at 0.1% / 1% | seconds |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for r in results:
        m = r.metrics()
        cells = [f"{m['auc']:.3f}", f"{m['tpr_at_fpr_0.001']:.2%}", f"{m['tpr_at_fpr_0.01']:.2%}"]
        if intervals:
            ci = r.intervals()
            bounds = (ci["auc"], ci["tpr_at_fpr_0.001"], ci["tpr_at_fpr_0.01"])
            cells = [f"{c} [{lo:{f}}, {hi:{f}}]"
                     for c, (lo, hi), f in zip(cells, bounds, (".3f", ".2%", ".2%"), strict=True)]
        at = r.non_members_at_fpr()
        rows.append(f"| {r.attack} | {cells[0]} | {m['advantage']:.3f} | {cells[1]} | {cells[2]} | "
                    f"{at['0.001']} / {at['0.01']} | {r.seconds:.1f} |")
    return "\n".join(rows)
