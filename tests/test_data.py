import numpy as np
import pytest

from conftest import has_mnist
from tfmodelsec.data import Dataset, load_dataset
from tfmodelsec.errors import DatasetUnavailable


def test_digits_shape_range_and_split(digits):
    assert digits.x_train.shape[1:] == (8, 8, 1)
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert set(np.unique(digits.y_test)) == set(range(10))
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.x_test, digits.x_test)  # the split is fixed


@pytest.mark.skipif(not has_mnist(), reason="MNIST not in the Keras cache")
@pytest.mark.parametrize("name, counts", [("mnist", (60000, 10000)), ("fashion-mnist", (60000, 10000))],
                         ids=["mnist", "fashion"])
def test_keras_datasets_offline(name, counts):
    data = load_dataset(name)
    assert (len(data.x_train), len(data.x_test)) == counts
    assert data.x_train.shape[1:] == (28, 28, 1) and data.num_classes == 10
    assert data.x_train.max() == 1.0 and data.x_train.min() == 0.0
    if name == "mnist":
        assert int((data.y_train == 1).sum()) == 6742  # published count of '1's


def test_unknown_dataset_names_the_value():
    with pytest.raises(ValueError, match="name='svhn'"):
        load_dataset("svhn")


def test_missing_cache_is_a_clear_error(monkeypatch, tmp_path):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x: None -- no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DatasetUnavailable, match="cifar10.*KERAS_HOME"):
        load_dataset("cifar10")


def test_tfds_missing_package_is_clear():
    pytest.importorskip("tensorflow")
    try:
        import tensorflow_datasets  # noqa: F401
        pytest.skip("tensorflow-datasets installed")
    except ImportError:
        pass
    with pytest.raises(DatasetUnavailable, match=r"tfmodelsec\[tfds\]"):
        load_dataset("tfds:mnist")


def test_subset_and_validation(digits):
    small = digits.subset(n_train=100, n_test=10)
    assert len(small.x_train) == 100 and len(small.x_test) == 10
    with pytest.raises(ValueError, match="n_train"):
        digits.subset(n_train=0)
    with pytest.raises(ValueError, match="4-D"):
        Dataset("bad", np.zeros((3, 4)), np.zeros(3), np.zeros((1, 2, 2, 1)), np.zeros(1), 2)
