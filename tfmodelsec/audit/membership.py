"""The audit report's "membership" section: threshold attacks and, unless quick, LiRA and RMIA."""

from __future__ import annotations

__all__ = ["audit_section"]

#: Target records per side: quick keeps the section within ~20 s on 2 CPU cores with
#: threshold attacks only; the full section adds LiRA and RMIA on 4 shared reference models
#: (trained together, see attacks/membership/references.py) within ~2 minutes.
_QUICK_RECORDS, _FULL_RECORDS = 500, 2000
_FULL_LIRA_SHADOWS, _FULL_LIRA_EPOCHS = 4, 5


def audit_section(ctx):
    """Threshold attacks (and, unless quick, LiRA and RMIA) on the first N training vs test records.

    The audit does not know the victim's real training set, so it assumes the first N
    records of the dataset's training split were used and its test split was not; the
    section states this assumption.
    """
    from tfmodelsec.attacks.membership import ShadowTraining, membership_inference, membership_split, results_table
    from tfmodelsec.attacks.membership.threshold import THRESHOLD_SIGNALS
    from tfmodelsec.audit.section import Section
    from tfmodelsec.plotting import close, roc_figure

    data = ctx.data
    n = min(_QUICK_RECORDS if ctx.quick else _FULL_RECORDS, len(data.x_train), len(data.x_test) // 2)
    split = membership_split(data, f"first:{n}", population="test-rest")
    # calibration needs only a few times 1/FPR known non-members, not the whole test split
    population = tuple(a[: 2 * n] for a in split.population) if split.population is not None else None
    results = []
    for attack in THRESHOLD_SIGNALS:
        results.append(membership_inference(ctx.victim, split.members, split.non_members, attack=attack,
                                             population=population, seed=ctx.seed, verbose=0))
    if not ctx.quick:
        training = ShadowTraining(epochs=_FULL_LIRA_EPOCHS)
        lira = membership_inference(ctx.victim, split.members, split.non_members, attack="lira",
                                    num_shadows=_FULL_LIRA_SHADOWS, fixed_variance=True, population=population,
                                    training=training, seed=ctx.seed, verbose=ctx.verbose)
        results.append(lira)
        if population is not None:  # RMIA reads the same reference models, plus the population as its z
            for online in (True, False):
                results.append(membership_inference(ctx.victim, split.members, split.non_members, attack="rmia",
                                                    online=online, population=population, shadows=lira.shadows,
                                                    seed=ctx.seed, verbose=0))
    curves = {}
    for r in results:
        fpr, tpr, _ = r.roc_curve()
        curves[f"{r.attack} (AUC {r.get_auc():.3f})"] = (fpr, tpr)
    fig = roc_figure(curves, title=f"membership inference, {n} vs {n} records")
    fig.savefig(ctx.out_dir / "membership_roc.png", dpi=100, bbox_inches="tight")
    close(fig)
    best = max(results, key=lambda r: r.get_auc())
    calibrated = {r.attack: r.calibrated() for r in results if r.threshold is not None}
    md = "\n".join([
        f"**Assumption**: {split.assumption}. If the victim was trained on other records, these numbers "
        "measure how well the attacks tell training-like from test records, not true membership.",
        "",
        results_table(results),
        "",
        f"Strongest attack: **{best.attack}** (AUC {best.get_auc():.3f}). AUC 0.5 and TPR equal to the FPR "
        "mean no leak; TPR at 0.1% FPR is what a confident attacker gets.",
        "",
        "Intervals are bootstrap 95% intervals; the last column says how many non-members each FPR lets "
        "through, i.e. how few records the low-FPR figures rest on.",
        "",
        *([f"LiRA's and RMIA's {_FULL_LIRA_SHADOWS} reference models train for {_FULL_LIRA_EPOCHS} epochs on "
           f"halves of these {2 * n} records, not with the victim's own recipe: a weak result here is a lower "
           "bound; `tfmodelsec membership --shadow-epochs ... --shadow-lr ...` runs them with the victim's "
           "recipe.", ""] if not ctx.quick else []),
        "At a threshold calibrated on other test records to 1% FPR: "
        + ", ".join(f"{k} TPR {v['tpr']:.2%} / FPR {v['fpr']:.2%}" for k, v in calibrated.items()) + ".",
    ])
    summary = {"assumption": split.assumption, "members": int(n), "non_members": int(n),
               "attacks": {r.attack: r.to_dict() for r in results}, "best_attack": best.attack}
    return Section("membership", "Membership inference", summary, md, ["membership_roc.png"])
