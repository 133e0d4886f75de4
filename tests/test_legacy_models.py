"""Model files as users saved them with tf.keras 2 (the ``tf_keras`` package): committed fixtures
built by tests/fixtures/make_legacy_h5.py, loaded under safe mode, predicting what tf_keras did."""

from pathlib import Path

import numpy as np
import pytest

from tfmodelsec import load_victim

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", ["legacy_tf_keras.h5", "legacy_tf_keras.keras"], ids=["h5", "keras-archive"])
def test_tf_keras_2_files_load_safely_and_predict_as_tf_keras_did(name):
    expected = np.load(FIXTURES / "legacy_tf_keras_expected.npz")
    victim = load_victim(FIXTURES / name)  # safe_mode=True by default
    assert victim.input_shape == (8, 8, 1) and victim.num_classes == 3
    assert victim.output_kind == "probabilities"
    got = victim.probabilities(expected["x"])
    np.testing.assert_allclose(got, expected["probabilities"], atol=1e-5)
    assert got.argmax(1).tolist() == expected["probabilities"].argmax(1).tolist()
    assert len(set(got.argmax(1).tolist())) > 1  # the fixed inputs do not all fall in one class


def test_fixtures_stay_small():
    for path in FIXTURES.iterdir():
        if path.suffix in (".h5", ".keras", ".npz"):
            assert path.stat().st_size < 200_000, path.name
