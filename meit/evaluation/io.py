"""Reading and writing ``predictions.jsonl``: one ``{"id", "prediction", "reference"}`` object a line.

Reading never stops at a bad line: each one is skipped and reported with its line number, so a
long generation run is still scored and the caller can say how many lines were dropped and why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meit.errors import DataError
from meit.publish import atomic_file

REQUIRED_KEYS: tuple[str, ...] = ("id", "prediction", "reference")


@dataclass(frozen=True)
class PredictionRecord:
    """One scored pair; ``extra`` keeps any other keys of the line for round trips."""

    id: str
    prediction: str
    reference: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "prediction": self.prediction, "reference": self.reference, **self.extra}


@dataclass(frozen=True)
class LineError:
    """A line that was skipped: 1-based line number and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class PredictionFile:
    """The good records of a file (in file order) and the lines that were skipped."""

    path: Path
    records: list[PredictionRecord]
    errors: list[LineError]

    def predictions(self) -> dict[str, str]:
        return {r.id: r.prediction for r in self.records}

    def references(self) -> dict[str, str]:
        return {r.id: r.reference for r in self.records}


def parse_line(raw: bytes) -> PredictionRecord:
    """One line to a record; ``ValueError`` says what is wrong with it."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON ({err.msg} at column {err.colno})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    ident = obj["id"]
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        raise ValueError(f"'id' must be a string, got {type(ident).__name__}")
    for key in ("prediction", "reference"):
        if not isinstance(obj[key], str):
            raise ValueError(f"{key!r} must be a string, got {type(obj[key]).__name__}")
    extra = {k: v for k, v in obj.items() if k not in REQUIRED_KEYS}
    return PredictionRecord(str(ident), obj["prediction"], obj["reference"], extra)


def read_predictions(path: str | os.PathLike[str]) -> PredictionFile:
    """Read every good line of ``path``; blank lines are ignored, bad lines and duplicate ids reported."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file not found: {path}")
    records: list[PredictionRecord] = []
    errors: list[LineError] = []
    first_line: dict[str, int] = {}
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = parse_line(raw)
            except ValueError as err:
                errors.append(LineError(number, str(err)))
                continue
            if record.id in first_line:
                errors.append(LineError(number, f"duplicate id {record.id!r} (first on line {first_line[record.id]})"))
                continue
            first_line[record.id] = number
            records.append(record)
    return PredictionFile(path, records, errors)


def write_predictions(
    path: str | os.PathLike[str], records: Iterable[PredictionRecord | Mapping[str, Any]]
) -> int:
    """Write records as JSON lines (UTF-8, atomically via a temp file); returns the count written."""
    path = Path(path)
    count = 0
    with atomic_file(path) as fh:
        for rec in records:
            obj = rec.to_json() if isinstance(rec, PredictionRecord) else dict(rec)
            missing = [k for k in REQUIRED_KEYS if k not in obj]
            if missing:
                raise DataError(f"record {count + 1} lacks {', '.join(missing)}: cannot write {path}")
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            count += 1
    return count
