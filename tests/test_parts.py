"""Work split with ``--part i/n`` (LiRA shadows, SISA shards, DRMI MI blocks) merges to the unsplit result."""

import numpy as np
import pytest

from tfmodelsec.attacks.membership.lira import LiraShadows, lira_scores, merge_lira_shadows, train_lira_shadows
from tfmodelsec.attacks.membership.shadow import ShadowTraining
from tfmodelsec.attacks.stealing.drmi import merge_mi_parts, mutual_information_matrix, mutual_information_part
from tfmodelsec.cli import main

TINY = ShadowTraining(model="mlp", epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def targets(digits):
    x, y = digits.x_train[:60], digits.y_train[:60]
    population = (digits.x_train[60:160], digits.y_train[60:160])
    return x, y, population


@pytest.fixture(scope="module")
def full_shadows(digits_victim, targets):
    x, y, population = targets
    return train_lira_shadows(digits_victim, x, y, num_shadows=5, population=population, training=TINY,
                              seed=4, verbose=0)


def test_lira_parts_merge_to_the_unsplit_shadows(digits_victim, targets, full_shadows, tmp_path):
    x, y, population = targets
    files = []
    for i in (3, 1, 2):  # any order: the merge sorts by shadow index
        part = train_lira_shadows(digits_victim, x, y, num_shadows=5, population=population, training=TINY,
                                  seed=4, part=(i, 3), verbose=0)
        assert not part.complete and part.total == 5
        files.append(part.save(tmp_path / f"lira_shadows.part-{i}-of-3.npz"))
    merged = merge_lira_shadows([LiraShadows.load(f) for f in files])
    assert merged.complete and merged.info == full_shadows.info
    np.testing.assert_array_equal(merged.keep, full_shadows.keep)
    np.testing.assert_array_equal(merged.confidences, full_shadows.confidences)
    np.testing.assert_array_equal(merged.logit_confidences, full_shadows.logit_confidences)
    victim_conf = full_shadows.confidences[0]
    np.testing.assert_array_equal(lira_scores(merged, victim_conf)[0], lira_scores(full_shadows, victim_conf)[0])


def test_lira_merge_refuses_gaps_repeats_and_other_runs(digits_victim, targets, tmp_path):
    x, y, population = targets
    kw = dict(num_shadows=4, population=population, training=TINY, verbose=0)
    p1 = train_lira_shadows(digits_victim, x, y, seed=0, part=(1, 2), **kw)
    with pytest.raises(ValueError, match="shadows 2-3 of 4 are missing"):
        merge_lira_shadows([p1])
    with pytest.raises(ValueError, match="more than one part"):
        merge_lira_shadows([p1, p1])
    other_seed = train_lira_shadows(digits_victim, x, y, seed=1, part=(2, 2), **kw)
    with pytest.raises(ValueError, match="different runs"):
        merge_lira_shadows([p1, other_seed])
    with pytest.raises(ValueError, match="merge all parts"):
        lira_scores(p1, np.zeros(len(x)))
    loaded = LiraShadows.load(p1.save(tmp_path / "p.npz"))  # round trip without pickle
    np.testing.assert_array_equal(loaded.confidences, p1.confidences)
    assert loaded.config == p1.config and list(loaded.shadow_ids) == [0, 1]
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a LiRA shadows file"):
        LiraShadows.load(tmp_path / "junk.npz")


def test_mi_parts_merge_to_the_unsplit_matrix(tmp_path):
    pool = np.random.default_rng(0).uniform(size=(150, 8, 8, 1)).astype(np.float32)
    full = mutual_information_matrix(pool, block_size=16)  # 10 row blocks, 10 upper-triangle blocks
    files = [mutual_information_part(pool, (i, 4), tmp_path / "parts", block_size=16) for i in range(1, 5)]
    assert [f.name.split(".")[1] for f in files] == [f"part-{i}-of-4" for i in range(1, 5)]
    merged = merge_mi_parts(files, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(merged, full)
    np.testing.assert_array_equal(merged, merged.T)
    # the merged matrix sits where the unsplit function looks for its cache
    cached = mutual_information_matrix(pool, block_size=16, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(cached, full)
    with pytest.raises(ValueError, match="MI blocks .* missing"):
        merge_mi_parts(files[:3])
    other = mutual_information_part(pool[:100], (1, 4), tmp_path / "other", block_size=16)
    with pytest.raises(ValueError, match="different pools"):
        merge_mi_parts([*files, other])


def test_more_parts_than_blocks_leave_some_parts_empty(tmp_path):
    pool = np.random.default_rng(1).uniform(size=(20, 4, 4)).astype(np.float32)
    files = [mutual_information_part(pool, (i, 3), tmp_path, block_size=16) for i in (1, 2, 3)]  # 2 blocks
    np.testing.assert_array_equal(merge_mi_parts(files), mutual_information_matrix(pool, block_size=16))


def test_sisa_parts_merge_to_the_unsplit_ensemble(digits, tmp_path):
    from tfmodelsec.unlearning import Sisa, merge_sisa, train_sisa

    data = digits.subset(n_train=240, n_test=60)
    kw = dict(shards=3, slices=2, batch_size=32, seed=2, verbose=0)
    full = train_sisa("mlp", data, tmp_path / "full", **kw)
    manifests = [train_sisa("mlp", data, tmp_path / f"host{i}", part=(i, 2), **kw) for i in (1, 2)]
    assert [m.name for m in manifests] == ["manifest.part-1-of-2.json", "manifest.part-2-of-2.json"]
    with pytest.raises(FileNotFoundError):
        Sisa.open(tmp_path / "host1")  # a part alone is not an ensemble
    with pytest.raises(ValueError, match="shards 1-2 of 3 are missing"):
        merge_sisa(manifests[:1], tmp_path / "merged")
    merged = merge_sisa(manifests, tmp_path / "merged")  # copies the checkpoints from both hosts
    assert merged.slices and [s.tolist() for sh in merged.slices for s in sh] == \
        [s.tolist() for sh in full.slices for s in sh]
    for s in range(3):
        for r in range(3):
            for a, b in zip(merged.weights(s, r), full.weights(s, r), strict=True):
                np.testing.assert_array_equal(a, b)
    x = data.x_test
    np.testing.assert_array_equal(merged.ensemble().predict(x, verbose=0), full.ensemble().predict(x, verbose=0))


@pytest.mark.slow
def test_cli_parts_then_merge(digits_victim, tmp_path, capsys):
    """The three commands with --part, then `tfmodelsec merge`, then the result reused."""
    from tfmodelsec.attacks.stealing.selection import candidate_indices
    from tfmodelsec.data import load_dataset
    from tfmodelsec.models.io import save_model
    from tfmodelsec.unlearning import Sisa

    victim = str(save_model(digits_victim.model, tmp_path / "v.h5"))
    lira = ["membership", victim, "--dataset", "digits", "--members", "first:40", "--attacks", "lira",
            "--lira-shadows", "2", "--shadow-epochs", "1", "--population", "test-rest", "--quiet"]
    for i in (1, 2):
        assert main([*lira, "--part", f"{i}/2", "--out", str(tmp_path / "lira_parts")]) == 0
    assert main(["merge", str(tmp_path / "lira_parts"), "--out", str(tmp_path / "lira")]) == 0
    assert main([*lira, "--lira-shadows-from", str(tmp_path / "lira" / "lira_shadows.npz"),
                 "--out", str(tmp_path / "split")]) == 0
    assert main([*lira, "--out", str(tmp_path / "unsplit")]) == 0
    with np.load(tmp_path / "split" / "scores.npz") as a, np.load(tmp_path / "unsplit" / "scores.npz") as b:
        np.testing.assert_array_equal(a["lira_scores"], b["lira_scores"])

    chain = ["chain", "--model", "mlp", "--dataset", "digits", "--train-subset", "200", "--sisa", "2,2", "--quiet"]
    for i in (1, 2):
        assert main([*chain, "--part", f"{i}/2", "--out", str(tmp_path / f"host{i}")]) == 0
    assert main(["merge", str(tmp_path / "host1" / "sisa"), str(tmp_path / "host2" / "sisa"),
                 "--out", str(tmp_path / "chain" / "sisa")]) == 0
    assert Sisa.open(tmp_path / "chain" / "sisa").config["shards"] == 2

    steal = ["steal", victim, "--dataset", "digits", "--queries", "20", "--candidates", "300", "--quiet"]
    for i in (1, 2):
        assert main([*steal, "--part", f"{i}/2", "--out", str(tmp_path / "steal")]) == 0
    assert main(["merge", str(tmp_path / "steal" / "cache"), "--out", str(tmp_path / "steal" / "cache")]) == 0
    pool = load_dataset("digits").x_train
    cand = candidate_indices(len(pool), 10, 300, 0)  # 20 queries, half chosen by DRMI (--active-share 0.5)
    expected = mutual_information_matrix(pool[cand])
    (merged,) = [f for f in (tmp_path / "steal" / "cache").glob("mi_*.npz") if ".part-" not in f.name]
    with np.load(merged) as f:
        np.testing.assert_array_equal(f["mi"], expected)
    out = capsys.readouterr().out
    assert "merged 2 parts: 2 LiRA shadows" in out and "SISA 2x2" in out and "300x300 MI matrix" in out


@pytest.mark.parametrize("argv, message", [
    (["chain", "--dataset", "digits", "--part", "1/2", "--out", "x"], "needs --sisa"),
    (["steal", "V.h5", "--dataset", "digits", "--select", "random", "--part", "1/2", "--out", "x"], "include drmi"),
    (["membership", "V.h5", "--dataset", "digits", "--members", "first:10", "--part", "1/2", "--out", "x"],
     "include lira"),
    (["chain", "--dataset", "digits", "--sisa", "2,2", "--part", "3/2", "--out", "x"], "1 <= i <= n"),
])
def test_part_arguments_are_checked(argv, message, digits_victim, tmp_path, capsys, monkeypatch):
    from tfmodelsec.models.io import save_model

    monkeypatch.chdir(tmp_path)
    save_model(digits_victim.model, tmp_path / "V.h5")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_merge_without_parts_is_an_error(tmp_path, capsys):
    assert main(["merge", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no part files" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
