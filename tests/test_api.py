"""Pins the public surface: a change here is a change users see."""

import tfmodelsec


def test_top_level_api():
    assert set(tfmodelsec.__all__) >= {
        "BlackBox", "Dataset", "Victim", "load_dataset", "load_victim", "as_victim", "save_model",
        "train_classifier", "build_model", "run_audit", "set_seed", "QueryBudgetExceeded",
        "ModelLoadError", "UnsafeModelError", "DatasetUnavailable", "InvalidQueryError", "TfmsError",
    }
    for name in tfmodelsec.__all__:
        assert hasattr(tfmodelsec, name), name
