"""What an ECG encoder expects of its input (its contract), and the load-time transform that delivers it.

The contract is data-side knowledge: datasets, pretraining, retrieval and generation build their transform
from it, and models carry one per encoder. Its fields are declared once, here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from meit.data.image_spec import (
    IMAGE_MODES,
    ImageMode,
    default_dpi,
    default_image_mean_std,
    image_channels,
    image_problems,
    normalise_augment,
    normalise_image_size,
)
from meit.data.transforms import EcgTransform, build_transform
from meit.ecg_signal import BASELINES, MAX_BANDPASS_ORDER, NORMALISATIONS, Baseline, Normalisation
from meit.errors import ConfigError


def _hz(value: Any) -> Any:
    """A frequency as float (None stays None; anything else is left for validation to report)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class EncoderContract:
    """The input an encoder was built for: ``leads × (fs · seconds)`` samples, filtered and normalised as declared.

    * ``normalisation``: ``zscore`` / ``minmax`` per lead, ``zscore_record`` / ``minmax_record`` with one
      mean/std (min/max) over the whole record, or ``none``.
    * ``notch_hz``: a zero-phase IIR notch (Q = 30) at this frequency, e.g. 50 (mains); None = no notch.
    * ``bandpass``: ``(low, high)`` Hz, zero-phase Butterworth of order ``bandpass_order`` (either edge
      may be None for a high- or low-pass); None = no band-pass.
    * ``baseline``: ``none``, ``highpass`` (0.5 Hz high-pass) or ``median`` (subtract a 0.4 s running median).
    * ``image_mode``: ``none`` (the encoder reads the signal) or the image it reads instead, rendered from the
      processed signal at load time: ``paper-3x4`` / ``paper-6x2`` / ``paper-12x1`` (paper-style ECG drawn at
      ``image_dpi``; default: the dpi that makes the page about as tall as the image) or ``gaf`` / ``rp`` /
      ``mtf`` (Gramian angular field, recurrence plot, Markov transition field; one channel per lead);
      ``image_size`` ``(height, width)``, per-channel ``image_mean`` / ``image_std`` (defaults per mode).
    * ``image_denoise``: ``none``, ``grid``, ``flatten`` or ``grid+flatten`` (paper only): the page is denoised
      (:func:`meit.render.denoise_paper`) after any augmentation and before resizing, in training and evaluation.
    * ``image_augment``: augmentation strengths (0–1) for *training* only (scanned/photographed paper); never
      applied at evaluation and not part of contract equality (weights trained with any augmentation accept
      the same clean input).

    The data pipeline applies all of it at load time (never baked into stored signals), at ``fs``,
    in the order notch → band-pass → baseline → crop → normalise: :meth:`load_transform` is the one
    place that turns a contract into that transform.
    """

    leads: int = 12
    fs: int = 500
    seconds: float = 10.0
    normalisation: Normalisation = "zscore"
    bandpass: tuple[float | None, float | None] | None = None
    bandpass_order: int = 2
    notch_hz: float | None = None
    baseline: Baseline = "none"
    image_mode: ImageMode = "none"
    image_size: tuple[int, int] | None = None
    image_dpi: int | None = None
    image_mean: tuple[float, ...] | None = None
    image_std: tuple[float, ...] | None = None
    image_denoise: str = "none"
    image_augment: tuple[tuple[str, float], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        # JSON gives lists and ints: store a hashable tuple of floats so equality survives a round trip
        if isinstance(self.bandpass, list | tuple):
            band = tuple(_hz(v) for v in self.bandpass)
            object.__setattr__(self, "bandpass", None if band == (None, None) else band)
        object.__setattr__(self, "notch_hz", _hz(self.notch_hz))
        # the image side: concrete values (defaults per mode), so equal contracts compare equal
        object.__setattr__(self, "image_size", normalise_image_size(self.image_size, self.image_mode))
        object.__setattr__(self, "image_augment", normalise_augment(self.image_augment))
        if self.image_dpi is None:
            object.__setattr__(self, "image_dpi", default_dpi(self.image_mode, self.image_size, self.seconds))
        if self.image_mode in IMAGE_MODES and self.image_mode != "none":
            mean, std = default_image_mean_std(self.image_mode)
            for name, default in (("image_mean", mean), ("image_std", std)):
                value = getattr(self, name)
                value = default if value is None else tuple(float(v) if _is_number(v) else v for v in value)
                object.__setattr__(self, name, value)

    @property
    def samples(self) -> int:
        return round(self.fs * self.seconds)

    @property
    def is_image(self) -> bool:
        """Whether the encoder reads an image rendered from the signal rather than the signal itself."""
        return self.image_mode != "none"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape: ``(leads, samples)`` for a signal, ``(channels, height, width)`` for an image."""
        if not self.is_image:
            return (self.leads, self.samples)
        assert self.image_size is not None
        return (image_channels(self.image_mode), *self.image_size)

    @property
    def augmentation(self) -> dict[str, float]:
        """The training-only augmentation strengths (empty: none)."""
        return dict(self.image_augment)

    @property
    def filtered(self) -> bool:
        """Whether any filtering is declared (a notch, a band-pass or baseline removal)."""
        return self.notch_hz is not None or self.bandpass is not None or self.baseline != "none"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["bandpass"] is not None:
            data["bandpass"] = list(data["bandpass"])
        if not self.is_image:  # a signal contract is written as before the image side existed
            for key in IMAGE_FIELDS:
                data.pop(key)
            return data
        for key in ("image_size", "image_mean", "image_std"):
            data[key] = list(data[key])
        data["image_augment"] = dict(self.image_augment)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderContract:
        """From :meth:`to_dict` output; missing fields (e.g. an older file without filtering) take the defaults."""
        return cls(**{k: data[k] for k in CONTRACT_FIELDS if k in data})

    def describe_filters(self) -> str:
        """``"50 Hz notch, 0.67–40 Hz band-pass (order 4), median baseline removal"`` or ``"none"``."""
        parts = []
        if self.notch_hz is not None:
            parts.append(f"{self.notch_hz:g} Hz notch")
        if self.bandpass is not None:
            low, high = self.bandpass
            band = (f"{low:g}–{high:g} Hz band-pass" if low is not None and high is not None
                    else f"{low:g} Hz high-pass" if low is not None
                    else f"{high:g} Hz low-pass" if high is not None else "no band-pass")
            parts.append(f"{band} (order {self.bandpass_order})")
        if self.baseline != "none":
            parts.append(f"{self.baseline} baseline removal")
        return ", ".join(parts) or "none"

    def describe_image(self) -> str:
        """``"paper-3x4 image 224×352 px at 33 dpi, 3 channels"`` (``""`` for a signal contract)."""
        if not self.is_image:
            return ""
        assert self.image_size is not None
        height, width = self.image_size
        dpi = f" at {self.image_dpi} dpi" if self.image_mode.startswith("paper") else ""
        denoise = f", denoised ({self.image_denoise})" if self.image_denoise != "none" else ""
        return (f"{self.image_mode} image {height}×{width} px{dpi}{denoise}, {image_channels(self.image_mode)} "
                "channels")

    def describe(self) -> str:
        text = (f"{self.leads} leads × {self.samples} samples ({self.fs} Hz × {self.seconds:g} s), "
                f"normalisation {self.normalisation}")
        text = f"{text}, filters: {self.describe_filters()}" if self.filtered else text
        return f"{text}, rendered as a {self.describe_image()}" if self.is_image else text

    def signal_transform(self, fs_in: int, *, crop: str = "center", seed: int | None = None) -> EcgTransform:
        """The signal part of the load-time transform (resample, filter, crop, normalise), image or not."""
        return build_transform(
            fs_in, self.fs, self.seconds, self.normalisation, self.bandpass,
            bandpass_order=self.bandpass_order, notch_hz=self.notch_hz, baseline=self.baseline,
            crop=crop, leads=self.leads, seed=seed,  # type: ignore[arg-type]
        )

    def load_transform(self, fs_in: int, *, crop: str = "center", seed: int | None = None, augment: bool = False,
                       image_cache: Any = None) -> Any:
        """The load-time transform this contract asks for, from data stored at ``fs_in`` Hz.

        Every consumer (training, pretraining, retrieval, zero-shot, single-record generation) builds its
        transform here, so they can never disagree. A signal contract gives an :class:`EcgTransform`; an image
        contract an :class:`~meit.data.image_transform.ImageTransform` (the signal transform, then rendering),
        which applies ``image_augment`` only when ``augment`` (training) and reads pre-rendered images from
        ``image_cache`` (a ``meit render`` folder) when given. Raises :class:`~meit.errors.ConfigError` for an
        invalid declaration.
        """
        signal = self.signal_transform(fs_in, crop=crop, seed=seed)
        if not self.is_image:
            if augment and self.image_augment:
                raise ConfigError("image_augment is set but the encoder reads the signal (image_mode none)")
            return signal
        from meit.data.image_transform import ImageTransform

        return ImageTransform(self, signal, augment=augment, cache=image_cache)


#: the contract's fields, in order (``from_dict`` reads these and ignores anything else)
CONTRACT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EncoderContract))
#: the fields that say how the signal is processed (a recipe sets them as ``model.<field>``); the rest is its shape
PROCESSING_FIELDS: tuple[str, ...] = tuple(f for f in CONTRACT_FIELDS if f not in ("leads", "fs", "seconds"))
#: the image side (absent from a signal contract's dict, and from files written before it existed)
IMAGE_FIELDS: tuple[str, ...] = tuple(f for f in CONTRACT_FIELDS if f.startswith("image_"))
#: fields that describe training only, not the input the weights expect: a recipe may differ from an artifact
TRAINING_ONLY_FIELDS: tuple[str, ...] = ("image_augment",)


#: each field's default (a recipe may leave a field out)
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(EncoderContract) if f.default is not MISSING}


def checked_contract(data: Mapping[str, Any], prefix: str) -> EncoderContract:
    """An :class:`EncoderContract` from recipe values, or a :class:`ConfigError` naming each bad key as
    ``<prefix><field>`` (e.g. ``model.image_size``)."""
    values = {**_DEFAULTS, **data}
    if isinstance(values.get("image_augment"), Mapping):
        values["image_augment"] = dict(values["image_augment"])
    problems = [p.replace("'contract.", f"'{prefix}") for p in contract_problems(values)]
    if problems:
        raise ConfigError("invalid encoder input: " + "; ".join(problems))
    return EncoderContract.from_dict(values)


# --------------------------------------------------------------------------------------------- validation


def contract_problems(data: Any) -> list[str]:
    """Field-level problems of a contract mapping (empty when valid)."""
    if not isinstance(data, Mapping):
        return [f"'contract' must be an object with leads, fs, seconds, normalisation; got {type(data).__name__}"]
    problems = []
    for key in ("leads", "fs"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            problems.append(f"'contract.{key}' must be a positive integer, got {value!r}")
    seconds = data.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        problems.append(f"'contract.seconds' must be a positive number, got {seconds!r}")
    if data.get("normalisation") not in NORMALISATIONS:
        problems.append(f"'contract.normalisation' must be one of {NORMALISATIONS}, got {data.get('normalisation')!r}")
    fs = data.get("fs")
    problems.extend(_filter_problems(data, fs if isinstance(fs, int) and not isinstance(fs, bool) and fs > 0 else None))
    problems.extend(image_problems(data))
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _filter_problems(data: Mapping[str, Any], fs: int | None) -> list[str]:
    """Problems of the optional filtering fields (absent means the default: no filtering)."""
    problems = []
    nyquist = fs / 2 if fs else math.inf
    band = data.get("bandpass")
    if band is not None:
        if not isinstance(band, list | tuple) or len(band) != 2 or not all(v is None or _is_number(v) for v in band):
            problems.append(f"'contract.bandpass' must be null or [low, high] in Hz (either may be null), got {band!r}")
        else:
            low, high = band
            if low is not None and not 0 < low < nyquist:
                problems.append(f"'contract.bandpass' low edge must be in (0, {nyquist:g}) Hz, got {low!r}")
            if high is not None and high <= 0:
                problems.append(f"'contract.bandpass' high edge must be > 0 Hz, got {high!r}")
            if low is not None and high is not None and high <= low:
                problems.append(f"'contract.bandpass' must have low < high, got {band!r}")
    order = data.get("bandpass_order", 2)
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_BANDPASS_ORDER:
        problems.append(f"'contract.bandpass_order' must be an integer from 1 to {MAX_BANDPASS_ORDER}, got {order!r}")
    notch = data.get("notch_hz")
    if notch is not None and (not _is_number(notch) or notch <= 0):
        problems.append(f"'contract.notch_hz' must be null or a frequency > 0 Hz, got {notch!r}")
    if data.get("baseline", "none") not in BASELINES:
        problems.append(f"'contract.baseline' must be one of {BASELINES}, got {data.get('baseline')!r}")
    return problems
