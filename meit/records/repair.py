"""What a raw record may be turned into, and when it is refused instead.

:class:`SignalPolicy` fixes how every record of a dataset is stored (rate, length, gap repair, missing
spans, the source's rate per folder); :func:`check_amplitude` refuses a lead at an impossible scale and
turns impossible samples into missing ones; :func:`repair_signal` applies its gap rules — short gaps
interpolated, long gaps in a limb lead rebuilt from two other limb leads, the rest blanked span by span;
:class:`RecordRejected` carries one of :data:`REJECT_REASONS`, the vocabulary ``rejected.jsonl`` reports.
A leaf module, so dataset preparation and single-record inference (``meit generate``) apply exactly the
same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from pathlib import PurePath
from typing import Literal

import numpy as np

from meit.errors import ConfigError
from meit.leads import CANONICAL_LEADS

#: Version of the repair rules. Preparation records it in its config, so an interrupted run is never
#: resumed (nor a finished one reused) under rules that would store different signals.
SIGNAL_POLICY_VERSION = 3

# Reject reasons, in the order the checks run. Values are the one-line explanations used in docs.
REJECT_REASONS: dict[str, str] = {
    "invalid_split": "the table gives no usable split (PTB-XL strat_fold missing or outside 1-10)",
    "missing_patient_id": "the table gives no patient id (PTB-XL patient_id empty or not an integer), so the "
    "patient-wise split cannot place the record",
    "duplicate_measurements": "MIMIC-IV-ECG: machine_measurements.csv has several differing rows for the study",
    "empty_report": "the record has no report text (or is missing from the translation CSV)",
    "empty_after_cleaning": "nothing of the report is left after report cleaning (e.g. only an 'Edit:' note)",
    "missing_filename": "the table names no signal file for the record (PTB-XL filename_lr / filename_hr empty)",
    "missing_hea": "the .hea header file does not exist",
    "unreadable_header": "the header cannot be parsed or has no usable sampling rate / length",
    "inconsistent_header": "the header's number of signals differs from its number of signal lines",
    "wrong_lead_count": "the header declares fewer than 12 signals",
    "unknown_leads": "12 signals that are not the 12 standard leads, or a standard lead named twice",
    "unknown_units": "a standard lead's units are not mV, uV/µV, V or nV",
    "uncalibrated": "a standard lead's gain is 0 or missing, which WFDB defines as uncalibrated: no millivolt scale",
    "wrong_rate": "the header's sampling rate differs from the rate of every record in its folder (PTB-XL "
    "records100: 100 Hz, records500: 500 Hz)",
    "too_short": "the record is shorter than the minimum duration",
    "missing_dat": "a signal file named in the header does not exist",
    "truncated_dat": "a signal file is smaller than the header says",
    "unreadable_dat": "the signal file cannot be decoded",
    "implausible_amplitude": "a lead's median |amplitude| is above 20 mV (a real ECG lead's is under 2 mV): the "
    "scale is wrong (µV labelled mV, a wrong gain)",
    "missing_lead": "a standard lead is absent from a record with more than 12 signals, or a lead has a gap "
    "longer than the maximum (or no usable samples) and the policy is to reject",
    "unusable_signal": "no lead carries a usable (finite, non-constant) signal",
    "too_much_missing": "more of the record's samples had to be blanked than the policy allows",
    "unexpected_error": "anything else that went wrong reading this record (detail has the exception)",
}

# Physiological amplitude limits, applied to every record and array before gap repair (see docs/data.md,
# Signal policy). A real ECG is within a few mV: on 510 real PTB-XL records (100 and 500 Hz) the largest
# |sample| of any lead is 11.1 mV and the largest median |sample| of a lead 1.7 mV. Pacing spikes and electrode
# artefacts go further, up to the recorder's input range (PTB-XL's 16-bit samples at 1000 adu/mV end at
# ±32.8 mV), so single samples get a wide margin and only the lead's typical level is held to a tight one.

#: a lead whose median |amplitude| (finite samples) is above this is not in millivolts: the record is rejected
#: (implausible_amplitude). 10× the largest seen in real records; µV labelled mV puts a lead near 60 mV.
MAX_LEAD_MEDIAN_MV = 20.0
#: a sample beyond ±this is not a body-surface potential but a corrupt value (a wrong scale over a span, an
#: overflow): it is treated like WFDB's invalid-sample value, i.e. as missing, and repaired by the gap rules
#: below (recorded as ``out_of_range:<lead>:<n> samples`` before the gap repair's own entry).
#: 3× PTB-XL's full scale, 9× the largest real sample measured.
MAX_SAMPLE_MV = 100.0


#: the limb leads, rows 0-5 of the canonical order
LIMB_LEADS: tuple[str, ...] = CANONICAL_LEADS[:6]

# Each limb lead as a combination of I and II: Einthoven III = II - I; Goldberger aVR = -(I + II)/2,
# aVL = I - II/2, aVF = II - I/2. Their axes are 30° or more apart, so any two determine all six.
_IN_I_II: dict[str, tuple[Fraction, Fraction]] = {
    "I": (Fraction(1), Fraction(0)),
    "II": (Fraction(0), Fraction(1)),
    "III": (Fraction(-1), Fraction(1)),
    "aVR": (Fraction(-1, 2), Fraction(-1, 2)),
    "aVL": (Fraction(1), Fraction(-1, 2)),
    "aVF": (Fraction(-1, 2), Fraction(1)),
}


def limb_derivation(target: str, a: str, b: str) -> tuple[Fraction, Fraction]:
    """Exact ``(ca, cb)`` with ``target = ca·a + cb·b`` for three limb leads (``a`` ≠ ``b``)."""
    (ta, tb), (aa, ab), (ba, bb) = _IN_I_II[target], _IN_I_II[a], _IN_I_II[b]
    det = aa * bb - ab * ba
    if det == 0:
        raise ValueError(f"limb leads {a} and {b} are not independent")
    return (ta * bb - tb * ba) / det, (aa * tb - ab * ta) / det


def _derivations() -> dict[int, tuple[tuple[int, int, float, float], ...]]:
    """Per limb row, every (a, b, ca, cb) that rebuilds it, best first.

    I and II first: electrocardiographs record them and compute the other four, each rounded to the
    quantisation step, so every augmented lead (aVR, aVL, aVF) used adds a rounding error. Then pairs
    with fewer augmented leads, then the pair that amplifies quantisation noise least (|ca| + |cb|).
    On the real PTB-XL records of the tests this order picks, for every target, a pair whose
    residual is the smallest measured (at most 1.5 µV, 1.5 steps).
    """
    table = {}
    for t, target in enumerate(LIMB_LEADS):
        options = []
        for a, b in combinations([r for r in range(len(LIMB_LEADS)) if r != t], 2):
            ca, cb = limb_derivation(target, LIMB_LEADS[a], LIMB_LEADS[b])
            augmented = (a >= 3) + (b >= 3)
            options.append(((a, b) != (0, 1), augmented, abs(ca) + abs(cb), a, b, float(ca), float(cb)))
        table[t] = tuple((a, b, ca, cb) for *_, a, b, ca, cb in sorted(options))
    return table


#: limb row -> derivations (a, b, ca, cb) in order of preference
LIMB_DERIVATIONS: dict[int, tuple[tuple[int, int, float, float], ...]] = _derivations()

#: a whole-record flat limb lead is dead when the same lead derived from two other limb leads swings
#: by more than this (mV); a real limb lead is never exactly constant for seconds
DEAD_LEAD_MIN_SWING_MV = 0.05


class RecordRejected(Exception):
    """A record that does not enter the dataset; ``reason`` is a key of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


MissingLeadPolicy = Literal["repair", "zero", "reject"]


@dataclass(frozen=True)
class SignalPolicy:
    """How raw signals become the stored array (same for every record of a dataset)."""

    fs: int
    seconds: float = 10.0
    min_seconds: float | None = None
    max_gap_seconds: float = 0.2
    missing_lead: MissingLeadPolicy = "repair"
    max_blanked_fraction: float = 0.5
    #: (folder name, Hz): every record below a folder of that name is recorded at that rate, so a header
    #: declaring another rate is wrong (``wrong_rate``); PTB-XL's records100 / records500. Empty: not checked.
    folder_rates: tuple[tuple[str, int], ...] = ()

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
        if self.missing_lead not in ("repair", "zero", "reject"):
            raise ConfigError(f"missing_lead: expected 'repair', 'zero' or 'reject', got {self.missing_lead!r}")
        if not 0 <= self.max_blanked_fraction <= 1:
            raise ConfigError(f"max_blanked_fraction: expected a fraction in [0, 1], got {self.max_blanked_fraction}")
        for entry in self.folder_rates:
            if (not isinstance(entry, tuple) or len(entry) != 2 or not isinstance(entry[0], str) or not entry[0]
                    or not isinstance(entry[1], int) or entry[1] <= 0):
                raise ConfigError(f"folder_rates: expected (folder name, positive Hz) pairs, got {entry!r}")

    @property
    def samples(self) -> int:
        """T, the fixed number of stored samples per lead."""
        return round(self.fs * self.seconds)

    @property
    def minimum_seconds(self) -> float:
        return self.seconds if self.min_seconds is None else self.min_seconds

    def folder_rate(self, path: str) -> tuple[str, int] | None:
        """The folder of :attr:`folder_rates` that ``path`` lies in (the innermost one) and its rate, or None."""
        rates = dict(self.folder_rates)
        for part in reversed(PurePath(path).parts[:-1]):
            if part in rates:
                return part, rates[part]
        return None


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a 1-D boolean mask."""
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _span(start: int, end: int, fs: int) -> str:
    """A sample range [start, end) as seconds from the start of the record, e.g. ``1.200-1.700 s``."""
    return f"{start / fs:.3f}-{end / fs:.3f} s"


def _dead_limb_leads(sig: np.ndarray, valid: np.ndarray, flat: list[int]) -> list[int]:
    """The flat limb leads that two other (varying) limb leads contradict: a dead channel, not a signal.

    A real limb lead is never exactly constant for a whole record; one that is, while the same lead
    derived from two other limb leads swings by more than :data:`DEAD_LEAD_MIN_SWING_MV`, is broken.
    Flat leads are never used as evidence, so two dead leads cannot vouch for each other.
    """
    dead = []
    for target in flat:
        for a, b, ca, cb in LIMB_DERIVATIONS[target]:
            if a in flat or b in flat:
                continue
            both = valid[a] & valid[b]
            if both.any():
                derived = ca * sig[a, both] + cb * sig[b, both]
                if float(derived.max() - derived.min()) > DEAD_LEAD_MIN_SWING_MV:
                    dead.append(target)
                break
    return dead


def _rebuild_plan(target: int, valid: np.ndarray) -> list[tuple[int, int, tuple[int, int, float, float] | None]]:
    """Cut the invalid samples of one limb lead into spans, each with the derivation that covers it.

    A span ends wherever the set of valid other limb leads changes; each span takes the first
    derivation of :data:`LIMB_DERIVATIONS` whose two leads are valid over it (None: no pair, blank it).
    Neighbouring spans with the same choice are merged.
    """
    n = valid.shape[1]
    others = [r for r in range(len(LIMB_LEADS)) if r != target]
    code = (~valid[target]).astype(np.int64)
    for k, r in enumerate(others):
        code |= valid[r].astype(np.int64) << (k + 1)
    bounds = np.flatnonzero(np.diff(code)) + 1
    plan: list[tuple[int, int, tuple[int, int, float, float] | None]] = []
    for start, end in zip(np.concatenate(([0], bounds)).tolist(), np.concatenate((bounds, [n])).tolist(),
                          strict=True):
        if valid[target, start]:
            continue
        available = {r for r in others if valid[r, start]}
        choice = next((d for d in LIMB_DERIVATIONS[target] if d[0] in available and d[1] in available), None)
        if plan and plan[-1][1] == start and plan[-1][2] == choice:
            plan[-1] = (plan[-1][0], end, choice)
        else:
            plan.append((start, end, choice))
    return plan


def check_amplitude(sig: np.ndarray) -> dict[int, int]:
    """Apply the amplitude limits to a canonical-order ``(12, T)`` millivolt array, in place.

    Rejects ``implausible_amplitude`` naming every lead whose median |amplitude| is above
    :data:`MAX_LEAD_MEDIAN_MV`; sets samples beyond ±:data:`MAX_SAMPLE_MV` to NaN (missing) and returns
    how many per row. NaN and ±inf are left for the gap rules.
    """
    with np.errstate(invalid="ignore"):
        peak = np.maximum(sig.max(axis=1), -sig.min(axis=1))  # NaN for a row with NaN
        if (peak <= MAX_LEAD_MEDIAN_MV).all():  # nearly every record: two reductions, nothing to do
            return {}
        magnitude = np.abs(sig)
        finite = np.isfinite(sig)
        medians = np.array([np.median(magnitude[row, finite[row]]) if finite[row].any() else 0.0
                            for row in range(sig.shape[0])])
        high = np.flatnonzero(medians > MAX_LEAD_MEDIAN_MV).tolist()
        if high:
            named = ", ".join(f"{CANONICAL_LEADS[row]} {medians[row]:.4g} mV" for row in high)
            every = "every lead" if len(high) == sig.shape[0] else f"{len(high)} of {sig.shape[0]} leads"
            raise RecordRejected(
                "implausible_amplitude",
                f"median |amplitude| above {MAX_LEAD_MEDIAN_MV:g} mV in {every} ({named}); a real ECG lead's is "
                "under 2 mV, so the scale is wrong (microvolts labelled as millivolts: divide by 1000? a wrong "
                "gain in the header?)",
            )
        beyond = finite & (magnitude > MAX_SAMPLE_MV)
    counts = {int(row): int(n) for row, n in enumerate(beyond.sum(axis=1)) if n}
    if counts:
        sig[beyond] = np.nan
    return counts


def repair_signal(sig: np.ndarray, fs: int, policy: SignalPolicy) -> tuple[np.ndarray, list[str]]:
    """The whole signal policy on a canonical-order ``(12, T)`` millivolt array, in place: returns it and the repairs.

    First :func:`check_amplitude`: a lead at an impossible scale rejects the record, and samples beyond
    ±:data:`MAX_SAMPLE_MV` become missing samples like NaN (recorded as ``out_of_range``); then
    :func:`repair_gaps`.
    """
    out_of_range = check_amplitude(sig)
    return repair_gaps(sig, fs, policy, out_of_range=out_of_range)


def repair_gaps(sig: np.ndarray, fs: int, policy: SignalPolicy,
                out_of_range: dict[int, int] | None = None) -> tuple[np.ndarray, list[str]]:
    """Repair non-finite runs of a canonical-order ``(12, T)`` millivolt array in place; returns it and the repairs.

    Runs up to ``policy.max_gap_seconds`` are linearly interpolated. A longer run (a *gap*), a lead
    without any finite sample, and a dead flat limb lead (see :func:`_dead_limb_leads`) are *missing*
    spans: with ``missing_lead="reject"`` they reject the record; with ``"repair"`` a limb lead's span
    is rebuilt from two other limb leads valid over it (Einthoven/Goldberger, exact to quantisation),
    and every span that cannot be rebuilt is blanked (0 mV) — only the span, never the whole lead;
    ``"zero"`` blanks without rebuilding. Interpolating across a long hole would invent signal, so we
    do not. Rejects ``unusable_signal`` when no lead varies afterwards and ``too_much_missing`` when
    more than ``policy.max_blanked_fraction`` of all samples had to be blanked. These rules do not
    depend on the scale (the amplitude limits of :func:`repair_signal` do); ``out_of_range`` (row →
    samples) names the NaN that :func:`check_amplitude` made, for the record's repairs.
    """
    out_of_range = out_of_range or {}
    n_leads, n = sig.shape
    out = sig
    finite = np.isfinite(out)
    complete = finite.all(axis=1)
    high, low = out.max(axis=1), out.min(axis=1)  # NaN for a row with NaN: neither flat nor varying
    limbs = len(LIMB_LEADS)
    flat = [int(r) for r in np.flatnonzero(complete[:limbs] & (high[:limbs] == low[:limbs]))]
    damaged = np.flatnonzero(~complete)
    if not damaged.size and not flat:  # most records: nothing to do
        if not (high > low).any():
            raise RecordRejected("unusable_signal", "every lead is missing or flat")
        return out, []

    max_gap = max(1, round(policy.max_gap_seconds * fs))
    entries: dict[int, list[str]] = {
        row: [f"out_of_range:{CANONICAL_LEADS[row]}:{count} samples beyond ±{MAX_SAMPLE_MV:g} mV"]
        for row, count in out_of_range.items()
    }
    holes: dict[int, list[tuple[int, int]]] = {}  # row -> its missing spans [start, end)
    valid = np.ones((n_leads, n), dtype=bool)  # finite or interpolated
    idx = np.arange(n)
    for row in damaged.tolist():
        name = CANONICAL_LEADS[row]
        bad = ~finite[row]
        starts, ends = _runs(bad)
        long = (ends - starts) > max_gap
        if bad.all():
            long[:] = True  # nothing to interpolate from, however short the record
        if not long.all():
            fill = np.zeros(n, dtype=bool)
            for start, end in zip(starts[~long].tolist(), ends[~long].tolist(), strict=True):
                fill[start:end] = True
            good = ~bad
            out[row, fill] = np.interp(idx[fill], idx[good], out[row, good])
            entries.setdefault(row, []).append(f"interpolated:{name}:{int(fill.sum())} samples")
        if long.any():
            holes[row] = list(zip(starts[long].tolist(), ends[long].tolist(), strict=True))
            for start, end in holes[row]:
                valid[row, start:end] = False
    dead = _dead_limb_leads(out, valid, flat)
    for row in dead:
        holes[row] = [(0, n)]
        valid[row] = False

    if holes and policy.missing_lead == "reject":
        what = []
        for row in sorted(holes):
            if row in dead:
                why = "flat while the other limb leads vary"
            elif holes[row] == [(0, n)]:
                why = "no finite samples"
            else:
                what_bad = f"non-finite or beyond ±{MAX_SAMPLE_MV:g} mV" if row in out_of_range else "non-finite"
                why = f"{what_bad} " + ", ".join(_span(s, e, fs) for s, e in holes[row])
            what.append(f"{CANONICAL_LEADS[row]}: {why}")
        raise RecordRejected("missing_lead", f"{'; '.join(what)} (gaps longer than {max_gap} samples)")

    blanked = 0
    for row in sorted(holes):
        name = CANONICAL_LEADS[row]
        note = "lead was flat" if row in dead else ""
        if row < len(LIMB_LEADS) and policy.missing_lead == "repair":
            for start, end, choice in _rebuild_plan(row, valid):
                if choice is None:
                    out[row, start:end] = 0.0
                    blanked += end - start
                    why = "; ".join(filter(None, ["no two valid limb leads", note]))
                    entries.setdefault(row, []).append(f"blanked:{name}:{_span(start, end, fs)}:{why}")
                    continue
                a, b, ca, cb = choice
                out[row, start:end] = ca * out[a, start:end] + cb * out[b, start:end]
                how = "; ".join(filter(None, [f"from {CANONICAL_LEADS[a]},{CANONICAL_LEADS[b]}", note]))
                entries.setdefault(row, []).append(f"rebuilt:{name}:{_span(start, end, fs)}:{how}")
            continue
        for start, end in holes[row]:
            out[row, start:end] = 0.0
            blanked += end - start
            entry = f"blanked:{name}:{_span(start, end, fs)}"
            entries.setdefault(row, []).append(f"{entry}:{note}" if note else entry)
    _check_usable(out, blanked, policy, everything_missing=not finite.any())
    return out, [entry for row in sorted(entries) for entry in entries[row]]


def _check_usable(out: np.ndarray, blanked: int, policy: SignalPolicy, *, everything_missing: bool = False) -> None:
    """Reject a record in which nothing varies, or too much had to be blanked."""
    if not (out.max(axis=1) > out.min(axis=1)).any():
        raise RecordRejected("unusable_signal", "all leads missing" if everything_missing
                             else "every lead is missing or flat")
    if blanked > policy.max_blanked_fraction * out.size:
        raise RecordRejected(
            "too_much_missing",
            f"{blanked} of {out.size} samples ({blanked / out.size:.1%}) could not be recovered and were blanked; "
            f"more than max_blanked_fraction={policy.max_blanked_fraction}",
        )
