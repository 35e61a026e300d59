"""Report text as the finding extractor reads it: normalised spelling and the language it is written in.

A leaf module beside :mod:`meit.findings`. PTB-XL's reports are German, English or Swedish device and
cardiologist statements, and the file carries encoding damage: umlauts as upper-case letters inside
lower-case words (``verlÄngerung``, ``sÅsom``), ``ue``/``oe``/``ae`` spellings (``ueberdrehter``), ``#`` for
``ü`` (``f#r``) and ``á`` for ``ß`` (``schweiáausbruch``). :func:`normalise` folds all of them to one ASCII
spelling (``ä``→``ae``, ``ö``→``oe``, ``ü``→``ue``, ``ß``→``ss``, ``å``→``a``) so one pattern covers every
variant; :func:`detect_language` says which language a report is in, so scoring can say what it read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

Language = Literal["en", "de", "sv", "unknown"]
LANGUAGES: tuple[Language, ...] = ("en", "de", "sv", "unknown")

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "å": "a", "æ": "ae", "ø": "oe"})
_DAMAGED_UE = re.compile(r"(?<=[a-z])#|#(?=[a-z])")  # "f#r", "#bergang": '#' stood for 'ü'
_DAMAGED_SZ = re.compile(r"(?<=[a-z])á(?=[a-z])")  # "schweiáausbruch": 'á' stood for 'ß'


def fold(text: str) -> str:
    """Lowercase, repair PTB-XL's encoding damage and fold umlauts and accents to ASCII letters."""
    t = text.lower()
    t = _DAMAGED_SZ.sub("ß", t)
    t = _DAMAGED_UE.sub("ü", t)
    t = t.translate(_FOLD)
    if not t.isascii():  # é → e and the like; other characters stay as they are
        t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    return t


def normalise(text: str) -> str:
    """Fold the text (:func:`fold`) and unify spelling variants so that one pattern covers them."""
    t = fold(text).replace("\u2212", "-").replace("\u2013", "-").replace("\u00b0", " degrees")
    t = re.sub(r"\ba[- ]v\b", "av", t)
    t = re.sub(r"\bs-t\b", "st", t)
    t = re.sub(r"\bst\.t\b", "st-t", t)  # "nonspecific anterior st.t changes"
    t = re.sub(r"\b1st\b", "first", t)
    t = re.sub(r"\b2nd\b", "second", t)
    t = re.sub(r"\b3rd\b", "third", t)
    t = re.sub(r"\b(first|second|third)-degree\b", r"\1 degree", t)
    t = re.sub(r"\b(isch|an|h)ae", r"\1e", t)  # ischaemia, anaemia, haemi-; German ischämie → ischemie
    t = t.replace("hemi-block", "hemiblock").replace("non-specific", "nonspecific")
    return re.sub(r"[ \t]+", " ", t)


# Words (folded spelling) that occur in one language's reports and not in the others'. Findings words
# count as much as function words: PTB-XL's device statements are mostly findings.
_MARKERS: dict[Language, str] = {
    "de": r"sinus ?rhythmus|normales|sonst|links ?typ|rechts ?typ|lagetyp|steil(?:typ|lage)|indiff\w*|"
          r"ueberdrehter|wahrscheinlich|moeglich|unspez\w*|abnormales|verdacht|nicht|kein\w*|auszuschlie\w*|"
          r"\w+schenkelblock|myokardschad\w*|\w*verlaengerung|vorhof\w*|periphere|niederspannung|"
          r"\w*hypertrophie|\w*senkung|\w*hebung|unvollstaendiger|\w*leitungsstoerung|grades|"
          r"extrasystole|supraventrikulaere|ventrikulaere|intraventrikulaere[rn]?|inferiorer|anteriorer|"
          r"septaler|lateraler|anterolateraler|anteroseptaler|posteriorer|alter|unbest|unbestaetigter|"
          r"bericht|und|oder|mit|bei|der|die|das|unter|nach|jetzt|ueber|fuer|auf|von|pathologisch\w*|"
          r"ischemie|linksbelastung|\w*ueberlastung|grenzbefund|ableitungen|veraenderung\w*|\w*kardie|\w*rhythmus",
    "sv": r"sinus ?rytm|sinus ?arytmi|normalt|eljest|vaenster\w*|hoeger\w*|el-?axel|avvikande|foerlopp|"
          r"sasom|vid|eller|och|med|ej|inte|inget|inga|ingen|utan|boer|oevervaegas|\w*skaenkelblock|"
          r"\w*kammar\w*|\w*foermak\w*|myokardskad\w*|myokardaffektion|\w*saenkning|\w*foeraendring\w*|"
          r"laga|amplituder|amplitudkrit\w*|extremitetsavledningarna|sannolikt|moejligen|alder|aeldre|"
          r"bestaem\w*|ospecifik\w*|inkomplett|extraslag|extrasystoli\w*|supraventrikulaer\w*|"
          r"ventrikulaer\w*|hypertrofi|ischemi|\w*belastning|patologisk\w*|fraemre|bakre|uteslutas|jmf|"
          r"faersk|oefoeraendrat|\w*kardi|impulsutbredning|hoeg|\w*rytm",
    "en": r"rhythm|the|and|with|of|is|are|or|no|not|left|right|axis|deviation|bundle|branch|"
          r"ventricular|atrial|hypertrophy|enlargement|possible|probable|consistent|consider|abnormality|"
          r"segments?|waves?|elevat\w*|depress\w*|inverted|inversion|flat|low|high|voltages?|prolonged|"
          r"interval|infarction|infarct|septal|old|age|undetermined|"
          r"premature|complex(?:es)?|contractions?|beats?|fibrillation|flutter|tachycardia|bradycardia|"
          r"arrhythmia|degree|nonspecific|changes?|pathology|definite|limits?|within|trace|requested|"
          r"criteria|leads?|due|ischemic|ischemia|heart|disease|delay|suggest\w*|borderline|syndrome|only",
}
_MARKER_RES = {lang: re.compile(rf"\b(?:{pattern})\b") for lang, pattern in _MARKERS.items()}
_CHARACTER_HINTS: dict[Language, str] = {"de": "üß", "sv": "å"}


def language_scores(text: str) -> dict[Language, int]:
    """How many marker words of each language the text holds (plus one per telling character)."""
    raw = text.lower()
    folded = normalise(text)
    scores: dict[Language, int] = {lang: len(rx.findall(folded)) for lang, rx in _MARKER_RES.items()}
    for lang, chars in _CHARACTER_HINTS.items():
        scores[lang] += sum(raw.count(c) for c in chars)
    return scores


def detect_language(text: str) -> Language:
    """``"en"``, ``"de"`` or ``"sv"``: the language with the most marker words; ``"unknown"`` when no marker
    occurs or two languages tie (e.g. ``"pacemaker ekg"``)."""
    scores = language_scores(text)
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    return best if top > 0 and top > second else "unknown"


def count_languages(languages: Iterable[str]) -> dict[str, int]:
    """Counts per language code, every code of :data:`LANGUAGES` present (0 when absent)."""
    counts = dict.fromkeys(LANGUAGES, 0)
    for lang in languages:
        counts[lang] = counts.get(lang, 0) + 1
    return counts
