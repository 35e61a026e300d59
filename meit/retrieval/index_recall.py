"""Recall@k of query ECGs against a retrieval index, beside the chance level of the same candidates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from meit.evaluation.ranking import chance_recall_at_k, recall_at_k
from meit.findings import extract_findings
from meit.retrieval.evaluate import embed_dataset
from meit.retrieval.relevance import ecg_to_report_relevance, same_findings_relevance, unique_texts

if TYPE_CHECKING:
    from meit.retrieval.index import RetrievalIndex

# similarity entries scored at once: bounds memory to a few hundred MB on big indexes
_CHUNK_ELEMENTS = 1 << 24


def evaluate_queries(index: RetrievalIndex, model: Any, queries: Any, ks: Sequence[int] = (1, 5, 10), *,
                     batch_size: int = 64, progress: bool = False, exclude_self: bool = True) -> dict[str, Any]:
    """Recall@k of queries (an EcgTextDataset, usually another split) against this index, beside chance.

    ECG→report: a hit is the query's exact report text among the index's distinct reports (queries
    whose report the index lacks cannot hit and are not counted). ECG→ECG: a hit is an indexed case
    whose report states the same non-empty finding set. A query whose id is in the index is removed
    from its own candidates (same split on both sides), and its chance level counts one candidate less;
    pass ``exclude_self=False`` when the queries come from another dataset whose ids merely collide.
    """
    index.check_compatible(model)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    q_emb = embed_dataset(model, queries, batch_size=batch_size, progress=progress).float()
    return evaluate_embeddings(index, q_emb, queries.ids(), queries.reports(), ks, exclude_self=exclude_self)


def evaluate_embeddings(index: RetrievalIndex, q_emb: torch.Tensor, q_ids: Sequence[str],
                        q_reports: Sequence[str], ks: Sequence[int], *, exclude_self: bool = True) -> dict[str, Any]:
    """:func:`evaluate_queries` on query embeddings already computed (exposed for tests and custom encoders)."""
    ks = sorted({int(k) for k in ks})
    q_findings = [extract_findings(r) for r in q_reports]
    # same-findings relevance on the distinct finding sets only, then expanded by index (no Q × N Python loop)
    q_sets, q_which = unique_texts(["\x1f".join(sorted(f)) for f in q_findings])
    c_sets, c_which = unique_texts(["\x1f".join(sorted(f)) for f in index.findings])
    set_relevance = same_findings_relevance([_as_set(s) for s in q_sets], [_as_set(s) for s in c_sets])
    q_set_idx, c_set_idx = torch.tensor(q_which, dtype=torch.long), torch.tensor(c_which, dtype=torch.long)
    self_col = torch.tensor([index.position.get(str(i), -1) if exclude_self else -1 for i in q_ids],
                            dtype=torch.long)

    report_acc, ecg_acc = _Accumulator(ks), _Accumulator(ks)
    n = len(index)
    chunk = max(1, _CHUNK_ELEMENTS // max(n, index.report.shape[0], 1))
    for start in range(0, len(q_reports), chunk):
        stop = min(start + chunk, len(q_reports))
        emb = q_emb[start:stop]
        relevant = ecg_to_report_relevance(q_reports[start:stop], index.distinct)
        report_acc.add(emb @ index.report.t(), relevant, None)
        sim = emb @ index.ecg.t()
        relevant = set_relevance[q_set_idx[start:stop]][:, c_set_idx] if n else torch.zeros(stop - start, 0,
                                                                                           dtype=torch.bool)
        ecg_acc.add(sim, relevant, self_col[start:stop])
    return {
        "index": str(index.root),
        "queries": len(q_reports),
        "ecg_to_report": {"candidates": index.report.shape[0], **report_acc.result()},
        "ecg_to_ecg": {"candidates": n, "self_excluded": int((self_col >= 0).sum()), **ecg_acc.result()},
    }


def _as_set(key: str) -> frozenset[str]:
    return frozenset(key.split("\x1f")) if key else frozenset()


class _Accumulator:
    """Recall@k and chance over query chunks, each weighted by its number of scorable queries."""

    def __init__(self, ks: Sequence[int]) -> None:
        self.ks = list(ks)
        self.counted = 0
        self.recall = dict.fromkeys(self.ks, 0.0)
        self.chance = dict.fromkeys(self.ks, 0.0)

    def _add(self, similarity: torch.Tensor, relevant: torch.Tensor, chance_relevant: torch.Tensor) -> None:
        counted = int(relevant.any(1).sum())
        if counted == 0:
            return
        recall = recall_at_k(similarity, relevant, self.ks)
        chance = chance_recall_at_k(chance_relevant, self.ks)
        for k in self.ks:
            self.recall[k] += recall[k] * counted
            self.chance[k] += chance[k] * counted
        self.counted += counted

    def add(self, similarity: torch.Tensor, relevant: torch.Tensor, self_col: torch.Tensor | None) -> None:
        if self_col is None or not bool((self_col >= 0).any()):
            self._add(similarity, relevant, relevant)
            return
        has_self = self_col >= 0
        # queries that are themselves in the index: drop their own column (score and relevance) entirely
        sim, rel = similarity[has_self].clone(), relevant[has_self].clone()
        keep = torch.ones_like(rel)
        keep[torch.arange(len(rel)), self_col[has_self]] = False
        sim[~keep] = -math.inf
        rel[~keep] = False
        others = rel[keep].reshape(len(rel), -1)  # the N - 1 real candidates, for chance
        self._add(sim, rel, others)
        if bool((~has_self).any()):
            self._add(similarity[~has_self], relevant[~has_self], relevant[~has_self])

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"queries_scored": self.counted}
        for k in self.ks:
            out[f"recall@{k}"] = self.recall[k] / self.counted if self.counted else float("nan")
            out[f"chance@{k}"] = self.chance[k] / self.counted if self.counted else float("nan")
        return out
