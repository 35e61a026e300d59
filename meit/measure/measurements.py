"""``measure_ecg``: every measurement of one 12-lead record, each with its leads, time span and quality.

The record is first brought to :data:`ANALYSIS_FS` (500 Hz; a 100 Hz record is interpolated, which is exact
for its band-limited content), so one set of window lengths and filters serves every rate. Then:

* leads that are flat (disconnected, zeroed) or held non-finite samples are left out of everything;
* beats come from lead-wise detection and voting (:mod:`meit.measure.beats`): heart rate from the mean RR,
  RR irregularity from the intervals between beats of the dominant morphology, premature and ectopic beats;
* the median beat of the dominant beats gives the global intervals (:mod:`meit.measure.template`): PR,
  QRS, QT and QTc (Bazett, at the mean RR), the P-wave evidence, and per lead the QRS amplitude, the ST level
  at J+60 ms against the isoelectric level before QRS onset, and the net QRS area from which the frontal
  axis is fitted over the usable limb leads.

A value that cannot be measured is ``None`` with a ``quality`` saying why; measuring never raises on a
signal of the right shape, whatever it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meit.ecg_signal import bandpass, check_fs, resample
from meit.errors import DataError
from meit.leads import CANONICAL_LEADS
from meit.measure.beats import IRREGULAR_FOR_PREMATURITY, Beats, classify_beats, detect_beats, lead_quality
from meit.measure.template import (
    POST_S,
    PRE_S,
    Delineation,
    MedianBeat,
    delineate,
    fill_gaps,
    iso_level,
    median_beats,
    smoothed,
)

#: every record is analysed at this rate
ANALYSIS_FS = 500
#: baseline removal (zero-phase, as the AHA allows for ST measurement), and the low-pass cut-offs of the
#: signals whose median beats give QRS boundaries (fast) and the P wave and T end (slow), Hz
HIGHPASS_HZ, FAST_HZ, SLOW_HZ = 0.5, 40.0, 20.0
#: canonical indices of the limb and precordial leads
LIMB: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
PRECORDIAL: tuple[int, ...] = (6, 7, 8, 9, 10, 11)
#: the independent leads whose median beats give the global fiducial points (I, II, V1–V6)
_INDEPENDENT = (0, 1, 6, 7, 8, 9, 10, 11)
#: limb leads tried, in order, when I or II cannot be used
_LIMB_SUBSTITUTES = (2, 5, 4, 3)
#: each limb lead as a combination of (lead I, lead aVF), exact by the Einthoven and Goldberger definitions
_LIMB_IN_I_AVF = np.array([[1.0, 0.0], [0.5, 1.0], [-0.5, 1.0], [-0.75, -0.5], [0.75, -0.5], [0.0, 1.0]])
#: the shortest record measured (s)
MIN_SECONDS = 1.0
#: in an irregular rhythm the median beat takes the beats after an RR within this share of the mean RR, when
#: there are at least this many of them
MEAN_RR_SHARE, MIN_BEATS_NEAR_MEAN_RR = 0.15, 3
#: the initial and terminal QRS forces are the mean over this long (s) after QRS onset and before its end
INITIAL_QRS_S, TERMINAL_QRS_S = 0.02, 0.04
#: a QTc (Bazett) outside this range (ms) is a misplaced T end, reported as not measured
QTC_PLAUSIBLE_MS = (300.0, 650.0)
#: ST level is read this long after the J point (s)
ST_AFTER_J_S = 0.06


@dataclass(frozen=True)
class Measurement:
    """One measured quantity: its value (None when not measured, then ``quality`` says why), the leads and
    the time spans (s from the record's start) it was read from, and per-lead values where it has them."""

    value: float | None
    unit: str
    leads: tuple[str, ...] = ()
    spans_s: tuple[tuple[float, float], ...] = ()
    quality: str = "ok"
    per_lead: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.value is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _round(self.value), "unit": self.unit, "quality": self.quality,
                               "leads": list(self.leads),
                               "spans_s": [[round(a, 3), round(b, 3)] for a, b in self.spans_s]}
        if self.per_lead:
            out["per_lead"] = {k: _round(v) for k, v in self.per_lead.items()}
        if self.detail:
            out["detail"] = {k: _round(v) if isinstance(v, float) else v for k, v in self.detail.items()}
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def missing(unit: str, quality: str) -> Measurement:
    """A quantity that could not be measured, and why."""
    return Measurement(None, unit, quality=quality)


#: every quantity :func:`measure_ecg` reports, with its unit
QUANTITIES: dict[str, str] = {
    "heart_rate": "bpm", "rr_irregularity": "ratio", "premature_beats": "beats",
    "ventricular_premature_beats": "beats", "p_wave": "present", "pr_ms": "ms", "qrs_ms": "ms", "qt_ms": "ms",
    "qtc_ms": "ms", "axis_deg": "degrees", "st_j60_mv": "mV", "qrs_amplitude_mv": "mV", "qrs_initial_mv": "mV",
    "qrs_terminal_mv": "mV",
}
#: the quantities read from the median beat
_MORPHOLOGY = ("p_wave", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg", "st_j60_mv", "qrs_amplitude_mv",
               "qrs_initial_mv", "qrs_terminal_mv")


@dataclass(frozen=True)
class EcgMeasurements:
    """All measurements of one record (see :data:`QUANTITIES`), plus the beats and the quality of each lead."""

    fs: int
    duration_s: float
    lead_quality: dict[str, str]
    beats_s: tuple[float, ...]
    values: dict[str, Measurement]

    def __getitem__(self, name: str) -> Measurement:
        return self.values[name]

    def to_json(self) -> dict[str, Any]:
        return {"fs": self.fs, "duration_s": round(self.duration_s, 3), "lead_quality": dict(self.lead_quality),
                "beats_s": [round(t, 3) for t in self.beats_s],
                "values": {name: m.to_json() for name, m in self.values.items()}}


def _all_missing(quality: str) -> dict[str, Measurement]:
    return {name: missing(unit, quality) for name, unit in QUANTITIES.items()}


def _check_signal(signal: Any, fs: Any) -> tuple[np.ndarray, int]:
    array = np.asarray(signal)
    if array.ndim != 2 or array.shape[0] != len(CANONICAL_LEADS):
        raise DataError(f"signal: expected a (12, T) array in the canonical lead order "
                        f"{', '.join(CANONICAL_LEADS)}, got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise DataError(f"signal: expected a real numeric array (mV), got dtype {array.dtype}")
    return array.astype(np.float64), check_fs(fs, "fs")


def measure_ecg(signal: np.ndarray, fs: int) -> EcgMeasurements:
    """Measure a ``(12, T)`` millivolt record sampled at ``fs`` Hz (canonical lead order)."""
    x, fs = _check_signal(signal, fs)
    duration = x.shape[1] / fs
    finite = np.isfinite(x)
    had_nonfinite = ~finite.all(axis=1)
    x[~finite] = 0.0
    np.clip(x, -1e3, 1e3, out=x)  # no millivolt ECG reaches a volt; keeps filters finite on any input
    if duration < MIN_SECONDS:
        quality = {lead: "non_finite" if bad else "ok" for lead, bad in zip(CANONICAL_LEADS, had_nonfinite,
                                                                            strict=True)}
        return EcgMeasurements(fs, duration, quality, (), _all_missing("record_too_short"))
    if fs != ANALYSIS_FS:
        x = resample(x, fs, ANALYSIS_FS)
    fa = ANALYSIS_FS
    diagnostic = bandpass(x, fa, HIGHPASS_HZ, None)  # mains and muscle noise average out of the median beat
    fast = bandpass(x, fa, HIGHPASS_HZ, FAST_HZ)
    slow = bandpass(x, fa, HIGHPASS_HZ, SLOW_HZ)
    flags = lead_quality(diagnostic, had_nonfinite)
    lead_flags = dict(zip(CANONICAL_LEADS, flags, strict=True))
    usable = [i for i, flag in enumerate(flags) if flag == "ok"]
    if not usable:
        return EcgMeasurements(fs, duration, lead_flags, (), _all_missing("no_usable_lead"))
    samples, votes = detect_beats(fast, fa, usable)
    beats = classify_beats(fast, fa, usable, samples, votes)
    times = tuple(float(t) / fa for t in beats.samples)
    values = _rhythm(beats, fa, usable)
    values.update(_morphology(beats, diagnostic, fast, slow, fa, usable, values["heart_rate"]))
    return EcgMeasurements(fs, duration, lead_flags, times, values)


def _names(indices: list[int] | tuple[int, ...]) -> tuple[str, ...]:
    return tuple(CANONICAL_LEADS[i] for i in indices)


def _rhythm(beats: Beats, fs: int, usable: list[int]) -> dict[str, Measurement]:
    """Rate, RR irregularity and premature beats from the beat times."""
    leads = _names(usable)
    t = beats.samples / fs
    out: dict[str, Measurement] = {}
    timed = t[beats.complete] if beats.complete.sum() >= 2 else t  # a QRS cut by the record's edge is not timed
    if len(timed) >= 2:
        rate = 60.0 * (len(timed) - 1) / float(timed[-1] - timed[0])
        out["heart_rate"] = Measurement(rate, "bpm", leads, ((float(timed[0]), float(timed[-1])),),
                                        detail={"beats": len(timed), "rr_mean_ms": 60000.0 / rate})
    else:
        out["heart_rate"] = missing("bpm", "too_few_beats")
    if beats.irregularity is not None:
        normal = t[beats.dominant]
        out["rr_irregularity"] = Measurement(beats.irregularity, "ratio", leads, ((float(t[0]), float(t[-1])),),
                                             detail={"dominant_beats": len(normal)})
    else:
        out["rr_irregularity"] = missing("ratio", "too_few_beats")
    if len(t) >= 3:
        spans = tuple((float(s) - 0.1, float(s) + 0.1) for s in t[beats.premature])
        ectopic = tuple((float(s) - 0.1, float(s) + 0.1) for s in t[beats.ectopic])
        out["premature_beats"] = Measurement(float(beats.premature.sum()), "beats", leads, spans,
                                             detail={"beats": len(t), "times_s": [round(float(s), 3) for s in
                                                                                   t[beats.premature]]})
        out["ventricular_premature_beats"] = Measurement(
            float(beats.ectopic.sum()), "beats", leads, ectopic,
            detail={"beats": len(t), "times_s": [round(float(s), 3) for s in t[beats.ectopic]],
                    "min_correlation": float(beats.correlation.min())})
    else:
        out["premature_beats"] = missing("beats", "too_few_beats")
        out["ventricular_premature_beats"] = missing("beats", "too_few_beats")
    return out


def _delineation_leads(usable: list[int]) -> list[int]:
    """I, II and V1–V6 where usable, with other limb leads standing in so two limb leads take part."""
    chosen = [i for i in _INDEPENDENT if i in usable]
    limb = [i for i in chosen if i in LIMB]
    for substitute in _LIMB_SUBSTITUTES:
        if len(limb) >= 2:
            break
        if substitute in usable:
            limb.append(substitute)
            chosen.append(substitute)
    return sorted(chosen)


def _morphology(beats: Beats, diagnostic: np.ndarray, fast: np.ndarray, slow: np.ndarray, fs: int,
                usable: list[int], rate: Measurement) -> dict[str, Measurement]:
    """Intervals, P wave, axis, ST levels and QRS amplitudes from the median beat."""
    names = _MORPHOLOGY
    chosen = beats.samples[_median_beat_members(beats)]
    if len(chosen) == 0:
        return {name: missing(QUANTITIES[name], "no_beats_detected") for name in names}
    pre, post = round(PRE_S * fs), round(POST_S * fs)
    median = median_beats(diagnostic, chosen, pre, post)
    repolarisation = None
    if rate.value and beats.irregularity is not None and beats.irregularity > IRREGULAR_FOR_PREMATURITY:
        # irregular rhythm: each QT follows its own RR, so the T wave is read from the beats that follow an RR
        # near the mean one, whose QT is the QT at the mean rate
        mean_rr = fs * 60.0 / rate.value
        rr = np.r_[np.inf, np.diff(beats.samples)]  # the RR before each beat
        near = beats.dominant & (np.abs(rr - mean_rr) <= MEAN_RR_SHARE * mean_rr)
        if near.sum() >= MIN_BEATS_NEAR_MEAN_RR:
            repolarisation = smoothed(median_beats(diagnostic, beats.samples[near], pre, post), fs, SLOW_HZ)
    # a median switches between beats from one sample to the next: smoothed again, its slopes are the waves'
    beat = MedianBeat(fs, pre, median, smoothed(median, fs, FAST_HZ), smoothed(median, fs, SLOW_HZ), len(chosen),
                      repolarisation)
    rr_s = 60.0 / rate.value if rate.value else None
    leads = _delineation_leads(usable)
    found = delineate(beat, leads, rr_s, slow, chosen)
    representative = _representative(beats, fs)
    return _from_delineation(beat, found, usable, rr_s, representative)


def _median_beat_members(beats: Beats) -> np.ndarray:
    """The beats averaged into the median beat: dominant ones, and, while at least
    :data:`MIN_BEATS_NEAR_MEAN_RR` remain, none next to a premature beat (which would sit on its T wave, or
    lengthen its QT by the pause it leaves)."""
    around = np.zeros_like(beats.premature)
    around[:-1] |= beats.premature[1:]
    around[1:] |= beats.premature[:-1]
    clean = beats.dominant & ~around
    if clean.sum() >= MIN_BEATS_NEAR_MEAN_RR:
        return clean
    return beats.dominant if beats.dominant.any() else np.ones_like(beats.dominant)


def _representative(beats: Beats, fs: int) -> float:
    """The time (s) of the dominant beat most like the median beat: where evidence spans are drawn."""
    preferred = beats.dominant & beats.complete
    candidates = np.flatnonzero(preferred) if preferred.any() else np.arange(len(beats.samples))
    best = candidates[int(np.argmax(beats.correlation[candidates]))]
    return float(beats.samples[best]) / fs


def _from_delineation(beat: MedianBeat, found: Delineation, usable: list[int], rr_s: float | None,
                      at: float) -> dict[str, Measurement]:
    fs = beat.fs
    leads = _names(found.leads) or _names(usable)
    out: dict[str, Measurement] = {}

    def span(a: float, b: float) -> tuple[tuple[float, float], ...]:
        return ((at + beat.seconds(a), at + beat.seconds(b)),)

    beats_used = {"median_of_beats": beat.n_beats}
    on, off = found.qrs_on, found.qrs_off
    if on is None or off is None:
        why = found.problems.get("qrs", "qrs_boundary_not_found")
        return {name: missing(QUANTITIES[name], why) for name in _MORPHOLOGY}
    out["qrs_ms"] = Measurement(1000.0 * (off - on) / fs, "ms", leads, span(on, off), detail=beats_used)

    if found.p_amplitude_mv is None:
        out["p_wave"] = missing("present", found.problems.get("p", "no_room_for_a_p_wave"))
    else:
        present = bool(found.p_present)
        p_span = span(found.p_on, on) if found.p_on is not None else span(on - 0.3 * fs, on)
        out["p_wave"] = Measurement(1.0 if present else 0.0, "present", leads, p_span,
                                    detail={"amplitude_mv": found.p_amplitude_mv, "consistency": found.p_consistency,
                                            **beats_used})
    if found.p_on is not None:
        out["pr_ms"] = Measurement(1000.0 * (on - found.p_on) / fs, "ms", leads, span(found.p_on, on),
                                   detail=beats_used)
    else:
        out["pr_ms"] = missing("ms", found.problems.get("p", "no_p_wave"))
    qt = None if found.t_end is None else 1000.0 * (found.t_end - on) / fs
    t_problem = found.problems.get("t", "t_end_not_found")
    if qt is not None and rr_s and not QTC_PLAUSIBLE_MS[0] <= qt / np.sqrt(rr_s) <= QTC_PLAUSIBLE_MS[1]:
        qt, t_problem = None, "qt_outside_physiological_range"  # a misplaced T end (flutter waves), not a QT
    if qt is not None and found.t_end is not None:
        out["qt_ms"] = Measurement(qt, "ms", leads, span(on, found.t_end), detail=beats_used)
        if rr_s:
            out["qtc_ms"] = Measurement(qt / np.sqrt(rr_s), "ms", leads, span(on, found.t_end),
                                        detail={"rr_ms": 1000.0 * rr_s, "formula": "Bazett", **beats_used})
        else:
            out["qtc_ms"] = missing("ms", "too_few_beats")
    else:
        out["qt_ms"] = missing("ms", t_problem)
        out["qtc_ms"] = missing("ms", t_problem)

    template = fill_gaps(beat.diagnostic)
    iso = iso_level(template, on, fs)
    a, b = round(on), round(off) + 1
    amplitude = {CANONICAL_LEADS[i]: float(np.ptp(template[i, a:b])) for i in usable}
    limb = [v for k, v in amplitude.items() if CANONICAL_LEADS.index(k) in LIMB]
    precordial = [v for k, v in amplitude.items() if CANONICAL_LEADS.index(k) in PRECORDIAL]
    out["qrs_amplitude_mv"] = Measurement(
        max(amplitude.values()), "mV", tuple(amplitude), span(on, off), per_lead=amplitude,
        detail={"limb_max_mv": max(limb) if limb else None,
                "precordial_max_mv": max(precordial) if precordial else None,
                "limb_leads": len(limb), "precordial_leads": len(precordial), **beats_used})

    # the direction of the first and last QRS forces per lead: septal activation (reversed by LBBB) and the
    # late right-ventricular forces of RBBB
    for name, (lo, hi) in (("qrs_initial_mv", (on, on + INITIAL_QRS_S * fs)),
                           ("qrs_terminal_mv", (max(off - TERMINAL_QRS_S * fs, on), off))):
        i0 = round(lo)
        i1 = max(round(hi), i0 + 1)
        forces = {CANONICAL_LEADS[i]: float(np.mean(template[i, i0:i1] - iso[i])) for i in usable}
        out[name] = Measurement(max(forces.values(), key=abs), "mV", tuple(forces), span(lo, hi), per_lead=forces,
                                detail={"mean_over_ms": round(1000.0 * (i1 - i0) / fs), **beats_used})

    j60 = off + ST_AFTER_J_S * fs
    if j60 < template.shape[1] - 1:
        k = round(j60)
        st = {CANONICAL_LEADS[i]: float(template[i, k] - iso[i]) for i in usable}
        extreme = max(st.values(), key=abs)
        out["st_j60_mv"] = Measurement(extreme, "mV", tuple(st), span(off, j60), per_lead=st,
                                       detail={"reference": "mean over 20-5 ms before QRS onset", **beats_used})
    else:
        out["st_j60_mv"] = missing("mV", "j_point_near_window_end")

    limb_usable = [i for i in usable if i in LIMB]
    if len(limb_usable) >= 2:
        area = (template[limb_usable, a:b] - iso[limb_usable, None]).sum(axis=1) / fs
        (lead_i, lead_avf), *_ = np.linalg.lstsq(_LIMB_IN_I_AVF[limb_usable], area, rcond=None)
        axis = float(np.degrees(np.arctan2(lead_avf, lead_i)))
        out["axis_deg"] = Measurement(axis, "degrees", _names(limb_usable), span(on, off),
                                      per_lead={CANONICAL_LEADS[i]: float(v * 1000.0) for i, v in
                                                zip(limb_usable, area, strict=True)},
                                      detail={"per_lead_unit": "net QRS area, mV·ms", **beats_used})
    else:
        out["axis_deg"] = missing("degrees", "fewer_than_two_limb_leads")
    return out
