"""Attacks, grouped by family.

- white-box: :mod:`~tfmodelsec.attacks.recovery` (trainable front-end), :mod:`~tfmodelsec.attacks.inversion`
- black-box: :mod:`~tfmodelsec.attacks.stealing` (distillation, query selection, DRMI, self-training),
  :mod:`~tfmodelsec.attacks.membership` (threshold, shadow / proxy, LiRA)
- shared: :mod:`~tfmodelsec.attacks.evasion` (FGSM, PGD, CW)

Attacks never import the audit report (:mod:`tfmodelsec.audit`) or the command line: those import them.
"""

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
from tfmodelsec.attacks.stealing import (
    LOSSES,
    SELECTION_METHODS,
    SemiSupervised,
    StealResult,
    drmi_subset,
    evaluate_student,
    mutual_information_matrix,
    select_queries,
    steal,
)

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
