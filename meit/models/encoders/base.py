"""What every ECG encoder declares (its input contract) and how data is checked against it."""

from __future__ import annotations

import torch
from torch import nn

from meit.data.contract import EncoderContract
from meit.errors import DataError


def check_values(batch: torch.Tensor, what: str) -> None:
    """The value checks every encoder input shares, after its own shape check: floating point and finite."""
    if not batch.is_floating_point():
        raise DataError(f"{what} must be floating point, got {batch.dtype}")
    if not torch.isfinite(batch).all():
        raise DataError(f"{what} contains NaN or inf values (prepared datasets must be finite)")


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
        check_values(ecg, "ECG batch")

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def encode(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Time tokens ``[B, N, C]`` and the pooled vector ``[B, C]``; encoders override this to share one pass."""
        return self(ecg), self(ecg, pooled=True)[:, 0]
