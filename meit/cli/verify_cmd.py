"""``meit verify --ecg RECORD --report TEXT|FILE [--json] [--figure PNG]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="check a report's statements against the ECG it describes",
        description="Measure one ECG (beats, rate, rhythm, PR/QRS/QT/QTc, axis, ST at J+60 ms, QRS voltages, "
        "premature beats) and mark each statement of the report (its findings, as the clinical metrics read "
        "them, and its stated numbers) supported, contradicted or not checkable, with the measured value and "
        "where it was read. Rules and tolerances: docs/evaluation.md, 'Verifying reports against the waveform'.",
    )
    parser.add_argument("--ecg", required=True, help="wfdb record path (with or without .hea) or .npy array (mV)")
    parser.add_argument("--fs", type=int, default=None, help="sampling rate of a .npy array")
    parser.add_argument("--report", required=True, metavar="TEXT|FILE",
                        help="the report: a text file, '-' for standard input, or the text itself")
    parser.add_argument("--json", action="store_true",
                        help='print {"statements": [...], "measurements": {...}} instead of a table')
    parser.add_argument("--figure", default=None, metavar="PNG",
                        help="also draw the ECG with each statement's evidence span marked")
    parser.set_defaults(func=run)


def read_report_argument(value: str) -> str:
    """``-`` is standard input, an existing file is read, anything else is the report itself."""
    if value == "-":
        return sys.stdin.read()
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # a long report is not a valid path on some systems
        is_file = False
    return path.read_text(encoding="utf-8") if is_file else value


def run(args: argparse.Namespace) -> int:
    import json

    from meit.errors import ConfigError
    from meit.records import read_ecg_file
    from meit.verify import verify_ecg

    report = read_report_argument(args.report)
    if not report.strip():
        raise ConfigError("--report: the report is empty")
    signal, fs = read_ecg_file(args.ecg, args.fs)
    result = verify_ecg(signal, fs, report)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        print(result.table())
    if args.figure:
        from meit.verify.figure import draw_evidence

        draw_evidence(signal, fs, result, args.figure)
        print(f"wrote {args.figure}", file=sys.stderr)
    return 0
