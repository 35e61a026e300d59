"""Raw tables → typed, clean values: column types for the dataset schema, cell values, report text.

Source modules read their CSVs through :func:`read_table` (a bad table names the file and column) and
turn cells into plain Python values here, so every source types and cleans columns the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from meit.errors import DataError

if TYPE_CHECKING:
    from datasets import Value


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and not np.isfinite(value)


def text_or_none(value: object) -> str | None:
    """A table cell as text, or None when missing (NaN, None, pd.NA)."""
    return None if _is_missing(value) else str(value)


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
