"""The report's one-screen summary: the headline of each section in words a model owner reads.

Each headline is computed from the section's machine-readable summary (what ``report.json``
holds), so the words and the tables below them cannot disagree. A section whose summary lacks
what a headline needs (skipped, or written by a newer section) gets none; the section itself
still appears in full below the summary.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Headline", "headlines", "RISK_LEVELS"]

#: Risk words, lowest first.
RISK_LEVELS = ("low", "medium", "high")

# A stolen copy within 10% of the victim's accuracy is as good as the original for most
# uses; within 30% still useful to a thief.
_STEAL_HIGH, _STEAL_MEDIUM = 0.9, 0.7
# Membership AUC (0.5 = guessing): 0.6 is a visible leak, 0.7 a strong one (LiRA on
# overfit CIFAR models reaches 0.7+). 5% of members found at 1% false alarms is also strong.
_MIA_HIGH, _MIA_MEDIUM, _MIA_TPR_HIGH = 0.7, 0.6, 0.05
# Share of inverted classes whose nearest class-mean image is the right one.
_INV_HIGH, _INV_MEDIUM = 0.8, 0.5


@dataclass(frozen=True)
class Headline:
    """One line of the summary: which section, how serious (``None`` = context, not a risk), what."""

    key: str
    title: str
    risk: str | None
    text: str


def _victim(s: dict) -> Headline:
    acc = s["test_accuracy"]
    name = s.get("name") or "the model"
    params = s.get("parameters")
    size = f" ({params:,} parameters)" if isinstance(params, int) else ""
    return Headline("victim", "Your model", None,
                    f"{name}{size} answers {acc:.1%} of {s['test_samples']:,} {s['dataset']} test records correctly.")


def _stealing(s: dict, victim_acc: float | None) -> Headline:
    rows = [r for r in s["rows"] if r.get("accuracy") is not None]
    row = max(rows, key=lambda r: (r["accuracy"], -r["budget"]))
    acc, fid = row["accuracy"], row.get("fidelity")
    ratio = acc / victim_acc if victim_acc else None
    if ratio is not None:
        text = (f"An attacker with {row['budget']:,} queries copies your model to {ratio:.0%} of its accuracy "
                f"(the copy: {acc:.0%} accurate")
    else:
        text = f"An attacker with {row['budget']:,} queries copies your model (the copy: {acc:.0%} accurate"
    text += f"; it gives your model's answer on {fid:.0%} of inputs)." if fid is not None else ")."
    if row.get("transferability") is not None:
        text += (f" Adversarial examples crafted on the copy also fool your model {row['transferability']:.0%} "
                 "of the time.")
    basis = ratio if ratio is not None else (fid if fid is not None else acc)
    risk = "high" if basis >= _STEAL_HIGH else "medium" if basis >= _STEAL_MEDIUM else "low"
    return Headline("stealing", "Model stealing", risk, text)


def _membership(s: dict) -> Headline:
    attacks = s["attacks"]
    best = attacks.get(s.get("best_attack")) or max(attacks.values(), key=lambda a: a["auc"])
    auc, tpr = best["auc"], best.get("tpr_at_fpr_0.01")
    text = (f"Given a record, an attacker tells whether it was in your training data with AUC {auc:.2f} "
            f"({best['attack']} attack; 0.50 is guessing, 1.00 always right)")
    if tpr is not None:
        text += f"; wrongly accusing 1 in 100 outsiders, they find {tpr:.1%} of your training records"
    text += "."
    risk = ("high" if auc >= _MIA_HIGH or (tpr or 0) >= _MIA_TPR_HIGH else "medium" if auc >= _MIA_MEDIUM
            else "low")
    return Headline("membership", "Membership inference", risk, text)


def _inversion(s: dict, num_classes: int | None) -> Headline:
    if "skipped" in s:
        return Headline("inversion", "Model inversion", None, f"Not run: {s['skipped']}.")
    text = (f"An attacker holding your weights reconstructs a picture of each class: your model labels "
            f"{s['success_rate']:.0%} of them as the class they stand for")
    share = None
    if s.get("nearest_mean_correct") is not None and num_classes:
        share = s["nearest_mean_correct"] / num_classes
        text += (f"; {s['nearest_mean_correct']} of {num_classes} look most like the right class's "
                 "average training image")
    text += "."
    if share is None:
        risk = "medium" if s["success_rate"] >= _INV_MEDIUM else "low"
    else:
        risk = "high" if share >= _INV_HIGH else "medium" if share >= _INV_MEDIUM else "low"
    return Headline("inversion", "Model inversion", risk, text)


def _defenses(s: dict) -> Headline:
    stealer, defender = s["stealer_acc"], s["defender_acc"]
    column = max(stealer["none"], key=lambda c: int(str(c).rpartition("@")[2] or 0))
    budget = str(column).rpartition("@")[2]
    base = stealer["none"][column]
    options = [d for d in stealer if d != "none" and column in stealer[d]]
    best = min(options, key=lambda d: (stealer[d][column], -defender[d]))
    drop = defender["none"] - defender[best]
    text = (f"With the {best} defense, a copy stolen with {budget} queries reaches {stealer[best][column]:.0%} "
            f"accuracy instead of {base:.0%}, while your users' accuracy "
            + (f"drops by {100 * drop:.1f} points." if drop > 0.0005 else "stays the same."))
    return Headline("defenses", "Best defense tried", None, text)


def headlines(report: dict) -> list[Headline]:
    """The summary lines for a report's sections (``report.json``'s content), in report order.

    Example:
        >>> [h.text for h in headlines({"victim": {"test_accuracy": 0.98, "test_samples": 2000,
        ...     "dataset": "mnist", "name": "lenet5", "parameters": 61706}})]
        ['lenet5 (61,706 parameters) answers 98.0% of 2,000 mnist test records correctly.']
    """
    victim = report.get("victim") or {}
    victim_acc = victim.get("test_accuracy")
    builders = {
        "victim": _victim,
        "inversion": lambda s: _inversion(s, victim.get("num_classes")),
        "stealing": lambda s: _stealing(s, victim_acc),
        "membership": _membership,
        "defenses": _defenses,
    }
    lines = []
    for key, summary in report.items():
        build = builders.get(key)
        if build is None or not isinstance(summary, dict):
            continue
        try:
            lines.append(build(summary))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):  # a summary without what we need
            continue
    return lines
