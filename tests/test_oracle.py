import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfmodelsec import BlackBox, InvalidQueryError, QueryBudgetExceeded
from tfmodelsec.models import as_victim


@pytest.fixture
def oracle_factory(tiny_model):
    victim = as_victim(tiny_model)
    return lambda **kw: BlackBox(victim, **kw)


def test_answers_match_the_model(oracle_factory, tiny_model):
    x = np.random.default_rng(0).uniform(size=(7, 4)).astype(np.float32)
    oracle = oracle_factory()
    np.testing.assert_allclose(oracle(x), tiny_model(x), rtol=1e-6)
    assert oracle.queries_used == 7


def test_label_and_top_k(oracle_factory, tiny_model):
    x = np.random.default_rng(1).uniform(size=(9, 4)).astype(np.float32)
    probs = np.asarray(tiny_model(x))
    np.testing.assert_array_equal(oracle_factory(output="label")(x), probs.argmax(1))
    top1 = oracle_factory(output="top_k", k=1)(x)
    assert ((top1 > 0).sum(axis=1) == 1).all()
    np.testing.assert_allclose(top1.max(axis=1), probs.max(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="k=None"):
        oracle_factory(output="top_k")
    with pytest.raises(ValueError, match="output='logits'"):
        oracle_factory(output="logits")


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 20), min_size=1, max_size=8), budget=st.integers(1, 60))
def test_count_is_exact_and_budget_never_leaks(tiny_model, sizes, budget):
    oracle = BlackBox(as_victim(tiny_model), budget=budget)
    answered = 0
    for n in sizes:
        x = np.full((n, 4), 0.5, np.float32)
        if answered + n > budget:
            with pytest.raises(QueryBudgetExceeded, match="nothing was answered"):
                oracle(x)
        else:
            assert len(oracle(x)) == n
            answered += n
        assert oracle.queries_used == answered <= budget


BAD = {
    "strings": (np.array([["a", "b", "c", "d"]]), "numeric"),
    "complex": (np.ones((1, 4), np.complex64), "real"),
    "shape": (np.ones((2, 5), np.float32), r"shape \(n, 4\)"),
    "rank": (np.ones(4, np.float32), r"shape \(n, 4\)"),
    "empty": (np.ones((0, 4), np.float32), "empty"),
    "nan": (np.array([[0.1] * 4, [0.1, np.nan, 0.2, 0.3]], np.float32), "query 1 .*NaN"),
    "inf": (np.array([[np.inf, 0, 0, 0]], np.float32), "query 0"),
    "range": (np.array([[0.5] * 4, [0.5] * 4, [0.1, 1.5, 0, 0]], np.float32), "query 2 .*outside"),
}


@pytest.mark.parametrize("name", list(BAD), ids=list(BAD))
def test_malformed_queries_are_rejected_and_not_counted(oracle_factory, name):
    x, match = BAD[name]
    oracle = oracle_factory(budget=100)
    with pytest.raises(InvalidQueryError, match=match):
        oracle(x)
    assert oracle.queries_used == 0


@settings(max_examples=30, deadline=None)
# values within the oracle's float slack (1e-6) of the range are accepted by design
@given(st.floats(allow_nan=True, allow_infinity=True, width=32).filter(lambda v: not -1e-5 <= v <= 1 + 1e-5))
def test_any_out_of_range_value_is_rejected(tiny_model, value):
    oracle = BlackBox(as_victim(tiny_model))
    x = np.full((3, 4), 0.5, np.float32)
    x[1, 2] = value
    with pytest.raises(InvalidQueryError, match="query 1"):
        oracle(x)


def test_defense_layer_is_applied(oracle_factory):
    import keras

    class Flatten(keras.layers.Layer):
        def call(self, p):
            return keras.ops.ones_like(p) / keras.ops.cast(keras.ops.shape(p)[-1], p.dtype)

    oracle = oracle_factory(defense=Flatten())
    np.testing.assert_allclose(oracle(np.full((2, 4), 0.3, np.float32)), 1 / 3, rtol=1e-6)


def test_budget_validation(oracle_factory):
    with pytest.raises(ValueError, match="budget"):
        oracle_factory(budget=0)
