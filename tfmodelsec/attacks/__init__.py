"""Attacks: each module is one attack family; import from the module (e.g. ``tfmodelsec.attacks.stealing``)."""

# --- model stealing and query selection ---
from tfmodelsec.attacks.drmi import drmi_subset, mutual_information_matrix  # noqa: F401
from tfmodelsec.attacks.selection import SELECTION_METHODS, select_queries  # noqa: F401
from tfmodelsec.attacks.stealing import (  # noqa: F401
    LOSSES,
    SemiSupervised,
    StealResult,
    evaluate_student,
    steal,
)
