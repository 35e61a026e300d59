"""The findings the generator can draw, their PTB-XL SCP codes, and the configurable label mix.

Each finding maps to one real SCP statement of PTB-XL's ``scp_statements.csv`` so a PTB-XL converter
or classifier treats synthetic records exactly like real ones. Axis deviation is also written to the
``heart_axis`` column as PTB-XL does (LAD/ALAD/RAD/ARAD/MID).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from meit.errors import ConfigError


@dataclass(frozen=True)
class Finding:
    """One controllable finding and how PTB-XL codes it."""

    name: str
    scp_code: str
    group: str  # rhythm | conduction | axis | st | voltage | ectopy
    label: str  # short English name used in docs


CATALOGUE: dict[str, Finding] = {
    f.name: f
    for f in (
        Finding("sinus_rhythm", "SR", "rhythm", "sinus rhythm, 60-100 bpm"),
        Finding("sinus_brady", "SBRAD", "rhythm", "sinus bradycardia, < 60 bpm"),
        Finding("sinus_tachy", "STACH", "rhythm", "sinus tachycardia, > 100 bpm"),
        Finding("afib", "AFIB", "rhythm", "atrial fibrillation"),
        Finding("avb1", "1AVB", "conduction", "first-degree AV block, PR > 200 ms"),
        Finding("lbbb", "CLBBB", "conduction", "complete left bundle branch block, QRS >= 120 ms"),
        Finding("rbbb", "CRBBB", "conduction", "complete right bundle branch block, QRS >= 120 ms"),
        Finding("lad", "LAFB", "axis", "left axis deviation (-48 to -85 deg), left anterior fascicular block"),
        Finding("rad", "LPFB", "axis", "right axis deviation (+100 to +150 deg), left posterior fascicular block"),
        Finding("st_elevation", "STE_", "st", "ST elevation in a coronary territory"),
        Finding("st_depression", "STD_", "st", "ST depression in a territory"),
        Finding("low_voltage", "LVOLT", "voltage", "low QRS voltage in limb and precordial leads"),
        Finding("pvc", "PVC", "ectopy", "premature ventricular complexes"),
    )
}

RHYTHMS: tuple[str, ...] = ("sinus_rhythm", "sinus_brady", "sinus_tachy", "afib")
OPTIONAL: tuple[str, ...] = tuple(name for name, f in CATALOGUE.items() if f.group != "rhythm")
SINUS: frozenset[str] = frozenset({"sinus_rhythm", "sinus_brady", "sinus_tachy"})
WIDE_QRS: frozenset[str] = frozenset({"lbbb", "rbbb"})

#: Pairs that cannot coexist in one record (the first listed wins when sampling).
_EXCLUSIVE: tuple[tuple[str, str], ...] = (
    ("lbbb", "rbbb"),
    ("lad", "rad"),
    ("st_elevation", "st_depression"),
    ("lbbb", "lad"),
    ("lbbb", "rad"),
    ("lbbb", "st_elevation"),
    ("lbbb", "st_depression"),
    ("rbbb", "st_elevation"),
    ("rbbb", "st_depression"),
)

#: Rows of PTB-XL's scp_statements.csv for the codes used here (same columns, same values).
SCP_COLUMNS: tuple[str, ...] = (
    "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass",
    "Statement Category", "SCP-ECG Statement Description", "AHA code", "aECG REFID", "CDISC Code",
    "DICOM Code",
)
_CONDUCTION = "Intraventricular and intra-atrial Conduction disturbances"
_IMPULSE = "Statements related to impulse formation (abnormalities)"
_ST_ROOTS = "Basic roots for coding ST-T changes and abnormalities"
SCP_STATEMENTS: dict[str, tuple[object, ...]] = {
    "NORM": ("normal ECG", 1.0, None, None, "NORM", "NORM", "Normal/abnormal", "normal ECG", 1, None,
             None, "F-000B7"),
    "LAFB": ("left anterior fascicular block", 1.0, None, None, "CD", "LAFB/LPFB", _CONDUCTION,
             "left anterior fascicular block", 101, "MDC_ECG_BEAT_BLK_ANT_L_HEMI", "C62267", "D3-33140"),
    "1AVB": ("first degree AV block", 1.0, None, None, "CD", "_AVB",
             "Sinus node dysfunction, atrial and AV-conduction defects", "first degree AV block", None,
             "MDC_ECG_RHY_AV_HEART_BLK_DEG_1", "C111088", None),
    "CRBBB": ("complete right bundle branch block", 1.0, None, None, "CD", "CRBBB", _CONDUCTION,
              "(complete) right bundle branch block", 106, "MDC_ECG_BEAT_RBB_BLK_COMP", "C62270",
              "D3-33110"),
    "CLBBB": ("complete left bundle branch block", 1.0, None, None, "CD", "CLBBB", _CONDUCTION,
              "(complete) left bundle branch block", 104, "MDC_ECG_BEAT_LBB_BLK_COMP", "C62269",
              "D3-33120 or 122752"),
    "LPFB": ("left posterior fascicular block", 1.0, None, None, "CD", "LAFB/LPFB", _CONDUCTION,
             "left posterior fascicular block", 102, "MDC_ECG_BEAT_BLK_POS_L_HEMI", "C62268", "D3-33150"),
    "PVC": ("ventricular premature complex", None, 1.0, None, None, None,
            "Statements related to ectopic rhythm abnormalities", "ventricular premature complex (beat)",
            60, "MDC_ECG_BEAT_V_P_C", None, None),
    "STD_": ("non-specific ST depression", None, 1.0, None, None, None, _ST_ROOTS,
             "non-specific ST depression", 502, None, None, "F-38278"),
    "LVOLT": ("low QRS voltages in the frontal and horizontal leads", None, 1.0, None, None, None,
              "Other QRS morphology descriptive statements",
              "low QRS voltages in the frontal and horizontal leads", None, None, None, None),
    "STE_": ("non-specific ST elevation", None, 1.0, None, None, None, _ST_ROOTS,
             "non-specific ST elevation", 501, "MDC_ECG_RHY_STELVATION", None, "F-38277"),
    "SR": ("sinus rhythm", None, None, 1.0, None, None, _IMPULSE, "sinus rhythm", 20,
           "MDC_ECG_RHY_SINUS_RHY", None, None),
    "AFIB": ("atrial fibrillation", None, None, 1.0, None, None, _IMPULSE, "atrial fibrillation", 50,
             "MDC_ECG_RHY_ATR_FIB", None, "D3-31520"),
    "STACH": ("sinus tachycardia", None, None, 1.0, None, None, _IMPULSE, "sinus tachycardia", 21,
              "MDC_ECG_RHY_SINUS_TACHY", None, None),
    "SBRAD": ("sinus bradycardia", None, None, 1.0, None, None, _IMPULSE, "sinus bradycardia", 22,
              "MDC_ECG_RHY_SINUS_BRADY", None, None),
}


def _default_rhythm_weights() -> dict[str, float]:
    return {"sinus_rhythm": 0.55, "sinus_brady": 0.15, "sinus_tachy": 0.15, "afib": 0.15}


@dataclass(frozen=True)
class LabelMix:
    """How often each finding is drawn.

    A record is entirely normal (sinus rhythm 60-100 bpm, nothing else: code NORM) with probability
    ``normal``, exactly. Otherwise its rhythm is drawn from ``rhythm`` (weights, normalised) and every
    other finding independently with its own probability; incompatible pairs (e.g. LBBB with RBBB, ST
    elevation with depression) keep the first in catalogue order, first-degree AV block needs a sinus
    rhythm, and a draw with nothing abnormal is drawn again. So the per-finding probabilities apply
    to abnormal records and are slightly raised by that redraw.
    """

    normal: float = 0.35
    rhythm: Mapping[str, float] = field(default_factory=_default_rhythm_weights)
    avb1: float = 0.15
    lbbb: float = 0.10
    rbbb: float = 0.10
    lad: float = 0.12
    rad: float = 0.06
    st_elevation: float = 0.08
    st_depression: float = 0.10
    low_voltage: float = 0.08
    pvc: float = 0.12

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "rhythm":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"label mix: {f.name}={value!r} must be a probability in [0, 1]")
        unknown = set(self.rhythm) - set(RHYTHMS)
        if unknown:
            raise ConfigError(f"label mix: unknown rhythm(s) {sorted(unknown)}; expected some of {RHYTHMS}")
        weights = [float(w) for w in self.rhythm.values()]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"label mix: rhythm weights {dict(self.rhythm)} must be >= 0 with a positive sum")

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["rhythm"] = dict(self.rhythm)
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> LabelMix:
        """Defaults overridden by ``values``; rhythm weights may be given flat (``afib=0.3``)."""
        known = {f.name for f in fields(cls)}
        rhythm = _default_rhythm_weights()
        kwargs: dict[str, object] = {}
        for key, value in values.items():
            if key == "rhythm":
                if not isinstance(value, Mapping):
                    raise ConfigError("label mix: 'rhythm' must map rhythm names to weights")
                rhythm.update({str(k): _number(k, v) for k, v in value.items()})
            elif key in RHYTHMS:
                rhythm[key] = _number(key, value)
            elif key in known:
                kwargs[key] = _number(key, value)
            else:
                raise ConfigError(
                    f"label mix: unknown key {key!r}; expected one of {sorted(known | set(RHYTHMS))}"
                )
        return replace(cls(), rhythm=rhythm, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, text: str) -> LabelMix:
        """From a JSON file path, a JSON object, or ``key=value,key=value``."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_mapping(_load_json(text, "inline JSON"))
        path = Path(text)
        if path.suffix == ".json" or path.is_file():
            if not path.is_file():
                raise ConfigError(f"label mix file not found: {path}")
            return cls.from_mapping(_load_json(path.read_text(), str(path)))
        values: dict[str, object] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"label mix: {item!r} is not key=value")
            values[key.strip()] = value.strip()
        return cls.from_mapping(values)


def _number(key: object, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"label mix: {key}={value!r} is not a number") from None


def _load_json(text: str, where: str) -> dict[str, object]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"label mix ({where}) is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"label mix ({where}) must be a JSON object")
    return data


def sample_findings(rng: np.random.Generator, mix: LabelMix) -> tuple[str, ...]:
    """Draw one record's findings (rhythm first, then catalogue order).

    ``mix.normal`` is exactly the share of normal records: an abnormal draw that comes out empty
    (sinus rhythm 60-100 and nothing else) is drawn again, up to 100 times.
    """
    if rng.random() < mix.normal:
        return ("sinus_rhythm",)
    names = list(mix.rhythm)
    weights = np.array([float(mix.rhythm[k]) for k in names])
    weights /= weights.sum()
    probabilities = np.array([getattr(mix, name) for name in OPTIONAL])
    findings: tuple[str, ...] = ("sinus_rhythm",)
    for _ in range(100):
        rhythm = names[int(rng.choice(len(names), p=weights))]
        chosen = np.asarray(OPTIONAL)[rng.random(len(OPTIONAL)) < probabilities]
        findings = resolve((rhythm, *chosen.tolist()))
        if findings != ("sinus_rhythm",):
            break
    return findings


def resolve(findings: tuple[str, ...]) -> tuple[str, ...]:
    """Drop findings that conflict with an earlier one (sampling only; users get errors instead)."""
    kept: list[str] = []
    for name in findings:
        if name == "avb1" and findings[0] not in SINUS:
            continue
        if any((other, name) in _EXCLUSIVE for other in kept):
            continue
        kept.append(name)
    return tuple(kept)


def validate_findings(findings: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Check a user-given finding list; returns it rhythm-first in catalogue order."""
    unknown = [f for f in findings if f not in CATALOGUE]
    if unknown:
        raise ConfigError(f"unknown finding(s) {unknown}; known: {sorted(CATALOGUE)}")
    rhythms = [f for f in findings if f in RHYTHMS]
    if len(rhythms) > 1:
        raise ConfigError(f"a record has one rhythm, got {rhythms}")
    rhythm = rhythms[0] if rhythms else "sinus_rhythm"
    rest = [name for name in OPTIONAL if name in findings]
    for a, b in _EXCLUSIVE:
        if a in rest and b in rest:
            raise ConfigError(f"findings {a!r} and {b!r} cannot be combined in one record")
    if "avb1" in rest and rhythm not in SINUS:
        raise ConfigError("first-degree AV block (avb1) needs a sinus rhythm")
    return (rhythm, *rest)


def scp_codes(findings: tuple[str, ...]) -> dict[str, float]:
    """PTB-XL style ``scp_codes``: diagnostic statements at likelihood 100, form/rhythm at 0."""
    codes: dict[str, float] = {}
    if findings == ("sinus_rhythm",):
        codes["NORM"] = 100.0
    for name in findings:
        code = CATALOGUE[name].scp_code
        codes[code] = 100.0 if SCP_STATEMENTS[code][1] == 1.0 else 0.0
    # PTB-XL lists diagnostic statements first
    return dict(sorted(codes.items(), key=lambda kv: (SCP_STATEMENTS[kv[0]][1] != 1.0,)))
