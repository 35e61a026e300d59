"""Result tables, one way: plain text for terminals, markdown for reports, CSV for spreadsheets.

Every command and benchmark that prints or writes a table uses these, so numbers are formatted alike
(4 decimals for floats, "–" for a missing value) and columns line up the same way everywhere.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Rows with possibly different keys → one CSV whose columns are their union, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


MISSING = "–"


def cell(value: Any, decimals: int = 4) -> str:
    """One table cell: floats to ``decimals`` places, None or "" as "–", anything else as written."""
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return MISSING if value is None or value == "" else str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, left: int = 0) -> str:
    """Plain-text table for terminals; ``columns`` are (key, header) pairs.

    The first ``left`` columns (labels) are left-aligned, the rest (numbers) right-aligned. Values are
    printed as given (callers round what they mean to round); a missing key shows "–".
    """
    cells = [[h for _, h in columns]] + [[str(row.get(k, MISSING)) for k, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        " ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        .rstrip()
        for line in cells)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, left: int = 1, decimals: int = 4) -> str:
    """A GitHub markdown table: the first ``left`` columns are labels, the rest right-aligned numbers.

    Cells go through :func:`cell`, so floats show ``decimals`` places and missing values "–".
    """
    lines = ["| " + " | ".join(header) + " |",
             "|" + "".join("---|" if i < left else "---:|" for i in range(len(header)))]
    lines += ["| " + " | ".join(cell(v, decimals) for v in row) + " |" for row in rows]
    return "\n".join(lines)
