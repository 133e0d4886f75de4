"""Attacks: each module is one attack family; import from the module (e.g. ``tfmodelsec.attacks.stealing``)."""

# --- input recovery and model inversion ---
from tfmodelsec.attacks.inversion import InversionConfig, InversionResult, SweepResult, invert, tv_sweep  # noqa: E402
from tfmodelsec.attacks.recovery import RecoveryResult, build_attack_model, recover_inputs  # noqa: E402
