"""Signal perturbations for robustness evaluation, applied to the stored signal (mV, source fs).

MEIT's protocol is ``gaussian``: noise with σ ~ U(0, level) on one random segment covering up to 20 %
of the record (level 0.1 mV in the paper). The others model what real recordings suffer: baseline
wander, powerline interference, leads that fell off. Each record's perturbation is a pure function of
(seed, record id), so a robustness table is reproducible whatever the batch order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from meit.errors import ConfigError

Perturbation = Callable[[np.ndarray, int, np.random.Generator, float], np.ndarray]


def gaussian_segment(x: np.ndarray, fs: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """MEIT: Gaussian noise, σ ~ U(0, level) mV, on a random segment of 0–20 % of the signal."""
    out = x.copy()
    length = x.shape[1]
    seg = int(rng.uniform(0.0, 0.2) * length)
    if seg == 0 or level <= 0:
        return out
    start = int(rng.integers(0, length - seg + 1))
    sigma = rng.uniform(0.0, level)
    out[:, start : start + seg] += rng.normal(0.0, sigma, size=(x.shape[0], seg)).astype(x.dtype)
    return out


def baseline_wander(x: np.ndarray, fs: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Slow sinusoidal drift (0.05–0.5 Hz, respiration-like) of amplitude ``level`` mV, common to all leads."""
    t = np.arange(x.shape[1]) / fs
    freq, phase = rng.uniform(0.05, 0.5), rng.uniform(0, 2 * np.pi)
    gains = rng.uniform(0.5, 1.0, size=(x.shape[0], 1))
    return x + (level * gains * np.sin(2 * np.pi * freq * t + phase)[None]).astype(x.dtype)


def powerline(x: np.ndarray, fs: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """50 or 60 Hz interference of amplitude ``level`` mV (aliased as it would be at low fs)."""
    t = np.arange(x.shape[1]) / fs
    freq = 50.0 if rng.random() < 0.5 else 60.0
    phase = rng.uniform(0, 2 * np.pi)
    return x + (level * np.sin(2 * np.pi * freq * t + phase)[None]).astype(x.dtype)


def lead_dropout(x: np.ndarray, fs: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Zero ``round(level)`` randomly chosen leads (electrodes off)."""
    k = min(round(level), x.shape[0])
    out = x.copy()
    if k > 0:
        out[rng.choice(x.shape[0], size=k, replace=False)] = 0.0
    return out


PERTURBATIONS: dict[str, Perturbation] = {
    "gaussian": gaussian_segment,
    "baseline": baseline_wander,
    "powerline": powerline,
    "dropout": lead_dropout,
}
#: default levels of a robustness sweep (units: mV, or leads for dropout)
DEFAULT_LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian": (0.05, 0.1, 0.2),
    "baseline": (0.1, 0.3, 0.6),
    "powerline": (0.02, 0.05, 0.1),
    "dropout": (1, 3, 6),
}


@dataclass(frozen=True)
class PerturbSpec:
    name: str
    level: float
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.name}@{self.level:g}"

    def __call__(self, signal: np.ndarray, fs: int, record_id: str) -> np.ndarray:
        digest = hashlib.blake2b(f"{self.seed}:{self.name}:{record_id}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        return PERTURBATIONS[self.name](signal, fs, rng, self.level)


def parse_perturbations(texts: list[str], seed: int = 0) -> list[PerturbSpec]:
    """``['gaussian', 'dropout:1,3']`` → specs; a bare name takes its default levels."""
    specs: list[PerturbSpec] = []
    for text in texts:
        name, _, levels = text.partition(":")
        name = name.strip()
        if name not in PERTURBATIONS:
            raise ConfigError(f"unknown perturbation '{name}' in '{text}'; choose from {sorted(PERTURBATIONS)}")
        try:
            values = [float(v) for v in levels.split(",")] if levels else list(DEFAULT_LEVELS[name])
        except ValueError as err:
            raise ConfigError(f"perturbation '{text}': levels must be numbers like {name}:0.05,0.1") from err
        if any(v < 0 for v in values):
            raise ConfigError(f"perturbation '{text}': levels must be ≥ 0")
        specs.extend(PerturbSpec(name, v, seed) for v in values)
    return specs
