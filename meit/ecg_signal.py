"""Pure signal processing on ``(leads, T)`` arrays: sanitise, resample, crop/pad, normalise, filter.

A leaf module so that raw-record reading and dataset preparation share these functions with the
load-time transforms (:mod:`meit.data.transforms`) without importing the training side. It needs only
numpy to import (the filtering functions import scipy when called), so the encoder contract can take
its vocabulary (normalisations, baselines) from here at no cost.

Every function returns a new array and none of them can emit NaN or inf: inputs are sanitised
first, flat leads (and flat records) never divide by zero, and :func:`finalise` clips to the float32
range before casting.

Normalisations: ``zscore`` / ``minmax`` work per lead; ``zscore_record`` / ``minmax_record`` use one
mean/std (or min/max) over the whole record, all leads together (how MERL and ECGFounder were
trained). Filters: :func:`notch` (IIR notch, Q = 30), :func:`bandpass` (Butterworth),
:func:`remove_baseline` (0.5 Hz Butterworth high-pass) and :func:`median_baseline` (subtract a 0.4 s
running median), all zero-phase; how the ends are padded is :data:`Padding`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

import numpy as np

from meit.errors import ConfigError, DataError

Normalisation = Literal["none", "zscore", "minmax", "zscore_record", "minmax_record"]
CropMode = Literal["center", "start", "random"]

NORMALISATIONS: tuple[str, ...] = ("none", "zscore", "minmax", "zscore_record", "minmax_record")
CROP_MODES: tuple[str, ...] = ("center", "start", "random")
#: how zero-phase filters extend the record's ends: ``scipy`` = scipy.signal.filtfilt's defaults (what
#: public encoders' preprocessing calls; the load-time pipeline's default), ``mirror`` = a long even pad
Padding = Literal["scipy", "mirror"]
PADDINGS: tuple[str, ...] = ("scipy", "mirror")
#: quality factor of :func:`notch` (ECGFounder's ``iirnotch(50, 30, fs)``)
NOTCH_Q = 30.0
#: ``baseline="highpass"`` cut-off, Hz
BASELINE_HIGHPASS_HZ = 0.5
#: ``baseline="median"`` window, seconds (ECGFounder: ``int(0.4 * fs) + 1`` samples, made odd)
BASELINE_MEDIAN_SECONDS = 0.4
Baseline = Literal["none", "highpass", "median"]
BASELINES: tuple[str, ...] = ("none", "highpass", "median")
#: largest Butterworth order a declaration may ask for (higher orders gain nothing for ECGs)
MAX_BANDPASS_ORDER = 8
_F32_MAX = float(np.finfo(np.float32).max)


def _check_2d(x: np.ndarray, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a (leads, T) array, got shape {arr.shape}")
    return arr


def check_fs(value: float, name: str) -> int:
    """A sampling rate as int, or a ConfigError naming ``name`` (shared with the transform objects)."""
    if not np.isfinite(value) or value <= 0 or float(value) != int(value):
        raise ConfigError(f"{name}: expected a positive integer sampling rate in Hz, got {value!r}")
    return int(value)


def sanitise(x: np.ndarray) -> np.ndarray:
    """Float64 copy with NaN/±inf replaced by 0 and values clipped to the float32 range.

    Prepared datasets hold no NaN; this guards arrays that come from elsewhere (user data, noise
    injection) so that later arithmetic cannot overflow.
    """
    arr = np.array(_check_2d(x), dtype=np.float64, copy=True)
    np.nan_to_num(arr, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(arr, -_F32_MAX, _F32_MAX, out=arr)
    return arr


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """Polyphase resampling along time (scipy ``resample_poly``, anti-aliasing FIR included).

    Output length is ``ceil(T * fs_out / fs_in)``; identical rates return a float64 copy.
    """
    from scipy import signal as sps

    arr = np.asarray(_check_2d(x), dtype=np.float64)
    fs_in = check_fs(fs_in, "fs_in")
    fs_out = check_fs(fs_out, "fs_out")
    if fs_in == fs_out or arr.shape[1] == 0:
        return arr.copy()
    ratio = Fraction(fs_out, fs_in)
    return sps.resample_poly(arr, ratio.numerator, ratio.denominator, axis=1)


def crop_or_pad(
    x: np.ndarray,
    length: int,
    mode: CropMode = "center",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Cut or zero-pad the time axis to exactly ``length`` samples.

    ``center`` keeps / places the signal in the middle, ``start`` keeps the beginning and pads at the
    end, ``random`` picks the offset from ``rng`` (a fresh unseeded generator when None).
    """
    arr = _check_2d(x)
    if length < 0:
        raise ConfigError(f"length: expected >= 0 samples, got {length}")
    if mode not in CROP_MODES:
        raise ConfigError(f"mode: expected one of {CROP_MODES}, got {mode!r}")
    n = arr.shape[1]
    if n == length:
        return arr.copy()
    slack = abs(n - length)
    if mode == "start":
        offset = 0
    elif mode == "center":
        offset = slack // 2
    else:
        offset = int((rng or np.random.default_rng()).integers(0, slack + 1))
    if n > length:
        return arr[:, offset : offset + length].copy()
    out = np.zeros((arr.shape[0], length), dtype=arr.dtype)
    out[:, offset : offset + n] = arr
    return out


def zscore(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-lead (x - mean) / std; a lead whose std is below ``eps`` becomes all zeros."""
    arr = np.asarray(_check_2d(x), dtype=np.float64)
    if arr.shape[1] == 0:
        return arr.copy()
    mean = arr.mean(axis=1, keepdims=True)
    centred = arr - mean
    std = np.sqrt(np.mean(centred * centred, axis=1, keepdims=True))
    flat = ~(std > eps)
    out = centred / np.where(flat, 1.0, std)
    out[np.broadcast_to(flat, out.shape)] = 0.0
    return out


def minmax(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per-lead scaling to [0, 1]; a lead whose range is below ``eps`` becomes all zeros."""
    arr = np.asarray(_check_2d(x), dtype=np.float64)
    if arr.shape[1] == 0:
        return arr.copy()
    low = arr.min(axis=1, keepdims=True)
    span = arr.max(axis=1, keepdims=True) - low
    flat = ~(span > eps)
    out = (arr - low) / np.where(flat, 1.0, span)
    out[np.broadcast_to(flat, out.shape)] = 0.0
    return np.clip(out, 0.0, 1.0)


def zscore_record(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(x - mean) / std with one mean and std over the whole record (all leads together).

    A record whose std is below ``eps`` becomes all zeros. ECGFounder's preprocessing.
    """
    arr = np.asarray(_check_2d(x), dtype=np.float64)
    if arr.size == 0:
        return arr.copy()
    centred = arr - arr.mean()
    std = float(np.sqrt(np.mean(centred * centred)))
    if not std > eps:
        return np.zeros_like(arr)
    return centred / std


def minmax_record(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Scaling to [0, 1] by the min and max of the whole record (all leads together).

    A record whose range is below ``eps`` becomes all zeros. MERL's preprocessing.
    """
    arr = np.asarray(_check_2d(x), dtype=np.float64)
    if arr.size == 0:
        return arr.copy()
    low = arr.min()
    span = arr.max() - low
    if not span > eps:
        return np.zeros_like(arr)
    return np.clip((arr - low) / span, 0.0, 1.0)


def normalise(x: np.ndarray, normalisation: Normalisation, eps: float = 1e-6) -> np.ndarray:
    """Apply one of :data:`NORMALISATIONS` (``none`` returns a float64 copy)."""
    if normalisation == "zscore":
        return zscore(x, eps)
    if normalisation == "minmax":
        return minmax(x)
    if normalisation == "zscore_record":
        return zscore_record(x, eps)
    if normalisation == "minmax_record":
        return minmax_record(x)
    if normalisation == "none":
        return np.asarray(_check_2d(x), dtype=np.float64).copy()
    raise ConfigError(f"normalisation: expected one of {NORMALISATIONS}, got {normalisation!r}")


def _filtfilt(x: np.ndarray, sos: np.ndarray, settle: int, padding: Padding = "mirror") -> np.ndarray:
    """Zero-phase filtering along time; ``padding`` says how the ends are extended (see :data:`PADDINGS`).

    ``mirror``: an even (mirror) pad of ~3 periods of the high-pass cut-off (``settle`` samples), so the
    filter settles before the record starts. ``scipy``: ``scipy.signal.filtfilt``'s defaults (odd
    extension, ``3 × (filter order + 1)`` samples), what public ECG code calls. Either way a short record
    gets a shorter pad instead of an error.
    """
    from scipy import signal as sps

    arr = np.asarray(_check_2d(x), dtype=np.float64)
    if arr.shape[1] < 2:
        return arr.copy()
    if padding == "scipy":
        # sosfiltfilt's own default, which equals filtfilt's 3 * max(len(a), len(b)) for the same filter
        trailing_zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
        padlen = min(3 * (2 * len(sos) + 1 - trailing_zeros), arr.shape[1] - 1)
        return sps.sosfiltfilt(sos, arr, axis=1, padtype="odd", padlen=padlen)
    if padding != "mirror":
        raise ConfigError(f"padding: expected one of {PADDINGS}, got {padding!r}")
    padlen = min(max(3 * (2 * len(sos) + 1), settle), arr.shape[1] - 1)
    return sps.sosfiltfilt(sos, arr, axis=1, padtype="even", padlen=padlen)


def bandpass(
    x: np.ndarray, fs: int, low: float | None, high: float | None, order: int = 2, padding: Padding = "mirror"
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (``low`` or ``high`` None gives a high- or low-pass).

    ``order`` is scipy's ``butter(N=order)`` (a band-pass then has 2 × order poles). ``high`` at or above
    Nyquist is dropped rather than rejected, so one declaration works at any fs.
    """
    from scipy import signal as sps

    fs = check_fs(fs, "fs")
    nyquist = fs / 2.0
    if low is not None and not 0 < low < nyquist:
        raise ConfigError(f"bandpass low: expected 0 < low < {nyquist} Hz (Nyquist at fs={fs}), got {low}")
    if high is not None and high <= 0:
        raise ConfigError(f"bandpass high: expected > 0 Hz, got {high}")
    if low is not None and high is not None and high <= low:
        raise ConfigError(f"bandpass: expected low < high, got low={low}, high={high}")
    if high is not None and high >= nyquist * 0.99:
        high = None
    if low is None and high is None:
        return np.asarray(_check_2d(x), dtype=np.float64).copy()
    if low is not None and high is not None:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    elif low is not None:
        sos = sps.butter(order, low, btype="highpass", fs=fs, output="sos")
    else:
        sos = sps.butter(order, high, btype="lowpass", fs=fs, output="sos")
    return _filtfilt(x, sos, settle=round(3 * fs / low) if low else 0, padding=padding)


def remove_baseline(
    x: np.ndarray, fs: int, cutoff: float = BASELINE_HIGHPASS_HZ, padding: Padding = "mirror"
) -> np.ndarray:
    """Remove baseline wander with a zero-phase high-pass at ``cutoff`` Hz (0.5 Hz by default)."""
    return bandpass(x, fs, cutoff, None, padding=padding)


def notch(x: np.ndarray, fs: int, freq: float, q: float = NOTCH_Q, padding: Padding = "mirror") -> np.ndarray:
    """Zero-phase IIR notch at ``freq`` Hz (power-line interference), quality factor ``q``.

    A ``freq`` at or above Nyquist is a no-op rather than an error (a signal sampled that slowly holds
    no such component), so one declaration works at any fs.
    """
    from scipy import signal as sps

    fs = check_fs(fs, "fs")
    if not np.isfinite(freq) or freq <= 0:
        raise ConfigError(f"notch: expected a frequency > 0 Hz, got {freq!r}")
    if not np.isfinite(q) or q <= 0:
        raise ConfigError(f"notch: expected a quality factor > 0, got {q!r}")
    if freq >= fs / 2.0 * 0.99:
        return np.asarray(_check_2d(x), dtype=np.float64).copy()
    b, a = sps.iirnotch(freq, q, fs=fs)
    # the notch rings for about q / (pi * freq) seconds; a mirror pad covers a few of those
    return _filtfilt(x, sps.tf2sos(b, a), settle=round(q * fs / freq), padding=padding)


def median_baseline(x: np.ndarray, fs: int, seconds: float = BASELINE_MEDIAN_SECONDS) -> np.ndarray:
    """Subtract a running median of ``seconds`` (the baseline) from every lead.

    The window is ``int(seconds * fs) + 1`` samples, made odd, and the signal is zero-padded at the ends,
    exactly as ``scipy.signal.medfilt`` in ECGFounder's ``filter_bandpass``.
    """
    from scipy import ndimage

    fs = check_fs(fs, "fs")
    if not np.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"median baseline: expected a window > 0 s, got {seconds!r}")
    arr = np.asarray(_check_2d(x), dtype=np.float64)
    if arr.size == 0:
        return arr.copy()
    kernel = int(seconds * fs) + 1
    kernel += 1 - kernel % 2
    # one 1-D call per lead: scipy's 1-D median path is ~30x faster than a 2-D footprint
    base = np.stack([ndimage.median_filter(lead, size=kernel, mode="constant", cval=0.0) for lead in arr])
    return arr - base


def finalise(x: np.ndarray) -> np.ndarray:
    """Float32 output with no NaN/inf whatever arithmetic happened before."""
    arr = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=_F32_MAX, neginf=-_F32_MAX)
    return np.clip(arr, -_F32_MAX, _F32_MAX).astype(np.float32)
