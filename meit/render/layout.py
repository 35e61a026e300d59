"""Where each lead goes on the page: the paper layouts, in millimetres.

A layout is a grid of rows × columns; each column shows a consecutive time window of the record (the
convention of 12-lead printouts: in 3×4, I/II/III are 0–2.5 s, aVR/aVL/aVF 2.5–5 s, …), and the 3×4
layout adds a full-length lead II rhythm strip underneath. The start of every trace (t = 0) and every
baseline lie on a bold (5 mm) grid line at the default speed; pixels come from ``px_per_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass

from meit.errors import ConfigError
from meit.leads import CANONICAL_LEADS

#: page margins and the calibration zone in front of each row, mm
MARGIN_LEFT_MM = 5.0
MARGIN_RIGHT_MM = 5.0
MARGIN_TOP_MM = 10.0
MARGIN_BOTTOM_MM = 5.0
#: flat paper before and after the calibration pulse, mm (the pulse itself is 0.2 s wide at the paper speed)
CAL_PAD_MM = 2.5
#: calibration pulse: 1 mV for 0.2 s
CAL_MV = 1.0
CAL_SECONDS = 0.2


@dataclass(frozen=True)
class PaperLayout:
    """A named arrangement of the 12 leads: ``rows[r][c]`` is the lead in row r, column c.

    ``rhythm`` names leads drawn under the grid as full-length strips (one row each); ``row_mm`` is the
    height of one row, so a trace has ±``row_mm / 2`` mm around its baseline before it is clipped.
    """

    name: str
    rows: tuple[tuple[str, ...], ...]
    rhythm: tuple[str, ...]
    row_mm: float

    @property
    def n_columns(self) -> int:
        return len(self.rows[0])

    @property
    def n_rows(self) -> int:
        """Rows on the page, rhythm strips included."""
        return len(self.rows) + len(self.rhythm)


LAYOUTS: dict[str, PaperLayout] = {layout.name: layout for layout in (
    PaperLayout("3x4", (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6")),
                ("II",), 40.0),
    PaperLayout("6x2", (("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6")),
                (), 30.0),
    PaperLayout("12x1", tuple((lead,) for lead in CANONICAL_LEADS), (), 30.0),
)}


def get_layout(name: str | PaperLayout) -> PaperLayout:
    """The layout called ``name`` (a ConfigError listing the known ones otherwise)."""
    if isinstance(name, PaperLayout):
        return name
    if name not in LAYOUTS:
        raise ConfigError(f"layout {name!r}: unknown; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[name]


@dataclass(frozen=True)
class BoxMm:
    """One drawn trace segment: lead, its rectangle and baseline (mm from the top-left), its time window (s)."""

    lead: str
    x0: float
    y0: float
    x1: float
    y1: float
    baseline: float
    t0_s: float
    t1_s: float


@dataclass(frozen=True)
class PageMm:
    """The page of one (layout, seconds, speed): its size, every lead box and where each row's pulse starts."""

    width: float
    height: float
    trace_x0: float  # where t = 0 is drawn
    boxes: tuple[BoxMm, ...]
    baselines: tuple[float, ...]  # one per row
    cal_x0: float


def page_geometry(layout: PaperLayout, seconds: float, speed_mm_s: float) -> PageMm:
    """Millimetre geometry of ``layout`` showing ``seconds`` of signal at ``speed_mm_s``."""
    trace_x0 = MARGIN_LEFT_MM + 2 * CAL_PAD_MM + CAL_SECONDS * speed_mm_s
    trace_width = seconds * speed_mm_s
    column_s = seconds / layout.n_columns
    boxes: list[BoxMm] = []
    baselines: list[float] = []
    for row in range(layout.n_rows):
        y0 = MARGIN_TOP_MM + row * layout.row_mm
        baseline = y0 + layout.row_mm / 2
        baselines.append(baseline)
        if row < len(layout.rows):
            for col, lead in enumerate(layout.rows[row]):
                x0 = trace_x0 + col * trace_width / layout.n_columns
                boxes.append(BoxMm(lead, x0, y0, x0 + trace_width / layout.n_columns, y0 + layout.row_mm, baseline,
                                   col * column_s, (col + 1) * column_s))
        else:
            lead = layout.rhythm[row - len(layout.rows)]
            boxes.append(BoxMm(lead, trace_x0, y0, trace_x0 + trace_width, y0 + layout.row_mm, baseline, 0.0, seconds))
    width = trace_x0 + trace_width + MARGIN_RIGHT_MM
    height = MARGIN_TOP_MM + layout.n_rows * layout.row_mm + MARGIN_BOTTOM_MM
    return PageMm(width, height, trace_x0, tuple(boxes), tuple(baselines), MARGIN_LEFT_MM + CAL_PAD_MM)
