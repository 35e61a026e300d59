"""Clinical accuracy: findings stated by each report (:mod:`meit.findings`), scored as multi-label P/R/F1.

N-gram metrics reward wording; these scores ask whether the generated report states the same
diagnoses as the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meit.findings import (  # noqa: F401  (re-exported: the extractor's historical home)
    FINDINGS,
    NEGATION_WINDOW,
    POST_NEGATION_WINDOW,
    RATE_CLASSES,
    Mention,
    extract_findings,
    find_mentions,
    normalise,
)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_finding_sets(
    predicted: Iterable[frozenset[str]], reference: Iterable[frozenset[str]]
) -> dict[str, Any]:
    """Micro / macro precision, recall, F1 and a per-finding table for paired finding sets.

    Macro averages run over findings that occur in the references or the predictions; a finding
    never predicted has precision 0 (and never present, recall 0), as scikit-learn's zero_division=0.
    """
    counts: dict[str, list[int]] = {}
    n = exact = 0
    for pred, ref in zip(predicted, reference, strict=True):
        n += 1
        exact += pred == ref
        for label in pred | ref:
            c = counts.setdefault(label, [0, 0, 0])
            c[0 if label in pred and label in ref else 1 if label in pred else 2] += 1
    table: dict[str, dict[str, Any]] = {}
    for label in sorted(counts, key=lambda k: (list(FINDINGS).index(k) if k in FINDINGS else len(FINDINGS), k)):
        tp, fp, fn = counts[label]
        p, r, f = _prf(tp, fp, fn)
        table[label] = {"group": FINDINGS.get(label, ("other", ""))[0], "tp": tp, "fp": fp, "fn": fn,
                        "support": tp + fn, "precision": p, "recall": r, "f1": f}
    tp, fp, fn = (sum(c[k] for c in counts.values()) for k in range(3))
    micro = _prf(tp, fp, fn)
    k = len(table)
    macro = tuple(sum(row[m] for row in table.values()) / k if k else 0.0 for m in ("precision", "recall", "f1"))
    return {
        "n": n,
        "micro_precision": micro[0], "micro_recall": micro[1], "micro_f1": micro[2],
        "macro_precision": macro[0], "macro_recall": macro[1], "macro_f1": macro[2],
        "exact_match": exact / n if n else 0.0,
        "per_finding": table,
    }


def clinical_scores(predictions: Mapping[str, str], references: Mapping[str, str]) -> dict[str, Any]:
    """Findings of each prediction against those of its reference (ids must match exactly)."""
    from meit.evaluation.metrics import check_pairs

    ids = check_pairs(predictions, references)
    return score_finding_sets(
        (extract_findings(predictions[i]) for i in ids), (extract_findings(references[i]) for i in ids)
    )
