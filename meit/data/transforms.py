"""Load-time transform objects: an encoder's declared input turned into one callable.

The signal processing itself (resampling, filters, normalisations) is pure numpy/scipy in the leaf
module :mod:`meit.ecg_signal`, shared with dataset preparation; this module only chains those
functions in a fixed order (see :class:`EcgTransform`) and validates a declaration once, up front. An
encoder declares what it needs (fs, seconds, normalisation, filtering) and :func:`build_transform`
turns that declaration into the transform; nothing here is ever baked into a prepared dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from meit.ecg_signal import (
    BASELINES,
    CROP_MODES,
    MAX_BANDPASS_ORDER,
    NORMALISATIONS,
    PADDINGS,
    Baseline,
    CropMode,
    Normalisation,
    Padding,
    bandpass,
    check_fs,
    crop_or_pad,
    finalise,
    median_baseline,
    normalise,
    notch,
    remove_baseline,
    resample,
    sanitise,
)
from meit.errors import ConfigError, DataError


@dataclass
class EcgTransform:
    """Load-time pipeline: sanitise → resample → filter → crop/pad → normalise → float32.

    Filtering (notch → band-pass → baseline removal, each only when declared) runs at ``fs_out``
    before cropping, so filter edge effects fall outside the kept window; normalisation runs last so
    its statistics describe exactly what the model sees. Filters extend the record's ends as
    ``scipy.signal.filtfilt`` does by default (``padding="scipy"``), which is what the public encoders'
    preprocessing did, so imported weights see the same edges they were trained on; ``padding="mirror"``
    is the longer, smoother pad of the standalone functions. ``baseline`` also accepts a bool (True means
    ``"highpass"``). Random crops draw from the transform's own generator (seeded by
    ``seed``); DataLoader workers each hold a copy of it, so pass ``rng`` per call (or reseed per
    worker) when crops must differ across them.
    """

    fs_in: int
    fs_out: int
    seconds: float
    normalisation: Normalisation = "none"
    bandpass: tuple[float | None, float | None] | None = None
    baseline: Baseline = "none"
    crop: CropMode = "center"
    leads: int = 12
    seed: int | None = None
    eps: float = 1e-6
    notch_hz: float | None = None
    bandpass_order: int = 2
    padding: Padding = "scipy"
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.fs_in = check_fs(self.fs_in, "fs_in")
        self.fs_out = check_fs(self.fs_out, "fs_out")
        if not np.isfinite(self.seconds) or self.seconds <= 0:
            raise ConfigError(f"seconds: expected a positive duration, got {self.seconds!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ConfigError(f"normalisation: expected one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.crop not in CROP_MODES:
            raise ConfigError(f"crop: expected one of {CROP_MODES}, got {self.crop!r}")
        if isinstance(self.baseline, bool | np.bool_):
            self.baseline = "highpass" if self.baseline else "none"
        if self.baseline not in BASELINES:
            raise ConfigError(f"baseline: expected one of {BASELINES}, got {self.baseline!r}")
        if self.padding not in PADDINGS:
            raise ConfigError(f"padding: expected one of {PADDINGS}, got {self.padding!r}")
        order = self.bandpass_order
        if isinstance(order, bool) or not isinstance(order, int | np.integer) or not 1 <= order <= MAX_BANDPASS_ORDER:
            raise ConfigError(f"bandpass_order: expected an integer from 1 to {MAX_BANDPASS_ORDER}, got {order!r}")
        # Validate the filters once now rather than on the first record.
        if self.bandpass is not None:
            if len(self.bandpass) != 2:
                raise ConfigError(f"bandpass: expected (low, high) in Hz, got {self.bandpass!r}")
            self.bandpass = tuple(self.bandpass)  # type: ignore[assignment]
            bandpass(np.zeros((1, 64)), self.fs_out, *self.bandpass, order=int(order))
        if self.notch_hz is not None:
            notch(np.zeros((1, 64)), self.fs_out, self.notch_hz)
        self._rng = np.random.default_rng(self.seed)

    @property
    def length(self) -> int:
        """Output samples per lead: ``round(fs_out * seconds)``."""
        return round(self.fs_out * self.seconds)

    def __call__(self, x: np.ndarray, fs: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """Transform one ``(leads, T)`` record; ``fs`` overrides ``fs_in`` for this record."""
        arr = sanitise(x)
        if arr.shape[0] != self.leads:
            raise DataError(f"ecg: expected {self.leads} leads, got array of shape {arr.shape}")
        arr = resample(arr, self.fs_in if fs is None else fs, self.fs_out)
        if self.notch_hz is not None:
            arr = notch(arr, self.fs_out, self.notch_hz, padding=self.padding)
        if self.bandpass is not None:
            arr = bandpass(arr, self.fs_out, *self.bandpass, order=int(self.bandpass_order), padding=self.padding)
        if self.baseline == "highpass":
            arr = remove_baseline(arr, self.fs_out, padding=self.padding)
        elif self.baseline == "median":
            arr = median_baseline(arr, self.fs_out)
        arr = crop_or_pad(arr, self.length, self.crop, rng or self._rng)
        return finalise(normalise(arr, self.normalisation, self.eps))


def build_transform(
    fs_in: int,
    fs_out: int,
    seconds: float,
    normalisation: Normalisation = "none",
    bandpass: Sequence[float | None] | None = None,
    *,
    bandpass_order: int = 2,
    notch_hz: float | None = None,
    baseline: Baseline | bool = "none",
    crop: CropMode = "center",
    leads: int = 12,
    seed: int | None = None,
    padding: Padding = "scipy",
) -> EcgTransform:
    """Build a load-time transform (see :class:`EcgTransform`).

    Model code should not call this with an encoder's fields one by one: an encoder's
    ``EncoderContract.load_transform(fs_in)`` is the one place that turns its declaration into the
    transform, so training, pretraining, retrieval and generation cannot disagree.
    """
    band = None if bandpass is None else tuple(bandpass)
    return EcgTransform(
        fs_in=fs_in, fs_out=fs_out, seconds=seconds, normalisation=normalisation,
        bandpass=band, baseline=baseline, crop=crop, leads=leads, seed=seed,  # type: ignore[arg-type]
        notch_hz=notch_hz, bandpass_order=bandpass_order, padding=padding,
    )
