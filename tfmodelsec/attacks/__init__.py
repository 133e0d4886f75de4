"""Attacks: each module is one attack family; import from the module (e.g. ``tfmodelsec.attacks.stealing``)."""

# --- model stealing and query selection ---
from tfmodelsec.attacks.drmi import drmi_subset, mutual_information_matrix  # noqa: E402,F401
from tfmodelsec.attacks.selection import SELECTION_METHODS, select_queries  # noqa: E402,F401
from tfmodelsec.attacks.stealing import LOSSES, SemiSupervised, StealResult, evaluate_student, steal  # noqa: E402,F401
