"""Model stealing: each loss on a tiny victim, exact query accounting, self-training, metrics, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tfmodelsec.attacks.stealing import LOSSES, SemiSupervised, evaluate_student, steal
from tfmodelsec.oracle import BlackBox


@pytest.fixture(scope="module")
def easy_points():
    rng = np.random.default_rng(0)
    return rng.random((1400, 4)).astype(np.float32)


@pytest.mark.parametrize("loss", LOSSES, ids=LOSSES)
def test_each_loss_reaches_high_agreement(loss, tiny_model, easy_points):
    oracle = BlackBox(tiny_model, budget=300)
    res = steal(oracle, easy_points[:300], student="mlp", loss=loss, epochs=8, learning_rate=3e-3, seed=0,
                verbose=0)
    test = easy_points[300:]
    agree = np.mean(np.asarray(res.student(test)).argmax(1) == np.asarray(tiny_model(test)).argmax(1))
    assert agree >= 0.9, f"{loss}: agreement {agree:.3f}"
    assert res.queries_used == 300 and oracle.queries_used == 300


def _kl_reference(p, q, tau, soften_student):
    """The two KL distillation losses in float64 numpy, per sample."""
    def soft(r, t):
        z = np.log(r) / t
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    p_t = soft(p, tau)
    q_s = soft(q, tau) if soften_student else q
    return (tau**2 if soften_student else 1.0) * np.sum(p_t * (np.log(p_t) - np.log(q_s)), axis=1)


@pytest.mark.parametrize("loss", ["kl", "kl_seed"], ids=["hinton", "seed-lab"])
def test_kl_losses_match_numpy(loss, tiny_model):
    """``kl``: tau^2 KL(p_tau || q_tau) (Hinton); ``kl_seed``: KL(softmax(f / tau) || softmax(g)) (seed 002)."""
    from tfmodelsec.attacks.stealing.distillation import _distiller_class

    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(5), 6), rng.dirichlet(np.ones(5), 6)
    for tau in (1.0, 4.0):
        distiller = _distiller_class()(tiny_model, loss, tau, None)
        y = np.concatenate([p, np.ones((6, 1))], axis=1).astype(np.float32)
        got = float(distiller.compute_loss(y=y, y_pred=q.astype(np.float32)))
        assert got == pytest.approx(float(np.mean(_kl_reference(p, q, tau, loss == "kl"))), rel=1e-4)
    # by hand: p = (0.8, 0.2) at tau 2 softens to (2/3, 1/3); q uniform is unchanged by softening
    hand = 2 / 3 * np.log(4 / 3) + 1 / 3 * np.log(2 / 3)
    distiller = _distiller_class()(tiny_model, loss, 2.0, None)
    got = float(distiller.compute_loss(y=np.array([[0.8, 0.2, 1.0]], np.float32),
                                       y_pred=np.array([[0.5, 0.5]], np.float32)))
    assert got == pytest.approx(hand * (4.0 if loss == "kl" else 1.0), rel=1e-5)


def test_query_count_is_exact_and_budget_never_exceeded(tiny_model, easy_points):
    oracle = BlackBox(tiny_model, budget=100)
    res = steal(oracle, easy_points[:60], student="mlp", epochs=1, seed=0, verbose=0)
    assert res.queries_used == 60 and oracle.queries_used == 60
    with pytest.raises(ValueError, match="budget"):
        steal(oracle, easy_points[:50], student="mlp", epochs=1, verbose=0)
    assert oracle.queries_used == 60  # nothing was sent
    steal(oracle, easy_points[:40], student="mlp", epochs=1, verbose=0)
    assert oracle.queries_used == 100 and oracle.remaining == 0


def test_active_queries_are_counted_and_uncertain(tiny_model, easy_points):
    oracle = BlackBox(tiny_model, budget=70)
    with pytest.raises(ValueError, match="budget"):
        steal(oracle, easy_points[:50], active_queries=30, unlabeled=easy_points, student="mlp", verbose=0)
    with pytest.raises(ValueError, match="unlabeled"):
        steal(oracle, easy_points[:50], active_queries=10, student="mlp", verbose=0)
    with pytest.raises(ValueError, match="active_queries"):
        steal(oracle, easy_points[:50], active_queries=-1, unlabeled=easy_points, student="mlp", verbose=0)
    assert oracle.queries_used == 0
    res = steal(oracle, easy_points[:50], active_queries=20, active_rounds=2, unlabeled=easy_points,
                student="mlp", epochs=3, seed=0, verbose=0)
    assert res.queries_used == 70 and oracle.queries_used == 70 and oracle.remaining == 0
    assert {"active_distill_loss_1", "active_distill_loss_2"} <= set(res.history)


def test_active_round_picks_least_margin():
    from tfmodelsec.attacks.stealing.distillation import _active_round

    class Student:  # margin between the top two classes grows with the sample's value
        def predict(self, x, **_):
            m = x[:, 0]
            return np.stack([(1 + m) / 2, (1 - m) / 2, np.zeros_like(m)], axis=1)

    class Oracle:
        num_classes = 3

        def __call__(self, x):
            return np.tile([[0.0, 1.0, 0.0]], (len(x), 1))

    pool = np.linspace(0, 1, 11, dtype=np.float32)[:, None]
    x, answers = _active_round(Oracle(), Student(), pool, pool[:0], np.zeros((0, 3)), 3,
                               np.random.default_rng(0))
    np.testing.assert_allclose(np.sort(x[:, 0]), [0.0, 0.1, 0.2], atol=1e-6)
    assert answers.shape == (3, 3)


def test_same_seed_same_student(tiny_model, easy_points):
    preds = []
    for _ in range(2):
        res = steal(BlackBox(tiny_model), easy_points[:80], student="mlp", epochs=2, seed=7, verbose=0)
        preds.append(np.asarray(res.student(easy_points[:200])))
    np.testing.assert_allclose(preds[0], preds[1], atol=1e-6)


def test_label_only_oracle_with_hard_loss(tiny_model, easy_points):
    oracle = BlackBox(tiny_model, output="label")
    res = steal(oracle, easy_points[:300], student="mlp", loss="hard", epochs=8, learning_rate=3e-3, seed=0,
                verbose=0)
    test = easy_points[300:]
    agree = np.mean(np.asarray(res.student(test)).argmax(1) == np.asarray(tiny_model(test)).argmax(1))
    assert agree >= 0.85


def test_self_training_uses_the_pool_without_querying_it(digits, digits_victim):
    pool = digits.x_train
    oracle = BlackBox(digits_victim, budget=40)
    cfg = SemiSupervised(rounds=2, epochs=2, pool_size=800)
    res = steal(oracle, pool[:40], unlabeled=pool, semi_supervised=cfg, epochs=6, seed=0, verbose=0,
                augment=False, eval_data=(digits.x_test, digits.y_test))
    assert oracle.queries_used == 40
    assert len(res.pseudo_labels) == 2 and all(0 < n <= 800 for n in res.pseudo_labels)
    assert res.fidelity >= 0.7, res.to_dict()
    assert res.accuracy is not None and res.distill_accuracy is not None
    assert 0.0 <= res.transferability <= 1.0


def test_transferability_is_zero_without_perturbation(digits, digits_victim):
    m = evaluate_student(digits_victim.model, digits_victim, digits.x_test, digits.y_test, transfer_eps=0.0)
    assert m["fidelity"] == 1.0 and m["transferability"] is None
    m = evaluate_student(digits_victim.model, digits_victim, digits.x_test, digits.y_test, transfer_eps=1e-9)
    assert m["transferability"] == 0.0  # the victim was right on every sample and nothing moved
    # the victim attacking itself: FGSM with a large step fools it often
    m = evaluate_student(digits_victim.model, digits_victim, digits.x_test, digits.y_test, transfer_eps=0.3)
    assert m["transferability"] > 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss": "bogus"}, "loss"),
        ({"temperature": 0}, "temperature"),
        ({"epochs": 0}, "epochs"),
        ({"semi_supervised": True}, "unlabeled"),
        ({"semi_supervised": "yes", "unlabeled": np.zeros((5, 4), np.float32)}, "semi_supervised"),
        ({"unlabeled": np.zeros((5, 3), np.float32)}, "unlabeled"),
    ],
    ids=["loss", "temperature", "epochs", "ssl-no-pool", "ssl-type", "pool-shape"],
)
def test_steal_errors(kwargs, match, tiny_model, easy_points):
    oracle = BlackBox(tiny_model, budget=50)
    with pytest.raises(ValueError, match=match):
        steal(oracle, easy_points[:10], student="mlp", verbose=0, **kwargs)
    assert oracle.queries_used == 0


def test_steal_rejects_bad_queries(tiny_model):
    oracle = BlackBox(tiny_model, budget=50)
    with pytest.raises(ValueError, match="queries"):
        steal(oracle, np.zeros((5, 3), np.float32), student="mlp", verbose=0)
    with pytest.raises(ValueError, match="queries"):
        steal(oracle, np.zeros((0, 4), np.float32), student="mlp", verbose=0)
    with pytest.raises(ValueError, match="SemiSupervised|threshold"):
        SemiSupervised(threshold=1.5)
    assert oracle.queries_used == 0


def test_cli_steal_writes_rows_students_and_plot(tmp_path, digits_victim, capsys):
    import json

    from tfmodelsec.cli import main
    from tfmodelsec.models import save_model

    path = save_model(digits_victim.model, tmp_path / "victim.h5")
    out = tmp_path / "run"
    code = main(["steal", str(path), "--dataset", "digits", "--queries", "20,40", "--select", "random,drmi",
                 "--loss", "kl_seed", "--epochs", "2", "--candidates", "300", "--no-self-training", "--quiet",
                 "--eval-samples", "200", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    payload = json.loads((out / "steal.json").read_text())
    assert len(payload["rows"]) == 4
    for row in payload["rows"]:
        assert row["queries_used"] == row["oracle_queries"] == row["budget"] and row["loss"] == "kl_seed"
        assert (out / row["student"]).is_file()
        assert 0.0 <= row["accuracy"] <= 1.0
    assert (out / "steal.png").is_file()


@pytest.mark.parametrize("extra, match", [(["--queries", "0"], "queries"), (["--select", "bogus"], "select"),
                                          (["--loss", "l1"], "loss"), (["--queries", "5000"], "pool")],
                         ids=["zero", "select", "loss", "over-pool"])
def test_cli_steal_user_errors(extra, match, tmp_path, digits_victim, capsys):
    from tfmodelsec.cli import main
    from tfmodelsec.models import save_model

    path = save_model(digits_victim.model, tmp_path / "victim.h5")
    assert main(["steal", str(path), "--dataset", "digits", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err


def test_audit_section_quick(tmp_path, digits, digits_victim):
    import time

    from tfmodelsec.audit import AuditContext
    from tfmodelsec.audit.stealing import audit_section

    start = time.perf_counter()
    section = audit_section(AuditContext(digits_victim, digits, tmp_path, quick=True, verbose=0))
    assert time.perf_counter() - start < 60  # budget is 20 s on an idle 2-core machine
    assert section.key == "stealing" and (tmp_path / "stealing.png").is_file()
    rows = section.summary["rows"]
    assert [r["budget"] for r in rows] == [50, 200]
    assert all(r["queries_used"] == r["budget"] for r in rows)
    assert rows[1]["fidelity"] > 0.5 and "| 200 |" in section.markdown
