"""Beat timing: sinus rhythm with heart-rate variability, atrial fibrillation, ectopic beats.

Sinus RR intervals follow the target rate with respiratory sinus arrhythmia and a slower
(Mayer-wave) oscillation, a few percent in all, so they stay regular. Atrial fibrillation draws RR
intervals independently (coefficient of variation 16-28 %), so they are irregularly irregular.
Premature ventricular complexes arrive early; in sinus rhythm the next sinus beat is blocked, giving the
full compensatory pause (its P wave still fires on time, hidden in the ectopic beat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COUPLING_S = 0.34  # earlier ectopic beats would fall in the ventricles' refractory period


@dataclass(frozen=True)
class BeatTrain:
    """When each QRS starts (seconds from the first sample), which are PVCs, and sinus P-wave onsets."""

    qrs_onsets: np.ndarray
    is_pvc: np.ndarray
    p_onsets: np.ndarray
    resp_hz: float
    resp_phase: float

    @property
    def rr_prev(self) -> np.ndarray:
        rr = np.diff(self.qrs_onsets)
        return np.concatenate([[rr[0] if len(rr) else 1.0], rr])

    @property
    def rr_next(self) -> np.ndarray:
        rr = np.diff(self.qrs_onsets)
        return np.concatenate([rr, [np.inf]])


def _lead_in(rng: np.random.Generator, rr0: float) -> float:
    """Start two to three beats before the record so it opens mid-cycle, as a real recording does."""
    return -(2.0 + rng.random()) * rr0


def sinus_train(
    rng: np.random.Generator, rate_bpm: float, seconds: float, pr_s: float, n_pvc: int
) -> BeatTrain:
    rr0 = 60.0 / rate_bpm
    resp_hz = float(rng.uniform(0.15, 0.33))
    resp_phase = float(rng.uniform(0, 2 * np.pi))
    rsa = rng.uniform(0.005, 0.025) * min(1.0, 75.0 / rate_bpm)
    lf_hz, lf_phase, lf = rng.uniform(0.07, 0.12), rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.012)
    times = [_lead_in(rng, rr0)]
    while times[-1] < seconds + 1.0:
        t = times[-1]
        factor = (
            1.0
            + rsa * np.sin(2 * np.pi * resp_hz * t + resp_phase)
            + lf * np.sin(2 * np.pi * lf_hz * t + lf_phase)
            + rng.normal(0.0, 0.004)
        )
        times.append(t + rr0 * factor)
    onsets = np.array(times)
    p_onsets = onsets - pr_s
    is_pvc = np.zeros(len(onsets), dtype=bool)
    for k in _pvc_slots(rng, onsets, seconds, n_pvc):
        rr = onsets[k] - onsets[k - 1]
        coupling = _coupling(rng, rr)
        if coupling is None:
            continue
        onsets[k] = onsets[k - 1] + coupling  # the sinus beat k is blocked; its P wave stays
        is_pvc[k] = True
    return BeatTrain(onsets, is_pvc, p_onsets, resp_hz, resp_phase)


def af_train(rng: np.random.Generator, rate_bpm: float, seconds: float, n_pvc: int) -> BeatTrain:
    rr0 = 60.0 / rate_bpm
    sigma = rng.uniform(0.16, 0.28)
    n = int(np.ceil((seconds + 4.0 * rr0 + 1.0) / (0.5 * rr0))) + 4
    rr = rr0 * np.exp(sigma * rng.standard_normal(n) - 0.5 * sigma**2)
    rr = np.maximum(rr, 0.3)
    onsets = _lead_in(rng, rr0) + np.concatenate([[0.0], np.cumsum(rr)])
    onsets = onsets[: int(np.searchsorted(onsets, seconds + 1.0)) + 1]
    is_pvc = np.zeros(len(onsets), dtype=bool)
    for k in _pvc_slots(rng, onsets, seconds, n_pvc):
        coupling = _coupling(rng, onsets[k] - onsets[k - 1])
        if coupling is None:
            continue
        onsets[k] = onsets[k - 1] + coupling
        is_pvc[k] = True
    return BeatTrain(onsets, is_pvc, np.zeros(0), float(rng.uniform(0.15, 0.33)), float(rng.uniform(0, 6.28)))


def _coupling(rng: np.random.Generator, rr: float) -> float | None:
    """PVC coupling interval: premature by at least 80 ms, but after ventricular refractoriness."""
    low, high = MIN_COUPLING_S, rr - 0.08
    if high < low:
        return None
    return float(np.clip(rng.uniform(0.5, 0.7) * rr, low, high))


def _pvc_slots(rng: np.random.Generator, onsets: np.ndarray, seconds: float, n_pvc: int) -> list[int]:
    """Indices of beats to replace by PVCs: inside the record, never two in a row."""
    if n_pvc <= 0:
        return []
    inside = np.flatnonzero((onsets > 0.6) & (onsets < seconds - 0.8))
    inside = inside[inside >= 1]
    chosen: list[int] = []
    for k in rng.permutation(inside):
        if all(abs(int(k) - c) > 1 for c in chosen):
            chosen.append(int(k))
        if len(chosen) == n_pvc:
            break
    return sorted(chosen)


def measured_rate(onsets: np.ndarray, qrs_s: float, seconds: float) -> tuple[float, np.ndarray]:
    """Ventricular rate (bpm) over the complete QRS complexes inside the record, and those onsets."""
    inside = onsets[(onsets >= 0.0) & (onsets + qrs_s <= seconds)]
    if len(inside) < 2:
        return float("nan"), inside
    return 60.0 / float(np.mean(np.diff(inside))), inside
