"""Choosing target records from a dataset: training-set indices as members, test records as non-members."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfmodelsec.ids import read_ids

__all__ = ["MembershipSplit", "membership_split", "parse_ids"]

POPULATIONS = ("train-rest", "test-rest", "none")


@dataclass
class MembershipSplit:
    """Members, non-members and attacker population drawn from one dataset.

    ``member_ids`` index the training set, ``non_member_ids`` the test set; ``population``
    is ``None`` or ``(x, y)``; ``assumption`` says in words what is taken for granted.
    """

    members: tuple = field(repr=False)
    non_members: tuple = field(repr=False)
    population: tuple | None = field(repr=False)
    member_ids: np.ndarray = field(repr=False)
    non_member_ids: np.ndarray = field(repr=False)
    assumption: str = ""


def parse_ids(spec, total: int, *, name: str) -> np.ndarray:
    """Ids in ``[0, total)`` from ``spec``: ``"first:N"``, inline ids, a file, or ints (see :mod:`tfmodelsec.ids`)."""
    return read_ids(spec, total=total, name=name)


def membership_split(data, members, non_members=None, *, population: str = "train-rest") -> MembershipSplit:
    """Target records for an audit from a :class:`~tfmodelsec.data.Dataset`.

    Args:
        data: the dataset the victim was trained on.
        members: training-set indices the victim was trained on (``"first:N"``, ints).
        non_members: test-set indices (default: the first ``len(members)`` test records,
            at most all of them, or half when ``population="test-rest"``).
        population: attacker data: ``"train-rest"`` (training records not in ``members``:
            valid only if the victim never saw them, e.g. trained with ``--train-subset``),
            ``"test-rest"`` (test records not in ``non_members``) or ``"none"``.
    """
    if population is None:
        population = "none"
    if population not in POPULATIONS:
        raise ValueError(f"`population` must be one of {POPULATIONS}. Received: population={population!r}")
    n_train, n_test = len(data.x_train), len(data.x_test)
    member_ids = parse_ids(members, n_train, name="members")
    if non_members is None:
        cap = n_test // 2 if population == "test-rest" else n_test
        non_member_ids = np.arange(min(len(member_ids), cap))
    else:
        non_member_ids = parse_ids(non_members, n_test, name="non_members")
    pop = None
    if population == "train-rest":
        rest = np.setdiff1d(np.arange(n_train), member_ids)
        pop = (data.x_train[rest], data.y_train[rest])
        where = "training records outside the members (assumed unseen by the victim)"
    elif population == "test-rest":
        rest = np.setdiff1d(np.arange(n_test), non_member_ids)
        pop = (data.x_test[rest], data.y_test[rest])
        where = "test records outside the non-members"
    else:
        where = "none"
    if pop is not None and len(pop[0]) == 0:
        pop = None
    assumption = (f"members: {len(member_ids)} {data.name} training records, assumed to be in the victim's "
                  f"training set; non-members: {len(non_member_ids)} {data.name} test records, assumed not; "
                  f"attacker population: {where}")
    return MembershipSplit((data.x_train[member_ids], data.y_train[member_ids]),
                           (data.x_test[non_member_ids], data.y_test[non_member_ids]), pop,
                           member_ids, non_member_ids, assumption)
