"""Diagnostic findings read from report text: a leaf module every layer may use.

Evaluation scores reports with it (:mod:`meit.evaluation.clinical`), training reads auxiliary labels
from reference reports with it, retrieval and zero-shot name their classes with it. The extractor
is rule-based and deterministic (no model, no download):

* text is normalised (lowercase, ``a-v`` → ``av``, ``1st`` → ``first``, British spellings);
* each finding has a few regular expressions (MIMIC machine statements, PTB-XL translations and the
  synthetic generator's wording); a finding is present when at least one mention is affirmed;
* a mention is negated (NegEx-style) when a trigger such as ``no``, ``without``, ``absence of`` stands
  at most :data:`NEGATION_WINDOW` words before it in the same clause, or ``absent``/``not seen``/
  ``resolved`` follows it closely; clauses end at ``. ; : ! ?``, commas, line breaks and ``but``/
  ``however``. Hedged statements (``possible``, ``consider``, ``cannot rule out``) count as stated;
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

_BEAT = r"(?:complex(?:es)?|contractions?|beats?|depolari[sz]ations?|extrasystoles?)"
_ECG = r"(?:ecg|ekg|electrocardiogram|tracing)"
_ELEV = r"(?:elevations?|elevated)"
_DEPR = r"(?:depressions?|depressed)"
_ST = r"\bst(?: segments?)?"

#: (findings, pattern). Order does not matter; every pattern is searched everywhere.
_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("sinus_rhythm",), r"(?<!slow )(?<!rapid )(?<!fast )\bsinus rhythm"),
    (("sinus_brady",), r"\bsinus bradycardia|\bslow sinus rhythm"),
    (("sinus_tachy",), r"\bsinus tachycardia|\b(?:rapid|fast) sinus rhythm"),
    (("sinus_arrhythmia",), r"\bsinus arrhythmia"),
    (("afib",), r"\batrial fibrillation|\ba-?fib\b"),
    (("aflutter",), r"\batrial (?:fibrillation ?/ ?)?flutter|\ba-?flutter\b"),
    (("ectopic_atrial",), r"\bectopic atrial (?:rhythm|bradycardia|tachycardia)"),
    (("junctional",), r"\bjunctional (?:rhythm|bradycardia|tachycardia|escape)"),
    (("svt",), r"\bsupraventricular tachycardia|\bsvt\b|\bpsvt\b"),
    (("vt",), r"(?<!supra)\bventricular tachycardia|\bv-?tach\b"),
    (("paced",), r"\bpaced\b|\bpacemaker|\bpacing\b|\bpacer\b"),
    (("avb1",), r"\bfirst degree (?:av |atrioventricular |heart )?block|\bprolonged pr\b"),
    (("avb2",), r"\bsecond degree (?:av |atrioventricular |heart )?block|\bmobitz|\bwenckebach"),
    (("avb3",), r"\bthird degree (?:av |atrioventricular |heart )?block"
                r"|\bcomplete (?:av|atrioventricular|heart) block"),
    (("lbbb",), r"(?<!incomplete )\bleft bundle branch block|(?<!incomplete )\blbbb\b"),
    (("rbbb",), r"(?<!incomplete )\bright bundle branch block|(?<!incomplete )\brbbb\b"),
    (("incomplete_lbbb",), r"\bincomplete (?:left bundle branch block|lbbb\b)|\bilbbb\b"),
    (("incomplete_rbbb",), r"\bincomplete (?:right bundle branch block|rbbb\b)|\birbbb\b"),
    (("lafb",), r"\bleft anterior (?:fascicular block|hemiblock)|\blafb\b|\blahb\b"),
    (("lpfb",), r"\bleft posterior (?:fascicular block|hemiblock)|\blpfb\b|\blphb\b"),
    (("ivcd",), r"\bintraventricular conduction (?:delay|defect|disturbance)|\bivcd\b"),
    (("wpw",), r"\bwolff[- ]parkinson[- ]white|\bwpw\b|\bpre-?excitation"),
    (("long_qt",), r"\b(?:prolonged|long) qtc?\b|\bqtc? (?:interval )?prolongation"),
    (("axis_left",), r"\bleft(?:ward)? axis(?: deviation)?|\blad\b"),
    (("axis_right",), r"\bright(?:ward)? axis(?: deviation)?|\brad\b"),
    (("axis_normal",), r"\bnormal (?:qrs |electrical |frontal (?:plane )?)?axis"),
    (("axis_extreme",), r"\b(?:extreme|northwest|indeterminate) (?:qrs )?axis"),
    (("st_elevation",), rf"{_ST} {_ELEV}|\belevated st\b|\bstemi\b"),
    (("st_depression",), rf"{_ST} {_DEPR}|\bdepressed st\b"),
    (("st_elevation", "st_depression"), rf"{_ST} (?:{_ELEV}|{_DEPR}) ?(?:or|and|/) ?(?:{_ELEV}|{_DEPR})"),
    (("st_t_abnormality",), r"\bst[- ]?t\b|\bst(?: segment)? (?:changes?|abnormalit(?:y|ies))"),
    (("t_inversion",), r"(?<!st-)(?<!st )\bt[- ]?waves? inversions?|\binverted t[- ]?waves?"
                       r"|(?<!st-)(?<!st )\bt[- ]?waves? (?:are |is )?inverted|\bt inversions?"),
    (("t_abnormality",), r"(?<!st-)(?<!st )\bt[- ]?waves? (?:abnormalit(?:y|ies)|changes?|flattening)"
                         r"|\bflat(?:tened)? t[- ]?waves?"),
    (("ischemia",), r"\bischemi[ac]"),
    (("low_voltage",), r"\blow (?:qrs |limb lead |precordial )?voltages?|\blow voltage qrs"),
    (("high_voltage",), r"\bhigh (?:qrs )?voltages?|\bvoltage criteria for"),
    (("lvh",), r"\bleft ventricular hypertrophy|\blvh\b"),
    (("rvh",), r"\bright ventricular hypertrophy|\brvh\b"),
    (("lae",), r"\bleft atrial (?:enlargement|abnormality|overload|hypertrophy)|\blae\b|\bp mitrale"),
    (("rae",), r"\bright atrial (?:enlargement|abnormality|overload|hypertrophy)|\brae\b|\bp pulmonale"),
    (("pvc",), rf"\b(?:premature ventricular|ventricular premature) {_BEAT}|\bpvcs?\b"
               rf"|\bventricular (?:extrasystoles?|ectopy|ectopic beats?)"),
    (("pac",), rf"\b(?:premature (?:atrial|supraventricular)|(?:atrial|supraventricular) premature) {_BEAT}"
               rf"|\bpacs?\b|\b(?:atrial|supraventricular) (?:extrasystoles?|ectopy|ectopic beats?)"),
    (("bigeminy",), r"\bbigemin(?:y|al)"),
    (("normal_ecg",), rf"(?<!otherwise )\bnormal {_ECG}|\bwithin normal limits|\bno abnormality detected"),
    (("borderline_ecg",), rf"\bborderline {_ECG}"),
    (("abnormal_ecg",), rf"\babnormal {_ECG}"),
)

_INFARCT = re.compile(r"\b(?:myocardial )?infarct(?:ion)?s?\b|\bmi\b|\bstemi\b")
_TERRITORIES = (("infarct_inferior", "infer"), ("infarct_anterior", "anter"), ("infarct_septal", "sept"),
                ("infarct_lateral", "later"), ("infarct_posterior", "poster"))

_NEG_PRE = re.compile(r"\b(?:no|not|without|absence of|absent|negative for|free of|ruled out|rules out|no longer)\b")
_PSEUDO_NEG = re.compile(r"\b(?:cannot|can not|can't|could not|not) (?:be )?(?:rule[ds]? out|excluded?)\b"
                         r"|\bno (?:significant )?change\b|\bnot (?:only|necessarily)\b")
_NEG_POST = re.compile(rf"^\W*(?:\w+\W+){{0,{POST_NEGATION_WINDOW}}}?(?:is |are |was |were |has |have )?"
                       r"(?:absent|not (?:seen|present|identified|detected|noted)|no longer (?:present|seen)"
                       r"|resolved|ruled out)\b")
_CLAUSE_END = re.compile(r"[;:!?\n,]|\.(?!\d)|\b(?:but|however|although|though|except)\b")
_WORD = re.compile(r"\w+")

_RATE_NUMBER = re.compile(
    r"\brate(?: of| is| at|:)?\s*(?:approximately |about |around |~ ?)?(\d{2,3})\b"
    r"|\b(\d{2,3})\s*(?:bpm\b|beats? (?:per|a|/) ?min(?:ute)?\b|beats?/min\b|/ ?min\b|per minute\b)"
)
_RATE_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("rate_brady",), r"\bbradycardi[ac]|\bslow (?:ventricular )?response|\bslow sinus rhythm"),
    (("rate_tachy",), r"\btachycardi[ac]|\b(?:rapid|fast) (?:ventricular )?response|\brvr\b"
                      r"|\b(?:rapid|fast) sinus rhythm"),
    (("rate_normal",), r"\bcontrolled (?:ventricular )?response|\bnormal (?:heart |ventricular )?rate"),
)
RATE_CLASSES: frozenset[str] = frozenset({"rate_brady", "rate_normal", "rate_tachy"})
_COMPILED = tuple((labels, re.compile(pattern)) for labels, pattern in _PATTERNS + _RATE_WORDS)
_AXIS_NUMBER = re.compile(r"\baxis(?: of| is| at|:)?\s*([+-]?\d{1,3})\b")


@dataclass(frozen=True)
class Mention:
    """One matched statement: the findings it names, where, and whether it is negated."""

    findings: tuple[str, ...]
    start: int
    end: int
    text: str
    negated: bool


def normalise(text: str) -> str:
    """Lowercase and unify spelling variants so that one pattern covers them."""
    t = text.lower().replace("\u2212", "-").replace("\u2013", "-").replace("\u00b0", " degrees")
    t = re.sub(r"\ba[- ]v\b", "av", t)
    t = re.sub(r"\bs-t\b", "st", t)
    t = re.sub(r"\b1st\b", "first", t)
    t = re.sub(r"\b2nd\b", "second", t)
    t = re.sub(r"\b3rd\b", "third", t)
    t = re.sub(r"\b(first|second|third)-degree\b", r"\1 degree", t)
    t = re.sub(r"\b(isch|an|h)ae", r"\1e", t)  # ischaemia, anaemia, haemi-
    t = t.replace("hemi-block", "hemiblock").replace("non-specific", "nonspecific")
    return re.sub(r"[ \t]+", " ", t)


def _is_negated(text: str, start: int, end: int, clause_start: int, clause_end: int) -> bool:
    before = text[clause_start:start]
    after = text[end:clause_end]
    if _PSEUDO_NEG.search(before) or _PSEUDO_NEG.search(after[:60]):
        return False
    triggers = list(_NEG_PRE.finditer(before))
    if triggers and len(_WORD.findall(before[triggers[-1].end():])) <= NEGATION_WINDOW:
        return True
    return bool(_NEG_POST.search(after))


def find_mentions(text: str) -> list[Mention]:
    """Every finding mention in ``text`` (normalised), with its negation status, in text order."""
    norm = normalise(text)
    bounds = [m.start() for m in _CLAUSE_END.finditer(norm)]

    def clause(start: int, end: int) -> tuple[int, int]:
        i = bisect.bisect_right(bounds, start - 1)
        j = bisect.bisect_left(bounds, end)
        return (bounds[i - 1] + 1 if i else 0), (bounds[j] if j < len(bounds) else len(norm))

    mentions = []
    for labels, pattern in _COMPILED:
        for m in pattern.finditer(norm):
            c0, c1 = clause(m.start(), m.end())
            mentions.append(Mention(labels, m.start(), m.end(), m.group(0),
                                    _is_negated(norm, m.start(), m.end(), c0, c1)))
    for m in _INFARCT.finditer(norm):
        c0, c1 = clause(m.start(), m.end())
        window = " ".join(_WORD.findall(norm[c0:m.start()])[-5:] + _WORD.findall(norm[m.end():c1])[:5])
        labels = tuple(name for name, root in _TERRITORIES if root in window) or ("infarct",)
        mentions.append(Mention(labels, m.start(), m.end(), m.group(0),
                                _is_negated(norm, m.start(), m.end(), c0, c1)))
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
    """The set of affirmed findings (names of :data:`FINDINGS`) stated in a report.

    Cached: machine-read report sets repeat the same texts many times.
    """
    mentions = find_mentions(text)
    found = {label for m in mentions if not m.negated for label in m.findings}
    if found & {"sinus_brady", "sinus_tachy"}:
        found.discard("sinus_rhythm")  # "slow sinus rhythm (sinus bradycardia)" is one rhythm
    if "lafb" in found:
        found.add("axis_left")
    if "lpfb" in found:
        found.add("axis_right")
    norm = normalise(text)
    if not found & {"axis_left", "axis_right", "axis_normal", "axis_extreme"}:
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
