"""Datasets by name, as float32 NHWC images in [0, 1] with integer labels.

MNIST, Fashion-MNIST and CIFAR-10 come through ``keras.datasets`` and therefore
through the Keras cache (``$KERAS_HOME/datasets``): the same code path a user with
internet gets, and the offline path when the cache holds the files. ``digits`` is
scikit-learn's bundled 8x8 digits (always offline). ``tfds:NAME`` uses
tensorflow-datasets when it is installed (``pip install tfmodelsec[tfds]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

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
    """A labelled image dataset: ``x_*`` float32 (N, H, W, C) in [0, 1], ``y_*`` int64 (N,)."""

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4:
                raise ValueError(f"`x_{split}` must be 4-D (N, H, W, C). Received shape {x.shape}")
            if len(x) != len(y):
                raise ValueError(
                    f"`x_{split}` and `y_{split}` differ in length: {len(x)} vs {len(y)}"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` training and ``n_test`` test records (``None`` keeps all)."""
        for name, n, total in (("n_train", n_train, len(self.x_train)),
                               ("n_test", n_test, len(self.x_test))):
            if n is not None and not (isinstance(n, (int, np.integer)) and 0 < n <= total):
                raise ValueError(f"`{name}` must be an integer in [1, {total}]. Received: {name}={n!r}")
        return Dataset(
            self.name,
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.num_classes,
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, "
            f"test={self.x_test.shape}, num_classes={self.num_classes})"
        )


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
    try:
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
