"""The median beat of a record and its global fiducial points: P onset, QRS onset and offset, T end.

Beats of the dominant morphology are averaged sample by sample (a median, so one noisy beat cannot move
it), lead by lead. The fiducial points are global, as electrocardiographs measure intervals: they come from
the spatial velocity of the median beats of several leads together, so a wave that is isoelectric in one
lead is still seen in the others. A point is where the velocity leaves (or returns to) its isoelectric
level: a fixed share of the way between the record's velocity floor and the wave's peak velocity, held for
a few milliseconds so a notch inside a wave does not end it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meit.ecg_signal import bandpass
from meit.measure.beats import spatial_velocity

#: median-beat window before and after the beat's time (s)
PRE_S, POST_S = 0.55, 0.70
#: share of the way from the velocity floor to the QRS peak velocity that marks QRS onset and offset
QRS_ONSET_SHARE, QRS_OFFSET_SHARE = 0.07, 0.10
#: the same for the end of T (of the T wave's falling slope) and the onset of P (of its first slope)
T_END_SHARE, P_ONSET_SHARE = 0.20, 0.20
#: a velocity lobe this large (share of the QRS peak) within this long (s) after the QRS seems to end
#: belongs to the QRS: T waves are far slower
QRS_LOBE_SHARE, QRS_LOBE_GAP_S = 0.25, 0.04
#: the T wave ends after the last velocity hump this large, relative to the largest of the ST-T segment
T_HUMP_SHARE = 0.3
#: between two velocity humps, a signal back within this share of the T wave's distance from the isoelectric
#: level means the T wave has ended
T_RETURN_SHARE = 0.4
#: the T wave's velocity must rise this many times its floor above the floor to be delineated
T_MIN_SNR = 3.0
#: the ST-T segment is searched up to the QT of this QTc (Bazett, s): no T wave lasts longer
QT_MAX_BAZETT_S = 0.60
#: a crossing counts when the velocity stays on the other side for this long (s)
HOLD_S = 0.008
#: ... and QRS and P onset only after this long (s): slopes pause inside a wave (between the lobes of a bundle
#: branch block, at the P apex), while the segment before it is isoelectric for longer
QRS_ONSET_HOLD_S = 0.02
#: the isoelectric level of a lead: its mean over this span before QRS onset (s, s)
ISO_SPAN_S = (0.020, 0.005)
#: the P wave is looked for up to this long before QRS onset (s), after the previous T wave
P_SEARCH_S = 0.40
#: without a T end, the P wave is looked for in this share of the RR interval before QRS onset at most
P_SEARCH_RR_SHARE = 0.5
#: the P window ends this long before QRS onset (s)
P_GAP_S = 0.01
#: a P wave is present when its median beat is at least this large (mV, peak-to-peak in some lead) ...
P_MIN_MV = 0.04
#: ... and at least this share of a single beat's energy in the P window survives the median
P_MIN_CONSISTENCY = 0.6


@dataclass(frozen=True)
class MedianBeat:
    """Median beats (12 × W) of three filterings, the fiducial at index ``pre``."""

    fs: int
    pre: int
    diagnostic: np.ndarray  # 0.5 Hz high-pass only: amplitudes, ST levels, QRS areas and forces
    fast: np.ndarray  # the same, low-passed at 40 Hz: QRS onset and offset
    slow: np.ndarray  # low-passed at 20 Hz: P wave and T end
    n_beats: int
    repolarisation: np.ndarray | None = None  # slow, of the beats after an RR near the mean (irregular rhythms)

    def seconds(self, index: float) -> float:
        """A template index as seconds relative to the beat's time."""
        return (index - self.pre) / self.fs


@dataclass(frozen=True)
class Delineation:
    """Fiducial points (template indices, fractional) and the P-wave evidence; None when not found."""

    qrs_on: float | None
    qrs_off: float | None
    t_end: float | None
    p_on: float | None
    p_present: bool | None
    p_amplitude_mv: float | None
    p_consistency: float | None
    leads: tuple[int, ...]
    problems: dict[str, str]


def median_beats(x: np.ndarray, samples: np.ndarray, pre: int, post: int) -> np.ndarray:
    """(leads, pre + post) median over beats, sample by sample; parts outside the record are ignored."""
    leads, n = x.shape
    if len(samples) == 0:
        return np.full((leads, pre + post), np.nan)
    index = samples[:, None] + np.arange(-pre, post)[None, :]
    inside = (index >= 0) & (index < n)
    stacked = x[:, np.clip(index, 0, max(n - 1, 0))]  # (leads, beats, window)
    if inside.all():
        return np.median(stacked, axis=1)
    stacked[:, ~inside] = np.nan
    ordered = np.sort(stacked, axis=1)  # NaN last
    count = inside.sum(axis=0)  # beats covering each sample
    low = np.clip((count - 1) // 2, 0, None)[None, None, :]
    high = np.clip(count // 2, 0, None)[None, None, :]
    out = 0.5 * (np.take_along_axis(ordered, low, axis=1) + np.take_along_axis(ordered, high, axis=1))[:, 0, :]
    out[:, count == 0] = np.nan
    return out


def fill_gaps(template: np.ndarray) -> np.ndarray:
    """NaN (beyond the record in every beat) replaced by the nearest valid sample of the same lead."""
    out = template.copy()
    for lead in out:
        valid = np.flatnonzero(np.isfinite(lead))
        if valid.size == 0:
            lead[:] = 0.0
        elif valid.size < lead.size:
            lead[:] = np.interp(np.arange(lead.size), valid, lead[valid])
    return out


def _cross_back(v: np.ndarray, start: int, threshold: float, hold: int, stop: int) -> int | None:
    """Last index at or before ``start`` (not before ``stop``) where ``v`` stays below ``threshold`` for
    ``hold`` samples going back: the point where a wave began."""
    run = 0
    for i in range(start, max(stop, 0) - 1, -1):
        run = run + 1 if v[i] < threshold else 0
        if run >= hold:
            return i + hold - 1
    return None


def _cross_forward(v: np.ndarray, start: int, threshold: float, hold: int, stop: int) -> int | None:
    """First index at or after ``start`` (before ``stop``) where ``v`` stays below ``threshold`` for ``hold``
    samples: the point where a wave ended."""
    run = 0
    for i in range(start, min(stop, v.size)):
        run = run + 1 if v[i] < threshold else 0
        if run >= hold:
            return i - hold + 1
    return None


def _floor(v: np.ndarray) -> float:
    """The velocity of the isoelectric parts of the median beat: its 10th percentile."""
    return float(np.percentile(v, 10)) if v.size else 0.0


def _detrend(x: np.ndarray) -> np.ndarray:
    """Least-squares line removed along the last axis (baseline drift across a short window)."""
    t = np.arange(x.shape[-1], dtype=np.float64)
    t -= t.mean()
    centred = x - x.mean(axis=-1, keepdims=True)
    slope = (centred * t).sum(axis=-1, keepdims=True) / max(float((t * t).sum()), 1e-12)
    return centred - slope * t


def _p_wave(beat: MedianBeat, slow: np.ndarray, signal_slow: np.ndarray, samples: np.ndarray, leads: list[int],
            lo: int, hi: int) -> tuple[float | None, float | None]:
    """P-wave amplitude (mV) of the median beat in window ``[lo, hi)`` and its consistency between beats.

    Consistency is the energy of the median P window over the median energy of single beats' P windows
    (each detrended): near 1 when the same P wave precedes every QRS, small for fibrillatory waves, which
    average out.
    """
    if hi - lo < round(0.04 * beat.fs) or not leads:
        return None, None
    n = signal_slow.shape[1]
    offsets = samples - beat.pre
    ok = (offsets + lo >= 0) & (offsets + hi <= n)
    if ok.sum() < 2:
        return None, None
    segments = _detrend(np.stack([signal_slow[leads, o + lo:o + hi] for o in offsets[ok]]))  # (B, L, w)
    median = np.median(segments, axis=0)
    single = np.median((segments ** 2).sum(axis=(1, 2)))
    consistency = float((median ** 2).sum() / single) if single > 0 else 0.0
    template = _detrend(slow[leads, lo:hi])
    amplitude = float((template.max(axis=1) - template.min(axis=1)).max())
    return amplitude, min(consistency, 1.0)


def delineate(beat: MedianBeat, leads: list[int], rr_s: float | None, signal_slow: np.ndarray,
              samples: np.ndarray) -> Delineation:
    """QRS onset and offset, T end and P onset of the median beat from the spatial velocity of ``leads``."""
    fs, f = beat.fs, beat.pre
    hold = max(round(HOLD_S * fs), 1)
    problems: dict[str, str] = {}
    if not leads:
        return Delineation(None, None, None, None, None, None, None, (), {"qrs": "no_usable_lead"})
    fast = fill_gaps(beat.fast[leads])
    slow = fill_gaps(beat.slow)
    v = spatial_velocity(fast, fs)
    floor = _floor(v)
    near = slice(max(f - round(0.06 * fs), 0), min(f + round(0.06 * fs), v.size))
    peak = near.start + int(np.argmax(v[near]))
    v_max = float(v[peak])
    if v_max <= floor * 1.5 or v_max <= 0:
        return Delineation(None, None, None, None, None, None, None, (), {"qrs": "no_qrs_in_median_beat"})
    on = _cross_back(v, peak, floor + QRS_ONSET_SHARE * (v_max - floor), max(round(QRS_ONSET_HOLD_S * fs), 1),
                     f - round(0.25 * fs))
    off_threshold = floor + QRS_OFFSET_SHARE * (v_max - floor)
    off = _cross_forward(v, peak, off_threshold, hold, f + round(0.25 * fs))
    for _ in range(3):  # a pause between lobes (before an RBBB's R') is not the end when a large lobe follows
        if off is None:
            break
        after = v[off:off + round(QRS_LOBE_GAP_S * fs)]
        large = np.flatnonzero(after >= QRS_LOBE_SHARE * v_max)
        if large.size == 0:
            break
        off = _cross_forward(v, off + int(large[0]), off_threshold, hold, f + round(0.25 * fs))
    if on is None or off is None:
        problems["qrs"] = "qrs_boundary_not_found"
        return Delineation(on, off, None, None, None, None, None, (), problems)

    # T end: where the velocity returns to the floor after the last large velocity hump of the ST-T segment
    # (the T wave's falling slope); the segment ends where a physiological QT must end (QTc < 600 ms)
    repolarisation = slow if beat.repolarisation is None else fill_gaps(beat.repolarisation)
    vt = spatial_velocity(repolarisation[leads], fs)
    floor_t = _floor(vt)
    iso = iso_level(repolarisation[leads], on, fs)
    magnitude = np.sqrt(((repolarisation[leads] - iso[:, None]) ** 2).sum(axis=0))
    rr = rr_s or POST_S
    limit = min(slow.shape[1] - 1, f + round(POST_S * fs), int(on + QT_MAX_BAZETT_S * np.sqrt(rr) * fs),
                f + round((rr - 0.05) * fs))
    start = off + round(0.04 * fs)
    t_end, why = (_t_end(vt, magnitude, floor_t, start, limit, hold) if limit - start > round(0.06 * fs)
                  else (None, "no_st_t_segment"))
    if t_end is None:
        problems["t"] = why

    # P wave: between the previous beat's T end (or the search limit) and QRS onset
    lo = on - round(P_SEARCH_S * fs)
    if t_end is not None and rr_s is not None:
        lo = max(lo, t_end - round(rr_s * fs))
    elif rr_s is not None:  # the previous T wave was not placed: at least keep out of the previous QRS-T
        lo = max(lo, on - round(P_SEARCH_RR_SHARE * rr_s * fs))
    lo = max(lo, 0)
    vp = vt if beat.repolarisation is None else spatial_velocity(slow[leads], fs)
    floor_p = _floor(vp)
    hi = on - round(P_GAP_S * fs)
    while hi - 1 > lo and vp[hi] > 2.0 * floor_p and vp[hi - 1] < vp[hi]:
        hi -= 1  # still on the (low-passed) QRS upstroke: the P window ends in the valley before it
    amplitude, consistency = _p_wave(beat, slow, signal_slow, samples, leads, lo, hi)
    p_on = None
    present = None if amplitude is None else amplitude >= P_MIN_MV and (consistency or 0.0) >= P_MIN_CONSISTENCY
    if amplitude is None:
        problems["p"] = "no_room_for_a_p_wave"
    elif present:
        p_on = _p_onset(vp, floor_p, lo, hi, max(round(QRS_ONSET_HOLD_S * fs), 1))
        if p_on is None:
            problems["p"] = "p_wave_onset_not_isoelectric"
    return Delineation(float(on), float(off), None if t_end is None else float(t_end),
                       None if p_on is None else float(p_on), present, amplitude, consistency, tuple(leads), problems)


def _t_end(v: np.ndarray, magnitude: np.ndarray, floor: float, start: int, stop: int,
           hold: int) -> tuple[int | None, str]:
    """End of the T wave in ``[start, stop)``, from the velocity ``v`` and the distance from the isoelectric
    level ``magnitude``; None, and why, when it cannot be placed.

    The T wave is a run of velocity humps (its rising and falling slopes, and an ST shift's): from the first
    hump of at least :data:`T_HUMP_SHARE` of the largest, hump follows hump while the signal stays away from
    the isoelectric level between them (the T apex). Where it comes back (below :data:`T_RETURN_SHARE` of the
    largest distance so far) the T wave has ended, and what follows is the next P wave (at fast rates). The
    end is where the velocity of the last slope falls below its threshold, or that valley if sooner.
    """
    from scipy.signal import find_peaks

    segment = v[start:stop]
    peaks, _ = find_peaks(segment)
    if peaks.size == 0:
        return None, "no_t_wave"
    top = float(segment[peaks].max())
    if top - floor < T_MIN_SNR * floor:
        return None, "t_wave_within_noise"
    humps = [start + int(p) for p in peaks if segment[p] >= T_HUMP_SHARE * top]
    last, valley = humps[0], stop
    for hump, following in zip(humps, [*humps[1:], None], strict=True):
        last = hump
        if following is None:
            break
        bottom = hump + int(np.argmin(v[hump:following]))
        if magnitude[bottom] < T_RETURN_SHARE * float(magnitude[start:bottom + 1].max()):
            valley = bottom  # back at the isoelectric level: the next hump is another wave
            break
    threshold = floor + T_END_SHARE * (float(v[last]) - floor)
    run = 0
    for i in range(last, valley):
        run = run + 1 if v[i] < threshold else 0
        if run >= hold:
            return i - hold + 1, ""
    if valley < stop:
        return valley, ""
    return None, "t_end_not_found"


def _p_onset(v: np.ndarray, floor: float, lo: int, hi: int, hold: int) -> int | None:
    """Onset of the P wave in ``[lo, hi)``: back from the window's largest velocity hump to where the velocity
    has stayed below :data:`P_ONSET_SHARE` of the way from the floor to that peak for ``hold`` samples (as for
    QRS onset, long enough to pass the pause at the P apex); None when that never happens after the window's
    start (the P wave runs into the previous T wave)."""
    segment = v[lo:hi]
    if segment.size == 0:
        return None
    top = lo + int(np.argmax(segment))
    peak = float(v[top])
    return _cross_back(v, top, floor + P_ONSET_SHARE * (peak - floor), hold, lo)


def iso_level(template: np.ndarray, qrs_on: float, fs: int) -> np.ndarray:
    """Each lead's isoelectric level: its mean just before QRS onset (the end of the PR segment)."""
    a = max(round(qrs_on - ISO_SPAN_S[0] * fs), 0)
    b = max(round(qrs_on - ISO_SPAN_S[1] * fs), a + 1)
    return template[:, a:b].mean(axis=1)


def smoothed(template: np.ndarray, fs: int, cutoff_hz: float) -> np.ndarray:
    """A median beat (NaN filled) low-passed at ``cutoff_hz``."""
    return bandpass(fill_gaps(template), fs, None, cutoff_hz)
