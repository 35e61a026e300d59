"""Beats of a 12-lead record: lead quality, R peaks by lead-wise detection and voting, ectopy, RR regularity.

R peaks are found by neurokit2's QRS detector on every usable lead separately; a beat is kept when enough
leads agree on it, so one flat, noisy or disconnected lead neither adds nor removes a beat. Each kept beat's
time is the peak of the spatial velocity (all usable leads together), which is the same point of the QRS
whatever the lead morphology, so beats can be averaged into a median beat.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

#: a lead whose 1st–99th percentile range (after the 0.5 Hz high-pass) is below this is flat (mV)
FLAT_RANGE_MV = 0.03
#: detections of different leads closer than this belong to the same beat (s)
VOTE_WINDOW_S = 0.08
#: share of the usable leads that must detect a beat for it to count
VOTE_SHARE = 0.4
#: two beats closer than this are one (s): the ventricles cannot depolarise again sooner (300 bpm)
REFRACTORY_S = 0.2
#: a beat's spatial velocity must reach this share of the median beat's (else it is a T wave or artefact)
MIN_VELOCITY_SHARE = 0.15
#: the QRS segment compared between beats for morphology: before and after the beat's time (s)
QRS_HALF_WINDOW_S = (0.08, 0.10)
#: a beat's time may move this far (s) to match the dominant QRS
ALIGN_MAX_S = 0.04
#: a beat whose QRS correlates less than this with the dominant beat has another morphology (ectopic)
ECTOPIC_CORRELATION = 0.8
#: a beat this close to the record's start or end (s) must look like the dominant QRS to count
EDGE_S = 0.3
#: a beat is premature when its RR is shorter than this share of the reference RR (regular rhythms only)
PREMATURE_RR_SHARE = 0.85
#: above this RR irregularity (median |ΔRR| / median RR) a rhythm is irregular: prematurity is not judged
IRREGULAR_FOR_PREMATURITY = 0.08


@dataclass(frozen=True)
class Beats:
    """Detected beats: times (samples at the analysis rate), votes, morphology and prematurity."""

    samples: np.ndarray  # (B,) int, the spatial-velocity peak of each QRS
    votes: np.ndarray  # (B,) leads that detected the beat
    correlation: np.ndarray  # (B,) correlation of the beat's QRS with the dominant beat's
    ectopic: np.ndarray  # (B,) bool: another QRS morphology than the dominant beat
    premature: np.ndarray  # (B,) bool: early by timing (regular rhythms) or ectopic
    complete: np.ndarray  # (B,) bool: the whole QRS window lies inside the record
    irregularity: float | None  # median |ΔRR| / median RR of the dominant beats' intervals
    usable_leads: tuple[int, ...]

    @property
    def dominant(self) -> np.ndarray:
        """Beats of the dominant morphology that are not premature (the median beat is made of these)."""
        return ~(self.ectopic | self.premature)


def lead_quality(highpassed: np.ndarray, had_nonfinite: np.ndarray) -> list[str]:
    """``"ok"``, ``"flat"`` (disconnected, zero or constant) or ``"non_finite"`` for each lead."""
    flags = []
    for lead, bad in zip(highpassed, had_nonfinite, strict=True):
        low, high = np.percentile(lead, [1, 99]) if lead.size else (0.0, 0.0)
        if high - low < FLAT_RANGE_MV:
            flags.append("flat")
        elif bad:
            flags.append("non_finite")
        else:
            flags.append("ok")
    return flags


def spatial_velocity(x: np.ndarray, fs: int) -> np.ndarray:
    """Root of the summed squared slopes of the given leads (mV/s): high in the QRS, low elsewhere."""
    if x.shape[1] < 2:
        return np.zeros(x.shape[1])
    slope = np.gradient(x, axis=1) * fs
    return np.sqrt((slope * slope).sum(axis=0))


def _lead_peaks(lead: np.ndarray, fs: int) -> np.ndarray:
    """neurokit2's QRS detector on one band-passed lead, its dominant deflection turned upwards."""
    import neurokit2 as nk

    low, high = np.percentile(lead, [0.5, 99.5])
    oriented = lead if high >= -low else -lead
    # the detector drops peaks within its refractory time of the first sample, and sets its threshold from
    # the slopes around: give it a mirrored lead-in (its detections are dropped again)
    pad = min(round(2 * REFRACTORY_S * fs), oriented.size - 1)
    padded = np.concatenate([oriented[pad:0:-1], oriented])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = nk.ecg_findpeaks(padded, sampling_rate=fs, method="neurokit",
                                     mindelay=REFRACTORY_S)["ECG_R_Peaks"]
        except (ValueError, IndexError, ZeroDivisionError):  # a lead the detector cannot read adds no vote
            return np.zeros(0, dtype=np.int64)
    found = np.asarray(found, dtype=np.int64) - pad
    return found[found >= 0]


def _vote(detections: list[np.ndarray], fs: int, min_votes: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Group detections of all leads into beats; ``(first, last)`` sample and vote count of each kept group."""
    events = sorted((int(t), lead) for lead, peaks in enumerate(detections) for t in peaks)
    window = VOTE_WINDOW_S * fs
    groups: list[tuple[int, int]] = []
    votes: list[int] = []
    start = 0
    while start < len(events):
        end = start
        while end + 1 < len(events) and events[end + 1][0] - events[start][0] <= window:
            end += 1
        leads = {lead for _, lead in events[start:end + 1]}
        if len(leads) >= min_votes:
            groups.append((events[start][0], events[end][0]))
            votes.append(len(leads))
        start = end + 1
    return groups, votes


def detect_beats(bandpassed: np.ndarray, fs: int, usable: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (samples) and their votes from lead-wise detection on the ``usable`` leads."""
    if not usable:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    detections = [_lead_peaks(bandpassed[i], fs) for i in usable]
    min_votes = max(1, math.ceil(VOTE_SHARE * len(usable)))
    groups, votes = _vote(detections, fs, min_votes)
    velocity = spatial_velocity(bandpassed[usable], fs)
    pad = round(0.06 * fs)
    times, kept_votes = [], []
    for (first, last), count in zip(groups, votes, strict=True):
        lo, hi = max(first - pad, 0), min(last + pad + 1, velocity.size)
        if hi <= lo:
            continue
        peak = lo + int(np.argmax(velocity[lo:hi]))
        if times and peak - times[-1] < REFRACTORY_S * fs:
            if velocity[peak] > velocity[times[-1]]:  # keep the stronger of two beats too close together
                times[-1], kept_votes[-1] = peak, max(count, kept_votes[-1])
            continue
        times.append(peak)
        kept_votes.append(count)
    times_array = np.asarray(times, dtype=np.int64)
    if len(times_array) >= 3:  # a T wave or an artefact enough leads fired on is far slower than a QRS
        strong = velocity[times_array] >= MIN_VELOCITY_SHARE * float(np.median(velocity[times_array]))
        return times_array[strong], np.asarray(kept_votes, dtype=np.int64)[strong]
    return times_array, np.asarray(kept_votes, dtype=np.int64)


def _qrs_segments(x: np.ndarray, samples: np.ndarray, before: int, after: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, leads, before + after) QRS segments around each beat, and which beats lie wholly in the record."""
    n = x.shape[1]
    index = samples[:, None] + np.arange(-before, after)[None, :]
    inside = ((index >= 0) & (index < n)).all(axis=1)
    segments = x[:, np.clip(index, 0, max(n - 1, 0))].transpose(1, 0, 2)
    return segments, inside


def _correlate(segments: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Pearson correlation of each (flattened) segment with the template."""
    a = segments.reshape(len(segments), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = template.reshape(-1) - template.mean()
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
    return np.where(denominator > 0, a @ b / np.where(denominator > 0, denominator, 1.0), 0.0)


def align_beats(x: np.ndarray, samples: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """Beat times moved (by up to :data:`ALIGN_MAX_S`) to where each QRS best matches the dominant QRS,
    and each beat's correlation with it (NaN for a beat too near the record's edge to compare).

    The spatial-velocity peak can jump between two lobes of similar slope from one beat to the next; the
    median beat then blurs and a normal beat looks ectopic. Matching the whole QRS shape fixes both.
    """
    correlation = np.full(len(samples), np.nan)
    if len(samples) == 0 or x.shape[0] == 0:
        return samples, correlation
    before, after = (round(s * fs) for s in QRS_HALF_WINDOW_S)
    lag = round(ALIGN_MAX_S * fs)
    segments, inside = _qrs_segments(x, samples, before + lag, after + lag)
    width = before + after
    if not inside.any():
        return samples, correlation
    windows = np.stack([segments[inside, :, lag + k:lag + k + width] for k in range(-lag, lag + 1)])  # (K, B, L, W)
    shift = np.zeros(int(inside.sum()), dtype=np.int64)
    best = np.zeros(int(inside.sum()))
    template = np.median(windows[lag], axis=0)
    for _ in range(2):
        scores = np.stack([_correlate(w, template) for w in windows])  # (K, B)
        shift = scores.argmax(axis=0)
        best = scores.max(axis=0)
        aligned = windows[shift, np.arange(len(shift))]
        alike = best >= np.median(best)  # the majority morphology, before ectopic beats pull the median
        template = np.median(aligned[alike], axis=0)
    moved = samples.copy()
    keep = best >= ECTOPIC_CORRELATION  # an ectopic beat keeps its own time: it has no match to move to
    moved[np.flatnonzero(inside)[keep]] += shift[keep] - lag
    correlation[inside] = best
    return moved, correlation


def rr_irregularity(rr: np.ndarray) -> float | None:
    """Median successive RR difference over the median RR: robust to one missed or extra beat."""
    if len(rr) < 3:
        return None
    return float(np.median(np.abs(np.diff(rr))) / np.median(rr))


def _normal_rr(samples: np.ndarray, abnormal: np.ndarray) -> np.ndarray:
    """RR intervals between consecutive beats neither of which is abnormal."""
    if len(samples) < 2:
        return np.zeros(0)
    keep = ~(abnormal[1:] | abnormal[:-1])
    return np.diff(samples)[keep].astype(np.float64)


def classify_beats(bandpassed: np.ndarray, fs: int, usable: list[int], samples: np.ndarray,
                   votes: np.ndarray) -> Beats:
    """Morphology (ectopic or not) and prematurity of each beat, and the RR irregularity of the rest."""
    samples, correlation = align_beats(bandpassed[usable], samples, fs)
    # near the record's edges a beat must be whole and shaped like the dominant QRS: anything else is a beat
    # the edge cut off, or the T wave of one, and neither gives a time nor a morphology
    n = bandpassed.shape[1]
    edge = (samples < EDGE_S * fs) | (samples >= n - EDGE_S * fs)
    keep = ~(edge & (np.nan_to_num(correlation, nan=0.0) < ECTOPIC_CORRELATION))
    if len(samples) >= 3 and keep.sum() >= 2:
        samples, votes, correlation = samples[keep], votes[keep], correlation[keep]
    complete = np.isfinite(correlation)  # a beat cut by the record's edge is neither compared nor timed
    ectopic = np.nan_to_num(correlation, nan=1.0) < ECTOPIC_CORRELATION
    if len(ectopic) and ectopic.mean() > 0.5:
        ectopic = np.zeros_like(ectopic)  # no dominant morphology: nothing can be called ectopic
    irregularity = rr_irregularity(_normal_rr(samples, ectopic))
    premature = ectopic.copy()
    if irregularity is not None and irregularity <= IRREGULAR_FOR_PREMATURITY and len(samples) >= 4:
        rr = np.diff(samples).astype(np.float64)
        reference = float(np.median(_normal_rr(samples, ectopic)))
        early = np.zeros(len(samples), dtype=bool)
        early[1:] = rr < PREMATURE_RR_SHARE * reference
        premature |= early & complete
        if premature.any():
            irregularity = rr_irregularity(_normal_rr(samples, premature))
    return Beats(samples, votes, np.nan_to_num(correlation, nan=1.0), ectopic, premature, complete, irregularity,
                 tuple(usable))
