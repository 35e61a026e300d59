"""``verify_report``: each statement of a report marked supported, contradicted or not checkable by the signal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from meit.measure import EcgMeasurements, measure_ecg
from meit.tables import format_table
from meit.verify.rules import FINDING_RULES, TOLERANCES, Reading, check_number
from meit.verify.statements import Statement, read_statements

Verdict = Literal["supported", "contradicted", "not_checkable"]
VERDICTS: tuple[Verdict, ...] = ("supported", "contradicted", "not_checkable")


@dataclass(frozen=True)
class StatementVerdict:
    """One statement, its verdict, the measured values behind it and where they were read."""

    statement: Statement
    verdict: Verdict
    measured: dict[str, float | None]
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        s = self.statement
        out: dict[str, Any] = {"text": s.text, "finding": s.finding, "negated": s.negated}
        if s.inferred:
            out["inferred"] = True
        if s.value is not None:
            out["stated"] = s.value
        if s.leads:
            out["leads_stated"] = list(s.leads)
        out.update(verdict=self.verdict, measured={k: _round(v) for k, v in self.measured.items()} or None,
                   evidence=self.evidence)
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


@dataclass(frozen=True)
class ReportVerification:
    """The verdicts of one report against one record's measurements."""

    verdicts: tuple[StatementVerdict, ...]
    measurements: EcgMeasurements

    def count(self, verdict: Verdict) -> int:
        return sum(v.verdict == verdict for v in self.verdicts)

    @property
    def checkable(self) -> int:
        return len(self.verdicts) - self.count("not_checkable")

    def to_json(self, *, with_measurements: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"statements": [v.to_json() for v in self.verdicts],
                               "summary": {name: self.count(name) for name in VERDICTS}}
        if with_measurements:
            out["measurements"] = self.measurements.to_json()
        return out

    def table(self) -> str:
        """A readable table: verdict, statement, finding, what was measured, and from where."""
        rows = []
        for v in self.verdicts:
            measured = ", ".join(f"{k} {_show(val)}" for k, val in v.measured.items()) or v.evidence.get("reason", "")
            where = ", ".join(v.evidence.get("leads", [])[:6])
            if len(v.evidence.get("leads", [])) > 6:
                where += ", …"
            spans = v.evidence.get("spans_s", [])
            if spans:
                where += f" @ {spans[0][0]:.2f}–{spans[0][1]:.2f} s"
            stated = v.statement.text if len(v.statement.text) <= 48 else v.statement.text[:47] + "…"
            rows.append({"verdict": v.verdict, "statement": stated,
                         "finding": ("not " if v.statement.negated else "") + v.statement.finding
                         + (" (inferred)" if v.statement.inferred else ""),
                         "measured": measured, "evidence": where})
        columns = [("verdict", "verdict"), ("statement", "statement"), ("finding", "finding"),
                   ("measured", "measured"), ("evidence", "leads, span")]
        summary = ", ".join(f"{self.count(name)} {name.replace('_', ' ')}" for name in VERDICTS)
        return f"{format_table(rows, columns, left=5)}\n\n{len(self.verdicts)} statements: {summary}"


def _show(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2f}"


def _verdict(reading: Reading, negated: bool, is_number: bool) -> Verdict:
    if reading.state is None:
        return "not_checkable"
    if reading.state == "borderline":
        return "supported"  # within the tolerance of the boundary: the signal does not contradict it
    holds = reading.state == "present"
    if negated and not is_number:
        holds = not holds
    return "supported" if holds else "contradicted"


def _evidence(reading: Reading, m: EcgMeasurements) -> dict[str, Any]:
    leads: list[str] = list(reading.leads)
    spans: list[list[float]] = []
    quality: dict[str, str] = {}
    for name in reading.sources:
        measurement = m[name]
        quality[name] = measurement.quality
        if not reading.leads:
            leads.extend(lead for lead in measurement.leads if lead not in leads)
        spans.extend([round(a, 3), round(b, 3)] for a, b in measurement.spans_s)
    out: dict[str, Any] = {"rule": reading.rule, "leads": leads, "spans_s": spans}
    if reading.reason:
        out["reason"] = reading.reason
    if any(q != "ok" for q in quality.values()):
        out["quality"] = quality
    return out


def verify_statements(statements: list[Statement], m: EcgMeasurements) -> ReportVerification:
    """Verdicts of already-read statements against measurements."""
    verdicts = []
    for s in statements:
        if s.is_number:
            reading = check_number(m, s)
        elif s.finding in FINDING_RULES:
            reading = FINDING_RULES[s.finding](m, s)
        else:
            reading = Reading(None, {}, (), "", "no measurement decides this finding")
        verdicts.append(StatementVerdict(s, _verdict(reading, s.negated, s.is_number), reading.measured,
                                         _evidence(reading, m)))
    return ReportVerification(tuple(verdicts), m)


def verify_report(report: str, measurements: EcgMeasurements) -> ReportVerification:
    """Verdicts for every statement of ``report`` (see :func:`read_statements`) against ``measurements``."""
    return verify_statements(read_statements(report), measurements)


def verify_ecg(signal: np.ndarray, fs: int, report: str) -> ReportVerification:
    """Measure a ``(12, T)`` mV record at ``fs`` Hz and verify ``report`` against it."""
    return verify_report(report, measure_ecg(signal, fs))


def tolerances() -> dict[str, str]:
    """The tolerances the verdicts use, in words (written next to corpus figures)."""
    return dict(TOLERANCES)
