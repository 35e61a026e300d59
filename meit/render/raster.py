"""Anti-aliased rasterisation in numpy: polylines as per-column vertical spans, grid lines as 1-D profiles.

A waveform is a polyline whose x only grows, so within one pixel column it covers exactly the vertical
range between its lowest and highest point there (samples inside the column and the line's crossings of
the column's two edges). Drawing that range, widened by the pen width, with fractional coverage at both
ends gives an anti-aliased trace in O(samples + columns) with no per-segment loop — fast enough to
render on the fly inside a data loader. Coordinates are continuous pixels: pixel (r, c) covers
[r, r + 1) × [c, c + 1).
"""

from __future__ import annotations

import numpy as np


def column_spans(xs: np.ndarray, ys: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``(first column, lowest y, highest y)`` per pixel column of the polyline (xs non-decreasing)."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    first = int(np.floor(xs[0]))
    n = max(1, int(np.ceil(xs[-1])) - first)
    col = np.clip(np.floor(xs).astype(np.int64) - first, 0, n - 1)
    starts = np.searchsorted(col, np.arange(n), "left")
    ends = np.searchsorted(col, np.arange(n), "right")
    filled = ends > starts
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    lo[filled] = np.minimum.reduceat(ys, starts[filled])
    hi[filled] = np.maximum.reduceat(ys, starts[filled])
    if n > 1:  # where the line crosses each inner column edge (it belongs to the columns on both sides)
        edge_y = np.interp(first + np.arange(1, n, dtype=np.float64), xs, ys)
        lo[:-1] = np.minimum(lo[:-1], edge_y)
        lo[1:] = np.minimum(lo[1:], edge_y)
        hi[:-1] = np.maximum(hi[:-1], edge_y)
        hi[1:] = np.maximum(hi[1:], edge_y)
    return first, lo, hi


def draw_polyline(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, width: float,
                  colour: tuple[int, int, int], clip: tuple[float, float, float, float]) -> None:
    """Draw the polyline into ``image`` (H, W, 3 uint8) in place, clipped to ``clip`` = (x0, y0, x1, y1) px.

    ``width`` is the pen's vertical thickness in pixels; ``ys`` beyond the clip rectangle are held at its
    edge (a trace that leaves its box runs along the box edge, as a pen at its stop would).
    """
    if len(xs) == 0:
        return
    x0, y0, x1, y1 = clip
    half = width / 2
    ys = np.clip(np.asarray(ys, dtype=np.float64), y0 + half, y1 - half)
    first, lo, hi = column_spans(xs, ys)
    top = np.maximum(lo - half, y0)
    bottom = np.minimum(hi + half, y1)
    cols = first + np.arange(len(lo))
    keep = (cols >= max(int(np.floor(x0)), 0)) & (cols < min(int(np.ceil(x1)), image.shape[1]))
    if not keep.any():
        return
    cols, top, bottom = cols[keep], top[keep], bottom[keep]
    # only the pixels each column's span touches: a few per column, not the bounding rectangle
    start = np.maximum(np.floor(top).astype(np.int64), 0)
    stop = np.minimum(np.ceil(bottom).astype(np.int64), image.shape[0])
    count = np.maximum(stop - start, 0)
    total = int(count.sum())
    if total == 0:
        return
    which = np.repeat(np.arange(len(cols)), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    rows = start[which] + offset
    coverage = np.clip(np.minimum(rows + 1, bottom[which]) - np.maximum(rows, top[which]), 0.0, 1.0)
    pixel_cols = cols[which]
    pixels = image[rows, pixel_cols].astype(np.float32)
    pixels += (np.asarray(colour, dtype=np.float32) - pixels) * coverage.astype(np.float32)[:, None]
    image[rows, pixel_cols] = np.rint(pixels).astype(np.uint8)


def line_profile(length: int, spacing: float, width: float, *, every: int = 1, skip: int = 0) -> np.ndarray:
    """Coverage (0–1) along one axis of ``length`` px by lines at multiples of ``spacing`` px.

    Only every ``every``-th line is drawn, and lines whose index is a multiple of ``skip`` are left out
    (``skip=5`` keeps the 1 mm lines that are not also 5 mm lines).
    """
    coverage = np.zeros(length, dtype=np.float64)
    count = int(length / spacing) + 1
    index = np.arange(0, count, every)
    if skip:
        index = index[index % skip != 0]
    pixels = np.arange(length, dtype=np.float64)
    for centre in index * spacing:
        a, b = centre - width / 2, centre + width / 2
        r0, r1 = max(int(np.floor(a)), 0), min(int(np.ceil(b)), length)
        if r1 > r0:
            p = pixels[r0:r1]
            hit = np.clip(np.minimum(p + 1, b) - np.maximum(p, a), 0.0, 1.0)
            coverage[r0:r1] = np.maximum(coverage[r0:r1], hit)
    return coverage


def blend(image: np.ndarray, coverage: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """``image`` (float, H × W × 3) moved towards ``colour`` by ``coverage`` (H × W), returned."""
    return image + (np.asarray(colour, dtype=np.float64) - image) * coverage[:, :, None]
