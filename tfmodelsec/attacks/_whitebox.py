"""Checks and helpers shared by the white-box attacks (input recovery, model inversion)."""

from __future__ import annotations

import numpy as np

__all__ = ["check_classes", "require_image_victim", "scores_fn"]

# log(0) guard: float32 probabilities underflow near 1e-38; clamping far below any
# real confidence keeps the log finite without changing gradients that matter.
_LOG_FLOOR = 1e-30


def require_image_victim(victim, *, what: str = "victim"):
    """Return ``victim`` as a Victim whose inputs are images ``(H, W, C)``; else raise ValueError."""
    from tfmodelsec.models.io import as_victim

    victim = as_victim(victim)
    shape = tuple(victim.input_shape)
    if len(shape) != 3 or shape[0] < 2 or shape[1] < 2 or shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"`{what}` must take images of shape (height, width, channels) with 1-4 channels. "
            f"Received: a victim with input_shape={shape}"
        )
    return victim


def check_classes(name: str, classes, num_classes: int) -> np.ndarray:
    """Validate a list of class indices (``None``: all classes) and return them as int32."""
    if classes is None:
        return np.arange(num_classes, dtype=np.int32)
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        classes = [classes]
    try:
        values = [int(c) for c in classes]
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be class indices. Received: {name}={classes!r}") from None
    bad = [c for c, raw in zip(values, classes) if c != raw or not 0 <= c < num_classes]
    if not values or bad:
        raise ValueError(
            f"`{name}` must be a non-empty list of class indices in [0, {num_classes - 1}]. "
            f"Received: {name}={list(classes)!r}"
        )
    return np.asarray(values, dtype=np.int32)


def scores_fn(victim):
    """``f(x) -> (log_probabilities, probabilities)`` for the victim, graph-safe.

    For a logit-output victim the log-probabilities come from ``log_softmax`` of its
    logits (exact); for a probability-output one from ``log`` of its clamped output.
    """
    import tensorflow as tf

    model = victim.model
    logits = victim.output_kind == "logits"

    def scores(x):
        out = model(x, training=False)
        if logits:
            logp = tf.nn.log_softmax(out, axis=-1)
            return logp, tf.exp(logp)
        return tf.math.log(tf.maximum(out, _LOG_FLOOR)), out

    return scores
