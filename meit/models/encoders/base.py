"""What every ECG encoder declares (its input contract) and how data is checked against it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from meit.errors import DataError

if TYPE_CHECKING:  # scipy is imported only when a transform is built
    from meit.data.transforms import Baseline, EcgTransform, Normalisation

#: the contract's fields, in order (``from_dict`` reads these and ignores anything else)
CONTRACT_FIELDS = ("leads", "fs", "seconds", "normalisation", "bandpass", "bandpass_order", "notch_hz", "baseline")


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
        from meit.data.transforms import build_transform

        return build_transform(
            fs_in, self.fs, self.seconds, self.normalisation, self.bandpass,
            bandpass_order=self.bandpass_order, notch_hz=self.notch_hz, baseline=self.baseline,
            crop=crop, leads=self.leads, seed=seed,  # type: ignore[arg-type]
        )


class ECGEncoder(nn.Module):
    """Base class: ``forward(ecg[B, leads, T]) -> tokens[B, N, out_dim]``.

    ``pooled=True`` returns one vector per ECG (``N = 1``); otherwise a token sequence over time.
    """

    contract: EncoderContract
    out_dim: int

    def check_input(self, ecg: torch.Tensor) -> None:
        """Raise :class:`DataError` naming expected vs got when ``ecg`` breaks the contract."""
        c = self.contract
        if not isinstance(ecg, torch.Tensor):
            raise DataError(f"ECG batch must be a tensor [batch, {c.leads}, {c.samples}], got {type(ecg).__name__}")
        if ecg.dim() != 3:
            raise DataError(
                f"ECG batch must have shape [batch, leads, samples] = [B, {c.leads}, {c.samples}], "
                f"got shape {list(ecg.shape)}"
            )
        _, leads, samples = ecg.shape
        if leads != c.leads or samples != c.samples:
            got_s = samples / c.fs
            raise DataError(
                f"ECG does not match the encoder's input contract: expected {c.describe()}; "
                f"got {leads} leads × {samples} samples (= {got_s:g} s at {c.fs} Hz). "
                "Resample/crop the data (data.fs, data.seconds) or set model.encoder_fs / model.encoder_seconds."
            )
        if not ecg.is_floating_point():
            raise DataError(f"ECG batch must be floating point, got {ecg.dtype}")
        if not torch.isfinite(ecg).all():
            raise DataError("ECG batch contains NaN or inf values (prepared datasets must be finite)")

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def encode(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Time tokens ``[B, N, C]`` and the pooled vector ``[B, C]``; encoders override this to share one pass."""
        return self(ecg), self(ecg, pooled=True)[:, 0]
