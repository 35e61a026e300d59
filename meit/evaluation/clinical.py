"""Clinical accuracy: findings stated by each report (:mod:`meit.findings`), scored as multi-label P/R/F1.

N-gram metrics reward wording; these scores ask whether the generated report states the same
diagnoses as the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    score_finding_sets,
)


def clinical_scores(predictions: Mapping[str, str], references: Mapping[str, str]) -> dict[str, Any]:
    """Findings of each prediction against those of its reference (ids must match exactly)."""
    from meit.evaluation.metrics import check_pairs

    ids = check_pairs(predictions, references)
    return score_finding_sets(
        (extract_findings(predictions[i]) for i in ids), (extract_findings(references[i]) for i in ids)
    )
