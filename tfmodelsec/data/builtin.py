"""Built-in datasets by name: float32 NHWC images in [0, 1].

MNIST, Fashion-MNIST and CIFAR-10 come through ``keras.datasets`` and therefore
through the Keras cache (``$KERAS_HOME/datasets``): the same code path a user with
internet gets, and the offline path when the cache holds the files. ``digits`` is
scikit-learn's bundled 8x8 digits (always offline). ``tfds:NAME`` uses
tensorflow-datasets when it is installed (``pip install tfmodelsec[tfds]``).
"""

from __future__ import annotations

import os

import numpy as np

from tfmodelsec.data.dataset import Dataset
from tfmodelsec.errors import DatasetUnavailable

__all__ = ["DATASETS", "is_builtin", "keras_cache_dir", "load_builtin"]

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


def is_builtin(spec: str) -> bool:
    """Whether ``spec`` names a built-in dataset (``tfds:NAME`` included) rather than a path."""
    return spec.startswith("tfds:") or spec.lower().replace("-", "_") in DATASETS


def load_builtin(spec: str) -> Dataset:
    """A built-in dataset by name (see :data:`DATASETS`, plus ``tfds:NAME``)."""
    if spec.startswith("tfds:"):
        return _from_tfds(spec[len("tfds:"):])
    key = spec.lower().replace("-", "_")
    if key == "digits":
        return _digits()
    if key in _EXPECTED_FILES:
        return _from_keras(key)
    raise ValueError(f"`spec` must be one of {list(DATASETS)} or 'tfds:NAME'. Received: spec={spec!r}")
