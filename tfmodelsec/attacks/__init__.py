"""Attacks: each module is one attack family; import from the module (e.g. ``tfmodelsec.attacks.stealing``)."""

# --- input recovery and model inversion ---
from tfmodelsec.attacks.inversion import InversionConfig, InversionResult, SweepResult, invert, tv_sweep  # noqa: E402
from tfmodelsec.attacks.recovery import RecoveryResult, build_attack_model, recover_inputs  # noqa: E402
# --- model stealing and query selection ---
from tfmodelsec.attacks.drmi import drmi_subset, mutual_information_matrix  # noqa: E402,F401
from tfmodelsec.attacks.selection import SELECTION_METHODS, select_queries  # noqa: E402,F401
from tfmodelsec.attacks.stealing import LOSSES, SemiSupervised, StealResult, evaluate_student, steal  # noqa: E402,F401
