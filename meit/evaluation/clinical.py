"""Clinical accuracy: findings stated by each report (:mod:`meit.findings`), scored as multi-label P/R/F1.

N-gram metrics reward wording; these scores ask whether the generated report states the same
diagnoses as the reference. They mean something only where the extractor can read the references: a
reference set in which many reports yield no finding at all (a language or phrasing it does not read)
makes every model score alike, so that share is recorded with the scores and warned about.
"""

from __future__ import annotations

import logging
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
    read_report,
    score_finding_sets,
)
from meit.findings_text import count_languages

log = logging.getLogger(__name__)

#: Share of references without any finding read from which scoring warns that its clinical scores say little.
EMPTY_REFERENCES_WARNING = 0.2


def reference_coverage(references: Iterable[str]) -> dict[str, Any]:
    """How many references yield no finding at all, and the languages the references are read as."""
    readings = [read_report(text) for text in references]
    empty = sum(not reading.findings for reading in readings)
    return {
        "references_without_findings": empty / len(readings) if readings else 0.0,
        "n_references_without_findings": empty,
        "reference_languages": count_languages(reading.language for reading in readings),
    }


def coverage_warning(coverage: Mapping[str, Any], threshold: float = EMPTY_REFERENCES_WARNING) -> str | None:
    """The warning for a reference set whose share without findings reaches ``threshold``, else None."""
    share = coverage["references_without_findings"]
    if share < threshold:
        return None
    languages = ", ".join(f"{k} {v}" for k, v in coverage["reference_languages"].items() if v)
    return (f"{coverage['n_references_without_findings']} references ({share:.0%}) state no finding the extractor "
            f"reads (reference languages: {languages}); clinical scores describe the rest only, and a model "
            f"writing nothing readable loses nothing on those")


def clinical_scores(predictions: Mapping[str, str], references: Mapping[str, str]) -> dict[str, Any]:
    """Findings of each prediction against those of its reference (ids must match exactly), plus the share of
    references without any finding (``references_without_findings``, warned about from
    :data:`EMPTY_REFERENCES_WARNING`), reference language counts and ``warnings``."""
    from meit.evaluation.metrics import check_pairs

    ids = check_pairs(predictions, references)
    table = score_finding_sets(
        (extract_findings(predictions[i]) for i in ids), (extract_findings(references[i]) for i in ids)
    )
    coverage = reference_coverage(references[i] for i in ids)
    warning = coverage_warning(coverage)
    if warning:
        log.warning("clinical scores: %s", warning)
    return {**table, **coverage, "warnings": [warning] if warning else []}
