"""Pure plotting functions: each returns a ``matplotlib.figure.Figure`` (Agg backend)."""

from __future__ import annotations

import numpy as np

__all__ = ["image_grid", "confusion_matrix_figure", "close", "steal_curves_figure"]  # noqa: RUF022


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def close(fig) -> None:
    """Release a figure's memory (figures here are not registered with pyplot)."""
    fig.clear()


def image_grid(images, *, rows: int | None = None, titles=None, row_labels=None, cmap="gray",
               suptitle: str | None = None):
    """A grid of images (N, H, W, C) in [0, 1]; ``rows`` defaults to one row."""
    images = np.asarray(images)
    n = len(images)
    rows = rows or 1
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
