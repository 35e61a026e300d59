"""A 12-lead signal → an image of ECG paper, with a sidecar saying where every lead is, in pixels.

Speed: the page without traces (grid, calibration pulses, labels) depends only on the settings, so it
is built once per setting and cached; each call copies it and draws the 13–15 trace segments with
:func:`meit.render.raster.draw_polyline`. No matplotlib, no per-segment Python loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS
from meit.render.layout import (
    CAL_MV,
    CAL_PAD_MM,
    CAL_SECONDS,
    MARGIN_LEFT_MM,
    PageMm,
    PaperLayout,
    get_layout,
    page_geometry,
)
from meit.render.raster import blend, draw_polyline, line_profile

MM_PER_INCH = 25.4
PAPER = (255, 255, 255)
FINE_GRID = (250, 200, 200)  # 1 mm lines
BOLD_GRID = (235, 120, 120)  # 5 mm lines
INK = (0, 0, 0)
#: pen widths in mm, and the thinnest line (px) drawn at low DPI so it stays visible
TRACE_MM, FINE_MM, BOLD_MM = 0.25, 0.1, 0.2
MIN_TRACE_PX, MIN_FINE_PX, MIN_BOLD_PX = 1.0, 0.6, 1.0
LABEL_MM = 3.5
DPI_RANGE = (25, 600)  # a 3×4 page at 600 DPI is already 6378 × 4134 px (79 MB)
SIDECAR_FORMAT = "meit-paper-ecg"
SIDECAR_VERSION = 1
_INDEX = {name: i for i, name in enumerate(CANONICAL_LEADS)}


@dataclass(frozen=True)
class RenderedEcg:
    """The page (H, W, 3) uint8 RGB and its JSON-ready sidecar (scales, each lead's box; see docs/images.md)."""

    image: np.ndarray
    sidecar: dict[str, Any]


@dataclass(frozen=True)
class _Settings:
    layout: PaperLayout
    dpi: int
    speed_mm_s: float
    gain_mm_mv: float
    seconds: float

    @property
    def px_per_mm(self) -> float:
        return self.dpi / MM_PER_INCH


def _positive(name: str, value: float, upper: float) -> float:
    value = float(value)
    if not np.isfinite(value) or not 0 < value <= upper:
        raise ConfigError(f"{name}={value!r}: expected a number in (0, {upper:g}]")
    return value


def _settings(layout: str | PaperLayout, dpi: int, speed: float, gain: float, seconds: float) -> _Settings:
    if isinstance(dpi, bool) or not isinstance(dpi, int | np.integer) or not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise ConfigError(f"dpi={dpi!r}: expected an integer in [{DPI_RANGE[0]}, {DPI_RANGE[1]}]")
    return _Settings(get_layout(layout), int(dpi), _positive("speed_mm_s", speed, 200.0),
                     _positive("gain_mm_mv", gain, 100.0), _positive("seconds", seconds, 600.0))


def check_signal(signal: np.ndarray, fs: float) -> np.ndarray:
    """The signal as float64 (12, T), or a DataError saying what is wrong with it."""
    arr = np.asarray(signal)
    if arr.dtype.kind not in "iuf":
        raise DataError(f"signal: expected a numeric (12, T) array in mV, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != len(CANONICAL_LEADS) or arr.shape[1] < 1:
        raise DataError(f"signal: expected shape (12, T) with T >= 1 (leads in meit.leads order), got {arr.shape}")
    fs_value = float(fs) if isinstance(fs, int | float | np.number) and not isinstance(fs, bool) else float("nan")
    if not np.isfinite(fs_value) or fs_value <= 0:
        raise DataError(f"fs={fs!r}: expected a positive sampling rate in Hz")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        leads = [CANONICAL_LEADS[i] for i in np.flatnonzero(bad.any(axis=1))]
        raise DataError(f"signal: {int(bad.sum())} non-finite sample(s) (NaN/inf) in lead(s) {leads}; expected "
                        "finite millivolts (a prepared dataset or meit.records.read_ecg repairs gaps)")
    return arr


def _font(size_px: float) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=max(6.0, size_px))


@functools.lru_cache(maxsize=8)
def _background(settings: _Settings, grid: bool, calibration: bool, labels: bool) -> np.ndarray:
    """The page without traces for these settings (read-only; copied by every render)."""
    page = page_geometry(settings.layout, settings.seconds, settings.speed_mm_s)
    ppm = settings.px_per_mm
    height, width = round(page.height * ppm), round(page.width * ppm)
    image = np.empty((height, width, 3), dtype=np.float64)
    image[:] = PAPER
    if grid:
        fine_w, bold_w = max(FINE_MM * ppm, MIN_FINE_PX), max(BOLD_MM * ppm, MIN_BOLD_PX)
        fine = np.maximum(line_profile(height, ppm, fine_w, skip=5)[:, None],
                          line_profile(width, ppm, fine_w, skip=5)[None, :])
        bold = np.maximum(line_profile(height, ppm, bold_w, every=5)[:, None],
                          line_profile(width, ppm, bold_w, every=5)[None, :])
        image = blend(blend(image, fine, FINE_GRID), bold, BOLD_GRID)
    out = np.rint(image).astype(np.uint8)
    if calibration:
        _draw_calibration(out, page, settings)
    if labels:
        _draw_labels(out, page, ppm)
    out.flags.writeable = False
    return out


def _trace_width(ppm: float) -> float:
    return max(TRACE_MM * ppm, MIN_TRACE_PX)


def _draw_calibration(image: np.ndarray, page: PageMm, settings: _Settings) -> None:
    """A 1 mV × 0.2 s pulse in front of every row, standing on that row's baseline."""
    ppm = settings.px_per_mm
    pulse_w = CAL_SECONDS * settings.speed_mm_s
    x = np.array([MARGIN_LEFT_MM, page.cal_x0, page.cal_x0, page.cal_x0 + pulse_w, page.cal_x0 + pulse_w,
                  page.cal_x0 + pulse_w + CAL_PAD_MM]) * ppm
    x[2] += 1e-6  # strictly increasing: the vertical edges stay inside one column each
    x[4] += 1e-6
    up = CAL_MV * settings.gain_mm_mv
    row_mm = settings.layout.row_mm
    for baseline in page.baselines:
        y = np.array([baseline, baseline, baseline - up, baseline - up, baseline, baseline]) * ppm
        clip = (x[0], (baseline - row_mm / 2) * ppm, x[-1], (baseline + row_mm / 2) * ppm)
        draw_polyline(image, x, y, _trace_width(ppm), INK, clip)


def _draw_labels(image: np.ndarray, page: PageMm, ppm: float) -> None:
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = _font(LABEL_MM * ppm)
    for box in page.boxes:
        draw.text(((box.x0 + 1.0) * ppm, (box.y0 + 1.0) * ppm), box.lead, fill=INK, font=font)
    image[:] = np.asarray(canvas)


def _box_pixels(box: Any, ppm: float) -> tuple[float, float, float, float]:
    return box.x0 * ppm, box.y0 * ppm, box.x1 * ppm, box.y1 * ppm


def render_paper(signal: np.ndarray, fs: float, *, layout: str = "3x4", dpi: int = 100, speed_mm_s: float = 25.0,
                 gain_mm_mv: float = 10.0, grid: bool = True, calibration: bool = True, labels: bool = True,
                 seconds: float = 10.0) -> RenderedEcg:
    """Draw ``signal`` (12, T) mV in meit's lead order, sampled at ``fs`` Hz, as ECG paper.

    The page shows the first ``seconds`` of the record (a shorter record leaves the rest of its boxes
    blank); a trace is clipped to its box. Raises DataError for a bad signal (shape, NaN/inf, fs) and
    ConfigError for a bad setting.
    """
    settings = _settings(layout, dpi, speed_mm_s, gain_mm_mv, seconds)
    x = check_signal(signal, fs)
    fs = float(fs)
    ppm = settings.px_per_mm
    page = page_geometry(settings.layout, settings.seconds, settings.speed_mm_s)
    image = _background(settings, bool(grid), bool(calibration), bool(labels)).copy()
    px_per_s, px_per_mv = settings.speed_mm_s * ppm, settings.gain_mm_mv * ppm
    duration = x.shape[1] / fs
    width = _trace_width(ppm)
    boxes = []
    for box in page.boxes:
        i0 = min(int(np.ceil(box.t0_s * fs - 1e-9)), x.shape[1])
        i1 = max(min(int(np.floor(box.t1_s * fs + 1e-9)) + 1, x.shape[1]), i0)  # the sample at t1 closes it
        clip = _box_pixels(box, ppm)
        if i1 > i0:
            t = np.arange(i0, i1) / fs
            xs = page.trace_x0 * ppm + t * px_per_s
            ys = box.baseline * ppm - x[_INDEX[box.lead], i0:i1] * px_per_mv
            draw_polyline(image, xs, ys, width, INK, clip)
        t0 = min(box.t0_s, duration)
        boxes.append({
            "lead": box.lead, "x0": clip[0], "y0": clip[1], "x1": clip[2], "y1": clip[3],
            "t0_s": t0, "t1_s": max(t0, min(box.t1_s, (i1 - 1) / fs)) if i1 > i0 else t0,
            "baseline_y": box.baseline * ppm, "samples": [i0, i1],
            "rhythm_strip": box.t1_s - box.t0_s == settings.seconds and settings.layout.n_columns > 1,
        })
    height, width_px = image.shape[:2]
    sidecar = {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION,
        "layout": settings.layout.name, "dpi": settings.dpi, "width": width_px, "height": height,
        "px_per_mm": ppm, "speed_mm_s": settings.speed_mm_s, "gain_mm_mv": settings.gain_mm_mv,
        "px_per_mv": px_per_mv, "px_per_s": px_per_s, "trace_x0": page.trace_x0 * ppm,
        "seconds_shown": settings.seconds, "record_seconds": duration, "fs": fs,
        "grid": bool(grid), "calibration": bool(calibration), "labels": bool(labels),
        "boxes": boxes,
    }
    return RenderedEcg(image, sidecar)
