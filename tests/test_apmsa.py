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
        APMSA(["not", "a", "model"])


# --- Known answers: a 2-class linear softmax victim, where the walk and its flip point are closed-form.
# z = W^T x + b; d = w_0 - w_1 (class 0 is every query's label M below). Cross-entropy and the CW
# objective both ascend along -d (sign(-d) for L-inf steps, -d/||d|| for L2 steps), and the logit margin
# z_0 - z_1 falls by step * ||d||_1 (L-inf) or step * ||d||_2 (L2) per step, so the walk is
# x_k = x0 + k * step * u and the label flips at the first k with margin0 - k * step * ||d|| < 0.
_W = np.array([[1.0, -0.5], [0.3, 0.6], [-0.8, 0.2]], np.float32)  # d = (1.5, -0.3, -1.0)
_B = np.array([0.0, 0.0], np.float32)
_D = _W[:, 0] - _W[:, 1]
# range wide enough that clipping never binds
_LO, _HI = -50.0, 50.0


@pytest.fixture(scope="module")
def linear_victim():
    import keras

    inputs = keras.Input((3,), name="inputs")
    dense = keras.layers.Dense(2, activation="softmax", name="out")
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([_W, _B])
    return model


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _closed_form(x0, method, step, steps, refine):
    """The point APMSA must answer from, and whether the walk found the flip."""
    if method == "cw":
        u, length = -_D / np.linalg.norm(_D), np.linalg.norm(_D)
    else:
        u, length = np.sign(-_D), np.abs(_D).sum()
    margin0 = x0 @ _D  # z_0 - z_1 at x0 (b = 0)
    # first step count past the boundary (margin0 - k * step * length < 0)
    k_flip = np.floor(margin0 / (step * length)).astype(int) + 1
    flipped = k_flip <= steps
    k_keep = np.where(flipped, k_flip - 1, steps)
    point = x0 + (k_keep * step)[:, None] * u
    if refine:  # bisection of [x_{k-1}, x_k]: the boundary sits at fraction t of the segment
        t = (margin0 - k_keep * step * length) / (step * length)
        lo = np.floor(t * 2**refine) / 2**refine
        point = point + np.where(flipped, lo * step, 0.0)[:, None] * u
    return point, flipped


@pytest.mark.parametrize("refine", [0, 3], ids=["steps", "bisect3"])
@pytest.mark.parametrize("method", ["fgsm", "pgd", "cw"])
def test_answer_is_the_output_on_the_last_point_before_the_flip(linear_victim, method, refine):
    rng = np.random.default_rng(1)
    x0 = rng.uniform(0.5, 2.0, size=(64, 3)).astype(np.float32) * np.sign(_D)  # label 0, margins 0.7-5.6
    step, steps = 0.2, 8
    # fgsm marches eps / steps per step; pgd and cw take step_size; the ball (eps) never binds here
    kwargs = {"eps": step * steps} if method == "fgsm" else {"eps": 100.0, "step_size": step}
    if method == "cw":
        kwargs["c"] = 1000.0  # the distance term never turns the direction around within 8 steps
    layer = APMSA(linear_victim, method=method, steps=steps, refine=refine, clip_min=_LO, clip_max=_HI, **kwargs)
    answers, points, flipped = (np.asarray(t) for t in layer.walk(x0))
    expected_point, expected_flipped = _closed_form(x0.astype(np.float64), method, step, steps, refine)
    assert 0 < expected_flipped.mean() < 1  # both cases occur: flipped within the walk, and not
    np.testing.assert_array_equal(flipped, expected_flipped)
    np.testing.assert_allclose(points, expected_point, atol=1e-4)
    np.testing.assert_allclose(answers, _softmax(expected_point @ _W), atol=1e-5)
    assert (answers.argmax(1) == 0).all()


def test_the_ball_stops_the_walk_where_the_closed_form_says(linear_victim):
    # pgd with eps smaller than the walk: the points end on the L-inf sphere of radius eps
    x0 = np.array([[3.0, -1.0, -2.0]], np.float32)  # margin 8.8: no flip within eps
    layer = APMSA(linear_victim, method="pgd", eps=0.5, step_size=0.2, steps=8, clip_min=_LO, clip_max=_HI)
    answers, points, flipped = (np.asarray(t) for t in layer.walk(x0))
    np.testing.assert_allclose(points, x0 + 0.5 * np.sign(-_D), atol=1e-6)
    np.testing.assert_allclose(answers, _softmax(points.astype(np.float64) @ _W), atol=1e-6)
    assert not flipped.any()


def test_bad_refine(tiny_model):
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="refine"):
            APMSA(tiny_model, refine=bad)


@pytest.mark.skipif(not __import__("conftest").has_mnist(), reason="needs the offline MNIST cache")
def test_defaults_reach_the_boundary_on_the_committed_lenet5():
    # the walk's label flips within its steps for (nearly) every query, and the answers sit near the
    # boundary (top-2 margin far below the undefended ~1.0); the former defaults (eps 0.1, 10 steps,
    # no bisection) flipped 46% and answered with a margin of 0.61
    from pathlib import Path

    from tfmodelsec import load_victim
    from tfmodelsec.data import load_dataset
    from tfmodelsec.defenses import make_defense

    victim = load_victim(Path(__file__).resolve().parents[1] / "saved_models" / "lenet5_mnist.h5")
    x = load_dataset("mnist").x_test[:100]
    layers = {"layer": APMSA(victim.probability_model),
              **{m: make_defense(f"apmsa_{m}", victim) for m in ("fgsm", "pgd", "cw")}}
    for name, layer in layers.items():
        answers, _, flipped = (np.asarray(t) for t in layer.walk(x))
        top2 = np.sort(answers, axis=1)[:, -2:]
        assert flipped.mean() >= 0.95, (name, flipped.mean())
        assert (top2[:, 1] - top2[:, 0]).mean() < 0.3, (name, (top2[:, 1] - top2[:, 0]).mean())


def test_a_layer_saved_before_refine_existed_loads_without_it(tiny_model):
    config = APMSA(tiny_model, method="fgsm", eps=0.2, steps=3).get_config()
    assert config.pop("refine") == 4  # today's default
    assert APMSA.from_config(config).refine == 0  # the answers it gave when it was saved
