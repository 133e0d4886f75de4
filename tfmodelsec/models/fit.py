"""Does the data fit the victim? A victim near chance on the given data is probably audited on
the wrong data (an MNIST model on Fashion-MNIST scores 10.65%), or its classes are numbered
differently from the data's labels: every figure computed from such a run means little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["FitCheck", "NEAR_CHANCE_MARGIN", "check_fit"]

#: A victim is "near chance" when it closes less than this fraction of the gap between the
#: chance rate and 100% accuracy: below 19% for 10 balanced classes, 55% for 2, 10.9% for 100.
#: Any model trained on the data clears it by far; one shown the wrong data does not.
NEAR_CHANCE_MARGIN = 0.1
#: Test records scored (a seeded random subset: data listed by class would bias the first N).
MAX_RECORDS = 2000


@dataclass(frozen=True)
class FitCheck:
    """The victim's accuracy on (a subset of) the test data, against chance.

    Attributes:
        accuracy: the victim's accuracy on ``records`` test records.
        chance: the accuracy of always answering the most frequent label of those records.
        records: how many test records were scored.
        dataset: the data's name.
    """

    accuracy: float
    chance: float
    records: int
    dataset: str

    @property
    def near_chance(self) -> bool:
        return self.records > 0 and self.accuracy < self.chance + NEAR_CHANCE_MARGIN * (1.0 - self.chance)

    @property
    def warning(self) -> str | None:
        """One line for the top of a command's output and of the audit report, or ``None``."""
        if not self.near_chance:
            return None
        return (f"the victim's accuracy on {self.dataset!r} is {self.accuracy:.2%} ({self.records} test records), "
                f"near chance ({self.chance:.2%} by always answering the most frequent class): is this the data "
                "it was trained on, with its labels numbered the same way? Results below may mean little.")

    def to_dict(self) -> dict:
        return {**asdict(self), "near_chance": self.near_chance, "warning": self.warning}


def check_fit(victim, data, *, max_records: int = MAX_RECORDS, seed: int = 0) -> FitCheck:
    """Score ``victim`` on up to ``max_records`` of ``data``'s test records and compare with chance.

    Args:
        victim: a :class:`~tfmodelsec.models.io.Victim` (or anything with ``predict_labels``
            and ``input_shape``).
        data: a :class:`~tfmodelsec.data.Dataset` whose records fit the victim (images of the
            victim's flat input size are reshaped).
        max_records: test records scored (a seeded random subset when there are more).
        seed: picks the subset.

    Returns:
        A :class:`FitCheck`; its ``warning`` is a line to show when the victim is near chance.

    Example:
        >>> fit = check_fit(victim, load_dataset("fashion_mnist"))  # doctest: +SKIP
        >>> fit.near_chance, round(fit.accuracy, 4)  # an MNIST LeNet-5
        (True, 0.1065)
    """
    x, y = data.x_test, np.asarray(data.y_test)
    if len(x) > max_records:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_records, replace=False))
        x, y = x[keep], y[keep]
    shape = tuple(victim.input_shape)
    if tuple(x.shape[1:]) != shape and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        x = x.reshape((len(x), *shape))
    if len(y) == 0:
        return FitCheck(0.0, 0.0, 0, str(data.name))
    accuracy = float(np.mean(victim.predict_labels(x) == y))
    chance = float(np.bincount(y).max() / len(y))
    return FitCheck(accuracy, chance, len(y), str(data.name))
