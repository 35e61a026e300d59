"""Ranking metrics: recall@k (with the chance level a random ranking gets) and AUROC.

Plain functions of scores and relevance, with no notion of ECGs or reports: retrieval and zero-shot
classification (``meit.retrieval``) and pretraining's validation pass relevance matrices built their way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of queries (rows with at least one relevant candidate) with a relevant candidate in the top k."""
    has_any = relevant.any(dim=1)
    if not bool(has_any.any()):
        return {k: float("nan") for k in ks}
    order = similarity.argsort(dim=1, descending=True)
    hits = relevant.gather(1, order)  # [Q, C] relevance in rank order
    first = torch.where(hits.any(1), hits.float().argmax(1), torch.full_like(has_any, hits.shape[1], dtype=torch.long))
    return {k: float((first[has_any] < k).float().mean()) for k in ks}


def chance_recall_at_k(relevant: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Expected recall@k of a random ranking: ``1 - C(n - r, k) / C(n, k)`` per query, averaged."""
    n = relevant.shape[1]
    counts = [int(r) for r in relevant.sum(1).tolist() if r > 0]
    if not counts:
        return {k: float("nan") for k in ks}
    out = {}
    for k in ks:
        kk = min(k, n)
        out[k] = float(np.mean([1.0 - math.comb(n - r, kk) / math.comb(n, kk) for r in counts]))
    return out


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=int)
    if y.min(initial=1) == y.max(initial=0):
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def _auroc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``scores`` [R, N] against ``labels`` [R, N] (Mann–Whitney U on average ranks, ties
    counted half); NaN for a row with only one class."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    rank_sum = (ranks * labels).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def bootstrap_auroc(scores: np.ndarray, labels: np.ndarray, *, resamples: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> dict[str, object]:
    """Per-column AUROC of ``scores`` [N, C] against 0/1 ``labels`` [N, C], their macro mean, and percentile
    bootstrap intervals (records resampled with replacement, the same resample for every column, so the macro
    interval keeps the columns' correlation).

    Written here rather than with ``scipy.stats.bootstrap`` because small test sets draw resamples in which a rare
    class has no positive: those resamples are left out of that class's interval (the number kept is returned),
    where scipy's would make the whole interval NaN. Columns with one class in the full set score NaN and are
    left out of the macro mean (``scored``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores and labels must both be [records, classes], got {scores.shape} and {labels.shape}")
    n, classes = scores.shape
    point = np.array([auroc(scores[:, j], labels[:, j]) for j in range(classes)])
    scored = ~np.isnan(point)
    out: dict[str, object] = {"auroc": point.tolist(), "scored": scored.tolist(),
                              "macro": float(point[scored].mean()) if scored.any() else float("nan"),
                              "low": [float("nan")] * classes, "high": [float("nan")] * classes,
                              "macro_low": float("nan"), "macro_high": float("nan"), "kept": [0] * classes,
                              "resamples": resamples, "confidence": confidence}
    if resamples <= 0 or n < 2 or not scored.any():
        return out
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    per_class = np.stack([_auroc_rows(scores[index, j], labels[index, j]) for j in range(classes)], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high, kept = [], [], []
    for j in range(classes):
        values = per_class[:, j][~np.isnan(per_class[:, j])] if scored[j] else np.empty(0)
        kept.append(int(values.size))
        low.append(float(np.percentile(values, tail)) if values.size else float("nan"))
        high.append(float(np.percentile(values, 100 - tail)) if values.size else float("nan"))
    # a resample in which no scored class has both outcomes has no macro value (small test sets): left out
    block = per_class[:, scored]
    macro = np.nanmean(block[~np.isnan(block).all(axis=1)], axis=1)
    out.update(low=low, high=high, kept=kept,
               macro_low=float(np.percentile(macro, tail)) if macro.size else float("nan"),
               macro_high=float(np.percentile(macro, 100 - tail)) if macro.size else float("nan"))
    return out
