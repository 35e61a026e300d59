"""A 12-lead signal as a stack of 2-D encodings (Qiu et al.): GAF, recurrence plot, Markov transition field.

Each lead becomes one ``size`` × ``size`` image and the 12 are stacked as channels, (12, size, size), in
meit's lead order. One channel per lead keeps every lead at the full resolution and in the same
pixel ↔ time correspondence (row i and column j are both time), so an encoder's first layer can mix
leads at each time pair; a mosaic of 12 tiles would give each lead a twelfth of the pixels and put
unrelated leads side by side inside one receptive field. Image encoders take the 12 channels through
their first convolution / patch embedding (``in_channels=12``).

- ``gaf``: Gramian angular summation field, cos(φᵢ + φⱼ) of the lead min-max scaled to [-1, 1]
  (φ = arccos), after piecewise aggregate approximation to ``size`` points. Values in [-1, 1].
- ``rp``: unthresholded recurrence plot |xᵢ − xⱼ| of the lead reduced to ``size`` points (piecewise
  aggregate approximation) and min-max scaled to [0, 1]. Values in [0, 1].
- ``mtf``: Markov transition field with 8 quantile bins, averaged down to ``size`` × ``size``. Values in
  [0, 1] (transition probabilities). The field costs O(T²), so a lead longer than 4 × ``size`` samples
  is first reduced to 4 × ``size`` points by piecewise aggregate approximation (a 10 s record at 224:
  896 points, ~90 Hz — at 500 Hz consecutive samples nearly always share a bin, and the transition
  matrix would be almost diagonal). 1.4 s → ~0.05 s per 500 Hz record.

A flat lead (peak-to-peak below 1 µV) carries no information and gives a channel of zeros. A record
shorter than ``size`` samples is linearly interpolated up to ``size`` samples first.

All three are computed with the ``pyts`` library. pyts compiles its numba kernels eagerly at import
(about 30–45 s on a 2-core machine, every process); :func:`pyts_modules` imports it with numba's on-disk
cache switched on (under ``$MEIT_CACHE/numba`` unless ``NUMBA_CACHE_DIR`` is set), so only the first
process pays that and later ones import it in a few seconds.
"""

from __future__ import annotations

import functools
import os
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np

from meit.ecg_signal import crop_or_pad
from meit.errors import ConfigError
from meit.paths import cache_dir
from meit.render.paper import check_signal

ENCODINGS: tuple[str, ...] = ("gaf", "rp", "mtf")
VALUE_RANGE: dict[str, tuple[float, float]] = {"gaf": (-1.0, 1.0), "rp": (0.0, 1.0), "mtf": (0.0, 1.0)}
MTF_BINS = 8
MTF_POINTS_PER_PIXEL = 4
FLAT_MV = 1e-3
SIZE_RANGE = (8, 1024)


@functools.cache
def pyts_modules() -> Any:
    """``pyts.image`` and ``pyts.approximation``, their numba kernels cached on disk (see the module doc)."""
    import numba
    from numba.core import config as numba_config

    if not os.environ.get("NUMBA_CACHE_DIR"):
        numba_config.CACHE_DIR = str(cache_dir("numba"))
    eager = numba.njit

    def cached_njit(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cache", True)
        return eager(*args, **kwargs)

    numba.njit = cached_njit  # pyts does `from numba import njit` at import; restored right after
    try:
        import pyts.approximation
        import pyts.image
    finally:
        numba.njit = eager
    return SimpleNamespace(image=pyts.image, approximation=pyts.approximation)


def _stretch(x: np.ndarray, length: int) -> np.ndarray:
    """Each lead linearly interpolated to ``length`` samples (only used when the record is shorter)."""
    old = np.linspace(0.0, 1.0, x.shape[1]) if x.shape[1] > 1 else np.zeros(1)
    new = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(new, old, lead) for lead in x])


def signal_image(signal: np.ndarray, fs: float, *, mode: str, size: int = 224,
                 seconds: float | None = None) -> np.ndarray:
    """``signal`` (12, T) mV at ``fs`` → float32 (12, ``size``, ``size``), one encoded image per lead.

    ``seconds`` keeps the first ``seconds`` of the record (zero-padded when shorter); None uses it all.
    """
    if mode not in ENCODINGS:
        raise ConfigError(f"mode={mode!r}: expected one of {list(ENCODINGS)}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
        raise ConfigError(f"size={size!r}: expected an integer in [{SIZE_RANGE[0]}, {SIZE_RANGE[1]}]")
    x = check_signal(signal, fs)
    if seconds is not None:
        if not np.isfinite(seconds) or seconds <= 0:
            raise ConfigError(f"seconds={seconds!r}: expected a positive number or None")
        x = crop_or_pad(x, max(1, round(seconds * float(fs))), mode="start")
    if x.shape[1] < size:
        x = _stretch(x, size)
    out = np.zeros((x.shape[0], size, size), dtype=np.float32)
    varying = np.ptp(x, axis=1) >= FLAT_MV
    if not varying.any():
        return out
    pyts = pyts_modules()
    rows = x[varying]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "some quantiles are equal" on padded or stepped leads
        if mode == "gaf":
            images = pyts.image.GramianAngularField(image_size=size, method="summation",
                                                    sample_range=(-1, 1)).fit_transform(rows)
        elif mode == "mtf":
            if rows.shape[1] > MTF_POINTS_PER_PIXEL * size:
                rows = pyts.approximation.PiecewiseAggregateApproximation(
                    window_size=None, output_size=MTF_POINTS_PER_PIXEL * size).fit_transform(rows)
            images = pyts.image.MarkovTransitionField(image_size=size, n_bins=MTF_BINS,
                                                      strategy="quantile").fit_transform(rows)
        else:
            paa = pyts.approximation.PiecewiseAggregateApproximation(window_size=None, output_size=size)
            reduced = paa.fit_transform(rows)
            low, high = reduced.min(axis=1, keepdims=True), reduced.max(axis=1, keepdims=True)
            scaled = (reduced - low) / np.maximum(high - low, 1e-12)
            images = pyts.image.RecurrencePlot(dimension=1, threshold=None).fit_transform(scaled)
    low, high = VALUE_RANGE[mode]
    out[varying] = np.clip(images, low, high).astype(np.float32)
    return out
