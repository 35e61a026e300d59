"""Recording noise, added where it really arises: at the electrodes.

Baseline wander (respiration, slow drift), powerline interference (50 or 60 Hz) and muscle noise
(broadband, in bursts, strongest at the limb electrodes) are drawn per electrode (RA, LA, LL,
V1-V6) and then seen through the lead definitions (I = LA - RA, II = LL - RA, Vi = Ei - Wilson's
central terminal). Noise is therefore shared between leads the way it is on a real cart, and the
limb-lead identities still hold exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from meit.errors import ConfigError

#: Electrode potentials (RA, LA, LL, V1..V6) -> independent leads (I, II, V1..V6).
_ELECTRODES_TO_LEADS = np.zeros((8, 9))
_ELECTRODES_TO_LEADS[0, :3] = [-1.0, 1.0, 0.0]
_ELECTRODES_TO_LEADS[1, :3] = [-1.0, 0.0, 1.0]
_ELECTRODES_TO_LEADS[2:, :3] = -1.0 / 3.0
_ELECTRODES_TO_LEADS[2:, 3:] = np.eye(6)
_EMG_WEIGHT = np.array([1.0, 1.0, 1.0, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45])


MAX_LEVEL = 5.0
_MAINS = (50.0, 60.0)


@dataclass(frozen=True)
class NoiseMix:
    """How much of each noise to add: 0 none, 1 a typical resting ECG, 2-3 a poor recording.

    ``mains_hz`` fixes the powerline frequency; None draws 50 Hz (70 %) or 60 Hz per record.
    """

    baseline: float = 1.0
    powerline: float = 1.0
    emg: float = 1.0
    mains_hz: float | None = None

    def __post_init__(self) -> None:
        for name in ("baseline", "powerline", "emg"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= MAX_LEVEL:
                raise ConfigError(f"noise {name}={value!r} must be between 0 (none) and {MAX_LEVEL:g}")
        if self.mains_hz is not None and self.mains_hz not in _MAINS:
            raise ConfigError(f"noise mains={self.mains_hz!r} must be 50 or 60 (Hz)")

    @property
    def level(self) -> float:
        """The largest component level (the ``noise_level`` ground-truth column)."""
        return float(max(self.baseline, self.powerline, self.emg))

    @classmethod
    def of(cls, value: float | NoiseMix) -> NoiseMix:
        """A mix from one level for all three kinds, or the mix itself."""
        if isinstance(value, NoiseMix):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"noise level {value!r} must be a number or a NoiseMix")
        return cls(float(value), float(value), float(value))

    @classmethod
    def parse(cls, text: str) -> NoiseMix:
        """``"1.5"`` (all kinds) or ``"baseline=2,powerline=0,emg=0.5,mains=60"`` (``level=`` sets all)."""
        text = text.strip()
        try:
            return cls.of(float(text))
        except ValueError:
            pass
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or key not in {"level", "baseline", "powerline", "emg", "mains"}:
                raise ConfigError(
                    f"noise: {item!r} is not one of level=, baseline=, powerline=, emg=, mains= (or a number)"
                )
            try:
                values[key] = float(raw)
            except ValueError:
                raise ConfigError(f"noise: {key}={raw.strip()!r} is not a number") from None
        base = values.pop("level", 1.0)
        mains = values.pop("mains", None)
        return cls(
            baseline=values.get("baseline", base),
            powerline=values.get("powerline", base),
            emg=values.get("emg", base),
            mains_hz=mains,
        )


@dataclass(frozen=True)
class NoiseLevels:
    """Per-record noise amplitudes (mV at one electrode) drawn from a :class:`NoiseMix`."""

    level: float
    baseline_mv: float
    powerline_mv: float
    powerline_hz: float
    emg_mv: float


def sample_levels(rng: np.random.Generator, mix: NoiseMix) -> NoiseLevels:
    """Draw this record's amplitudes; each kind scales with its level (level 1: typical)."""
    u = rng.random(5)
    hz = mix.mains_hz if mix.mains_hz is not None else (50.0 if u[0] < 0.7 else 60.0)
    return NoiseLevels(
        level=mix.level,
        baseline_mv=float(mix.baseline * (0.02 + 0.13 * u[1])),
        powerline_mv=float(mix.powerline * (0.003 + 0.017 * u[2]) if u[3] < 0.6 else 0.0),
        powerline_hz=float(hz),
        emg_mv=float(mix.emg * (0.003 + 0.017 * u[4])),
    )


def _mains(hz: float, n: int, fs: float) -> np.ndarray:
    """sin and cos of the mains frequency (2 × n); 50 and 60 Hz repeat exactly, so one period is tiled."""
    period = n
    if float(hz).is_integer() and float(fs).is_integer():
        period = min(n, int(fs) // math.gcd(int(hz), int(fs)))
    arg = 2 * np.pi * hz * np.arange(period) / fs
    one = np.stack([np.sin(arg), np.cos(arg)])
    return np.tile(one, (1, -(-n // period)))[:, :n]


def lead_noise(rng: np.random.Generator, levels: NoiseLevels, n: int, fs: float) -> np.ndarray:
    """Noise on the eight independent leads (8 × n, mV)."""
    if levels.baseline_mv <= 0.0 and levels.powerline_mv <= 0.0 and levels.emg_mv <= 0.0:
        return np.zeros((8, n))
    t = np.arange(n) / fs
    freqs = np.array([rng.uniform(0.12, 0.4), rng.uniform(0.02, 0.1)])
    phases = rng.uniform(0, 2 * np.pi, 2)
    basis = np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])
    weights = rng.uniform(-1.0, 1.0, (9, 2)) * levels.baseline_mv
    if levels.powerline_mv > 0.0:
        basis = np.concatenate([basis, _mains(levels.powerline_hz, n, fs)])
        weights = np.concatenate([weights, rng.normal(0.0, levels.powerline_mv / np.sqrt(2), (9, 2))], axis=1)
    electrodes = weights @ basis
    if levels.emg_mv > 0.0:
        # broadband noise: first difference of white noise (spectrum rising towards Nyquist). The white
        # noise is a sum of two uniforms, so each output sample sums four: near-Gaussian (Irwin-Hall)
        # at a third of the cost of normal draws. Variance 4/12, hence the factor sqrt(3).
        u = rng.random((2, 9, n + 1))
        u[0] += u[1]
        emg = np.diff(u[0], axis=1)
        emg *= (levels.emg_mv * np.sqrt(3.0) * _EMG_WEIGHT)[:, None]
        for _ in range(int(rng.integers(0, 3))):  # bursts of muscle activity
            width = int(rng.uniform(0.3, 1.5) * fs)
            start = int(rng.integers(0, max(n - width, 1)))
            stop = min(start + width, n)
            emg[:, start:stop] *= 1.0 + np.hanning(width)[: stop - start] * rng.uniform(1.0, 3.0)
        electrodes += emg
    return _ELECTRODES_TO_LEADS @ electrodes
