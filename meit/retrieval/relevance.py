"""Who counts as a hit in ECG→report and ECG→ECG retrieval: relevance matrices.

Relevance is decided by text, not by row identity, because ECG reports repeat word for word
(machine statements): ECG→report retrieves among the *distinct* reports and a hit is the query's own
wording; ECG→ECG counts a hit when the retrieved ECG's report states the same set of findings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
