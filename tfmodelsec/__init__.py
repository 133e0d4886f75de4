"""tfmodelsec: what an attacker can get from your Keras model, and how to reduce it.

Public API (pinned by ``tests/test_api.py``)::

    from tfmodelsec import load_dataset, load_victim, BlackBox, train_classifier, run_audit
"""

__version__ = "0.1.0"

from tfmodelsec.audit import run_audit  # noqa: E402
from tfmodelsec.data import Dataset, load_dataset  # noqa: E402
from tfmodelsec.errors import (  # noqa: E402
    DatasetUnavailable,
    InvalidQueryError,
    ModelLoadError,
    QueryBudgetExceeded,
    TfmsError,
    UnsafeModelError,
)
from tfmodelsec.models import Victim, as_victim, build_model, load_victim, save_model, train_classifier  # noqa: E402
from tfmodelsec.oracle import BlackBox  # noqa: E402
from tfmodelsec.utils import set_seed  # noqa: E402

__all__ = [
    "__version__",
    "BlackBox",
    "Dataset",
    "DatasetUnavailable",
    "InvalidQueryError",
    "ModelLoadError",
    "QueryBudgetExceeded",
    "TfmsError",
    "UnsafeModelError",
    "Victim",
    "as_victim",
    "build_model",
    "load_dataset",
    "load_victim",
    "run_audit",
    "save_model",
    "set_seed",
    "train_classifier",
]
