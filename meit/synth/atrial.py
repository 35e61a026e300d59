"""Fibrillatory atrial activity: the baseline of atrial fibrillation.

f-waves are a quasi-periodic atrial dipole (4.5-8 Hz, wandering frequency and amplitude) whose
direction drifts between two vectors, so they are largest in V1 and the inferior leads and differ in
shape from lead to lead, as on a real tracing.
"""

from __future__ import annotations

import numpy as np

from meit.synth.dipole import LEAD_VECTORS_12

_ATRIAL_DIRECTION = np.array([0.15, 0.55, -0.8])


def fibrillatory_waves(
    rng: np.random.Generator, n: int, fs: float, cap_mv: float = np.inf
) -> tuple[np.ndarray, float]:
    """A 3 × n atrial dipole and its peak amplitude in V1 (mV).

    The V1 amplitude is drawn between 0.04 mV (fine) and 0.12 mV (coarse); no lead exceeds ``cap_mv``
    (the caller keeps f-waves well below the QRS in low-voltage records).
    """
    t = np.arange(n) / fs
    f0 = rng.uniform(4.5, 8.0)
    slow = rng.uniform(0.05, 0.3, 2)
    ph = rng.uniform(0, 2 * np.pi, 5)
    freq = f0 + 0.7 * np.sin(2 * np.pi * slow[0] * t + ph[0])
    phase = 2 * np.pi * np.cumsum(freq) / fs + ph[1]
    wave = np.sin(phase) + 0.35 * np.sin(2 * phase + ph[2])
    envelope = 1.0 + 0.45 * np.sin(2 * np.pi * slow[1] * t + ph[3])
    drift = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + ph[4])
    u0 = _ATRIAL_DIRECTION + rng.normal(0.0, 0.25, 3)
    u1 = _ATRIAL_DIRECTION + rng.normal(0.0, 0.4, 3)
    dipole = np.outer(u0, wave * envelope * (1 - drift)) + np.outer(u1, wave * envelope * drift)
    peaks = np.abs(LEAD_VECTORS_12 @ dipole).max(axis=1)
    scale = min(rng.uniform(0.04, 0.12) / max(float(peaks[6]), 1e-6), cap_mv / max(float(peaks.max()), 1e-6))
    return dipole * scale, float(peaks[6] * scale)
