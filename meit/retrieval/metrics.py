"""Recall@k for ECG→report and ECG→ECG retrieval, with the chance level beside it, and AUROC.

Relevance is decided by text, not by row identity, because ECG reports repeat word for word
(machine statements): ECG→report retrieves among the *distinct* reports and a hit is the query's own
wording; ECG→ECG counts a hit when the retrieved ECG's report states the same set of findings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def top_k(similarity: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and column indices of the ``k`` best candidates per row (``k`` clipped to the row length)."""
    return similarity.topk(min(k, similarity.shape[1]), dim=1)


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


def unique_texts(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Distinct texts (first-seen order) and, for each input, the index of its text among them."""
    index: dict[str, int] = {}
    which = [index.setdefault(t, len(index)) for t in texts]
    return list(index), which


def ecg_to_report_relevance(query_reports: Sequence[str], candidates: Sequence[str]) -> torch.Tensor:
    position = {t: i for i, t in enumerate(candidates)}
    relevant = torch.zeros(len(query_reports), len(candidates), dtype=torch.bool)
    for row, text in enumerate(query_reports):
        col = position.get(text)
        if col is not None:
            relevant[row, col] = True
    return relevant


def same_findings_relevance(query_findings: Sequence[frozenset[str]],
                            candidate_findings: Sequence[frozenset[str]],
                            exclude_self: bool = False) -> torch.Tensor:
    """``[Q, C]``: the candidate's report states exactly the query's findings (and states some)."""
    relevant = torch.tensor(
        [[bool(q) and q == c for c in candidate_findings] for q in query_findings], dtype=torch.bool
    ).reshape(len(query_findings), len(candidate_findings))
    if exclude_self:
        relevant.fill_diagonal_(False)
    return relevant


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=int)
    if y.min(initial=1) == y.max(initial=0):
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))
