"""Membership inference: was this record in the model's training set?

- :mod:`.inference`: :func:`membership_inference`, the one entry point, and :class:`MembershipResult`
- :mod:`.threshold`: loss, confidence, entropy, modified-entropy threshold attacks
- :mod:`.shadow`: shadow models (Shokri et al. 2017) and the distilled proxy (seed lab 002)
- :mod:`.lira`: LiRA (Carlini et al. 2022), online and offline, with reusable reference models
- :mod:`.rmia`: RMIA (Zarifzadeh et al. 2024), online and offline, on LiRA's reference models
- :mod:`.references`: reference models trained K at a time in one compiled graph
- :mod:`.label_only`: label-only attacks (gap; augmentation and noise robustness, Choquette-Choo et al. 2021)
- :mod:`.split`: which records are members, non-members and the attacker's population
"""

from tfmodelsec.attacks.membership.inference import (
    ATTACKS,
    REPORT_FPRS,
    MembershipResult,
    membership_inference,
    results_table,
)
from tfmodelsec.attacks.membership.label_only import LabelOnly
from tfmodelsec.attacks.membership.lira import (
    LiraShadows,
    merge_lira_shadows,
    train_lira_shadows,
)
from tfmodelsec.attacks.membership.shadow import ShadowTraining
from tfmodelsec.attacks.membership.split import MembershipSplit, membership_split

__all__ = [
    "ATTACKS",
    "REPORT_FPRS",
    "LabelOnly",
    "LiraShadows",
    "MembershipResult",
    "MembershipSplit",
    "ShadowTraining",
    "membership_inference",
    "membership_split",
    "merge_lira_shadows",
    "results_table",
    "train_lira_shadows",
]
