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
    with pytest.raises(ValueError, match="spec='svhn'"):
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
    with pytest.raises(ValueError, match="x_test"):
        Dataset("bad", np.zeros((3, 4)), np.zeros(3), np.zeros((1, 2, 2, 1)), np.zeros(1), 2)
    with pytest.raises(ValueError, match="images .N, H, W, C. or feature vectors"):
        Dataset("bad", np.zeros((3, 4, 4)), np.zeros(3), np.zeros((1, 4, 4)), np.zeros(1), 2)
    with pytest.raises(ValueError, match="value_range"):
        Dataset("bad", np.zeros((3, 4)), np.zeros(3), np.zeros((1, 4)), np.zeros(1), 2, value_range=(1.0, 1.0))


def test_from_arrays_images_features_and_ranges():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (6, 5, 5), dtype=np.uint8)
    d = Dataset.from_arrays(raw, [0, 1, 2, 0, 1, 2], raw[:2], [2, 1], name="raw")
    assert d.kind == "images" and d.input_shape == (5, 5, 1) and d.value_range == (0.0, 255.0)
    assert d.x_train.dtype == np.float32 and np.array_equal(d.x_train[..., 0], raw)  # not rescaled
    assert d.num_classes == 3 and d.y_train.dtype == np.int64
    f = Dataset.from_arrays(rng.normal(size=(6, 3)), np.array([0., 1., 1., 0., 1., 0.]), rng.normal(size=(2, 3)),
                            [[1], [0]], x_pool=rng.normal(size=(4, 3)))
    assert f.kind == "features" and f.value_range is None and f.pool.shape == (4, 3)
    assert f.subset(n_train=2).x_pool.shape == (4, 3)
    unit = Dataset.from_arrays(rng.uniform(size=(4, 2, 2, 3)), [0, 1, 0, 1], rng.uniform(size=(2, 2, 2, 3)), [0, 1])
    assert unit.value_range == (0.0, 1.0) and unit.pool is unit.x_train


@pytest.mark.parametrize("kwargs, match", [
    ({"y_train": [0.5, 1, 0, 1]}, "y_train"),
    ({"y_test": [-1, 0]}, "y_test"),
    ({"x_train": np.array([["a", "b"]] * 4)}, "x_train"),
    ({"x_train": np.full((4, 2), np.nan)}, "finite"),
    ({"num_classes": 1}, "num_classes"),
    ({"x_pool": np.zeros((3, 5))}, "x_pool"),
], ids=["fractional-label", "negative-label", "strings", "nan", "one-class", "pool-shape"])
def test_from_arrays_refuses_bad_input(kwargs, match):
    args = {"x_train": np.zeros((4, 2)), "y_train": [0, 1, 0, 1], "x_test": np.zeros((2, 2)), "y_test": [0, 1]}
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in args}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Dataset.from_arrays(args["x_train"], args["y_train"], args["x_test"], args["y_test"], **extra)
