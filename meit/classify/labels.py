"""A prepared split's multi-label targets: which labels, which records have them, and why the rest do not.

* ``superclass``: PTB-XL's five diagnostic superclasses from the ``scp_codes`` column
  (:data:`meit.findings_scp.SUPERCLASSES`). A record without any diagnostic statement has no superclass and is
  left out, as in PTB-XL's own benchmarks.
* ``scp-findings``: the findings (:mod:`meit.findings` vocabulary) its SCP codes imply.
* ``report-findings``: the findings the extractor reads in its report: datasets without SCP codes.

A finding label set is chosen on the training split (the findings with at least ``min_positives`` positive
records, in the vocabulary's order) and stored with the model, so every later split is scored on the same labels.
Records that cannot be labelled are counted by reason, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meit.errors import DataError
from meit.findings import FINDINGS, extract_findings
from meit.findings_scp import SUPERCLASSES, parse_scp_codes, scp_findings, scp_superclasses

LABEL_SOURCES: tuple[str, ...] = ("superclass", "scp-findings", "report-findings")


@dataclass
class SplitLabels:
    """Targets of the labelled records of one split: ``rows`` index the split, ``targets`` is ``[len(rows), C]``."""

    names: tuple[str, ...]
    rows: np.ndarray
    targets: np.ndarray
    skipped: Counter = field(default_factory=Counter)

    @property
    def positives(self) -> dict[str, int]:
        return {name: int(self.targets[:, j].sum()) for j, name in enumerate(self.names)}


def _column(split: Any, name: str, source: str, where: str) -> list[Any]:
    if name not in split.column_names:
        raise DataError(f"{where}: labels '{source}' need the column '{name}', which this prepared dataset lacks "
                        f"(it has {', '.join(split.column_names)}); PTB-XL preparations keep it, otherwise use "
                        "data.labels=report-findings")
    return list(split[name])


def record_label_sets(split: Any, source: str, where: str = "split") -> list[frozenset[str] | None]:
    """Each record's set of labels (None: it cannot be labelled; :func:`split_labels` says why)."""
    if source not in LABEL_SOURCES:
        raise DataError(f"labels must be one of {LABEL_SOURCES}, got {source!r}")
    if source == "report-findings":
        return [extract_findings(str(text)) for text in _column(split, "report", source, where)]
    out: list[frozenset[str] | None] = []
    for cell in _column(split, "scp_codes", source, where):
        codes = parse_scp_codes(cell)
        if not codes:
            out.append(None)
            continue
        out.append(scp_superclasses(codes) if source == "superclass" else scp_findings(codes))
    return out


def choose_label_names(sets: list[frozenset[str] | None], source: str, min_positives: int) -> tuple[str, ...]:
    """The label set of a run, from its training records: the five superclasses, or the frequent findings."""
    if source == "superclass":
        return SUPERCLASSES
    counts = Counter(label for labels in sets if labels for label in labels)
    names = tuple(f for f in FINDINGS if counts[f] >= min_positives)
    if not names:
        raise DataError(f"no finding has {min_positives} positive training records (labels '{source}'); "
                        f"counts: {dict(counts.most_common(8)) or 'none'}. Lower data.min_positives")
    return names


def split_labels(split: Any, source: str, names: tuple[str, ...], where: str = "split") -> SplitLabels:
    """The labelled records of ``split`` and their ``[N, C]`` 0/1 targets over ``names``."""
    sets = record_label_sets(split, source, where)
    rows, targets, skipped = [], [], Counter()
    for index, labels in enumerate(sets):
        if labels is None:
            skipped["no readable scp_codes"] += 1
            continue
        if source == "superclass" and not labels:
            skipped["no diagnostic statement (no superclass)"] += 1
            continue
        rows.append(index)
        targets.append([name in labels for name in names])
    if not rows:
        raise DataError(f"{where}: no record could be labelled with '{source}' ({dict(skipped)})")
    return SplitLabels(names=names, rows=np.asarray(rows, dtype=np.int64),
                       targets=np.asarray(targets, dtype=np.float32), skipped=skipped)
