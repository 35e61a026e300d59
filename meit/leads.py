"""The canonical 12-lead order and name matching shared by every data source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CANONICAL_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

_BY_KEY = {name.lower(): name for name in CANONICAL_LEADS}


def canonical_lead_name(name: str) -> str | None:
    """Map a source lead name (any case, stray spaces) to its canonical spelling, or None."""
    return _BY_KEY.get(name.strip().lower())


def lead_permutation(source_names: Sequence[str]) -> tuple[list[int | None], list[str]]:
    """For each canonical lead, the index of that lead in ``source_names`` (None when absent).

    Also returns the source names that are not 12-lead names, so callers can reject or report them.
    """
    index: dict[str, int] = {}
    unknown: list[str] = []
    for i, raw in enumerate(source_names):
        canonical = canonical_lead_name(raw)
        if canonical is None or canonical in index:
            unknown.append(raw)
        else:
            index[canonical] = i
    return [index.get(name) for name in CANONICAL_LEADS], unknown


def to_canonical_order(signal: np.ndarray, source_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Reorder a (leads, T) array into canonical order; absent leads are NaN, named in the result."""
    perm, _ = lead_permutation(source_names)
    out = np.full((len(CANONICAL_LEADS), signal.shape[1]), np.nan, dtype=signal.dtype)
    missing: list[str] = []
    for row, src in enumerate(perm):
        if src is None:
            missing.append(CANONICAL_LEADS[row])
        else:
            out[row] = signal[src]
    return out, missing
