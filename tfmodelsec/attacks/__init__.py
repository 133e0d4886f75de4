"""Attacks: each module is one attack family; import from the module (e.g. ``tfmodelsec.attacks.stealing``)."""

from tfmodelsec.attacks.membership import (  # noqa: E402, F401  (re-exports)
    MembershipResult,
    MembershipSplit,
    ShadowTraining,
    membership_inference,
    membership_split,
)
