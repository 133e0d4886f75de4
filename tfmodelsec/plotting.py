"""Pure plotting functions: each returns a ``matplotlib.figure.Figure`` (Agg backend)."""

from __future__ import annotations

import numpy as np

__all__ = ["image_grid", "vector_rows", "confusion_matrix_figure", "close", "steal_curves_figure", "tsne_figure",
           "residual_memory_figure", "power_law_curve"]


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def close(fig) -> None:
    """Release a figure's memory (figures here are not registered with pyplot)."""
    fig.clear()


def image_grid(images, *, rows: int | None = None, titles=None, row_labels=None, cmap="gray",
               suptitle: str | None = None):
    """A grid of images (N, H, W, C) in [0, 1]; ``rows`` defaults to rows of at most 20 images."""
    images = np.asarray(images)
    n = len(images)
    rows = rows or max(1, int(np.ceil(n / 20)))
    cols = int(np.ceil(n / rows))
    fig = _figure((1.3 * cols + 0.6, 1.4 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        img = images[i]
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        ax.imshow(np.clip(img, 0, 1), cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(str(label), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def vector_rows(vectors, *, labels=None, suptitle: str | None = None, max_features: int = 200):
    """Feature vectors ``(N, D)`` as a heat map, one row each (each feature scaled to its own min..max).

    At most ``max_features`` columns are drawn (the first ones) so wide tables stay legible.
    """
    x = np.asarray(vectors, np.float64).reshape(len(vectors), -1)[:, :max_features]
    lo, hi = x.min(axis=0, initial=np.inf), x.max(axis=0, initial=-np.inf)
    scaled = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    fig = _figure((min(12.0, 2.0 + 0.05 * x.shape[1]), min(16.0, 0.6 + 0.25 * len(x))))
    ax = fig.subplots()
    ax.imshow(scaled, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(x)))
    ax.set_yticklabels([str(t) for t in (labels if labels is not None else range(len(x)))], fontsize=7)
    ax.set_xlabel(f"feature (first {x.shape[1]})" if x.shape[1] == max_features else "feature")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(cm, *, title: str = ""):
    """A confusion matrix heat map with counts."""
    cm = np.asarray(cm)
    fig = _figure((4.5, 4))
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(cm.shape[1]))
    ax.set_yticks(range(cm.shape[0]))
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


# --- model stealing ---


def steal_curves_figure(rows, *, metric: str = "accuracy", group=("method", "loss"), reference=None,
                        title: str = ""):
    """``metric`` vs query budget, one line per ``group`` (mean +- std over the rows' seeds).

    Args:
        rows: dicts with ``budget``, ``metric`` and the ``group`` keys (e.g. stealing sweep rows).
        reference: optional ``{label: {budget: value}}`` drawn dashed (e.g. a paper's numbers).
    """
    series: dict = {}
    for r in rows:
        if r.get(metric) is None:
            continue
        label = "/".join(str(r[k]) for k in group)
        series.setdefault(label, {}).setdefault(int(r["budget"]), []).append(float(r[metric]))
    fig = _figure((6, 4))
    ax = fig.subplots()
    for label, points in sorted(series.items()):
        b = sorted(points)
        ax.errorbar(b, [np.mean(points[k]) for k in b], yerr=[np.std(points[k]) for k in b], marker="o",
                    capsize=3, label=label)
    for label, points in (reference or {}).items():
        b = sorted(points)
        ax.plot(b, [points[k] for k in b], "k--", marker="x", label=label)
    ax.set_xlabel("queries")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# --- defenses ---
def tsne_figure(panels, *, title: str = ""):
    """Side-by-side 2-D scatter plots: ``panels`` maps a title to ``(xy (N, 2), labels (N,))``.

    Used for the t-SNE view of undefended vs defended output distributions (APGP seed).
    """
    panels = list(panels.items())
    fig = _figure((3.6 * len(panels) + 0.4, 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, (xy, labels)) in zip(axes, panels, strict=True):
        xy = np.asarray(xy)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=np.asarray(labels), cmap="tab10", s=4, vmin=0, vmax=9)
        ax.set_title(str(name), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=list(axes), fraction=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def power_law_curve(fit, n: int, points: int = 200):
    """Sample a DeepObliviate fit: ``(t, a·x^-h + b, a·x^-h)`` with ``x = t - t0 + 1``."""
    t0 = int(fit.get("t0", 0))
    x = np.linspace(1, max(n - t0, 2), points)
    memory = fit["a"] * x ** (-fit["h"])
    return x - 1 + t0, memory + fit["b"], memory


def residual_memory_figure(deltas, fit=None, *, epsilon=None, title: str = ""):
    """DeepObliviate's temporal residual memory Δ_t per retrained block, with the
    fitted power law ``a·x^{-h} + b`` and the threshold ε (He et al., NDSS 2021, Fig. 3)."""
    deltas = np.asarray(deltas, float)
    x = np.arange(1, len(deltas) + 1)
    fig = _figure((5, 3.4))
    ax = fig.subplots()
    ax.plot(x - 1, deltas, "o", ms=4, label="Δ_t (measured)")
    if fit is not None:
        xs, total, memory = power_law_curve(fit, len(deltas))
        ax.plot(xs, total, "-", label=f"fit {fit['a']:.3g}·x^-{fit['h']:.2f} + {fit['b']:.3g}")
        ax.plot(xs, memory, ":", label="memory term a·x^-h")
    if epsilon is not None:
        ax.axhline(epsilon, color="gray", ls="--", lw=1, label=f"ε = {epsilon:g}")
    ax.set_xlabel("t (blocks after the deleted block)")
    ax.set_ylabel("Δ_t / ||Inf(B_d)||₁")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- membership inference ---
__all__ += ["roc_figure"]


def roc_figure(curves, *, title: str = "", log: bool = True, min_fpr: float | None = None):
    """ROC curves of several attacks on one axes, log-log by default (Carlini et al. 2022).

    Args:
        curves: mapping ``label -> (fpr, tpr)`` (e.g. from ``sklearn.metrics.roc_curve``).
        title: axes title.
        log: log-scaled axes, which show the low-FPR regime that matters for privacy.
        min_fpr: left end of the FPR axis on log axes (default: the smallest non-zero FPR
            of any curve, halved).
    """
    many = len(curves) > 8  # a long legend goes beside the axes, not over the curves
    fig = _figure((8.6 if many else 5.2, 4.6))
    ax = fig.subplots()
    nonzero = [np.min(np.asarray(f)[np.asarray(f) > 0]) for f, _ in curves.values() if np.any(np.asarray(f) > 0)]
    lo = min_fpr or (0.5 * min(nonzero) if nonzero else 1e-4)
    from matplotlib import colormaps

    colors = colormaps["tab20" if len(curves) > 10 else "tab10"].colors
    for i, (label, (fpr, tpr)) in enumerate(curves.items()):
        fpr, tpr = np.asarray(fpr, float), np.asarray(tpr, float)
        if log:  # zero is not on a log axis: draw it at the axis' left end
            fpr = np.maximum(fpr, lo)
        ax.plot(fpr, tpr, lw=1.3, label=label, color=colors[i % len(colors)],
                ls="-" if i < len(colors) else "--")
    grid = np.linspace(lo if log else 0.0, 1.0, 200)
    ax.plot(grid, grid, "k--", lw=0.8, label="chance")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1.0)
        ax.set_ylim(lo, 1.05)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title, fontsize=9)
    if many:
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    else:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig
