"""The image side of an encoder's input contract: which image, its size, scaling and training augmentation.

Declared here once (names, defaults, validation) so the contract, its artifact file and the recipes agree.
The rendering itself is :mod:`meit.render`; the load-time transform that calls it is
:mod:`meit.data.image_transform`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

ImageMode = Literal["none", "paper-3x4", "paper-6x2", "paper-12x1", "gaf", "rp", "mtf"]
#: ``none``: the encoder reads the signal; ``paper-*``: a paper-style 12-lead ECG in that layout;
#: ``gaf`` / ``rp`` / ``mtf``: Gramian angular field, recurrence plot, Markov transition field (Qiu et al.)
IMAGE_MODES: tuple[str, ...] = ("none", "paper-3x4", "paper-6x2", "paper-12x1", "gaf", "rp", "mtf")
PAPER_MODES: tuple[str, ...] = tuple(m for m in IMAGE_MODES if m.startswith("paper-"))
ENCODING_MODES: tuple[str, ...] = ("gaf", "rp", "mtf")
#: the augmentations of :class:`meit.render.Augmentation`, each a strength in [0, 1]
AUGMENTATIONS: tuple[str, ...] = ("rotation", "perspective", "blur", "noise", "jpeg", "colour", "contrast", "shadow",
                                  "crease", "marks")
#: ImageNet statistics: what public ConvNeXt / ViT / ResNet weights were trained with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: default sizes (height, width), multiples of 32: paper keeps about its page's aspect ratio (3×4 with the rhythm
#: strip 175 × 270 mm, 6×2 195 × 270 mm, 12×1 375 × 270 mm); the signal encodings are square (time × time)
DEFAULT_SIZES: dict[str, tuple[int, int]] = {"paper-3x4": (224, 352), "paper-6x2": (224, 320),
                                             "paper-12x1": (320, 224), "gaf": (224, 224), "rp": (224, 224),
                                             "mtf": (224, 224)}
MIN_SIDE, MAX_SIDE = 16, 4096
MIN_DPI, MAX_DPI = 25, 600


def image_channels(mode: str) -> int:
    """Channels of an image of ``mode``: RGB paper, or one channel per lead for the signal encodings."""
    if mode in PAPER_MODES:
        return 3
    if mode in ENCODING_MODES:
        return 12
    raise ValueError(f"image mode {mode!r} has no image (modes: {', '.join(IMAGE_MODES)})")


def default_image_mean_std(mode: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std a mode is normalised with when the contract leaves them unset.

    Paper images take ImageNet's (pixel values in [0, 1]), so public ImageNet weights see what they were trained
    on; the signal encodings are already bounded (GAF in [-1, 1], RP and MTF in [0, 1]) and are left as they are.
    """
    if mode in PAPER_MODES:
        return IMAGENET_MEAN, IMAGENET_STD
    channels = image_channels(mode)
    return (0.0,) * channels, (1.0,) * channels


def normalise_image_size(value: Any, mode: str) -> Any:
    """``224`` → ``(224, 224)``, ``[h, w]`` → ``(h, w)``, None → the mode's default; bad values pass for validation."""
    if value is None:
        return DEFAULT_SIZES.get(mode)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return tuple(value)
    return value


def default_dpi(mode: str, size: Any, seconds: float) -> int | None:
    """The resolution that draws a ``mode`` page at about ``size``'s height (None for non-paper modes).

    Then resizing barely rescales, so a 1-px pen stays a dark line; drawing at 100 dpi and shrinking threefold
    to 224 px would leave traces at a third of their contrast.
    """
    if mode not in PAPER_MODES or not (isinstance(size, tuple) and len(size) == 2 and all(_positive_int(v)
                                                                                         for v in size)):
        return None
    from meit.render.layout import get_layout, page_geometry

    page = page_geometry(get_layout(mode.removeprefix("paper-")), float(seconds), 25.0)
    return int(min(MAX_DPI, max(MIN_DPI, round(size[0] / page.height * 25.4))))


def normalise_augment(value: Any) -> Any:
    """``{"blur": 0.3}`` (or pairs) → sorted ``(("blur", 0.3),)`` with zero strengths dropped; bad values pass."""
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(str(k), float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v) for k, v in items]
    except (TypeError, ValueError):
        return value
    return tuple(sorted((k, v) for k, v in pairs if v != 0))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def image_problems(data: Mapping[str, Any]) -> list[str]:
    """Problems of a contract mapping's image fields (absent fields: a signal contract), each naming its key."""
    mode = data.get("image_mode", "none")
    if mode not in IMAGE_MODES:
        return [f"'contract.image_mode' must be one of {IMAGE_MODES}, got {mode!r}"]
    augment = normalise_augment(data.get("image_augment"))
    denoise = data.get("image_denoise", "none")
    if mode == "none":
        set_keys = [k for k in ("image_size", "image_mean", "image_std") if data.get(k) is not None]
        if denoise != "none":
            set_keys.append("image_denoise")
        if augment:
            set_keys.append("image_augment")
        return [f"'contract.{k}' is set but 'contract.image_mode' is none (the encoder reads the signal); "
                f"set image_mode (one of {IMAGE_MODES[1:]}) or remove it" for k in set_keys]
    problems = []
    size = normalise_image_size(data.get("image_size"), mode)
    if not (isinstance(size, tuple) and len(size) == 2 and all(_positive_int(v) for v in size)
            and all(MIN_SIDE <= v <= MAX_SIDE for v in size)):
        problems.append(f"'contract.image_size' must be an integer or [height, width] with sides from {MIN_SIDE} to "
                        f"{MAX_SIDE} px, got {data.get('image_size')!r}")
    elif mode in ENCODING_MODES and size[0] != size[1]:
        problems.append(f"'contract.image_size' of a {mode} image must be square (the encoding is time × time), "
                        f"got {list(size)}")
    dpi = data.get("image_dpi")
    if dpi is not None and mode not in PAPER_MODES:
        problems.append(f"'contract.image_dpi' applies to paper images only, not {mode}; remove it")
    elif dpi is not None and (not _positive_int(dpi) or not MIN_DPI <= dpi <= MAX_DPI):
        problems.append(f"'contract.image_dpi' must be an integer from {MIN_DPI} to {MAX_DPI}, got {dpi!r}")
    channels = image_channels(mode)
    for key in ("image_mean", "image_std"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, list | tuple) or len(value) != channels or not all(_finite(v) for v in value):
            problems.append(f"'contract.{key}' must be {channels} finite numbers (one per channel of a {mode} "
                            f"image), got {value!r}")
        elif key == "image_std" and not all(v > 0 for v in value):
            problems.append(f"'contract.image_std' must be > 0 for every channel, got {list(value)}")
    if mode in PAPER_MODES and data.get("normalisation", "none") != "none":
        problems.append(f"'contract.normalisation' must be none for a {mode} image (paper is drawn in mV at 10 mm/mV), "
                        f"got {data.get('normalisation')!r}")
    from meit.render.denoise import DENOISE_METHODS  # here, not at import: meit.render loads numpy

    if denoise not in DENOISE_METHODS:
        problems.append(f"'contract.image_denoise' must be one of {DENOISE_METHODS}, got {denoise!r}")
    elif denoise != "none" and mode not in PAPER_MODES:
        problems.append(f"'contract.image_denoise' applies to paper images only (grid and background), not {mode}")
    if not isinstance(augment, tuple):
        problems.append(f"'contract.image_augment' must map augmentation names to strengths, got {augment!r}")
        return problems
    for name, strength in augment:
        if name not in AUGMENTATIONS:
            problems.append(f"'contract.image_augment.{name}' is not an augmentation "
                            f"(known: {', '.join(AUGMENTATIONS)})")
        elif not _finite(strength) or not 0 <= strength <= 1:
            problems.append(f"'contract.image_augment.{name}' must be a strength from 0 to 1, got {strength!r}")
    if augment and mode not in PAPER_MODES:
        problems.append(f"'contract.image_augment' applies to paper images only (scan/photo effects), not {mode}")
    return problems
