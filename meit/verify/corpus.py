"""Verdicts for a set of reports and their records, and the corpus figures ``meit eval --verify`` reports.

The headline is the share of checkable statements the signal contradicts, overall and per finding. A report
with nothing checkable is counted (``records_nothing_checkable``), not left out, so a model that writes
nothing verifiable cannot look good by it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from meit.errors import DataError
from meit.measure import EcgMeasurements, measure_ecg
from meit.publish import atomic_file
from meit.verify.report import VERDICTS, ReportVerification, tolerances, verify_report

VERDICTS_FILE = "verdicts.jsonl"


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarise(verifications: Mapping[str, ReportVerification]) -> dict[str, Any]:
    """Corpus figures: statement counts per verdict, the contradicted share of checkable statements overall
    and per finding, and how many reports had nothing checkable or at least one contradiction."""
    counts = dict.fromkeys(VERDICTS, 0)
    per_finding: dict[str, dict[str, int]] = {}
    nothing = contradicted_records = 0
    for result in verifications.values():
        if result.checkable == 0:
            nothing += 1
        if result.count("contradicted"):
            contradicted_records += 1
        for v in result.verdicts:
            counts[v.verdict] += 1
            key = ("not " if v.statement.negated else "") + v.statement.finding
            row = per_finding.setdefault(key, dict.fromkeys(VERDICTS, 0))
            row[v.verdict] += 1
    checkable = counts["supported"] + counts["contradicted"]
    n = len(verifications)
    return {
        "n_records": n,
        "records_nothing_checkable": nothing,
        "records_nothing_checkable_share": _share(nothing, n),
        "records_with_contradiction": contradicted_records,
        "records_with_contradiction_share": _share(contradicted_records, n),
        "n_statements": sum(counts.values()),
        "n_checkable": checkable,
        **{f"n_{name}": count for name, count in counts.items()},
        "contradicted_share": _share(counts["contradicted"], checkable),
        "supported_share": _share(counts["supported"], checkable),
        "per_finding": {
            name: {"statements": sum(row.values()), "checkable": row["supported"] + row["contradicted"],
                   "contradicted": row["contradicted"],
                   "contradicted_share": _share(row["contradicted"], row["supported"] + row["contradicted"])}
            for name, row in sorted(per_finding.items())
        },
        "tolerances": tolerances(),
    }


def verify_corpus(
    reports: Mapping[str, str],
    records: Iterable[tuple[str, np.ndarray, int]],
    *,
    out_file: str | Path | None = None,
    cache: MutableMapping[str, EcgMeasurements] | None = None,
) -> dict[str, Any]:
    """Verify ``reports`` (id → text) against ``records`` (id, (12, T) mV signal, fs); returns :func:`summarise`.

    Records without a report are skipped; a report whose record never comes is an error (its verdicts would
    silently be missing). ``out_file`` receives one JSON line per record (verdicts and measured values);
    ``cache`` (id → measurements) lets several passes over the same records measure each only once.
    """
    results: dict[str, ReportVerification] = {}
    for record_id, signal, fs in records:
        if record_id not in reports:
            continue
        measured = cache.get(record_id) if cache is not None else None
        if measured is None:
            measured = measure_ecg(np.asarray(signal), int(fs))
            if cache is not None:
                cache[record_id] = measured
        results[record_id] = verify_report(reports[record_id], measured)
    missing = [k for k in reports if k not in results]
    if missing:
        raise DataError(f"no signal for {len(missing)} report(s) to verify, e.g. id {missing[0]!r}")
    if out_file is not None:
        write_verdicts(out_file, results)
    return summarise(results)


def write_verdicts(path: str | Path, results: Mapping[str, ReportVerification]) -> None:
    """One JSON line per record: ``{"id", "summary", "statements", "measured"}`` (values only, per quantity)."""
    with atomic_file(Path(path)) as handle:
        for record_id, result in results.items():
            line = {"id": record_id, **result.to_json(with_measurements=False),
                    "measured": {name: (None if m.value is None else round(float(m.value), 3))
                                 for name, m in result.measurements.values.items()}}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def describe(figures: Mapping[str, Any]) -> str:
    """One line for a terminal: the contradicted share of checkable statements and the reports behind it."""
    share = figures.get("contradicted_share")
    shown = "–" if share is None else f"{100 * share:.1f} %"
    return (f"verification: {shown} of {figures['n_checkable']} checkable statements contradicted by the signal "
            f"({figures['n_not_checkable']} not checkable); {figures['records_with_contradiction']} of "
            f"{figures['n_records']} reports with a contradiction, {figures['records_nothing_checkable']} with "
            "nothing checkable")
