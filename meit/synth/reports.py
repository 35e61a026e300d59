"""English reports composed from a record's ground truth, with varied wording.

Every statement comes from the drawn findings and measured intervals (rate, PR, QRS, QT, axis, ST
leads), and each is said in one of several clinically usual ways, with optional interval lines and
closing statements. A model that writes good reports therefore has to read the signal: the same
sentence is not the right answer for every record, and the numbers differ per record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from meit.synth.record import Truth

_RHYTHM = {
    "sinus_rhythm": (
        "Sinus rhythm, rate {hr} bpm.",
        "Normal sinus rhythm at {hr} beats per minute.",
        "Sinus rhythm with a heart rate of {hr}/min.",
        "Regular sinus rhythm, {hr} bpm.",
        "Sinus rhythm at {hr} bpm.",
    ),
    "sinus_brady": (
        "Sinus bradycardia, rate {hr} bpm.",
        "Sinus bradycardia at {hr} beats per minute.",
        "Slow sinus rhythm (sinus bradycardia), {hr}/min.",
        "Sinus bradycardia with a heart rate of {hr} bpm.",
    ),
    "sinus_tachy": (
        "Sinus tachycardia, rate {hr} bpm.",
        "Sinus tachycardia at {hr} beats per minute.",
        "Rapid sinus rhythm (sinus tachycardia), {hr}/min.",
        "Sinus tachycardia with a heart rate of {hr} bpm.",
    ),
    "afib": (
        "Atrial fibrillation with a ventricular rate of {hr} bpm.",
        "Atrial fibrillation, average ventricular rate {hr}/min.",
        "Irregularly irregular rhythm without P waves: atrial fibrillation, rate {hr} bpm.",
        "Atrial fibrillation at a mean rate of {hr} beats per minute.",
    ),
}
_AF_RATE = {  # appended to the AF sentence by ventricular response
    "rapid": (" Rapid ventricular response.", " Fast ventricular response."),
    "slow": (" Slow ventricular response.",),
}
_FINDING = {
    "avb1": (
        "First degree AV block (PR {pr} ms).",
        "Prolonged PR interval of {pr} ms, consistent with first-degree atrioventricular block.",
        "1st degree AV block, PR {pr} ms.",
        "First-degree AV block.",
    ),
    "lbbb": (
        "Left bundle branch block (QRS {qrs} ms).",
        "Complete left bundle branch block.",
        "Wide QRS complex ({qrs} ms) with left bundle branch block morphology.",
        "LBBB pattern with QRS duration {qrs} ms.",
    ),
    "rbbb": (
        "Right bundle branch block (QRS {qrs} ms).",
        "Complete right bundle branch block.",
        "Wide QRS complex ({qrs} ms) with right bundle branch block morphology, rSR' in V1.",
        "RBBB pattern with QRS duration {qrs} ms.",
    ),
    "lad": (
        "Left axis deviation (QRS axis {axis} degrees), consistent with left anterior fascicular block.",
        "Left anterior fascicular block.",
        "Marked left axis deviation ({axis} degrees).",
        "Left anterior hemiblock with a QRS axis of {axis} degrees.",
    ),
    "rad": (
        "Right axis deviation (QRS axis {axis} degrees).",
        "Right axis deviation, possible left posterior fascicular block.",
        "QRS axis {axis} degrees: right axis deviation.",
        "Left posterior fascicular block pattern with right axis deviation.",
    ),
    "st_elevation": (
        "ST elevation in {leads}.",
        "ST segment elevation in the {territory} leads ({leads}).",
        "{Territory} ST elevation.",
        "ST elevation of up to {st} mV in {leads}.",
    ),
    "st_depression": (
        "ST depression in {leads}.",
        "ST segment depression in the {territory} leads ({leads}).",
        "{Territory} ST depression.",
        "ST depression of up to {st} mV in {leads}.",
    ),
    "low_voltage": (
        "Low QRS voltage in limb and precordial leads.",
        "Low voltage QRS.",
        "Low QRS voltages in the frontal and horizontal leads.",
        "Generalised low QRS voltage.",
    ),
}
_PVC = {
    1: ("One premature ventricular complex.", "A single ventricular premature beat.", "Isolated PVC."),
    2: ("Two premature ventricular complexes.", "Occasional ventricular premature beats.",
        "2 PVCs noted."),
    3: ("Frequent premature ventricular complexes.", "Multiple ventricular premature beats.",
        "3 PVCs noted."),
}
_AXIS_NORMAL = ("Normal axis.", "Normal QRS axis ({axis} degrees).", "QRS axis {axis} degrees, normal.")
_INTERVALS = (
    "PR {pr} ms, QRS {qrs} ms, QT/QTc {qt}/{qtc} ms.",
    "Intervals: PR {pr}, QRS {qrs}, QT {qt}, QTc {qtc} ms.",
    "QRS duration {qrs} ms, QTc {qtc} ms.",
)
_INTERVALS_AF = ("QRS {qrs} ms, QT/QTc {qt}/{qtc} ms.", "QRS duration {qrs} ms, QTc {qtc} ms.")
_NORMAL_END = ("Normal ECG.", "Normal electrocardiogram.", "Within normal limits.", "No abnormality detected.")
_ABNORMAL_END = ("Abnormal ECG.", "Abnormal electrocardiogram.", "")


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _lead_list(leads: Sequence[str]) -> str:
    names = list(leads)
    if len(names) <= 1:
        return f"lead {names[0]}" if names else "several leads"
    return "leads " + ", ".join(names[:-1]) + " and " + names[-1]


def compose_report(truth: Truth, rng: np.random.Generator) -> str:
    """One report for ``truth`` (the ground-truth dict built by :mod:`meit.synth.record`)."""
    findings = truth["findings"]
    hr = truth["heart_rate"]
    values = {
        "hr": hr,
        "pr": truth["pr_ms"],
        "qrs": truth["qrs_ms"],
        "qt": truth["qt_ms"],
        "qtc": truth["qtc_ms"],
        "axis": f"{truth['axis_deg']:+d}",
        "leads": _lead_list(truth["st_leads"]),
        "territory": truth["st_territory"] or "",
        "Territory": (truth["st_territory"] or "").capitalize(),
        "st": f"{truth['st_shift_mv']:.1f}",
    }
    rhythm = findings[0]
    templates = [_pick(rng, _RHYTHM[rhythm])]
    if rhythm == "afib" and (hr > 100 or hr < 60) and rng.random() < 0.7:
        templates[0] += _pick(rng, _AF_RATE["rapid" if hr > 100 else "slow"])
    for name in findings[1:]:
        if name != "pvc":
            templates.append(_pick(rng, _FINDING[name]))
    if not {"lad", "rad"} & set(findings) and rng.random() < 0.35:
        templates.append(_pick(rng, _AXIS_NORMAL))
    if "pvc" in findings:
        count = min(max(truth["n_pvc"], 1), 3)
        templates.append(_pick(rng, _PVC[count]))
    if rng.random() < 0.4:
        pool = _INTERVALS_AF if values["pr"] is None else _INTERVALS
        said = {key for key in ("{pr}", "{qrs}") if any(key in t for t in templates)}
        pool = tuple(t for t in pool if not any(key in t for key in said)) or ("QT/QTc {qt}/{qtc} ms.",)
        templates.append(_pick(rng, pool))
    normal = tuple(findings) == ("sinus_rhythm",)
    templates.append(_pick(rng, _NORMAL_END if normal else _ABNORMAL_END))
    return " ".join(t.format(**values) for t in templates if t)
