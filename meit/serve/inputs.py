"""A request body → one clean ECG, read exactly as ``meit generate`` reads a file, or a 4xx naming the field.

Three kinds: a wfdb record (form fields ``hea`` + ``dat``), an ``.npy`` array (form fields ``npy`` + ``fs``;
12 × T or T × 12 in mV, canonical lead order I, II, III, aVR, aVL, aVF, V1–V6) and JSON ``{"fs", "leads",
"signal"}`` (one list of mV values per named lead, any order). Bytes are written only into the
request's temporary folder and read back through :func:`meit.records.read_ecg` — the reader, unit checks
and gap repair of ``meit prep`` and ``meit generate`` — so the server sees what those commands would.
Cheap checks (sizes, rates, durations, lead names, finiteness) run first and name the field at fault.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from meit.errors import DataError
from meit.leads import CANONICAL_LEADS, canonical_lead_name, lead_permutation
from meit.records import RecordRejected, parse_header, read_ecg
from meit.serve.multipart import Part
from meit.serve.problems import RequestProblem
from meit.serve.settings import Limits

Kind = Literal["wfdb", "npy", "json"]
JSON_KEYS = ("fs", "leads", "signal", "question")
LEAD_NAMES = ", ".join(CANONICAL_LEADS)
#: a file name the server will create (no folders, no hidden files)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: reject reasons of the record reader that are the header's fault (the rest are the signal file's)
_HEADER_REASONS = frozenset({"missing_hea", "unreadable_header", "wrong_lead_count", "unknown_leads",
                             "unknown_units", "too_short"})
NPY_FILE = "signal.npy"


@dataclass
class EcgInput:
    """One accepted ECG: ``signal`` is ``(12, T)`` float32 mV in canonical order at ``fs`` Hz."""

    signal: np.ndarray
    fs: int
    kind: Kind
    repairs: list[str] = field(default_factory=list)
    question: str | None = None

    @property
    def seconds(self) -> float:
        return self.signal.shape[1] / self.fs


# ---------------------------------------------------------------------------------------------- shared checks


def _rate(value: Any, name: str, limits: Limits) -> int:
    expected = f"an integer sampling rate in Hz between {limits.min_fs} and {limits.max_fs}"
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise RequestProblem(name, f"{value!r} is not a number", expected) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value != round(value):
        raise RequestProblem(name, f"{value!r} is not an integer rate", expected)
    fs = round(value)
    if not limits.min_fs <= fs <= limits.max_fs:
        raise RequestProblem(name, f"{fs} Hz is outside the accepted rates", expected)
    return fs


def _duration(samples: int, fs: int, name: str, limits: Limits, *, status_if_long: int = 413) -> None:
    seconds = samples / fs
    expected = (f"between {limits.min_seconds:g} and {limits.max_seconds:g} s of signal "
                f"({math.ceil(limits.min_seconds * fs)}–{limits.max_samples(fs)} samples per lead at {fs} Hz)")
    if seconds > limits.max_seconds:
        raise RequestProblem(name, f"{samples} samples per lead ({seconds:.2f} s) is too long", expected,
                             status_if_long)
    if seconds + 1e-9 < limits.min_seconds:
        raise RequestProblem(name, f"{samples} samples per lead ({seconds:.2f} s) is too short", expected)


def _finite(signal: np.ndarray, name: str, fs: int, limits: Limits) -> None:
    """Refuse NaN/inf in a client's array unless the server repairs gaps as prep does."""
    if limits.repair_gaps:
        return
    bad = ~np.isfinite(signal)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1)).tolist()
    where = "; ".join(f"{CANONICAL_LEADS[r]}: {int(bad[r].sum())} (first at {np.argmax(bad[r]) / fs:.3f} s)"
                      for r in rows[:4])
    raise RequestProblem(name, f"non-finite values (NaN, inf or null) in {len(rows)} lead(s) — {where}",
                         "finite millivolt values (the server is not set to repair gaps: --repair-gaps)")


def _scrub(message: str, workdir: Path) -> str:
    """The reader's messages name files by their temporary path; the client knows them by name only."""
    return message.replace(f"{workdir}/", "").replace(str(workdir), "")


def _read_array(canonical: np.ndarray, fs: int, name: str, workdir: Path) -> tuple[np.ndarray, list[str]]:
    """Run a canonical-order array through ``meit generate``'s ``.npy`` reader (unit check, repair)."""
    path = workdir / NPY_FILE
    np.save(path, canonical, allow_pickle=False)
    try:
        signal, _, repairs = read_ecg(path, fs)
    except DataError as err:
        message = _scrub(str(err), workdir).replace(f"{NPY_FILE}: ", "")
        raise RequestProblem(name, message, "a 12-lead signal in millivolts with usable (varying, finite) leads") \
            from None
    return signal, repairs


def _question(value: Any, limits: Limits) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestProblem("question", f"a {type(value).__name__}", "a text question")
    text = " ".join(value.split())
    if len(text) > limits.max_question_chars:
        raise RequestProblem("question", f"{len(text)} characters", f"at most {limits.max_question_chars}", 413)
    return text or None


# ---------------------------------------------------------------------------------------------- JSON


def _json_rows(signal: Any, n_leads: int) -> list[np.ndarray]:
    if not isinstance(signal, list) or not signal:
        raise RequestProblem("signal", f"a {type(signal).__name__}", "a list of 12 lists of mV values, one per lead")
    if len(signal) != n_leads:
        raise RequestProblem("signal", f"{len(signal)} rows for {n_leads} lead names",
                             "one row per entry of 'leads' (12 in all)")
    rows = []
    for i, row in enumerate(signal):
        if not isinstance(row, list):
            raise RequestProblem(f"signal[{i}]", f"a {type(row).__name__}", "a list of numbers (mV)")
        try:
            values = np.asarray(row, dtype=np.float64)  # null → NaN, caught by the finiteness check
        except (TypeError, ValueError):
            kinds = sorted({type(v).__name__ for v in row if not isinstance(v, int | float) or isinstance(v, bool)})
            raise RequestProblem(f"signal[{i}]", f"holds {', '.join(kinds) or 'non-numbers'}",
                                 "a flat list of numbers (mV)") from None
        if values.ndim != 1:
            raise RequestProblem(f"signal[{i}]", f"nested {values.ndim}-D list", "a flat list of numbers (mV)")
        rows.append(values)
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise RequestProblem("signal", f"rows of different lengths {sorted(lengths)}",
                             "every lead with the same number of samples")
    return rows


def read_json(payload: Any, limits: Limits, workdir: Path) -> EcgInput:
    """``{"fs": 100, "leads": [...12 names...], "signal": [[mV...], ...], "question": optional}``."""
    if not isinstance(payload, dict):
        raise RequestProblem("body", f"a JSON {type(payload).__name__}", 'an object {"fs", "leads", "signal"}')
    unknown = sorted(set(payload) - set(JSON_KEYS))
    if unknown:
        raise RequestProblem(unknown[0], "unknown key", f"only {', '.join(JSON_KEYS)}")
    for key in ("fs", "leads", "signal"):
        if key not in payload:
            raise RequestProblem(key, "missing", 'an object {"fs", "leads", "signal"}')
    fs = _rate(payload["fs"], "fs", limits)
    leads = payload["leads"]
    if not isinstance(leads, list) or not all(isinstance(n, str) for n in leads):
        raise RequestProblem("leads", f"{leads!r:.80}", f"a list of the 12 lead names ({LEAD_NAMES}), any order")
    for i, name in enumerate(leads):
        if canonical_lead_name(name) is None:
            raise RequestProblem(f"leads[{i}]", f"{name!r} is not a 12-lead name",
                                 f"one of {LEAD_NAMES} (any case)")
    perm, repeated = lead_permutation(leads)
    if repeated:
        raise RequestProblem("leads", f"{repeated[0]!r} named twice", f"each of {LEAD_NAMES} once")
    missing = [CANONICAL_LEADS[r] for r, src in enumerate(perm) if src is None]
    if missing or len(leads) != len(CANONICAL_LEADS):
        raise RequestProblem("leads", f"{len(leads)} names, missing {', '.join(missing)}",
                             f"the 12 leads {LEAD_NAMES}")
    rows = _json_rows(payload["signal"], len(leads))
    _duration(len(rows[0]), fs, "signal", limits)
    canonical = np.stack([rows[src] for src in perm if src is not None])
    _finite(canonical, "signal", fs, limits)
    signal, repairs = _read_array(canonical, fs, "signal", workdir)
    return EcgInput(signal, fs, "json", repairs, _question(payload.get("question"), limits))


# ---------------------------------------------------------------------------------------------- .npy


def _npy_header(data: bytes) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the ``.npy`` header, checked against the bytes present before anything is allocated."""
    expected = "a NumPy .npy file (np.save) of a 12 × T or T × 12 float or int array"
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(stream)
    except (ValueError, EOFError, SyntaxError, TypeError) as err:
        raise RequestProblem("npy", f"not a readable .npy file ({err})", expected) from None
    if dtype.hasobject or dtype.kind not in "iuf":
        raise RequestProblem("npy", f"dtype {dtype}", "a real numeric array (int or float), no objects")
    if len(shape) != 2 or len(CANONICAL_LEADS) not in shape:
        raise RequestProblem("npy", f"shape {tuple(shape)}", f"12 × T or T × 12 in lead order {LEAD_NAMES}")
    present = len(data) - stream.tell()
    needed = int(np.prod(shape)) * dtype.itemsize
    if present < needed:
        raise RequestProblem("npy", f"truncated: {present} data bytes, the header's shape {tuple(shape)} needs "
                             f"{needed}", "the whole file")
    return tuple(shape), dtype


def _read_npy(parts: dict[str, list[Part]], limits: Limits, workdir: Path) -> EcgInput:
    npy = _one(parts, "npy", "the array as form field 'npy' (a .npy file)")
    if "fs" not in parts:
        raise RequestProblem("fs", "missing", "the array's sampling rate in Hz as form field 'fs'")
    fs = _rate(parts["fs"][0].text("fs"), "fs", limits)
    shape, _ = _npy_header(npy.data)
    leads = len(CANONICAL_LEADS)
    samples = shape[1] if shape[0] == leads and shape != (leads, leads) else shape[0]
    _duration(samples, fs, "npy", limits)
    path = workdir / NPY_FILE
    path.write_bytes(npy.data)
    array = np.load(path, allow_pickle=False)
    if array.shape != (leads, leads):  # (12, 12) is refused by the reader itself, naming the ambiguity
        _finite(array if array.shape[0] == leads else array.T, "npy", fs, limits)
    try:
        signal, _, repairs = read_ecg(path, fs)
    except DataError as err:
        raise RequestProblem("npy", _scrub(str(err), workdir).replace(f"{NPY_FILE}: ", ""),
                             f"12 × T or T × 12 millivolts in lead order {LEAD_NAMES}") from None
    return EcgInput(signal, fs, "npy", repairs, _question(_text(parts, "question"), limits))


# ---------------------------------------------------------------------------------------------- wfdb


def _one(parts: dict[str, list[Part]], name: str, expected: str) -> Part:
    found = parts.get(name, [])
    if not found:
        raise RequestProblem(name, "missing", expected)
    if len(found) > 1:
        raise RequestProblem(name, f"given {len(found)} times", f"{expected}, once")
    return found[0]


def _text(parts: dict[str, list[Part]], name: str) -> str | None:
    found = parts.get(name)
    return found[0].text(name) if found else None


def _header(data: bytes) -> tuple[str, Any]:
    """The record name and the parsed single-segment header (our parser, as ``meit prep`` uses)."""
    expected = "a single-segment WFDB header: 'NAME 12 FS SAMPLES', then one line per signal"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        header = parse_header(text)
    except (ValueError, IndexError) as err:
        raise RequestProblem("hea", f"bad header ({err})", expected) from None
    if header is None:
        raise RequestProblem("hea", "a multi-segment header or one without a signal length", expected)
    name = next(line.split()[0] for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if not _SAFE_NAME.match(name):
        raise RequestProblem("hea", f"record name {name!r:.60}", "letters, digits, '_', '-' or '.' (no folders)")
    for file_name in header.file_name:
        if not _SAFE_NAME.match(file_name) or file_name == f"{name}.hea":
            raise RequestProblem("hea", f"signal file name {file_name!r:.60}", "a plain file name such as NAME.dat")
    return name, header


def _read_wfdb(parts: dict[str, list[Part]], limits: Limits, workdir: Path) -> EcgInput:
    hea = _one(parts, "hea", "the record's header (.hea) as form field 'hea'")
    name, header = _header(hea.data)
    fs = _rate(header.fs, "hea", limits)
    _duration(int(header.sig_len), fs, "hea", limits)
    wanted = list(dict.fromkeys(header.file_name))
    uploads = parts.get("dat", [])
    if not uploads:
        raise RequestProblem("dat", "missing", f"the signal file(s) {', '.join(wanted)} as form field 'dat'")
    by_name = {Path(p.filename or "").name: p for p in uploads}
    files: dict[str, bytes] = {}
    if len(wanted) == 1 and len(uploads) == 1:
        files[wanted[0]] = uploads[0].data  # the header names the file; the client's file name does not matter
    else:
        absent = [w for w in wanted if w not in by_name]
        if absent:
            raise RequestProblem("dat", f"no upload named {', '.join(absent)} (got {', '.join(sorted(by_name))})",
                                 f"one 'dat' part per signal file the header names: {', '.join(wanted)}")
        files = {w: by_name[w].data for w in wanted}
    (workdir / f"{name}.hea").write_bytes(hea.data)
    for file_name, data in files.items():
        (workdir / file_name).write_bytes(data)
    try:
        signal, rate, repairs = read_ecg(workdir / name)
    except DataError as err:
        cause = err.__cause__
        reason = cause.reason if isinstance(cause, RecordRejected) else "unreadable_header"
        where = "hea" if reason in _HEADER_REASONS else "dat"
        raise RequestProblem(where, _scrub(str(err), workdir),
                             "a 12-lead WFDB record whose header and signal file agree") from None
    return EcgInput(signal, rate, "wfdb", repairs, _question(_text(parts, "question"), limits))


def read_form(parts: dict[str, list[Part]], limits: Limits, workdir: Path) -> EcgInput:
    """A multipart request: ``npy`` + ``fs``, or ``hea`` + ``dat``; the optional ``question`` field."""
    if "npy" in parts:
        return _read_npy(parts, limits, workdir)
    if "hea" in parts or "dat" in parts:
        return _read_wfdb(parts, limits, workdir)
    raise RequestProblem("body", f"form fields {sorted(parts) or 'none'}",
                         "'hea' + 'dat' (a wfdb record) or 'npy' + 'fs' (an array)")
