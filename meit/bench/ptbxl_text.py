"""The finding extractor on real PTB-XL text: ``python -m meit.bench ptbxl-text --ptbxl DIR``.

Reads ``ptbxl_database.csv`` and scores the findings :func:`meit.findings.extract_findings` reads in each
``report`` against the findings PTB-XL's cardiologists coded (``scp_codes`` and ``heart_axis``, mapped by
:mod:`meit.findings_scp`): precision, recall and F1 per finding with support, and the macro-F1 over findings
with at least ``--min-support`` positive rows, per language (as :func:`meit.findings_text.detect_language`
reads it) and per split.

* **Splits.** The extractor's patterns were written by reading rows with ``ecg_id`` <= 250 (``dev``) and the
  19 rows copied into ``tests/data/ptbxl_real``; the rest is ``held-out``, never read while writing them, so
  its figures are the honest ones. The five test rows above 250 (:data:`READ_DURING_DEVELOPMENT`) are left
  out of ``held-out``.
* **Scored findings.** Only findings PTB-XL's labels can state (:data:`meit.findings_scp.SCP_SCORABLE`); the
  axis only on rows that have a ``heart_axis`` (an empty cell is not "normal axis"); rate classes are not
  scored (PTB-XL has no rate statement beyond sinus brady-/tachycardia, which are scored as rhythms).
* **Site-dependent axis codes.** ``heart_axis`` LAD (and AXL) is the German "Linkstyp" (-30..+30 deg, a normal
  axis in English usage) on German-site reports, but the English-language reports' "left axis deviation" carries
  the same code, so on an English report the code does not say on which side of -30 deg the axis lies. Axis
  findings of English reports coded LAD or AXL are not scored (``--axis-everywhere`` scores them as normal axis,
  the German meaning, on every row).
* **Annotator notes.** Text from "Edit:" on is cut before reading: those notes spell out SCP codes
  ("Edit: INJIN, IRBBB"), which would score the codes against themselves.
* ``--extractor-file PATH`` scores another extractor (a Python file defining ``extract_findings``), e.g. the
  previous version from ``git show HEAD~1:meit/findings.py``; the language split stays the current one.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meit.errors import DataError
from meit.findings import extract_findings, score_finding_sets
from meit.findings_scp import AXIS_FINDINGS, SCP_SCORABLE, parse_scp_codes, scp_findings
from meit.findings_text import detect_language
from meit.tables import format_table

#: heart_axis codes whose English-sense meaning depends on the reporting site (see the module docstring).
SITE_DEPENDENT_AXIS: frozenset[str] = frozenset({"LAD", "AXL"})
#: ecg_ids above the development range that were read anyway (they are test rows).
READ_DURING_DEVELOPMENT: frozenset[int] = frozenset({257, 258, 260, 293, 310})
DEV_MAX_ID = 250
_EDIT_NOTE = re.compile(r"(?<!\w)edit:", re.IGNORECASE)

Extractor = Callable[[str], frozenset[str]]


@dataclass(frozen=True)
class Row:
    """One PTB-XL row as the benchmark sees it."""

    ecg_id: int
    report: str
    language: str
    truth: frozenset[str]
    axis_code: str | None  # heart_axis, None when empty


def read_rows(root: Path) -> list[Row]:
    """Rows of ``ROOT/ptbxl_database.csv`` with their report (notes cut), language and coded findings."""
    path = root / "ptbxl_database.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found (--ptbxl must be a PTB-XL root holding ptbxl_database.csv)")
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            report = _EDIT_NOTE.split(record.get("report") or "", maxsplit=1)[0].strip()
            axis = (record.get("heart_axis") or "").strip() or None
            rows.append(Row(int(float(record["ecg_id"])), report, detect_language(report),
                            scp_findings(parse_scp_codes(record.get("scp_codes")), axis), axis))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def split_of(ecg_id: int) -> str | None:
    """``dev``, ``held-out`` or None (a held-out id read during development: scored nowhere)."""
    if ecg_id <= DEV_MAX_ID:
        return "dev"
    return None if ecg_id in READ_DURING_DEVELOPMENT else "held-out"


def axis_scored(row: Row, axis_everywhere: bool = False) -> bool:
    """Whether the row's axis findings are compared: it has a ``heart_axis`` whose meaning is known."""
    if row.axis_code is None:
        return False
    return axis_everywhere or not (row.language == "en" and row.axis_code in SITE_DEPENDENT_AXIS)


def scored(found: Iterable[str], row: Row, axis_everywhere: bool = False) -> frozenset[str]:
    """The findings that can be compared with PTB-XL's labels on this row."""
    keep = SCP_SCORABLE if axis_scored(row, axis_everywhere) else SCP_SCORABLE - AXIS_FINDINGS
    return frozenset(found) & keep


def evaluate(rows: Sequence[Row], extractor: Extractor, min_support: int = 5,
             axis_everywhere: bool = False) -> dict[str, Any]:
    """Scores per split and language (``all`` included): macro-F1 over findings with ``min_support``
    positive rows, micro-F1, the per-finding table, and how many reports gave no scorable finding."""
    read = {row.ecg_id: scored(extractor(row.report), row, axis_everywhere) for row in rows}
    truth = {row.ecg_id: scored(row.truth, row, axis_everywhere) for row in rows}
    out: dict[str, Any] = {}
    for split in ("dev", "held-out"):
        in_split = [row for row in rows if split_of(row.ecg_id) == split]
        for language in ("all", "de", "en", "sv", "unknown"):
            chosen = [row for row in in_split if language in ("all", row.language)]
            if not chosen:
                continue
            table = score_finding_sets([read[r.ecg_id] for r in chosen], [truth[r.ecg_id] for r in chosen])
            supported = {k: v for k, v in table["per_finding"].items() if v["support"] >= min_support}
            out[f"{split}/{language}"] = {
                "split": split, "language": language, "rows": len(chosen),
                "rows_without_findings": sum(not read[r.ecg_id] for r in chosen),
                "findings_scored": len(supported),
                "macro_f1": sum(v["f1"] for v in supported.values()) / len(supported) if supported else None,
                "micro_f1": table["micro_f1"], "per_finding": table["per_finding"],
            }
    return out


def load_extractor(path: Path | None) -> Extractor:
    """:func:`meit.findings.extract_findings`, or ``extract_findings`` of the Python file at ``path``."""
    if path is None:
        return extract_findings
    spec = importlib.util.spec_from_file_location(f"_bench_extractor_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise DataError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    if not callable(getattr(module, "extract_findings", None)):
        raise DataError(f"{path}: defines no extract_findings(text)")
    return module.extract_findings


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def summary_table(results: dict[str, Any]) -> str:
    rows = [{**r, "macro": _f(r["macro_f1"]), "micro": _f(r["micro_f1"]),
             "empty": f"{r['rows_without_findings']}/{r['rows']}"} for r in results.values()]
    return format_table(rows, [("split", "split"), ("language", "lang"), ("rows", "rows"),
                               ("findings_scored", "findings (support>=N)"), ("macro", "macro-F1"),
                               ("micro", "micro-F1"), ("empty", "no finding read")])


def finding_table(result: dict[str, Any], min_support: int) -> str:
    rows = [{"finding": name, "support": v["support"], "tp": v["tp"], "fp": v["fp"], "fn": v["fn"],
             "p": _f(v["precision"]), "r": _f(v["recall"]), "f1": _f(v["f1"])}
            for name, v in result["per_finding"].items() if v["support"] >= min_support]
    return format_table(rows, [("finding", "finding"), ("support", "support"), ("tp", "tp"), ("fp", "fp"),
                               ("fn", "fn"), ("p", "P"), ("r", "R"), ("f1", "F1")])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench ptbxl-text", description=__doc__.splitlines()[0])
    parser.add_argument("--ptbxl", required=True, type=Path, help="PTB-XL root holding ptbxl_database.csv")
    parser.add_argument("--min-support", type=int, default=5,
                        help="findings with fewer positive rows are left out of macro-F1 (default 5)")
    parser.add_argument("--extractor-file", type=Path, default=None,
                        help="score extract_findings of this Python file instead (e.g. an earlier version)")
    parser.add_argument("--axis-everywhere", action="store_true",
                        help="score heart_axis LAD/AXL as normal axis on English reports too (German meaning)")
    parser.add_argument("--show", default="", help="comma-separated ecg_ids: print their report and findings "
                                                   "read (dev or test rows only: held-out text stays unread)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if args.min_support < 1:
        parser.error("--min-support must be at least 1")
    rows = read_rows(args.ptbxl)
    extractor = load_extractor(args.extractor_file)
    results = evaluate(rows, extractor, args.min_support, args.axis_everywhere)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{len(rows)} rows of {args.ptbxl / 'ptbxl_database.csv'}; extractor: "
              f"{args.extractor_file or 'meit.findings'}; macro-F1 over findings with >= {args.min_support} "
              f"positive rows; axis of English LAD/AXL rows {'scored' if args.axis_everywhere else 'not scored'}\n")
        print(summary_table(results))
        for key, result in results.items():
            if result["language"] in ("de", "en", "sv") and result["findings_scored"]:
                print(f"\n{key} ({result['rows']} rows)")
                print(finding_table(result, args.min_support))
    by_id = {row.ecg_id: row for row in rows}
    for token in filter(None, (t.strip() for t in args.show.split(","))):
        row = by_id.get(int(token))
        if row is None or split_of(row.ecg_id) == "held-out":
            print(f"\n{token}: not shown (unknown id, or held-out)")
            continue
        print(f"\n{row.ecg_id} [{row.language}] {row.report}"
              f"\n  read:  {sorted(scored(extractor(row.report), row, args.axis_everywhere))}"
              f"\n  coded: {sorted(scored(row.truth, row, args.axis_everywhere))}")
    return 0
