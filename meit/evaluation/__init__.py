"""Evaluation: report metrics (MEIT protocol), clinical finding accuracy, predictions I/O.

Attributes are imported lazily so that ``import meit.evaluation`` stays cheap (no NLTK, no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "compute_metrics": "meit.evaluation.metrics",
    "clinical_scores": "meit.evaluation.clinical",
    "extract_findings": "meit.evaluation.clinical",
    "read_predictions": "meit.evaluation.io",
    "write_predictions": "meit.evaluation.io",
    "PredictionRecord": "meit.evaluation.io",
    "ensure_wordnet": "meit.evaluation.wordnet",
    "meit_tokenize": "meit.evaluation.tokenize",
    "meteor_tokenize": "meit.evaluation.tokenize",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'meit.evaluation' has no attribute {name!r}")
