"""Tabular data from CSV files: numeric feature columns and an integer label column.

A file ``PATH.csv`` is split 80/20 (stratified, seeded); a folder holding ``train.csv`` and
``test.csv`` (optionally ``pool.csv``, unlabeled) keeps that split. The first row names the
columns. NumPy's C reader (``np.loadtxt``) reads the values; when it refuses a file, the
standard ``csv`` module reads it again to say which line and column is wrong.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from tfmodelsec.data.dataset import Dataset
from tfmodelsec.data.files import stratified_split

__all__ = ["load_csv", "load_csv_folder"]


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.reader(f):
            if row:
                return [name.strip() for name in row]
    raise ValueError(f"{path}: empty file; expected a header row naming the columns, then numeric rows")


def _diagnose(path: Path, columns: list[str], label: int | None) -> None:
    """Raise a ValueError naming the first line of ``path`` that does not parse."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader)  # the header
        for row in reader:
            if not row:
                continue
            if len(row) != len(columns):
                raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, expected {len(columns)} "
                                 f"like the header")
            for j, value in enumerate(row):
                try:
                    number = float(value)
                except ValueError:
                    number = None
                if j == label:
                    if number is None or not np.isfinite(number) or number != round(number) or number < 0:
                        raise ValueError(f"{path}: line {reader.line_num}, label column {columns[j]!r}: {value!r} "
                                         "is not an integer class label >= 0 (encode the classes as 0, 1, 2, ...)")
                elif number is None or not np.isfinite(number):
                    raise ValueError(f"{path}: line {reader.line_num}, column {columns[j]!r}: {value!r} is not "
                                     "a finite number; expected numeric feature columns")


def _read(path: Path, label_column: str | None, *, required: bool = True):
    """``(feature names, features (N, D) float32, labels (N,) int64 or None)`` of one CSV file."""
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    columns = _header(path)
    label = columns.index(label_column) if label_column in columns else None
    if label is None and required:
        shown = ", ".join(repr(c) for c in columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise ValueError(f"{path}: no label column {label_column!r} (columns: {shown}); name it with "
                         "label_column= (CLI: --label-column NAME)")
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise ValueError(f"{path}: column name(s) {dup} appear more than once in the header")
    if len(columns) - (label is not None) < 1:
        raise ValueError(f"{path}: no feature columns besides the label column {label_column!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": handled below
            values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, comments=None,
                                quotechar='"', encoding="utf-8-sig")
    except ValueError:
        values = None
    if values is not None and values.size == 0:
        raise ValueError(f"{path}: no data rows after the header")
    bad = values is None or values.shape[1] != len(columns) or not np.all(np.isfinite(values))
    if not bad and label is not None:
        y = values[:, label]
        bad = bool(np.any(y != np.round(y)) or np.any(y < 0))
    if bad:
        _diagnose(path, columns, label)
        raise ValueError(f"{path}: could not read the values as numbers; expected a header row, then rows of "
                         f"{len(columns)} comma-separated numbers")
    features = [j for j in range(len(columns)) if j != label]
    x = values[:, features].astype(np.float32)
    y = None if label is None else values[:, label].astype(np.int64)
    return [columns[j] for j in features], x, y


def load_csv(path, *, label_column: str = "label", seed: int = 0) -> Dataset:
    """A tabular dataset from one CSV file, split 80/20 (stratified, seeded).

    Args:
        path: the file: a header row, then rows of numbers.
        label_column: the column holding integer class labels (``0 .. K-1``).
        seed: the split seed.

    Returns:
        A :class:`Dataset` of float32 feature vectors ``(N, D)`` (all other columns, in file order),
        ``value_range=None`` (unbounded).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a ragged row, a non-numeric feature, a missing or non-integer label column
            (each naming the line), a class too small to split.

    Example:
        >>> data = load_csv("wine.csv", label_column="target")  # doctest: +SKIP
    """
    path = Path(path)
    _, x, y = _read(path, label_column)
    x_train, x_test, y_train, y_test = stratified_split(x, y, seed=seed, what=str(path))
    try:
        return Dataset.from_arrays(x_train, y_train, x_test, y_test, name=str(path), value_range=None)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_csv_folder(path, *, label_column: str = "label") -> Dataset:
    """A tabular dataset from ``PATH/train.csv`` and ``PATH/test.csv`` (and optional unlabeled ``pool.csv``).

    The files must have the same feature columns (in any order; test and pool are reordered to
    train's). See :func:`load_csv` for the format.
    """
    root = Path(path)
    names, x_train, y_train = _read(root / "train.csv", label_column)
    parts = {"test": _read(root / "test.csv", label_column)}
    if (root / "pool.csv").is_file():
        parts["pool"] = _read(root / "pool.csv", label_column, required=False)
    for key, (other, x, y) in list(parts.items()):
        if sorted(other) != sorted(names):
            missing, extra = sorted(set(names) - set(other)), sorted(set(other) - set(names))
            raise ValueError(f"{root / (key + '.csv')}: feature columns differ from train.csv's "
                             f"(missing: {missing or '-'}; extra: {extra or '-'})")
        if other != names:
            parts[key] = (names, x[:, [other.index(n) for n in names]], y)
    try:
        return Dataset.from_arrays(x_train, y_train, parts["test"][1], parts["test"][2], name=str(path),
                                   value_range=None, x_pool=parts["pool"][1] if "pool" in parts else None)
    except ValueError as exc:
        raise ValueError(f"{root}: {exc}") from None
