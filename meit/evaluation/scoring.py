"""One scoring of (prediction, reference) pairs for `meit eval` and `meit score` alike, so an external
system scored with `meit score` gets exactly the numbers and layout of a model evaluated by meit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def score_reports(predictions: Mapping[str, str], references: Mapping[str, str], *, meteor: bool = True,
                  bertscore: bool = False, clinical: bool = True) -> dict[str, Any]:
    """Corpus-level text metrics, plus clinical finding accuracy: flat ``clinical_micro_*`` /
    ``clinical_macro_*`` numbers and the full table (per finding) under ``clinical``."""
    from meit.evaluation.metrics import compute_metrics

    result: dict[str, Any] = dict(compute_metrics(predictions, references, meteor=meteor, bertscore=bertscore,
                                                  rouge12=True))
    if clinical:
        from meit.evaluation.clinical import clinical_scores

        table = clinical_scores(predictions, references)
        result.update({f"clinical_{k}": v for k, v in table.items() if k.startswith(("micro_", "macro_"))})
        result["clinical"] = table
    return result
