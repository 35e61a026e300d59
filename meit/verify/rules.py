"""What the measurements say about each finding and stated number, with the tolerances of the verdicts.

Each rule reads a few measurements and says whether the finding is ``present``, ``absent`` or
``borderline``. A class with a clinical boundary (bradycardia below 60 bpm, a bundle branch block from
120 ms, left axis deviation below -30°) is present inside the boundary, absent only beyond it by more than a
margin, and borderline in between, so an error of the measurement never contradicts a report. The margin
of a class is this measurement's own uncertainty (about twice its 95th-percentile error on synthetic
records, ``python -m meit.bench verify``); a stated number gets a wider tolerance, because it is another
measurement of the same quantity with errors of its own. A finding no rule covers, or whose measurements
are missing, is not checkable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from meit.measure import EcgMeasurements
from meit.verify.statements import Statement

State = Literal["present", "absent", "borderline"]

#: stated rate: ±10 % of the stated value; rate classes (60 and 100 bpm): ×/÷ 1.05
RATE_TOLERANCE, RATE_MARGIN = 0.10, 0.05
#: stated PR, QRS and QT: ±20 ms, QTc ±20 ms / √RR (the QT error scaled as Bazett's formula scales it, at least
#: 20 ms); interval classes (PR 200, QRS 120 ms, QTc 450 ms): 10 ms (QTc: 10 ms / √RR)
INTERVAL_TOLERANCE_MS, INTERVAL_MARGIN_MS = 20.0, 10.0
#: stated QRS axis: ±30°; axis classes: 15°
AXIS_TOLERANCE_DEG, AXIS_MARGIN_DEG = 30.0, 15.0
#: ST level at J+60 ms: ±0.05 mV around the 0.1 mV criterion
ST_TOLERANCE_MV = 0.05
ST_CRITERION_MV = 0.10
#: QRS amplitude: ±0.1 mV around the low-voltage criteria (all limb leads < 0.5 mV, all precordial < 1.0 mV)
AMPLITUDE_TOLERANCE_MV = 0.10
LOW_VOLTAGE_LIMB_MV, LOW_VOLTAGE_PRECORDIAL_MV = 0.5, 1.0
#: RR irregularity (median |ΔRR| / median RR): regular below, irregular above (atrial fibrillation)
REGULAR_BELOW, IRREGULAR_ABOVE = 0.05, 0.07
#: a mean initial or terminal QRS force beyond this (mV) points clearly one way
FORCE_MV = 0.05
#: boundaries of the clinical classes (ms, degrees)
PR_LONG_MS, QRS_WIDE_MS, QTC_LONG_MS = 200.0, 120.0, 450.0
AXIS_CLASSES: dict[str, tuple[float, float]] = {
    "axis_normal": (-30.0, 90.0), "axis_left": (-90.0, -30.0), "axis_right": (90.0, 180.0),
    "axis_extreme": (-180.0, -90.0), "lafb": (-90.0, -45.0), "lpfb": (90.0, 180.0),
}

TOLERANCES: dict[str, str] = {
    "heart_rate": f"stated ±{RATE_TOLERANCE:.0%}; rate classes ×/÷ {1 + RATE_MARGIN:g} at 60 and 100 bpm",
    "pr_ms, qrs_ms, qt_ms": f"stated ±{INTERVAL_TOLERANCE_MS:g} ms; "
                            f"classes (PR > 200, QRS ≥ 120 ms) ±{INTERVAL_MARGIN_MS:g} ms",
    "qtc_ms": f"stated ±{INTERVAL_TOLERANCE_MS:g} ms / √RR (s), at least {INTERVAL_TOLERANCE_MS:g} ms; "
              f"QTc > 450 ms ±{INTERVAL_MARGIN_MS:g} ms / √RR",
    "axis_deg": f"stated ±{AXIS_TOLERANCE_DEG:g}° (circular); axis classes ±{AXIS_MARGIN_DEG:g}°",
    "st_j60_mv": f"±{ST_TOLERANCE_MV:g} mV around {ST_CRITERION_MV:g} mV",
    "qrs_amplitude_mv": f"±{AMPLITUDE_TOLERANCE_MV:g} mV around {LOW_VOLTAGE_LIMB_MV:g} (limb) / "
                        f"{LOW_VOLTAGE_PRECORDIAL_MV:g} mV (precordial)",
    "rr_irregularity": f"regular < {REGULAR_BELOW:g}, irregular > {IRREGULAR_ABOVE:g}",
}


@dataclass(frozen=True)
class Reading:
    """A rule's answer: the finding's state (None when it cannot be judged, then ``reason`` says why), the
    values it used, the measurements they came from, the leads it looked at, and the rule in words."""

    state: State | None
    measured: dict[str, float | None]
    sources: tuple[str, ...]
    rule: str
    reason: str = ""
    leads: tuple[str, ...] = field(default_factory=tuple)


def _missing(m: EcgMeasurements, names: tuple[str, ...], rule: str) -> Reading | None:
    """A not-checkable reading naming the first missing measurement, or None when all are there."""
    for name in names:
        if not m[name].ok:
            return Reading(None, {}, names, rule, f"{name}: {m[name].quality}")
    return None


def band(value: float, low: float, high: float, low_margin: float, high_margin: float) -> State:
    """Present in ``[low, high]``, absent beyond it by more than the margin on that side, else borderline."""
    if low <= value <= high:
        return "present"
    if value < low - low_margin or value > high + high_margin:
        return "absent"
    return "borderline"


def combine(*states: State) -> State:
    """All must hold: absent if any is absent, present if all are, else borderline."""
    if "absent" in states:
        return "absent"
    return "present" if all(s == "present" for s in states) else "borderline"


def _rate_class(low: float, high: float) -> Callable[[EcgMeasurements, Statement], Reading]:
    rule = f"rate in [{low:g}, {high:g}] bpm; contradicted beyond ×/÷ {1 + RATE_MARGIN:g}"

    def check(m: EcgMeasurements, _: Statement) -> Reading:
        gap = _missing(m, ("heart_rate",), rule)
        if gap:
            return gap
        rate = float(m["heart_rate"].value)  # type: ignore[arg-type]
        low_margin = low - low / (1 + RATE_MARGIN) if low > 0 else 0.0
        high_margin = high * RATE_MARGIN if math.isfinite(high) else 0.0
        return Reading(band(rate, low, high, low_margin, high_margin), {"heart_rate": rate}, ("heart_rate",), rule)

    return check


def _rhythm(m: EcgMeasurements) -> tuple[State, State, dict[str, float | None]] | None:
    """(sinus, atrial fibrillation) from P-wave presence and RR irregularity; None if neither was measured."""
    p, irr = m["p_wave"].value, m["rr_irregularity"].value
    if p is None and irr is None:
        return None
    irregular = irr is not None and irr > IRREGULAR_ABOVE
    regular = irr is not None and irr < REGULAR_BELOW
    if p == 1.0 or regular:
        af: State = "absent"
    elif p == 0.0 and irregular:
        af = "present"
    else:
        af = "borderline"
    if p == 1.0:
        sinus: State = "present"
    elif p == 0.0 and irregular:
        sinus = "absent"
    else:
        sinus = "borderline"
    return sinus, af, {"p_wave": p, "rr_irregularity": irr}


_RHYTHM_RULE = (f"sinus: P waves before the QRS; atrial fibrillation: no P waves and RR irregularity > "
                f"{IRREGULAR_ABOVE:g} (contradicted by P waves or RR irregularity < {REGULAR_BELOW:g})")


Rule = Callable[[EcgMeasurements, Statement], Reading]


def _sinus(rate: Rule | None) -> Rule:
    def check(m: EcgMeasurements, s: Statement) -> Reading:
        rhythm = _rhythm(m)
        if rhythm is None:
            return Reading(None, {}, ("p_wave", "rr_irregularity"), _RHYTHM_RULE,
                           f"p_wave: {m['p_wave'].quality}; rr_irregularity: {m['rr_irregularity'].quality}")
        sinus, _, measured = rhythm
        if rate is None:
            return Reading(sinus, measured, ("p_wave", "rr_irregularity"), _RHYTHM_RULE)
        by_rate = rate(m, s)
        if by_rate.state is None:
            return Reading(sinus if sinus == "absent" else None, measured, ("p_wave", "rr_irregularity"),
                           _RHYTHM_RULE, by_rate.reason)
        return Reading(combine(sinus, by_rate.state), {**measured, **by_rate.measured},
                       ("p_wave", "rr_irregularity", "heart_rate"), f"{_RHYTHM_RULE}; {by_rate.rule}")

    return check


def _afib(m: EcgMeasurements, _: Statement) -> Reading:
    rhythm = _rhythm(m)
    if rhythm is None:
        return Reading(None, {}, ("p_wave", "rr_irregularity"), _RHYTHM_RULE,
                       f"p_wave: {m['p_wave'].quality}; rr_irregularity: {m['rr_irregularity'].quality}")
    _, af, measured = rhythm
    return Reading(af, measured, ("p_wave", "rr_irregularity"), _RHYTHM_RULE)


def _above(name: str, boundary: float, unit: str) -> Callable[[EcgMeasurements, Statement], Reading]:
    rule = f"{name} > {boundary:g} {unit}; contradicted below {boundary - INTERVAL_MARGIN_MS:g}" + (
        " ms at 60 bpm, the margin scaled by 1/√RR above it" if name == "qtc_ms" else " ms")

    def check(m: EcgMeasurements, _: Statement) -> Reading:
        gap = _missing(m, (name,), rule)
        if gap:
            return gap
        value = float(m[name].value)  # type: ignore[arg-type]
        margin = _qtc_tolerance(m, INTERVAL_MARGIN_MS) if name == "qtc_ms" else INTERVAL_MARGIN_MS
        state = band(value, boundary, math.inf, margin, 0.0)
        return Reading(state, {name: value}, (name,), rule)

    return check


def _force(m: EcgMeasurements, name: str, leads: tuple[str, ...]) -> float | None:
    """Median initial/terminal QRS force over the given leads that were measured."""
    values = sorted(v for k, v in m[name].per_lead.items() if k in leads)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


_BBB_RULE = {
    "lbbb": (f"QRS ≥ {QRS_WIDE_MS:g} ms without septal q waves in I, V5, V6 (initial forces leftward) and without "
             f"an R' in V1; contradicted by QRS < {QRS_WIDE_MS - INTERVAL_MARGIN_MS:g} ms, septal q waves or an R'"),
    "rbbb": (f"QRS ≥ {QRS_WIDE_MS:g} ms with an R' in V1 (terminal forces towards V1); contradicted by QRS < "
             f"{QRS_WIDE_MS - INTERVAL_MARGIN_MS:g} ms or a terminal S in V1"),
}


def _bundle_branch(kind: str) -> Callable[[EcgMeasurements, Statement], Reading]:
    rule = _BBB_RULE[kind]

    def check(m: EcgMeasurements, _: Statement) -> Reading:
        gap = _missing(m, ("qrs_ms",), rule)
        if gap:
            return gap
        qrs = float(m["qrs_ms"].value)  # type: ignore[arg-type]
        width = band(qrs, QRS_WIDE_MS, math.inf, INTERVAL_MARGIN_MS, 0.0)
        measured: dict[str, float | None] = {"qrs_ms": qrs}
        v1_terminal = _force(m, "qrs_terminal_mv", ("V1",)) if m["qrs_terminal_mv"].ok else None
        measured["qrs_terminal_V1_mv"] = v1_terminal
        if kind == "rbbb":
            shape: State = ("borderline" if v1_terminal is None or abs(v1_terminal) <= FORCE_MV
                            else "present" if v1_terminal > 0 else "absent")
            leads: tuple[str, ...] = ("V1",)
        else:
            lateral = _force(m, "qrs_initial_mv", ("I", "V5", "V6")) if m["qrs_initial_mv"].ok else None
            measured["qrs_initial_I_V5_V6_mv"] = lateral
            if (lateral is not None and lateral < -FORCE_MV) or (v1_terminal is not None and v1_terminal > FORCE_MV):
                shape = "absent"
            elif lateral is None or v1_terminal is None:
                shape = "borderline"
            else:
                shape = "present"
            leads = ("I", "V5", "V6", "V1")
        return Reading(combine(width, shape), measured, ("qrs_ms", "qrs_initial_mv", "qrs_terminal_mv"), rule,
                       leads=leads)

    return check


def _circular_distance(angle: float, low: float, high: float) -> float:
    """Degrees from ``angle`` to the arc [low, high] (0 inside)."""
    if low <= angle <= high:
        return 0.0
    return min(abs((angle - low + 180.0) % 360.0 - 180.0), abs((angle - high + 180.0) % 360.0 - 180.0))


def _axis_class(name: str) -> Callable[[EcgMeasurements, Statement], Reading]:
    low, high = AXIS_CLASSES[name]
    rule = f"QRS axis in [{low:g}°, {high:g}°]; contradicted beyond it by more than {AXIS_MARGIN_DEG:g}°"

    def check(m: EcgMeasurements, _: Statement) -> Reading:
        gap = _missing(m, ("axis_deg",), rule)
        if gap:
            return gap
        axis = float(m["axis_deg"].value)  # type: ignore[arg-type]
        distance = _circular_distance(axis, low, high)
        state: State = "present" if distance == 0 else "absent" if distance > AXIS_MARGIN_DEG else "borderline"
        return Reading(state, {"axis_deg": axis}, ("axis_deg",), rule)

    return check


_ST_EXCLUDED = ("aVR",)  # elevation in aVR alone is the reciprocal of lateral depression, not an ST finding


def _st(direction: int) -> Callable[[EcgMeasurements, Statement], Reading]:
    word = "elevation" if direction > 0 else "depression"
    rule = (f"ST {word} ≥ {ST_CRITERION_MV:g} mV at J+60 ms in a lead named (any lead but aVR when none is); "
            f"contradicted when every such lead is below {ST_CRITERION_MV - ST_TOLERANCE_MV:g} mV")

    def check(m: EcgMeasurements, s: Statement) -> Reading:
        gap = _missing(m, ("st_j60_mv",), rule)
        if gap:
            return gap
        levels = m["st_j60_mv"].per_lead
        leads = tuple(lead for lead in (s.leads or tuple(levels)) if lead in levels
                      and (s.leads or lead not in _ST_EXCLUDED))
        if not leads:
            return Reading(None, {}, ("st_j60_mv",), rule, f"no lead of {', '.join(s.leads)} could be measured")
        shift = max(direction * levels[lead] for lead in leads)
        state: State = ("present" if shift >= ST_CRITERION_MV else
                        "absent" if shift < ST_CRITERION_MV - ST_TOLERANCE_MV else "borderline")
        worst = max(leads, key=lambda lead: direction * levels[lead])
        return Reading(state, {f"st_j60_{worst}_mv": levels[worst]}, ("st_j60_mv",), rule, leads=leads)

    return check


def _low_voltage(m: EcgMeasurements, _: Statement) -> Reading:
    rule = (f"all limb leads < {LOW_VOLTAGE_LIMB_MV:g} mV or all precordial < {LOW_VOLTAGE_PRECORDIAL_MV:g} mV "
            f"(QRS peak to peak); contradicted when both groups exceed them by {AMPLITUDE_TOLERANCE_MV:g} mV")
    gap = _missing(m, ("qrs_amplitude_mv",), rule)
    if gap:
        return gap
    detail = m["qrs_amplitude_mv"].detail
    limb, precordial = detail.get("limb_max_mv"), detail.get("precordial_max_mv")
    states = []
    for value, criterion, count in ((limb, LOW_VOLTAGE_LIMB_MV, detail.get("limb_leads", 0)),
                                    (precordial, LOW_VOLTAGE_PRECORDIAL_MV, detail.get("precordial_leads", 0))):
        if value is None or count < 4:  # too few leads of the group to say all of them are low
            states.append("unknown")
        else:
            states.append(band(value, 0.0, criterion, 0.0, AMPLITUDE_TOLERANCE_MV))
    if "present" in states:
        state: State | None = "present"
    elif all(s == "absent" for s in states):
        state = "absent"
    elif "borderline" in states or "absent" in states:
        state = "borderline"
    else:
        return Reading(None, {}, ("qrs_amplitude_mv",), rule, "fewer than 4 leads of each group measured")
    return Reading(state, {"qrs_amplitude_limb_max_mv": limb, "qrs_amplitude_precordial_max_mv": precordial},
                   ("qrs_amplitude_mv",), rule)


def _premature(kind: str) -> Callable[[EcgMeasurements, Statement], Reading]:
    rule = {"pvc": "a premature or ectopic beat of another QRS shape than the dominant one; contradicted when "
                   "no beat is premature or ectopic",
            "pac": "a premature beat of the dominant QRS shape; contradicted when no beat is premature"}[kind]

    def check(m: EcgMeasurements, _: Statement) -> Reading:
        gap = _missing(m, ("premature_beats", "ventricular_premature_beats"), rule)
        if gap:
            return gap
        premature = float(m["premature_beats"].value)  # type: ignore[arg-type]
        ventricular = float(m["ventricular_premature_beats"].value)  # type: ignore[arg-type]
        supraventricular = premature - ventricular
        found = ventricular if kind == "pvc" else supraventricular
        state: State = "present" if found >= 1 else "absent" if premature == 0 else "borderline"
        return Reading(state, {"premature_beats": premature, "ventricular_premature_beats": ventricular},
                       ("premature_beats", "ventricular_premature_beats"), rule)

    return check


def _normal_ecg(m: EcgMeasurements, _: Statement) -> Reading:
    """Normal: nothing clearly abnormal. A summary, so each part is judged with the wider tolerance of a stated
    value (a reader's borderline call is not an error); the rate is left out ("sinus bradycardia, otherwise
    normal" is a usual report)."""
    rule = (f"no clear abnormality: not atrial fibrillation, no ectopic beat, QRS < {QRS_WIDE_MS:g} ms, PR ≤ "
            f"{PR_LONG_MS:g} ms, axis -30° to 90°; contradicted beyond them by more than {INTERVAL_TOLERANCE_MS:g} ms "
            f"or {AXIS_TOLERANCE_DEG:g}°")
    parts: list[tuple[State, dict[str, float | None]]] = []
    rhythm = _rhythm(m)
    if rhythm is not None:
        af = rhythm[1]
        parts.append(({"present": "absent", "absent": "present", "borderline": "borderline"}[af], rhythm[2]))
    for name, high in (("qrs_ms", QRS_WIDE_MS), ("pr_ms", PR_LONG_MS)):
        if m[name].ok:
            value = float(m[name].value)  # type: ignore[arg-type]
            parts.append((band(value, 0.0, high, 0.0, INTERVAL_TOLERANCE_MS), {name: value}))
    if m["axis_deg"].ok:
        axis = float(m["axis_deg"].value)  # type: ignore[arg-type]
        distance = _circular_distance(axis, *AXIS_CLASSES["axis_normal"])
        parts.append(("present" if distance == 0 else "absent" if distance > AXIS_TOLERANCE_DEG else "borderline",
                      {"axis_deg": axis}))
    if m["ventricular_premature_beats"].ok:
        count = float(m["ventricular_premature_beats"].value)  # type: ignore[arg-type]
        parts.append(("present" if count == 0 else "absent", {"ventricular_premature_beats": count}))
    if not parts:
        return Reading(None, {}, (), rule, "nothing was measured")
    measured: dict[str, float | None] = {}
    for _, values in parts:
        measured.update(values)
    return Reading(combine(*(state for state, _ in parts)), measured,
                   ("p_wave", "rr_irregularity", "qrs_ms", "pr_ms", "axis_deg", "ventricular_premature_beats"), rule)


#: finding → rule; findings not listed here are not checkable from these measurements
FINDING_RULES: dict[str, Callable[[EcgMeasurements, Statement], Reading]] = {
    "sinus_rhythm": _sinus(None),
    "sinus_brady": _sinus(_rate_class(0.0, 60.0)),
    "sinus_tachy": _sinus(_rate_class(100.0, math.inf)),
    "afib": _afib,
    "rate_brady": _rate_class(0.0, 60.0),
    "rate_normal": _rate_class(60.0, 100.0),
    "rate_tachy": _rate_class(100.0, math.inf),
    "avb1": _above("pr_ms", PR_LONG_MS, "ms"),
    "long_qt": _above("qtc_ms", QTC_LONG_MS, "ms"),
    "lbbb": _bundle_branch("lbbb"),
    "rbbb": _bundle_branch("rbbb"),
    "lafb": _axis_class("lafb"),
    "lpfb": _axis_class("lpfb"),
    "axis_normal": _axis_class("axis_normal"),
    "axis_left": _axis_class("axis_left"),
    "axis_right": _axis_class("axis_right"),
    "axis_extreme": _axis_class("axis_extreme"),
    "st_elevation": _st(+1),
    "st_depression": _st(-1),
    "low_voltage": _low_voltage,
    "pvc": _premature("pvc"),
    "pac": _premature("pac"),
    "normal_ecg": _normal_ecg,
}


def _qtc_tolerance(m: EcgMeasurements, base: float = INTERVAL_TOLERANCE_MS) -> float:
    """``base`` scaled as Bazett's formula scales a QT error (1/√RR), never below ``base``."""
    rate = m["heart_rate"].value
    if not rate:
        return base
    return max(base, base / math.sqrt(60.0 / rate))


def check_number(m: EcgMeasurements, s: Statement) -> Reading:
    """A stated number against its measurement: present (within tolerance) or absent."""
    name = s.finding
    stated = float(s.value)  # type: ignore[arg-type]
    if name == "heart_rate":
        tolerance = RATE_TOLERANCE * stated
        rule = f"stated rate ±{RATE_TOLERANCE:.0%}"
    elif name == "axis_deg":
        tolerance = AXIS_TOLERANCE_DEG
        rule = f"stated axis ±{AXIS_TOLERANCE_DEG:g}°"
    elif name == "qtc_ms":
        tolerance = _qtc_tolerance(m)
        rule = f"stated QTc ±{tolerance:.0f} ms ({INTERVAL_TOLERANCE_MS:g} ms / √RR)"
    else:
        tolerance = INTERVAL_TOLERANCE_MS
        rule = f"stated {name.removesuffix('_ms').upper()} ±{INTERVAL_TOLERANCE_MS:g} ms"
    gap = _missing(m, (name,), rule)
    if gap:
        return gap
    value = float(m[name].value)  # type: ignore[arg-type]
    error = (value - stated + 180.0) % 360.0 - 180.0 if name == "axis_deg" else value - stated
    state: State = "present" if abs(error) <= tolerance else "absent"
    return Reading(state, {name: value}, (name,), rule)
