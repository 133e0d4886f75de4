"""APGP: order / argmax preserved for any input, valid probabilities, training increases the distance."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tfmodelsec.defenses import APGP, load_defense, save_defense, train_apgp
from tfmodelsec.defenses.apgp import DISTANCES

K = 6
UNTRAINED = {None: APGP(K, seed=0), 1: APGP(K, top_k=1, seed=1), 3: APGP(K, top_k=3, seed=2)}
# distinct entries, so "the order" is defined
# distinct log-probabilities at least 0.25 apart stay distinct in float32
prob_rows = arrays(np.int64, st.tuples(st.integers(1, 5), st.just(K)), elements=st.integers(-60, 0),
                   unique=True).map(lambda n: np.exp(0.25 * n) / np.exp(0.25 * n).sum(1, keepdims=True)).map(
                       lambda p: p.astype(np.float32))


def _check_order(p, q, top_k):
    assert q.min() >= 0
    np.testing.assert_allclose(q.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(q.argmax(1), p.argmax(1))
    order = np.argsort(-p, axis=1, kind="stable")
    qs = np.take_along_axis(q, order, axis=1)
    n = K if top_k is None else top_k
    # the n largest of p stay strictly ordered in q and above every other class
    assert (qs[:, : n - 1] > qs[:, 1:n]).all() if n > 1 else True
    if n < K:
        assert (qs[:, n - 1] > qs[:, n:].max(1)).all()


@pytest.mark.parametrize("top_k", [None, 1, 3], ids=["all", "top1", "top3"])
@settings(max_examples=25, deadline=None)
@given(p=prob_rows)
def test_order_preserved_for_any_probabilities(top_k, p):
    _check_order(p, np.asarray(UNTRAINED[top_k](p)), top_k)


@pytest.fixture(scope="module")
def probs():
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.full(K, 0.3), size=512).astype(np.float32)


@pytest.mark.parametrize("top_k", [None, 1], ids=["all", "top1"])
def test_training_increases_distance_and_keeps_order(probs, top_k):
    result = train_apgp(probs, top_k=top_k, epochs=3, batch_size=128, learning_rate=1e-2, seed=0, verbose=0)
    assert result.distance_after > result.distance_before
    q = np.asarray(result.layer(probs))
    distinct = (np.diff(np.sort(probs, 1), axis=1) > 1e-6).all(1)
    _check_order(probs[distinct], q[distinct], top_k)


def test_training_is_seeded(probs):
    a = train_apgp(probs, top_k=1, epochs=1, seed=5, verbose=0).layer(probs)
    b = train_apgp(probs, top_k=1, epochs=1, seed=5, verbose=0).layer(probs)
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kind", DISTANCES)
def test_every_distance_trains(probs, kind):
    result = train_apgp(probs[:128], top_k=1, distance=kind, epochs=1, seed=0, verbose=0)
    assert np.isfinite(result.distance_after)


def test_save_load_round_trip(probs, tmp_path):
    layer = UNTRAINED[1]
    expected = np.asarray(layer(probs[:8]))
    save_defense(layer, tmp_path / "apgp.keras")
    again = load_defense(tmp_path / "apgp.keras")
    np.testing.assert_allclose(np.asarray(again(probs[:8])), expected, atol=1e-6)
    assert again.top_k == 1


@pytest.mark.parametrize("kwargs,arg", [
    ({"num_classes": 1}, "num_classes"), ({"num_classes": K, "top_k": K}, "top_k"),
    ({"num_classes": K, "top_k": 0}, "top_k"), ({"num_classes": K, "distance": "js"}, "distance"),
    ({"num_classes": K, "span": 0}, "span"), ({"num_classes": K, "hidden": (0,)}, "hidden"),
])
def test_bad_parameters(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        APGP(**kwargs)


def test_bad_training_input(probs):
    with pytest.raises(ValueError, match="logits"):
        train_apgp(np.log(probs), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        train_apgp(probs, epochs=0, verbose=0)
    with pytest.raises(ValueError, match="classes"):
        UNTRAINED[None](np.full((2, K + 1), 1 / (K + 1), np.float32))


# --- many classes: the full order survives float32 (issue 16) ------------------------------------

def _confident_rows(m, n, seed=0):
    """A confident victim's answers: one class far ahead, tail probabilities down to ~1e-30."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, (n, m))
    z[np.arange(n), rng.integers(0, m, n)] += 12.0
    p = np.exp(z - z.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def _strict_order_kept(p, q):
    """Per row: every pair ranked strictly by p is ranked strictly the same way by q."""
    order = np.argsort(-p, axis=1, kind="stable")
    ps, qs = np.take_along_axis(p, order, 1), np.take_along_axis(q, order, 1)
    return np.where(ps[:, :-1] > ps[:, 1:], qs[:, :-1] > qs[:, 1:], True).all(1)


def _extreme(layer, margins):
    """Push the layer to a corner: margins at a bound, generator saturated at +-span."""
    layer.delta.assign(np.full(layer.num_classes, 30.0 if margins == "max" else -30.0, np.float32))
    kernel, bias = layer.score_layer.get_weights()
    layer.score_layer.set_weights([kernel * 1e3, bias])
    return layer


@pytest.mark.parametrize("m", [10, 100, 1000], ids=lambda m: f"{m}classes")
@pytest.mark.parametrize("corner", ["untrained", "max", "min"])
def test_full_order_kept_in_float32_at_many_classes(m, corner):
    p = _confident_rows(m, 64, seed=m)
    layer = APGP(m, seed=0)
    layer.build((None, m))
    if corner != "untrained":
        _extreme(layer, corner)
    q = np.asarray(layer(p))
    np.testing.assert_array_equal(q.argmax(1), p.argmax(1))
    assert q.min() > 0  # no underflow to exact zeros
    assert _strict_order_kept(p, q).all(), f"{(~_strict_order_kept(p, q)).sum()} rows lose the order"


def test_trained_apgp_all_keeps_the_full_order_of_100_classes():
    p = _confident_rows(100, 256)
    result = train_apgp(p, top_k=None, epochs=2, batch_size=128, learning_rate=1e-2, seed=0, verbose=0)
    q = np.asarray(result.layer(p))
    assert result.distance_after > result.distance_before
    assert _strict_order_kept(p, q).all() and (q.argmax(1) == p.argmax(1)).all()


def test_scores_follow_the_running_maximum_recursion():
    # q_i = max(g_i, q_{i-1} + B_i) along ascending ranks; the slide's max(g_i, g_{i-1} + B) would give
    # (5, 5 + B, B) for g = (5, 0, 0) and put the top class below the second
    layer = APGP(3, seed=0)
    layer.build((None, 3))
    g = np.array([[5.0, 0.0, 0.0]], np.float32)
    layer.scores = lambda p: g  # the generator's raw scores, by hand
    p = np.array([[0.1, 0.3, 0.6]], np.float32)  # ascending already: ranks = class ids
    b = 0.01 + (4.0 - 0.01) * 0.5  # delta = 0
    q = np.array([5.0, 5.0 + b, 5.0 + 2 * b])
    expected = np.exp(q - q.max()) / np.exp(q - q.max()).sum()
    np.testing.assert_allclose(np.asarray(layer.perturb(p)), expected[None], rtol=1e-5)


def test_class_count_beyond_float32_is_refused():
    from tfmodelsec.defenses.apgp import max_ordered_classes

    limit = max_ordered_classes()
    assert 100_000 < limit < 1_000_000
    APGP(limit)  # the largest full order float32 keeps: accepted (weights are built lazily)
    with pytest.raises(ValueError, match="num_classes"):
        APGP(limit + 1)
    APGP(limit + 1, top_k=1)  # the argmax alone fits at any class count
    with pytest.raises(ValueError, match="min_margin"):
        APGP(K, min_margin=1e-6)
