"""Checks and helpers shared by the white-box attacks (input recovery, model inversion)."""

from __future__ import annotations

import weakref

import numpy as np

__all__ = ["check_classes", "display_shape", "scores_fn", "search_bounds", "unit_view"]

# unit views built per victim model, so repeated calls (a TV sweep) reuse compiled loops
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# log(0) guard: float32 probabilities underflow near 1e-38; clamping far below any
# real confidence keeps the log finite without changing gradients that matter.
_LOG_FLOOR = 1e-30


def search_bounds(victim, bounds=None):
    """``(low, high)`` float32 arrays of the victim's input shape: ``bounds`` if given, else its range.

    ``bounds`` is a pair of scalars or of arrays broadcastable to one input. Without it an
    unbounded victim (``input_range=None``) raises (see :func:`tfmodelsec.models.input_bounds`).
    """
    from tfmodelsec.models.ranges import input_bounds

    shape = tuple(victim.input_shape)
    if bounds is None:
        return input_bounds(victim)
    try:
        lo, hi = (np.broadcast_to(np.asarray(b, np.float32), shape).copy() for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"`bounds` must be (low, high), scalars or arrays broadcastable to the victim's input "
                         f"shape {shape}. Received: bounds={bounds!r}") from None
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ValueError(f"`bounds` must be finite with low < high everywhere. Received: bounds={bounds!r}")
    return lo, hi


def display_shape(victim, image_shape=None):
    """The shape results are shown at: ``image_shape``, the victim's own ``image_shape`` (a flat
    victim fed images), its input shape when that is an image, else ``None`` (feature vectors)."""
    shape = image_shape if image_shape is not None else getattr(victim, "image_shape", None)
    if shape is None and len(victim.input_shape) == 3:
        shape = victim.input_shape
    if shape is None:
        return None
    shape = tuple(int(d) for d in shape)
    if int(np.prod(shape)) != int(np.prod(victim.input_shape)) or len(shape) != 3:
        raise ValueError(f"`image_shape` must be (height, width, channels) holding the victim's "
                         f"{int(np.prod(victim.input_shape))} input values. Received: image_shape={shape}")
    return shape


def unit_view(victim, *, bounds=None, image_shape=None):
    """The victim seen from ``[0, 1]`` inputs of the shown shape, and the map back to its inputs.

    Returns ``(view, to_input)``: ``view`` is a Victim over ``u`` in ``[0, 1]`` of
    :func:`display_shape` (or the input shape for feature vectors) whose model computes
    ``victim(reshape(low + (high - low) * u))``; ``to_input(u)`` gives the victim's inputs.
    White-box searches run in this unit space, so their step sizes and priors mean the
    same for a ``[0, 1]`` image, a ``0..255`` image behind a ``Rescaling`` layer, a flat
    ``Input(784)`` or a feature vector bounded by the data. A ``[0, 1]`` image victim is
    its own view.
    """
    import keras

    from tfmodelsec.models.io import Victim

    lo, hi = search_bounds(victim, bounds)
    shape = display_shape(victim, image_shape) or tuple(victim.input_shape)
    in_shape = tuple(victim.input_shape)

    def to_input(u):
        u = np.asarray(u, np.float32).reshape(len(u), *in_shape)
        return np.clip(lo + (hi - lo) * u, lo, hi).astype(np.float32)

    if shape == in_shape and np.all(lo == 0.0) and np.all(hi == 1.0):
        return victim, to_input
    key = (shape, lo.tobytes(), hi.tobytes(), victim.output_kind)
    per_model = _VIEWS.setdefault(victim.model, {})
    if key not in per_model:
        constant = np.all(lo == lo.flat[0]) and np.all(hi == hi.flat[0])
        scale, offset = (float(hi.flat[0] - lo.flat[0]), float(lo.flat[0])) if constant else (hi - lo, lo)
        inputs = keras.Input(shape=shape, name="unit_inputs")
        x = inputs if shape == in_shape else keras.layers.Reshape(in_shape, name="to_victim_shape")(inputs)
        x = keras.layers.Rescaling(scale=scale, offset=offset, name="to_victim_range")(x)
        model = keras.Model(inputs, victim.model(x), name=f"{victim.model.name}_unit_view")
        per_model[key] = Victim(model, shape, victim.num_classes, victim.output_kind, (0.0, 1.0),
                                source=victim.source, range_origin="user", range_note="unit view of the victim")
    return per_model[key], to_input


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
    bad = [c for c, raw in zip(values, classes, strict=True) if c != raw or not 0 <= c < num_classes]
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
