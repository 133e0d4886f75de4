"""RMIA known answers, bootstrap intervals, batched reference models, label-only attacks, tabular victims."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logit
from scipy.stats import norm

from tfmodelsec.attacks.membership import LabelOnly, ShadowTraining, membership_inference
from tfmodelsec.attacks.membership.lira import LiraShadows
from tfmodelsec.attacks.membership.rmia import rmia_scores
from tfmodelsec.metrics import bootstrap_intervals, membership_auc, non_members_at_fpr, tpr_at_fpr

# --- RMIA on constructed likelihoods ---------------------------------------------------------------
# Two reference models (a complementary pair), three targets, two population records z.
KEEP = np.array([[True, False, True], [False, True, False]])
REF_X = np.array([[0.9, 0.4, 0.8], [0.5, 0.9, 0.2]])  # Pr(x | reference model)
REF_Z = np.array([[0.5, 0.2], [0.3, 0.4]])
VICTIM_X, VICTIM_Z = np.array([0.95, 0.6, 0.27]), np.array([0.4, 0.3])


def _references(**kw):
    # confidences are logit-scaled: RMIA reads sigmoid(phi) = the probabilities above
    return LiraShadows(KEEP, logit(REF_X), "fp", population_ids=np.arange(2),
                       population_confidences=logit(REF_Z), **kw)


@pytest.mark.parametrize("online, gamma, counts", [
    # online: Pr(x) = mean of both models = (0.7, 0.65, 0.5) -> ratios (1.357, 0.923, 0.54);
    # Pr(z) = ((1 + a) mean + 1 - a) / 2 = (0.55, 0.475) -> ratios (0.727, 0.632)
    (True, 1.0, [2, 2, 0]),
    (True, 1.3, [2, 1, 0]),  # gamma * ratio_z = (0.945, 0.821)
    # offline: Pr_out(x) = (0.5, 0.4, 0.2) -> Pr(x) = (0.625, 0.55, 0.4) -> ratios (1.52, 1.09, 0.675)
    (False, 1.0, [2, 2, 1]),
], ids=["online", "online-gamma1.3", "offline"])
def test_rmia_counts_on_constructed_likelihoods(online, gamma, counts):
    scores, info = rmia_scores(_references(), logit(VICTIM_X), logit(VICTIM_Z), online=online, a=0.5,
                               gamma=gamma)
    np.testing.assert_array_equal(np.floor(scores * 2).astype(int), counts)  # the paper's count of z
    assert scores[0] > scores[1] > scores[2]  # equal counts ordered by Pr(x|theta) / Pr(x)
    assert info["a"] == 0.5 and info["num_references"] == 2 and info["population_size"] == 2


def test_rmia_bad_input():
    refs = _references()
    args = (logit(VICTIM_X), logit(VICTIM_Z))
    with pytest.raises(ValueError, match="num_references=1, 2 targets have none"):
        rmia_scores(refs, *args, online=False, num_references=1)  # model 0 trained on targets 0 and 2
    with pytest.raises(ValueError, match="num_references"):
        rmia_scores(refs, *args, num_references=3)
    with pytest.raises(ValueError, match="`a`"):
        rmia_scores(refs, *args, a=1.5)
    with pytest.raises(ValueError, match="at least 3"):
        rmia_scores(refs, *args, a="auto")
    with pytest.raises(ValueError, match="gamma"):
        rmia_scores(refs, *args, gamma=0)
    with pytest.raises(ValueError, match="without a population"):
        rmia_scores(LiraShadows(KEEP, logit(REF_X), "fp"), *args)


# --- bootstrap intervals ------------------------------------------------------------------------

def test_bootstrap_matches_sklearn_points_and_covers_the_true_tpr():
    from tfmodelsec.metrics import _grouped_roc, _weighted_roc_stats

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    scores = np.round(rng.normal(truth * 0.7, 1.0), 1)  # many ties
    members, ends = _grouped_roc(truth, scores)
    ones = np.ones((1, len(truth)))
    auc, tprs = _weighted_roc_stats(members, ends, ones, ones, truth.sum(), len(truth) - truth.sum(), (0.01, 0.1))
    assert auc[0] == pytest.approx(membership_auc(truth, scores), abs=1e-12)
    for f in (0.01, 0.1):
        assert tprs[f][0] == tpr_at_fpr(truth, scores, f)
    # members ~ N(1.5, 1), non-members ~ N(0, 1): true TPR at 1% FPR and AUC are known
    true_tpr, true_auc = 1 - norm.cdf(norm.ppf(0.99) - 1.5), norm.cdf(1.5 / np.sqrt(2))
    covered_tpr = covered_auc = 0
    for seed in range(20):
        r = np.random.default_rng(seed)
        s = np.r_[r.normal(1.5, 1, 500), r.normal(0, 1, 500)]
        ci = bootstrap_intervals(np.repeat([1, 0], 500), s, n_boot=200, seed=seed)
        covered_tpr += ci["tpr_at_fpr_0.01"][0] <= true_tpr <= ci["tpr_at_fpr_0.01"][1]
        covered_auc += ci["auc"][0] <= true_auc <= ci["auc"][1]
    # nominal 95%: a correct interval covers fewer than 16 of 20 with probability 0.3%
    assert covered_tpr >= 16 and covered_auc >= 16, (covered_tpr, covered_auc)
    assert bootstrap_intervals([1, 1, 0, 0], [4, 3, 2, 1], n_boot=50)["auc"] == (1.0, 1.0)
    assert non_members_at_fpr(5000, 0.001) == 5 and non_members_at_fpr(2500, 0.001) == 2
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_intervals([1, 0], [1, 0], n_boot=3)


# --- reference models trained together equal those trained one by one -------------------------

def test_batched_reference_models_equal_separate_ones(digits, capsys):
    import keras

    from tfmodelsec.attacks.membership.references import predict_signals, train_models

    def build():
        inputs = keras.Input((8, 8, 1))
        hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))

    x, y = digits.x_train[:120], digits.y_train[:120]
    subsets = [np.arange(0, 120, 2), np.arange(1, 120, 2)]  # a complementary pair of 60 records each
    training = ShadowTraining(epochs=1, batch_size=16, learning_rate=3e-3, schedule="cosine")  # 60 = 3*16 + 12
    together = train_models(build, x, y, subsets, [5, 6], training, at_once=2, verbose=1)
    assert "model 2/2" in capsys.readouterr().out  # the progress bar counts whole models
    apart = train_models(build, x, y, subsets, [5, 6], training, at_once=1, verbose=0)  # train_classifier each
    for a, b in zip(together, apart, strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, atol=1e-6)
    assert not np.allclose(together[0].get_weights()[0], together[1].get_weights()[0])  # their own weights
    signals = predict_signals(together, x, y)
    assert signals["confidences"].shape == signals["logit_confidences"].shape == (2, 120)


# --- label-only attacks -----------------------------------------------------------------------

def test_label_only_attacks_count_queries_and_beat_the_label_defense(tiny_model):
    from tfmodelsec.defenses import HardLabel
    from tfmodelsec.oracle import BlackBox

    # tiny_model's logits are 3 * x[:3]: record 0 sits far from the decision boundary, record 1 on it
    x = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.49, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.2, 0.1, 0.9, 0.0]],
                 np.float32)
    y = np.array([0, 0, 0, 2])  # record 2 is misclassified
    members, non_members = (x[:2], y[:2]), (x[2:], y[2:])
    oracle = BlackBox(tiny_model, output="label")
    gap = membership_inference(oracle, members, non_members, attack="gap")
    np.testing.assert_array_equal(gap.scores, [1, 1, 0, 1])
    assert oracle.queries_used == 4
    defended = BlackBox(tiny_model, defense=HardLabel())  # one-hot probabilities
    noise = membership_inference(defended, members, non_members, attack="label_noise",
                                 label_only=LabelOnly(queries=16), seed=1)
    assert defended.queries_used == 4 * 17 and noise.info["queries_per_record"] == 17
    assert noise.scores[0] == 1.0 and noise.scores[1] < 1.0  # the boundary record loses its label under noise
    augment = membership_inference(defended, members, non_members, attack="label_augment",
                                   label_only=LabelOnly(queries=4, swap=0.5), seed=1)
    assert augment.info["queries_per_record"] == 5 and np.all((augment.scores >= 0) & (augment.scores <= 1))
    with pytest.raises(ValueError, match="one-hot labels.*label-only attack"):
        membership_inference(defended, members, non_members, attack="loss")
    with pytest.raises(ValueError, match="labels only"):
        membership_inference(tiny_model, members, non_members, attack="gap", logits=True)


# --- a tabular (feature-vector) victim: every attack ------------------------------------------

@pytest.fixture(scope="module")
def tabular():
    """A 20-class, 24-binary-feature Purchase-like task; an MLP overfit on 120 records."""
    from tfmodelsec.data import Dataset
    from tfmodelsec.models import as_victim, train_classifier

    rng = np.random.default_rng(0)
    prototypes = rng.uniform(size=(20, 24)) < 0.5
    labels = rng.integers(0, 20, 600)
    x = (prototypes[labels] ^ (rng.uniform(size=(600, 24)) < 0.2)).astype(np.float32)
    data = Dataset.from_arrays(x[:400], labels[:400], x[400:], labels[400:], name="tabular", value_range=(0, 1))
    members = (data.x_train[:120], data.y_train[:120])
    run = train_classifier("mlp", members, epochs=40, batch_size=32, learning_rate=3e-3, seed=0, verbose=0)
    return (as_victim(run.model), members, (data.x_test[:120], data.y_test[:120]),
            (data.x_train[120:], data.y_train[120:]))


@pytest.mark.slow
def test_every_attack_runs_on_a_tabular_victim(tabular):
    victim, members, non_members, population = tabular
    training = ShadowTraining(epochs=1, batch_size=32)
    kw = dict(population=population, training=training, verbose=0)
    lira = membership_inference(victim, members, non_members, attack="lira", num_shadows=2, **kw)
    assert lira.info["reference_model"] == "victim architecture"
    results = [lira, membership_inference(victim, members, non_members, attack="rmia", shadows=lira.shadows, **kw)]
    for attack in ("loss", "shadow", "proxy", "gap", "label_augment", "label_noise"):
        results.append(membership_inference(victim, members, non_members, attack=attack, num_shadows=1,
                                            shadow_size=60, **kw))
    for r in results:
        assert r.scores.shape == (240,) and np.isfinite(r.scores).all(), r.attack
    assert results[2].get_auc() > 0.6  # the overfit MLP leaks through its loss


def test_reference_models_fall_back_to_an_mlp_of_the_victims_input_size(tabular):
    import keras

    from tfmodelsec.attacks.membership.shadow import reference_architecture
    from tfmodelsec.models import as_victim

    class Subclassed(keras.Model):  # clone_model cannot rebuild a subclassed model
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(20, activation="softmax")

        def call(self, x):
            return self.dense(x)

    inputs = keras.Input((24,))
    victim = as_victim(keras.Model(inputs, Subclassed()(inputs)))
    build, description = reference_architecture(victim, ShadowTraining())
    assert description.startswith("mlp of input (24,)") and build().input_shape == (None, 24)
    assert reference_architecture(tabular[0], ShadowTraining())[1] == "victim architecture"
    with pytest.raises(ValueError, match="lenet5.*cannot take the victim's inputs.*'mlp'"):
        reference_architecture(tabular[0], ShadowTraining(model="lenet5"))
