"""Metrics and comparisons: AUC and log loss (Sec 4.1.2), Rel.Impr, mean ± std over seeds, and
significance — a paired t-test over seeds and DeLong's test for two correlated AUCs on one test set.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import log_loss, roc_auc_score


def ctr_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """AUC and Log Loss (Sec 4.1.2). AUC is None where the labels hold one class only."""
    labels = np.asarray(labels, dtype=np.float64)
    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    both = 0 < labels.sum() < len(labels)
    return {
        "auc": float(roc_auc_score(labels, probs)) if both else None,
        "logloss": float(log_loss(labels, probs, labels=[0, 1])) if len(labels) else None,
        "n": int(len(labels)),
        "positive_rate": float(labels.mean()) if len(labels) else None,
    }


def rel_impr(auc: float, baseline_auc: float) -> float:
    """Relative AUC improvement as in Tables 2-6: (AUC - AUC_base) / AUC_base."""
    return (auc - baseline_auc) / baseline_auc


def mean_std(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paired_ttest(a, b) -> float:
    """Two-sided p-value of a paired t-test over seeds (a[i] and b[i] share seed i)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b) or len(a) < 2:
        return math.nan
    if np.allclose(a - b, (a - b)[0]):
        return 0.0 if (a - b)[0] != 0 else 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def _midrank(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong_test(labels, probs_a, probs_b) -> tuple[float, float, float]:
    """DeLong et al. (1988) for two correlated ROC AUCs on the same samples, with the fast
    midrank algorithm of Sun & Xu (2014). Returns (auc_a, auc_b, two-sided p-value)."""
    labels = np.asarray(labels).astype(bool)
    preds = np.stack([np.asarray(probs_a, dtype=np.float64), np.asarray(probs_b, dtype=np.float64)])
    pos, neg = preds[:, labels], preds[:, ~labels]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two positives and two negatives")
    tx = np.stack([_midrank(p) for p in pos])  # ranks within positives
    ty = np.stack([_midrank(q) for q in neg])  # ranks within negatives
    tz = np.stack([_midrank(np.concatenate([p, q])) for p, q in zip(pos, neg)])  # ranks over all
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v01 = (tz[:, :m] - tx) / n  # structural components of positives
    v10 = 1.0 - (tz[:, m:] - ty) / m  # of negatives
    cov = np.cov(v01) / m + np.cov(v10) / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if var <= 0:
        return float(aucs[0]), float(aucs[1]), 1.0 if aucs[0] == aucs[1] else 0.0
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    return float(aucs[0]), float(aucs[1]), float(2 * stats.norm.sf(abs(z)))


def same_direction_p(differences, p_values) -> float:
    """One p-value for "A differs from B in the same direction on every seed" from per-seed two-sided
    tests (an intersection-union test, as one-sided tests in the direction of the mean difference,
    doubled): the largest p where every seed's AUC difference has the sign of their mean, 1 as soon
    as one seed goes the other way (its one-sided p is then >= 0.5). So two seeds that each differ
    significantly but in opposite directions do not add up to a significant difference."""
    d, p = np.asarray(differences, dtype=np.float64), np.asarray(p_values, dtype=np.float64)
    if len(d) != len(p) or len(d) == 0:
        raise ValueError("same_direction_p needs one p-value per difference, and at least one")
    direction = np.sign(d.mean())
    if direction == 0 or (np.sign(d) != direction).any():
        return 1.0
    return float(p.max())


def delong_per_seed(pairs) -> dict:
    """DeLong's test on each seed's (labels, probs_a, probs_b), all scored on one test set, and the
    seeds combined by same_direction_p: {"p": per-seed p-values, "auc_diff": per-seed AUC_a - AUC_b,
    "p_every_seed": the combined p, or None without pairs}."""
    tests = [delong_test(labels, a, b) for labels, a, b in pairs]
    ps, diffs = [t[2] for t in tests], [t[0] - t[1] for t in tests]
    return {"p": ps, "auc_diff": diffs, "p_every_seed": same_direction_p(diffs, ps) if tests else None}
