"""Model stealing: copy a victim through its query interface.

- :mod:`.distillation`: :func:`steal`, a student distilled from the victim's answers (MSE, KL, hard labels)
- :mod:`.selection`: which pool samples to spend the budget on (random, DRMI, baselines)
- :mod:`.drmi`: mutual information of co-located gray levels and the subset search (He et al. 2021)
- :mod:`.self_training`: self-training the student on the unlabeled pool, without queries
- :mod:`.sweep`: one attack per seed x method x loss x budget (the CLI, the report, the benchmark)
"""

from tfmodelsec.attacks.stealing.distillation import LOSSES, SemiSupervised, StealResult, evaluate_student, steal
from tfmodelsec.attacks.stealing.drmi import drmi_subset, mutual_information_matrix
from tfmodelsec.attacks.stealing.selection import SELECTION_METHODS, select_queries
from tfmodelsec.attacks.stealing.sweep import summarize, sweep

__all__ = [
    "LOSSES",
    "SELECTION_METHODS",
    "SemiSupervised",
    "StealResult",
    "drmi_subset",
    "evaluate_student",
    "mutual_information_matrix",
    "select_queries",
    "steal",
    "summarize",
    "sweep",
]
