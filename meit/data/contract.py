"""What an ECG encoder expects of its input (its contract), and the load-time transform that delivers it.

The contract is data-side knowledge: datasets, pretraining, retrieval and generation build their transform
from it, and models carry one per encoder. Its fields are declared once, here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from meit.data.transforms import EcgTransform, build_transform
from meit.ecg_signal import BASELINES, MAX_BANDPASS_ORDER, NORMALISATIONS, Baseline, Normalisation


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

    def __post_init__(self) -> None:
        # JSON gives lists and ints: store a hashable tuple of floats so equality survives a round trip
        if isinstance(self.bandpass, list | tuple):
            band = tuple(_hz(v) for v in self.bandpass)
            object.__setattr__(self, "bandpass", None if band == (None, None) else band)
        object.__setattr__(self, "notch_hz", _hz(self.notch_hz))

    @property
    def samples(self) -> int:
        return round(self.fs * self.seconds)

    @property
    def filtered(self) -> bool:
        """Whether any filtering is declared (a notch, a band-pass or baseline removal)."""
        return self.notch_hz is not None or self.bandpass is not None or self.baseline != "none"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["bandpass"] is not None:
            data["bandpass"] = list(data["bandpass"])
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

    def describe(self) -> str:
        text = (f"{self.leads} leads × {self.samples} samples ({self.fs} Hz × {self.seconds:g} s), "
                f"normalisation {self.normalisation}")
        return f"{text}, filters: {self.describe_filters()}" if self.filtered else text

    def load_transform(self, fs_in: int, *, crop: str = "center", seed: int | None = None) -> EcgTransform:
        """The load-time transform this contract asks for, from data stored at ``fs_in`` Hz.

        Every consumer (training, pretraining, retrieval, zero-shot, single-record generation) builds its
        transform here, so they can never disagree. Raises :class:`~meit.errors.ConfigError` for an
        invalid declaration.
        """
        return build_transform(
            fs_in, self.fs, self.seconds, self.normalisation, self.bandpass,
            bandpass_order=self.bandpass_order, notch_hz=self.notch_hz, baseline=self.baseline,
            crop=crop, leads=self.leads, seed=seed,  # type: ignore[arg-type]
        )


#: the contract's fields, in order (``from_dict`` reads these and ignores anything else)
CONTRACT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EncoderContract))
#: the fields that say how the signal is processed (a recipe sets them as ``model.<field>``); the rest is its shape
PROCESSING_FIELDS: tuple[str, ...] = tuple(f for f in CONTRACT_FIELDS if f not in ("leads", "fs", "seconds"))


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
