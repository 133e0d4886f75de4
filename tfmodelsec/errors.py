"""Exceptions a user of tfmodelsec can cause.

Every one subclasses a builtin (``ValueError`` or ``RuntimeError``) so code that
already catches those keeps working; the CLI turns each into one line on stderr.
"""

from __future__ import annotations

__all__ = [
    "TfmsError",
    "ModelLoadError",
    "UnsafeModelError",
    "DatasetUnavailable",
    "QueryBudgetExceeded",
    "InvalidQueryError",
]


class TfmsError(Exception):
    """Base class of tfmodelsec's own exceptions."""


class ModelLoadError(TfmsError, ValueError):
    """A model file is missing parts, corrupt, truncated, or not a model at all."""


class UnsafeModelError(ModelLoadError):
    """A model file holds code (Lambda layers, unknown custom objects) and safe mode is on."""


class DatasetUnavailable(TfmsError, ValueError):
    """A dataset is neither cached locally nor downloadable."""


class QueryBudgetExceeded(TfmsError, RuntimeError):
    """A black-box query would go over the oracle's budget; nothing was answered."""


class InvalidQueryError(TfmsError, ValueError):
    """A query batch sent to the oracle is malformed."""
