"""Evaluate an ECG–text embedding space on a prepared split: retrieval recall@k and zero-shot AUROC."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from meit.evaluation.ranking import chance_recall_at_k, recall_at_k
from meit.findings import extract_findings
from meit.retrieval.relevance import ecg_to_report_relevance, same_findings_relevance, unique_texts
from meit.retrieval.zeroshot import PromptSet, zero_shot_report


def embed_dataset(model: Any, dataset: Any, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """ECG embeddings ``[N, D]`` of every row of an :class:`~meit.pretrain.data.EcgTextDataset`, batch by batch."""
    parts = []
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, disable=not progress, desc="embed", unit="batch"):
        rows = dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset)))))
        parts.append(model.embed_ecgs(torch.stack([r["ecg"] for r in rows]), batch_size=batch_size))
    return torch.cat(parts) if parts else torch.zeros(0, model.embed_dim)


def _with_chance(recall: dict[int, float], chance: dict[int, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in recall:
        out[f"recall@{k}"] = recall[k]
        out[f"chance@{k}"] = chance[k]
    return out


def retrieval_metrics(model: Any, ecg_emb: torch.Tensor, reports: Sequence[str], ks: Sequence[int],
                      findings: Sequence[frozenset[str]] | None = None, batch_size: int = 64) -> dict[str, Any]:
    """ECG→report among the distinct reports, and ECG→ECG (same stated findings), each beside chance."""
    candidates, _ = unique_texts(reports)
    text_emb = model.embed_texts(candidates, batch_size=batch_size)
    sim = ecg_emb.float() @ text_emb.float().t()
    relevant = ecg_to_report_relevance(reports, candidates)
    to_report = {"candidates": len(candidates), **_with_chance(recall_at_k(sim, relevant, ks),
                                                                chance_recall_at_k(relevant, ks))}
    findings = findings if findings is not None else [extract_findings(r) for r in reports]
    sim_ecg = ecg_emb.float() @ ecg_emb.float().t()
    sim_ecg.fill_diagonal_(-math.inf)
    same = same_findings_relevance(findings, findings, exclude_self=True)
    # the query itself is not a candidate: chance is computed over the other N - 1 ECGs
    same_no_self = same[~torch.eye(len(same), dtype=torch.bool)].reshape(len(same), -1) if len(same) > 1 else same
    to_ecg = {"queries": int(same.any(1).sum()),
              **_with_chance(recall_at_k(sim_ecg, same, ks), chance_recall_at_k(same_no_self, ks))}
    return {"ecg_to_report": to_report, "ecg_to_ecg": to_ecg}


def evaluate_alignment(model: Any, dataset: Any, *, ks: Sequence[int] = (1, 5, 10),
                       prompt_sets: Sequence[PromptSet] = (), min_positives: int = 5, batch_size: int = 64,
                       progress: bool = False) -> dict[str, Any]:
    """Everything ``meit pretrain`` writes to ``metrics.json`` for a split."""
    reports = dataset.reports()
    ecg_emb = embed_dataset(model, dataset, batch_size, progress)
    findings = [extract_findings(r) for r in reports]
    metrics: dict[str, Any] = {"n": len(reports)}
    metrics |= retrieval_metrics(model, ecg_emb, reports, ks, findings, batch_size)
    if prompt_sets:
        report = zero_shot_report(model, ecg_emb, reports, prompt_sets, min_positives)
        metrics["zero_shot"] = report["findings"]
        metrics["zero_shot_macro_auroc"] = report["macro_auroc"]
    return metrics
