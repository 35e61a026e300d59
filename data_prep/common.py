"""Shared preparation machinery: reading one WFDB record into a clean 12 × T millivolt array (or a
typed reason to reject it), and streaming many records into a resumable, sharded dataset.

Record checks run cheapest first (files, header, lead names, length) so a broken record costs little,
and each failure maps to one reject reason that ``rejected.jsonl`` reports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import multiprocessing.pool
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import wfdb

from meit import __version__
from meit.data.transforms import crop_or_pad, resample
from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS, lead_permutation

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Features, Value

log = logging.getLogger(__name__)

# Reject reasons, in the order the checks run. Values are the one-line explanations used in docs.
REJECT_REASONS: dict[str, str] = {
    "invalid_split": "the table gives no usable split (PTB-XL strat_fold missing or outside 1-10)",
    "empty_report": "the report is empty after cleaning (or missing from the translation CSV)",
    "missing_hea": "the .hea header file does not exist",
    "unreadable_header": "the header cannot be parsed or has no usable sampling rate / length",
    "wrong_lead_count": "the header does not declare exactly 12 signals",
    "unknown_leads": "a signal name is not one of the 12 standard leads (or appears twice)",
    "too_short": "the record is shorter than the minimum duration",
    "missing_dat": "a signal file named in the header does not exist",
    "truncated_dat": "a signal file is smaller than the header says",
    "unreadable_dat": "the signal file cannot be decoded",
    "missing_lead": "a lead is entirely missing and the policy is to reject",
    "unusable_signal": "no lead carries a usable (finite, non-constant) signal",
    "unexpected_error": "anything else that went wrong reading this record (detail has the exception)",
}

# Bytes per sample of the WFDB storage formats we can size-check; others are checked by decoding.
_BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3,
}
_UNIT_SCALE: dict[str, float] = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}


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


def _check_files(path: str, header: Header) -> None:
    """Missing or short signal files are told apart from undecodable ones before decoding."""
    directory = os.path.dirname(path)
    n_sig = header.n_sig or 0
    spf = header.samps_per_frame or [1] * n_sig
    offsets = header.byte_offset or [0] * n_sig
    per_frame: dict[str, float] = {}
    first_offset: dict[str, int] = {}
    sizable = True
    for file_name, fmt, frames, off in zip(header.file_name, header.fmt, spf, offsets, strict=False):
        per = _BYTES_PER_SAMPLE.get(str(fmt))
        sizable = sizable and per is not None
        per_frame[file_name] = per_frame.get(file_name, 0.0) + (per or 0.0) * (frames or 1)
        first_offset.setdefault(file_name, int(off or 0))
    for file_name, width in per_frame.items():
        full = os.path.join(directory, file_name)
        if not os.path.isfile(full):
            raise RecordRejected("missing_dat", f"{full} not found")
        expected = int(np.ceil(width * header.sig_len)) + first_offset[file_name]
        actual = os.path.getsize(full)
        if sizable and actual < expected:
            raise RecordRejected("truncated_dat", f"{full}: {actual} bytes, header implies {expected}")


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


def parse_header(text: str) -> Header | None:
    """Parse a WFDB header without pandas (wfdb's parser costs ~5 ms, most of a record's budget).

    Returns None for layouts this parser leaves to wfdb (multi-segment records, headers without
    a signal length); raises ValueError for malformed text.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
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
    signal_lines = lines[1 : 1 + n_sig]
    if len(signal_lines) != n_sig:
        raise ValueError(f"{n_sig} signals declared, {len(signal_lines)} signal lines found")
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


def read_header(path: str, policy: SignalPolicy) -> tuple[Header, list[int], bool]:
    """Parse and validate the header.

    Returns it with the canonical→source lead permutation and whether our parser (True) or
    wfdb's (False) read it; the latter means the signal is decoded by wfdb too.
    """
    if not os.path.isfile(path + ".hea"):
        raise RecordRejected("missing_hea", f"{path}.hea not found")
    header: Header | None = None
    try:
        with open(path + ".hea", encoding="latin-1") as fh:
            header = parse_header(fh.read())
    except (ValueError, IndexError):
        header = None
    fast = header is not None
    if header is None:
        try:
            header = _wfdb_header(path)
        except Exception as err:  # wfdb raises many types for malformed text
            raise RecordRejected("unreadable_header", f"{path}.hea: {type(err).__name__}: {err}") from None
    if not header.fs or header.fs <= 0 or not header.sig_len or not header.n_sig:
        raise RecordRejected(
            "unreadable_header", f"{path}.hea: fs={header.fs}, sig_len={header.sig_len}, n_sig={header.n_sig}"
        )
    if header.n_sig != len(CANONICAL_LEADS):
        raise RecordRejected("wrong_lead_count", f"{header.n_sig} signals, expected 12")
    perm, unknown = lead_permutation(header.sig_name)
    if unknown or any(p is None for p in perm):
        raise RecordRejected("unknown_leads", f"lead names {header.sig_name}")
    seconds = header.sig_len / float(header.fs)
    if seconds + 1e-9 < policy.minimum_seconds:
        raise RecordRejected("too_short", f"{seconds:.3f} s < {policy.minimum_seconds} s")
    return header, [int(p) for p in perm if p is not None], fast


def _fast_physical(path: str, header: Header, perm: list[int]) -> np.ndarray | None:
    """Format-16 single-file records decoded with numpy, as wfdb would (invalid -32768 → NaN).

    Returns (12, T) float64 in canonical order, or None when the layout needs wfdb.
    """
    if (
        any(f != "16" for f in header.fmt) or len(set(header.file_name)) != 1
        or any(s != 1 for s in header.samps_per_frame) or any(header.skew) or len(set(header.byte_offset)) != 1
    ):
        return None
    assert header.sig_len is not None
    full = os.path.join(os.path.dirname(path), header.file_name[0])
    count = header.sig_len * header.n_sig
    digital = np.fromfile(full, dtype="<i2", count=count, offset=header.byte_offset[0])
    if digital.size != count:
        raise RecordRejected("truncated_dat", f"{full}: {digital.size} samples, header implies {count}")
    frames = digital.reshape(header.sig_len, header.n_sig).T[perm]
    invalid = frames == -32768
    baseline = np.asarray(header.baseline, dtype=np.float64)[perm, None]
    gain = np.asarray(header.adc_gain, dtype=np.float64)[perm, None]
    physical = (frames - baseline) / gain
    physical[invalid] = np.nan
    return physical


def read_signal(path: str, policy: SignalPolicy) -> tuple[np.ndarray, list[str]]:
    """Read, reorder, repair, resample and crop/pad one record to float32 ``(12, policy.samples)``.

    ``path`` is the record path without extension. Raises :class:`RecordRejected`.
    """
    header, perm, fast = read_header(path, policy)
    _check_files(path, header)
    sig = _fast_physical(path, header, perm) if fast else None
    if sig is None:
        try:
            raw = wfdb.rdrecord(path, physical=True).p_signal
        except Exception as err:
            raise RecordRejected("unreadable_dat", f"{path}: {type(err).__name__}: {err}") from None
        if raw is None or raw.ndim != 2 or raw.shape[1] != len(CANONICAL_LEADS):
            raise RecordRejected("unreadable_dat", f"{path}: decoded shape {getattr(raw, 'shape', None)}")
        sig = raw[:, perm].T.astype(np.float64, copy=True)
    scale = np.array([_UNIT_SCALE.get(str(header.units[p] or "mV").strip().lower(), 1.0) for p in perm])
    if (scale != 1.0).any():
        sig *= scale[:, None]
    fs_src = round(header.fs)
    sig, repairs = repair_signal(sig, fs_src, policy)
    if fs_src != policy.fs:
        sig = resample(sig, fs_src, policy.fs)
    n = sig.shape[1]
    if n < policy.samples:
        repairs.append(f"padded:end:{policy.samples - n} samples")
    sig = crop_or_pad(sig, policy.samples, mode="start")
    out = sig.astype(np.float32)
    if not np.isfinite(out).all():  # e.g. absurd values overflowing float32
        raise RecordRejected("unusable_signal", "non-finite values after conversion to float32")
    return out, repairs


# --------------------------------------------------------------------------------------------------
# From a list of input records to a prepared dataset on disk (sharded, resumable, deterministic).
# --------------------------------------------------------------------------------------------------

SPLITS: tuple[str, ...] = ("train", "validation", "test")
FORMAT_VERSION = 1
WORK_DIR = ".work"
_SHARD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Item:
    """One input record as the source module lists it (metadata only, no signal)."""

    id: str
    patient_id: str
    split: str
    path: str  # absolute record path without extension
    report: str
    extra: tuple[tuple[str, object], ...] = ()


class ItemTable:
    """All input records as one columnar table (a few hundred bytes per record, not Python objects).

    ``frame`` has columns ``id, patient_id, split, path, report`` plus the extra columns named in
    ``extra_kinds`` (column → "bool" | "int" | "float" | "str"). Items are materialised one shard at
    a time, so even MIMIC-IV-ECG's ~800k records fit in a small, fixed budget.
    """

    REQUIRED = ("id", "patient_id", "split", "path", "report")

    def __init__(self, frame: pd.DataFrame, extra_kinds: dict[str, str]) -> None:
        missing = [c for c in (*self.REQUIRED, *extra_kinds) if c not in frame.columns]
        if missing:
            raise ValueError(f"ItemTable: frame lacks columns {missing}")
        frame = frame.reset_index(drop=True)[[*self.REQUIRED, *extra_kinds]].copy()
        for col in frame.columns:
            if frame[col].dtype == object:  # arrow-backed strings: bytes, not Python objects
                frame[col] = frame[col].map(text_or_none).astype("string[pyarrow]")
        self.frame = frame
        self.extra_kinds = dict(extra_kinds)

    def __len__(self) -> int:
        return len(self.frame)

    def duplicate_id(self) -> str | None:
        dup = self.frame["id"].duplicated()
        return str(self.frame["id"][dup].iloc[0]) if dup.any() else None

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero((self.frame["split"] == split).to_numpy())

    def items(self, indices: np.ndarray) -> list[Item]:
        out = []
        for row in self.frame.iloc[indices].to_dict("records"):
            extra = tuple((c, column_value(row[c], kind)) for c, kind in self.extra_kinds.items())
            out.append(Item(str(row["id"]), str(row["patient_id"]), str(row["split"]), str(row["path"]),
                            clean_report(row["report"]), extra))
        return out

    def fingerprint(self) -> str:
        """Content hash of the whole table: a changed input table is a different job."""
        h = hashlib.sha256(json.dumps([list(self.frame.columns), self.extra_kinds]).encode())
        for col in self.frame.columns:
            h.update(pd.util.hash_pandas_object(self.frame[col], index=False).to_numpy().tobytes())
        return h.hexdigest()


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and not np.isfinite(value)


def text_or_none(value: object) -> str | None:
    """A table cell as text, or None when missing (NaN, None, pd.NA)."""
    return None if _is_missing(value) else str(value)


@dataclass(frozen=True)
class Outcome:
    """What a worker returns for one item: a row (with its digest) or a reject."""

    row: dict | None
    digest: bytes
    reject: dict | None


def base_features(samples: int) -> dict:
    """Columns every prepared dataset has, in order (the DESIGN.md contract)."""
    from datasets import Array2D, List, Value

    return {
        "id": Value("string"),
        "patient_id": Value("string"),
        "ecg": Array2D(shape=(len(CANONICAL_LEADS), samples), dtype="float32"),
        "fs": Value("int64"),
        "report": Value("string"),
        "repairs": List(Value("string")),
    }


def row_digest(row: dict) -> bytes:
    """Content digest of one row: every field, the signal as raw float32 bytes."""
    meta = {k: v for k, v in row.items() if k != "ecg"}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str).encode())
    h.update(np.ascontiguousarray(row["ecg"], dtype=np.float32).tobytes())
    return h.digest()


def process_item(item: Item, policy: SignalPolicy) -> Outcome:
    """Turn one input record into a row or a reject; never raises for bad data."""
    try:
        if not item.report.strip():
            raise RecordRejected("empty_report", "no report text")
        ecg, repairs = read_signal(item.path, policy)
    except RecordRejected as rej:
        reject = {"id": item.id, "reason": rej.reason, "detail": rej.detail}
        return Outcome(None, b"", reject)
    except Exception as err:  # a bug or an unforeseen file problem must not stop the batch
        reject = {"id": item.id, "reason": "unexpected_error", "detail": f"{type(err).__name__}: {err}"}
        return Outcome(None, b"", reject)
    row = {
        "id": item.id, "patient_id": item.patient_id, "ecg": ecg, "fs": policy.fs,
        "report": item.report, "repairs": repairs, **dict(item.extra),
    }
    return Outcome(row, row_digest(row), None)


def _watch_parent(parent: int) -> None:
    # A worker whose parent was killed (kill -9) would otherwise wait forever on its task queue.
    # The parent is the main process (fork) or the forkserver, which exits when the main one dies.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def _start_pool(workers: int) -> mp.pool.Pool:
    """Worker pool, started before this run creates any thread of its own.

    Linux: ``fork`` (instant; a fresh interpreter re-imports numpy/scipy/pandas for seconds per
    worker). Elsewhere: ``forkserver`` with this module preloaded (fork is unsafe on macOS).
    """
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("fork")
    else:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["data_prep.common"])
    return ctx.Pool(workers, initializer=_init_worker)


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    count: int  # shards in this split
    rows: np.ndarray  # positions in the ItemTable

    @property
    def file_name(self) -> str:
        return f"data-{self.index:05d}-of-{self.count:05d}.arrow"

    @property
    def key(self) -> str:
        return f"{self.split}-{self.index:05d}"


def plan_shards(table: ItemTable, shard_size: int) -> list[Shard]:
    """Fixed shards per split from the input order alone, so output never depends on workers."""
    shards: list[Shard] = []
    for split in SPLITS:
        mine = table.indices(split)
        count = max(1, -(-len(mine) // shard_size))
        for k in range(count):
            shards.append(Shard(split, k, count, mine[k * shard_size : (k + 1) * shard_size]))
    return shards


def default_shard_size(samples: int) -> int:
    """About 32 MiB of signal per shard (one worker task), between 16 and 1024 records."""
    return int(min(1024, max(16, _SHARD_BYTES // (len(CANONICAL_LEADS) * samples * 4))))


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _ecg_column(rows: list[dict], samples: int) -> pa.Array:
    """The Array2D column built straight from one contiguous buffer (no per-value Python work)."""
    import pyarrow as pa
    from datasets.features.features import Array2DExtensionType

    leads = len(CANONICAL_LEADS)
    n = len(rows)
    block = np.empty((n, leads, samples), dtype=np.float32)
    for i, row in enumerate(rows):
        block[i] = row["ecg"]
    values = pa.array(block.reshape(-1))
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, n * leads * samples + 1, samples, dtype=np.int32)), values)
    outer = pa.ListArray.from_arrays(pa.array(np.arange(0, n * leads + 1, leads, dtype=np.int32)), inner)
    return pa.ExtensionArray.from_storage(Array2DExtensionType((leads, samples), "float32"), outer)


def _write_shard(path: Path, rows: list[dict], features: Features) -> None:
    """One arrow stream file in the layout ``datasets.save_to_disk`` writes, atomically."""
    import pyarrow as pa

    schema = features.arrow_schema
    samples = features["ecg"].shape[1]
    arrays = []
    for field in schema:
        if field.name == "ecg":
            arrays.append(_ecg_column(rows, samples))
        else:
            arrays.append(pa.array([row.get(field.name) for row in rows], type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        if rows:
            writer.write_table(table)
    os.replace(tmp, path)


_OUR_NAMES = {
    "manifest.json", "rejected.jsonl", "dataset_dict.json", WORK_DIR, *SPLITS,
    "manifest.json.tmp", "rejected.jsonl.tmp", "dataset_dict.json.tmp",
}


def _maybe_crash(point: str) -> None:
    """Test hook: ``MEIT_PREP_KILL_AT=shard:N`` (after N shards) or ``finalise`` SIGKILLs this process.

    It lets tests prove that a run killed at any of these points resumes to identical output.
    """
    spec = os.environ.get("MEIT_PREP_KILL_AT", "")
    if not spec.startswith(point):
        return
    if point == "shard":
        global _shards_written
        _shards_written += 1
        if _shards_written < int(spec.split(":", 1)[1]):
            return
    os.kill(os.getpid(), signal.SIGKILL)


_shards_written = 0


def _reset_output(out: Path) -> None:
    for name in _OUR_NAMES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _claim_output(out: Path, config: dict, overwrite: bool) -> dict | None:
    """Decide fresh start / resume / already done; returns the finished manifest when done."""
    manifest_path = out / "manifest.json"
    work = out / WORK_DIR
    if out.exists() and not out.is_dir():
        raise ConfigError(f"OUT {out}: exists and is not a directory")
    if overwrite:
        _reset_output(out)
    elif manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("config") == config:
            if work.exists():
                shutil.rmtree(work)
            return manifest
        raise ConfigError(
            f"OUT {out}: already holds a dataset prepared with other settings; "
            "choose another directory or pass --overwrite"
        )
    elif (work / "config.json").exists():
        previous = json.loads((work / "config.json").read_text(encoding="utf-8"))
        if previous != config:
            raise ConfigError(
                f"OUT {out}: holds an interrupted run with other settings "
                f"({WORK_DIR}/config.json differs); rerun with the same settings or pass --overwrite"
            )
    elif out.exists() and any(p.name not in _OUR_NAMES for p in out.iterdir()):
        raise ConfigError(f"OUT {out}: is not empty and is not a meit prep output; choose an empty directory")
    (work / "markers").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        for stale in (out / split).glob("*.tmp"):
            stale.unlink()
    _atomic_write_text(work / "config.json", json.dumps(config, indent=2, sort_keys=True))
    return None


def _finalise(
    out: Path, shards: list[Shard], features: Features, manifest: dict, pre_rejects: list[dict]
) -> dict:
    """Write the datasets metadata, rejected.jsonl and manifest.json (last: it marks completion).

    Markers are read one at a time and rejects streamed to disk, so memory stays flat.
    """
    work = out / WORK_DIR
    total = hashlib.sha256()
    counts: dict[str, int] = {}
    by_reason: Counter[str] = Counter()
    rejects_hash = hashlib.sha256()
    rejected_tmp = out / "rejected.jsonl.tmp"
    info = {"citation": "", "description": f"meit prep {manifest['source']}", "features": features.to_dict(),
            "homepage": "", "license": ""}
    with open(rejected_tmp, "w", encoding="utf-8") as rejected:

        def add_rejects(rows: list[dict]) -> None:
            for r in rows:
                line = json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                rejected.write(line)
                rejects_hash.update(line.encode())
                by_reason[r["reason"]] += 1

        add_rejects(pre_rejects)
        for split in SPLITS:
            mine = [s for s in shards if s.split == split]
            split_hash = hashlib.sha256()
            counts[split] = 0
            for s in mine:
                marker = json.loads((work / "markers" / f"{s.key}.json").read_text())
                split_hash.update(bytes.fromhex(marker["digests"]))
                add_rejects(marker["rejects"])
                counts[split] += marker["rows"]
            total.update(split.encode() + split_hash.digest())
            state = {
                "_data_files": [{"filename": s.file_name} for s in mine],
                "_fingerprint": split_hash.hexdigest()[:16],
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": split,
            }
            _atomic_write_text(out / split / "state.json", json.dumps(state, indent=2, sort_keys=True))
            _atomic_write_text(out / split / "dataset_info.json", json.dumps(info, indent=2))
    _maybe_crash("finalise")
    total.update(b"rejected" + rejects_hash.digest())
    _atomic_write_text(out / "dataset_dict.json", json.dumps({"splits": list(SPLITS)}))
    os.replace(rejected_tmp, out / "rejected.jsonl")
    manifest = {
        **manifest,
        "counts": counts,
        "inputs": sum(len(s.rows) for s in shards) + len(pre_rejects),
        "rejected": sum(by_reason.values()),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "content_hash": "sha256:" + total.hexdigest(),
    }
    _atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(work)
    return manifest


def run_prepare(
    items: ItemTable,
    out: str | os.PathLike,
    *,
    features: dict,
    policy: SignalPolicy,
    manifest: dict,
    config: dict,
    workers: int = 1,
    shard_size: int | None = None,
    pre_rejects: list[dict] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Process ``items`` into ``OUT`` (see DESIGN.md) and return the manifest.

    Shards are written to their final place atomically, with a marker per finished shard in
    ``OUT/.work``; a rerun after any interruption skips finished shards and ends with the same bytes.
    ``config`` must hold every setting that changes output: a rerun with other settings is refused.
    ``pre_rejects`` are records the source module already refused from its tables alone.
    """
    from datasets import Features

    if workers < 1:
        raise ConfigError(f"workers: expected >= 1, got {workers}")
    out_path = Path(out)
    shard_size = shard_size or default_shard_size(policy.samples)
    if shard_size < 1:
        raise ConfigError(f"shard_size: expected >= 1, got {shard_size}")
    pre_rejects = list(pre_rejects or [])
    dup = items.duplicate_id()
    pre_ids = [r["id"] for r in pre_rejects]
    if dup is None and len(set(pre_ids)) != len(pre_ids):
        dup = next(i for i, c in Counter(pre_ids).items() if c > 1)
    if dup is None and pre_ids and items.frame["id"].isin(pre_ids).any():
        dup = str(items.frame["id"][items.frame["id"].isin(pre_ids)].iloc[0])
    if dup is not None:
        raise DataError(f"record id {dup!r} appears more than once in the input tables")
    inputs_hash = hashlib.sha256(
        (items.fingerprint() + json.dumps(pre_rejects, sort_keys=True)).encode()
    ).hexdigest()
    config = {**config, "shard_size": shard_size, "inputs_hash": inputs_hash, "format_version": FORMAT_VERSION}
    done_manifest = _claim_output(out_path, config, overwrite)
    if done_manifest is not None:
        log.info("%s already holds this prepared dataset; nothing to do", out_path)
        return done_manifest

    markers = out_path / WORK_DIR / "markers"
    shards = plan_shards(items, shard_size)
    todo = [s for s in shards if not (markers / f"{s.key}.json").exists()]
    pool = _start_pool(workers) if workers > 1 and todo else None
    try:
        _process_shards(todo, items, out_path, Features(features), policy, pool, workers, progress,
                        total=len(items), source=manifest["source"])
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    manifest = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "meit_version": __version__,
        "fs": policy.fs,
        "seconds": policy.seconds,
        "samples": policy.samples,
        "leads": list(CANONICAL_LEADS),
        "units": "mV",
        "config": config,
    }
    return _finalise(out_path, shards, Features(features), manifest, pre_rejects)


def build_shard(shard: Shard, items: list[Item], out_dir: str, feats: Features, policy: SignalPolicy) -> int:
    """Worker entry point: process one shard's records and make the shard durable.

    The worker writes the arrow file and then its marker itself, so signals never cross a pipe
    and the parent stays idle; returns the number of input records handled.
    """
    rows: list[dict] = []
    rejects: list[dict] = []
    digests: list[bytes] = []
    for item in items:
        outcome = process_item(item, policy)
        if outcome.row is not None:
            rows.append(outcome.row)
            digests.append(outcome.digest)
        else:
            rejects.append(outcome.reject)
    out_path = Path(out_dir)
    _write_shard(out_path / shard.split / shard.file_name, rows, feats)
    marker = {"rows": len(rows), "digests": b"".join(digests).hex(), "rejects": rejects}
    _atomic_write_text(out_path / WORK_DIR / "markers" / f"{shard.key}.json", json.dumps(marker, sort_keys=True))
    return len(items)


def _process_shards(
    todo: list[Shard], items: ItemTable, out_path: Path, feats: Features, policy: SignalPolicy,
    pool: mp.pool.Pool | None, workers: int, progress: bool, *, total: int, source: str,
) -> None:
    """Run the unfinished shards, a bounded number in flight; finished shards survive any crash."""
    from tqdm import tqdm

    skipped = total - sum(len(s.rows) for s in todo)
    if skipped:
        log.info("resuming: %d of %d records already prepared", skipped, total)
    bar = tqdm(total=total, initial=skipped, unit="rec", desc=f"prep {source}",
               disable=not progress, dynamic_ncols=True)
    with bar:
        if pool is None:
            for shard in todo:
                bar.update(build_shard(shard, items.items(shard.rows), str(out_path), feats, policy))
                _maybe_crash("shard")
            return
        pending: deque = deque()
        queue = iter(todo)
        while True:
            while len(pending) < workers + 1:
                shard = next(queue, None)
                if shard is None:
                    break
                args = (shard, items.items(shard.rows), str(out_path), feats, policy)
                pending.append(pool.apply_async(build_shard, args))
            if not pending:
                break
            bar.update(pending.popleft().get())
            _maybe_crash("shard")


def column_feature(series: pd.Series) -> tuple[str, Value]:
    """Arrow type for a kept table column: bool, int64, float64 or string (missing → null)."""
    from datasets import Value

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool", Value("bool")
    if pd.api.types.is_integer_dtype(dtype):
        return "int", Value("int64")
    if pd.api.types.is_float_dtype(dtype):
        finite = series.dropna()
        if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 2**53 and series.isna().any():
            return "int", Value("int64")  # an integer column with gaps arrives as float
        return "float", Value("float64")
    return "str", Value("string")


def column_value(value: object, kind: str) -> object:
    """A table cell as a plain Python value of ``kind``; NaN / inf / empty become None."""
    if _is_missing(value):
        return None
    try:
        if kind == "bool":
            return value.strip().lower() in {"true", "1", "yes"} if isinstance(value, str) else bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        return None
    text = str(value)
    return text


def read_table(path: Path, required: tuple[str, ...], **kwargs: object) -> pd.DataFrame:
    """Read a CSV of the raw layout, naming the file and the missing columns on failure."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the raw dataset's table here)")
    try:
        table = pd.read_csv(path, **kwargs)
    except Exception as err:
        raise DataError(f"{path}: cannot be read as CSV ({type(err).__name__}: {err})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    return table


def clean_report(text: object) -> str:
    """Report as stored: whitespace-normalised; NaN / None give the empty string (→ empty_report)."""
    return clean_text(text)


def clean_text(text: object) -> str:
    """Whitespace-normalised text; NaN / None give the empty string."""
    if _is_missing(text):
        return ""
    return " ".join(str(text).split())


def preprocessing_description(policy: SignalPolicy) -> dict:
    """The manifest's human-readable account of what happened to every signal."""
    return {
        "units": "physical values from the header (wfdb physical=True) converted to millivolts",
        "lead_order": "matched by name, case-insensitive, written in canonical order",
        "nan_repair": f"non-finite runs up to {policy.max_gap_seconds} s linearly interpolated per lead",
        "missing_lead": (
            "a lead with no finite sample or a longer gap is zero-filled and recorded"
            if policy.missing_lead == "zero" else "a lead with no finite sample or a longer gap rejects the record"
        ),
        "resample": f"polyphase (scipy.signal.resample_poly) to {policy.fs} Hz when the header differs",
        "length": (
            f"first {policy.seconds} s kept ({policy.samples} samples); records of at least "
            f"{policy.minimum_seconds} s but shorter are zero-padded at the end (recorded)"
        ),
        "normalisation": "none (applied at load time by the encoder's transform)",
    }
