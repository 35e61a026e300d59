"""One input record and what it becomes: the listing a source builds, and the row or reject per record.

A source module lists its records as an :class:`ItemTable` (metadata only); a worker turns each
:class:`Item` into a dataset row or a reject with :func:`process_item`, reading the signal with
:mod:`meit.records`. :func:`preprocessing_description` is the manifest's account of that same step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_prep.tables import clean_report, column_value, text_or_none
from meit.leads import CANONICAL_LEADS
from meit.records import MAX_LEAD_MEDIAN_MV, MAX_SAMPLE_MV, RecordRejected, SignalPolicy, read_signal


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


def preprocessing_description(policy: SignalPolicy) -> dict:
    """The manifest's human-readable account of what happened to every signal."""
    return {
        "units": (
            "physical values from the header (wfdb physical=True) converted to millivolts from mV, uV/µV, V "
            "or nV; other units reject the record (unknown_units)"
        ),
        "lead_order": (
            "the 12 standard leads matched by name, case-insensitive, written in canonical order; other "
            "signals (e.g. Frank leads vx, vy, vz) dropped and recorded as dropped_leads"
        ),
        "amplitude": (
            f"a lead whose median |amplitude| is above {MAX_LEAD_MEDIAN_MV:g} mV rejects the record "
            f"(implausible_amplitude); samples beyond ±{MAX_SAMPLE_MV:g} mV are treated as missing samples "
            "(recorded as out_of_range) and repaired like non-finite ones"
        ),
        **({"sampling_rate": "a header whose rate differs from its folder's ("
            + ", ".join(f"{folder}: {rate} Hz" for folder, rate in policy.folder_rates)
            + ") rejects the record (wrong_rate)"} if policy.folder_rates else {}),
        "nan_repair": f"non-finite runs up to {policy.max_gap_seconds} s linearly interpolated per lead",
        "missing_lead": {
            "repair": (
                f"a longer non-finite run, a lead without finite samples or a dead flat limb lead is a missing "
                f"span: a limb lead's span is rebuilt from two other limb leads valid over it (Einthoven/"
                f"Goldberger), any other span is blanked to 0 mV (only the span); both recorded with lead and "
                f"seconds; records with more than {policy.max_blanked_fraction:.0%} of samples blanked rejected"
            ),
            "zero": (
                f"a longer non-finite run, a lead without finite samples or a dead flat limb lead is blanked to "
                f"0 mV over that span only (no rebuilding) and recorded; records with more than "
                f"{policy.max_blanked_fraction:.0%} of samples blanked rejected"
            ),
            "reject": "a longer non-finite run, a lead without finite samples or a dead flat limb lead rejects "
                      "the record",
        }[policy.missing_lead],
        "resample": f"polyphase (scipy.signal.resample_poly) to {policy.fs} Hz when the header differs",
        "length": (
            f"first {policy.seconds} s kept ({policy.samples} samples); records of at least "
            f"{policy.minimum_seconds} s but shorter are zero-padded at the end (recorded)"
        ),
        "normalisation": "none (applied at load time by the encoder's transform)",
    }
