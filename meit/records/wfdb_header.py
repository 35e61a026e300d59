"""WFDB headers: parsed fast and validated against the policy, each failure mapped to one reject reason.

Our own parser handles single-segment headers (wfdb's costs ~5 ms, most of a record's budget) and
falls back to wfdb for anything else; :func:`read_header` runs the cheap checks (signal count against
signal lines, lead count and names, units, calibration, sampling rate against the folder's, duration)
before any signal file is touched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import wfdb

from meit.leads import CANONICAL_LEADS, canonical_lead_name
from meit.records.repair import RecordRejected, SignalPolicy


@dataclass
class Header:
    """The fields of a single-segment WFDB header that preparation needs (wfdb's names)."""

    n_sig: int
    fs: float
    sig_len: int | None
    file_name: list[str]
    fmt: list[str]
    samps_per_frame: list[int]
    skew: list[int]
    byte_offset: list[int]
    adc_gain: list[float]
    baseline: list[int]
    units: list[str]
    sig_name: list[str]


_FMT = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\(([-+]?\d+)\))?(?:/(\S+))?$")
_DEFAULT_GAIN = 200.0  # WFDB: a missing or zero gain means 200 adu per physical unit

#: millivolts per physical unit, by the spellings headers use (matched case-insensitively)
_MV_PER_UNIT: dict[str, float] = {
    "mv": 1.0, "millivolt": 1.0, "millivolts": 1.0,
    "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3,  # µ: micro sign and Greek mu
    "v": 1e3, "volt": 1e3, "volts": 1e3,
    "nv": 1e-6, "nanovolt": 1e-6, "nanovolts": 1e-6,
}
#: what the units check accepts, for messages and docs
KNOWN_UNITS = "mV, uV/µV, V or nV (any case; also millivolt, microvolt, volt, nanovolt)"


def millivolts_per_unit(units: str | None) -> float | None:
    """Scale from a header's units to mV, or None for units that are not a voltage we know.

    An empty units field is mV, WFDB's default. Anything else unknown (``NU``, ``adu``, ``mmHg``) is
    None: taking it as mV would store a signal of unknown scale.
    """
    key = (units or "").strip().lower()
    return 1.0 if not key else _MV_PER_UNIT.get(key)


class HeaderMismatch(ValueError):
    """A single-segment header whose signal count differs from its number of signal lines."""


def _header_lines(text: str) -> list[str]:
    """The record line and the signal lines: non-empty lines that are not ``#`` comments."""
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def uncalibrated_signals(text: str) -> set[int]:
    """Indices of the signal lines whose gain is 0 or missing: WFDB's mark of an uncalibrated signal.

    WFDB readers then assume 200 adu per unit, a scale nobody measured. (A line without a gain has no
    name either, so it is never taken for one of the 12 leads.) Multi-segment headers name their
    signals in the segments' own headers: none are reported here.
    """
    lines = _header_lines(text)
    if not lines or "/" in lines[0].split()[0]:
        return set()
    found = set()
    for index, line in enumerate(lines[1:]):
        parts = line.split(maxsplit=3)
        match = _GAIN.match(parts[2]) if len(parts) > 2 else None
        if len(parts) <= 2 or (match is not None and float(match.group(1)) == 0):
            found.add(index)
    return found


def parse_header(text: str) -> Header | None:
    """Parse a WFDB header without pandas (wfdb's parser costs ~5 ms, most of a record's budget).

    Returns None for layouts this parser leaves to wfdb (multi-segment records, headers without
    a signal length); raises ValueError for malformed text (:class:`HeaderMismatch` when the signal
    count and the signal lines disagree). A gain of 0 or none is read as WFDB's default of 200, as wfdb
    does; :func:`uncalibrated_signals` finds those.
    """
    lines = _header_lines(text)
    if not lines:
        raise ValueError("empty header")
    record = lines[0].split()
    if len(record) < 2:
        raise ValueError("record line needs a name and a signal count")
    if "/" in record[0]:
        return None
    n_sig = int(record[1])
    fs = float(re.split(r"[/(]", record[2])[0]) if len(record) > 2 else 250.0
    sig_len = int(record[3]) if len(record) > 3 else None
    if sig_len is None:
        return None
    signal_lines = lines[1:]
    if len(signal_lines) != n_sig:
        raise HeaderMismatch(f"the record line declares {n_sig} signals, the header has {len(signal_lines)} "
                             "signal lines")
    h = Header(n_sig, fs, sig_len, [], [], [], [], [], [], [], [], [])
    for line in signal_lines:
        parts = line.split(maxsplit=8)
        fmt = _FMT.match(parts[1]) if len(parts) > 1 else None
        if fmt is None:
            raise ValueError(f"bad signal line {line!r}")
        gain, baseline, units = _DEFAULT_GAIN, None, "mV"
        if len(parts) > 2:
            match = _GAIN.match(parts[2])
            if match is None:
                raise ValueError(f"bad gain field {parts[2]!r}")
            gain = float(match.group(1)) or _DEFAULT_GAIN
            baseline = int(match.group(2)) if match.group(2) is not None else None
            units = match.group(3) or "mV"
        adc_zero = int(parts[4]) if len(parts) > 4 else 0
        h.file_name.append(parts[0])
        h.fmt.append(fmt.group(1))
        h.samps_per_frame.append(int(fmt.group(2) or 1))
        h.skew.append(int(fmt.group(3) or 0))
        h.byte_offset.append(int(fmt.group(4) or 0))
        h.adc_gain.append(gain)
        h.baseline.append(adc_zero if baseline is None else baseline)
        h.units.append(units)
        h.sig_name.append(parts[8].strip() if len(parts) > 8 else "")
    return h


def _wfdb_header(path: str) -> Header:
    record = wfdb.rdheader(path)
    n = record.n_sig or 0
    return Header(
        n_sig=n, fs=float(record.fs or 0), sig_len=record.sig_len, file_name=list(record.file_name or []),
        fmt=[str(f) for f in (record.fmt or [])], samps_per_frame=list(record.samps_per_frame or [1] * n),
        skew=[s or 0 for s in (record.skew or [0] * n)], byte_offset=[b or 0 for b in (record.byte_offset or [0] * n)],
        adc_gain=list(record.adc_gain or []), baseline=list(record.baseline or []),
        units=list(record.units or ["mV"] * n), sig_name=list(record.sig_name or []),
    )


def load_header(path: str) -> tuple[Header, str, bool]:
    """The header of record ``path`` (no extension), its text, and whether our parser (True) read it.

    Raises :class:`RecordRejected`: ``missing_hea``, ``unreadable_header`` (also for a header without a
    positive rate, length or signal count), ``inconsistent_header`` (signal count ≠ signal lines),
    ``unknown_units`` for µ in a header only wfdb parses.
    """
    if not os.path.isfile(path + ".hea"):
        raise RecordRejected("missing_hea", f"{path}.hea not found")
    header: Header | None = None
    with open(path + ".hea", "rb") as fh:
        raw = fh.read()
    try:  # UTF-8 first (wfdb writes "µV" so), so the unit is read as µV, not as "Âµv"
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    try:
        header = parse_header(text)
    except HeaderMismatch as err:
        raise RecordRejected("inconsistent_header", f"{path}.hea: {err}") from None
    except (ValueError, IndexError):
        header = None
    fast = header is not None
    if header is None:
        fields = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        if any("µ" in line or "μ" in line for line in fields):  # wfdb's parser drops the µ of "µV" (→ V)
            raise RecordRejected("unknown_units", f"{path}.hea: units with µ in a header only wfdb can parse, "
                                 "which reads µV as V; write the units as uV")
        try:
            header = _wfdb_header(path)
        except Exception as err:  # wfdb raises many types for malformed text
            raise RecordRejected("unreadable_header", f"{path}.hea: {type(err).__name__}: {err}") from None
    if not header.fs or header.fs <= 0 or not header.sig_len or not header.n_sig:
        raise RecordRejected(
            "unreadable_header", f"{path}.hea: fs={header.fs}, sig_len={header.sig_len}, n_sig={header.n_sig}"
        )
    fields = {"sig_name": header.sig_name, "file_name": header.file_name, "fmt": header.fmt,
              "adc_gain": header.adc_gain, "baseline": header.baseline, "units": header.units}
    short = {name: len(values) for name, values in fields.items() if len(values) != header.n_sig}
    if short:  # wfdb's own parser accepts a count its signal lines do not match
        raise RecordRejected("inconsistent_header", f"{path}.hea: the record line declares {header.n_sig} signals, "
                             f"the header describes {min(short.values())}")
    return header, text, fast


def read_header(path: str, policy: SignalPolicy) -> tuple[Header, list[int], bool]:
    """Parse and validate the header (:func:`load_header`, then the leads, units, gains, rate and length).

    Returns it with the canonical→source lead permutation and whether our parser (True) or
    wfdb's (False) read it; the latter means the signal is decoded by wfdb too.
    """
    header, text, fast = load_header(path)
    perm, _ = select_leads(header.sig_name, header.n_sig)
    units = [header.units[p] for p in perm]
    unknown: dict[str, list[str]] = {}
    for lead, unit in zip(CANONICAL_LEADS, units, strict=True):
        if millivolts_per_unit(unit) is None:
            unknown.setdefault(unit, []).append(lead)
    if unknown:
        named = "; ".join(f"units {unit!r} for {', '.join(leads)}" for unit, leads in unknown.items())
        raise RecordRejected("unknown_units", f"{path}.hea: {named}; expected {KNOWN_UNITS}")
    uncalibrated = uncalibrated_signals(text)
    leads = [lead for lead, p in zip(CANONICAL_LEADS, perm, strict=True) if p in uncalibrated]
    if leads:
        raise RecordRejected("uncalibrated", f"{path}.hea: gain 0 or missing for {', '.join(leads)}; WFDB defines "
                             "that as uncalibrated (200 adu per unit assumed), so the millivolt scale is unknown")
    where = policy.folder_rate(path)
    if where is not None and abs(header.fs - where[1]) > 1e-6:
        raise RecordRejected("wrong_rate", f"{path}.hea: sampling rate {header.fs:g} Hz, but every record in "
                             f"{where[0]}/ is recorded at {where[1]} Hz (a wrong header, or a file in the wrong "
                             "folder)")
    seconds = header.sig_len / float(header.fs)
    if seconds + 1e-9 < policy.minimum_seconds:
        raise RecordRejected("too_short", f"{header.sig_len} samples at {header.fs:g} Hz = {seconds:.3f} s, "
                             f"less than {policy.minimum_seconds:g} s")
    return header, perm, fast


def select_leads(names: list[str], n_sig: int | None = None) -> tuple[list[int], list[str]]:
    """The 12 standard leads among a header's signals, by name (any case): their indices and the rest.

    Returns the index of each canonical lead in ``names`` and the names of the other signals, which
    are dropped (e.g. the Frank leads vx, vy, vz of PTB Diagnostic records). Raises
    :class:`RecordRejected`: ``wrong_lead_count`` for fewer than 12 signals, ``unknown_leads`` for 12
    signals that are not the 12 standard leads or a standard lead named twice, ``missing_lead`` when a
    record with more signals lacks a standard lead; the detail names the leads.
    """
    n_sig = len(names) if n_sig is None else n_sig
    where: dict[str, list[int]] = {}
    others: list[int] = []
    for i, raw in enumerate(names):
        canonical = canonical_lead_name(raw)
        if canonical is None:
            others.append(i)
        else:
            where.setdefault(canonical, []).append(i)
    missing = [lead for lead in CANONICAL_LEADS if lead not in where]
    twice = [lead for lead in CANONICAL_LEADS if len(where.get(lead, ())) > 1]
    if n_sig < len(CANONICAL_LEADS) or len(names) < len(CANONICAL_LEADS):
        raise RecordRejected("wrong_lead_count", f"{n_sig} signals {names}, expected the 12 standard leads; "
                             f"missing {', '.join(missing)}")
    if twice:
        raise RecordRejected("unknown_leads", f"lead {', '.join(twice)} appears more than once in {names}")
    if missing and n_sig == len(CANONICAL_LEADS):
        unknown = [names[i] for i in others]
        raise RecordRejected("unknown_leads", f"lead names {names}: {unknown} not standard leads; "
                             f"missing {', '.join(missing)}")
    if missing:
        raise RecordRejected("missing_lead", f"{', '.join(missing)} not among the {n_sig} signals {names}")
    return [where[lead][0] for lead in CANONICAL_LEADS], [names[i] or f"signal {i}" for i in others]
