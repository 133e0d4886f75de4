import numpy as np
import pytest

from tfmodelsec.attacks.evasion import attack_success, cw, fgsm, pgd


@pytest.fixture(scope="module")
def linear_model():
    """2 features, 2 classes: p = softmax([4x0, 4x1]); the boundary is x0 == x1."""
    import keras

    inputs = keras.Input((2,))
    dense = keras.layers.Dense(2, activation="softmax", use_bias=False)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.eye(2, dtype=np.float32) * 4.0])
    return model


def test_eps_zero_returns_the_input(linear_model):
    x = np.random.default_rng(0).uniform(size=(5, 2)).astype(np.float32)
    np.testing.assert_array_equal(fgsm(linear_model, x, eps=0.0), x)
    np.testing.assert_array_equal(pgd(linear_model, x, eps=0.0), x)


def test_fgsm_moves_exactly_eps_along_the_sign(linear_model):
    x = np.array([[0.6, 0.4]], np.float32)  # class 0; loss grows by lowering x0 and raising x1
    adv = fgsm(linear_model, x, eps=0.1)
    np.testing.assert_allclose(adv, [[0.5, 0.5]], atol=1e-6)
    targeted = fgsm(linear_model, x, np.array([1]), eps=0.1, targeted=True)
    np.testing.assert_allclose(targeted, [[0.5, 0.5]], atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_ball_and_range_and_succeeds(linear_model, norm):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.3, 0.7, size=(64, 2)).astype(np.float32)
    y = linear_model.predict(x, verbose=0).argmax(1)
    eps = 0.3 if norm == "linf" else 0.45
    adv = pgd(linear_model, x, eps=eps, steps=20, norm=norm, seed=0)
    delta = adv - x
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert (size <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
    margin = np.abs(x[:, 0] - x[:, 1])
    reachable = margin < (eps if norm == "linf" else eps * np.sqrt(2)) * 0.9
    assert attack_success(linear_model, adv, y)[reachable].all()
    np.testing.assert_array_equal(adv, pgd(linear_model, x, eps=eps, steps=20, norm=norm, seed=0))


def test_pgd_early_stop_freezes_finished_samples(linear_model):
    x = np.array([[0.52, 0.48], [0.9, 0.1]], np.float32)
    adv = pgd(linear_model, x, eps=0.5, step_size=0.05, steps=30, random_start=False, early_stop=True)
    # the first flips after one step and stops there; the second keeps going
    np.testing.assert_allclose(adv[0], [0.47, 0.53], atol=1e-6)
    assert np.abs(adv[1] - x[1]).max() > 0.3


def test_cw_finds_small_l2_perturbations(linear_model):
    x = np.array([[0.55, 0.45], [0.6, 0.4]], np.float32)
    adv = cw(linear_model, x, c=10.0, steps=200, lr=0.05)
    assert attack_success(linear_model, adv, np.array([0, 0])).all()
    dist = np.linalg.norm(adv - x, axis=1)
    optimal = np.abs(x[:, 0] - x[:, 1]) / np.sqrt(2)  # distance to the boundary x0 == x1
    assert (dist < optimal * 1.6 + 0.02).all()


def test_errors(linear_model):
    x = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="eps"):
        pgd(linear_model, x, eps=-1)
    with pytest.raises(ValueError, match="norm"):
        pgd(linear_model, x, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="steps"):
        pgd(linear_model, x, eps=0.1, steps=0)
    with pytest.raises(ValueError, match="one label per sample"):
        fgsm(linear_model, x, np.array([0]), eps=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fgsm(linear_model, x, np.array([0, 5]), eps=0.1)
