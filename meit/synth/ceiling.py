"""The best score any model can reach against synthetic references: re-draw each report from its truth.

The generator words every report at random (several phrasings, optional "normal axis" and interval lines,
"abnormal ECG" left out of a third of abnormal reports), so some statements cannot be predicted from the
signal. A second report drawn from the same ground truth is what a perfect reader that writes like the
generator would produce; scored against the references it gives the ceiling of a text metric on that data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from meit.errors import DataError
from meit.synth.reports import compose_report
from meit.synth.writer import TRUTH_COLUMNS

_JSON_TRUTH = ("findings", "st_leads")


def has_truth(columns: Iterable[str]) -> bool:
    """Whether a prepared split kept the generator's ground-truth columns (``meit prep ptbxl`` keeps them)."""
    return set(TRUTH_COLUMNS) <= set(columns)


def truth_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ground truth ``compose_report`` needs, from a prepared row (JSON columns decoded)."""
    missing = [c for c in TRUTH_COLUMNS if c not in row]
    if missing:
        raise DataError(f"record {row.get('id', '?')}: no synthetic ground truth (columns {missing} missing); "
                        "the ceiling needs a dataset made by `meit synth` and prepared with `meit prep ptbxl`")
    truth = dict(row)
    for column in _JSON_TRUTH:
        value = truth[column]
        truth[column] = json.loads(value) if isinstance(value, str) else list(value)
    return truth


def redrawn_reports(rows: Iterable[Mapping[str, Any]], seed: int) -> list[str]:
    """One new report per row, drawn from its ground truth with ``seed``."""
    rng = np.random.default_rng(seed)
    return [compose_report(truth_of(row), rng) for row in rows]  # type: ignore[arg-type]
