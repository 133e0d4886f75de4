"""Machine unlearning: checkpoint chain, DeepObliviate, SISA and naive retraining."""

from tfmodelsec.unlearning.base import UnlearnResult, check_delete_ids, evaluate_unlearning, retrain
from tfmodelsec.unlearning.chain import Chain, ChainConfig, ChainError, train_chain
from tfmodelsec.unlearning.deepobliviate import fit_power_law, stitch, unlearn
from tfmodelsec.unlearning.sisa import MajorityVote, Sisa, merge_sisa, train_sisa, unlearn_sisa

__all__ = [
    "Chain",
    "ChainConfig",
    "ChainError",
    "MajorityVote",
    "Sisa",
    "UnlearnResult",
    "check_delete_ids",
    "evaluate_unlearning",
    "fit_power_law",
    "merge_sisa",
    "retrain",
    "stitch",
    "train_chain",
    "train_sisa",
    "unlearn",
    "unlearn_sisa",
]
