"""Reports checked against the waveform: each statement supported, contradicted or not checkable.

A layer above :mod:`meit.measure` (it reads the signal only through those measurements) that reads a
report's statements through :mod:`meit.findings`, the same extractor the clinical metrics use. ``meit
verify`` prints one record's verdicts; ``meit eval --verify`` adds corpus figures (:mod:`meit.verify.corpus`).
Tolerances and rules: :mod:`meit.verify.rules` and docs/evaluation.md.
"""

from __future__ import annotations

from meit.verify.report import (
    VERDICTS,
    ReportVerification,
    StatementVerdict,
    Verdict,
    tolerances,
    verify_ecg,
    verify_report,
    verify_statements,
)
from meit.verify.statements import NUMBERS, Statement, read_statements

__all__ = [
    "NUMBERS",
    "VERDICTS",
    "ReportVerification",
    "Statement",
    "StatementVerdict",
    "Verdict",
    "read_statements",
    "tolerances",
    "verify_ecg",
    "verify_report",
    "verify_statements",
]
