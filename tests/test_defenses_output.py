"""Output defenses: valid probabilities, known answers, serialisation, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tfmodelsec.defenses import (
    MAD,
    GaussianNoise,
    HardLabel,
    ReverseSigmoid,
    Rounding,
    TopK,
    defended_model,
    load_defense,
    make_defense,
    save_defense,
)

P = np.array([[0.62, 0.27, 0.11], [0.07, 0.12, 0.81]], np.float32)
LAYERS = [GaussianNoise(0.05, seed=0), ReverseSigmoid(0.5, 0.5), Rounding(1), TopK(2), HardLabel()]
IDS = ["gaussian", "reverse_sigmoid", "rounding", "topk", "label"]

prob_rows = arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(2, 8)),
                   elements=st.floats(0.25, 1.0, width=32)).map(lambda a: a / a.sum(1, keepdims=True))


@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
@settings(max_examples=15, deadline=None)
@given(p=prob_rows)
def test_outputs_are_probabilities(layer, p):
    q = np.asarray(layer(p))
    assert q.shape == p.shape and q.min() >= 0
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-5)


def test_known_answers():
    np.testing.assert_allclose(HardLabel()(P), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(TopK(1)(P), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(TopK(2)(P), [[0.62 / 0.89, 0.27 / 0.89, 0], [0, 0.12 / 0.93, 0.81 / 0.93]], rtol=1e-5)
    np.testing.assert_allclose(Rounding(1)(P), [[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], atol=1e-6)
    # reverse sigmoid: p - beta (sigmoid(gamma logit p) - 1/2), renormalised
    beta, gamma = 0.5, 0.5
    r = P - beta * (1 / (1 + np.exp(-gamma * np.log(P / (1 - P)))) - 0.5)
    np.testing.assert_allclose(ReverseSigmoid(beta, gamma)(P), r / r.sum(1, keepdims=True), rtol=1e-5)


def _reverse_sigmoid64(p, beta, gamma):
    """The formula in float64: p - beta (sigmoid(gamma logit p) - 1/2), clipped at 0, renormalised."""
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore"):
        logit = np.log(p) - np.log1p(-p)  # -inf at p = 0, +inf at p = 1: the formula's limits
    r = np.maximum(p - beta * (1.0 / (1.0 + np.exp(-gamma * logit)) - 0.5), 0.0)
    return r / r.sum(1, keepdims=True)


# tiny probabilities of a confident victim (down to 1e-30), p a float32 step below 1, exact 0 and 1
EDGE_ROWS = np.array([
    [1e-30, 1e-20, 1e-12, 1.0],
    [1e-7, 3e-8, 1e-9, 0.99999988],
    [0.0, 0.0, 0.0, 1.0],
    [1e-30, 0.25, 0.25, 0.5],
], np.float32)


@pytest.mark.parametrize("beta,gamma", [(0.7, 0.4), (0.5, 0.5), (1.0, 0.05)], ids=["default", "half", "flat"])
def test_reverse_sigmoid_follows_the_formula_for_tiny_and_saturated_probabilities(beta, gamma):
    rng = np.random.default_rng(0)
    dirichlet = rng.dirichlet(np.full(10, 0.05), size=200).astype(np.float32)  # many entries << 1e-7
    # float32 subnormals (< 1.2e-38) are flushed to 0 by TensorFlow's CPU kernels: give them as 0
    dirichlet[dirichlet < np.finfo(np.float32).tiny] = 0.0
    for p in (EDGE_ROWS, dirichlet / dirichlet.sum(1, keepdims=True)):
        q = np.asarray(ReverseSigmoid(beta, gamma)(p), np.float64)
        np.testing.assert_allclose(q, _reverse_sigmoid64(p, beta, gamma), atol=2e-7, rtol=0)


def test_reverse_sigmoid_gradient_is_finite_at_zero_and_one():
    import tensorflow as tf

    p = tf.constant(EDGE_ROWS[2:3])
    with tf.GradientTape() as tape:
        tape.watch(p)
        q = ReverseSigmoid()(p)
    assert np.isfinite(tape.gradient(q, p).numpy()).all()


def test_gaussian_noise_is_seeded_and_changes_the_answer():
    a = np.asarray(GaussianNoise(0.1, seed=3)(P))
    b = np.asarray(GaussianNoise(0.1, seed=3)(P))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - P).max() > 1e-3


@pytest.mark.parametrize("kwargs,arg", [({"stddev": 0}, "stddev"), ({"stddev": -1}, "stddev")], ids=["0", "neg"])
def test_gaussian_bad_stddev(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        GaussianNoise(**kwargs)


@pytest.mark.parametrize("beta,gamma,arg", [(0, 1, "beta"), (-1, 1, "beta"), (1, 0, "gamma"), (1, "x", "gamma")])
def test_reverse_sigmoid_bad_parameters(beta, gamma, arg):
    with pytest.raises(ValueError, match=arg):
        ReverseSigmoid(beta, gamma)


def test_bad_k_and_decimals():
    with pytest.raises(ValueError, match="k"):
        TopK(0)
    with pytest.raises(ValueError, match="k"):
        TopK(4)(P)
    with pytest.raises(ValueError, match="decimals"):
        Rounding(-1)
    with pytest.raises(ValueError, match="decimals"):
        Rounding(1.5)


def test_logits_are_refused():
    with pytest.raises(ValueError, match="logits"):
        HardLabel()(np.log(P) + 3.0)


def test_mad_poisons_within_budget_and_argmax_variant_keeps_label(tiny_model):
    import keras

    surrogate = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).uniform(size=(64, 4)).astype(np.float32)
    p = tiny_model.predict(x, verbose=0)
    q = np.asarray(MAD(tiny_model, surrogate, epsilon=0.5)(x))
    np.testing.assert_allclose(q.sum(1), 1, atol=1e-5)
    assert (np.abs(q - p).sum(1) <= 0.5 + 1e-4).all() and np.abs(q - p).sum(1).mean() > 0.1
    qa = np.asarray(MAD(tiny_model, surrogate, epsilon=2.0, preserve_argmax=True)(x))
    np.testing.assert_array_equal(qa.argmax(1), p.argmax(1))


def test_mad_bad_surrogate_and_epsilon(tiny_model):
    import keras

    four = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="softmax")])
    with pytest.raises(ValueError, match="surrogate"):
        MAD(tiny_model, four)
    with pytest.raises(ValueError, match="epsilon"):
        MAD(tiny_model, tiny_model, epsilon=3.0)
    with pytest.raises(ValueError, match="name"):
        make_defense("nope", tiny_model)


@pytest.mark.parametrize("name", ["reverse_sigmoid", "rounding", "topk", "label", "mad"])
def test_save_load_round_trip(tiny_model, tmp_path, name):
    import keras

    from tfmodelsec import load_victim

    x = np.random.default_rng(1).uniform(size=(16, 4)).astype(np.float32)
    params = {"k": 2} if name == "topk" else {}
    layer = make_defense(name, tiny_model, **params)
    model = defended_model(tiny_model, layer)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    victim = load_victim(tmp_path / "m.keras")  # safe mode: registered tfmodelsec classes only
    np.testing.assert_allclose(victim.model.predict(x, verbose=0), expected, atol=1e-6)
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)
    save_defense(layer, tmp_path / "d.keras", num_classes=3)
    again = load_defense(tmp_path / "d.keras")
    feed = x if name == "mad" else tiny_model.predict(x, verbose=0)
    np.testing.assert_allclose(np.asarray(again(feed)), expected, atol=1e-6)


def test_gaussian_save_load_keeps_its_config(tiny_model, tmp_path):
    from tfmodelsec import load_victim

    model = defended_model(tiny_model, GaussianNoise(0.2, seed=7))
    model.save(tmp_path / "g.keras")
    layer = load_victim(tmp_path / "g.keras").model.layers[-1]
    assert isinstance(layer, GaussianNoise) and (layer.stddev, layer.seed) == (0.2, 7)
    q = np.asarray(layer(P))
    np.testing.assert_allclose(q.sum(1), 1, atol=1e-5)
