"""``load_dataset``: a built-in dataset by name, or the user's own data by path."""

from __future__ import annotations

import os
from pathlib import Path

from tfmodelsec.data.builtin import DATASETS, is_builtin, load_builtin
from tfmodelsec.data.dataset import Dataset
from tfmodelsec.data.files import load_image_folder, load_npz
from tfmodelsec.data.tabular import load_csv, load_csv_folder

__all__ = ["load_dataset"]

_FILE_SUFFIXES = (".npz", ".csv")
_EXPECTED = (f"one of {list(DATASETS)}, 'tfds:NAME', a .npz file, a .csv file, a folder with train.csv and "
             "test.csv, or an image folder (train/<class>/, test/<class>/)")


def load_dataset(spec, *, image_size=None, label_column: str = "label", seed: int = 0, value_range="auto",
                 color_mode: str = "auto") -> Dataset:
    """Load a built-in dataset by name, or your own data from a file or folder.

    Built-in names (``mnist``, ``fashion_mnist``, ``cifar10``, ``digits``, ``tfds:NAME``) come
    first: a folder of yours with such a name is ``./mnist``. Otherwise ``spec`` is a path:

    * ``PATH.npz``: arrays ``x_train, y_train, x_test, y_test`` (+ optional ``x_pool``,
      ``class_names``, ``value_range``); uint8 images keep their 0..255 values.
    * ``PATH.csv``: a header row, numeric feature columns and the integer label column
      ``label_column``; split 80/20, stratified, with ``seed``.
    * a folder with ``train.csv`` and ``test.csv`` (+ optional unlabeled ``pool.csv``).
    * an image folder: ``train/<class>/`` and ``test/<class>/`` (+ optional ``pool/``), or only
      ``<class>/`` folders (split 80/20 with ``seed``); PNG, JPEG, BMP or GIF, read by
      ``keras.utils.image_dataset_from_directory``; values 0..255.

    Args:
        spec: a built-in name or a path (str or ``os.PathLike``).
        image_size: ``(height, width)`` to resize an image folder's images to (default: keep
            their common size).
        label_column: the label column of a CSV file (default ``"label"``).
        seed: the seed of the 80/20 split of a CSV file or a class folder, and of the order of an
            image folder's records (it lists them by class).
        value_range: for ``.npz`` files: ``"auto"``, ``(low, high)`` or ``None`` (unbounded).
        color_mode: for image folders: ``"auto"``, ``"grayscale"`` or ``"rgb"``.

    Returns:
        A :class:`Dataset`: float32 images ``(N, H, W, C)`` or feature vectors ``(N, D)``, int64
        labels, and the values' range (``(0, 1)`` for the built-in images, ``(0, 255)`` for
        8-bit pixels, ``None`` for features).

    Raises:
        ValueError: an unknown name, a file that does not hold what is expected (the message
            names the file and, for CSV files, the line).
        FileNotFoundError: a path that does not exist.
        DatasetUnavailable: a built-in dataset neither cached nor downloadable.

    Example:
        >>> data = load_dataset("digits")
        >>> data.x_train.shape[1:]
        (8, 8, 1)
        >>> data = load_dataset("my_data.npz")  # doctest: +SKIP
        >>> data = load_dataset("photos/", image_size=(32, 32))  # doctest: +SKIP
        >>> data = load_dataset("table.csv", label_column="target")  # doctest: +SKIP
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"`spec` must be a dataset name or a path: {_EXPECTED}. Received: spec={spec!r}")
    if not isinstance(label_column, str) or not label_column:
        raise ValueError(f"`label_column` must be a column name. Received: label_column={label_column!r}")
    path = Path(spec)
    kind = _kind(spec, path)
    if image_size is not None and kind != "images":
        raise ValueError(f"`image_size` applies to image folders only. Received: image_size={image_size!r} "
                         f"for spec={spec!r}")
    if kind == "builtin":
        return load_builtin(spec)
    if kind == "npz":
        return load_npz(path, value_range=value_range)
    if value_range != "auto":
        raise ValueError(f"`value_range` applies to .npz files only (CSV features are unbounded, image folders "
                         f"0..255). Received: value_range={value_range!r} for spec={spec!r}")
    if kind == "csv":
        return load_csv(path, label_column=label_column, seed=seed)
    if kind == "csv_folder":
        return load_csv_folder(path, label_column=label_column)
    return load_image_folder(path, image_size=image_size, color_mode=color_mode, seed=seed)


def _kind(spec: str, path: Path) -> str:
    if is_builtin(spec):
        return "builtin"
    if path.is_dir():
        if (path / "train.csv").is_file() or (path / "test.csv").is_file():
            return "csv_folder"
        return "images"
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix in _FILE_SUFFIXES:
            return suffix[1:]
        raise ValueError(f"{path}: unknown data file type {suffix or '(no suffix)'!r}; expected {_EXPECTED}")
    if suffix in _FILE_SUFFIXES or os.sep in spec or "/" in spec:
        raise FileNotFoundError(f"dataset not found: {spec} (expected {_EXPECTED})")
    raise ValueError(f"`spec` must be {_EXPECTED}. Received: spec={spec!r} (no such file or folder)")
