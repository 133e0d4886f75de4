"""Fitting a dataset to a victim: shapes reshaped, value ranges reconciled (see :mod:`.ranges`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tfmodelsec.models.io import as_victim
from tfmodelsec.models.ranges import notice

__all__ = ["align_data"]

# Test records used to tell whether a victim with no declared range wants the data as
# given or rescaled to [0, 1]: enough for a clear accuracy gap, cheap on any victim.
_PROBE_RECORDS = 512
# Values a hair outside a range after float arithmetic still count as inside.
_SLACK = 1e-6
_UNIT = (0.0, 1.0)


def _reshaped(victim, data, verbose):
    want, have = tuple(victim.input_shape), tuple(data.input_shape)
    if want == have:
        return victim, data
    if int(np.prod(want)) != int(np.prod(have)):
        raise ValueError(f"the victim expects inputs of shape {want} but dataset {data.name!r} has samples of "
                         f"shape {have}")

    notice(f"the victim takes inputs of shape {want}: reshaping dataset {data.name!r} samples {have} to {want}",
           verbose=verbose)
    data = _map_inputs(data, lambda x: np.ascontiguousarray(x.reshape(len(x), *want)))
    if len(have) == 3 and len(want) == 1:
        victim = replace(victim, image_shape=have)
    return victim, data


def _map_inputs(data, fn, **changes):
    """``data`` with ``fn`` applied to each input array it holds (train, test, pool) and ``changes`` made."""

    def apply(x):
        return None if x is None else fn(x)

    return replace(data, x_train=apply(data.x_train), x_test=apply(data.x_test), x_pool=apply(data.x_pool),
                   **changes)


def _linear(x, source, target):
    """``x`` mapped linearly from the ``source`` range onto the ``target`` range (float32)."""
    (a, b), (c, d) = source, target
    return ((x - a) * np.float32((d - c) / (b - a)) + np.float32(c)).astype(np.float32)


def _rescale(data, source, target):
    return _map_inputs(data, lambda x: _linear(x, source, target), value_range=(float(target[0]), float(target[1])))


def _span(data):
    xs = [x for x in (data.x_train, data.x_test, data.x_pool) if x is not None and x.size]
    return float(min(x.min() for x in xs)), float(max(x.max() for x in xs))


def _probe_accuracy(victim, data, rng_range=None):
    x, y = data.x_test[:_PROBE_RECORDS], data.y_test[:_PROBE_RECORDS]
    if rng_range is not None:
        x = _linear(x, data.value_range, rng_range)
    return float(np.mean(victim.predict_labels(x) == y)) if len(x) else 0.0


def _adopt(victim, data, verbose):
    """Nothing in the model fixes the range: take the data's (or [0, 1] if the victim prefers it)."""
    found = data.value_range
    if found is not None and found != _UNIT:
        as_given, unit = _probe_accuracy(victim, data), _probe_accuracy(victim, data, _UNIT)
        n = min(len(data.x_test), _PROBE_RECORDS)
        if unit > as_given:
            notice(f"nothing in the victim fixes its input range; on {n} test records it scores {unit:.1%} with "
                   f"dataset {data.name!r} rescaled from [{found[0]:g}, {found[1]:g}] to [0, 1] and {as_given:.1%} "
                   "as given: rescaling to [0, 1] (override with --input-range / input_range=)", verbose=verbose)
            victim = replace(victim, input_range=_UNIT, range_origin="data",
                             range_note=f"the victim classifies dataset {data.name!r} better rescaled to [0, 1]")
            return victim, _rescale(data, found, _UNIT)
        notice(f"nothing in the victim fixes its input range; using dataset {data.name!r}'s [{found[0]:g}, "
               f"{found[1]:g}] (on {n} test records: {as_given:.1%} as given, {unit:.1%} rescaled to [0, 1]; "
               "override with --input-range / input_range=)", verbose=verbose)
    elif found is None and victim.range_origin == "assumed":
        notice(f"nothing in the victim fixes its input range and dataset {data.name!r} is unbounded: treating the "
               "victim's inputs as unbounded (override with --input-range / input_range=)", verbose=verbose)
    note = "unbounded" if found is None else f"[{found[0]:g}, {found[1]:g}]"
    return replace(victim, input_range=found, range_origin="data",
                   range_note=f"the range of dataset {data.name!r}, {note} (nothing in the model fixes one)"), data


def align_data(victim, data, *, verbose: int = 1):
    """Fit ``data`` to ``victim`` (shape and value range); return ``(victim, data)``.

    * shapes that differ but hold the same number of values are reshaped (an image dataset
      for a flat ``Input(784)`` victim: the victim then remembers ``image_shape``);
    * a victim whose range nothing in the model fixes takes the data's range (see the module
      docstring);
    * a bounded victim range and a different bounded data range: the data is rescaled
      linearly onto the victim's range;
    * unbounded data (``value_range=None``) for a bounded victim: used as is when every value
      lies inside the victim's range, refused otherwise.

    Each change is said in one line on stderr (``verbose=0`` silences it).

    Raises:
        ValueError: shapes that cannot be reconciled, or unbounded data outside a bounded victim range.

    Example:
        >>> victim, data = align_data(load_victim("cnn_rescaling.h5"), load_dataset("mnist"))  # doctest: +SKIP
        tfmodelsec: note: rescaling dataset 'mnist' from [0, 1] to the victim's input range [0, 255] (...)
    """
    victim = as_victim(victim)
    victim, data = _reshaped(victim, data, verbose)
    if victim.range_origin in ("assumed", "normalization"):
        return _adopt(victim, data, verbose)
    want, have = victim.input_range, data.value_range
    if want is None or have == want:
        return victim, data
    if have is not None:
        notice(f"rescaling dataset {data.name!r} from [{have[0]:g}, {have[1]:g}] to the victim's input range "
               f"[{want[0]:g}, {want[1]:g}] ({victim.range_origin}: {victim.range_note})", verbose=verbose)
        return victim, _rescale(data, have, want)
    lo, hi = _span(data)
    if lo < want[0] - _SLACK or hi > want[1] + _SLACK:
        raise ValueError(
            f"dataset {data.name!r} holds values in [{lo:.4g}, {hi:.4g}], outside the victim's input range "
            f"[{want[0]:g}, {want[1]:g}] ({victim.range_origin}: {victim.range_note}); pass --input-range none "
            "(input_range=None) for unbounded inputs, or LO,HI matching the data, or scale the data")
    return victim, replace(data, value_range=want)
