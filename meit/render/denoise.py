"""Denoising a paper ECG before an encoder reads it: background flattening and grid removal (Wang et al.).

Scans and photographs differ from a clean page in ways that say nothing about the heart: uneven lighting,
shadows, tinted paper, and a coloured grid that covers most of the page. Two steps take them out:

* ``flatten``: each channel is divided by its background, estimated by a grey-level closing (a maximum
  filter then a minimum filter) wider than any trace, so shadows and tints become white paper while thin dark
  lines keep their contrast.
* ``grid``: the page becomes one grey level per pixel, the *largest* of its three channels. Ink is dark in every
  channel; the red/pink grid is bright in at least one, so it goes to near-white. Light pixels (above
  ``PAPER_LEVEL`` of the paper's brightness) are then set to white, and the range from the darkest ink
  (``INK_PERCENTILE``) up to that level is stretched to black–white, so a blurred or low-contrast scan gives
  traces as dark as a clean page's.

``grid+flatten`` does both (flattening first). The output is still ``(H, W, 3)`` uint8 RGB (the grey page in
three equal channels), so an encoder's input contract keeps its channel count and normalisation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Denoise = Literal["none", "grid", "flatten", "grid+flatten"]
DENOISE_METHODS: tuple[str, ...] = ("none", "grid", "flatten", "grid+flatten")
#: a pixel at least this fraction of the paper's brightness is paper (or grid), not ink
PAPER_LEVEL = 0.8
#: the grey level of this percentile of a page's pixels is taken as full ink (black)
INK_PERCENTILE = 0.5
#: the closing window as a fraction of the page height: wider than a trace or a label, narrower than a shadow
BACKGROUND_WINDOW = 0.06


def flatten_background(image: np.ndarray) -> np.ndarray:
    """Each channel divided by its estimated background (a closing wider than any trace), as uint8."""
    from scipy.ndimage import maximum_filter, minimum_filter

    pixels = image.astype(np.float32)
    size = max(5, round(BACKGROUND_WINDOW * image.shape[0]) | 1)
    window = (size, size, 1)
    background = minimum_filter(maximum_filter(pixels, size=window, mode="nearest"), size=window, mode="nearest")
    flat = pixels / np.maximum(background, 1.0) * 255.0
    return np.clip(flat, 0, 255).round().astype(np.uint8)


def remove_grid(image: np.ndarray) -> np.ndarray:
    """The page as ink on white: the brightest channel per pixel, paper-level pixels white, the darkest ink black
    and the range between stretched."""
    grey = image.max(axis=2).astype(np.float32)
    paper = float(np.percentile(grey, 90))
    level = PAPER_LEVEL * paper
    darkest = min(float(np.percentile(grey, INK_PERCENTILE)), level / 2)
    if level <= darkest:  # an all-dark (or empty) page: nothing to separate
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    ink = np.clip((grey - darkest) / (level - darkest), 0.0, 1.0) * 255.0
    out = ink.round().astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2)


def denoise_paper(image: np.ndarray, method: str) -> np.ndarray:
    """``image`` (H, W, 3) uint8 denoised by ``method`` (one of :data:`DENOISE_METHODS`); ``none`` returns it."""
    if method not in DENOISE_METHODS:
        raise ValueError(f"denoise method must be one of {DENOISE_METHODS}, got {method!r}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"paper image must be (height, width, 3) uint8, got {image.shape} {image.dtype}")
    if method == "none":
        return image
    if method in ("flatten", "grid+flatten"):
        image = flatten_background(image)
    if method in ("grid", "grid+flatten"):
        image = remove_grid(image)
    return image
