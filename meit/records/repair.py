"""What a raw record may be turned into, and when it is refused instead.

:class:`SignalPolicy` fixes how every record of a dataset is stored (rate, length, gap repair, missing
leads); :func:`repair_signal` applies its gap and missing-lead rules; :class:`RecordRejected` carries
one of :data:`REJECT_REASONS`, the vocabulary ``rejected.jsonl`` reports. A leaf module, so dataset
preparation and single-record inference (``meit generate``) apply exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from meit.errors import ConfigError
from meit.leads import CANONICAL_LEADS

# Reject reasons, in the order the checks run. Values are the one-line explanations used in docs.
REJECT_REASONS: dict[str, str] = {
    "invalid_split": "the table gives no usable split (PTB-XL strat_fold missing or outside 1-10)",
    "empty_report": "the record has no report text (or is missing from the translation CSV)",
    "empty_after_cleaning": "nothing of the report is left after report cleaning (e.g. only an 'Edit:' note)",
    "missing_hea": "the .hea header file does not exist",
    "unreadable_header": "the header cannot be parsed or has no usable sampling rate / length",
    "wrong_lead_count": "the header declares fewer than 12 signals",
    "unknown_leads": "12 signals that are not the 12 standard leads, or a standard lead named twice",
    "too_short": "the record is shorter than the minimum duration",
    "missing_dat": "a signal file named in the header does not exist",
    "truncated_dat": "a signal file is smaller than the header says",
    "unreadable_dat": "the signal file cannot be decoded",
    "missing_lead": "a standard lead is absent from a record with more than 12 signals, or a lead has no "
    "usable samples and the policy is to reject",
    "unusable_signal": "no lead carries a usable (finite, non-constant) signal",
    "unexpected_error": "anything else that went wrong reading this record (detail has the exception)",
}


class RecordRejected(Exception):
    """A record that does not enter the dataset; ``reason`` is a key of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignalPolicy:
    """How raw signals become the stored array (same for every record of a dataset)."""

    fs: int
    seconds: float = 10.0
    min_seconds: float | None = None
    max_gap_seconds: float = 0.2
    missing_lead: Literal["zero", "reject"] = "zero"

    def __post_init__(self) -> None:
        if self.fs <= 0:
            raise ConfigError(f"fs: expected a positive sampling rate in Hz, got {self.fs}")
        if not self.seconds > 0:
            raise ConfigError(f"seconds: expected a positive duration, got {self.seconds}")
        if self.min_seconds is not None and not 0 < self.min_seconds <= self.seconds:
            raise ConfigError(
                f"min_seconds: expected 0 < min_seconds <= seconds ({self.seconds}), got {self.min_seconds}"
            )
        if not self.max_gap_seconds >= 0:
            raise ConfigError(f"max_gap_seconds: expected >= 0, got {self.max_gap_seconds}")
        if self.missing_lead not in ("zero", "reject"):
            raise ConfigError(f"missing_lead: expected 'zero' or 'reject', got {self.missing_lead!r}")

    @property
    def samples(self) -> int:
        """T, the fixed number of stored samples per lead."""
        return round(self.fs * self.seconds)

    @property
    def minimum_seconds(self) -> float:
        return self.seconds if self.min_seconds is None else self.min_seconds


def _nonfinite_runs(bad: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D boolean mask."""
    edges = np.diff(np.concatenate(([0], bad.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return ends - starts


def repair_signal(sig: np.ndarray, fs: int, policy: SignalPolicy) -> tuple[np.ndarray, list[str]]:
    """Fill short NaN/inf gaps by linear interpolation; zero-fill (or reject) missing leads.

    A lead is "missing" when it has no finite sample, or when its longest non-finite run exceeds
    ``policy.max_gap_seconds`` (interpolating across a long hole would invent signal).
    """
    repairs: list[str] = []
    max_gap = max(1, round(policy.max_gap_seconds * fs))
    missing: list[str] = []
    out = sig
    idx = np.arange(sig.shape[1])
    finite = np.isfinite(out)
    damaged = np.flatnonzero(~finite.all(axis=1))  # most records: none, one vectorised check
    for row in damaged:
        name = CANONICAL_LEADS[row]
        lead = out[row]
        bad = ~finite[row]
        n_bad = int(bad.sum())
        if n_bad == lead.size:
            missing.append(name)
            repairs.append(f"zero_filled:{name}:no finite samples")
            continue
        longest = int(_nonfinite_runs(bad).max())
        if longest > max_gap:
            missing.append(name)
            repairs.append(f"zero_filled:{name}:gap of {longest} samples > {max_gap}")
            continue
        good = ~bad
        lead[bad] = np.interp(idx[bad], idx[good], lead[good])
        repairs.append(f"interpolated:{name}:{n_bad} samples")
    if missing and policy.missing_lead == "reject":
        raise RecordRejected("missing_lead", ", ".join(missing))
    for name in missing:
        out[CANONICAL_LEADS.index(name)] = 0.0
    varies = out.max(axis=1) > out.min(axis=1)
    if not varies.any():
        what = "all leads missing" if len(missing) == len(CANONICAL_LEADS) else "every lead is missing or flat"
        raise RecordRejected("unusable_signal", what)
    return out, repairs
