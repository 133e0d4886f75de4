"""Attacks: one module per attack family.

- white-box: :mod:`~tfmodelsec.attacks.recovery` (trainable front-end), :mod:`~tfmodelsec.attacks.inversion`
- black-box: :mod:`~tfmodelsec.attacks.stealing`, :mod:`~tfmodelsec.attacks.selection` (+ DRMI),
  :mod:`~tfmodelsec.attacks.membership`
- shared: :mod:`~tfmodelsec.attacks.evasion` (FGSM, PGD, CW)
"""

from tfmodelsec.attacks.drmi import drmi_subset, mutual_information_matrix
from tfmodelsec.attacks.evasion import attack_success, cw, fgsm, pgd
from tfmodelsec.attacks.inversion import InversionConfig, InversionResult, SweepResult, invert, tv_sweep
from tfmodelsec.attacks.membership import (
    MembershipResult,
    MembershipSplit,
    ShadowTraining,
    membership_inference,
    membership_split,
)
from tfmodelsec.attacks.recovery import RecoveryResult, build_attack_model, recover_inputs
from tfmodelsec.attacks.selection import SELECTION_METHODS, select_queries
from tfmodelsec.attacks.stealing import LOSSES, SemiSupervised, StealResult, evaluate_student, steal

__all__ = [
    "LOSSES",
    "SELECTION_METHODS",
    "InversionConfig",
    "InversionResult",
    "MembershipResult",
    "MembershipSplit",
    "RecoveryResult",
    "SemiSupervised",
    "ShadowTraining",
    "StealResult",
    "SweepResult",
    "attack_success",
    "build_attack_model",
    "cw",
    "drmi_subset",
    "evaluate_student",
    "fgsm",
    "invert",
    "membership_inference",
    "membership_split",
    "mutual_information_matrix",
    "pgd",
    "recover_inputs",
    "select_queries",
    "steal",
    "tv_sweep",
]
