"""The black-box query interface an outside attacker gets.

``BlackBox`` is the only handle a black-box attack holds on a victim: it counts
every sample answered, refuses to go over a budget, validates each batch, answers
probabilities / top-k / labels, and applies an optional defense to what it returns.
"""

from __future__ import annotations

import numpy as np

from tfmodelsec.errors import InvalidQueryError, QueryBudgetExceeded
from tfmodelsec.models.io import Victim, as_victim
from tfmodelsec.utils import check_choice, check_positive

__all__ = ["BlackBox", "OUTPUTS", "defended_forward"]

OUTPUTS = ("probabilities", "top_k", "label")
# Inputs may sit a hair outside the declared range after float arithmetic
# (e.g. x + eps - eps); anything beyond this is a real violation.
_RANGE_SLACK = 1e-6


def defended_forward(victim: Victim, defense=None):
    """A compiled function ``x -> defended probabilities`` for ``victim`` and ``defense``.

    A defense is a Keras layer. By default it maps probabilities to probabilities
    (output perturbations, APGP); a layer whose ``operates_on`` attribute is
    ``"inputs"`` (APMSA, which wraps the victim) maps inputs to probabilities.
    """
    import tensorflow as tf

    model = victim.probability_model
    if defense is None:
        fn = lambda x: model(x, training=False)  # noqa: E731
    elif getattr(defense, "operates_on", "probabilities") == "inputs":
        fn = lambda x: defense(x, training=False)  # noqa: E731
    else:
        fn = lambda x: defense(model(x, training=False), training=False)  # noqa: E731
    return tf.function(fn, reduce_retracing=True)


class BlackBox:
    """Query access to a victim, as an attacker outside the owner's walls has it.

    Args:
        victim: a :class:`~tfmodelsec.models.io.Victim`, a ``keras.Model`` or a path.
        output: ``"probabilities"`` (full vector), ``"top_k"`` (vector with all but
            the ``k`` largest entries set to 0), or ``"label"`` (int labels).
        k: how many classes ``"top_k"`` keeps.
        budget: most samples this oracle will ever answer (``None``: unlimited).
        defense: a Keras layer applied to the answers (see :func:`defended_forward`).
        batch_size: samples per forward pass.

    Example:
        >>> oracle = BlackBox(victim, budget=1000)  # doctest: +SKIP
        >>> probs = oracle(x[:10]); oracle.queries_used
        10
    """

    def __init__(self, victim, *, output: str = "probabilities", k: int | None = None,
                 budget: int | None = None, defense=None, batch_size: int = 1024):
        self.victim = as_victim(victim)
        self.output = check_choice("output", output, OUTPUTS)
        if self.output == "top_k":
            if k is None or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.victim.num_classes:
                raise ValueError(
                    f"`k` must be an int in [1, {self.victim.num_classes}] when output='top_k'. Received: k={k!r}"
                )
        elif k is not None:
            raise ValueError(f"`k` is only used with output='top_k'. Received: k={k!r}, output={output!r}")
        if budget is not None:
            check_positive("budget", budget, integer=True)
        check_positive("batch_size", batch_size, integer=True)
        self.k = None if k is None else int(k)
        self.budget = None if budget is None else int(budget)
        self.defense = defense
        self.batch_size = int(batch_size)
        self._queries = 0
        self._forward = defended_forward(self.victim, defense)

    @property
    def queries_used(self) -> int:
        """Samples answered so far."""
        return self._queries

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self._queries

    @property
    def input_shape(self) -> tuple:
        return self.victim.input_shape

    @property
    def num_classes(self) -> int:
        return self.victim.num_classes

    @property
    def input_range(self) -> tuple | None:
        """The victim's ``(low, high)``; ``None`` for unbounded inputs (no range check)."""
        return self.victim.input_range

    def _validate(self, x) -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InvalidQueryError(f"queries must be numeric; received dtype {arr.dtype}")
        if arr.dtype == bool or np.issubdtype(arr.dtype, np.complexfloating):
            raise InvalidQueryError(f"queries must be real numbers; received dtype {arr.dtype}")
        expected = tuple(self.victim.input_shape)
        if arr.ndim != len(expected) + 1 or tuple(arr.shape[1:]) != expected:
            raise InvalidQueryError(
                f"queries must have shape (n, {', '.join(map(str, expected))}); received shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise InvalidQueryError("queries must hold at least one sample; received an empty batch")
        arr = arr.astype(np.float32, copy=False)
        flat = arr.reshape(len(arr), -1)
        finite = np.isfinite(flat).all(axis=1)
        if not finite.all():
            raise InvalidQueryError(f"query {int(np.argmin(finite))} holds NaN or infinite values")
        if self.victim.input_range is None:  # unbounded inputs (e.g. standardised features)
            return arr
        lo, hi = self.victim.input_range
        inside = (flat.min(axis=1) >= lo - _RANGE_SLACK) & (flat.max(axis=1) <= hi + _RANGE_SLACK)
        if not inside.all():
            i = int(np.argmin(inside))
            raise InvalidQueryError(
                f"query {i} has values in [{flat[i].min():.4g}, {flat[i].max():.4g}], outside the "
                f"victim's input range [{lo}, {hi}] ({self.victim.range_origin}: {self.victim.range_note}); "
                "set the range with input_range= (None: unbounded) or align_data(victim, data)"
            )
        return arr

    def __call__(self, x) -> np.ndarray:
        """Answer a batch of queries (counted); see the class docstring for the output."""
        arr = self._validate(x)
        n = len(arr)
        if self.budget is not None and self._queries + n > self.budget:
            raise QueryBudgetExceeded(
                f"answering {n} queries would exceed the budget: {self._queries} used of "
                f"{self.budget} ({self.budget - self._queries} left); nothing was answered"
            )
        probs = np.concatenate(
            [self._forward(arr[i : i + self.batch_size]).numpy() for i in range(0, n, self.batch_size)]
        )
        self._queries += n
        if self.output == "label":
            return probs.argmax(axis=1)
        if self.output == "top_k":
            keep = np.argsort(-probs, axis=1, kind="stable")[:, : self.k]
            out = np.zeros_like(probs)
            np.put_along_axis(out, keep, np.take_along_axis(probs, keep, axis=1), axis=1)
            return out
        return probs

    def __repr__(self) -> str:
        return (
            f"BlackBox(output={self.output!r}, k={self.k}, budget={self.budget}, "
            f"queries_used={self._queries}, defense={type(self.defense).__name__ if self.defense else None})"
        )
