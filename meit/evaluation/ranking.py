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
