"""One signal → what ``meit render`` stores for it: an image, a sidecar and (for the encodings) an array."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meit.errors import ConfigError
from meit.leads import CANONICAL_LEADS
from meit.render import (
    MODES,
    VALUE_RANGE,
    Augmentation,
    augment,
    augmentation_parameters,
    get_layout,
    render_paper,
    signal_image,
)
from meit.render.encodings import SIZE_RANGE
from meit.render.store import preview, record_seed


@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides the rendered bytes of a record (recorded in the index)."""

    mode: str = "paper"
    layout: str = "3x4"
    dpi: int = 100
    speed_mm_s: float = 25.0
    gain_mm_mv: float = 10.0
    seconds: float = 10.0
    grid: bool = True
    calibration: bool = True
    labels: bool = True
    size: int = 224
    augmentation: Augmentation = field(default_factory=Augmentation)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r}: expected one of {list(MODES)}")
        if self.mode == "paper":
            get_layout(self.layout)
            render_paper(np.zeros((12, 2)), 1.0, layout=self.layout, dpi=self.dpi, speed_mm_s=self.speed_mm_s,
                         gain_mm_mv=self.gain_mm_mv, seconds=self.seconds)  # checks every setting, cheap
        elif not SIZE_RANGE[0] <= self.size <= SIZE_RANGE[1]:
            raise ConfigError(f"size={self.size!r}: expected an integer in [{SIZE_RANGE[0]}, {SIZE_RANGE[1]}]")
        if self.mode != "paper" and self.augmentation.active:
            raise ConfigError(f"--augment applies to paper images; mode {self.mode!r} encodes the signal itself")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r}: expected a non-negative integer")

    def to_dict(self) -> dict[str, Any]:
        """The settings as recorded; only those that apply to the mode."""
        if self.mode == "paper":
            return {"mode": "paper", "layout": self.layout, "dpi": self.dpi, "speed_mm_s": self.speed_mm_s,
                    "gain_mm_mv": self.gain_mm_mv, "seconds": self.seconds, "grid": self.grid,
                    "calibration": self.calibration, "labels": self.labels,
                    "augmentation": self.augmentation.to_dict(), "seed": self.seed}
        return {"mode": self.mode, "size": self.size, "seconds": self.seconds,
                "value_range": list(VALUE_RANGE[self.mode]), "channels": "one per lead, meit.leads order"}


@dataclass(frozen=True)
class RenderedRecord:
    image: np.ndarray  # (H, W, 3) uint8: the page, or a preview of the encoding
    sidecar: dict[str, Any]
    array: np.ndarray | None = None  # the encoding, float32 (12, size, size)


def _summary(params: dict[str, Any]) -> dict[str, Any]:
    """Drawn augmentation parameters for the sidecar, pen strokes reduced to their count."""
    out = dict(params)
    if "marks" in out:
        out["marks"] = {"strokes": len(out["marks"]["strokes"])}
    return out


def render_one(signal: np.ndarray, fs: float, settings: RenderSettings, record_id: str) -> RenderedRecord:
    """Render one record; a bad signal raises DataError (the caller skips and accounts for it)."""
    if settings.mode == "paper":
        page = render_paper(signal, fs, layout=settings.layout, dpi=settings.dpi, speed_mm_s=settings.speed_mm_s,
                            gain_mm_mv=settings.gain_mm_mv, grid=settings.grid, calibration=settings.calibration,
                            labels=settings.labels, seconds=settings.seconds)
        sidecar = {"id": record_id, **page.sidecar}
        image = page.image
        if settings.augmentation.active:
            seed = record_seed(settings.seed, record_id)
            image = augment(image, settings.augmentation, seed)
            sidecar["augmentation"] = {
                "strengths": settings.augmentation.to_dict(), "seed": seed,
                "parameters": _summary(augmentation_parameters(settings.augmentation, seed, *image.shape[:2])),
                "note": "boxes are on the page before augmentation; rotation and perspective move them",
            }
        return RenderedRecord(image, sidecar)
    array = signal_image(signal, fs, mode=settings.mode, size=settings.size, seconds=settings.seconds)
    low, high = VALUE_RANGE[settings.mode]
    sidecar = {"id": record_id, "format": "meit-signal-image", "version": 1, "mode": settings.mode,
               "shape": list(array.shape), "dtype": "float32", "value_range": [low, high],
               "channels": list(CANONICAL_LEADS), "fs": float(fs), "seconds": settings.seconds,
               "preview": "3 × 4 grey mosaic of the channels in lead order, value_range mapped to 0–255"}
    return RenderedRecord(preview(array, low, high), sidecar, array)

