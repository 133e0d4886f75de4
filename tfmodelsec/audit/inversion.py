"""The audit report's "inversion" section: model inversion (and input recovery when time allows)."""

from __future__ import annotations

import numpy as np

__all__ = ["audit_section"]

# quick mode must finish within ~20 s on 2 cores including tracing (about 5 s measured on LeNet-5/MNIST)
_QUICK_STEPS = 200
_FULL_STEPS = 600
_QUICK_RECOVERY_EPOCHS = 10
_FULL_RECOVERY_EPOCHS = 30


def audit_section(ctx):
    """Invert every class of ``ctx.victim``; compare with ``ctx.data``'s class means."""
    from tfmodelsec import plotting
    from tfmodelsec.attacks.inversion import invert
    from tfmodelsec.audit.section import Section
    from tfmodelsec.metrics import class_means
    from tfmodelsec.models.ranges import input_bounds

    victim, data = ctx.victim, ctx.data
    bounds = input_bounds(victim, data.x_train)  # the data's range where the victim's is unbounded
    result = invert(victim, steps=_QUICK_STEPS if ctx.quick else _FULL_STEPS, seed=ctx.seed, verbose=0,
                    bounds=bounds)
    means = class_means(data.x_train, data.y_train, victim.num_classes) \
        if np.all(np.bincount(data.y_train, minlength=victim.num_classes) > 0) else None
    metrics = result.evaluate(means)
    figures = []
    fig = result.plot(title="model inversion: one image per class (class: victim confidence)")
    fig.savefig(ctx.out_dir / "inversion.png", dpi=100, bbox_inches="tight")
    plotting.close(fig)
    figures.append("inversion.png")
    summary = {"min_confidence": float(result.confidence.min()),
               "success_rate": float(np.mean(result.predicted == result.labels)),
               "seconds_inversion": round(result.seconds, 2),
               **{k: v for k, v in metrics.items() if k != "per_class"}}
    how = ("TV + L2 + jitter + blur, two resolutions" if result.image_shape is not None
           else "feature vectors within the data's bounds, L2 toward the middle of each feature's range")
    lines = [
        f"White-box inversion ({how}) of every class: "
        "an attacker holding the weights reconstructs what each class looks like.",
        "",
        "| measure | value |", "|---|---|",
        f"| min victim confidence | {summary['min_confidence']:.3f} |",
        f"| classes predicted as the target | {summary['success_rate']:.0%} |",
    ]
    if means is not None:
        lines += [f"| mean Pearson with the class mean | {metrics['mean_pearson']:.3f} |",
                  *([f"| mean SSIM with the class mean | {metrics['mean_ssim']:.3f} |"] if "mean_ssim" in metrics
                    else []),
                  f"| nearest class mean = target | {metrics['nearest_mean_correct']}/{len(result.labels)} |"]
    from tfmodelsec.attacks.recovery import recover_inputs

    epochs = _QUICK_RECOVERY_EPOCHS if ctx.quick else _FULL_RECOVERY_EPOCHS
    try:
        rec = recover_inputs(victim, epochs=epochs, seed=ctx.seed, verbose=0, bounds=bounds)
    except ValueError as exc:  # e.g. a SavedModel victim that cannot be copied
        summary["recovery"] = {"skipped": str(exc)}
    else:
        summary["recovery"] = rec.to_dict()
        fig = rec.plot()
        fig.savefig(ctx.out_dir / "recovery.png", dpi=100, bbox_inches="tight")
        plotting.close(fig)
        figures.append("recovery.png")
        lines.append(f"| input recovery (trained front-end): min confidence | {rec.confidence.min():.3f} |")
    return Section("inversion", "Model inversion", summary, "\n".join(lines), figures)
