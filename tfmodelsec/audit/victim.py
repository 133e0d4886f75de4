"""The audit report's "victim" section: what the model is and how accurate it is on the data."""

from __future__ import annotations

import numpy as np

from tfmodelsec.audit.section import AuditContext, Section

__all__ = ["audit_section"]


def audit_section(ctx: AuditContext) -> Section:
    """The victim section: details, test accuracy, per-class accuracy, confusion matrix."""
    from sklearn.metrics import confusion_matrix

    from tfmodelsec import plotting

    victim, data = ctx.victim, ctx.data
    x, y = data.x_test, data.y_test
    if ctx.quick:
        x, y = x[:2000], y[:2000]
    pred = victim.predict_labels(x)
    acc = float(np.mean(pred == y))
    cm = confusion_matrix(y, pred, labels=np.arange(victim.num_classes))
    per_class = (np.diag(cm) / np.maximum(cm.sum(axis=1), 1)).tolist()
    fig = plotting.confusion_matrix_figure(cm, title=f"{data.name}: test accuracy {acc:.2%}")
    fig.savefig(ctx.out_dir / "confusion.png", dpi=100, bbox_inches="tight")
    plotting.close(fig)
    details = victim.describe()
    md = "\n".join(
        [
            "| property | value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in details.items()],
            f"| dataset | {data.name} ({len(x)} test samples) |",
            f"| test accuracy | {acc:.2%} |",
        ]
    )
    return Section(
        "victim", "Victim", {**details, "dataset": data.name, "test_samples": len(x),
                             "test_accuracy": acc, "per_class_accuracy": per_class},
        md, ["confusion.png"],
    )

