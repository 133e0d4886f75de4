"""tfmodelsec: what an attacker can get from your Keras model, and how to reduce it.

Public API (pinned by ``tests/test_api.py``)::

    from tfmodelsec import load_dataset, load_victim, BlackBox, train_classifier, run_audit

Importing the package registers every Keras layer it defines (defenses, SISA's vote), so
``keras.saving.load_model`` reads every model file tfmodelsec writes, safe mode on.
"""

__version__ = "0.1.0"

from tfmodelsec import _quiet

# only the `tfmodelsec` command: TensorFlow's start-up notices off (see tfmodelsec/_quiet.py)
_quiet.quiet_command_startup()

# registers the Keras classes tfmodelsec saves in model files (APGP, APMSA, MAD, the output
# defenses, MajorityVote) with keras.saving, so a plain keras.saving.load_model finds them
from tfmodelsec import defenses as _defenses  # noqa: E402, F401
from tfmodelsec import unlearning as _unlearning  # noqa: E402, F401
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
