"""Diagnostic findings read from report text: a leaf module every layer may use.

Evaluation scores reports with it (:mod:`meit.evaluation.clinical`), training reads auxiliary labels
from reference reports with it, retrieval and zero-shot name their classes with it. The extractor
is rule-based and deterministic (no model, no download) and reads English, German and Swedish (the
languages of PTB-XL's reports; :func:`read_report` also says which one a report is in):

* text is normalised (:mod:`meit.findings_text`): lowercase, PTB-XL's encoding damage repaired and
  umlauts folded (``verlÄngerung``, ``f#r``, ``ueberdrehter``), ``a-v`` → ``av``, ``1st`` → ``first``,
  British spellings;
* each finding has a few regular expressions per language (:mod:`meit.findings_lexicon`: MIMIC machine
  statements, PTB-XL's German, English and Swedish reports, the synthetic generator's wording); a finding
  is present when at least one mention is affirmed;
* a mention is negated (NegEx-style) when a trigger such as ``no``, ``without``, ``kein``, ``ohne``,
  ``ej``, ``utan`` stands at most :data:`NEGATION_WINDOW` words before it in the same clause, or
  ``absent``/``not seen``/``nicht nachweisbar`` follows it closely; clauses end at ``. ; : ! ?``, commas,
  line breaks and ``but``/``however``. Hedged statements (``possible``, ``consider``, ``cannot rule out``,
  ``nicht auszuschliessen``, ``kan ej uteslutas``, "this may be due to lv strain or ischaemia") count as stated;
  an explanation ("this is most commonly due to ischaemic heart disease") does not state what it names;
* rate class comes from a stated rate (``72 bpm``, ``rate of 130``), else from rhythm words;
  axis from words, else from a stated QRS axis; fascicular blocks imply their axis deviation.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from meit.findings_lexicon import (
    ENTRIES,
    EXPLANATIONS,
    INFARCT,
    NEGATION_AFTER,
    NEGATION_BEFORE,
    PSEUDO_NEGATIONS,
    RATE_ENTRIES,
    TERRITORIES,
)
from meit.findings_text import Language, detect_language, normalise

__all__ = [
    "FINDINGS", "NEGATION_WINDOW", "POST_NEGATION_WINDOW", "RATE_CLASSES", "Mention", "ReportReading",
    "extract_findings", "find_mentions", "finding_matrix", "normalise", "read_report", "score_finding_sets",
]

#: finding -> (group, description). Group names follow the issue: rhythm, rate, conduction, axis, st,
#: voltage, hypertrophy, ectopy, infarction, summary.
FINDINGS: dict[str, tuple[str, str]] = {
    "sinus_rhythm": ("rhythm", "sinus rhythm (60-100 bpm)"),
    "sinus_brady": ("rhythm", "sinus bradycardia"),
    "sinus_tachy": ("rhythm", "sinus tachycardia"),
    "sinus_arrhythmia": ("rhythm", "sinus arrhythmia"),
    "afib": ("rhythm", "atrial fibrillation"),
    "aflutter": ("rhythm", "atrial flutter"),
    "ectopic_atrial": ("rhythm", "ectopic atrial rhythm"),
    "junctional": ("rhythm", "junctional rhythm"),
    "svt": ("rhythm", "supraventricular tachycardia"),
    "vt": ("rhythm", "ventricular tachycardia"),
    "paced": ("rhythm", "paced rhythm / pacemaker"),
    "rate_brady": ("rate", "ventricular rate < 60 bpm"),
    "rate_normal": ("rate", "ventricular rate 60-100 bpm"),
    "rate_tachy": ("rate", "ventricular rate > 100 bpm"),
    "avb1": ("conduction", "first-degree AV block / prolonged PR"),
    "avb2": ("conduction", "second-degree AV block"),
    "avb3": ("conduction", "third-degree (complete) AV block"),
    "lbbb": ("conduction", "left bundle branch block"),
    "rbbb": ("conduction", "right bundle branch block"),
    "incomplete_lbbb": ("conduction", "incomplete left bundle branch block"),
    "incomplete_rbbb": ("conduction", "incomplete right bundle branch block"),
    "lafb": ("conduction", "left anterior fascicular block"),
    "lpfb": ("conduction", "left posterior fascicular block"),
    "ivcd": ("conduction", "nonspecific intraventricular conduction delay"),
    "wpw": ("conduction", "ventricular pre-excitation (WPW)"),
    "long_qt": ("conduction", "prolonged QT"),
    "axis_left": ("axis", "left axis deviation (< -30 deg)"),
    "axis_right": ("axis", "right axis deviation (> +90 deg)"),
    "axis_normal": ("axis", "normal axis"),
    "axis_extreme": ("axis", "extreme / indeterminate axis"),
    "st_elevation": ("st", "ST elevation"),
    "st_depression": ("st", "ST depression"),
    "st_t_abnormality": ("st", "nonspecific ST-T changes"),
    "t_inversion": ("st", "T-wave inversion"),
    "t_abnormality": ("st", "T-wave abnormality"),
    "ischemia": ("st", "ischemia"),
    "low_voltage": ("voltage", "low QRS voltage"),
    "high_voltage": ("voltage", "high QRS voltage"),
    "lvh": ("hypertrophy", "left ventricular hypertrophy"),
    "rvh": ("hypertrophy", "right ventricular hypertrophy"),
    "lae": ("hypertrophy", "left atrial enlargement"),
    "rae": ("hypertrophy", "right atrial enlargement"),
    "pvc": ("ectopy", "premature ventricular complexes"),
    "pac": ("ectopy", "premature atrial complexes"),
    "bigeminy": ("ectopy", "bigeminy"),
    "infarct": ("infarction", "infarction, territory not stated"),
    "infarct_inferior": ("infarction", "inferior infarction"),
    "infarct_anterior": ("infarction", "anterior infarction"),
    "infarct_septal": ("infarction", "septal infarction"),
    "infarct_lateral": ("infarction", "lateral infarction"),
    "infarct_posterior": ("infarction", "posterior infarction"),
    "normal_ecg": ("summary", "normal ECG"),
    "borderline_ecg": ("summary", "borderline ECG"),
    "abnormal_ecg": ("summary", "abnormal ECG"),
}

#: Words between a negation trigger and the finding it negates, at most.
NEGATION_WINDOW = 6
POST_NEGATION_WINDOW = 4
#: Words either side of an infarction mention searched for its territory.
TERRITORY_WINDOW = 5


def _alternation(patterns: Iterable[str]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)


_COMPILED = tuple((entry.findings, re.compile(_alternation(entry.patterns.values())), entry.hides)
                  for entry in ENTRIES + RATE_ENTRIES)
_INFARCT = re.compile(INFARCT)
_NEG_PRE = re.compile(rf"\b(?:{_alternation(NEGATION_BEFORE.values())})\b")
_PSEUDO_NEG = re.compile(rf"\b(?:{_alternation(PSEUDO_NEGATIONS.values())})\b")
_NEG_POST = re.compile(rf"^\W*(?:\w+\W+){{0,{POST_NEGATION_WINDOW}}}?(?:is |are |was |were |has |have |ist |sind )?"
                       rf"(?:{_alternation(NEGATION_AFTER.values())})\b")
_EXPLANATION = re.compile(EXPLANATIONS)
_CLAUSE_END = re.compile(r"[;:!?\n,]|\.(?!\d)|\b(?:but|however|although|though|except|aber|jedoch|men)\b")
_WORD = re.compile(r"\w+")

_RATE_NUMBER = re.compile(
    r"\brate(?: of| is| at|:)?\s*(?:approximately |about |around |~ ?)?(\d{2,3})\b"
    r"|\b(\d{2,3})\s*(?:bpm\b|beats? (?:per|a|/) ?min(?:ute)?\b|beats?/min\b|/ ?min\b|per minute\b)"
)
RATE_CLASSES: frozenset[str] = frozenset({"rate_brady", "rate_normal", "rate_tachy"})
AXIS_CLASSES: frozenset[str] = frozenset({"axis_left", "axis_right", "axis_normal", "axis_extreme"})
_AXIS_NUMBER = re.compile(r"\baxis(?: of| is| at|:)?\s*([+-]?\d{1,3})\b")


@dataclass(frozen=True)
class Mention:
    """One matched statement: the findings it names, where, and whether it is negated (or only explains)."""

    findings: tuple[str, ...]
    start: int
    end: int
    text: str
    negated: bool


@dataclass(frozen=True)
class ReportReading:
    """What the extractor read in one report: its affirmed findings and the language it took it for."""

    findings: frozenset[str]
    language: Language


class _Negation:
    """Negation of mentions in one normalised text; pseudo-negation spans are found once per text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pseudo = [(m.start(), m.end()) for m in _PSEUDO_NEG.finditer(text)]

    def _in_pseudo(self, pos: int) -> bool:
        return any(s <= pos < e for s, e in self.pseudo)

    def __call__(self, start: int, end: int, clause_start: int, clause_end: int) -> bool:
        text = self.text
        for rx in (_NEG_PRE, _EXPLANATION):
            triggers = [m for m in rx.finditer(text, clause_start, start) if not self._in_pseudo(m.start())]
            if triggers and len(_WORD.findall(text, triggers[-1].end(), start)) <= NEGATION_WINDOW:
                return True
        after = text[end:clause_end]
        if _PSEUDO_NEG.search(after[:60]):  # "cannot be ruled out", "nicht ausgeschlossen"
            return False
        return bool(_NEG_POST.search(after))


def _territories(words_in: list[str], before: list[str], after: list[str]) -> tuple[str, ...]:
    """Infarct territories named in the mention itself ("hinterwandinfarkt") or the words before it, else
    in the words after it ("infarkt posterior")."""
    for window in (words_in + before, after):
        text = " ".join(window)
        found = tuple(name for name, roots in TERRITORIES if any(root in text for root in roots))
        if found:
            return found
    return ()


def find_mentions(text: str) -> list[Mention]:
    """Every finding mention in ``text`` (normalised), with its negation status, in text order."""
    return _mentions(normalise(text))


def _mentions(norm: str) -> list[Mention]:
    bounds = [m.start() for m in _CLAUSE_END.finditer(norm)]
    negated = _Negation(norm)

    def clause(start: int, end: int) -> tuple[int, int]:
        i = bisect.bisect_right(bounds, start - 1)
        j = bisect.bisect_left(bounds, end)
        return (bounds[i - 1] + 1 if i else 0), (bounds[j] if j < len(bounds) else len(norm))

    mentions: list[Mention] = []
    hiding: list[tuple[int, int, tuple[str, ...]]] = []
    for labels, pattern, hides in _COMPILED:
        for m in pattern.finditer(norm):
            c0, c1 = clause(m.start(), m.end())
            mentions.append(Mention(labels, m.start(), m.end(), m.group(0), negated(m.start(), m.end(), c0, c1)))
            if hides:
                hiding.append((m.start(), m.end(), hides))
    if hiding:  # "voltage criteria for LVH" is a voltage finding, not LVH
        mentions = [x for x in mentions if not any(s <= x.start and x.end <= e and set(x.findings) <= set(h)
                                                  for s, e, h in hiding)]
    previous_end = 0
    for m in _INFARCT.finditer(norm):
        c0, c1 = clause(m.start(), m.end())
        before = _WORD.findall(norm, max(c0, previous_end), m.start())[-TERRITORY_WINDOW:]
        after = _WORD.findall(norm, m.end(), c1)[:TERRITORY_WINDOW]
        labels = _territories(_WORD.findall(m.group(0)), before, after) or ("infarct",)
        mentions.append(Mention(labels, m.start(), m.end(), m.group(0), negated(m.start(), m.end(), c0, c1)))
        previous_end = m.end()
    mentions.sort(key=lambda x: (x.start, x.end))
    return mentions


def _rate_class(bpm: int) -> str:
    return "rate_brady" if bpm < 60 else "rate_tachy" if bpm > 100 else "rate_normal"


def _axis_class(degrees: int) -> str:
    if -30 <= degrees <= 90:
        return "axis_normal"
    if -90 <= degrees < -30:
        return "axis_left"
    return "axis_right" if 90 < degrees <= 180 else "axis_extreme"


@lru_cache(maxsize=1 << 16)
def extract_findings(text: str) -> frozenset[str]:
    """The set of affirmed findings (names of :data:`FINDINGS`) stated in a report, in any language read.

    Cached: machine-read report sets repeat the same texts many times.
    """
    norm = normalise(text)
    found = {label for m in _mentions(norm) if not m.negated for label in m.findings}
    if found & {"sinus_brady", "sinus_tachy"}:
        found.discard("sinus_rhythm")  # "slow sinus rhythm (sinus bradycardia)" is one rhythm
    if "lafb" in found:
        found.add("axis_left")
    if "lpfb" in found:
        found.add("axis_right")
    if not found & AXIS_CLASSES:
        axis = _AXIS_NUMBER.search(norm)
        if axis:
            found.add(_axis_class(int(axis.group(1))))
    # rate class: a stated rate wins over words (rate words are mentions like any other)
    number = _RATE_NUMBER.search(norm)
    if number:
        found -= RATE_CLASSES
        found.add(_rate_class(int(number.group(1) or number.group(2))))
    elif not found & RATE_CLASSES and "sinus_rhythm" in found:
        found.add("rate_normal")  # sinus rhythm is 60-100 bpm by definition
    return frozenset(found)


@lru_cache(maxsize=1 << 16)
def read_report(text: str) -> ReportReading:
    """The findings of a report and its language (``"en"``, ``"de"``, ``"sv"`` or ``"unknown"``), so that a
    caller can tell a report without findings from one in a language the extractor cannot read."""
    return ReportReading(extract_findings(text), detect_language(text))


def finding_matrix(texts: Iterable[str], labels: Sequence[str]) -> np.ndarray:
    """Multi-hot ``[len(texts), len(labels)]`` (float32) of the findings each text states, e.g. training
    targets for an encoder's findings head read from the reference reports."""
    index = {name: i for i, name in enumerate(labels)}
    rows = [extract_findings(text) for text in texts]
    out = np.zeros((len(rows), len(index)), dtype=np.float32)
    for row, found in enumerate(rows):
        for name in found:
            if name in index:
                out[row, index[name]] = 1.0
    return out


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_finding_sets(
    predicted: Iterable[frozenset[str]], reference: Iterable[frozenset[str]]
) -> dict[str, Any]:
    """Micro / macro precision, recall, F1 and a per-finding table for paired finding sets.

    Macro averages run over findings that occur in the references or the predictions; a finding
    never predicted has precision 0 (and never present, recall 0), as scikit-learn's zero_division=0.
    """
    counts: dict[str, list[int]] = {}
    n = exact = 0
    for pred, ref in zip(predicted, reference, strict=True):
        n += 1
        exact += pred == ref
        for label in pred | ref:
            c = counts.setdefault(label, [0, 0, 0])
            c[0 if label in pred and label in ref else 1 if label in pred else 2] += 1
    table: dict[str, dict[str, Any]] = {}
    for label in sorted(counts, key=lambda k: (list(FINDINGS).index(k) if k in FINDINGS else len(FINDINGS), k)):
        tp, fp, fn = counts[label]
        p, r, f = _prf(tp, fp, fn)
        table[label] = {"group": FINDINGS.get(label, ("other", ""))[0], "tp": tp, "fp": fp, "fn": fn,
                        "support": tp + fn, "precision": p, "recall": r, "f1": f}
    tp, fp, fn = (sum(c[k] for c in counts.values()) for k in range(3))
    micro = _prf(tp, fp, fn)
    k = len(table)
    macro = tuple(sum(row[m] for row in table.values()) / k if k else 0.0 for m in ("precision", "recall", "f1"))
    return {
        "n": n,
        "micro_precision": micro[0], "micro_recall": micro[1], "micro_f1": micro[2],
        "macro_precision": macro[0], "macro_recall": macro[1], "macro_f1": macro[2],
        "exact_match": exact / n if n else 0.0,
        "per_finding": table,
    }
