"""The finding extractor on real PTB-XL text: ``python -m meit.bench ptbxl-text --ptbxl DIR``.

Reads ``ptbxl_database.csv`` and scores the findings :func:`meit.findings.extract_findings` reads in each
``report`` against the findings PTB-XL's cardiologists coded (``scp_codes`` and ``heart_axis``, mapped by
:mod:`meit.findings_scp`): precision, recall and F1 per finding with support, and the macro-F1 over findings
with at least ``--min-support`` positive rows, per language (as :func:`meit.findings_text.detect_language`
reads it) and per split.

* **Splits, per language** (:data:`DEV_RANGES`). Each language has a development range of ``ecg_id``; its
  rows above that range are ``held-out``. German, Swedish and unrecognised reports: patterns written by reading
  rows 1-250 (and the 19 rows copied into ``tests/data/ptbxl_real``), held out 251-500. English: rows 1-250
  hold no English report, so English patterns were then written blind and 251-500 was the only measurement;
  English phrasings were since developed on the English rows 251-375, and English 376-500 is the held-out
  set, whose text and per-row results were not looked at while writing them. ``--dev-range en=1-250``
  gives back the first split. Held-out rows read during development (:data:`READ_DURING_DEVELOPMENT`, test
  rows) are scored nowhere. ``--splits dev`` reads and reports development rows only, the way to work on
  patterns without seeing held-out figures; ``--show`` never prints a held-out row, and ``--disagreements LANG``
  lists the development rows whose findings read and coded differ.
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
* ``--extractor-file PATH`` scores another extractor (a Python file defining ``extract_findings``), e.g. an
  earlier version from ``git show REV:meit/findings.py``. ``findings_text.py`` and ``findings_lexicon.py`` lying
  next to that file stand in for :mod:`meit.findings_text` and :mod:`meit.findings_lexicon` while it loads, so a
  version built on those modules is scored with its own words. The language of each row, and so its split,
  stays the current detector's.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from meit.errors import DataError
from meit.findings import extract_findings, score_finding_sets
from meit.findings_scp import AXIS_FINDINGS, SCP_SCORABLE, parse_scp_codes, scp_findings
from meit.findings_text import detect_language
from meit.tables import format_table

#: heart_axis codes whose English-sense meaning depends on the reporting site (see the module docstring).
SITE_DEPENDENT_AXIS: frozenset[str] = frozenset({"LAD", "AXL"})
#: ecg_ids above the first development range (1-250) that were read anyway: test rows, scored nowhere when
#: their language's split holds them out.
READ_DURING_DEVELOPMENT: frozenset[int] = frozenset({257, 258, 260, 293, 310})
#: Language -> (first, last) ``ecg_id`` whose report text was read while writing that language's patterns;
#: the language's rows above ``last`` are held out (see the module docstring). English 1-250 holds no row.
DEV_RANGES: dict[str, tuple[int, int]] = {"de": (1, 250), "sv": (1, 250), "unknown": (1, 250), "en": (1, 375)}
SPLITS: tuple[str, ...] = ("dev", "held-out")
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


def split_of(row: Row, dev_ranges: Mapping[str, tuple[int, int]] = DEV_RANGES) -> str | None:
    """``dev``, ``held-out`` or None (before the dev range, or a held-out id read during development)."""
    first, last = dev_ranges[row.language]
    if first <= row.ecg_id <= last:
        return "dev"
    if row.ecg_id < first or row.ecg_id in READ_DURING_DEVELOPMENT:
        return None
    return "held-out"


def parse_dev_ranges(specs: Iterable[str]) -> dict[str, tuple[int, int]]:
    """:data:`DEV_RANGES` with ``LANG=FIRST-LAST`` overrides (``en=1-250`` restores the first split)."""
    ranges = dict(DEV_RANGES)
    for spec in specs:
        match = re.fullmatch(r"\s*(\w+)\s*=\s*(\d+)\s*-\s*(\d+)\s*", spec)
        if not match or match.group(1) not in ranges or int(match.group(2)) > int(match.group(3)):
            raise ValueError(f"--dev-range {spec!r}: want LANG=FIRST-LAST, LANG one of {', '.join(ranges)}")
        ranges[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return ranges


def describe_splits(dev_ranges: Mapping[str, tuple[int, int]]) -> str:
    """One line naming each language's development and held-out ``ecg_id`` ranges."""
    return "; ".join(f"{lang} dev {a}-{b}, held-out > {b}" for lang, (a, b) in dev_ranges.items())


def axis_scored(row: Row, axis_everywhere: bool = False) -> bool:
    """Whether the row's axis findings are compared: it has a ``heart_axis`` whose meaning is known."""
    if row.axis_code is None:
        return False
    return axis_everywhere or not (row.language == "en" and row.axis_code in SITE_DEPENDENT_AXIS)


def scored(found: Iterable[str], row: Row, axis_everywhere: bool = False) -> frozenset[str]:
    """The findings that can be compared with PTB-XL's labels on this row."""
    keep = SCP_SCORABLE if axis_scored(row, axis_everywhere) else SCP_SCORABLE - AXIS_FINDINGS
    return frozenset(found) & keep


def evaluate(rows: Sequence[Row], extractor: Extractor, min_support: int = 5, axis_everywhere: bool = False,
             dev_ranges: Mapping[str, tuple[int, int]] = DEV_RANGES,
             splits: Sequence[str] = SPLITS) -> dict[str, Any]:
    """Scores per split and language (``all`` included): macro-F1 over findings with ``min_support``
    positive rows, micro-F1, the per-finding table, and how many reports gave no scorable finding.

    Only the rows of ``splits`` are read, so a development run never reads a held-out report."""
    chosen_rows = [row for row in rows if split_of(row, dev_ranges) in splits]
    read = {row.ecg_id: scored(extractor(row.report), row, axis_everywhere) for row in chosen_rows}
    truth = {row.ecg_id: scored(row.truth, row, axis_everywhere) for row in chosen_rows}
    out: dict[str, Any] = {}
    for split in splits:
        in_split = [row for row in chosen_rows if split_of(row, dev_ranges) == split]
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


#: Modules an extractor file may import from meit; files of these names beside it stand in for them.
EXTRACTOR_SIBLINGS: tuple[str, ...] = ("findings_text", "findings_lexicon")


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DataError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def disagreements(rows: Sequence[Row], extractor: Extractor, language: str, axis_everywhere: bool = False,
                  dev_ranges: Mapping[str, tuple[int, int]] = DEV_RANGES) -> list[dict[str, Any]]:
    """The development rows of ``language`` whose findings read and coded differ: what was read beyond the
    codes and what the codes state that was not read. Held-out rows are never looked at."""
    out = []
    for row in rows:
        if row.language != language or split_of(row, dev_ranges) != "dev":
            continue
        read, coded = scored(extractor(row.report), row, axis_everywhere), scored(row.truth, row, axis_everywhere)
        if read != coded:
            out.append({"ecg_id": row.ecg_id, "report": row.report, "read_not_coded": sorted(read - coded),
                        "coded_not_read": sorted(coded - read)})
    return out


def load_extractor(path: Path | None) -> Extractor:
    """:func:`meit.findings.extract_findings`, or ``extract_findings`` of the Python file at ``path``.

    An earlier :mod:`meit.findings` imports its lexicon and text modules from ``meit``; the current ones
    would score it with today's words, so the files of :data:`EXTRACTOR_SIBLINGS` found beside ``path`` are
    put in their place while it loads (and the current modules back afterwards)."""
    if path is None:
        return extract_findings
    tag = f"_bench_extractor_{abs(hash(path.resolve()))}"
    saved: dict[str, ModuleType | None] = {}
    try:
        for name in EXTRACTOR_SIBLINGS:
            sibling = path.parent / f"{name}.py"
            if sibling.is_file() and sibling.resolve() != path.resolve():
                saved[f"meit.{name}"] = sys.modules.get(f"meit.{name}")
                sys.modules[f"meit.{name}"] = _load_module(sibling, f"{tag}_{name}")
        module = _load_module(path, f"{tag}_{path.stem}")
    finally:
        for key, original in saved.items():
            if original is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = original
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
                        help="score extract_findings of this Python file instead (e.g. an earlier version; "
                             "findings_text.py / findings_lexicon.py beside it are used as its modules)")
    parser.add_argument("--axis-everywhere", action="store_true",
                        help="score heart_axis LAD/AXL as normal axis on English reports too (German meaning)")
    parser.add_argument("--dev-range", action="append", default=[], metavar="LANG=FIRST-LAST",
                        help="development ecg_id range of a language; its rows above it are held out "
                             f"(default: {describe_splits(DEV_RANGES)})")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help="comma-separated splits to read and report (default dev,held-out; 'dev' while "
                             "writing patterns, so that held-out figures stay unseen)")
    parser.add_argument("--show", default="", help="comma-separated ecg_ids: print their report and findings "
                                                   "read (not held-out rows: their text stays unread)")
    parser.add_argument("--disagreements", default=None, metavar="LANG",
                        help="print every development row of LANG (en, de, sv) whose read and coded findings differ")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if args.min_support < 1:
        parser.error("--min-support must be at least 1")
    if args.disagreements and args.json:
        parser.error("--disagreements prints text: leave out --json")
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    if not splits or set(splits) - set(SPLITS):
        parser.error(f"--splits: choose from {', '.join(SPLITS)}")
    try:
        dev_ranges = parse_dev_ranges(args.dev_range)
    except ValueError as exc:
        parser.error(str(exc))
    rows = read_rows(args.ptbxl)
    extractor = load_extractor(args.extractor_file)
    results = evaluate(rows, extractor, args.min_support, args.axis_everywhere, dev_ranges, splits)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{len(rows)} rows of {args.ptbxl / 'ptbxl_database.csv'}; extractor: "
              f"{args.extractor_file or 'meit.findings'}; macro-F1 over findings with >= {args.min_support} "
              f"positive rows; axis of English LAD/AXL rows {'scored' if args.axis_everywhere else 'not scored'}"
              f"\nsplits: {describe_splits(dev_ranges)}; reported: {', '.join(splits)}\n")
        print(summary_table(results))
        for key, result in results.items():
            if result["language"] in ("de", "en", "sv") and result["findings_scored"]:
                print(f"\n{key} ({result['rows']} rows)")
                print(finding_table(result, args.min_support))
    if args.disagreements:
        differing = disagreements(rows, extractor, args.disagreements, args.axis_everywhere, dev_ranges)
        print(f"\n{len(differing)} development rows of language {args.disagreements} read otherwise than coded")
        for item in differing:
            print(f"\n{item['ecg_id']} {item['report']}\n  read, not coded: {item['read_not_coded']}"
                  f"\n  coded, not read: {item['coded_not_read']}")
    by_id = {row.ecg_id: row for row in rows}
    for token in filter(None, (t.strip() for t in args.show.split(","))):
        row = by_id.get(int(token)) if token.isdigit() else None
        if row is None or split_of(row, dev_ranges) == "held-out":
            print(f"\n{token}: not shown (unknown id, or held-out)")
            continue
        print(f"\n{row.ecg_id} [{row.language}] {row.report}"
              f"\n  read:  {sorted(scored(extractor(row.report), row, args.axis_everywhere))}"
              f"\n  coded: {sorted(scored(row.truth, row, args.axis_everywhere))}")
    return 0
