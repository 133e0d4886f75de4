"""Query selection: DRMI's MI matrix and Algorithms 1-3 on hand-checkable inputs, baselines, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tfmodelsec.attacks.stealing import drmi
from tfmodelsec.attacks.stealing.selection import SELECTION_METHODS, select_queries


def _entropy(q, levels):
    p = np.bincount(q, minlength=levels) / len(q)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _brute_mi(qa, qb, levels):
    joint = np.zeros((levels, levels))
    np.add.at(joint, (qa, qb), 1)
    p = joint / len(qa)
    outer = np.outer(p.sum(1), p.sum(0))
    m = p > 0
    return float((p[m] * np.log(p[m] / outer[m])).sum())


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((12, 6, 6, 1)).astype(np.float32)


def test_mi_of_identical_images_is_their_entropy(images):
    x = np.concatenate([images[:1], images[:1]])
    mi = drmi.mutual_information_matrix(x, levels=4)
    h = _entropy(drmi.quantize(images[:1], 4)[0], 4)
    np.testing.assert_allclose(mi, np.full((2, 2), h), atol=1e-5)


def test_mi_of_independent_images_is_near_zero():
    # two images whose gray levels are statistically independent: every (i, j) pair
    # occurs equally often, so P_uv = P_u P_v exactly and MI = 0
    a = np.repeat(np.arange(4), 4) / 4 + 0.1
    b = np.tile(np.arange(4), 4) / 4 + 0.1
    mi = drmi.mutual_information_matrix(np.stack([a, b]).reshape(2, 4, 4, 1), levels=4)
    assert abs(mi[0, 1]) < 1e-5
    assert mi[0, 0] == pytest.approx(np.log(4), abs=1e-5)


@pytest.mark.parametrize("levels", [5, 256], ids=["one-hot-product", "sorted-codes"])
def test_mi_matrix_matches_brute_force_and_is_symmetric(images, levels):
    x = images.copy()
    x[:, 0] = 0.0  # a row of pixels 0 in every image: dropped, and put back into the (0, 0) count
    mi = drmi.mutual_information_matrix(x, levels=levels, block_size=3)  # several blocks, both sides
    q = drmi.quantize(x, levels)
    expected = np.array([[_brute_mi(q[i], q[j], levels) for j in range(len(q))] for i in range(len(q))])
    np.testing.assert_allclose(mi, expected, atol=2e-5)
    np.testing.assert_array_equal(mi, mi.T)


def test_256_levels_are_the_8_bit_gray_values():
    """R = 255: an 8-bit image scaled to [0, 1] keeps every one of its gray values."""
    raw = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(drmi.quantize(raw / 255.0, 256)[0], np.arange(256))


def test_mi_cache_roundtrip(images, tmp_path):
    first = drmi.mutual_information_matrix(images, levels=4, cache_dir=tmp_path)
    files = list(tmp_path.glob("mi_*.npz"))
    assert len(files) == 1
    np.testing.assert_array_equal(drmi.mutual_information_matrix(images, levels=4, cache_dir=tmp_path), first)


# Hand-built weights: elements 0-2 are a tight cluster (weight 5 among them), 3 and 4
# are far from everything (weight 1), all other pairs weigh 3.
W = np.full((6, 6), 3.0)
W[np.ix_([0, 1, 2], [0, 1, 2])] = 5.0
W[[3, 4], :] = 1.0
W[:, [3, 4]] = 1.0
np.fill_diagonal(W, 0.0)


def test_greedy_picks_the_obvious_element():
    order = drmi.greedy_initialization(W, 3, start=0)
    assert order[0] == 0
    assert set(order[1:]) == {3, 4}  # the two cheapest partners, not 1 or 2


def test_one_hot_replacement_swaps_until_no_gain():
    subset, cost = drmi.one_hot_replacement(W, np.array([0, 1, 2]))
    assert cost == pytest.approx(drmi.subset_cost(W, subset))
    assert cost < drmi.subset_cost(W, [0, 1, 2])
    assert {3, 4} <= set(subset.tolist())
    # a subset already optimal is left alone
    best, best_cost = drmi.one_hot_replacement(W, subset)
    assert set(best.tolist()) == set(subset.tolist()) and best_cost == pytest.approx(cost)


def test_greedy_aggregate_sum_or_max():
    # after 0 and 1: element 3 has the least summed MI (3 + 0.5), element 4 the least maximum (max(2.8, 2.9))
    w = np.ones((5, 5))
    w[0] = w[:, 0] = [0, 1, 2, 3, 2.8]
    w[1] = w[:, 1] = [1, 0, 5, 0.5, 2.9]
    np.fill_diagonal(w, 0)
    assert drmi.greedy_initialization(w, 3, start=0, g="sum").tolist() == [0, 1, 3]
    assert drmi.greedy_initialization(w, 3, start=0, g="max").tolist() == [0, 1, 4]
    kept = drmi.drmi_subset(w, 3, restarts=None, g="max", swaps=False)
    assert kept.cost == pytest.approx(min(drmi.subset_cost(w, drmi.greedy_initialization(w, 3, t, g="max"))
                                          for t in range(5)))
    with pytest.raises(ValueError, match="`g`"):
        drmi.greedy_initialization(w, 3, start=0, g="mean")


def test_proportional_quotas():
    from tfmodelsec.attacks.stealing.selection import proportional_quotas

    assert proportional_quotas([5, 3, 2], 5).tolist() == [3, 1, 1]  # 2.5, 1.5, 1: first largest remainder
    assert proportional_quotas([60, 30, 10], 10).tolist() == [6, 3, 1]
    assert proportional_quotas([1, 1, 8], 10).tolist() == [1, 1, 8]  # everything
    assert proportional_quotas([1, 9], 5).tolist() == [1, 4]


def test_clusters_split_the_budget_by_the_pools_own_groups():
    # three groups of flat images (dark, mid, bright) of sizes 60 / 30 / 10, a little noise inside each
    rng = np.random.default_rng(0)
    level = np.repeat([0.1, 0.5, 0.9], [60, 30, 10])
    pool = np.clip(level[:, None, None, None] + 0.05 * rng.random((100, 4, 4, 1)), 0, 1).astype(np.float32)
    idx, info = select_queries(pool, 10, method="drmi", clusters=3, seed=0, return_info=True)
    assert np.bincount(np.digitize(level[idx], [0.3, 0.7]), minlength=3).tolist() == [6, 3, 1]
    assert sorted(info["quotas"]) == [1, 3, 6] and info["cost"] == pytest.approx(
        drmi.subset_cost(drmi.mutual_information_matrix(pool, levels=info["levels"]), idx), rel=1e-4)


def test_drmi_subset_finds_the_optimum_with_all_restarts():
    rng = np.random.default_rng(1)
    a = rng.random((9, 9))
    w = a + a.T
    np.fill_diagonal(w, 0)
    res = drmi.drmi_subset(w, 3, restarts=None)
    from itertools import combinations
    brute = min(drmi.subset_cost(w, c) for c in combinations(range(9), 3))
    assert res.cost == pytest.approx(brute)
    assert len(res.restart_costs) == 9
    assert res.cost == pytest.approx(min(res.restart_costs))


@pytest.mark.parametrize("method", SELECTION_METHODS, ids=SELECTION_METHODS)
def test_selection_is_deterministic_and_valid(method, digits):
    pool = digits.x_train[:300]
    a = select_queries(pool, 20, method=method, seed=3, candidates=200)
    b = select_queries(pool, 20, method=method, seed=3, candidates=200)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 20 and len(np.unique(a)) == 20
    assert a.min() >= 0 and a.max() < len(pool)


def test_drmi_prefers_low_mutual_information(digits):
    pool = digits.x_train[:200]
    idx, info = select_queries(pool, 15, method="drmi", seed=0, return_info=True)
    rnd = select_queries(pool, 15, method="random", seed=0)
    mi = drmi.mutual_information_matrix(pool)
    assert drmi.subset_cost(mi, idx) < drmi.subset_cost(mi, rnd)
    assert info["cost"] == pytest.approx(drmi.subset_cost(mi, idx), rel=1e-4)


def test_normalized_drmi_is_deterministic_and_differs_in_cost(digits):
    pool = digits.x_train[:200]
    a, info = select_queries(pool, 15, method="drmi", seed=0, normalize=True, return_info=True)
    np.testing.assert_array_equal(a, select_queries(pool, 15, method="drmi", seed=0, normalize=True))
    mi = drmi.mutual_information_matrix(pool)
    h = np.sqrt(np.diag(mi))
    assert info["normalize"] is True
    assert info["cost"] == pytest.approx(drmi.subset_cost(mi / h[:, None] / h[None, :], a), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 10, "method": "bogus"}, "method"),
        ({"n": 0}, "`n`"),
        ({"n": 1000}, "`n`"),
        ({"n": 5, "candidates": 0}, "candidates"),
        ({"n": 5, "input_shape": (28, 28, 1)}, "shape"),
    ],
    ids=["method", "n-zero", "n-over-pool", "candidates", "shape"],
)
def test_selection_errors(kwargs, match, digits):
    with pytest.raises(ValueError, match=match):
        select_queries(digits.x_train[:100], **kwargs)


def test_selection_rejects_empty_and_bad_pools():
    with pytest.raises(ValueError, match="pool_x"):
        select_queries(np.zeros((0, 8, 8, 1)), 1)
    with pytest.raises(ValueError, match="pool_x"):
        select_queries(np.full((4, 8, 8, 1), np.nan), 1)
    with pytest.raises(ValueError, match="levels"):
        drmi.mutual_information_matrix(np.zeros((3, 4, 4, 1)), levels=1)
    with pytest.raises(ValueError, match="k"):
        drmi.drmi_subset(W, 7)


def test_batched_greedy_equals_one_start_at_a_time():
    rng = np.random.default_rng(2)
    a = rng.random((40, 40)).astype(np.float32)
    w = a + a.T
    np.fill_diagonal(w, 0)
    for g in ("sum", "max"):
        sets, costs = drmi._greedy_batched(w, 6, np.arange(40), g=g, block=16)
        for t in range(40):
            one = drmi.greedy_initialization(w, 6, t, g=g)
            assert sets[t].tolist() == one.tolist()
            assert costs[t] == pytest.approx(drmi.subset_cost(w, one), rel=1e-9)
        res = drmi.drmi_subset(w, 6, restarts=None, g=g, swaps=False)
        assert res.cost == pytest.approx(costs.min()) and len(res.restart_costs) == 40


def test_drmi_defaults_are_the_studied_variant():
    # issue 16 defect 8: every candidate as a start, g = max, no swaps, 8 levels, 2,000 candidates
    pool = np.random.default_rng(0).random((60, 4, 4, 1)).astype(np.float32)
    _, info = select_queries(pool, 5, method="drmi", return_info=True)
    assert (info["restarts"], info["g"], info["swaps"], info["levels"]) == (60, "max", False, 8)
    from tfmodelsec.attacks.stealing.selection import DEFAULT_CANDIDATES
    assert DEFAULT_CANDIDATES == 2000
