"""Multilabel metrics: per-category average precision, mAP, thresholds, co-occurrence.

Used by the EMOTIC trainer. Average precision is scikit-learn's ``average_precision_score``
(the EMOTIC papers' per-category AP): the area under the precision-recall curve as
``sum_n (R_n - R_{n-1}) * P_n`` over distinct score thresholds, no interpolation. Tied scores
form one threshold, so a constant predictor scores the category's prevalence.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

NEVER = 2.0  #: a threshold no probability reaches


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true), np.asarray(scores, np.float64)
    if y_true.shape != scores.shape:
        raise ValueError(f"labels and scores differ in shape: {y_true.shape} vs {scores.shape}")
    if y_true.size and not np.isin(y_true, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y_true.astype(np.int64), scores


def per_category_ap(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AP of every category.

    Args:
        y_true: ``(N, K)`` 0/1 labels.
        scores: ``(N, K)`` scores, higher meaning more likely present.

    Returns:
        float64 ``(K,)`` in [0, 1]; NaN for a category without positives (AP undefined).

    Raises:
        ValueError: shapes differ or labels are not 0/1.
    """
    y, s = _check(y_true, scores)
    out = np.full(y.shape[1], np.nan)
    for k in range(y.shape[1]):
        if y[:, k].any():
            out[k] = average_precision_score(y[:, k], s[:, k])
    return out


def mean_ap(ap: np.ndarray) -> float:
    """Mean of the defined per-category APs (categories without positives left out)."""
    ap = np.asarray(ap, np.float64)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def prior_scores(reference: np.ndarray, n: int) -> np.ndarray:
    """The label-prior predictor: every one of ``n`` samples scores each category with its
    frequency in ``reference`` (``(M, K)`` 0/1). Its mAP is the floor a model must beat."""
    prior = np.asarray(reference, np.float64).mean(axis=0)
    return np.broadcast_to(prior, (n, len(prior))).copy()


def best_f1_thresholds(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per category, the score threshold that maximises F1 on ``(N, K)`` data (predict
    present when ``score >= threshold``). A category without positives gets
    :data:`NEVER` (above any probability)."""
    y, s = _check(y_true, scores)
    out = np.full(y.shape[1], NEVER)
    for k in range(y.shape[1]):
        if not y[:, k].any():
            continue
        precision, recall, thresholds = precision_recall_curve(y[:, k], s[:, k])
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
        out[k] = thresholds[int(np.argmax(f1[:-1]))]  # the last point has no threshold
    return out


def cooccurrence(labels: np.ndarray) -> np.ndarray:
    """``C[i, j]``: samples with both category i and j present; the diagonal is each
    category's count. int64 ``(K, K)`` for ``(N, K)`` 0/1 labels."""
    y = np.asarray(labels).astype(np.int64)
    return y.T @ y


def conditional_cooccurrence(counts: np.ndarray) -> np.ndarray:
    """``P(j | i) = C[i, j] / C[i, i]`` (rows of a category that never occurs are 0)."""
    diag = np.diag(counts).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = counts / diag[:, None]
    return np.nan_to_num(out)


def vad_mae(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Mean absolute error per dimension: float64 ``(3,)`` for ``(N, 3)`` valence, arousal,
    dominance (EMOTIC's 1-10 units)."""
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    if true.shape != pred.shape:
        raise ValueError(f"VAD arrays differ in shape: {true.shape} vs {pred.shape}")
    return np.abs(true - pred).mean(axis=0)
