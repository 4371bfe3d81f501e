"""Significance tests of clickprompt.evaluation against direct computations.

DeLong et al. (1988): for classifier r with scores X_i (m positives) and Y_j (n negatives),
psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise;
    V10_r(i) = 1/n sum_j psi(X_ri, Y_rj),   V01_r(j) = 1/m sum_i psi(X_ri, Y_rj),   AUC_r = mean_i V10_r(i),
    S = S10 / m + S01 / n  (S10, S01: sample covariances, ddof = 1, of the V10 and V01 vectors),
    z = (AUC_a - AUC_b) / sqrt(S_aa + S_bb - 2 S_ab),   p = 2 (1 - Phi(|z|)).
The library uses the O((m + n) log(m + n)) midrank algorithm (Sun & Xu, 2014); here the O(m n) pair
matrix is built explicitly, and both must agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from clickprompt.evaluation import delong_per_seed, delong_test, paired_ttest, same_direction_p


def delong_direct(labels, a, b):
    labels = np.asarray(labels).astype(bool)
    comps = []
    for s in (np.asarray(a, float), np.asarray(b, float)):
        x, y = s[labels][:, None], s[~labels][None, :]  # (m, 1), (1, n)
        psi = (x > y).astype(float) + 0.5 * (x == y)  # (m, n)
        comps.append((psi.mean(axis=1), psi.mean(axis=0)))  # V10 (m,), V01 (n,)
    m, n = labels.sum(), (~labels).sum()
    aucs = [v10.mean() for v10, _ in comps]
    s10 = np.cov(np.stack([c[0] for c in comps]))  # (2, 2), ddof = 1
    s01 = np.cov(np.stack([c[1] for c in comps]))
    S = s10 / m + s01 / n
    var = S[0, 0] + S[1, 1] - 2 * S[0, 1]
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    return aucs[0], aucs[1], 2 * stats.norm.sf(abs(z)), var


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_direct_computation(seed, ties):
    rng = np.random.default_rng(seed)
    N = int(rng.integers(30, 200))
    labels = rng.random(N) < rng.uniform(0.2, 0.7)
    labels[:2], labels[2:4] = True, False  # at least two of each class
    a = labels * rng.uniform(0.2, 1.0) + rng.normal(0, 1, N)
    b = 0.6 * a + rng.normal(0, 1, N)  # correlated with a, as two models on one test set are
    if ties:  # scores on a coarse grid: many ties within and across classes
        a, b = np.round(a, 1), np.round(b, 1)
    auc_a, auc_b, p = delong_test(labels, a, b)
    d_a, d_b, d_p, _ = delong_direct(labels, a, b)
    assert auc_a == pytest.approx(roc_auc_score(labels, a), abs=1e-12)
    assert auc_b == pytest.approx(roc_auc_score(labels, b), abs=1e-12)
    assert (auc_a, auc_b) == pytest.approx((d_a, d_b), abs=1e-12)
    assert p == pytest.approx(d_p, rel=1e-9, abs=1e-15)


def test_delong_hand_example():
    """4 positives, 3 negatives, small enough to check the pair matrix by eye."""
    labels = np.array([1, 1, 1, 1, 0, 0, 0])
    a = np.array([0.9, 0.8, 0.4, 0.6, 0.5, 0.3, 0.2])
    b = np.array([0.7, 0.4, 0.9, 0.5, 0.5, 0.6, 0.1])
    auc_a, auc_b, p = delong_test(labels, a, b)
    assert auc_a == pytest.approx(11 / 12)  # a: only 0.4 < 0.5 misorders one of the 12 pairs
    assert auc_b == pytest.approx((3 + 1 + 3 + 1.5) / 12)  # per positive: wins over the 3 negatives, ties 1/2
    assert p == pytest.approx(delong_direct(labels, a, b)[2], rel=1e-12)


def test_delong_identical_and_degenerate():
    rng = np.random.default_rng(0)
    labels = rng.random(50) < 0.4
    s = rng.random(50)
    assert delong_test(labels, s, s) == (pytest.approx(roc_auc_score(labels, s)),) * 2 + (1.0,)
    with pytest.raises(ValueError, match="two positives"):
        delong_test(np.array([1, 0, 0, 0]), np.arange(4.0), np.arange(4.0))


def test_delong_significance_grows_with_a_real_difference():
    rng = np.random.default_rng(1)
    labels = rng.random(4000) < 0.5
    good = labels + rng.normal(0, 1.0, 4000)
    worse = labels + rng.normal(0, 1.6, 4000)
    assert delong_test(labels, good, worse)[2] < 1e-6
    same_quality = labels + rng.normal(0, 1.0, 4000)
    assert delong_test(labels, good, same_quality)[2] > 1e-3


@pytest.mark.parametrize("seed", range(5))
def test_paired_ttest_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    a = 0.84 + rng.normal(0, 0.002, n)
    b = a - 0.001 + rng.normal(0, 0.001, n)
    assert paired_ttest(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert paired_ttest(a, b) == paired_ttest(b, a)  # two-sided


def test_paired_ttest_edge_cases():
    assert math.isnan(paired_ttest([0.8], [0.7]))  # one seed: no test
    assert math.isnan(paired_ttest([0.8, 0.7], [0.7]))  # unpaired lengths
    assert paired_ttest([0.8, 0.7], [0.8, 0.7]) == 1.0  # identical: no evidence of a difference
    # a constant, non-zero difference has zero variance: scipy divides by zero, we report p = 0
    assert paired_ttest([0.81, 0.72, 0.75], [0.80, 0.71, 0.74]) == 0.0


def test_same_direction_p_needs_every_seed_to_agree():
    assert same_direction_p([0.01, 0.02, 0.005], [1e-4, 3e-3, 2e-2]) == pytest.approx(2e-2)  # largest p
    assert same_direction_p([-0.01, -0.02], [1e-6, 1e-9]) == pytest.approx(1e-6)  # worse on every seed
    # significant on every seed, but one seed the other way: no same-direction difference
    assert same_direction_p([0.003, 0.004, -0.006], [1e-8, 1e-9, 1e-8]) == 1.0
    assert same_direction_p([0.0], [1.0]) == 1.0
    with pytest.raises(ValueError, match="one p-value per difference"):
        same_direction_p([0.1, 0.2], [0.01])


def test_delong_per_seed_is_delong_on_each_pair_combined():
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.4
    pairs = [(labels, labels + rng.normal(0, s, 300), labels + rng.normal(0, 1.5, 300)) for s in (0.8, 1.0)]
    out = delong_per_seed(pairs)
    each = [delong_test(*pair) for pair in pairs]
    assert out["p"] == pytest.approx([t[2] for t in each])
    assert out["auc_diff"] == pytest.approx([t[0] - t[1] for t in each]) and all(d > 0 for d in out["auc_diff"])
    assert out["p_every_seed"] == pytest.approx(max(t[2] for t in each))
    same = delong_per_seed([(labels, pairs[0][1], pairs[0][1])])  # a run against itself
    assert same["p"] == [1.0] and same["auc_diff"] == [0.0] and same["p_every_seed"] == 1.0
    assert delong_per_seed([])["p_every_seed"] is None
