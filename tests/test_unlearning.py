"""DeepObliviate, naive retraining and SISA on a tiny chain (sklearn digits, LeNet-5)."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tfmodelsec.unlearning import (
    Chain,
    MajorityVote,
    evaluate_unlearning,
    fit_power_law,
    retrain,
    stitch,
    train_chain,
    train_sisa,
    unlearn,
    unlearn_sisa,
)

BLOCKS = 6


def _dir_hash(path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        h.update(p.name.encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def chain(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("chain")
    return train_chain(
        "lenet5", digits, out, blocks=BLOCKS, batch_size=32, learning_rate=0.1, seed=1, verbose=0
    )


def test_stitching_the_original_checkpoint_gives_the_final_model_exactly(chain):
    final = chain.weights(BLOCKS)
    for k in range(BLOCKS + 1):
        assert _equal(stitch(chain, chain.weights(k), k), final)


def test_early_stop_stitches_the_rest_of_the_chain(chain, digits):
    from tfmodelsec.unlearning.base import checked_trainer

    ids = chain.blocks[0][:3]
    result = unlearn(chain, ids, epsilon=1e9, max_blocks=2, data=digits, verbose=0)
    assert result.blocks_retrained == 2 and result.info["stopped_at_block"] == 2
    assert len(result.deltas) == 2 and result.first_block == 1 and result.deleted == 3
    # M'_2 by hand: blocks 1 and 2 from M_0 without the records, then the stitch
    trainer, w = checked_trainer(chain), chain.weights(0)
    for i in (1, 2):
        block = chain.blocks[i - 1]
        w = trainer.train_block(
            w,
            digits.x_train[block],
            digits.y_train[block],
            (~np.isin(block, ids)).astype(np.float32),
            seed=1,
            block=i,
        )
    assert _equal(result.weights, stitch(chain, w, 2))
    assert not _equal(result.weights, chain.weights(BLOCKS))


def test_epsilon_zero_matches_naive_retraining(chain, digits):
    ids = chain.blocks[1][:5].tolist() + chain.blocks[3][:2].tolist()
    ours = unlearn(chain, ids, epsilon=0.0, data=digits, verbose=0)
    naive = retrain(chain, ids, data=digits, verbose=0)
    assert ours.blocks_retrained == BLOCKS - 1  # from block 2 to the end
    assert _equal(ours.weights, naive.weights)


def test_unlearning_a_whole_block_matches_retraining(chain, digits):
    block = chain.blocks[BLOCKS - 1]  # the last block: nothing after it to stitch
    ours = unlearn(chain, block, epsilon=0.1, data=digits, verbose=0)
    naive = retrain(chain, block, data=digits, verbose=0)
    assert ours.blocks_retrained == 1 and _equal(ours.weights, naive.weights)
    # deleting the whole last block gives back the model before it
    assert _equal(naive.weights, chain.weights(BLOCKS - 1))


def test_unlearning_never_modifies_the_chain(chain, digits):
    before = _dir_hash(chain.path)
    unlearn(chain, chain.blocks[2][:10], epsilon=0.05, data=digits, verbose=0)
    retrain(chain, chain.blocks[2][:10], data=digits, verbose=0)
    assert _dir_hash(chain.path) == before


@pytest.mark.parametrize(
    "ids,match",
    [
        ([], "empty"),
        ([3, 3], "duplicate"),
        ([-1], "training set"),
        ([10**6], "training set"),
        ([1.5], "integer"),
    ],
    ids=["empty", "duplicates", "negative", "too-large", "not-int"],
)
def test_bad_delete_ids(chain, digits, ids, match):
    with pytest.raises(ValueError, match=match):
        unlearn(chain, ids, data=digits, verbose=0)
    with pytest.raises(ValueError, match=match):
        retrain(chain, ids, data=digits, verbose=0)


def test_bad_options_and_mismatched_data_or_model(chain, digits, tmp_path):
    with pytest.raises(ValueError, match="epsilon"):
        unlearn(chain, [0], epsilon=-0.1, data=digits, verbose=0)
    with pytest.raises(ValueError, match="stop_on"):
        unlearn(chain, [0], stop_on="median", data=digits, verbose=0)
    other = digits.subset(n_train=len(digits.x_train))
    other = type(digits)(
        digits.name,
        digits.x_train[::-1].copy(),
        digits.y_train[::-1].copy(),
        digits.x_test,
        digits.y_test,
        digits.num_classes,
    )
    with pytest.raises(ValueError, match="data"):
        unlearn(chain, [0], data=other, verbose=0)
    copy = tmp_path / "mlp"
    shutil.copytree(chain.path, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["config"]["model"] = "mlp"
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="model"):
        unlearn(Chain.open(copy), [0], data=digits, verbose=0)


def test_power_law_fit_recovers_known_parameters():
    x = np.arange(1, 16)
    fit = fit_power_law(2.0 * x**-1.5 + 0.1)
    assert fit["a"] == pytest.approx(2.0, rel=1e-3) and fit["h"] == pytest.approx(1.5, rel=1e-3)
    assert fit["b"] == pytest.approx(0.1, abs=1e-3)
    assert fit_power_law([1.0, 0.5]) is None  # fewer points than parameters


def test_evaluation_and_plot(chain, digits):
    result = unlearn(chain, chain.blocks[0][:20], epsilon=0.1, data=digits, verbose=0)
    ids = chain.blocks[0][:20]
    metrics = evaluate_unlearning(
        result.model,
        digits,
        reference=chain.model(),
        deleted=(digits.x_train[ids], digits.y_train[ids]),
    )
    assert set(metrics) == {"top1", "top5", "consistency", "membership_auc"}
    assert 0.0 <= metrics["membership_auc"] <= 1.0 and 0.0 <= metrics["consistency"] <= 1.0
    fig = result.plot()
    assert fig.axes and len(fig.axes[0].lines) >= 2
    assert json.dumps(result.to_dict())


def test_loss_threshold_auc_known_answers():
    from tfmodelsec.metrics import loss_threshold_auc

    assert loss_threshold_auc([0.1, 0.2], [1.0, 2.0]) == 1.0  # members all have lower loss
    assert loss_threshold_auc([1.0, 2.0], [0.1, 0.2]) == 0.0
    assert loss_threshold_auc([1.0], [1.0]) == 0.5
    with pytest.raises(ValueError, match="member_losses"):
        loss_threshold_auc([], [1.0])


def test_majority_vote_known_answer():
    p = [
        np.array([[0.6, 0.4, 0.0]], np.float32),
        np.array([[0.1, 0.9, 0.0]], np.float32),
        np.array([[0.3, 0.7, 0.0]], np.float32),
    ]
    out = np.asarray(MajorityVote()(p))
    assert out.argmax() == 1 and out.sum() == pytest.approx(1.0, abs=1e-6)
    assert out[0, 1] == pytest.approx(2 / 3, abs=2e-3)


@pytest.mark.slow
def test_sisa_retrains_only_the_affected_shard(digits, tmp_path):
    from tfmodelsec.models import load_victim, save_model

    sisa = train_sisa(
        "lenet5",
        digits,
        tmp_path / "sisa",
        shards=3,
        slices=2,
        batch_size=32,
        learning_rate=0.1,
        seed=0,
        verbose=0,
    )
    before = _dir_hash(tmp_path / "sisa")
    ids = sisa.slices[1][1][:4]  # shard 1, slice 2
    result = unlearn_sisa(sisa, ids, data=digits, verbose=0)
    assert result.info["shards_retrained"] == 1 and result.blocks_retrained == 1
    assert _dir_hash(tmp_path / "sisa") == before
    shards = [layer for layer in result.model.layers if layer.name.startswith("shard_")]
    assert _equal(shards[0].get_weights(), sisa.weights(0, 2))  # untouched shards kept
    assert not _equal(shards[1].get_weights(), sisa.weights(1, 2))
    path = save_model(result.model, tmp_path / "sisa.h5")
    victim = load_victim(path)  # MajorityVote is a registered tfmodelsec layer: safe to load
    np.testing.assert_allclose(
        victim.probabilities(digits.x_test[:8]),
        result.model.predict(digits.x_test[:8], verbose=0),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="duplicate"):
        unlearn_sisa(sisa, [1, 1], data=digits, verbose=0)


@pytest.mark.slow
def test_cli_chain_and_unlearn(tmp_path, capsys):
    from tfmodelsec.cli import main
    from tfmodelsec.models import load_victim

    chain_dir = tmp_path / "chain"
    base = [
        "chain",
        "--model",
        "lenet5",
        "--dataset",
        "digits",
        "--train-subset",
        "600",
        "--blocks",
        "4",
        "--lr",
        "0.1",
        "--out",
        str(chain_dir),
        "--quiet",
    ]
    assert main(base + ["--sisa", "2,2"]) == 0
    assert "storage" in capsys.readouterr().out
    assert main(base) == 2 and "--resume" in capsys.readouterr().err  # exists: needs --resume
    assert main(base + ["--resume"]) == 0
    before = _dir_hash(chain_dir)
    ids = tmp_path / "ids.txt"
    ids.write_text("3\n17  # a comment\n\n250\n")
    for method in ("deepobliviate", "sisa", "retrain"):
        out = tmp_path / method
        assert (
            main(
                [
                    "unlearn",
                    str(chain_dir),
                    "--delete",
                    str(ids),
                    "--method",
                    method,
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        ), capsys.readouterr().err
        report = json.loads((out / "unlearn.json").read_text())
        assert report["method"] == method and report["deleted"] == 3
        assert {"top1", "membership_auc"} <= set(report["after"]) and "consistency" in report[
            "after"
        ]
        assert report["speedup"] > 0 and (out / "residual.png").stat().st_size > 0
        assert load_victim(out / "model.h5").num_classes == 10
    assert (
        json.loads((tmp_path / "retrain" / "unlearn.json").read_text())["after"]["consistency"]
        == 1.0
    )
    assert _dir_hash(chain_dir) == before  # unlearning never touches the chain

    (tmp_path / "dup.json").write_text("[5, 5]")
    (tmp_path / "empty.txt").write_text("\n")
    for delete, out, match in [
        ("1,2", str(tmp_path / "nowhere-chain"), "chain"),
        (str(tmp_path / "dup.json"), None, "duplicate"),
        (str(tmp_path / "empty.txt"), None, "empty"),
        ("1,x", None, "comma-separated"),
        ("599,600", None, "training set"),
        ("missing.txt", None, "not found"),
    ]:
        target = out or str(chain_dir)
        assert (
            main(["unlearn", target, "--delete", delete, "--out", str(tmp_path / "o"), "--quiet"])
            == 2
        )
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1, err
    assert (
        main(["unlearn", str(chain_dir), "--delete", "1", "--out", str(chain_dir / "x"), "--quiet"])
        == 2
    )
    assert "outside" in capsys.readouterr().err
    assert _dir_hash(chain_dir) == before


def test_incomplete_chain_is_refused(chain, digits):
    from tfmodelsec.unlearning import ChainError

    partial = Chain(chain.path, chain.config, chain.blocks, chain.checkpoints[:3], complete=False)
    with pytest.raises(ChainError, match="incomplete"):
        unlearn(partial, [0], data=digits, verbose=0)


def test_chain_under_an_explicit_strategy(chain, digits, tmp_path):
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    other = train_chain(
        "lenet5",
        digits,
        tmp_path / "one_device",
        blocks=BLOCKS,
        batch_size=32,
        learning_rate=0.1,
        seed=1,
        strategy=strategy,
        verbose=0,
    )
    for a, b in zip(other.weights(BLOCKS), chain.weights(BLOCKS), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    result = unlearn(
        other, other.blocks[0][:4], epsilon=0.1, data=digits, strategy=strategy, verbose=0
    )
    assert result.blocks_retrained >= 1


def test_public_api():
    import tfmodelsec.unlearning as ul

    assert set(ul.__all__) >= {
        "Chain",
        "train_chain",
        "unlearn",
        "stitch",
        "retrain",
        "train_sisa",
        "unlearn_sisa",
        "UnlearnResult",
        "ChainError",
        "MajorityVote",
    }
    assert all(hasattr(ul, name) for name in ul.__all__)


# --- exact unlearning with BatchNorm and Dropout (issue 16) ---------------------------------------
# "Retrained without the records" must equal training on the remaining records with the same order
# and seeds: deleted records stay out of every batch (BatchNorm statistics included) and the random
# draws (Dropout) are a function of the chain's seed, not of what the trainer ran before.

KINDS = ["batchnorm", "dropout"]  # plain models: the lenet5 `chain` above
TINY_BLOCKS, TINY_BATCH, TINY_LR, TINY_SEED = 3, 16, 0.1, 5


def _tiny(kind):
    import keras

    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        if kind == "batchnorm":
            h = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
            h = keras.layers.Flatten()(keras.layers.ReLU()(keras.layers.BatchNormalization()(h)))
        else:
            h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
            if kind == "dropout":
                h = keras.layers.Dropout(0.5)(h)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(h))

    return build


@pytest.fixture(scope="module")
def tiny_zoo():
    from tfmodelsec.models import zoo

    names = {kind: f"_test_{kind}" for kind in KINDS}
    for kind, name in names.items():
        zoo.MODELS[name] = _tiny(kind)
    yield names
    for name in names.values():
        zoo.MODELS.pop(name, None)


@pytest.fixture(scope="module")
def small(digits):
    return digits.subset(n_train=192)


@pytest.fixture(scope="module")
def tiny_chains(tiny_zoo, small, tmp_path_factory):
    return {kind: train_chain(name, small, tmp_path_factory.mktemp(kind), blocks=TINY_BLOCKS, batch_size=TINY_BATCH,
                              learning_rate=TINY_LR, seed=TINY_SEED, verbose=0)
            for kind, name in tiny_zoo.items()}


def _naive(name, weights, stages, data, deleted, *, seed=TINY_SEED, epochs=1):
    """Training from scratch on the remaining records, written out: each stage ``(block id, record ids)``
    visits its records in block_order, cut into slots of TINY_BATCH, the deleted ones physically left
    out; random layers re-seeded per slot (slot_seeds); plain SGD, fresh per stage; eager."""
    import keras
    import tensorflow as tf

    from tfmodelsec.models.zoo import build_model
    from tfmodelsec.unlearning._trainer import block_order, seed_generators, slot_seeds

    net = build_model(name, data.x_train.shape[1:], data.num_classes)
    net.set_weights(weights)
    generators = seed_generators(net)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    for block_id, ids in stages:
        opt = keras.optimizers.SGD(TINY_LR)
        for epoch in range(epochs):
            order = block_order(seed, block_id, epoch, len(ids))
            seeds = slot_seeds(seed, block_id, epoch, -(-len(ids) // TINY_BATCH), len(generators))
            for j, start in enumerate(range(0, len(ids), TINY_BATCH)):
                rows = ids[order[start:start + TINY_BATCH]]
                rows = rows[~np.isin(rows, deleted)]
                if not len(rows):
                    continue
                for g, gen in enumerate(generators):
                    gen.state.assign(np.array([seeds[j, g], 0], np.int64))
                with tf.GradientTape() as tape:
                    loss = loss_fn(data.y_train[rows], net(data.x_train[rows], training=True))
                grads = tape.gradient(loss, net.trainable_variables)
                opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))
    return net.get_weights()


def _close(a, b, atol=1e-5):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_retraining_a_block_reproduces_its_checkpoint(tiny_chains, small, kind):
    from tfmodelsec.unlearning.base import checked_trainer

    chain = tiny_chains[kind]
    trainer = checked_trainer(chain)
    x, y = small.x_train, small.y_train
    trainer.train_block(chain.weights(0), x[chain.blocks[0]], y[chain.blocks[0]], seed=9, block=9)  # other draws
    again = trainer.train_block(chain.weights(1), x[chain.blocks[1]], y[chain.blocks[1]], seed=TINY_SEED, block=2)
    assert _equal(again, chain.weights(2))


@pytest.mark.parametrize("kind", [*KINDS, "plain"])
def test_deleted_records_never_reach_the_network(tiny_chains, chain, digits, small, kind):
    from tfmodelsec.unlearning.base import checked_trainer

    chain, data = (chain, digits) if kind == "plain" else (tiny_chains[kind], small)
    trainer = checked_trainer(chain)
    block = chain.blocks[0]
    x, y = data.x_train[block].copy(), data.y_train[block]
    keep = np.ones(len(block), np.float32)
    keep[[0, 5, 17]] = 0
    clean = trainer.train_block(chain.weights(0), x, y, keep, seed=chain.config.seed, block=1)
    x[[0, 5, 17]] = np.nan  # a deleted record's content cannot matter if it never enters a batch
    assert _equal(trainer.train_block(chain.weights(0), x, y, keep, seed=chain.config.seed, block=1), clean)


@pytest.mark.parametrize("kind", KINDS)
def test_unlearning_equals_naive_retraining_on_the_remaining_records(tiny_chains, tiny_zoo, small, kind):
    chain = tiny_chains[kind]
    ids = np.sort(np.concatenate([chain.blocks[0][[3, 20]], chain.blocks[1][:TINY_BATCH + 2]]))
    expected = _naive(tiny_zoo[kind], chain.weights(0), [(i + 1, b) for i, b in enumerate(chain.blocks)],
                      small, ids)
    ours = unlearn(chain, ids, epsilon=0.0, data=small, verbose=0)
    naive = retrain(chain, ids, data=small, verbose=0)
    assert _equal(ours.weights, naive.weights)
    _close(naive.weights, expected)
    if kind == "batchnorm":  # the moving statistics moved, and without the deleted records
        before = chain.weights(TINY_BLOCKS)
        assert any(not np.allclose(a, b) for a, b in zip(naive.weights[2:4], before[2:4], strict=True))


def test_sisa_unlearning_equals_naive_retraining_of_the_shard(tiny_zoo, small, tmp_path):
    kind = "batchnorm"  # the same block trainer as the chain's: dropout is covered above
    sisa = train_sisa(tiny_zoo[kind], small, tmp_path / "sisa", shards=2, slices=2, batch_size=TINY_BATCH,
                      learning_rate=TINY_LR, seed=TINY_SEED, verbose=0)
    ids = np.sort(sisa.slices[1][0][[1, 4, 9]])  # shard 1, first slice: both stages retrained
    result = unlearn_sisa(sisa, ids, data=small, verbose=0)
    shards = [layer for layer in result.model.layers if layer.name.startswith("shard_")]
    stages = [(10_000 * 2 + r, np.concatenate(sisa.slices[1][:r])) for r in (1, 2)]
    _close(shards[1].get_weights(), _naive(tiny_zoo[kind], sisa.weights(1, 0), stages, small, ids))
    assert _equal(shards[0].get_weights(), sisa.weights(0, 2))


# --- DeepObliviate's stop rule: known answers on synthetic residual curves (issue 16) ---------------

class _CurveChain:
    """A chain of B one-record blocks with M_i = [i, 0]: every block's influence is [1, 0]."""

    def __init__(self, blocks):
        from tfmodelsec.unlearning.chain import ChainConfig

        self.config = ChainConfig(model="none", dataset="none", n_train=blocks, input_shape=(1,), num_classes=2,
                                  blocks=blocks)
        self.blocks = [np.array([i]) for i in range(blocks)]

    def weights(self, i):
        return [np.array([float(i), 0.0])]

    def block_of(self, ids):
        return np.asarray(ids) + 1

    def check_data(self, data):
        return np.zeros((self.config.n_train, 1), np.float32), np.zeros(self.config.n_train, np.int64)


class _CurveTrainer:
    """Retraining block d + t moves the weights by [1, curve[t]]: Δ_t = |curve[t]| exactly."""

    def __init__(self, curve, first):
        self.curve, self.first = list(curve), first

    def train_block(self, weights, x, y, keep=None, *, seed, block, epochs=1):
        return [weights[0] + np.array([1.0, self.curve[block - self.first]])]


def _unlearn_curve(monkeypatch, curve, blocks, **kw):
    from tfmodelsec.unlearning import deepobliviate

    monkeypatch.setattr(deepobliviate, "checked_trainer", lambda chain, strategy=None: _CurveTrainer(curve, 1))
    monkeypatch.setattr(deepobliviate, "_model_from", lambda cfg, weights: None)
    return unlearn(_CurveChain(blocks), [0], data=object(), verbose=0, **kw)


@pytest.mark.parametrize("stop_on,blocks_retrained", [("total", 24), ("memory", 22)])
def test_stop_rule_on_a_known_power_law(monkeypatch, stop_on, blocks_retrained):
    # Δ = 2/x + 0.01: a·x^-h + b < 0.095 first at x = 24 (2/23 + 0.01 = 0.097, 2/24 + 0.01 = 0.093);
    # a·x^-h alone first at x = 22 (2/21 = 0.0952, 2/22 = 0.0909)
    curve = 2.0 / np.arange(1, 41) + 0.01
    r = _unlearn_curve(monkeypatch, curve, 40, epsilon=0.095, stop_on=stop_on)
    assert r.blocks_retrained == blocks_retrained and r.info["stopped_at_block"] == blocks_retrained
    np.testing.assert_allclose(r.deltas, curve[:blocks_retrained], rtol=1e-12)
    assert r.fit["a"] == pytest.approx(2.0, rel=1e-4) and r.fit["h"] == pytest.approx(1.0, rel=1e-4)
    assert r.fit["b"] == pytest.approx(0.01, abs=1e-5)
    assert r.info["fitted_residual_at_stop"] == pytest.approx(2.0 / blocks_retrained + 0.01, rel=1e-4)
    # stitched: M'_k + (M_B - M_k) = [k, sum of the curve so far] + [B - k, 0]
    np.testing.assert_allclose(r.weights[0], [40.0, curve[:blocks_retrained].sum()], rtol=1e-12)


def test_default_stop_keeps_retraining_while_the_floor_stays_above_epsilon(monkeypatch):
    # the curve: memory decays at once, the residual stays at 0.95 of a block's influence
    curve = [1.0] + [0.95] * 11
    r = _unlearn_curve(monkeypatch, curve, 12, epsilon=0.1)
    assert r.info["stop_on"] == "total" and r.blocks_retrained == 12  # never below ε: retrained to the end
    assert r.info["fitted_residual_at_stop"] == pytest.approx(0.95, abs=0.01)
    early = _unlearn_curve(monkeypatch, curve, 12, epsilon=0.1, stop_on="memory")
    assert early.blocks_retrained == 3 and early.info["fitted_memory_at_stop"] < 0.1  # the explicit opt-in
    assert early.info["fitted_floor"] > 0.9  # ... while the residual it leaves is ~0.95 per stitched block


def test_stop_rule_and_deltas_on_a_tiny_chain(chain, digits):
    from tfmodelsec.unlearning.base import checked_trainer
    from tfmodelsec.unlearning.deepobliviate import fitted_residual

    ids = chain.blocks[1][:4]
    result = unlearn(chain, ids, epsilon=0.5, data=digits, verbose=0)
    k = result.info["stopped_at_block"]
    # Δ by hand from the checkpoints and a hand-retrained run
    trainer, w, flat = checked_trainer(chain), chain.weights(1), []
    for i in range(2, k + 1):
        block = chain.blocks[i - 1]
        w = trainer.train_block(w, digits.x_train[block], digits.y_train[block],
                                (~np.isin(block, ids)).astype(np.float32), seed=1, block=i)
        flat.append(np.concatenate([np.ravel(a) for a in w]))
    orig = [np.concatenate([np.ravel(a) for a in chain.weights(i)]) for i in range(1, k + 1)]
    new = [orig[0], *flat]
    scale = np.abs(orig[1] - orig[0]).sum()
    deltas = [np.abs((orig[t] - orig[t - 1]) - (new[t] - new[t - 1])).sum() / scale for t in range(1, len(orig))]
    np.testing.assert_allclose(result.deltas, deltas, rtol=1e-6)
    # the rule: no earlier block had a fitted residual below ε; the stop block did, unless it is the last
    for t in range(1, len(deltas)):
        _, value = fitted_residual(deltas[:t], "total")
        assert value is None or value >= 0.5
    _, value = fitted_residual(deltas, "total")
    assert k == BLOCKS or value < 0.5
