"""APMSA: the answered label is the query's own, eps=0 answers f(x), in-graph, saves and loads."""

import numpy as np
import pytest

from tfmodelsec.defenses import APMSA, defended_model, load_defense, save_defense
from tfmodelsec.oracle import BlackBox


@pytest.fixture(scope="module")
def queries():
    return np.random.default_rng(0).uniform(size=(128, 4)).astype(np.float32)


@pytest.mark.parametrize("method", ["fgsm", "pgd", "cw"])
def test_label_always_kept_and_confidence_lowered(tiny_model, queries, method):
    p = tiny_model.predict(queries, verbose=0)
    eps = 0.5 if method != "cw" else 1.0
    q = np.asarray(APMSA(tiny_model, method=method, eps=eps, steps=20)(queries))
    np.testing.assert_array_equal(q.argmax(1), p.argmax(1))
    np.testing.assert_allclose(q.sum(1), 1, atol=1e-5)
    # moving toward the boundary lowers the top probability for most queries
    assert (q.max(1) <= p.max(1) + 1e-6).all() and (q.max(1) < p.max(1) - 0.05).mean() > 0.5


@pytest.mark.parametrize("method", ["fgsm", "pgd", "cw"])
def test_eps_zero_answers_f_of_x(tiny_model, queries, method):
    np.testing.assert_allclose(APMSA(tiny_model, method=method, eps=0.0)(queries),
                               tiny_model.predict(queries, verbose=0), atol=1e-6)


def test_blackbox_calls_it_on_inputs_and_label_answers_are_unchanged(tiny_model, queries):
    defense = APMSA(tiny_model, method="pgd", eps=0.5, steps=10)
    plain = BlackBox(tiny_model, output="label")(queries)
    defended = BlackBox(tiny_model, output="label", defense=defense)(queries)
    np.testing.assert_array_equal(plain, defended)
    probs = BlackBox(tiny_model, defense=defense)(queries)
    assert np.abs(probs - tiny_model.predict(queries, verbose=0)).max() > 0.05


def test_save_load_round_trip(tiny_model, queries, tmp_path):
    from tfmodelsec import load_victim

    layer = APMSA(tiny_model, method="cw", eps=1.0, steps=5)
    model = defended_model(tiny_model, layer)
    expected = model.predict(queries, verbose=0)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_victim(tmp_path / "m.keras").model.predict(queries, verbose=0), expected,
                               atol=1e-5)
    save_defense(layer, tmp_path / "d.keras")
    np.testing.assert_allclose(load_defense(tmp_path / "d.keras")(queries), expected, atol=1e-5)


@pytest.mark.parametrize("kwargs,arg", [
    ({"eps": -0.1}, "eps"), ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"method": "bim"}, "method"),
    ({"norm": "l1"}, "norm"), ({"step_size": 0}, "step_size"), ({"c": 0}, "c"),
])
def test_bad_parameters(tiny_model, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        APMSA(tiny_model, **kwargs)


def test_bad_victim():
    with pytest.raises(ValueError, match="victim"):
        APMSA("not a model".split())
