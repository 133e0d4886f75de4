"""Test set-up: offline Keras cache, quiet TensorFlow, small thread pools, tiny shared fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Must happen before TensorFlow/Keras are imported anywhere: Keras reads KERAS_HOME
# once at import time and ignores a folder it cannot write to.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "keras"
if "KERAS_HOME" not in os.environ or not os.access(os.environ["KERAS_HOME"], os.W_OK):
    _home = Path(tempfile.mkdtemp(prefix="tfms-keras-home-"))
    if _SHARED.is_dir():
        shutil.copytree(_SHARED, _home, dirs_exist_ok=True)
    os.environ["KERAS_HOME"] = str(_home)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    from tfmodelsec.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_victim(digits):
    """A small LeNet-5 trained on sklearn digits (~95% accuracy, a few seconds)."""
    from tfmodelsec.models import as_victim, train_classifier

    result = train_classifier("lenet5", digits, epochs=15, batch_size=64, seed=0, verbose=0)
    return as_victim(result.model)


@pytest.fixture(scope="session")
def tiny_model():
    """A 4-feature, 3-class softmax model with fixed weights (exact answers known)."""
    import keras

    inputs = keras.Input((4,), name="inputs")
    dense = keras.layers.Dense(3, activation="softmax", name="out")
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.eye(4, 3, dtype=np.float32) * 3.0, np.zeros(3, np.float32)])
    return model


def has_mnist() -> bool:
    return (Path(os.environ["KERAS_HOME"]) / "datasets" / "mnist.npz").is_file()
