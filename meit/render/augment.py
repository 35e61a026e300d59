"""Make a clean rendered page look scanned or photographed: each effect has a strength in [0, 1].

Strength 0 turns an effect off (the image is returned unchanged when all are 0). Strength s draws the
effect's magnitude uniformly from [s/2, s] × its maximum, so a strength always shows and never exceeds
its bound; where the table says "up to", the draw is uniform in [0, s] × the maximum (per corner or
channel). Signs and directions are random:

=========== ================================================================================
effect      magnitude at strength s
=========== ================================================================================
rotation    angle |a| in [2.5·s, 5·s] degrees, either way (about the centre, white fill)
perspective every corner moved by up to 6 %·s of the width and height
blur        Gaussian, sigma in [s, 2·s] px
noise       Gaussian per pixel (the same on R, G, B), sigma in [6·s, 12·s] grey levels (0–255)
jpeg        JPEG re-encoding at quality 95 − [42.5·s, 85·s] (s = 1: quality 10–52)
colour      each channel multiplied by 1 ± up to 0.15·s (white balance, tinted paper)
contrast    (x − 128)·c + 128 + b with |c − 1| in [0.2·s, 0.4·s] and |b| ≤ 30·s grey levels
shadow      a soft-edged shadow across the page darkening by a factor in [0.25·s, 0.5·s]
crease      1 fold line (2 if s ≥ 0.5) near the page's axes: a dark line (depth [0.175·s, 0.35·s]) with
            a light edge, 1 + 3·s px wide
marks       ⌈5·s⌉ handwriting-like pen strokes, each up to 30 %·s of the page width long
=========== ================================================================================

Effects run in the order a page meets them: marks and creases on the paper, then the camera's
geometry (rotation, perspective), lighting (shadow, colour, contrast), optics (blur), sensor noise and
compression (JPEG). Each effect draws from its own random stream (the seed and its name), so turning
one effect on or changing its strength leaves the others' draws as they were. Same seed, same bytes.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from meit.errors import ConfigError, DataError

EFFECTS: tuple[str, ...] = ("marks", "crease", "rotation", "perspective", "shadow", "colour", "contrast", "blur",
                            "noise", "jpeg")
MAX_ROTATION_DEG = 5.0
MAX_CORNER_SHIFT = 0.06
MAX_BLUR_SIGMA = 2.0
MAX_NOISE_SIGMA = 12.0
JPEG_BEST, JPEG_DROP = 95, 85
MAX_COLOUR_GAIN = 0.15
MAX_CONTRAST, MAX_BRIGHTNESS = 0.4, 30.0
MAX_SHADOW = 0.5
MAX_CREASE = 0.35
MAX_STROKES, MAX_STROKE_LENGTH = 5, 0.3
INKS = ((25, 45, 150), (20, 20, 20), (170, 30, 40))  # blue, black, red pen
FILL = (255, 255, 255)


@dataclass(frozen=True)
class Augmentation:
    """Strength in [0, 1] of each effect (0 = off); see the module docstring for what each maps to."""

    rotation: float = 0.0
    perspective: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: float = 0.0
    colour: float = 0.0
    contrast: float = 0.0
    shadow: float = 0.0
    crease: float = 0.0
    marks: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"augmentation {field.name}={value!r}: expected a strength in [0, 1]")
            object.__setattr__(self, field.name, float(value))

    @classmethod
    def parse(cls, text: str | None) -> Augmentation:
        """``"rotation=0.3,blur=0.2"`` (``all=S`` sets every effect; later keys win); empty or None = off."""
        values: dict[str, float] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"--augment {part.strip()!r}: expected effect=strength, e.g. rotation=0.3")
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"--augment {key}={raw.strip()!r}: expected a number in [0, 1]") from None
            if key == "all":
                values.update(dict.fromkeys(EFFECTS, value))
            elif key in EFFECTS:
                values[key] = value
            else:
                raise ConfigError(f"--augment {key!r}: unknown effect; expected one of {', '.join(EFFECTS)} or all")
        return cls(**values)

    @classmethod
    def uniform(cls, strength: float) -> Augmentation:
        """Every effect at the same strength."""
        return cls(**dict.fromkeys(EFFECTS, strength))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return any(getattr(self, name) > 0 for name in EFFECTS)


def _rng(seed: int, effect: str) -> np.random.Generator:
    return np.random.default_rng([seed, EFFECTS.index(effect)])


def _magnitude(rng: np.random.Generator, strength: float, maximum: float) -> float:
    """Uniform in [s/2, s] × maximum."""
    return float(rng.uniform(0.5, 1.0) * strength * maximum)


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def augmentation_parameters(augmentation: Augmentation, seed: int, height: int, width: int) -> dict[str, Any]:
    """What :func:`augment` will do to a ``height`` × ``width`` image with this seed, effect by effect.

    Only effects with a strength above 0 appear. ``rotation.degrees`` is counter-clockwise;
    ``perspective.corners`` are where the image frame's corners (top-left, top-right, bottom-right,
    bottom-left) go after the rotation; :func:`geometry_matrix` combines both into one map for the
    sidecar's boxes.
    """
    _check_seed(seed)
    params: dict[str, Any] = {}
    s = augmentation
    if s.marks:
        rng = _rng(seed, "marks")
        params["marks"] = {"strokes": [_stroke(rng, s.marks, height, width) for _ in range(math.ceil(MAX_STROKES
                                                                                                      * s.marks))]}
    if s.crease:
        rng = _rng(seed, "crease")
        folds = []
        for _ in range(1 if s.crease < 0.5 else 2):
            vertical = bool(rng.random() < 0.5)
            folds.append({"vertical": vertical, "position": float(rng.uniform(0.15, 0.85)),
                          "tilt_degrees": float(rng.uniform(-3, 3)), "depth": _magnitude(rng, s.crease, MAX_CREASE),
                          "width_px": 1.0 + 3.0 * s.crease})
        params["crease"] = {"folds": folds}
    if s.rotation:
        rng = _rng(seed, "rotation")
        params["rotation"] = {"degrees": _sign(rng) * _magnitude(rng, s.rotation, MAX_ROTATION_DEG)}
    if s.perspective:
        rng = _rng(seed, "perspective")
        shift = rng.uniform(-1, 1, size=(4, 2)) * s.perspective * MAX_CORNER_SHIFT * np.array([width, height])
        corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64) + shift
        params["perspective"] = {"corners": corners.round(3).tolist()}
    if s.shadow:
        rng = _rng(seed, "shadow")
        params["shadow"] = {"angle": float(rng.uniform(0, 2 * np.pi)), "edge": float(rng.uniform(0.2, 0.8)),
                            "softness": float(rng.uniform(0.03, 0.15)), "depth": _magnitude(rng, s.shadow, MAX_SHADOW)}
    if s.colour:
        rng = _rng(seed, "colour")
        params["colour"] = {"gains": (1.0 + rng.uniform(-1, 1, size=3) * s.colour * MAX_COLOUR_GAIN).tolist()}
    if s.contrast:
        rng = _rng(seed, "contrast")
        params["contrast"] = {"factor": 1.0 + _sign(rng) * _magnitude(rng, s.contrast, MAX_CONTRAST),
                              "offset": float(rng.uniform(-1, 1) * s.contrast * MAX_BRIGHTNESS)}
    if s.blur:
        params["blur"] = {"sigma_px": _magnitude(_rng(seed, "blur"), s.blur, MAX_BLUR_SIGMA)}
    if s.noise:
        rng = _rng(seed, "noise")
        params["noise"] = {"sigma": _magnitude(rng, s.noise, MAX_NOISE_SIGMA),
                           "seed": int(rng.integers(0, 2**31))}
    if s.jpeg:
        params["jpeg"] = {"quality": round(JPEG_BEST - _magnitude(_rng(seed, "jpeg"), s.jpeg, JPEG_DROP))}
    return params


def _stroke(rng: np.random.Generator, strength: float, height: int, width: int) -> dict[str, Any]:
    """A pen path that loops and drifts like a handwritten word or a scribbled circle."""
    length = rng.uniform(0.3, 1.0) * strength * MAX_STROKE_LENGTH * width
    n = max(8, int(length / 3))
    step = length / n
    heading = rng.uniform(0, 2 * np.pi)
    turn = np.cumsum(rng.normal(0, 0.25, size=n))  # a drifting direction …
    loops = rng.uniform(0.3, 0.9) * np.sin(np.linspace(0, rng.uniform(4, 14) * np.pi, n))  # … with loops
    angle = heading + turn + loops
    start = rng.uniform([0, 0], [width, height])
    path = start + np.cumsum(np.stack([np.cos(angle), np.sin(angle)], axis=1) * step, axis=0)
    return {"points": path.round(2).tolist(), "width_px": float(rng.uniform(1.0, 1.0 + 2.5 * strength)),
            "ink": list(INKS[int(rng.integers(len(INKS)))]), "opacity": float(rng.uniform(0.6, 0.95))}


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed={seed!r}: expected a non-negative integer")


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 2:
        raise DataError(f"image: expected an (H, W, 3) uint8 RGB array, got {arr.dtype} {arr.shape}")
    return arr


def _draw_marks(image: np.ndarray, strokes: list[dict[str, Any]]) -> np.ndarray:
    from PIL import Image, ImageDraw

    base = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for stroke in strokes:
        ink = (*stroke["ink"], round(255 * stroke["opacity"]))
        draw.line([tuple(p) for p in stroke["points"]], fill=ink, width=max(1, round(stroke["width_px"])),
                  joint="curve")
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))


def _crease(image: np.ndarray, folds: list[dict[str, Any]]) -> np.ndarray:
    """Each fold darkens a thin line (with a light edge beside it); only the band around it is computed."""
    out = image.copy()
    for fold in folds:
        view = out.transpose(1, 0, 2) if fold["vertical"] else out  # folds run along the view's rows
        across, along = view.shape[0], view.shape[1]
        tilt = math.tan(math.radians(fold["tilt_degrees"]))
        w = fold["width_px"]
        centre = fold["position"] * across + (np.arange(along, dtype=np.float32) - along / 2) * tilt
        reach = 5.0 * w
        r0 = max(int(np.floor(centre.min() - reach)), 0)
        r1 = min(int(np.ceil(centre.max() + 3 * w + reach)), across)
        if r1 <= r0:
            continue
        u = np.arange(r0, r1, dtype=np.float32)[:, None] - centre[None, :]
        dark = np.exp(-((u / w) ** 2))
        light = np.exp(-(((u - 2 * w) / w) ** 2))  # the fold's raised edge catches the light
        factor = 1.0 - fold["depth"] * dark + 0.5 * fold["depth"] * light
        view[r0:r1] = _to_uint8(view[r0:r1].astype(np.float32) * factor[:, :, None])
    return out


def _homography(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3 × 3 projective map taking the four ``source`` points to the four ``target`` points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def geometry_matrix(params: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The 3 × 3 map from clean-page pixels to augmented-image pixels (rotation, then perspective).

    Apply it to the sidecar's box corners in homogeneous coordinates (``[x, y, 1]``, divide by the third
    component) to find the boxes on an augmented image. Identity when neither effect is on.
    """
    matrix = np.eye(3)
    if "rotation" in params:  # counter-clockwise as seen on the image (y points down), about the centre
        a = math.radians(params["rotation"]["degrees"])
        cx, cy = width / 2, height / 2
        turn = np.array([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
        matrix = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]]) @ turn @ np.array([[1, 0, -cx], [0, 1, -cy],
                                                                                    [0, 0, 1.0]])
    if "perspective" in params:
        frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
        matrix = _homography(frame, np.array(params["perspective"]["corners"])) @ matrix
    return matrix


def _shadow(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Multiply by a smooth shade; it varies slowly, so it is computed on a 1/8 grid and resized."""
    from PIL import Image, ImageChops

    height, width = image.shape[:2]
    small_h, small_w = -(-height // 8), -(-width // 8)
    diagonal = math.hypot(height, width)
    ys = (np.arange(small_h, dtype=np.float32) * 8 / diagonal)[:, None]
    xs = (np.arange(small_w, dtype=np.float32) * 8 / diagonal)[None, :]
    proj = xs * math.cos(p["angle"]) + ys * math.sin(p["angle"])
    lo, hi = float(proj.min()), float(proj.max())
    edge = lo + p["edge"] * (hi - lo)
    shade = 1.0 - p["depth"] / (1.0 + np.exp(-(proj - edge) / p["softness"]))
    grey = Image.fromarray(_to_uint8(shade * 255.0)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(ImageChops.multiply(Image.fromarray(image), Image.merge("RGB", (grey, grey, grey))))


def _tone_table(params: dict[str, Any]) -> list[int]:
    """Colour gains then contrast/brightness as one 3 × 256 lookup table (Pillow ``Image.point``)."""
    levels = np.arange(256, dtype=np.float64)
    gains = params.get("colour", {}).get("gains", [1.0, 1.0, 1.0])
    contrast = params.get("contrast", {"factor": 1.0, "offset": 0.0})
    table = [(levels * g - 128.0) * contrast["factor"] + 128.0 + contrast["offset"] for g in gains]
    return _to_uint8(np.concatenate(table)).tolist()


def augment(image: np.ndarray, augmentation: Augmentation, seed: int) -> np.ndarray:
    """``image`` (H, W, 3) uint8 as if printed, handled, scanned or photographed; same size, new array.

    Deterministic: the same image, augmentation and seed give the same bytes.
    """
    from PIL import Image, ImageFilter

    arr = _check_image(image)
    params = augmentation_parameters(augmentation, seed, arr.shape[0], arr.shape[1])
    out: np.ndarray = arr.copy()
    if "marks" in params:
        out = _draw_marks(out, params["marks"]["strokes"])
    if "crease" in params:
        out = _crease(out, params["crease"]["folds"])
    if "rotation" in params or "perspective" in params:  # one resampling for both
        height, width = out.shape[:2]
        inverse = np.linalg.inv(geometry_matrix(params, height, width))
        inverse /= inverse[2, 2]
        out = np.asarray(Image.fromarray(out).transform((width, height), Image.Transform.PERSPECTIVE,
                                                        tuple(inverse.ravel()[:8]), resample=Image.Resampling.BILINEAR,
                                                        fillcolor=FILL))
    if "shadow" in params:
        out = _shadow(out, params["shadow"])
    if "colour" in params or "contrast" in params:
        out = np.asarray(Image.fromarray(out).point(_tone_table(params)))
    if "blur" in params:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(params["blur"]["sigma_px"])))
    if "noise" in params:
        noise = np.random.default_rng(params["noise"]["seed"]).standard_normal(out.shape[:2], dtype=np.float32)
        noise = np.rint(noise * params["noise"]["sigma"]).astype(np.int16)  # luminance noise: same on R, G, B
        out = np.clip(out.astype(np.int16) + noise[:, :, None], 0, 255).astype(np.uint8)
    if "jpeg" in params:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=params["jpeg"]["quality"])
        out = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return np.array(out, dtype=np.uint8, copy=True)


def _to_uint8(work: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(work), 0, 255).astype(np.uint8)
