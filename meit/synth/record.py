"""One synthetic 12-lead record: findings → beat shapes and timing → dipole → leads → noise → integers.

Everything a record is made of is drawn from independent child streams of one seed (findings,
morphology, rhythm, noise, wording), so the same seed always gives the same record, and changing the
noise level leaves the heart's signal untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypedDict

import numpy as np
from scipy import signal as sps

from meit.errors import ConfigError
from meit.leads import CANONICAL_LEADS
from meit.synth.atrial import fibrillatory_waves
from meit.synth.beats import Anatomy, Morphology, build_morphology, sample_anatomy
from meit.synth.dipole import ADC_GAIN, DOWER, quantise_twelve
from meit.synth.findings import (
    SINUS,
    LabelMix,
    sample_findings,
    scp_codes,
    validate_findings,
)
from meit.synth.noise import NoiseLevels, NoiseMix, lead_noise, sample_levels
from meit.synth.reports import compose_report
from meit.synth.rhythm import BeatTrain, af_train, measured_rate, sinus_train
from meit.synth.waves import WaveSet, render

RENDER_FS = 500  # every record is drawn at 500 Hz; 100 Hz versions are decimated from it
SUPPORTED_FS = (100, 500)
MIN_SECONDS, MAX_SECONDS = 4.0, 60.0
ST_THRESHOLD_MV = 0.1  # a lead "shows" ST deviation from 0.1 mV, the usual clinical criterion
_RATE_RANGES = {
    "sinus_rhythm": (62.0, 98.0),
    "sinus_brady": (42.0, 57.0),
    "sinus_tachy": (104.0, 150.0),
    "afib": (58.0, 140.0),
}
_ALLOWED_RATE = (30.0, 200.0)  # for a requested rate; sinus labels also need the matching band


class Truth(TypedDict):
    """Ground truth of one record (also the extra columns of ``ptbxl_database.csv``)."""

    findings: list[str]
    scp_codes: dict[str, float]
    rhythm: str
    heart_rate: int
    rr_mean_ms: float
    pr_ms: int | None
    qrs_ms: int
    qt_ms: int
    qtc_ms: int
    axis_deg: int
    heart_axis: str
    n_beats: int
    n_pvc: int
    st_territory: str | None
    st_leads: list[str]
    st_shift_mv: float
    qrs_amp_limb_mv: float
    qrs_amp_precordial_mv: float
    f_wave_mv: float
    noise_level: float
    baseline_wander_mv: float
    powerline_mv: float
    powerline_hz: float
    emg_noise_mv: float
    qrs_onsets_s: list[float]


@dataclass(frozen=True)
class SynthRecord:
    """A generated record as stored: int16 digital samples (1 µV per unit) plus truth and report."""

    digital: np.ndarray  # (12, T) int16, canonical lead order
    fs: int
    digital_lr: np.ndarray | None  # (12, T/5) int16 at 100 Hz, when asked for alongside 500 Hz
    truth: Truth
    report: str

    @property
    def signal(self) -> np.ndarray:
        """Physical signal in mV (float64), exactly what a wfdb reader returns."""
        return self.digital.astype(np.float64) / ADC_GAIN


@lru_cache(maxsize=1)
def _decimation_filter() -> np.ndarray:
    """Anti-aliasing FIR for 500 → 100 Hz: flat to 30 Hz, -6 dB at 40 Hz, -63 dB at 50 Hz."""
    return sps.firwin(121, 40.0, fs=RENDER_FS, window=("kaiser", 8.0))


def decimate_to_100(leads: np.ndarray) -> np.ndarray:
    """500 Hz → 100 Hz with a linear-phase anti-aliasing filter (edges padded by a fitted line)."""
    return sps.resample_poly(leads, 1, 5, axis=-1, window=_decimation_filter(), padtype="line")


def check_options(fs: int, seconds: float, noise_level: float | NoiseMix) -> NoiseMix:
    """Reject rates, lengths and noise levels the generator does not support (ConfigError)."""
    if fs not in SUPPORTED_FS:
        raise ConfigError(f"fs={fs} is not supported; choose one of {SUPPORTED_FS} (PTB-XL's rates)")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ConfigError(f"seconds={seconds} must be between {MIN_SECONDS} and {MAX_SECONDS}")
    if (seconds * fs) != int(seconds * fs) or (seconds * 100) != int(seconds * 100):
        raise ConfigError(f"seconds={seconds} must be a whole number of 10 ms samples")
    return NoiseMix.of(noise_level)


def _choose_rate(rng: np.random.Generator, rhythm: str, heart_rate: float | None) -> float:
    if heart_rate is None:
        low, high = _RATE_RANGES[rhythm]
        return float(rng.uniform(low, high))
    low, high = _ALLOWED_RATE
    if not low <= heart_rate <= high or _rhythm_for_rate(rhythm, heart_rate) != rhythm:
        raise ConfigError(
            f"heart_rate={heart_rate} bpm does not fit {rhythm} (sinus_brady < 60 <= sinus_rhythm <= 100 "
            f"< sinus_tachy, after rounding; any rhythm {low:g}-{high:g} bpm)"
        )
    return float(heart_rate)


def _n_pvc(rng: np.random.Generator, findings: tuple[str, ...], seconds: float) -> int:
    if "pvc" not in findings:
        return 0
    return int(min(rng.choice([1, 1, 1, 2, 2, 3]), max(1, seconds // 3)))


def _beat_waves(morph: Morphology, train: BeatTrain, rng: np.random.Generator) -> WaveSet:
    """Place every beat's waves on the time axis with beat-to-beat variability."""
    onsets, pvc = train.qrs_onsets, train.is_pvc
    rr_prev, rr_next = train.rr_prev, train.rr_next
    resp = np.sin(2 * np.pi * train.resp_hz * onsets + train.resp_phase)
    parts: list[WaveSet] = []

    sel = ~pvc
    b = int(sel.sum())
    qt = morph.qt_ref_s * np.sqrt(rr_prev[sel] / morph.rr_ref_s)
    qt = np.clip(qt, morph.qrs_s + 0.12, np.maximum(rr_next[sel] - 0.04, morph.qrs_s + 0.12))
    stretch = (qt - morph.qrs_s) / (morph.qt_ref_s - morph.qrs_s)
    qrs_amp = 1.0 + 0.04 * resp[sel, None] + rng.normal(0.0, 0.025, (b, len(morph.qrs.start)))
    parts.append(_place(morph.qrs, onsets[sel], qrs_amp))
    stt_amp = 1.0 + 0.02 * resp[sel, None] + rng.normal(0.0, 0.02, (b, 1))
    parts.append(_place(morph.stt, onsets[sel], stt_amp, stretch, morph.qrs_s))

    if pvc.any():
        k = int(pvc.sum())
        pvc_qt = np.minimum(morph.pvc_qt_s, np.maximum(rr_next[pvc] - 0.04, morph.pvc_qrs_s + 0.12))
        pvc_stretch = (pvc_qt - morph.pvc_qrs_s) / (morph.pvc_qt_s - morph.pvc_qrs_s)
        amp = 1.0 + rng.normal(0.0, 0.02, (k, 1))
        parts.append(_place(morph.pvc_qrs, onsets[pvc], amp))
        parts.append(_place(morph.pvc_stt, onsets[pvc], amp, pvc_stretch, morph.pvc_qrs_s))
    if len(train.p_onsets):
        p_amp = 1.0 + rng.normal(0.0, 0.03, (len(train.p_onsets), 1))
        parts.append(_place(morph.p, train.p_onsets, p_amp))
    return WaveSet.concat(parts)


def _place(
    template: WaveSet,
    onsets: np.ndarray,
    amp: np.ndarray,
    stretch: np.ndarray | None = None,
    pivot: float = 0.0,
) -> WaveSet:
    """Copies of ``template`` at ``onsets`` (B,), amplitudes ``amp`` (B, K or 1), optional stretch."""
    if stretch is None:
        start = onsets[:, None] + template.start[None, :]
        k = np.ones((len(onsets), 1))
    else:
        k = stretch[:, None]
        start = onsets[:, None] + pivot + (template.start[None, :] - pivot) * k
    b = len(onsets)
    n = len(template.start)
    shape = (b * n,)
    vec = (template.vector[None, :, :] * amp[:, :, None]).reshape(b * n, 3)
    return WaveSet(
        start.reshape(shape),
        np.broadcast_to(template.rise[None, :] * k, (b, n)).reshape(shape),
        np.broadcast_to(template.plateau[None, :] * k, (b, n)).reshape(shape),
        np.broadcast_to(template.fall[None, :] * k, (b, n)).reshape(shape),
        vec,
    )


def heart_axis_code(axis_deg: float) -> str:
    """PTB-XL ``heart_axis`` code for a frontal QRS axis."""
    if -30.0 <= axis_deg <= 90.0:
        return "MID"
    if -45.0 <= axis_deg < -30.0:
        return "LAD"
    if -180.0 < axis_deg < -45.0:
        return "ALAD"
    if 90.0 < axis_deg <= 120.0:
        return "RAD"
    return "ARAD"


def _rhythm_for_rate(rhythm: str, rate: float) -> str:
    """Sinus labels follow the realised rate (rounded as reported)."""
    if rhythm not in SINUS:
        return rhythm
    r = round(rate)
    return "sinus_brady" if r < 60 else "sinus_tachy" if r > 100 else "sinus_rhythm"


def make_record(
    seed: int | Sequence[int],
    *,
    findings: Sequence[str] | None = None,
    fs: int = 500,
    seconds: float = 10.0,
    noise_level: float | NoiseMix = 1.0,
    label_mix: LabelMix | None = None,
    heart_rate: float | None = None,
    anatomy: Anatomy | None = None,
    with_lr: bool = False,
) -> SynthRecord:
    """Generate one record. ``anatomy`` (from the patient) defaults to one drawn from ``seed``.

    ``with_lr`` (500 Hz only) also returns the decimated 100 Hz copy that goes to ``records100/``.
    """
    noise = check_options(fs, seconds, noise_level)
    streams = np.random.SeedSequence(seed).spawn(6)
    rng_find, rng_anat, rng_morph, rng_rhythm, rng_noise, rng_text = (
        np.random.default_rng(s) for s in streams
    )
    chosen = (
        validate_findings(tuple(findings))
        if findings is not None
        else sample_findings(rng_find, label_mix or LabelMix())
    )
    if anatomy is None:
        anatomy = sample_anatomy(rng_anat)
    rate = _choose_rate(rng_rhythm, chosen[0], heart_rate)
    morph = build_morphology(anatomy, chosen, 60.0 / rate, rng_morph)
    n_pvc = _n_pvc(rng_rhythm, chosen, seconds)
    if chosen[0] == "afib":
        train = af_train(rng_rhythm, rate, seconds, n_pvc)
    else:
        train = sinus_train(rng_rhythm, rate, seconds, morph.pr_s, n_pvc)

    n = round(seconds * RENDER_FS)
    dipole = render(_beat_waves(morph, train, rng_morph), n, RENDER_FS)
    f_amp = 0.0
    if chosen[0] == "afib":
        # f-waves stay under a third of the QRS in lead II, so the ventricular rhythm stays readable
        f_wave, f_amp = fibrillatory_waves(rng_rhythm, n, RENDER_FS, 0.3 * float(morph.qrs_amp_mv[1]))
        dipole += f_wave
    leads = DOWER @ dipole
    levels = sample_levels(rng_noise, noise)
    leads += lead_noise(rng_noise, levels, n, RENDER_FS)

    if fs == RENDER_FS:
        digital = quantise_twelve(leads)
        digital_lr = quantise_twelve(decimate_to_100(leads)) if with_lr else None
    else:  # 100 Hz: drawn at 500 Hz, then decimated, so it matches the records100 copy of a 500 Hz run
        digital, digital_lr = quantise_twelve(decimate_to_100(leads)), None

    truth = _truth(chosen, morph, train, levels, f_amp, seconds)
    report = compose_report(truth, rng_text)
    return SynthRecord(digital, fs, digital_lr, truth, report)


def _truth(
    chosen: tuple[str, ...],
    morph: Morphology,
    train: BeatTrain,
    levels: NoiseLevels,
    f_amp: float,
    seconds: float,
) -> Truth:
    rate, inside = measured_rate(train.qrs_onsets, max(morph.qrs_s, morph.pvc_qrs_s), seconds)
    if not np.isfinite(rate):
        rate = 60.0 / morph.rr_ref_s
    findings = (_rhythm_for_rate(chosen[0], rate), *chosen[1:])
    in_record = (train.qrs_onsets >= 0) & (train.qrs_onsets < seconds)
    n_pvc = int(np.sum(train.is_pvc & in_record))
    if "pvc" in findings and n_pvc == 0:
        findings = tuple(f for f in findings if f != "pvc")
    rr = 60.0 / rate
    qt = morph.qt_ref_s * np.sqrt(rr / morph.rr_ref_s)
    st_leads: list[str] = []
    st_mv = 0.0
    if "st_elevation" in findings or "st_depression" in findings:
        sign = 1.0 if "st_elevation" in findings else -1.0
        shift = sign * morph.st_shift_mv
        st_leads = [CANONICAL_LEADS[i] for i in np.flatnonzero(shift >= ST_THRESHOLD_MV)]
        st_mv = float(shift.max())
    return Truth(
        findings=list(findings),
        scp_codes=scp_codes(findings),
        rhythm=findings[0],
        heart_rate=round(rate),
        rr_mean_ms=round(1000.0 * rr, 1),
        pr_ms=None if findings[0] == "afib" else round(1000 * morph.pr_s),
        qrs_ms=round(1000 * morph.qrs_s),
        qt_ms=round(1000 * qt),
        qtc_ms=round(1000 * qt / np.sqrt(rr)),
        axis_deg=round(morph.axis_deg),
        heart_axis=heart_axis_code(morph.axis_deg),
        n_beats=int(np.sum(in_record)),
        n_pvc=n_pvc,
        st_territory=morph.st_territory if st_leads else None,
        st_leads=st_leads,
        st_shift_mv=round(st_mv, 3),
        qrs_amp_limb_mv=round(morph.qrs_amp_limb_mv, 3),
        qrs_amp_precordial_mv=round(morph.qrs_amp_precordial_mv, 3),
        f_wave_mv=round(f_amp, 3),
        noise_level=levels.level,
        baseline_wander_mv=round(levels.baseline_mv, 4),
        powerline_mv=round(levels.powerline_mv, 4),
        powerline_hz=levels.powerline_hz,
        emg_noise_mv=round(levels.emg_mv, 4),
        qrs_onsets_s=[round(float(t), 4) for t in inside],
    )


def synthesize_record(
    rng_seed: int | Sequence[int],
    findings: Sequence[str] | None = None,
    fs: int = 500,
    seconds: float = 10.0,
    *,
    noise_level: float | NoiseMix = 1.0,
    heart_rate: float | None = None,
    label_mix: LabelMix | None = None,
) -> tuple[np.ndarray, Truth, str]:
    """One record in memory: (signal in mV, 12 × T in canonical order), ground truth, English report.

    ``findings`` names entries of :data:`meit.synth.findings.CATALOGUE` (drawn from ``label_mix``
    when None); the signal is exactly what the PTB-XL writer stores (quantised to 1 µV).
    """
    rec = make_record(
        rng_seed, findings=findings, fs=fs, seconds=seconds, noise_level=noise_level,
        heart_rate=heart_rate, label_mix=label_mix,
    )
    return rec.signal, rec.truth, rec.report
