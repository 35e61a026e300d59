"""A report as a list of checkable statements: the clinical extractor's findings plus the numbers it states.

Findings come from :mod:`meit.findings` exactly as the clinical metrics read them (``extract_findings`` for
what is affirmed, ``find_mentions`` for the words and for negated mentions such as "no ST elevation"), so a
verdict and a clinical score never disagree about what a report says. Stated numbers (rate, PR, QRS, QT,
QTc, QRS axis) and the leads named with an ST change are read here from the same normalised text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meit.findings import FINDINGS, Mention, extract_findings, find_mentions, normalise

#: stated quantities and their units; each is checked against the measurement of the same name
NUMBERS: dict[str, str] = {
    "heart_rate": "bpm", "pr_ms": "ms", "qrs_ms": "ms", "qt_ms": "ms", "qtc_ms": "ms", "axis_deg": "degrees",
}
#: a stated number outside these ranges is not a value of that quantity (a date, a dose, a typo)
_PLAUSIBLE: dict[str, tuple[float, float]] = {
    "heart_rate": (20, 300), "pr_ms": (60, 500), "qrs_ms": (40, 250), "qt_ms": (150, 750), "qtc_ms": (200, 750),
    "axis_deg": (-180, 180),
}

_MS = r"(?P<v>\d{1,3}(?:\.\d+)?)(?:\s*(?P<unit>ms|msec|s|sec)\b)?"
_OF = r"(?:\s+(?:of|is|was|at|=))?\s*:?\s*(?:approximately |about |around |~ ?)?"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("heart_rate", re.compile(
        r"\b(?P<kind>atrial |ventricular |heart |mean |average )?rate" + _OF + r"(?P<v>\d{2,3})\b(?!\s*(?:ms|mv|%|deg))"
        r"|\b(?P<v2>\d{2,3})\s*(?:bpm\b|beats? (?:per|a|/) ?min(?:ute)?\b|beats?/min\b|/ ?min\b|per minute\b)")),
    ("pr_ms", re.compile(r"\bpr(?:\s+interval)?" + _OF + r"\(?" + _MS)),
    ("qrs_ms", re.compile(r"\bqrs(?:\s+(?:duration|width|interval))?" + _OF + r"\(?" + _MS
                          + r"|\bqrs complex(?:es)?\s*\((?P<v2>\d{2,3})\s*ms\)")),
    ("qt_qtc", re.compile(r"\bqt\s*/\s*qtc" + _OF + r"(?P<v>\d{3})\s*/\s*(?P<v2>\d{3})")),
    ("qtc_ms", re.compile(r"\bqtc(?:\s+interval)?" + _OF + _MS)),
    ("qt_ms", re.compile(r"\bqt(?:\s+interval)?(?!\s*/)" + _OF + _MS + r"(?!\s*/)")),
    ("axis_deg", re.compile(r"\baxis(?:\s+deviation)?" + _OF + r"\(?\s*(?P<v>[+-]?\d{1,3})\s*(?:degrees?|deg)?\b")),
)

_LEAD = r"(?:iii|ii|i|avr|avl|avf|v[1-6])"
_LEAD_TOKEN = re.compile(rf"(?<![a-z0-9])(?P<a>{_LEAD})(?:\s*(?:-|to)\s*(?P<b>{_LEAD}))?(?![a-z0-9])")
_CANONICAL = {"i": "I", "ii": "II", "iii": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF",
              **{f"v{k}": f"V{k}" for k in range(1, 7)}}
_ORDER = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: territories named instead of leads
TERRITORIES: dict[str, tuple[str, ...]] = {
    "anteroseptal": ("V1", "V2", "V3", "V4"), "septal": ("V1", "V2"),
    "anterolateral": ("I", "aVL", "V3", "V4", "V5", "V6"),
    "inferolateral": ("II", "III", "aVF", "V5", "V6"), "anterior": ("V1", "V2", "V3", "V4"),
    "inferior": ("II", "III", "aVF"), "high lateral": ("I", "aVL"), "lateral": ("I", "aVL", "V5", "V6"),
}
_SENTENCE_END = re.compile(r"[;\n]|\.(?!\d)")


@dataclass(frozen=True)
class Statement:
    """One thing a report says: a finding (affirmed or ``negated``) or a stated number (``value``). An
    ``inferred`` finding has no words of its own: the extractor derived it (a rate class from a stated rate or
    from "sinus rhythm", left axis deviation from LAFB), and ``text`` is what it was derived from."""

    text: str
    finding: str
    negated: bool = False
    value: float | None = None
    leads: tuple[str, ...] = ()
    start: int = 0
    inferred: bool = False

    @property
    def is_number(self) -> bool:
        return self.finding in NUMBERS


def _sentence(norm: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around ``[start, end)`` of the normalised text."""
    before = [m.end() for m in _SENTENCE_END.finditer(norm, 0, start)]
    after = _SENTENCE_END.search(norm, end)
    return (before[-1] if before else 0), (after.start() if after else len(norm))


def named_leads(text: str) -> tuple[str, ...]:
    """Leads named in ``text`` ("v1, v2 and v3", "ii, iii, avf", "v4-v6"), else those of a named territory."""
    found: list[str] = []
    for m in _LEAD_TOKEN.finditer(text):
        first = _CANONICAL[m.group("a")]
        last = _CANONICAL[m.group("b")] if m.group("b") else first
        i, j = _ORDER.index(first), _ORDER.index(last)
        found.extend(_ORDER[min(i, j):max(i, j) + 1])
    if found:
        return tuple(dict.fromkeys(found))
    for name, leads in TERRITORIES.items():
        if re.search(rf"\b{name}", text):
            return leads
    return ()


def _number(name: str, m: re.Match[str]) -> float | None:
    raw = m.group("v") or (m.groupdict().get("v2"))
    if raw is None:
        return None
    value = float(raw)
    unit = m.groupdict().get("unit")
    if unit in ("s", "sec") and value < 2:
        value *= 1000.0
    elif unit in ("s", "sec"):
        return None
    low, high = _PLAUSIBLE[name]
    return value if low <= value <= high else None


def stated_numbers(norm: str) -> list[Statement]:
    """Rate, PR, QRS, QT, QTc and axis values stated in the normalised text (an atrial rate is not a rate)."""
    out: list[Statement] = []
    taken: list[tuple[int, int]] = []
    for name, pattern in _PATTERNS:
        for m in pattern.finditer(norm):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            if name == "qt_qtc":
                for key, group in (("qt_ms", "v"), ("qtc_ms", "v2")):
                    value = float(m.group(group))
                    low, high = _PLAUSIBLE[key]
                    if low <= value <= high:
                        out.append(Statement(m.group(0), key, value=value, start=m.start()))
                taken.append(m.span())
                continue
            if name == "heart_rate" and (m.group("kind") or "").strip() == "atrial":
                continue
            value = _number(name, m)
            if value is not None:
                out.append(Statement(m.group(0).strip(), name, value=value, start=m.start()))
                taken.append(m.span())
    return out


def read_statements(report: str) -> list[Statement]:
    """Every finding the extractor reads in ``report`` (affirmed, then negated) and every stated number,
    in the order they appear; a finding the extractor infers (a rate class from a stated rate, an axis from
    LAFB) is a statement too, worded by what it was inferred from."""
    norm = normalise(report)
    mentions = find_mentions(report)
    numbers = stated_numbers(norm)
    affirmed = extract_findings(report)
    out: list[Statement] = []
    for finding in sorted(affirmed):
        mention = next((m for m in mentions if finding in m.findings and not m.negated), None)
        if mention is not None:
            text, start = mention.text, mention.start
        else:
            text, start = _inferred_from(finding, mentions, numbers)
        leads = ()
        if finding in ("st_elevation", "st_depression") and mention is not None:
            a, b = _sentence(norm, mention.start, mention.end)
            leads = named_leads(norm[a:b])
        out.append(Statement(text, finding, start=start, leads=leads, inferred=mention is None))
    negated_seen: set[str] = set()
    for mention in mentions:
        if not mention.negated:
            continue
        for finding in mention.findings:
            if finding in affirmed or finding in negated_seen or finding not in FINDINGS:
                continue
            negated_seen.add(finding)
            end = _sentence(norm, mention.start, mention.end)[1]
            leads = named_leads(norm[mention.end:end]) if finding in ("st_elevation", "st_depression") else ()
            out.append(Statement(mention.text, finding, negated=True, start=mention.start, leads=leads))
    out.extend(numbers)
    return sorted(out, key=lambda s: (s.start, s.is_number, s.finding))


def _inferred_from(finding: str, mentions: list[Mention], numbers: list[Statement]) -> tuple[str, int]:
    """The words a finding without its own mention was inferred from, and where they stand."""
    group = FINDINGS.get(finding, ("", ""))[0]
    source = {"rate": "heart_rate", "axis": "axis_deg"}.get(group)
    stated = next((n for n in numbers if n.finding == source), None)
    if stated is not None:
        return stated.text, stated.start
    implying = {"axis_left": "lafb", "axis_right": "lpfb", "rate_normal": "sinus_rhythm"}.get(finding)
    mention = next((m for m in mentions if implying in m.findings and not m.negated), None)
    if mention is not None:
        return mention.text, mention.start
    return FINDINGS.get(finding, (finding, finding))[1], 0
