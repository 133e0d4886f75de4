"""A victim's input range: detected from the model, taken from the data, or given; data fitted to it.

Attacks need to know which inputs a victim was trained on: the oracle refuses queries
outside that range, evasion clips to it, inversion and recovery search inside it. The
range is settled in this order:

1. **given**: ``input_range=(lo, hi)`` / ``"LO,HI"`` / ``None`` (CLI ``--input-range``;
   ``none`` means unbounded, e.g. standardised features);
2. **the model says**: a ``Rescaling(scale, offset)`` layer at the input maps raw values
   onto ``[offset, offset + 1]`` (``offset >= 0``, e.g. ``Rescaling(1/255)``: ``[0, 255]``) or
   onto ``[offset, -offset]`` (``offset < 0``, e.g. ``Rescaling(1/127.5, -1)``: ``[0, 255]``),
   raw values starting at 0 as pixels do;
   a ``Normalization`` layer standardises raw values but fixes no bounds: unbounded, unless
   the data has a range (then that one);
3. **the data says** (:func:`tfmodelsec.models.align.align_data`): nothing in the model fixes the range, so the
   data's own range is used. When the data's range is bounded and is not ``[0, 1]``
   (e.g. raw 0..255 pixels), the victim is tried on a few test records both on the data as
   given and rescaled to ``[0, 1]`` (the usual ``x / 255`` preprocessing done outside the
   model), and the range it classifies better is kept, with a one-line note saying so;
4. otherwise ``(0, 1)`` is assumed (images in ``[0, 1]``, as the built-in datasets).

:func:`~tfmodelsec.models.align.align_data` then fits the data to the victim: images reshaped for a flat-input
victim of the same size (said once), values rescaled linearly from the data's range to
the victim's (said once), or a clear error when unbounded data falls outside a bounded
victim range. A model is never fed a range it was not trained on without a word.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

__all__ = ["ORIGINS", "detect_input_range", "input_bounds", "notice", "parse_input_range", "random_inputs",
           "with_input_range"]

#: Where a victim's input range came from (``Victim.range_origin``).
ORIGINS = ("user", "model", "normalization", "assumed", "data")
# Layers that only move values around: the range is read from the first layer after them.
_TRANSPARENT = ("InputLayer", "Reshape", "Flatten", "Permute")
# Values a hair outside a range after float arithmetic still count as inside.
_SLACK = 1e-6
_UNIT = (0.0, 1.0)


def notice(message: str, *, verbose: int = 1) -> None:
    """One line on stderr (the CLI's and the Python API's way of saying what was changed)."""
    if verbose:
        print(f"tfmodelsec: note: {message}", file=sys.stderr, flush=True)


def parse_input_range(value, *, name: str = "input_range", allow_auto: bool = False):
    """``(low, high)`` floats, ``None`` (unbounded) or, with ``allow_auto``, ``"auto"``.

    Accepts a pair of numbers, a string ``"LO,HI"``, ``None``, ``"none"`` / ``"unbounded"``.

    Raises:
        ValueError: anything else, or ``low >= high``, or a bound that is not finite.

    Example:
        >>> parse_input_range("0,255"), parse_input_range("none")
        ((0.0, 255.0), None)
    """
    expected = "(low, high) with low < high, 'LO,HI', None or 'none'" + (" or 'auto'" if allow_auto else "")
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("none", "unbounded"):
            return None
        if text == "auto" and allow_auto:
            return "auto"
        parts = text.split(",")
        if len(parts) != 2:
            raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
        try:
            value = tuple(float(p) for p in parts)
        except ValueError:
            raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}") from None
    try:
        pair = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}") from None
    if pair.shape != (2,) or not np.all(np.isfinite(pair)) or not pair[0] < pair[1]:
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return float(pair[0]), float(pair[1])


def _first_layer(model):
    """The first layer that changes values, looking inside nested models."""
    import keras

    for layer in getattr(model, "layers", []):
        if type(layer).__name__ in _TRANSPARENT:
            continue
        if isinstance(layer, keras.Model):
            return _first_layer(layer)
        return layer
    return None


def _rescaling_range(layer):
    scale = np.asarray(layer.scale, np.float64).reshape(-1)
    offset = np.asarray(layer.offset, np.float64).reshape(-1)
    if np.any(scale == 0) or not (np.all(np.isfinite(scale)) and np.all(np.isfinite(offset))):
        return None
    # raw values start at 0 and are mapped onto [offset, offset + 1], or onto [offset, -offset]
    # for a negative offset (e.g. [-1, 1])
    top = np.where(offset < 0, -offset, offset + 1.0)
    ends = np.stack([np.zeros_like(scale), (top - offset) / scale])
    lo, hi = float(np.round(ends.min(), 6)), float(np.round(ends.max(), 6))
    return (lo, hi) if lo < hi else None


def _fmt(v) -> str:
    v = np.asarray(v, np.float64).reshape(-1)
    return f"{v[0]:.6g}" if v.size == 1 or np.all(v == v[0]) else f"[{', '.join(f'{x:.4g}' for x in v[:4])}...]"


def detect_input_range(model) -> tuple:
    """``(input_range, origin, note)`` read from the first value-changing layer of ``model``.

    ``Rescaling`` gives a bounded range (origin ``"model"``, see the module docstring),
    ``Normalization`` gives ``None`` (origin ``"normalization"``); anything else gives the
    assumed ``(0, 1)`` (origin ``"assumed"``).

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Rescaling(1 / 255), keras.layers.Dense(2)])
        >>> detect_input_range(m)[:2]
        ((0.0, 255.0), 'model')
    """
    layer = _first_layer(model)
    kind = type(layer).__name__ if layer is not None else None
    if kind == "Rescaling":
        found = _rescaling_range(layer)
        if found is not None:
            note = (f"Rescaling layer {layer.name!r} (scale {_fmt(layer.scale)}, offset {_fmt(layer.offset)}) "
                    f"takes values in [{found[0]:g}, {found[1]:g}]")
            return found, "model", note
    if kind == "Normalization":
        return None, "normalization", (f"Normalization layer {layer.name!r} standardises raw values and fixes no "
                                       "bounds: unbounded unless the data has a range")
    return _UNIT, "assumed", "nothing in the model fixes it: [0, 1] assumed until data is given"


def with_input_range(victim, input_range="auto"):
    """``victim`` with its range set: ``"auto"`` detects it, anything else is the user's choice."""
    value = parse_input_range(input_range, allow_auto=True)
    if value == "auto":
        found, origin, note = detect_input_range(victim.model)
        return replace(victim, input_range=found, range_origin=origin, range_note=note)
    note = "given as unbounded" if value is None else f"given as [{value[0]:g}, {value[1]:g}]"
    return replace(victim, input_range=value, range_origin="user", range_note=note)


def random_inputs(input_range, shape, seed: int = 0) -> np.ndarray:
    """float32 probe inputs of ``shape``: uniform over ``input_range``, standard normal when it is ``None``."""
    rng = np.random.default_rng(seed)
    if input_range is None:
        return rng.standard_normal(size=tuple(shape)).astype(np.float32)
    return rng.uniform(input_range[0], input_range[1], size=tuple(shape)).astype(np.float32)


def input_bounds(victim, x=None) -> tuple:
    """``(low, high)`` arrays of one input's shape inside which white-box attacks search.

    A bounded victim range gives constant arrays. An unbounded one (``None``) takes the
    range of the data ``x``: for feature vectors each feature's own ``[min, max]`` over the
    records, for images the overall ``[min, max]`` (one range for every pixel).

    Raises:
        ValueError: an unbounded victim and no ``x`` to take the bounds from.
    """
    shape = tuple(victim.input_shape)
    if victim.input_range is not None:
        lo, hi = victim.input_range
        return np.full(shape, lo, np.float32), np.full(shape, hi, np.float32)
    if x is None:
        raise ValueError("the victim's input range is unbounded (None), so the search needs bounds: pass "
                         "`bounds=(low, high)` or data to take them from (CLI: --dataset, or --input-range LO,HI)")
    x = np.asarray(x, np.float32).reshape(len(x), *shape)
    if len(shape) == 1:
        lo, hi = x.min(axis=0), x.max(axis=0)
    else:
        lo, hi = np.full(shape, x.min(), np.float32), np.full(shape, x.max(), np.float32)
    return lo.astype(np.float32), np.maximum(hi, lo + _SLACK).astype(np.float32)
