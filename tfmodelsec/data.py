"""Datasets: built-in ones by name (float32 NHWC images in [0, 1]) and the user's own arrays.

MNIST, Fashion-MNIST and CIFAR-10 come through ``keras.datasets`` and therefore
through the Keras cache (``$KERAS_HOME/datasets``): the same code path a user with
internet gets, and the offline path when the cache holds the files. ``digits`` is
scikit-learn's bundled 8x8 digits (always offline). ``tfds:NAME`` uses
tensorflow-datasets when it is installed (``pip install tfmodelsec[tfds]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from tfmodelsec.errors import DatasetUnavailable

__all__ = ["Dataset", "load_dataset", "DATASETS", "keras_cache_dir"]

#: Names accepted by :func:`load_dataset` (plus ``tfds:NAME``).
DATASETS = ("mnist", "fashion_mnist", "cifar10", "digits")

# What Keras' loaders look for inside $KERAS_HOME/datasets, for the error message.
_EXPECTED_FILES = {
    "mnist": ["mnist.npz"],
    "fashion_mnist": [
        "fashion-mnist/train-images-idx3-ubyte.gz",
        "fashion-mnist/train-labels-idx1-ubyte.gz",
        "fashion-mnist/t10k-images-idx3-ubyte.gz",
        "fashion-mnist/t10k-labels-idx1-ubyte.gz",
    ],
    "cifar10": ["cifar-10-batches-py-target_archive (Keras >= 3.6) or cifar-10-batches-py.tar.gz"],
}

# scikit-learn's digits have 1,797 samples; a stratified 80/20 split with a fixed
# seed gives a reproducible train/test pair (there is no official split).
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset: images ``(N, H, W, C)`` or feature vectors ``(N, D)``, with integer labels.

    Attributes:
        name: where it came from (a built-in name, a file path, ``"arrays"``...).
        x_train, x_test: float32 images ``(N, H, W, C)`` or feature vectors ``(N, D)``.
        y_train, y_test: int64 labels in ``[0, num_classes)``.
        num_classes: number of classes.
        value_range: ``(low, high)`` the values live in (``(0.0, 1.0)`` for the built-in image
            datasets, ``(0.0, 255.0)`` for raw 8-bit pixels), or ``None`` for unbounded values
            (e.g. standardised features).
        x_pool: optional unlabeled attacker data of the same shape (model stealing's pool).
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    value_range: tuple | None = (0.0, 1.0)
    x_pool: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim not in (2, 4):
                raise ValueError(f"`x_{split}` must be images (N, H, W, C) or feature vectors (N, D). "
                                 f"Received shape {x.shape}")
            if len(x) != len(y):
                raise ValueError(
                    f"`x_{split}` and `y_{split}` differ in length: {len(x)} vs {len(y)}"
                )
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(f"`x_test` records must have the shape of `x_train`'s: "
                             f"{self.x_test.shape[1:]} vs {self.x_train.shape[1:]}")
        if self.x_pool is not None and self.x_pool.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(f"`x_pool` records must have the shape of `x_train`'s: "
                             f"{self.x_pool.shape[1:]} vs {self.x_train.shape[1:]}")
        if self.value_range is not None:
            lo, hi = self.value_range
            if not float(lo) < float(hi):
                raise ValueError(f"`value_range` must be (low, high) with low < high, or None. "
                                 f"Received: value_range={self.value_range!r}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def kind(self) -> str:
        """``"images"`` for ``(N, H, W, C)`` records, ``"features"`` for ``(N, D)`` vectors."""
        return "images" if self.x_train.ndim == 4 else "features"

    @property
    def pool(self) -> np.ndarray:
        """The attacker's unlabeled data: ``x_pool`` when given, else the training inputs."""
        return self.x_train if self.x_pool is None else self.x_pool

    @classmethod
    def from_arrays(cls, x_train, y_train, x_test, y_test, *, name: str = "arrays", num_classes: int | None = None,
                    value_range="auto", x_pool=None) -> "Dataset":
        """A dataset from NumPy arrays (images ``(N, H, W[, C])`` or feature vectors ``(N, D)``).

        Args:
            x_train, y_train, x_test, y_test: the records and their integer labels.
            name: shown in reports.
            num_classes: default ``max(label) + 1``.
            value_range: ``(low, high)``, ``None`` (unbounded), or ``"auto"``: ``(0, 255)`` for
                integer images, ``(0, 1)`` for float images within [0, 1], else ``None``.
            x_pool: optional unlabeled attacker data.

        Raises:
            ValueError: labels that are not integers in ``[0, num_classes)``, ragged shapes.

        Example:
            >>> import numpy as np
            >>> d = Dataset.from_arrays(np.zeros((4, 3)), [0, 1, 0, 1], np.ones((2, 3)), [1, 0])
            >>> d.kind, d.num_classes, d.value_range
            ('features', 2, None)
        """
        arrays = {"x_train": x_train, "x_test": x_test}
        if x_pool is not None:
            arrays["x_pool"] = x_pool
        raw = {k: np.asarray(v) for k, v in arrays.items()}
        for key, x in raw.items():
            if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or x.ndim < 2:
                raise ValueError(f"`{key}` must be a numeric array of records (N, ...). "
                                 f"Received dtype {x.dtype}, shape {x.shape}")
        if value_range == "auto":
            value_range = _auto_value_range(raw["x_train"])
        xs = {k: _as_records(v) for k, v in raw.items()}
        labels = {k: _as_labels(k, v) for k, v in (("y_train", y_train), ("y_test", y_test))}
        top = int(max(labels["y_train"].max(initial=0), labels["y_test"].max(initial=0)))
        if num_classes is None:
            num_classes = top + 1
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 2 or top >= num_classes:
            raise ValueError(f"`num_classes` must be an integer >= 2 above every label (largest label {top}). "
                             f"Received: num_classes={num_classes!r}")
        return cls(str(name), xs["x_train"], labels["y_train"], xs["x_test"], labels["y_test"], int(num_classes),
                   None if value_range is None else (float(value_range[0]), float(value_range[1])),
                   xs.get("x_pool"))

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` training and ``n_test`` test records (``None`` keeps all)."""
        for name, n, total in (("n_train", n_train, len(self.x_train)),
                               ("n_test", n_test, len(self.x_test))):
            if n is not None and not (isinstance(n, (int, np.integer)) and 0 < n <= total):
                raise ValueError(f"`{name}` must be an integer in [1, {total}]. Received: {name}={n!r}")
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
                       x_test=self.x_test[:n_test], y_test=self.y_test[:n_test])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, "
            f"test={self.x_test.shape}, num_classes={self.num_classes}, value_range={self.value_range})"
        )


def _auto_value_range(x: np.ndarray):
    if x.ndim < 3:  # feature vectors: no range is implied
        return None
    if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
        return (0.0, 255.0) if x.dtype != bool else (0.0, 1.0)
    if x.size and float(x.min()) >= 0.0 and float(x.max()) <= 1.0:
        return (0.0, 1.0)
    return None


def _as_records(x: np.ndarray) -> np.ndarray:
    """float32 records: ``(N, H, W)`` gray images gain a channel axis; ``(N, D)`` stays."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim not in (2, 4):
        raise ValueError(f"records must be (N, D), (N, H, W) or (N, H, W, C). Received shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("records must be finite numbers (found NaN or inf)")
    return np.ascontiguousarray(x)


def _as_labels(key: str, y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or
                           (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y))
                            and np.all(y == np.round(y)))):
        raise ValueError(f"`{key}` must be integer class labels, one per record. "
                         f"Received dtype {y.dtype}, shape {y.shape}")
    if y.size and y.min() < 0:
        raise ValueError(f"`{key}` must be labels >= 0. Received a label {int(y.min())}")
    return y.astype(np.int64)


def keras_cache_dir() -> str:
    """The folder Keras reads cached datasets from (``$KERAS_HOME/datasets``)."""
    from keras.src.backend import config  # the same accessor get_file() uses

    return os.path.join(os.path.expanduser(config.keras_home()), "datasets")


def _to_images(x: np.ndarray, scale: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32) / np.float32(scale)
    if x.ndim == 3:
        x = x[..., None]
    return np.ascontiguousarray(x)


def _from_keras(name: str):
    import keras

    loader = {
        "mnist": keras.datasets.mnist,
        "fashion_mnist": keras.datasets.fashion_mnist,
        "cifar10": keras.datasets.cifar10,
    }[name]
    from tfmodelsec.utils import keras_download_notice

    try:
        with keras_download_notice():  # no "Downloading data from" line when offline
            (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # Keras raises a bare Exception on a failed download
        expected = ", ".join(_EXPECTED_FILES[name])
        raise DatasetUnavailable(
            f"dataset {name!r} is not cached and could not be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}). Keras looks in "
            f"KERAS_HOME={os.environ.get('KERAS_HOME', '~/.keras (unset)')!s} for "
            f"{keras_cache_dir()}/{expected}; copy the files there or set KERAS_HOME "
            "to a writable folder that holds them."
        ) from None
    return Dataset(
        name,
        _to_images(x_train, 255.0),
        np.asarray(y_train).reshape(-1).astype(np.int64),
        _to_images(x_test, 255.0),
        np.asarray(y_test).reshape(-1).astype(np.int64),
        10,
    )


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[..., None]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=_DIGITS_TEST_FRACTION, random_state=_DIGITS_SPLIT_SEED, stratify=y
    )
    return Dataset("digits", x_train, y_train, x_test, y_test, 10)


def _from_tfds(name: str) -> Dataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetUnavailable(
            f"dataset 'tfds:{name}' needs tensorflow-datasets: pip install 'tfmodelsec[tfds]'"
        ) from None
    try:
        (x_train, y_train), (x_test, y_test) = tfds.as_numpy(
            tfds.load(name, split=["train", "test"], as_supervised=True, batch_size=-1)
        )
        info = tfds.builder(name).info
    except Exception as exc:
        raise DatasetUnavailable(
            f"dataset 'tfds:{name}' could not be loaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]})"
        ) from None
    scale = 255.0 if np.issubdtype(np.asarray(x_train).dtype, np.integer) else 1.0
    num_classes = int(info.features["label"].num_classes)
    return Dataset(
        f"tfds:{name}",
        _to_images(x_train, scale),
        np.asarray(y_train).astype(np.int64),
        _to_images(x_test, scale),
        np.asarray(y_test).astype(np.int64),
        num_classes,
    )


def load_dataset(name: str) -> Dataset:
    """Load a dataset by name.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` (or ``"fashion-mnist"``), ``"cifar10"``,
            ``"digits"``, or ``"tfds:NAME"``.

    Returns:
        A :class:`Dataset` with float32 NHWC images in [0, 1] and int64 labels.

    Raises:
        ValueError: unknown name.
        DatasetUnavailable: the data is neither cached nor downloadable.

    Example:
        >>> data = load_dataset("digits")
        >>> data.x_train.shape[1:]
        (8, 8, 1)
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a dataset name. Received: name={name!r}")
    if name.startswith("tfds:"):
        return _from_tfds(name[len("tfds:"):])
    key = name.lower().replace("-", "_")
    if key == "digits":
        return _digits()
    if key in _EXPECTED_FILES:
        return _from_keras(key)
    raise ValueError(
        f"`name` must be one of {list(DATASETS)} or 'tfds:NAME'. Received: name={name!r}"
    )
