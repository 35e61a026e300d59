"""One scoring of (prediction, reference) pairs for `meit eval` and `meit score` alike, so an external
system scored with `meit score` gets exactly the numbers and layout of a model evaluated by meit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def report_diversity(predictions: Iterable[str]) -> dict[str, float | int]:
    """How many different reports were written: a model that ignores its input writes one report for
    every record, which corpus metrics alone do not show (share = distinct strings / predictions)."""
    texts = list(predictions)
    distinct = len(set(texts))
    return {"distinct_reports": distinct / len(texts) if texts else 0.0, "n_distinct_reports": distinct}


def score_reports(predictions: Mapping[str, str], references: Mapping[str, str], *, meteor: bool = True,
                  bertscore: bool = False, clinical: bool = True) -> dict[str, Any]:
    """Corpus-level text metrics, the share of distinct reports, plus clinical finding accuracy: flat
    ``clinical_micro_*`` / ``clinical_macro_*`` numbers and the full table (per finding) under ``clinical``."""
    from meit.evaluation.metrics import compute_metrics

    result: dict[str, Any] = dict(compute_metrics(predictions, references, meteor=meteor, bertscore=bertscore,
                                                  rouge12=True))
    result.update(report_diversity(predictions.values()))
    if clinical:
        from meit.evaluation.clinical import clinical_scores

        table = clinical_scores(predictions, references)
        result.update({f"clinical_{k}": v for k, v in table.items() if k.startswith(("micro_", "macro_"))})
        result["clinical"] = table
    return result
